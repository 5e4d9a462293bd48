/*
 * sigalrm: a CPU-bound main thread with a periodic POSIX timer delivering
 * SIGALRM, for checking that a profiler neither loses nor delays the
 * target's signals: handled + overruns should match expected, and overruns
 * (expirations that came while the previous signal was still pending) stay
 * near 0.
 */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "target_util.h"

static timer_t timer;
static atomic_ulong handled, overruns;

static void on_alarm(int sig)
{
	int overrun = timer_getoverrun(timer);

	(void)sig;
	atomic_fetch_add(&handled, 1);
	if (overrun > 0)
		atomic_fetch_add(&overruns, (unsigned long)overrun);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static __attribute__((noinline, noclone)) void compute(uint64_t deadline_ns)
{
	unsigned long x = 1;

	do {
		for (int i = 0; i < 10000; i++)
			TARGET_MIX(x);
	} while (now_ns() < deadline_ns);
}

/* A period of 0 disarms the timer. */
static void set_period(long period_us)
{
	struct itimerspec its = {
		.it_interval = { period_us / 1000000, period_us % 1000000 * 1000 },
	};

	its.it_value = its.it_interval;
	if (timer_settime(timer, 0, &its, NULL) != 0) {
		perror("sigalrm: timer_settime");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sigevent sev = {
		.sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGALRM,
	};
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	long period_us = 1000;
	double seconds = 2;
	const struct target_option options[] = {
		{ "period-us", .long_value = &period_us, .min = 1, .max = LONG_MAX },
		{ "seconds", .seconds = &seconds },
		{ NULL },
	};
	uint64_t start, stop;
	sigset_t alrm;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: sigalrm [--period-us P] [--seconds S]");

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
		perror("sigalrm: timer_create");
		return 1;
	}
	start = now_ns();
	set_period(period_us);
	target_ready();

	compute(start + (uint64_t)(seconds * 1e9));

	/*
	 * Block before disarming so that the last pending expiration, and
	 * the overruns folded into it, are still counted when we unblock.
	 */
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, NULL);
	stop = now_ns();
	set_period(0);
	sigprocmask(SIG_UNBLOCK, &alrm, NULL);
	timer_delete(timer);

	printf("handled=%lu\noverruns=%lu\nexpected=%llu\n",
	       atomic_load(&handled), atomic_load(&overruns),
	       (unsigned long long)((stop - start) / ((uint64_t)period_us * 1000)));
	return 0;
}
