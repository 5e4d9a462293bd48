/*
 * inline_target: nearly all the CPU time is spent in mix_inlined(), which
 * is always inlined into outer_hot(), so a symbolizer must read DWARF's
 * inline records to report mix_inlined as a frame of its own.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>

#include "target_util.h"

static atomic_bool stop;
static volatile unsigned long sink;

static inline __attribute__((always_inline)) unsigned long mix_inlined(unsigned long x)
{
	for (int i = 0; i < 100000; i++) {
		x ^= x >> 31;
		x *= 0x94d049bb133111ebul;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static __attribute__((noinline, noclone)) void outer_hot(void)
{
	unsigned long x = 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		x = mix_inlined(x);
	sink = x;
}

static pthread_barrier_t named;

static void *hot_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "inline-hot");
	/* Named before "ready": a profiler looks for it by that name. */
	pthread_barrier_wait(&named);
	outer_hot();
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct target_option options[] = { { NULL } };
	pthread_t hot;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: inline_target");
	pthread_barrier_init(&named, NULL, 2);
	hot = target_thread("inline_target", hot_main, NULL);
	pthread_barrier_wait(&named);
	target_ready();

	target_wait_for_quit();
	atomic_store(&stop, true);
	pthread_join(hot, NULL);
	return 0;
}
