/*
 * epollwait: threads blocked in epoll_wait (or epoll_pwait), the call that
 * returns EINTR when a tracer interrupts it.  eintr counts those returns: a
 * profiler that does not disturb its target keeps it at 0.  With --tick-us
 * each thread also wakes periodically on a timerfd, like a busy event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "target_util.h"

static atomic_ulong eintr_count, wakeups;
static long tick_us;
static bool use_pwait;
static int control[2];
static pthread_barrier_t started;

static __attribute__((noinline, noclone)) void tick_work(void)
{
	unsigned long x = 1;

	for (int i = 0; i < 300; i++)
		TARGET_MIX(x);
}

static void add_fd(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		perror("epollwait: epoll_ctl");
		exit(1);
	}
}

static int make_timer(void)
{
	struct itimerspec its = {
		.it_interval = { tick_us / 1000000, tick_us % 1000000 * 1000 },
	};
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);

	its.it_value = its.it_interval;
	if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) != 0) {
		perror("epollwait: timerfd");
		exit(1);
	}
	return fd;
}

/* Returns true when the control pipe became readable: time to quit. */
static bool handle(const struct epoll_event *ev)
{
	uint64_t expirations;

	if (ev->data.fd == control[0])
		return true;
	if (read(ev->data.fd, &expirations, sizeof expirations) > 0) {
		atomic_fetch_add(&wakeups, 1);
		tick_work();
	}
	return false;
}

static void *loop_main(void *arg)
{
	struct epoll_event ev[8];
	int epfd, timer = -1;
	bool quit = false;
	char name[16];

	snprintf(name, sizeof name, "epoll-%d", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("epollwait: epoll_create1");
		exit(1);
	}
	/* Level-triggered and never drained: one byte wakes every thread. */
	add_fd(epfd, control[0]);
	if (tick_us > 0) {
		timer = make_timer();
		add_fd(epfd, timer);
	}
	pthread_barrier_wait(&started);
	while (!quit) {
		int n = use_pwait ? epoll_pwait(epfd, ev, 8, -1, NULL) :
				    epoll_wait(epfd, ev, 8, -1);

		if (n < 0 && errno == EINTR) {
			atomic_fetch_add(&eintr_count, 1);
			continue;
		}
		if (n < 0) {
			perror("epollwait: epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++)
			quit |= handle(&ev[i]);
	}
	if (timer >= 0)
		close(timer);
	close(epfd);
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = 1;
	const struct target_option options[] = {
		{ "threads", .int_value = &nthreads, .min = 1, .max = 4096 },
		{ "tick-us", .long_value = &tick_us, .min = 0, .max = LONG_MAX },
		{ "pwait", .flag = &use_pwait },
		{ NULL },
	};
	pthread_t *threads;

	/* A test runner that crashes must not leave us behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options,
		       "usage: epollwait [--threads N] [--tick-us U] [--pwait]");
	if (pipe2(control, O_CLOEXEC) != 0) {
		perror("epollwait: pipe2");
		return 1;
	}

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		threads[i] = target_thread("epollwait", loop_main, (void *)(long)i);
	pthread_barrier_wait(&started);
	target_ready();

	target_wait_for_quit();
	if (write(control[1], "q", 1) != 1) {
		perror("epollwait: write");
		return 1;
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("eintr=%lu\nwakeups=%lu\n", atomic_load(&eintr_count),
	       atomic_load(&wakeups));
	free(threads);
	return 0;
}
