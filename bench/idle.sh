#!/bin/bash
# bench/idle.sh BUILD_DIR [--quick]: BENCHMARKS.md table 4, perch's cost per
# tick against the number of idle threads.  Prints one markdown section.
#
# Two measurements of the same thing, on tests/targets/threads with 2 busy
# threads and 2, 16 or 64 idle ones (blocked on a condition variable, i.e.
# in futex_wait):
#  - the engine alone: bench_idle times target_sample() (the sampling
#    thread's CPU time and the call's wall time), rounds interleaved;
#  - perchd end to end: the CPU time of all of perchd's threads
#    (/proc/PID/task/*/schedstat, in ns) over a window of a real session,
#    divided by the ticks taken in that window (perch status).
set -u
. "$(dirname "$0")/fidelity_lib.sh"

[ $# -ge 1 ] || { echo "usage: bench/idle.sh BUILD_DIR [--quick]" >&2; exit 2; }
fl_setup idle "$1"
LOAD0=$(fl_load)
[ "${2:-}" = --quick ] && FL_QUICK=1
QUICK=0
[ "${2:-}" = --quick ] && QUICK=1
BENCH=$FL_BUILD/bench/bench_idle
[ -x "$BENCH" ] || fl_die "build bench_idle first"

IDLE="2 16 64"
if [ $QUICK = 1 ]; then
	ROUNDS=1 TICKS=80 DROUNDS=1 WINDOW=1
else
	ROUNDS=4 TICKS=250 DROUNDS=3 WINDOW=2
fi

"$BENCH" --rounds $ROUNDS --ticks $TICKS --idle "${IDLE// /,}" >"$WORK/engine.txt" ||
	fl_die "bench_idle failed"
# For comparison: the engine reading every blocked thread's schedstat at
# every tick, as before switch watches (docs/DESIGN.md, "Idle threads").
"$BENCH" --rounds $ROUNDS --ticks $TICKS --idle "${IDLE// /,}" --no-switchwatch \
	>"$WORK/noswitch.txt" || fl_die "bench_idle --no-switchwatch failed"

# One perchd session per (round, idle count), counts rotated per round.
# The window starts 1 s after the session's first tick, once the first
# ticks have warmed the caches; the session is stopped after the window.
status() {
	PERCH_SOCKET=$FL_SOCK PERCH_DB=$FL_DB "$PERCH" status --json |
		sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
# session_start IDLE: the target with IDLE idle threads and a session of
# it, 1 s in; sets rec (perch record's pid) and sid.  session_end stops both.
session_start()
{
	local t

	fl_target_start threads --threads $(($1 + 2)) --busy 2
	fl_record "$FL_TPID" 120 99 "$WORK/rec.json" &
	rec=$!
	for t in $(seq 200); do
		[ "$(status samples)" -gt 0 ] 2>/dev/null && break
		sleep 0.05
	done
	sid=$(status session)
	[ -n "$sid" ] || fl_die "the session did not start"
	sleep 1
}
session_end()
{
	PERCH_SOCKET=$FL_SOCK PERCH_DB=$FL_DB "$PERCH" stop "$sid" >/dev/null
	wait $rec || fl_die "perch record failed"
	fl_target_stop
}
fl_daemon_start d
set -- $IDLE
for r in $(seq $DROUNDS); do
	for i in $IDLE; do
		session_start $i
		c0=$(fl_task_cpu_ns "$FL_DPID") s0=$(status samples)
		sleep $WINDOW
		c1=$(fl_task_cpu_ns "$FL_DPID") s1=$(status samples)
		session_end
		[ -n "$s0" ] && [ -n "$s1" ] && [ "$s1" -gt "$s0" ] ||
			fl_die "no ticks in the window (samples $s0 -> $s1)"
		echo "$i $(( (c1 - c0) / (s1 - s0) ))" >>"$WORK/perchd.txt"
	done
	set -- "${@:2}" "$1"
	IDLE="$*"
done
# Where perchd's time goes at 2 and at 64 idle threads: perf's flat profile
# of the whole daemon (it keeps no frame pointers: self time only) over
# PWIN s of a session, as microseconds a tick per symbol.
PFREQ=20000 PWIN=10
profile()
{
	local i=$1 s0 s1

	session_start $i
	s0=$(status samples)
	perf record -q -F $PFREQ -p "$FL_DPID" -o "$WORK/prof.data" -- sleep $PWIN \
		>"$WORK/prof.log" 2>&1 || fl_die "perf record -p perchd failed: $(cat "$WORK/prof.log")"
	s1=$(status samples)
	session_end
	perf report -i "$WORK/prof.data" --no-children --sort sym --stdio -n 2>/dev/null |
		awk -v t=$((s1 - s0)) -v f=$PFREQ '/^ +[0-9.]+%/ {
			n = $2; $1 = $2 = $3 = ""; sub(/^ +/, "")
			printf "%s\t%.4f\n", $0, n * 1e6 / f / t }' >"$WORK/prof.$i"
}
if [ $QUICK = 0 ] && command -v perf >/dev/null 2>&1; then
	profile 2
	profile 64
fi
fl_daemon_stop

# Table rows: engine medians (min–max over rounds) and perchd's.
field() { sed -n "s/^idle=$1 .*$2=\([^ ]*\).*/\1/p" "${3:-$WORK/engine.txt}"; }
echo "### Table 4: cost per tick against idle threads (futex)"
echo
echo "| idle threads | threads per tick (stopped / blocked read / reused, of them watched) | engine CPU per tick, µs | engine wall per tick, µs | target pause per tick, µs | perchd CPU per tick, µs | idle wake-ups | engine CPU per tick without watches, µs |"
echo "|---|---|---|---|---|---|---|---|"
for i in 2 16 64; do
	IFS=, read -r cm clo chi <<<"$(field $i cpu_us)"
	IFS=, read -r wm wlo whi <<<"$(field $i wall_us)"
	IFS=, read -r nm nlo nhi <<<"$(field $i cpu_us "$WORK/noswitch.txt")"
	read -r dm dlo dhi <<<"$(awk -v i=$i '$1 == i { print $2 / 1000 }' "$WORK/perchd.txt" | fl_stats)"
	printf '| %s | %s (%s / %s / %s, %s) | %.1f (%.1f–%.1f) | %.0f (%.0f–%.0f) | %.0f | %.0f (%.0f–%.0f) | %s | %.1f (%.1f–%.1f) |\n' \
		$i "$(field $i threads)" "$(field $i stopped)" "$(field $i blocked)" \
		"$(field $i reused)" "$(field $i watched)" $cm $clo $chi $wm $wlo $whi \
		"$(field $i pause_us)" $dm $dlo $dhi "$(field $i wakeups)" $nm $nlo $nhi
	eval "c$i=$cm d$i=$(printf %.0f "$dm")"
done
echo
read -r rc rd per met <<<"$(awk -v c2=$c2 -v c64=$c64 -v d2=$d2 -v d64=$d64 'BEGIN {
	# "Must not grow": within 20 % (the noise of this machine) at 64 idle.
	printf "%.2f %.2f %.1f %s\n", c64 / c2, d64 / d2, (c64 - c2) / 62,
		c64 / c2 <= 1.2 && d64 / d2 <= 1.2 ? "Met" : "Missed"
}')"
cat <<EOF
The target is \`tests/targets/threads\` with 2 threads spinning and 2, 16 or
64 threads blocked on a condition variable (futex), plus its main thread
blocked in \`read\`; one process at a time, 99 Hz.  *Engine*: \`bench_idle\`
calls \`target_sample()\` $TICKS times per process after 5 warm-up ticks and
takes the median CPU time of the sampling thread (\`CLOCK_THREAD_CPUTIME_ID\`)
and wall time per call; $ROUNDS rounds, idle counts in rotating order; median
of the round medians (min–max).  *perchd*: CPU time of all of perchd's
threads (\`/proc/PID/task/*/schedstat\`) over $WINDOW s of a real \`perch
record\` session, from 1 s in, divided by the ticks taken in that window;
$DROUNDS rounds.  Pause and wall time per tick grow whenever the machine is
busy (a spinning target thread must get a CPU to reach its stop); they are
shown, not judged.  Idle wake-ups: spurious returns from the futex wait that
the target counted (0: perch never woke an idle thread).  *Watched*: idle
threads proven not to have run by their switch watch, without any system
call (docs/DESIGN.md, "Idle threads"); the last column is the engine with
\`--no-switchwatch\`, reading every blocked thread's \`schedstat\` at every
tick instead, in the same run right after.

Target (issue 5): the per-tick cost must not grow with the idle threads
(taken here as: 64 idle ≤ 1.2× 2 idle).  **$met**: engine CPU per tick
64 idle / 2 idle = **${rc}×** ($c2 → $c64 µs; 16 idle: $c16 µs), perchd
**${rd}×** ($d2 → $d64 µs); about $per µs of engine CPU per idle thread per
tick.
EOF
if [ -s "$WORK/prof.2" ] && [ -s "$WORK/prof.64" ]; then
	echo
	echo "Where perchd's CPU per tick goes, 2 against 64 idle threads: \`perf record -F $PFREQ -p PERCHD\`"
	echo "over $PWIN s of a session each, self time by symbol in µs a tick (perf's own"
	echo "interrupts make everything dearer, cache misses most: compare the columns"
	echo "with each other, not with the table above); the symbols whose cost grew most:"
	echo
	echo "| symbol | 2 idle | 64 idle | difference |"
	echo "|---|---|---|---|"
	awk -F'\t' 'FNR == NR { a[$1] = $2; next } { b[$1] = $2 }
		END {
			for (k in a) { ta += a[k]; if (!(k in b)) b[k] = 0 }
			for (k in b) { tb += b[k]; if (!(k in a)) a[k] = 0 }
			for (k in b) printf "%.4f\t%s\t%.2f\t%.2f\n", b[k] - a[k], k, a[k], b[k]
			printf "%.4f\t%s\t%.2f\t%.2f\n", -1e9, "all symbols", ta, tb
		}' "$WORK/prof.2" "$WORK/prof.64" | sort -t"$(printf '\t')" -k1,1gr |
		awk -F'\t' 'NR <= 12 || $2 == "all symbols" {
			printf "| %s | %.2f | %.2f | %+.2f |\n", ($2 == "all symbols" ? "**all symbols**" : "`" $2 "`"), $3, $4, $4 - $3 }'
fi
fl_footer "$LOAD0"
