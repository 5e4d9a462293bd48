/*
 * stall: makes every CPU of this machine stall now and then, as a busy
 * hypervisor host does to a virtual machine's CPUs (steal time), to check
 * that the suite's timing bounds tell the machine's stalls from perch's.
 *
 *   stall SECONDS SPIN_MS GAP_MS
 *
 * One thread per CPU, pinned to it, at SCHED_FIFO 50 (above perch's
 * samplers at 1, so that nothing else runs on that CPU meanwhile), sleeps
 * GAP_MS/2 to 3*GAP_MS/2 and then spins SPIN_MS/2 to 3*SPIN_MS/2, until
 * SECONDS have passed.  Needs the right to real-time scheduling (root).
 * The kernel's real-time throttling (95 % of each second) still applies.
 * Not a test: docs/BATTERY.md says how it was used.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long seconds, spin_ms, gap_ms;

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Uniform in [v/2, 3v/2). */
static long around(long v, unsigned int *seed)
{
	return v / 2 + (v > 0 ? (long)(rand_r(seed) % (unsigned int)v) : 0);
}

static void *staller(void *arg)
{
	long cpu = (long)arg;
	struct sched_param sp = { .sched_priority = 50 };
	unsigned int seed = (unsigned int)cpu + 1;
	unsigned long long end = mono_ns() + (unsigned long long)seconds * 1000000000ull;
	cpu_set_t set;
	int rc;

	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	if (rc == 0)
		rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (rc != 0) {
		fprintf(stderr, "stall: CPU %ld: %s\n", cpu, strerror(rc));
		exit(1);
	}
	while (mono_ns() < end) {
		unsigned long long until;

		usleep((useconds_t)(around(gap_ms, &seed) * 1000));
		until = mono_ns() + (unsigned long long)around(spin_ms, &seed) * 1000000ull;
		while (mono_ns() < until)
			;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t *th;

	if (argc != 4 || (seconds = atol(argv[1])) <= 0 || (spin_ms = atol(argv[2])) <= 0 ||
	    (gap_ms = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: stall SECONDS SPIN_MS GAP_MS\n");
		return 2;
	}
	th = calloc((size_t)ncpu, sizeof *th);
	if (th == NULL)
		return 1;
	for (long i = 0; i < ncpu; i++) {
		int rc = pthread_create(&th[i], NULL, staller, (void *)i);

		if (rc != 0) {
			fprintf(stderr, "stall: %s\n", strerror(rc));
			return 1;
		}
	}
	for (long i = 0; i < ncpu; i++)
		pthread_join(th[i], NULL);
	free(th);
	return 0;
}
