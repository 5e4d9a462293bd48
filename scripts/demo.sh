#!/bin/sh
# Profiles the bundled demo program (tests/targets/burner: two threads
# spending 75 % of their CPU in burn_alpha and 25 % in burn_beta) the way
# perch is meant to be used: `perch record` (which starts the daemon with the
# default socket and database if none runs), then a report and a dump.
set -eu

build=${1:-build}
burner="$build/tests/targets/burner"
perch="$build/client/perch"
fifo=$(mktemp -u /tmp/perch-demo.XXXXXX)

mkfifo "$fifo"
# The demo reads its stdin until EOF: holding the fifo open keeps it alive,
# and closing it (on any exit of this script) ends it.
"$burner" --threads 2 <"$fifo" >/dev/null &
pid=$!
exec 3>"$fifo"
rm -f "$fifo"
trap 'exec 3>&-; wait $pid 2>/dev/null || true' EXIT
sleep 0.5

echo "== perch record -p $pid -d 5   (demo program: 2 threads, 75/25 in burn_alpha/burn_beta)"
"$perch" record -p "$pid" -d 5
echo
echo "== perch flat last -n 5"
"$perch" flat last -n 5
echo
echo "== perch dump -p $pid   (one stack of every thread, now; no daemon needed)"
"$perch" dump -p "$pid"
