/*
 * pingpong: two threads handing a token back and forth through two
 * eventfds for S seconds, each blocking in read() until the other writes:
 * nothing but context switches, two per round trip.  Prints "ready" once
 * both threads run, starts D seconds later (--delay: time for a profiler
 * to attach), and at the end prints round_trips and per_second.  Pinned
 * to one CPU (taskset), every switch is a plain one on that CPU, with no
 * wake-up across CPUs: what a profiler adds to each switch shows directly
 * in per_second (bench/switch_cost.sh).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "target_util.h"

static int ping, pong;
static atomic_bool stop;

/* The other side: answers every token until told to stop. */
static void *answer(void *arg)
{
	uint64_t v;

	(void)arg;
	while (!atomic_load(&stop)) {
		if (read(ping, &v, sizeof v) != sizeof v)
			break;
		v = 1;
		if (write(pong, &v, sizeof v) != sizeof v)
			break;
	}
	return NULL;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = 4, delay = 0, start;
	const struct target_option options[] = {
		{ "seconds", .seconds = &seconds },
		{ "delay", .seconds = &delay },
		{ NULL },
	};
	unsigned long long trips = 0;
	pthread_t peer;
	uint64_t v = 1;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: pingpong [--seconds S] [--delay D]");
	ping = eventfd(0, EFD_CLOEXEC);
	pong = eventfd(0, EFD_CLOEXEC);
	if (ping < 0 || pong < 0) {
		perror("pingpong: eventfd");
		return 1;
	}
	peer = target_thread("pingpong", answer, NULL);
	target_ready();
	if (delay > 0)
		nanosleep(&(struct timespec){ (time_t)delay,
					      (long)((delay - (double)(time_t)delay) * 1e9) }, NULL);
	start = mono_s();
	for (;;) {
		v = 1;
		if (write(ping, &v, sizeof v) != sizeof v || read(pong, &v, sizeof v) != sizeof v)
			return 1;
		/* The clock is read every 1024 trips: a read costs a fraction of one. */
		if (++trips % 1024 == 0 && mono_s() - start >= seconds)
			break;
	}
	printf("round_trips=%llu per_second=%.0f\n", trips, (double)trips / (mono_s() - start));
	atomic_store(&stop, true);
	v = 1;
	if (write(ping, &v, sizeof v) != sizeof v)
		return 1;
	pthread_join(peer, NULL);
	return 0;
}
