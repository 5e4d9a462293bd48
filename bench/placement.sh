#!/bin/bash
# bench/placement.sh BUILD_DIR [ROUNDS=3] [SECS=5] [HZ=99]: does it matter
# on which CPU perchd's sampler wakes?  redis-server pinned to CPU 0 and
# its 20 redis-benchmark clients to CPU 1, the worst case of
# docs/DESIGN.md, "Where the sampler runs": a sampler waking on the
# client's CPU preempts the client, the server drains its requests and
# sleeps, and a sampler that judges the server when it gets to it finds it
# asleep.  One perchd confined to CPU 1 (the client's), one to CPU 0 (the
# server's); each records the server with kernel samples (the default) and
# with --ptrace-only (judged at the look), in turn.  Prints, per way, the
# share of ticks that found the server on a CPU (R) against schedstat's
# share of the window it spent on one.  Needs 2 CPUs or more.
set -u
. "$(dirname "$0")/fidelity_lib.sh"

[ $# -ge 1 ] || { echo "usage: bench/placement.sh BUILD_DIR [ROUNDS] [SECS] [HZ]" >&2; exit 2; }
ROUNDS=${2:-3} SECS=${3:-5} HZ=${4:-99}
fl_setup placement "$1"
fl_need redis-server redis-benchmark redis-cli sqlite3 taskset
[ "$(nproc)" -ge 2 ] || fl_die "needs 2 CPUs"
LOAD0=$(fl_load)

# perchd confined to one CPU (exec: the daemon keeps the wrapper's pid).
for cpu in 0 1; do
	printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' $cpu "$PERCHD" >"$WORK/perchd-cpu$cpu"
	chmod +x "$WORK/perchd-cpu$cpu"
done
PERCHD=$WORK/perchd-cpu1 fl_daemon_start client
C_SOCK=$FL_SOCK C_DB=$FL_DB
PERCHD=$WORK/perchd-cpu0 fl_daemon_start server
S_SOCK=$FL_SOCK S_DB=$FL_DB

fl_redis_start
taskset -a -p -c 0 "$FL_RPID" >/dev/null || fl_die "cannot pin redis-server"
taskset -a -p -c 1 "$FL_BPID" >/dev/null || fl_die "cannot pin redis-benchmark"
rpid=$FL_RPID
sleep 1

# one WHERE HOW ROUND: prints "where how round perch_R on_cpu".
one()
{
	local where=$1 how=$2 r=$3 s0 s1 sid db flag=

	if [ "$where" = client ]; then
		FL_SOCK=$C_SOCK FL_DB=$C_DB db=$C_DB
	else
		FL_SOCK=$S_SOCK FL_DB=$S_DB db=$S_DB
	fi
	[ "$how" = ptrace ] && flag=--ptrace-only
	s0=$(fl_sched $rpid)
	fl_record $rpid "$SECS" "$HZ" "$WORK/$where$how$r.json" $flag
	s1=$(fl_sched $rpid)
	sid=$(fl_json_num "$WORK/$where$how$r.json" session)
	# R samples of the server's main thread per tick; redis-server's other
	# threads (background I/O) sleep.
	sqlite3 -readonly -separator ' ' "$db" "SELECT
		(SELECT COALESCE(SUM(c.samples), 0) FROM counts c JOIN threads t
		 ON t.session_id = c.session_id AND t.id = c.thread_id
		 WHERE c.session_id = $sid AND c.state = 'R' AND t.tid = t.pid),
		samples FROM sessions WHERE id = $sid" |
		awk -v s="$s0 $s1" -v w=$where -v h=$how -v r=$r '{ split(s, v, " "); t = v[6] - v[3]
			printf "%s %s %d %.3f %.3f\n", w, h, r, $1 / $2, (v[4] - v[1]) / t }'
}

for r in $(seq "$ROUNDS"); do
	for where in client server; do
		for how in kernel ptrace; do
			one $where $how $r
		done
	done
done >"$WORK/rows"
fl_redis_stop

echo "### Where the sampler wakes: redis-server on CPU 0, its clients on CPU 1"
echo
echo "$ROUNDS rounds of ${SECS} s at $HZ Hz; perchd confined to the client's or the server's CPU;"
echo "running threads sampled by the kernel (the default) or stopped (\`--ptrace-only\`)."
echo "*perch R*: ticks that found the server's main thread on a CPU; *on a CPU*:"
echo "the share of the window schedstat says the server's threads spent on one."
echo
echo "| perchd on | running threads | perch R, median (min–max) | on a CPU | perch − schedstat |"
echo "|---|---|---|---|---|"
for where in client server; do
	for how in kernel ptrace; do
		read -r med lo hi <<<"$(awk -v w=$where -v h=$how '$1 == w && $2 == h { print $4 }' "$WORK/rows" | fl_stats)"
		read -r cpu _ _ <<<"$(awk -v w=$where -v h=$how '$1 == w && $2 == h { print $5 }' "$WORK/rows" | fl_stats)"
		read -r d dlo dhi <<<"$(awk -v w=$where -v h=$how '$1 == w && $2 == h { print $4 - $5 }' "$WORK/rows" | fl_stats)"
		printf '| CPU %s (the %s'"'"'s) | %s | %.3f (%.3f – %.3f) | %.3f | %+.3f (%+.3f – %+.3f) |\n' \
			"$([ $where = client ] && echo 1 || echo 0)" $where \
			"$([ $how = kernel ] && echo "kernel samples" || echo "stops (\`--ptrace-only\`)")" \
			$med $lo $hi $cpu $d $dlo $dhi
	done
done
fl_footer "$LOAD0"
