#!/bin/sh
# perchd under valgrind memcheck for one short session of every kind:
# builds a Debug perchd without sanitizers (valgrind and ASan do not mix),
# starts it in the foreground under memcheck, records a burner it started
# for 2 s, starts a session and stops it with `perch stop`, adds, lists and
# removes a schedule, sends requests that are refused, then stops perchd
# with SIGTERM.  Exits non-zero when memcheck reports an invalid access, an
# uninitialised value, a definite or indirect leak, or a descriptor left
# open, and then keeps the full log and says where it is.
#
#   scripts/valgrind.sh [BUILD_DIR]     default: build-valgrind at the top
#
# Needs root (or a kernel that lets perchd ptrace the burner) and valgrind.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-valgrind}

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPERCH_SANITIZE=OFF \
	-DPERCH_WERROR=ON >/dev/null
cmake --build "$build" -j 2 --target perchd perch burner >/dev/null

dir=$(mktemp -d /tmp/perch-valgrind-XXXXXX)
log="$dir/valgrind.log"
export PERCH_SOCKET="$dir/perch.sock" PERCH_DB="$dir/perch.db"
# A daemon started by the client by mistake would run outside valgrind.
export PERCH_DAEMON=/nonexistent/perchd
perch="$build/client/perch"
burner_pid="" perchd_pid="" rec_pid=""

cleanup() {
	for p in $rec_pid $burner_pid $perchd_pid; do
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "valgrind.sh: $*" >&2
	echo "valgrind.sh: log in $log" >&2
	exit 1
}

# Waits up to $2 tenths of a second for the command $1 to succeed.
wait_for() {
	n=0
	until eval "$1"; do
		n=$((n + 1))
		[ "$n" -lt "$2" ] || return 1
		sleep 0.1
	done
}

"$build/tests/targets/burner" --seconds 120 >"$dir/burner.out" </dev/null &
burner_pid=$!
wait_for 'grep -qs ready "$dir/burner.out"' 100 || fail "burner did not start"

# definite and indirect leaks are errors; "still reachable" and "possible"
# are not: libraries keep one-time allocations (libdw's and libunwind's
# global caches, SQLite's) until exit on purpose.
valgrind --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	--track-fds=yes --num-callers=30 --log-file="$log" \
	"$build/daemon/perchd" --foreground --socket "$PERCH_SOCKET" \
	--db "$PERCH_DB" 2>"$dir/perchd.err" &
perchd_pid=$!
wait_for '"$perch" status >/dev/null 2>&1' 600 || fail "perchd did not answer in 60 s"

# 1. A fixed-length recording, read back by the client.
"$perch" record -p "$burner_pid" -d 2 --no-autostart >"$dir/record.out" 2>&1 ||
	fail "perch record failed: $(cat "$dir/record.out")"
grep -q burn_alpha "$dir/record.out" || fail "the recording has no burn_alpha"

# 2. A session started, then stopped by `perch stop`.
"$perch" record -p "$burner_pid" --no-autostart >"$dir/record2.out" 2>&1 &
rec_pid=$!
wait_for '"$perch" status --json 2>/dev/null | grep -q "\"session\""' 300 ||
	fail "the second session did not start"
id=$("$perch" status --json | tr ',{' '\n\n' | sed -n 's/.*"session": *\([0-9]*\).*/\1/p' | head -n 1)
sleep 1
"$perch" stop "$id" >/dev/null || fail "perch stop $id failed"
wait "$rec_pid" || fail "the stopped recording ended badly: $(cat "$dir/record2.out")"
rec_pid=""

# 3. Schedules and refusals: every other request the daemon serves.
"$perch" schedule add --pid "$burner_pid" --every 1h --for 1s >/dev/null ||
	fail "schedule add failed"
"$perch" schedule ls >/dev/null || fail "schedule ls failed"
"$perch" schedule rm 1 >/dev/null || fail "schedule rm failed"
! "$perch" record -p 999999999 -d 1 --no-autostart >/dev/null 2>&1 ||
	fail "a record of a missing pid succeeded"
! "$perch" stop 12345 >/dev/null 2>&1 || fail "stop of a missing session succeeded"
"$perch" rm 1 >/dev/null 2>&1 || fail "perch rm 1 failed"

kill -TERM "$perchd_pid"
rc=0
wait "$perchd_pid" || rc=$?
perchd_pid=""
kill -TERM "$burner_pid" 2>/dev/null || true

# Descriptors perchd opened and left open at exit.  Not counted: stdin,
# stdout, stderr, what perchd inherited (from whoever runs this script), and
# libunwind's memory-probing pipe, which it opens once per process on the
# first unw_set_caching_policy and keeps by design.
fds=$(awk '/Open .*file descriptor [0-9]+:/ {
		if (fd != "" && !skip) n++
		fd = $0; skip = ($0 ~ /descriptor [012]:/)
		next }
	fd != "" && /inherited from parent|_Ux86_64_set_caching_policy/ { skip = 1 }
	/HEAP SUMMARY/ { if (fd != "" && !skip) n++; fd = "" }
	END { print n + 0 }' "$log")
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|FILE DESCRIPTORS' "$log" | sed 's/^==[0-9]*== //'
[ "$rc" -ne 99 ] || fail "memcheck found errors or leaks"
[ "$rc" -eq 0 ] || fail "perchd exited $rc: $(cat "$dir/perchd.err")"
[ "$fds" -eq 0 ] || fail "$fds descriptors left open at exit"
grep -q 'ERROR SUMMARY: 0 errors' "$log" || fail "no clean error summary"
echo "valgrind.sh: no errors, no leaks, no descriptors left open"
rm -rf "$dir"
