#!/bin/bash
# bench/storage.sh BUILD_DIR [--quick]: BENCHMARKS.md table 5, bytes per
# sample of perch's database against perf.data (-g and --call-graph dwarf)
# for the same workload at the same rate.  Prints one markdown section.
#
# Each round starts tests/targets/burner (2 threads spinning) and records it
# with perch, perf -g and perf --call-graph dwarf at once, all at 99 Hz over
# the same window, once short and once long (order alternating by round):
# the difference between the two gives the cost of a sample without the
# per-session fixed part (headers, mmap events, schema pages).  perch's
# database grows by what `perchd` writes, measured after perchd has
# checkpointed and closed it, against the same database before.
set -u
. "$(dirname "$0")/fidelity_lib.sh"

[ $# -ge 1 ] || { echo "usage: bench/storage.sh BUILD_DIR [--quick]" >&2; exit 2; }
fl_setup storage "$1"
LOAD0=$(fl_load)
[ "${2:-}" = --quick ] && FL_QUICK=1
fl_need perf
if [ "${2:-}" = --quick ]; then
	ROUNDS=1 SHORT=2 LONG=5
else
	ROUNDS=3 SHORT=4 LONG=14
fi
RATE=99

fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# Bytes perch's database holds: what its pages use (dbstat: page size minus
# unused bytes, summed), not the file size.  A new file already has a page
# per table, and a short session fits in them: the file does not grow
# until they fill, so file sizes would say 0 bytes per sample.
dbsize()
{
	sqlite3 -readonly "$FL_DB" "SELECT sum(pgsize - unused) FROM dbstat" ||
		fl_die "sqlite3 cannot read $FL_DB (needs the dbstat table)"
}

# perf prints "... (N samples) ]" when it writes its file.
perf_samples() { sed -n 's/.*(\([0-9]*\) samples).*/\1/p' "$1" | tail -1; }

# one_run TAG SECS: appends "tag secs recorder bytes samples ticks" lines.
one_run()
{
	local tag=$1 secs=$2 after pg pd

	fl_daemon_start "$tag"
	fl_target_start burner --threads 2
	perf record -F $RATE -g -p "$FL_TPID" -o "$WORK/$tag.g.data" -- sleep "$secs" \
		>"$WORK/$tag.g.log" 2>&1 &
	pg=$!
	perf record -F $RATE --call-graph dwarf -p "$FL_TPID" -o "$WORK/$tag.d.data" \
		-- sleep "$secs" >"$WORK/$tag.d.log" 2>&1 &
	pd=$!
	fl_record "$FL_TPID" "$secs" $RATE "$WORK/$tag.json"
	wait $pg || fl_die "perf record -g failed: $(cat "$WORK/$tag.g.log")"
	wait $pd || fl_die "perf record dwarf failed: $(cat "$WORK/$tag.d.log")"
	fl_target_stop
	fl_daemon_stop
	after=$(dbsize)
	ticks=$(fl_json_num "$WORK/$tag.json" samples)
	tsamples=$(sqlite3 "$FL_DB" "SELECT thread_samples FROM sessions") ||
		fl_die "sqlite3 cannot read $FL_DB"
	echo "$tag $secs perch $((after - EMPTY)) $tsamples $ticks"
	echo "$tag $secs perf-g $(fsize "$WORK/$tag.g.data") $(perf_samples "$WORK/$tag.g.log") -"
	echo "$tag $secs perf-dwarf $(fsize "$WORK/$tag.d.data") $(perf_samples "$WORK/$tag.d.log") -"
	rm -f "$WORK/$tag".*
}

fl_need sqlite3
# What a new database weighs before its first session (schema, WAL header).
fl_daemon_start empty
fl_daemon_stop
EMPTY=$(dbsize)
for r in $(seq $ROUNDS); do
	if [ $((r % 2)) = 1 ]; then
		one_run s$r $SHORT; one_run l$r $LONG
	else
		one_run l$r $LONG; one_run s$r $SHORT
	fi
done >"$WORK/runs.txt"

# Per recorder: over the long runs, bytes/sample and bytes/s (median,
# min–max over rounds); marginal bytes/sample from each round's long−short.
summary()
{
	awk -v rec="$1" -v long=$LONG '
		$3 != rec { next }
		{ r = substr($1, 2); k = substr($1, 1, 1); b[k, r] = $4; n[k, r] = $5; rounds[r] = 1 }
		END {
			for (r in rounds) {
				printf "%s %s %s %s %s\n", b["l", r], n["l", r], b["l", r] / n["l", r],
					b["l", r] / long, (b["l", r] - b["s", r]) / (n["l", r] - n["s", r])
			}
		}' "$WORK/runs.txt"
}
col() { summary "$1" | awk -v c="$2" '{ print $c }' | fl_stats; }

echo "### Table 5: storage, perch's database against perf.data"
echo
echo "| recorder | samples in ${LONG} s | growth, bytes | bytes / sample | bytes / s | marginal bytes / sample |"
echo "|---|---|---|---|---|---|"
for rec in perch perf-g perf-dwarf; do
	read -r bm _ _ <<<"$(col $rec 1)"
	read -r nm _ _ <<<"$(col $rec 2)"
	read -r pm plo phi <<<"$(col $rec 3)"
	read -r sm slo shi <<<"$(col $rec 4)"
	read -r mm mlo mhi <<<"$(col $rec 5)"
	case $rec in
	perch) label="perch (one sample = one thread at one tick)" ;;
	perf-g) label='`perf record -g`' ;;
	*) label='`perf record --call-graph dwarf`' ;;
	esac
	printf '| %s | %.0f | %.0f | %.1f (%.1f–%.1f) | %.0f (%.0f–%.0f) | %.1f (%.1f–%.1f) |\n' \
		"$label" $nm $bm $pm $plo $phi $sm $slo $shi $mm $mlo $mhi
	eval "b_${rec//-/_}=$pm s_${rec//-/_}=$sm m_${rec//-/_}=$mm"
done
read -r cpus _ _ <<<"$(awk -v l=$LONG -v r=$RATE '$3 == "perf-g" && $2 == l { print $5 / l / r }' "$WORK/runs.txt" | fl_stats)"
read -r ticks _ _ <<<"$(awk -v l=$LONG '$3 == "perch" && $2 == l { print $6 }' "$WORK/runs.txt" | fl_stats)"
read -r rg rd sg sd mg md <<<"$(awk -v p=$b_perch -v g=$b_perf_g -v d=$b_perf_dwarf \
	-v ps=$s_perch -v gs=$s_perf_g -v ds=$s_perf_dwarf \
	-v pm=$m_perch -v gm=$m_perf_g -v dm=$m_perf_dwarf 'BEGIN {
	printf "%.0f %.0f %.1f %.0f %.0f %.0f\n", g / p, d / p, gs / ps, ds / ps, gm / pm, dm / pm }')"
cat <<EOF

\`tests/targets/burner\` (2 threads spinning, main thread blocked in \`read\`)
recorded at $RATE Hz by perch, \`perf record -F $RATE -g\` and \`perf record -F
$RATE --call-graph dwarf\`, all three on the same process over the same window
($LONG s, and $SHORT s for the marginal column); $ROUNDS rounds, medians
(min–max).  perch's growth is the bytes its database's pages use after the
session minus what a new database's use (SQLite's \`dbstat\`: page size minus
unused bytes; the file itself grows in whole pages, and not at all while a
short session fits in the pages a new file already has); perf's is the whole
\`perf.data\`.  The sample counts differ in kind: perch stores every thread at
every tick, running or not ($ticks ticks × 3 threads, wall-clock time); perf
samples CPU time (the two spinning threads), so its bytes per second grow
with the CPU the target gets: $(printf %.2f $cpus) CPUs in this run (perf
samples / s / $RATE; 2 on an idle machine).  *Marginal* is (long − short)
bytes ÷ (long − short) samples: the cost of one more sample, without each
file's fixed part (perch: schema pages and the session's frames; perf: header,
mmap events, build ids).  \`perf -g\` unwinds with frame pointers, which the
burner (like most Debian binaries) does not keep, so its chains are short
and its files small; \`--call-graph dwarf\` copies 8 KiB of stack per sample.
The synthetic 1M-sample session of \`bench_storage\` (BENCHMARKS.md §3) gives
4.4 bytes/sample for perch's format at scale.

Per sample, perf -g uses **${rg}×** and perf dwarf **${rd}×** perch's bytes
(marginal: ${mg}× and ${md}×); per second of recording, **${sg}×** and
**${sd}×**.
EOF
fl_footer "$LOAD0"
