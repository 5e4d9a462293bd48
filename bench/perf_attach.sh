#!/bin/bash
# bench/perf_attach.sh BUILD_DIR [THREADS=16] [ROUNDS=3]: what perf costs a
# CPU-bound burner when it starts it (`perf record -F 999 -g -- burner`, as
# table 2 runs it) and when it attaches to it running (`perf record -p`,
# as perch attaches), each round against an unprofiled run, with the
# samples perf recorded (3 s at 999 Hz on 2 CPUs is 6000: fewer attached
# means perf's own start-up took part of the window).
set -u
B=$(cd "${1:?usage: bench/perf_attach.sh BUILD_DIR [THREADS] [ROUNDS]}" && pwd)
threads=${2:-16} rounds=${3:-3}
burner=$B/tests/targets/burner
work=$(mktemp -d /tmp/perch-perf-attach-XXXXXX)
trap 'rm -rf "$work"' EXIT
units() { awk -F= '/_units=/ { w += $2 } END { print w + 0 }' "$1"; }
samples() { perf report -i "$1" --stats 2>/dev/null | awk '/SAMPLE events/ { print $3; exit }'; }

echo "burner --threads $threads --seconds 3; $rounds rounds"
echo
echo "| round | none (units) | perf started: lost %, samples | perf attached: lost %, samples |"
echo "|---|---|---|---|"
for r in $(seq "$rounds"); do
	"$burner" --threads "$threads" --seconds 3 >"$work/none"
	perf record -q -F 999 -g -o "$work/started.data" -- "$burner" --threads "$threads" \
		--seconds 3 >"$work/started" 2>/dev/null
	"$burner" --threads "$threads" --seconds 3 >"$work/attached" &
	bp=$!
	for i in $(seq 200); do grep -q ready "$work/attached" 2>/dev/null && break; sleep 0.01; done
	perf record -q -F 999 -g -o "$work/attached.data" -p $bp 2>/dev/null &
	pp=$!
	wait $bp
	sleep 0.2
	kill -INT $pp 2>/dev/null
	wait $pp 2>/dev/null
	n=$(units "$work/none") s=$(units "$work/started") a=$(units "$work/attached")
	awk -v r=$r -v n=$n -v s=$s -v a=$a -v ss="$(samples "$work/started.data")" \
		-v as="$(samples "$work/attached.data")" \
		'BEGIN { printf "| %d | %d | %.1f, %s | %.1f, %s |\n", r, n, 100 * (1 - s / n), ss, 100 * (1 - a / n), as }'
done
echo
echo "Run: $(date -u '+%Y-%m-%d %H:%M') UTC, \`bench/perf_attach.sh BUILD_DIR $threads $rounds\`, load average $(cut -d' ' -f1 /proc/loadavg) at the end."
