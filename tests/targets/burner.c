/*
 * burner: the demo program and the main test target.
 *
 * Each worker thread alternates between two leaf functions that do the same
 * work per unit, P units in burn_alpha() and 100 - P in burn_beta(), so a
 * profiler must find exactly that split of CPU time between them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "target_util.h"

/* Exported (burner-stripped is linked -rdynamic) to test .dynsym names. */
unsigned long burn_alpha(unsigned int units);
unsigned long burn_beta(unsigned int units);
void work_loop(unsigned int p, unsigned long *alpha, unsigned long *beta);

struct worker {
	pthread_t thread;
	int index;
	unsigned long alpha_units, beta_units;
	unsigned long long alpha_ns, beta_ns;	/* with --timed */
};

static atomic_bool stop;
static volatile unsigned long sink;
static unsigned int split = 75;
static bool timed;
static pthread_barrier_t started;

/*
 * One unit is about 10 µs of integer hashing that the compiler can neither
 * fold nor drop.  A macro, not an inline function: an inlined frame above
 * burn_alpha and burn_beta would be a surprise to the tests.
 */
#define BURN(x, units)							\
	do {								\
		for (unsigned int u = 0; u < (units); u++) {		\
			for (int i = 0; i < 8192; i++) {		\
				(x) ^= (x) >> 29;			\
				(x) *= 0xbf58476d1ce4e5b9ul;		\
				__asm__ volatile("" : "+r"(x));		\
			}						\
		}							\
	} while (0)

/*
 * The two bodies are identical on purpose.  no_icf keeps GCC's identical
 * code folding from merging them (it does when they are static), which would
 * leave one function with two names.
 */
__attribute__((noinline, noclone, no_icf))
unsigned long burn_alpha(unsigned int units)
{
	unsigned long x = units;

	BURN(x, units);
	return x;
}

__attribute__((noinline, noclone, no_icf))
unsigned long burn_beta(unsigned int units)
{
	unsigned long x = units;

	BURN(x, units);
	return x;
}

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/*
 * work_loop with each call timed (--timed): the split of time, which is
 * what a profiler measures, rather than of units, which the two identical
 * bodies only make nearly equal (their code sits at different addresses).
 * Preemption lengthens whichever call it lands in, in proportion to its
 * time, so the ratio stays fair.
 */
__attribute__((noinline, noclone))
static void work_loop_timed(unsigned int p, struct worker *w)
{
	unsigned long long t0 = mono_ns(), t1, t2;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		sink = burn_alpha(p);
		t1 = mono_ns();
		w->alpha_units += p;
		sink = burn_beta(100 - p);
		t2 = mono_ns();
		w->beta_units += 100 - p;
		w->alpha_ns += t1 - t0;
		w->beta_ns += t2 - t1;
		t0 = t2;
	}
}

__attribute__((noinline, noclone))
void work_loop(unsigned int p, unsigned long *alpha, unsigned long *beta)
{
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		sink = burn_alpha(p);
		*alpha += p;
		sink = burn_beta(100 - p);
		*beta += 100 - p;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	/* From the thread itself: naming another thread writes to /proc. */
	snprintf(name, sizeof name, "burner-%d", w->index);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	work_loop(split, &w->alpha_units, &w->beta_units);
	return NULL;
}

/*
 * The thread of --timed.  Its own function, so that worker_main stays as the
 * tests know it: with the choice made there, GCC split worker_main and the
 * debug info showed an inlined worker_main in worker_main.
 */
static void *worker_timed_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	snprintf(name, sizeof name, "burner-%d", w->index);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	work_loop_timed(split, w);
	return NULL;
}

static void sleep_seconds(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	unsigned long alpha = 0, beta = 0;
	unsigned long long alpha_ns = 0, beta_ns = 0;
	double seconds = -1;
	struct worker *workers;
	int nthreads = 2;
	const struct target_option options[] = {
		{ "threads", .int_value = &nthreads, .min = 1, .max = 4096 },
		{ "seconds", .seconds = &seconds },
		{ "split", .uint_value = &split, .min = 0, .max = 100 },
		{ "timed", .flag = &timed },
		{ NULL },
	};

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options,
		       "usage: burner [--threads N] [--seconds S] [--split P] [--timed]");

	workers = calloc((size_t)nthreads, sizeof *workers);
	if (workers == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		workers[i].index = i;
		workers[i].thread = target_thread("burner", timed ? worker_timed_main : worker_main,
						  &workers[i]);
	}
	pthread_barrier_wait(&started);
	target_ready();

	if (seconds >= 0)
		sleep_seconds(seconds);
	else
		target_wait_for_quit();
	atomic_store(&stop, true);
	for (int i = 0; i < nthreads; i++) {
		pthread_join(workers[i].thread, NULL);
		alpha += workers[i].alpha_units;
		beta += workers[i].beta_units;
		alpha_ns += workers[i].alpha_ns;
		beta_ns += workers[i].beta_ns;
	}
	printf("alpha_units=%lu\nbeta_units=%lu\n", alpha, beta);
	if (timed)
		printf("alpha_ns=%llu\nbeta_ns=%llu\n", alpha_ns, beta_ns);
	free(workers);
	return 0;
}
