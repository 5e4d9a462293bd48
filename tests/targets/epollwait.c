/*
 * epollwait: threads blocked in epoll_wait (or epoll_pwait), the call that
 * returns EINTR when a tracer interrupts it.  eintr counts those returns: a
 * profiler that does not disturb its target keeps it at 0.  With --tick-us
 * each thread also wakes periodically on a timerfd, like a busy event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

static atomic_ulong eintr_count, wakeups;
static long tick_us;
static bool use_pwait;
static int control[2];
static pthread_barrier_t started;

static __attribute__((noinline, noclone)) void tick_work(void)
{
	unsigned long x = 1;

	for (int i = 0; i < 300; i++) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		__asm__ volatile("" : "+r"(x));
	}
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

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: epollwait [--threads N] [--tick-us U] [--pwait]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "tick-us", required_argument, NULL, 'u' },
		{ "pwait", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int nthreads = 1, opt;
	pthread_t *threads;
	char *end;

	/* A test runner that crashes must not leave us behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 't':
			nthreads = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nthreads < 1 || nthreads > 4096)
				usage();
			break;
		case 'u':
			tick_us = strtol(optarg, &end, 10);
			if (*end != '\0' || tick_us < 0)
				usage();
			break;
		case 'p':
			use_pwait = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (pipe2(control, O_CLOEXEC) != 0) {
		perror("epollwait: pipe2");
		return 1;
	}

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&threads[i], NULL, loop_main,
				   (void *)(long)i) != 0) {
			fprintf(stderr, "epollwait: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);

	wait_for_quit();
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
