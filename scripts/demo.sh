#!/bin/sh
# Profiles the bundled demo program (tests/targets/burner: two threads
# splitting their CPU time 75/25 between burn_alpha and burn_beta) with the
# engine, through `perch dump`.
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

echo "== perch dump -p $pid (demo program: 2 threads burning CPU 75/25 in burn_alpha/burn_beta)"
"$perch" dump -p "$pid"
