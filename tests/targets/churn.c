/*
 * churn: short-lived threads created and joined at a steady rate, for
 * testing that a profiler follows threads that come and go (and does not
 * slow thread creation down much).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "target_util.h"

static atomic_bool stop;
static long rate = 1000;
static double seconds = -1;
static unsigned long created;
static long work_us;		/* 0: a few microseconds of work */
static volatile unsigned long sink;

static uint64_t now_ns(void);

/*
 * Some 2000 multiplications (a few µs) per thread, or --work-us of them:
 * a thread of a few tens of µs in all is over before a sampler that finds
 * threads in /proc can list it, one of some hundred µs is not.
 */
static __attribute__((noinline, noclone)) unsigned long short_task(void)
{
	uint64_t end = work_us > 0 ? now_ns() + (uint64_t)work_us * 1000u : 0;
	unsigned long x = 1;

	do {
		for (int i = 0; i < 2000; i++)
			TARGET_MIX(x);
	} while (end != 0 && now_ns() < end);
	return x;
}

static void *short_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "churn-short");
	sink = short_task();
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static pthread_barrier_t named;

static void *creator_main(void *arg)
{
	uint64_t period = 1000000000u / (uint64_t)rate, next = now_ns();
	uint64_t deadline = seconds >= 0 ? next + (uint64_t)(seconds * 1e9) :
					   UINT64_MAX;

	(void)arg;
	pthread_setname_np(pthread_self(), "churn-creator");
	/* Named before "ready": a profiler looks for it by that name. */
	pthread_barrier_wait(&named);
	while (!atomic_load(&stop) && next < deadline) {
		pthread_t t;

		if (pthread_create(&t, NULL, short_main, NULL) != 0) {
			fprintf(stderr, "churn: pthread_create failed\n");
			exit(1);
		}
		pthread_join(t, NULL);
		created++;
		/* Behind schedule: carry on at the rate, do not burst. */
		next += period;
		if (next < now_ns())
			next = now_ns();
		else
			sleep_until(next);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const struct target_option options[] = {
		{ "rate", .long_value = &rate, .min = 1, .max = 1000000 },
		{ "seconds", .seconds = &seconds },
		{ "work-us", .long_value = &work_us, .min = 0, .max = 1000000 },
		{ NULL },
	};
	pthread_t creator;

	/* A test runner that crashes must not leave us running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options,
		       "usage: churn [--rate R] [--seconds S] [--work-us US]");

	pthread_barrier_init(&named, NULL, 2);
	creator = target_thread("churn", creator_main, NULL);
	pthread_barrier_wait(&named);
	target_ready();

	if (seconds < 0) {
		target_wait_for_quit();
		atomic_store(&stop, true);
	}
	pthread_join(creator, NULL);
	printf("created=%lu\n", created);
	return 0;
}
