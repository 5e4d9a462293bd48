# Shell helpers shared by the benchmark scripts (sourced, bash).
#
# Stable interface (other bench scripts source this file):
#   median            numbers on stdin, one a line -> their median
#   minmax            numbers on stdin -> "MIN–MAX"
#   summary [FMT]     numbers on stdin -> "MEDIAN (MIN–MAX)" with printf FMT
#   interleave ROUNDS FUNC MODE...
#                     calls FUNC ROUND MODE for every mode of every round,
#                     the order rotated by one each round (A B C, B C A, ...)
#   result_add FILE KEY VALUE / result_get FILE KEY
#                     an append-only file of "KEY VALUE" lines (an empty
#                     VALUE is not recorded); result_get prints every VALUE
#                     recorded under KEY, one a line
#   proc_cpu_s PID    utime + stime of a process (all its threads), seconds
#   perchd_start DIR / perchd_stop
#                     a private perchd on DIR/perch.sock and DIR/perch.db;
#                     sets PERCHD_PID and exports PERCH_SOCKET and PERCH_DB
#   wait_line FILE TEXT SECONDS
#                     waits until FILE has a line TEXT; 1 on time-out
#   perchd_perf_start FILE / perchd_perf_enable / perchd_perf_stop
#                     the private perchd again, under perf record -g, into
#                     FILE, recording only from perchd_perf_enable on
#   perf_top FILE N   the N symbols with the most self time in a perf.data,
#                     as markdown table rows
#   bench_log MSG     progress on stderr (stdout is the report)
#
# Everything a benchmark starts it starts itself and stops by process id:
# the benchmarks never attach to a process they did not start.

BENCH_CLK_TCK=$(getconf CLK_TCK)

bench_log() {
	printf 'bench: %s\n' "$*" >&2
}

median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
	}'
}

minmax() {
	sort -g | awk -v fmt="${1:-%g}" '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		printf fmt "–" fmt "\n", v[1], v[NR]
	}'
}

summary() {
	sort -g | awk -v fmt="${1:-%g}" '{ v[NR] = $1 } END {
		if (NR == 0) { print "–"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (NR == 1) { printf fmt "\n", m; exit }
		printf fmt " (" fmt "–" fmt ")\n", m, v[1], v[NR]
	}'
}

interleave() {
	local rounds=$1 func=$2 r i n
	shift 2
	local modes=("$@")
	n=${#modes[@]}
	for ((r = 0; r < rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			"$func" "$r" "${modes[$(((i + r) % n))]}"
		done
	done
}

result_add() {
	# A measurement that failed is left out, not counted as 0.
	[ -n "$3" ] || return 0
	printf '%s %s\n' "$2" "$3" >>"$1"
}

result_get() {
	awk -v k="$2" '$1 == k { print $2 }' "$1"
}

proc_cpu_s() {
	# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
	# the command name (which may itself hold spaces or parentheses).
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	echo "${stat##*) }" | awk -v hz="$BENCH_CLK_TCK" '{ print ($12 + $13) / hz }'
}

wait_line() {
	local file=$1 text=$2 tries
	tries=$(awk -v s="$3" 'BEGIN { print int(s * 20) }')
	while ((tries-- > 0)); do
		grep -qx -- "$text" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

perchd_start() {
	local dir=$1
	export PERCH_SOCKET=$dir/perch.sock PERCH_DB=$dir/perch.db
	"$PERCH_BUILD/daemon/perchd" --foreground --socket "$PERCH_SOCKET" \
		--db "$PERCH_DB" 2>>"$dir/perchd.log" &
	PERCHD_PID=$!
	local tries=100
	while ((tries-- > 0)); do
		[ -S "$PERCH_SOCKET" ] && return 0
		sleep 0.05
	done
	bench_log "perchd did not start (see $dir/perchd.log)"
	return 1
}

perchd_stop() {
	[ -n "${PERCHD_PID:-}" ] || return 0
	kill -TERM "$PERCHD_PID" 2>/dev/null
	wait "$PERCHD_PID" 2>/dev/null
	PERCHD_PID=
}

perf_top() {
	# -t '|': fields "overhead|[.] symbol|object|..." whatever the widths.
	perf report -i "$1" --stdio --no-children --sort symbol,dso -g none -t '|' \
		2>/dev/null |
		awk -F'|' -v n="$2" '/^#/ || NF < 3 { next }
			{ sym = $2; sub(/^ *\[[^]]*\] */, "", sym); sub(/ +$/, "", sym)
			  dso = $3; gsub(/ /, "", dso); pct = $1; gsub(/ /, "", pct)
			  printf "| %s | `%s` | %s |\n", pct, sym, dso
			  if (++k == n) exit }'
}

# perf on perchd itself, to show where its time goes: perchd_perf_start
# FILE restarts the private perchd under `perf record -g` (attaching perf
# to a running multi-threaded process is unreliable on this machine; a
# process started under perf is followed from the start) with its events
# disabled, and sets PERCHD_PID to the new perchd; perchd_perf_enable
# starts the recording; perchd_perf_stop stops that perchd, which ends perf
# and leaves FILE.  The caller runs a session before enabling: a new
# perchd's first session loads the target's libraries' symbols and DWARF
# (libdw inflating libc's compressed debug file: a third of the samples of
# a 3-s session in the full run of 2026-11-27 01:38), which the measured
# runs, on a perchd that has profiled the same programs before, do not.
perchd_perf_start() {
	local dir tries=100
	dir=$(dirname "$PERCH_SOCKET")
	perchd_stop
	rm -f "$PERCH_SOCKET" "$dir/perf.ctl" "$dir/perf.ack"
	mkfifo "$dir/perf.ctl" "$dir/perf.ack" || return 1
	# Opened read-write, so that neither open waits for the other end.
	exec {PERF_CTL_FD}<>"$dir/perf.ctl" {PERF_ACK_FD}<>"$dir/perf.ack"
	perf record -F 999 -g -D -1 --control "fd:$PERF_CTL_FD,$PERF_ACK_FD" -o "$1" \
		-- "$PERCH_BUILD/daemon/perchd" --foreground \
		--socket "$PERCH_SOCKET" --db "$PERCH_DB" 2>>"$dir/perchd.log" &
	PERCHD_PERF_PID=$!
	while ((tries-- > 0)); do
		[ -S "$PERCH_SOCKET" ] && break
		sleep 0.05
	done
	PERCHD_PID=$(pgrep -P "$PERCHD_PERF_PID" | head -1)
	[ -n "$PERCHD_PID" ] && [ -S "$PERCH_SOCKET" ]
}

perchd_perf_enable() {
	local ack=
	echo enable >&"$PERF_CTL_FD"
	read -r -t 10 -u "$PERF_ACK_FD" ack
	[ "$ack" = ack ]
}

perchd_perf_stop() {
	[ -n "${PERCHD_PERF_PID:-}" ] || return 0
	perchd_stop
	wait "$PERCHD_PERF_PID"
	PERCHD_PERF_PID=
	exec {PERF_CTL_FD}>&- {PERF_ACK_FD}>&-
}
