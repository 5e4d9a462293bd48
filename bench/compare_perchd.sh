#!/bin/bash
# Two perchd binaries on the same burner, interleaved: how much work the
# target loses under each, and each daemon's CPU.  For judging a change to
# the engine on a noisy machine (the ratio comes from one run).
#
#   bench/compare_perchd.sh OLD_PERCHD BUILD_DIR [MODE...]
#
# MODE: none, old:HZ or new:HZ (new = BUILD_DIR/daemon/perchd; default
# modes: none old:999 new:999), optionally followed by :ptrace (the
# recording asks for --ptrace-only: new:999:ptrace against new:999 compares
# stopping running threads with kernel samples in one daemon).  Environment: THREADS (burner threads,
# default 4), SECONDS_EACH (3), ROUNDS (4).  Prints per mode the median
# work (units), slowdown against the same round's unprofiled run (points)
# and daemon CPU (% of one CPU), medians over rounds, with every round's
# values.
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

old=${1:?usage: bench/compare_perchd.sh OLD_PERCHD BUILD_DIR [MODE...]}
PERCH_BUILD=$(cd "${2:?usage: bench/compare_perchd.sh OLD_PERCHD BUILD_DIR [MODE...]}" && pwd)
shift 2
[ $# -gt 0 ] || set -- none old:999 new:999
threads=${THREADS:-4} secs=${SECONDS_EACH:-3} rounds=${ROUNDS:-4}
burner=$PERCH_BUILD/tests/targets/burner
perch=$PERCH_BUILD/client/perch

work=$(mktemp -d /tmp/perch-bench-compare-XXXXXX)
mkdir -p "$work/old" "$work/new"
"$old" --foreground --socket "$work/old/sock" --db "$work/old/db" 2>"$work/old/log" &
pid_old=$!
"$PERCH_BUILD/daemon/perchd" --foreground --socket "$work/new/sock" --db "$work/new/db" \
	2>"$work/new/log" &
pid_new=$!
trap 'kill $pid_old $pid_new 2>/dev/null; wait; rm -rf "$work"' EXIT
for s in "$work/old/sock" "$work/new/sock"; do
	for ((i = 0; i < 100; i++)); do [ -S "$s" ] && break; sleep 0.05; done
done

declare -A work_of cpu_of
for ((r = 0; r < rounds; r++)); do
	for mode in "$@"; do
		"$burner" --threads "$threads" --seconds "$secs" >"$work/out" &
		b=$!
		wait_line "$work/out" ready 10 || { kill "$b"; exit 1; }
		c0=0 c1=0
		if [ "$mode" != none ]; then
			IFS=: read -r which hz how <<<"$mode"
			[ "$which" = old ] && d=$pid_old || d=$pid_new
			c0=$(proc_cpu_s "$d")
			PERCH_SOCKET=$work/$which/sock "$perch" record -p "$b" -r "$hz" --json \
				--no-autostart ${how:+--ptrace-only} >"$work/prof" 2>&1 &
			p=$!
		fi
		wait "$b"
		if [ "$mode" != none ]; then
			wait "$p"
			c1=$(proc_cpu_s "$d")
		fi
		work_of[$mode.$r]=$(awk -F= '/_units=/ { w += $2 } END { print w + 0 }' "$work/out")
		cpu_of[$mode.$r]=$(awk -v a="$c0" -v b="$c1" -v s="$secs" 'BEGIN { print 100 * (b - a) / s }')
	done
done

echo "burner --threads $threads --seconds $secs, $rounds rounds"
for mode in "$@"; do
	w="" sd="" c=""
	for ((r = 0; r < rounds; r++)); do
		w="$w ${work_of[$mode.$r]}"
		c="$c ${cpu_of[$mode.$r]}"
		sd="$sd $(awk -v a="${work_of[none.$r]:-0}" -v b="${work_of[$mode.$r]}" \
			'BEGIN { if (a > 0) printf "%.1f", 100 * (1 - b / a); else print "nan" }')"
	done
	printf '%-10s work %s (%s)  slowdown %s (%s)  CPU %s (%s)\n' "$mode" \
		"$(echo $w | tr ' ' '\n' | median)" "$w" \
		"$(echo $sd | tr ' ' '\n' | median)" "$sd" \
		"$(echo $c | tr ' ' '\n' | median)" "$c"
done
