/*
 * threads: N named threads, B of them spinning and the rest blocked on a
 * condition variable (a futex wait), for many-thread and idle-heavy cases.
 * idle_wakeups counts returns from the wait that nobody asked for: a
 * profiler must not wake blocked threads.  With --spin-after MS the blocked
 * threads' wait times out after MS milliseconds and they spin from then on
 * (a thread that was idle long enough to be watched, then runs).  With
 * --block-after MS the spinning threads stop spinning MS milliseconds after
 * start and block in idle_wait (one or the other option, not both).
 */
#include <limits.h>
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
static atomic_ulong idle_wakeups;
static int nbusy = -1;
static int spin_after_ms, block_after_ms;
static atomic_bool block_now;
static struct timespec spin_at;
static pthread_barrier_t started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t quit_cond = PTHREAD_COND_INITIALIZER;

static __attribute__((noinline, noclone)) void busy_spin(void)
{
	unsigned long x = 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed) &&
	       !atomic_load_explicit(&block_now, memory_order_relaxed))
		TARGET_MIX(x);
}

/* Returns true when the --spin-after time came. */
static __attribute__((noinline, noclone)) bool idle_wait(void)
{
	bool timed_out = false;

	pthread_mutex_lock(&lock);
	while (!atomic_load(&stop) && !timed_out) {
		if (spin_after_ms > 0)
			timed_out = pthread_cond_timedwait(&quit_cond, &lock, &spin_at) != 0;
		else
			pthread_cond_wait(&quit_cond, &lock);
		if (!atomic_load(&stop) && !timed_out)
			atomic_fetch_add(&idle_wakeups, 1);
	}
	pthread_mutex_unlock(&lock);
	return timed_out;
}

/* --block-after: tells the spinning threads to block, then exits. */
static void *blocker_main(void *arg)
{
	(void)arg;
	usleep((useconds_t)block_after_ms * 1000u);
	atomic_store(&block_now, true);
	return NULL;
}

static void *worker_main(void *arg)
{
	int index = (int)(long)arg;
	char name[16];

	snprintf(name, sizeof name, "worker-%d", index);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	if (index < nbusy || idle_wait()) {
		busy_spin();
		if (atomic_load(&block_now))
			idle_wait();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = 16;
	const struct target_option options[] = {
		{ "threads", .int_value = &nthreads, .min = 1, .max = 4096 },
		{ "busy", .int_value = &nbusy, .min = 0, .max = INT_MAX },
		{ "spin-after", .int_value = &spin_after_ms, .min = 0, .max = INT_MAX },
		{ "block-after", .int_value = &block_after_ms, .min = 0, .max = INT_MAX },
		{ NULL },
	};
	pthread_t *threads;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: threads [--threads N] [--busy B] [--spin-after MS | --block-after MS]");
	if (nbusy < 0 || nbusy > nthreads)
		nbusy = nthreads;

	/* pthread_cond_timedwait's clock, CLOCK_REALTIME by default. */
	clock_gettime(CLOCK_REALTIME, &spin_at);
	spin_at.tv_sec += spin_after_ms / 1000;
	spin_at.tv_nsec += (long)(spin_after_ms % 1000) * 1000000L;
	if (spin_at.tv_nsec >= 1000000000L) {
		spin_at.tv_sec++;
		spin_at.tv_nsec -= 1000000000L;
	}
	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		threads[i] = target_thread("threads", worker_main, (void *)(long)i);
	pthread_barrier_wait(&started);
	if (block_after_ms > 0)
		pthread_detach(target_thread("blocker", blocker_main, NULL));
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
