/*
 * deep: threads that recurse D frames deep and spin at the bottom, so the
 * stack at the hot leaf is deep_leaf, D x recurse, the thread function, ...
 * --main runs the recursion in the main thread as well, to get the main
 * thread's stack shape (main, __libc_start_call_main, ...).  --swing MS
 * makes the threads alternate, every MS milliseconds, between D frames and
 * SHALLOW: a stack whose depth changes between samples.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "target_util.h"

static atomic_bool stop;
static atomic_int at_leaf;	/* deep-N threads that reached deep_leaf */
static int depth = 200;
static int swing_ms;
#define SHALLOW 3
static pthread_barrier_t started;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Spins until the target quits, or for swing_ms when it swings. */
static __attribute__((noinline, noclone)) void deep_leaf(void)
{
	double until = swing_ms > 0 ? now_ms() + swing_ms : 0;
	unsigned long x = 1;

	atomic_fetch_add(&at_leaf, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed) &&
	       (until == 0 || now_ms() < until))
		for (int i = 0; i < 1000; i++)
			TARGET_MIX(x);
}

static __attribute__((noinline, noclone)) void recurse(int n)
{
	/* Read after the call, so the call cannot become a jump. */
	volatile int frame = n;

	if (n > 1)
		recurse(n - 1);
	else
		deep_leaf();
	(void)frame;
}

/* D frames deep until the target quits, or swinging between D and SHALLOW. */
static void run(void)
{
	do {
		recurse(depth);
		if (swing_ms > 0)
			recurse(SHALLOW);
	} while (swing_ms > 0 && !atomic_load(&stop));
}

static void *deep_thread(void *arg)
{
	char name[16];

	snprintf(name, sizeof name, "deep-%d", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	run();
	return NULL;
}

static void *quit_thread(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "deep-stdin");
	pthread_barrier_wait(&started);
	target_wait_for_quit();
	atomic_store(&stop, true);
	return NULL;
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: deep [--depth D] [--threads N] [--main] [--swing MS]";
	bool in_main = false;
	int nthreads = 1;
	const struct target_option options[] = {
		{ "depth", .int_value = &depth, .min = 1, .max = 100000 },
		{ "threads", .int_value = &nthreads, .min = 0, .max = 4096 },
		{ "main", .flag = &in_main },
		{ "swing", .int_value = &swing_ms, .min = 1, .max = 100000 },
		{ NULL },
	};
	pthread_t *threads, quitter = 0;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, usage);
	if (nthreads == 0 && !in_main)
		target_usage(usage);

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL && nthreads > 0)
		return 1;
	pthread_barrier_init(&started, NULL,
			     (unsigned int)nthreads + 1 + in_main);
	for (int i = 0; i < nthreads; i++)
		threads[i] = target_thread("deep", deep_thread, (void *)(long)i);
	if (in_main)
		quitter = target_thread("deep", quit_thread, NULL);
	pthread_barrier_wait(&started);
	/*
	 * "ready" once every deep-N thread spins at the bottom: right after
	 * the barrier one of them may still be in it (waking the others).
	 */
	while (atomic_load(&at_leaf) < nthreads)
		usleep(100);
	target_ready();

	if (in_main) {
		run();
		pthread_join(quitter, NULL);
	} else {
		target_wait_for_quit();
		atomic_store(&stop, true);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("depth=%d\n", depth);
	free(threads);
	return 0;
}
