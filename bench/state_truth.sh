#!/bin/bash
# bench/state_truth.sh BUILD_DIR [--quick]: is perch's state at each tick
# the thread's real state at that instant?  redis-server's main thread
# under 20 redis-benchmark clients, recorded by perch while perf records
# the same thread's context switches (a dummy event with --switch-events,
# CLOCK_MONOTONIC times); bench_state_truth compares each stored sample,
# at its due time, with the last switch before it.  Also shows why
# comparing perch's running share with schedstat's over the whole
# `perch record` (bench/running_share.sh) is not a per-tick truth: the
# window is not the ticks' span, and schedstat counts a context switch's
# own time as the thread's; windows without perch (nothing on the thread,
# then perf's own cpu-clock sampling) show how much of that the sampling
# event itself adds.  Prints one markdown section.
set -u
. "$(dirname "$0")/fidelity_lib.sh"

[ $# -ge 1 ] || { echo "usage: bench/state_truth.sh BUILD_DIR [--quick]" >&2; exit 2; }
fl_setup state_truth "$1"
TRUTH=$FL_BUILD/bench/bench_state_truth
[ -x "$TRUTH" ] || fl_die "build bench_state_truth first"
fl_need perf redis-server redis-benchmark redis-cli
LOAD0=$(fl_load)
if [ "${2:-}" = --quick ]; then
	ROUNDS=1 SECS=1 RATES=99
else
	ROUNDS=2 SECS=5 RATES="99 999"
fi

# The main thread's run time (ns) and the realtime clock, read together.
thread_sched()
{
	echo "$(cut -d' ' -f1 "/proc/$1/task/$1/schedstat") $(date +%s%N)"
}

fl_daemon_start s
# switches_start SW: perf records the thread's switches into SW.data; then,
# a second later, the window opens (run0, real0).  switches_end SW closes
# it (run1, real1) and leaves the switches as text in SW.txt.
switches_start()
{
	perf record -q -m 1024 -e dummy --switch-events -k CLOCK_MONOTONIC -t "$rpid" \
		-o "$1.data" -- sleep $((SECS + 3)) >"$1.log" 2>&1 &
	pp=$!
	sleep 1
	read -r run0 real0 <<<"$(thread_sched "$rpid")"
}
switches_end()
{
	read -r run1 real1 <<<"$(thread_sched "$rpid")"
	wait $pp || fl_die "perf record failed: $(cat "$1.log")"
	perf script --ns --show-switch-events --show-lost-events -F time,event -i "$1.data" \
		>"$1.txt" 2>/dev/null || fl_die "perf script failed"
	rm -f "$1.data"
}
# schedstat's on-a-CPU share over the window.
sched_on()
{
	awk -v a=$run0 -v b=$run1 -v s=$real0 -v e=$real1 \
		'BEGIN { printf "sched_on=%.4f", (b - a) / (e - s) }'
}

fl_redis_start
rpid=$FL_RPID
sleep 1
for hz in $RATES; do
	for r in $(seq $ROUNDS); do
		sw=$WORK/sw.$hz.$r
		switches_start "$sw"
		fl_record "$rpid" "$SECS" "$hz" "$WORK/rec.json"
		switches_end "$sw"
		sid=$(fl_json_num "$WORK/rec.json" session)
		line=$("$TRUTH" "$FL_DB" "$sid" "$rpid" "$sw.txt" "$real0" "$real1") ||
			fl_die "bench_state_truth failed"
		echo "$hz $r $line $(sched_on)" >>"$WORK/rows"
	done
done
# The same window comparison without perch: nothing else on the thread,
# then perf's own sampling of it (a cpu-clock event, as perch's), to show
# what schedstat charges the thread around its switches.
if [ "${2:-}" != --quick ]; then
	for mode in nothing 99 999; do
		sw=$WORK/sw.$mode
		switches_start "$sw"
		if [ $mode = nothing ]; then
			sleep "$SECS"
		else
			perf record -q -e cpu-clock -F $mode -g -t "$rpid" -o "$WORK/cc.data" \
				-- sleep "$SECS" >"$WORK/cc.log" 2>&1 ||
				fl_die "perf record -e cpu-clock failed: $(cat "$WORK/cc.log")"
			rm -f "$WORK/cc.data"
		fi
		switches_end "$sw"
		line=$("$TRUTH" --window "$sw.txt" "$real0" "$real1") ||
			fl_die "bench_state_truth --window failed"
		echo "$mode $line $(sched_on)" >>"$WORK/base"
	done
fi
fl_redis_stop
fl_daemon_stop

# field NAME LINE: the value of NAME=... in LINE.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

echo "### Table 7 (e): the state at each tick against the thread's own switches"
echo
echo "redis-server's main thread under 20 \`redis-benchmark\` clients; $ROUNDS rounds of"
echo "${SECS} s a rate.  *Agree*: ticks whose stored state is the thread's state at"
echo "the tick's due time by its context switches (\`perf record -e dummy"
echo "--switch-events\`): R on a CPU, W switched out while runnable, any other"
echo "letter switched out asleep.  On a CPU: the thread's share of time, by its"
echo "switches over the ticks' span and over the whole \`perch record\` window, and"
echo "by schedstat over that window."
echo
echo "| Hz | round | switch records lost | ticks | agree | R: perch / switches | W: perch / switches | on a CPU, ticks' span | on a CPU, window: switches / schedstat |"
echo "|---|---|---|---|---|---|---|---|---|"
while read -r hz r rest; do
	printf '| %s | %s | %s | %s | %.1f %% | %.3f / %.3f | %.3f / %.3f | %.3f | %.3f / %.3f |\n' \
		"$hz" "$r" "$(field lost "$rest")" "$(field ticks "$rest")" "$(awk -v a="$(field agree "$rest")" 'BEGIN { print a * 100 }')" \
		"$(field perch_r "$rest")" "$(field true_r "$rest")" \
		"$(field perch_w "$rest")" "$(field true_w "$rest")" \
		"$(field span_on "$rest")" "$(field window_on "$rest")" "$(field sched_on "$rest")"
done <"$WORK/rows"
echo
# Rows whose truth has gaps (perf lost records) are left out of the medians.
awk '$3 == "lost=0"' "$WORK/rows" >"$WORK/judged"
[ -s "$WORK/judged" ] || fl_die "perf lost switch records in every round"
read -r am alo ahi <<<"$(while read -r hz r rest; do awk -v a="$(field agree "$rest")" 'BEGIN { print a * 100 }'; done <"$WORK/judged" | fl_stats)"
read -r dm dlo dhi <<<"$(while read -r hz r rest; do awk -v a="$(field perch_r "$rest")" -v b="$(field true_r "$rest")" 'BEGIN { print a - b }'; done <"$WORK/judged" | fl_stats)"
read -r gm glo ghi <<<"$(while read -r hz r rest; do awk -v a="$(field sched_on "$rest")" -v b="$(field window_on "$rest")" 'BEGIN { print a - b }'; done <"$WORK/judged" | fl_stats)"
printf 'Agreement, median (min–max) over the rows without lost records: **%.1f %%** (%.1f–%.1f); perch R − R by the switches at the same ticks %+.3f (%+.3f – %+.3f); schedstat − switches over the same window %+.3f (%+.3f – %+.3f).\n' \
	"$am" "$alo" "$ahi" "$dm" "$dlo" "$dhi" "$gm" "$glo" "$ghi"
if [ -s "$WORK/base" ]; then
	echo
	echo "Without perch, ${SECS} s windows on the same server: on a CPU by the thread's switches and by schedstat."
	echo
	echo "| on the thread | switch records lost | switches | schedstat | schedstat − switches |"
	echo "|---|---|---|---|---|"
	while read -r mode rest; do
		[ $mode = nothing ] && what="nothing but the switch records" ||
			what="\`perf record -e cpu-clock -F $mode -g\`"
		printf '| %s | %s | %.3f | %.3f | %+.3f |\n' "$what" "$(field lost "$rest")" \
			"$(field window_on "$rest")" "$(field sched_on "$rest")" \
			"$(awk -v a="$(field sched_on "$rest")" -v b="$(field window_on "$rest")" 'BEGIN { print a - b }')"
	done <"$WORK/base"
fi
fl_footer "$LOAD0"
