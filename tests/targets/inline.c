/*
 * inline_target: nearly all the CPU time is spent in mix_inlined(), which
 * is always inlined into outer_hot(), so a symbolizer must read DWARF's
 * inline records to report mix_inlined as a frame of its own.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

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

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

int main(int argc, char **argv)
{
	static const struct option options[] = { { NULL, 0, NULL, 0 } };
	pthread_t hot;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getopt_long(argc, argv, "", options, NULL) != -1 || optind != argc) {
		fprintf(stderr, "usage: inline_target\n");
		return 2;
	}
	pthread_barrier_init(&named, NULL, 2);
	if (pthread_create(&hot, NULL, hot_main, NULL) != 0) {
		fprintf(stderr, "inline_target: pthread_create failed\n");
		return 1;
	}
	pthread_barrier_wait(&named);
	printf("ready\n");
	fflush(stdout);

	wait_for_quit();
	atomic_store(&stop, true);
	pthread_join(hot, NULL);
	return 0;
}
