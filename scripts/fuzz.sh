#!/bin/sh
# Builds perch's libFuzzer targets (fuzz/) with clang into build-fuzz, then
# runs each for SECONDS (default 60), two at a time.  Exits non-zero when a
# target crashes, leaks, hangs or breaks one of its checks; the inputs that
# did it are left in build-fuzz/crashes/, the logs in build-fuzz/fuzz-logs/.
#
#   scripts/fuzz.sh [SECONDS]
#
# Inputs found to cover new code are kept in build-fuzz/corpus/NAME between
# runs; the seeds in fuzz/corpus/NAME are only read.  docs/FUZZING.md says
# how to reproduce a crash and how the long campaigns were run.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"

# One target, run by the pool below: NAME SECONDS.
if [ "${1:-}" = "--one" ]; then
	name=$2
	secs=$3
	set -- -max_total_time="$secs" -timeout=60 -print_final_stats=1 \
		-artifact_prefix="$build/crashes/$name-"
	[ -f "$root/fuzz/$name.dict" ] && set -- "$@" -dict="$root/fuzz/$name.dict"
	# Whole maps files of big processes are slow to mutate and add nothing
	# that a few dozen lines do not.
	[ "$name" = maps ] && set -- "$@" -max_len=4096
	mkdir -p "$build/corpus/$name"
	if "$build/fuzz/fuzz_$name" "$@" "$build/corpus/$name" \
		"$root/fuzz/corpus/$name" >"$build/fuzz-logs/$name.log" 2>&1; then
		echo "fuzz_$name: $(grep -o 'stat::number_of_executed_units: [0-9]*' \
			"$build/fuzz-logs/$name.log" | cut -d' ' -f2) runs in ${secs}s, no crash"
		exit 0
	fi
	echo "fuzz_$name: FAILED, see $build/fuzz-logs/$name.log" >&2
	grep -E 'ERROR|SUMMARY|check failed' "$build/fuzz-logs/$name.log" | head -5 >&2
	exit 1
fi

secs=${1:-60}
case "$secs" in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS]" >&2
	exit 2
	;;
esac

CC=clang cmake -S "$root" -B "$build" -DPERCH_FUZZ=ON -DPERCH_WERROR=ON \
	-DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target fuzz -j "$(nproc 2>/dev/null || echo 2)"
# Only this run's failures count.
rm -rf "$build/crashes"
mkdir -p "$build/crashes" "$build/fuzz-logs"

targets=$(sed -n 's/^perch_fuzz(\([a-z_]*\).*/\1/p' "$root/fuzz/CMakeLists.txt")
# Two at a time: the machines this runs on have two cores.
status=0
printf '%s\n' $targets | xargs -P 2 -I '{}' "$0" --one '{}' "$secs" || status=1
if [ -n "$(ls -A "$build/crashes")" ]; then
	echo "fuzz: inputs that failed are in $build/crashes:" >&2
	ls "$build/crashes" >&2
	status=1
fi
exit $status
