# Shared by bench/idle.sh, bench/storage.sh and bench/fidelity.sh (sourced,
# not run).  Every process these scripts profile is one they started: a
# test target, a redis-server on a private loopback port, an xz or a
# sqlite3; each is stopped by its pid when the script ends, however it ends.

FL_PIDS=""

fl_die()
{
	echo "$FL_NAME: $*" >&2
	exit 1
}

# fl_setup NAME BUILD_DIR: the programs, a private work directory, cleanup.
fl_setup()
{
	FL_NAME=$1
	FL_BUILD=$(cd "$2" 2>/dev/null && pwd) || fl_die "no build directory '$2'"
	PERCH=$FL_BUILD/client/perch
	PERCHD=$FL_BUILD/daemon/perchd
	TARGETS=$FL_BUILD/tests/targets
	[ -x "$PERCH" ] && [ -x "$PERCHD" ] && [ -x "$TARGETS/burner" ] ||
		fl_die "build $FL_BUILD first (perch, perchd, tests/targets)"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/perch-$FL_NAME.XXXXXX") ||
		fl_die "mktemp failed"
	trap fl_cleanup EXIT
	trap 'exit 1' INT TERM HUP
}

fl_cleanup()
{
	local p

	# Latest first: targets go before the daemon that samples them.
	for p in $FL_PIDS; do
		kill "$p" 2>/dev/null
	done
	for p in $FL_PIDS; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}

# Remembers a pid started in the background, so that cleanup stops it.
fl_track()
{
	FL_PIDS="$1 $FL_PIDS"
}

fl_untrack()
{
	local p keep=""

	for p in $FL_PIDS; do
		[ "$p" = "$1" ] || keep="$keep $p"
	done
	FL_PIDS=$keep
}

# fl_need CMD...: a harness failure when a program is missing.
fl_need()
{
	local c

	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || fl_die "needs '$c' (scripts/setup.sh bench installs it)"
	done
}

# fl_daemon_start TAG: a perchd of our own; sets FL_SOCK, FL_DB, FL_DPID.
fl_daemon_start()
{
	local i

	FL_SOCK=$WORK/$1.sock
	FL_DB=$WORK/$1.db
	"$PERCHD" --foreground --socket "$FL_SOCK" --db "$FL_DB" \
		>"$WORK/$1.perchd.log" 2>&1 &
	FL_DPID=$!
	fl_track "$FL_DPID"
	for i in $(seq 100); do
		[ -S "$FL_SOCK" ] && return 0
		kill -0 "$FL_DPID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/$1.perchd.log" >&2
	fl_die "perchd did not start"
}

# SIGTERM: perchd stops its sessions, checkpoints and exits.
fl_daemon_stop()
{
	kill "$FL_DPID" 2>/dev/null
	wait "$FL_DPID" 2>/dev/null
	fl_untrack "$FL_DPID"
}

# fl_record PID SECS HZ OUT [FLAG]: perch record through our daemon, JSON to
# OUT; FLAG (one word, e.g. --ptrace-only) is passed to perch record.
fl_record()
{
	PERCH_SOCKET=$FL_SOCK PERCH_DB=$FL_DB "$PERCH" record -p "$1" -d "$2" \
		-r "$3" --json --no-autostart ${5:-} >"$4" 2>"$4.err" ||
		{ cat "$4.err" >&2; fl_die "perch record -p $1 failed"; }
}

# fl_json_num FILE KEY: a number from perch's one-line JSON.
fl_json_num()
{
	sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1"
}

# fl_target_start PROGRAM ARGS...: a test target whose stdin is a pipe we
# hold (a line "q" ends it); waits for its "ready".  Sets FL_TPID, FL_TOUT.
fl_target_start()
{
	local prog=$1 i

	shift
	FL_TOUT=$WORK/target.$$.$RANDOM
	rm -f "$FL_TOUT.in"
	mkfifo "$FL_TOUT.in"
	"$TARGETS/$prog" "$@" <"$FL_TOUT.in" >"$FL_TOUT" 2>&1 &
	FL_TPID=$!
	fl_track "$FL_TPID"
	# Opened read-write so that the open does not wait for the reader.
	exec 9<>"$FL_TOUT.in"
	for i in $(seq 200); do
		grep -q '^ready' "$FL_TOUT" 2>/dev/null && return 0
		kill -0 "$FL_TPID" 2>/dev/null || break
		sleep 0.05
	done
	fl_die "$prog did not start"
}

# Ends the target started last and reaps it; its report stays in $FL_TOUT.
fl_target_stop()
{
	echo q >&9
	exec 9>&-
	wait "$FL_TPID" 2>/dev/null
	fl_untrack "$FL_TPID"
}

# CPU time in ns of every thread of a process, live ones only
# (/proc/PID/task/*/schedstat: nanoseconds, unlike /proc/PID/stat's ticks).
fl_task_cpu_ns()
{
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# Reads numbers, one a line; prints "median min max".
fl_stats()
{
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) { print "nan nan nan"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR]
		}'
}

# The 1-minute load average: printed with each table, because on a shared
# 2-CPU machine it decides how far a spinning target gets a CPU.
fl_load()
{
	cut -d' ' -f1 /proc/loadavg
}

# fl_footer START_LOAD: the line that says when and how a table was made.
fl_footer()
{
	echo
	echo "Run: $(date -u '+%Y-%m-%d %H:%M') UTC, \`bench/$FL_NAME.sh BUILD_DIR${FL_QUICK:+ --quick}\`, load average $1 at the start, $(fl_load) at the end."
}

# "run_ns wait_ns now_ns": time all live threads of a process spent on a
# CPU and waiting on a run queue (schedstat fields 1 and 2), and the time.
fl_sched()
{
	cat /proc/"$1"/task/*/schedstat 2>/dev/null |
		awk -v now="$(date +%s%N)" '{ r += $1; w += $2 } END { printf "%.0f %.0f %s\n", r, w, now }'
}

# fl_redis_start: redis-server on a private loopback port (no persistence)
# loaded by 20 redis-benchmark clients; sets FL_RPORT, FL_RPID, FL_BPID.
fl_redis_start()
{
	local i

	FL_RPORT=$((20000 + $$ % 20000))
	redis-server --port $FL_RPORT --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
	FL_RPID=$!
	fl_track $FL_RPID
	for i in $(seq 100); do
		redis-cli -p $FL_RPORT ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	redis-cli -p $FL_RPORT ping >/dev/null 2>&1 || fl_die "redis-server did not start"
	redis-benchmark -p $FL_RPORT -q -c 20 -n 100000000 -r 100000 \
		-t set,get,incr,lpush,lpop,hset >/dev/null 2>&1 &
	FL_BPID=$!
	fl_track $FL_BPID
}

# Stops what fl_redis_start started.
fl_redis_stop()
{
	kill $FL_BPID
	wait $FL_BPID 2>/dev/null
	fl_untrack $FL_BPID
	redis-cli -p $FL_RPORT shutdown nosave >/dev/null 2>&1
	wait $FL_RPID 2>/dev/null
	fl_untrack $FL_RPID
}
