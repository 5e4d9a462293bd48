/*
 * syscaller: user work in spin_work() between short system calls (a 1-byte
 * pwrite to /dev/null), on the main thread, for S seconds.  It measures its
 * own split with CLOCK_MONOTONIC around each part, so a profiler's share of
 * pwrite can be compared with the truth: a stop-based sampler whose stop
 * takes effect some microseconds after it is asked for finds the thread at
 * the exit of a call it entered in between (docs/DESIGN.md, "Stops land on
 * system call exits").  Reports syscall_permille (the truth, ‰),
 * iterations, work_us (mean user work between calls).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "target_util.h"

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* n rounds of integer hashing the compiler can neither fold nor drop. */
static __attribute__((noinline, noclone)) unsigned long spin_work(unsigned long n)
{
	unsigned long x = n;

	for (unsigned long i = 0; i < n; i++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ul;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

int main(int argc, char **argv)
{
	unsigned long long work = 0, sys = 0, end, iterations = 0;
	unsigned int work_us = 20;
	double seconds = 10;
	const struct target_option options[] = {
		{ "work-us", .uint_value = &work_us, .min = 1, .max = 1000000 },
		{ "seconds", .seconds = &seconds },
		{ NULL },
	};
	volatile unsigned long sink;
	unsigned long n = 1000;
	char byte = 0;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options,
		       "usage: syscaller [--work-us W] [--seconds S]");
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("syscaller: /dev/null");
		return 1;
	}
	/* Calibrate: n rounds take about work_us. */
	for (;;) {
		unsigned long long t0 = mono_ns();

		sink = spin_work(n);
		if (mono_ns() - t0 >= 10000000ull)
			break;
		n *= 2;
	}
	{
		unsigned long long t0 = mono_ns();

		sink = spin_work(n);
		n = (unsigned long)((double)n * work_us * 1000.0 / (double)(mono_ns() - t0));
		if (n == 0)
			n = 1;
	}
	(void)sink;
	target_ready();
	end = mono_ns() + (unsigned long long)(seconds * 1e9);
	for (;;) {
		unsigned long long a = mono_ns(), b, c;

		if (a >= end)
			break;
		sink = spin_work(n);
		b = mono_ns();
		if (pwrite(fd, &byte, 1, 0) != 1 && errno != EINTR) {
			perror("syscaller: pwrite");
			return 1;
		}
		c = mono_ns();
		work += b - a;
		sys += c - b;
		iterations++;
	}
	printf("syscall_permille=%.1f\niterations=%llu\nwork_us=%.1f\n",
	       1000.0 * (double)sys / (double)(work + sys), iterations,
	       iterations ? (double)work / 1e3 / (double)iterations : 0.0);
	return 0;
}
