#!/bin/bash
# bench/switch_cost.sh BUILD_DIR [ROUNDS]: what a profiler adds to each
# context switch of the threads it samples.  Not one of issue 5's tables:
# servers switch often (redis-server's main thread ~9 500 times a second in
# table 7 (e)), and what each switch costs them is part of tables 3's loss.
#
# tests/targets/pingpong, pinned to one CPU (taskset -c 0): two threads
# handing a token back and forth, nothing but context switches, two per
# round trip; 4 s from 1 s after "ready", its own count of round trips.
# Modes, interleaved (order rotated each round):
#   none            nothing attached;
#   perf-switch     `perf record -e dummy --switch-events`: perf events that
#                   only record each switch (what perch's switch watches are);
#   perf-g          `perf record -F 99 -g` (perf's sampling, cpu-clock here);
#   perf-g-attached the same attached to the running program (-p), as perch
#                   attaches (a run where perf recorded nothing is dropped);
#   perch           `perch record -r 99 -p` (its kernel samplers: task-clock
#                   events with switch records, and switch watches);
#   perch-ptrace    `perch record -r 99 --ptrace-only -p` (no perf event on a
#                   thread found running; watches on quiet ones).
# perf starts the program but in perf-g-attached (attaching perf 6.1 to a
# running multi-threaded process fails intermittently on this machine, so
# tables 2 and 3 let perf start it: its events are then inherited), perch
# and perf-g-attached attach to it during the second before the timed part.
# The kernel switches two threads whose events were inherited from one
# parent by swapping their contexts, without scheduling the events out and
# in; threads attached one by one have contexts of their own.  Extra per
# switch = (1 / rate − 1 / the same round's unprofiled rate) / 2, µs.
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

PERCH_BUILD=$(cd "${1:?usage: bench/switch_cost.sh BUILD_DIR [ROUNDS]}" && pwd)
rounds=${2:-5}
pingpong=$PERCH_BUILD/tests/targets/pingpong
perch=$PERCH_BUILD/client/perch
[ -x "$pingpong" ] || { echo "build tests/targets/pingpong first" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 2; }

work=$(mktemp -d /tmp/perch-bench-switch-XXXXXX)
res=$work/results
trap 'perchd_stop; rm -rf "$work"' EXIT
perchd_start "$work" || exit 1
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# One run of MODE in round R: records the round trips a second.
run() {
	local r=$1 mode=$2 out=$work/out pid prof=""
	local prog=(taskset -c 0 "$pingpong" --seconds 4 --delay 1)

	: >"$out"
	case $mode in
	perf-switch) perf record -q -e dummy --switch-events -o "$work/perf.data" -- \
		"${prog[@]}" >"$out" 2>"$work/perf.log" & ;;
	perf-g) perf record -q -F 99 -g -o "$work/perf.data" -- \
		"${prog[@]}" >"$out" 2>"$work/perf.log" & ;;
	*) "${prog[@]}" >"$out" & ;;
	esac
	pid=$!
	if ! wait_line "$out" ready 10; then
		bench_log "pingpong did not start ($mode)"
		kill "$pid" 2>/dev/null
		wait "$pid"
		return
	fi
	case $mode in
	# taskset execs pingpong: $pid is the program's own.
	perch) "$perch" record -p "$pid" -r 99 --no-autostart \
		>"$work/perch.log" 2>&1 & prof=$! ;;
	perch-ptrace) "$perch" record -p "$pid" -r 99 --ptrace-only \
		--no-autostart >"$work/perch.log" 2>&1 & prof=$! ;;
	perf-g-attached) perf record -q -F 99 -g -p "$pid" -o "$work/perf.data" -- sleep 6 \
		>"$work/perf.log" 2>&1 & prof=$! ;;
	esac
	wait "$pid"
	if [ "$mode" = perf-g-attached ]; then
		kill -INT "$prof" 2>/dev/null
		wait "$prof"
		if [ "$(perf report -i "$work/perf.data" --stdio 2>/dev/null |
			sed -n 's/^# Samples: \([0-9]*\).*/\1/p' | head -1)" -lt 100 ] 2>/dev/null; then
			bench_log "perf -p recorded next to nothing: run dropped"
			rm -f "$work/perf.data"
			return
		fi
	elif [ -n "$prof" ]; then
		wait "$prof"
	fi
	result_add "$res" "$mode" "$(sed -n 's/.*per_second=\([0-9]*\).*/\1/p' "$out")"
	result_add "$res" "$mode.$r" "$(sed -n 's/.*per_second=\([0-9]*\).*/\1/p' "$out")"
	rm -f "$work/perf.data"
}

modes="none perf-switch perf-g perf-g-attached perch perch-ptrace"
interleave "$rounds" run $modes

echo "### What a profiler adds to a context switch"
echo
echo "\`tests/targets/pingpong\` pinned to one CPU: two threads handing a token" \
	"back and forth through eventfds, 4 s; $rounds rounds, modes interleaved (order" \
	"rotated each round); round trips a second, median (min–max); extra per switch =" \
	"(1 / rate − 1 / the same round's unprofiled rate) / 2, µs, median (min–max)."
echo
echo "| mode | round trips / s | extra per switch, µs |"
echo "|---|---|---|"
for m in $modes; do
	extra=$(for r in $(seq 0 $((rounds - 1))); do
		a=$(result_get "$res" "none.$r") b=$(result_get "$res" "$m.$r")
		[ -n "$a" ] && [ -n "$b" ] &&
			awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f\n", (1 / b - 1 / a) / 2 * 1e6 }'
	done | summary %.2f)
	[ "$m" = none ] && extra=0
	echo "| $m | $(result_get "$res" "$m" | summary %.0f) | $extra |"
done
echo
echo "Run: $(date -u '+%Y-%m-%d %H:%M') UTC, \`bench/switch_cost.sh BUILD_DIR $rounds\`," \
	"load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
