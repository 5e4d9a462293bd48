/*
 * siglat: how late a CPU-bound process handles its signals.  The main thread
 * spins in spin(); the sender stamps CLOCK_MONOTONIC into the shared page
 * (siglat.h) just before each sigqueue(SIGUSR1), and the handler takes the
 * difference on entry.  The handler hands each latency back through the page
 * so that the sender can file it under whatever it was measuring, and keeps
 * them all for its own report: count, p50_ns, p99_ns, max_ns.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "siglat.h"
#include "target_util.h"

#define MAX_KEPT (1u << 20)

static struct siglat_page *page;
static atomic_bool quit;
static uint64_t kept[MAX_KEPT];
static atomic_size_t handled;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	uint64_t lat = now_ns() - atomic_load(&page->send_ns);
	size_t n = atomic_fetch_add(&handled, 1);
	int saved = errno;

	(void)sig;
	(void)si;
	(void)uc;
	if (n < MAX_KEPT)
		kept[n] = lat;
	atomic_store(&page->latency_ns, lat);
	atomic_store(&page->cpu, sched_getcpu());
	atomic_store(&page->ack, atomic_load(&page->seq));
	/* Not FUTEX_PRIVATE: the waiter is another process. */
	syscall(SYS_futex, &page->ack, FUTEX_WAKE, 1, NULL, NULL, 0);
	errno = saved;
}

static __attribute__((noinline, noclone)) void spin(void)
{
	unsigned long x = 1;

	while (!atomic_load_explicit(&quit, memory_order_relaxed)) {
		for (int i = 0; i < 10000; i++)
			TARGET_MIX(x);
	}
}

static void *stdin_thread(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "siglat-stdin");
	target_wait_for_quit();
	atomic_store(&quit, true);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void report(void)
{
	size_t n = atomic_load(&handled), k = n < MAX_KEPT ? n : MAX_KEPT;

	qsort(kept, k, sizeof kept[0], cmp_u64);
	printf("count=%zu\np50_ns=%llu\np99_ns=%llu\nmax_ns=%llu\n", n,
	       k ? (unsigned long long)kept[(k - 1) / 2] : 0,
	       k ? (unsigned long long)kept[(size_t)((double)(k - 1) * 0.99)] : 0,
	       k ? (unsigned long long)kept[k - 1] : 0);
}

static void map_page(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "siglat: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	page = mmap(NULL, sizeof *page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (page == MAP_FAILED) {
		fprintf(stderr, "siglat: mmap %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: siglat --shm PATH";
	struct sigaction sa = { .sa_sigaction = on_usr1,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	const char *path = NULL;
	const struct target_option options[] = {
		{ "shm", .path = &path },
		{ NULL },
	};
	sigset_t usr1;
	pthread_t reader;

	/* A benchmark that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, usage);
	if (path == NULL)
		target_usage(usage);
	map_page(path);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/* Only the spinning thread takes the signal: the reader is born blocking it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	if (pthread_create(&reader, NULL, stdin_thread, NULL) != 0) {
		fprintf(stderr, "siglat: cannot start the stdin thread\n");
		return 1;
	}
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	target_ready();

	spin();

	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_join(reader, NULL);
	report();
	return 0;
}
