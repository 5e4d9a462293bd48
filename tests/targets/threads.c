/*
 * threads: N named threads, B of them spinning and the rest blocked on a
 * condition variable (a futex wait), for many-thread and idle-heavy cases.
 * idle_wakeups counts returns from the wait that nobody asked for: a
 * profiler must not wake blocked threads.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "target_util.h"

static atomic_bool stop;
static atomic_ulong idle_wakeups;
static int nbusy = -1;
static pthread_barrier_t started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t quit_cond = PTHREAD_COND_INITIALIZER;

static __attribute__((noinline, noclone)) void busy_spin(void)
{
	unsigned long x = 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		TARGET_MIX(x);
}

static __attribute__((noinline, noclone)) void idle_wait(void)
{
	pthread_mutex_lock(&lock);
	while (!atomic_load(&stop)) {
		pthread_cond_wait(&quit_cond, &lock);
		if (!atomic_load(&stop))
			atomic_fetch_add(&idle_wakeups, 1);
	}
	pthread_mutex_unlock(&lock);
}

static void *worker_main(void *arg)
{
	int index = (int)(long)arg;
	char name[16];

	snprintf(name, sizeof name, "worker-%d", index);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	if (index < nbusy)
		busy_spin();
	else
		idle_wait();
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = 16;
	const struct target_option options[] = {
		{ "threads", .int_value = &nthreads, .min = 1, .max = 4096 },
		{ "busy", .int_value = &nbusy, .min = 0, .max = INT_MAX },
		{ NULL },
	};
	pthread_t *threads;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: threads [--threads N] [--busy B]");
	if (nbusy < 0 || nbusy > nthreads)
		nbusy = nthreads;

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		threads[i] = target_thread("threads", worker_main, (void *)(long)i);
	pthread_barrier_wait(&started);
	target_ready();

	target_wait_for_quit();
	pthread_mutex_lock(&lock);
	atomic_store(&stop, true);
	pthread_cond_broadcast(&quit_cond);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("idle_wakeups=%lu\n", atomic_load(&idle_wakeups));
	free(threads);
	return 0;
}
