#!/bin/bash
# bench/running_share.sh BUILD_A BUILD_B [ROUNDS=3] [SECS=5] [HZ=99]: how
# often two builds of perch find redis-server running, against the time
# the kernel says it spent on a CPU and waiting for one.  redis-server on a
# private loopback port under 20 redis-benchmark clients; one perchd per
# build, each with its own database; rounds of SECS-second recordings, A
# then B, so that both see the same load.  Prints one markdown table (per
# round and medians).  docs/DESIGN.md, "The state at the due time", cites
# it.  Its window is the whole `perch record`, and schedstat charges the
# thread with the kernel's work around its switches: the difference it
# shows is not misjudged ticks.  bench/state_truth.sh checks each tick.
set -u
. "$(dirname "$0")/fidelity_lib.sh"

[ $# -ge 2 ] || { echo "usage: bench/running_share.sh BUILD_A BUILD_B [ROUNDS] [SECS] [HZ]" >&2; exit 2; }
ROUNDS=${3:-3} SECS=${4:-5} HZ=${5:-99}
fl_setup running_share "$1"
A_PERCH=$PERCH A_PERCHD=$PERCHD
B_BUILD=$(cd "$2" 2>/dev/null && pwd) || fl_die "no build directory '$2'"
B_PERCH=$B_BUILD/client/perch B_PERCHD=$B_BUILD/daemon/perchd
[ -x "$B_PERCH" ] && [ -x "$B_PERCHD" ] || fl_die "build $B_BUILD first"
fl_need redis-server redis-benchmark redis-cli sqlite3
LOAD0=$(fl_load)

fl_daemon_start a
A_SOCK=$FL_SOCK A_DB=$FL_DB
PERCHD=$B_PERCHD fl_daemon_start b
B_SOCK=$FL_SOCK B_DB=$FL_DB

fl_redis_start
rpid=$FL_RPID
sleep 1

# one SIDE ROUND: prints "side round running(R) waiting(W) on_cpu waiting".
one()
{
	local side=$1 r=$2 s0 s1 sid db

	if [ "$side" = A ]; then
		PERCH=$A_PERCH FL_SOCK=$A_SOCK FL_DB=$A_DB db=$A_DB
	else
		PERCH=$B_PERCH FL_SOCK=$B_SOCK FL_DB=$B_DB db=$B_DB
	fi
	s0=$(fl_sched $rpid)
	fl_record $rpid "$SECS" "$HZ" "$WORK/$side$r.json"
	s1=$(fl_sched $rpid)
	sid=$(fl_json_num "$WORK/$side$r.json" session)
	# Running samples per tick: the server has one thread.
	sqlite3 -readonly -separator ' ' "$db" "SELECT
		(SELECT COALESCE(SUM(samples), 0) FROM counts WHERE session_id = $sid AND state = 'R'),
		(SELECT COALESCE(SUM(samples), 0) FROM counts WHERE session_id = $sid AND state = 'W'),
		samples FROM sessions WHERE id = $sid" |
		awk -v s="$s0 $s1" -v side=$side -v r=$r '{ split(s, v, " "); t = v[6] - v[3]
			printf "%s %d %.3f %.3f %.3f %.3f\n", side, r, $1 / $3, $2 / $3,
				(v[4] - v[1]) / t, (v[5] - v[2]) / t }'
}

for r in $(seq "$ROUNDS"); do
	one A $r
	one B $r
done >"$WORK/rows"
fl_redis_stop

echo "### redis-server: running samples per tick against schedstat"
echo
echo "A = \`$1\`, B = \`$2\`; $ROUNDS rounds of ${SECS} s at $HZ Hz, A then B."
echo
echo "perch R: ticks that found the server on a CPU (or, before state W existed"
echo "or judged from its stat, on a CPU or waiting for one); perch W: preempted"
echo "and waiting for a CPU.  Per tick; schedstat's shares of the window."
echo
echo "| build | round | perch R | perch W | on a CPU | waiting for one | R − on a CPU | R + W − (on a CPU + waiting) |"
echo "|---|---|---|---|---|---|---|---|"
awk '{ printf "| %s | %d | %.3f | %.3f | %.3f | %.3f | %+.3f | %+.3f |\n", $1, $2, $3, $4, $5, $6,
	$3 - $5, $3 + $4 - $5 - $6 }' "$WORK/rows"
for side in A B; do
	read -r med lo hi <<<"$(awk -v s=$side '$1 == s { print $3 - $5 }' "$WORK/rows" | fl_stats)"
	read -r med2 lo2 hi2 <<<"$(awk -v s=$side '$1 == s { print $3 + $4 - $5 - $6 }' "$WORK/rows" | fl_stats)"
	printf '| %s | median (min–max) | | | | | %+.3f (%+.3f – %+.3f) | %+.3f (%+.3f – %+.3f) |\n' \
		$side $med $lo $hi $med2 $lo2 $hi2
done
fl_footer "$LOAD0"
