/*
 * churn: short-lived threads created and joined at a steady rate, for
 * testing that a profiler follows threads that come and go (and does not
 * slow thread creation down much).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

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
		for (int i = 0; i < 2000; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			__asm__ volatile("" : "+r"(x));
		}
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

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

static void usage(void)
{
	fprintf(stderr, "usage: churn [--rate R] [--seconds S] [--work-us US]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "rate", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "work-us", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	pthread_t creator;
	char *end;
	int opt;

	/* A test runner that crashes must not leave us running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'r':
			rate = strtol(optarg, &end, 10);
			if (*end != '\0' || rate < 1 || rate > 1000000)
				usage();
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end != '\0' || !(seconds >= 0))
				usage();
			break;
		case 'w':
			work_us = strtol(optarg, &end, 10);
			if (*end != '\0' || work_us < 0 || work_us > 1000000)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	pthread_barrier_init(&named, NULL, 2);
	if (pthread_create(&creator, NULL, creator_main, NULL) != 0) {
		fprintf(stderr, "churn: pthread_create failed\n");
		return 1;
	}
	pthread_barrier_wait(&named);
	printf("ready\n");
	fflush(stdout);

	if (seconds < 0) {
		wait_for_quit();
		atomic_store(&stop, true);
	}
	pthread_join(creator, NULL);
	printf("created=%lu\n", created);
	return 0;
}
