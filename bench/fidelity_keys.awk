# awk -F'|' -v hex=0|1 -f fidelity_keys.awk FDE_TABLE SIDE_FILE
# Gives every sample's function one identity on both sides, whatever its
# name: the unwind-table entry (.eh_frame FDE) that covers its address in
# its module.  Names alone do not work: glibc's aliases (perch says
# `__write`, perf `__GI___libc_write`), and stripped libraries (liblzma,
# libsqlite3), whose static functions have no name on either side.
# FDE_TABLE: "module|start|end" lines (basename, decimal, from readelf).
# SIDE_FILE: count|name|module path|address (hex=1: hexadecimal, perf's;
# else decimal, perch's).  Both are ELF addresses: fidelity.sh checks that
# the code segments map file offsets to equal addresses.
# Output: count|key|display name.
function base(path)
{
	sub(/.*\//, "", path)
	return path
}

function fromhex(s,    i, c, v)
{
	v = 0
	s = tolower(s)
	sub(/^0x/, "", s)
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", substr(s, i, 1))
		if (c == 0)
			break
		v = v * 16 + c - 1
	}
	return v
}

function unnamed(name)
{
	return name == "" || name == "[unknown]" || name ~ /\+0x[0-9a-f]+$/ || name ~ /^0x[0-9a-f]+$/
}

FILENAME == ARGV[1] {
	n = ++nf[$1]
	fs[$1, n] = $2
	fe[$1, n] = $3
	next
}

$2 == "[kernel leaf]" || $2 == "[kernel only]" { print $1 "|" $2 "|" $2; next }

{
	m = base($3)
	a = hex ? fromhex($4) : $4 + 0
	name = $2
	sub(/@.*/, "", name)
	start = -1
	for (i = 1; i <= nf[m]; i++)
		if (fs[m, i] <= a && a < fe[m, i]) {
			start = fs[m, i]
			break
		}
	if (start >= 0)
		k = m ":" sprintf("%x", start)
	else
		k = m ":" (unnamed(name) ? sprintf("%x", a) : name)
	if (unnamed(name))
		name = m "+0x" (start >= 0 ? sprintf("%x", start) : sprintf("%x", a))
	print $1 "|" k "|" name
}
