#!/bin/bash
# bench/fidelity_fde.sh FILE...: the .eh_frame FDE ranges of each ELF file,
# "basename|start|end" (decimal), for fidelity_keys.awk.  Warns on stderr
# when a code segment's file offset differs from its address (perf prints
# offsets into the file, perch ELF addresses; they agree only then).
for f in "$@"; do
	[ -f "$f" ] || continue
	b=${f##*/}
	readelf -lW "$f" 2>/dev/null | awk -v f="$f" '$1 == "LOAD" && $7 ~ /E/ && $2 != $3 {
		print "fidelity_fde: " f ": code at file offset " $2 " is mapped at " $3 > "/dev/stderr" }'
	readelf -wf "$f" 2>/dev/null | awk -v b="$b" '
		function fromhex(s,    i, c, v) {
			v = 0
			for (i = 1; i <= length(s); i++) {
				c = index("0123456789abcdef", substr(s, i, 1))
				v = v * 16 + c - 1
			}
			return v
		}
		/ FDE / && match($0, /pc=[0-9a-f]+\.\.[0-9a-f]+/) {
			r = substr($0, RSTART + 3, RLENGTH - 3)
			split(r, p, /\.\./)
			print b "|" fromhex(p[1]) "|" fromhex(p[2])
		}'
done
