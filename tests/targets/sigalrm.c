/*
 * sigalrm: a CPU-bound main thread with a periodic POSIX timer delivering
 * SIGALRM, for checking that a profiler neither loses nor delays the
 * target's signals: handled + overruns should match expected, and overruns
 * (expirations that came while the previous signal was still pending) stay
 * near 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

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
		for (int i = 0; i < 10000; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			__asm__ volatile("" : "+r"(x));
		}
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

static void usage(void)
{
	fprintf(stderr, "usage: sigalrm [--period-us P] [--seconds S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "period-us", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigevent sev = {
		.sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGALRM,
	};
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	long period_us = 1000;
	double seconds = 2;
	uint64_t start, stop;
	sigset_t alrm;
	char *end;
	int opt;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			period_us = strtol(optarg, &end, 10);
			if (*end != '\0' || period_us < 1)
				usage();
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end != '\0' || !(seconds >= 0))
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
		perror("sigalrm: timer_create");
		return 1;
	}
	start = now_ns();
	set_period(period_us);
	printf("ready\n");
	fflush(stdout);

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
