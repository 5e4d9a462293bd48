/*
 * phases: thread `phases-0` spins in phase_spin for SPIN ms, then sleeps in
 * phase_sleep for SLEEP ms, over and over, until quit.  Long phases let a
 * test know what the thread was doing at a chosen moment (its stat says so
 * on both sides of it) and then look at it after it has changed, as a
 * sampler that wakes late does (docs/DESIGN.md, "The state at the due
 * time").  Reports `cycles`.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <time.h>

#include "target_util.h"

static atomic_bool stop;
static atomic_ulong cycles;
static int spin_ms = 400, sleep_ms = 400;

static __attribute__((noinline, noclone)) void phase_spin(void)
{
	TARGET_SPIN_MS(spin_ms, !atomic_load_explicit(&stop, memory_order_relaxed));
}

static __attribute__((noinline, noclone)) void phase_sleep(void)
{
	struct timespec ts = { sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000 };

	/* Woken early by nothing: the test quits between phases or waits. */
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void *phases_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "phases-0");
	while (!atomic_load(&stop)) {
		phase_spin();
		if (atomic_load(&stop))
			break;
		phase_sleep();
		atomic_fetch_add(&cycles, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const struct target_option options[] = {
		{ "spin-ms", .int_value = &spin_ms, .min = 1, .max = 1000000 },
		{ "sleep-ms", .int_value = &sleep_ms, .min = 1, .max = 1000000 },
		{ NULL },
	};
	pthread_t th;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: phases [--spin-ms MS] [--sleep-ms MS]");
	th = target_thread("phases", phases_main, NULL);
	target_ready();
	target_wait_for_quit();
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	printf("cycles=%lu\n", atomic_load(&cycles));
	return 0;
}
