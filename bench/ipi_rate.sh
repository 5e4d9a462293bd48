#!/bin/bash
# bench/ipi_rate.sh OLD_PERCHD BUILD_DIR [THREADS=16] [ROUNDS=3]: the
# machine's function-call interrupts (CAL in /proc/interrupts) per second
# and perchd's CPU while perch records a CPU-bound burner at 999 Hz, with
# an older perchd and BUILD_DIR's in turn.  For changes that add or remove
# cross-CPU calls in perchd (setting a sampling period on a thread that is
# running elsewhere is one: docs/DESIGN.md, "Running threads: kernel
# samples").  Each run: a private perchd, a 6-s burner, a 5-s recording;
# counted over 3 s from 1 s in.
set -u
old=${1:?usage: bench/ipi_rate.sh OLD_PERCHD BUILD_DIR [THREADS] [ROUNDS]}
B=$(cd "${2:?usage: bench/ipi_rate.sh OLD_PERCHD BUILD_DIR [THREADS] [ROUNDS]}" && pwd)
threads=${3:-16} rounds=${4:-3}
work=$(mktemp -d /tmp/perch-ipi-XXXXXX)
trap 'rm -rf "$work"' EXIT
cal() { awk '/^ *CAL:/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n }' /proc/interrupts; }
cpu() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }

echo "burner --threads $threads at 999 Hz; $rounds rounds, old and new in turn"
echo
echo "| round | perchd | function-call interrupts / s | perchd CPU, 10-ms ticks in 3 s |"
echo "|---|---|---|---|"
for r in $(seq "$rounds"); do
	for side in old new; do
		d=$B/daemon/perchd
		[ $side = old ] && d=$old
		rm -rf "$work/run" && mkdir "$work/run"
		export PERCH_SOCKET=$work/run/s.sock PERCH_DB=$work/run/p.db
		"$d" --foreground --socket "$PERCH_SOCKET" --db "$PERCH_DB" 2>/dev/null &
		dp=$!
		for i in $(seq 50); do [ -S "$PERCH_SOCKET" ] && break; sleep 0.05; done
		"$B/tests/targets/burner" --threads "$threads" --seconds 6 >/dev/null &
		bp=$!
		sleep 0.3
		"$B/client/perch" record -p $bp -r 999 -d 5 --json --no-autostart >/dev/null &
		pp=$!
		sleep 1
		c0=$(cal) p0=$(cpu $dp)
		sleep 3
		c1=$(cal) p1=$(cpu $dp)
		wait $bp
		wait $pp
		kill $dp 2>/dev/null
		wait $dp 2>/dev/null
		echo "| $r | $side | $(( (c1 - c0) / 3 )) | $(( p1 - p0 )) |"
	done
done
echo
echo "Run: $(date -u '+%Y-%m-%d %H:%M') UTC, \`bench/ipi_rate.sh OLD_PERCHD BUILD_DIR $threads $rounds\`, load average $(cut -d' ' -f1 /proc/loadavg) at the end."
