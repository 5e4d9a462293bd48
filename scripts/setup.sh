#!/bin/sh
# perch set-up: installs what is missing (Debian 12), builds, then either
# profiles the bundled demo program or runs the whole test suite.
#
#   scripts/setup.sh demo   build and profile the demo program
#   scripts/setup.sh test   build and run every test (also under ASan+UBSan)
#   scripts/setup.sh bench [--quick] [--out FILE]
#                           build ($PERCH_BUILD, default build/) and run the
#                           perch versus perf benchmarks (bench/run.sh)
#
# Run as root (package installation and ptrace of the demo need it).
set -eu

mode=${1:-demo}
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Build tools and the libraries perch links (see README "Dependencies").
packages="gcc make cmake pkg-config binutils procps
libunwind-dev libuv1-dev libsqlite3-dev libcmocka-dev libdw-dev libelf-dev
libjson-c-dev zlib1g-dev"
# Only the tests: consumers of perch's exports, read back by the test suite
# (go tool pprof; headless Chromium for the HTML report).
test_packages="golang-go chromium"
# Only the benchmarks: perf to compare with, servers and load generators to
# profile, go tool pprof to compare queries with.
bench_packages="linux-perf redis-server redis-tools nginx-light wrk golang-go"

install_missing() {
	missing=""
	for p in $packages "$@"; do
		if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed"; then
			missing="$missing $p"
		fi
	done
	if [ -n "$missing" ]; then
		echo "perch setup: installing$missing"
		if [ "$(id -u)" -ne 0 ]; then
			echo "perch setup: run as root to install packages" >&2
			exit 1
		fi
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $missing
	fi
}

build() {
	dir=$1
	shift
	cmake -S "$root" -B "$dir" -DPERCH_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

case "$mode" in
demo)
	install_missing
	build "$root/build"
	exec "$root/scripts/demo.sh" "$root/build"
	;;
test)
	install_missing $test_packages
	build "$root/build"
	(cd "$root/build" && ctest --output-on-failure --timeout 600 -j "$jobs")
	# The same suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
	build "$root/build-asan" -DPERCH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 600 -j "$jobs")
	# The parsers under libFuzzer, 60 s a target (docs/FUZZING.md).  clang's
	# runtime libraries (libFuzzer, ASan, UBSan) are a separate package.
	install_missing clang libclang-rt-14-dev
	"$root/scripts/fuzz.sh" 60
	;;
bench)
	shift
	install_missing $bench_packages
	export PERCH_BUILD="${PERCH_BUILD:-$root/build}" PERCH_BENCH_READY=1
	build "$PERCH_BUILD"
	exec "$root/bench/run.sh" "$@"
	;;
*)
	echo "usage: scripts/setup.sh demo|test|bench" >&2
	exit 2
	;;
esac
