#!/bin/sh
# perchd's CPU per session, one daemon, several sessions in a row: the first
# pays for loading the symbols of the target's libraries (libdw inflating
# compressed debug files), the later ones reuse them (shared per build-id,
# daemon/symbolizer.h).  Each session: a fresh `burner --threads THREADS`,
# `perch record -r RATE -d SECS`; perchd's utime+stime from /proc (10 ms
# resolution) before and after.  Root, and a build:
#
#   bench/startup.sh [BUILD_DIR] [SESSIONS] [SECS] [THREADS] [RATE]
set -eu
build=${1:-build}; sessions=${2:-5}; secs=${3:-1}; threads=${4:-4}; rate=${5:-99}
dir=$(mktemp -d)
"$build/daemon/perchd" --foreground --socket "$dir/s" --db "$dir/db" 2>/dev/null &
pd=$!
trap 'kill $pd 2>/dev/null; wait $pd 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5
cpu() { awk '{ print ($14 + $15) * 10 }' /proc/$pd/stat; }
i=1
while [ $i -le "$sessions" ]; do
	"$build/tests/targets/burner" --threads "$threads" --seconds $((secs + 2)) >/dev/null &
	bp=$!
	sleep 0.3
	c0=$(cpu)
	PERCH_SOCKET=$dir/s "$build/client/perch" record --no-autostart -p $bp -r "$rate" \
		-d "$secs" --json >/dev/null
	echo "session $i: perchd $(( $(cpu) - c0 )) ms of CPU"
	wait $bp
	i=$((i + 1))
done
