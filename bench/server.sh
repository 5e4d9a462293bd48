#!/bin/bash
# Table 3 of issue 5: real servers under load, profiled or not.
#
#   bench/server.sh BUILD_DIR [--quick]
#
# redis-server (one process) on a private loopback port under
# `redis-benchmark -t get,set -n N` (fixed request count, 50 clients):
# requests/s and p99 latency with no profiler, `perf record -F 99 -g -p`,
# and `perch record -r 99 -p`.  Then nginx, master and 2 worker processes,
# under `wrk` for a fixed time: no profiler, `perf record -F 99 -g -p` on
# all three processes, and `perch record -r 99 --children -p MASTER`.
# Rounds run every mode once (order rotated per round); a loss is
# 1 - throughput / throughput of the same round without a profiler.
# Servers are started here, on private ports and directories, and stopped
# at the end.  Prints a markdown section on stdout.
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

PERCH_BUILD=$(cd "${1:?usage: bench/server.sh BUILD_DIR [--quick]}" && pwd)
quick=${2:-}
rounds=${SERVER_ROUNDS:-3}
requests=${SERVER_REQUESTS:-200000}
wrk_secs=${SERVER_WRK_SECONDS:-5}
if [ "$quick" = --quick ]; then
	rounds=1
	requests=20000
	wrk_secs=1
fi
perch=$PERCH_BUILD/client/perch

for tool in perf redis-server redis-benchmark redis-cli nginx wrk; do
	if ! command -v "$tool" >/dev/null; then
		echo "### Table 3: servers under load"
		echo
		echo "Skipped: \`$tool\` is missing (scripts/setup.sh bench installs it)."
		exit 0
	fi
done

work=$(mktemp -d /tmp/perch-bench-server-XXXXXX)
# nginx's workers run as nobody: they must be able to read the site.
chmod 755 "$work"
res=$work/results
redis_pid="" nginx_pid=""
cleanup() {
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	[ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	perchd_stop
	rm -rf "$work"
}
trap cleanup EXIT
perchd_start "$work" || exit 1

# A port nobody listens on: from a range derived from our pid, checked.
free_port() {
	local p=$((20000 + ($$ * 7 + $1) % 20000))
	while ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; do
		p=$((p + 1))
	done
	echo "$p"
}

# Starts the profiler MODE on the pids given; sets prof_pid (empty: none).
prof_start() {
	local mode=$1 pids=$2
	prof_pid=""
	case $mode in
	perf)
		(perf record -F 99 -g -p "$pids" -o "$work/perf.data" 2>"$work/prof.out"
			times >"$work/times") &
		prof_pid=$!
		;;
	perch)
		prof_c0=$(proc_cpu_s "$PERCHD_PID")
		"$perch" record -p "${pids%%,*}" -r 99 $children --json --no-autostart \
			>"$work/prof.out" 2>&1 &
		prof_pid=$!
		;;
	esac
	# Both profilers are sampling after this: the same pause for every mode.
	sleep 0.5
}

# Stops the profiler, records its CPU (% of one CPU over SECONDS) under KEY.
prof_stop() {
	local mode=$1 key=$2 secs=$3 c
	[ -n "$prof_pid" ] || return 0
	# perf exits, writing its file, on SIGINT; perch record keeps the session.
	kill -INT "$prof_pid" 2>/dev/null
	case $mode in
	perf)
		# Only perf gets the signal, not the subshell that waits for it.
		pkill -INT -P "$prof_pid" 2>/dev/null
		wait "$prof_pid"
		c=$(sed -n 2p "$work/times" | awk '{ t = 0
			for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
			print t }')
		rm -f "$work/perf.data" "$work/perf.data.old"
		;;
	perch)
		wait "$prof_pid"
		c=$(awk -v a="$prof_c0" -v b="$(proc_cpu_s "$PERCHD_PID")" 'BEGIN { print b - a }')
		grep -q '"status":"stopped"' "$work/prof.out" ||
			bench_log "perch record: $(cat "$work/prof.out")"
		;;
	esac
	result_add "$res" "$key.cpu" "$(awk -v c="$c" -v s="$secs" 'BEGIN { print 100 * c / s }')"
}

# ---- redis ----------------------------------------------------------------

redis_port=$(free_port 1)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$work" --logfile "$work/redis.log" --daemonize no >/dev/null &
redis_pid=$!
for _ in $(seq 100); do
	[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
	sleep 0.05
done

redis_round() {
	local r=$1 mode=$2 t0 t1 secs
	children=""
	prof_start "$mode" "$redis_pid"
	t0=$(date +%s.%N)
	redis-benchmark -h 127.0.0.1 -p "$redis_port" -t get,set -n "$requests" --csv \
		>"$work/rb.csv" 2>/dev/null
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a + 0.5 }')
	prof_stop "$mode" "redis.$mode" "$secs"
	# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
	# "p95_latency_ms","p99_latency_ms","max_latency_ms"
	awk -F, -v r="$r" -v m="$mode" 'NR == 1 {
			for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i }
			next }
		{ gsub(/"/, ""); print "redis." m "." $1 ".rps." r, $col["rps"]
		  print "redis." m "." $1 ".p99", $col["p99_latency_ms"] }' \
		"$work/rb.csv" >>"$res"
	bench_log "redis round $r $mode done"
}

interleave "$rounds" redis_round none perf perch

# ---- nginx, master + 2 workers -----------------------------------------------

nginx_port=$(free_port 2)
mkdir -p "$work/www" "$work/logs"
head -c 4096 /dev/urandom | base64 >"$work/www/index.html"
chmod -R a+rX "$work/www"
cat >"$work/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path $work/body;
	proxy_temp_path $work/proxy;
	fastcgi_temp_path $work/fastcgi;
	uwsgi_temp_path $work/uwsgi;
	scgi_temp_path $work/scgi;
	server {
		listen 127.0.0.1:$nginx_port;
		location / { root $work/www; }
	}
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/logs/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
	[ "$(pgrep -P "$nginx_pid" | wc -l)" -ge 2 ] && break
	sleep 0.05
done
nginx_pids="$nginx_pid,$(pgrep -P "$nginx_pid" | paste -sd,)"

# wrk's latency in ms from "99%   1.23ms" (us, ms or s).
wrk_ms() {
	awk -v q="$1" '$1 == q { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		print v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1); exit }' "$2"
}

nginx_round() {
	local r=$1 mode=$2
	children=--children
	prof_start "$mode" "$nginx_pids"
	wrk -t 2 -c 32 -d "${wrk_secs}s" --latency "http://127.0.0.1:$nginx_port/index.html" \
		>"$work/wrk.out" 2>&1
	prof_stop "$mode" "nginx.$mode" "$(awk -v s="$wrk_secs" 'BEGIN { print s + 0.5 }')"
	result_add "$res" "nginx.$mode.rps.$r" "$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")"
	result_add "$res" "nginx.$mode.p99" "$(wrk_ms 99% "$work/wrk.out")"
	bench_log "nginx round $r $mode done"
}

interleave "$rounds" nginx_round none perf perch

# ---- the report ---------------------------------------------------------------

# Throughput losses of BASE (redis.MODE.TEST or nginx.MODE) against NONE, in
# %, one per round: rounds pair each mode with its own unprofiled run.
losses() {
	local none=$1 base=$2 r
	for ((r = 0; r < rounds; r++)); do
		awk -v a="$(result_get "$res" "$none.rps.$r")" \
			-v b="$(result_get "$res" "$base.rps.$r")" \
			'BEGIN { if (a > 0 && b != "") print 100 * (1 - b / a) }'
	done
}

label() {
	case $1 in
	none) echo "none" ;;
	perf) echo "\`perf record -F 99 -g -p\`" ;;
	perch) echo "\`perch record -r 99 $2-p\`" ;;
	esac
}

# One table row: WHAT, MODE, the none and mode bases, the CPU key, --children.
row() {
	local what=$1 mode=$2 none=$3 base=$4 cpukey=$5 ch=$6 rps loss=0 p99 cpu=–
	rps=$(for ((r = 0; r < rounds; r++)); do result_get "$res" "$base.rps.$r"; done |
		summary %.0f)
	p99=$(result_get "$res" "$base.p99" | summary %.2f)
	if [ "$mode" != none ]; then
		loss=$(losses "$none" "$base" | summary %.1f)
		cpu=$(result_get "$res" "$cpukey" | summary %.1f)
	fi
	echo "| $what | $(label "$mode" "$ch") | $rps | $loss | $p99 | $cpu |"
}

echo "### Table 3: servers under load"
echo
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p'), one" \
	"process, loopback: \`redis-benchmark -t get,set -n $requests\` (50 clients)." \
	"nginx $(nginx -v 2>&1 | sed 's/.*\///'), master + 2 workers, a 5.5 KB static" \
	"file: \`wrk -t 2 -c 32 -d ${wrk_secs}s --latency\`; perf on all three pids," \
	"perch on the master with \`--children\`.  $rounds round(s), modes interleaved" \
	"(order rotated each round); throughput median (min–max); loss = 1 − throughput" \
	"/ the same round's unprofiled throughput, %; p99 latency median (min–max), ms;" \
	"profiler CPU: perf's process or perchd, % of one CPU while the load ran.  The" \
	"load generator shares the 2 CPUs with the server and the profiler."
echo
echo "| server | profiler | requests/s | loss (%) | p99 (ms) | profiler CPU (%) |"
echo "|---|---|---|---|---|---|"
for t in SET GET; do
	for m in none perf perch; do
		row "redis $t" "$m" "redis.none.$t" "redis.$m.$t" "redis.$m.cpu" ""
	done
done
for m in none perf perch; do
	row "nginx (3 processes)" "$m" nginx.none "nginx.$m" "nginx.$m.cpu" "--children "
done
echo
echo "Target: perch's throughput loss ≤ perf's (medians)."
echo
miss=""
verdict() {
	local what=$1 none=$2 perch_base=$3 perf_base=$4 p g
	p=$(losses "$none" "$perch_base" | median)
	g=$(losses "$none" "$perf_base" | median)
	awk -v p="$p" -v g="$g" -v w="$what" 'BEGIN {
		printf "- %s: perch %.1f %%, perf %.1f %%: %s\n", w, p, g,
			(p > g ? sprintf("**missed by %.1f points**", p - g) : "met") }'
	awk -v p="$p" -v g="$g" 'BEGIN { exit !(p > g) }' && miss="$miss $what"
}
for t in SET GET; do
	verdict "redis $t" "redis.none.$t" "redis.perch.$t" "redis.perf.$t"
done
verdict nginx nginx.none nginx.perch nginx.perf
echo

# Where perchd's time goes when perch lost more than perf: one more redis
# run with perchd itself under perf.
if [ -n "$miss" ]; then
	children=""
	prof_start perch "$redis_pid"
	perf record -F 999 -g -p "$PERCHD_PID" -o "$work/perchd.data" 2>/dev/null &
	fpid=$!
	redis-benchmark -h 127.0.0.1 -p "$redis_port" -t get,set -n "$requests" -q \
		>/dev/null 2>&1
	kill -INT "$fpid"
	wait "$fpid"
	prof_stop perch redis.extra 1
	echo "perchd's own profile during one more redis run under perch" \
		"(\`perf record -F 999 -g -p PERCHD\`; self time, top symbols):"
	echo
	echo "| self | symbol | object |"
	echo "|---|---|---|"
	perf_top "$work/perchd.data" 15
	echo
fi
