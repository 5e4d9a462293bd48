/*
 * threads: N named threads, B of them spinning and the rest blocked on a
 * condition variable (a futex wait), for many-thread and idle-heavy cases.
 * idle_wakeups counts returns from the wait that nobody asked for: a
 * profiler must not wake blocked threads.
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
static atomic_ulong idle_wakeups;
static int nbusy = -1;
static pthread_barrier_t started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t quit_cond = PTHREAD_COND_INITIALIZER;

static __attribute__((noinline, noclone)) void busy_spin(void)
{
	unsigned long x = 1;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		__asm__ volatile("" : "+r"(x));
	}
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

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

static void usage(void)
{
	fprintf(stderr, "usage: threads [--threads N] [--busy B]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "busy", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	int nthreads = 16, opt;
	pthread_t *threads;
	char *end;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 't':
			nthreads = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nthreads < 1 || nthreads > 4096)
				usage();
			break;
		case 'b':
			nbusy = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nbusy < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (nbusy < 0 || nbusy > nthreads)
		nbusy = nthreads;

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL)
		return 1;
	pthread_barrier_init(&started, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&threads[i], NULL, worker_main,
				   (void *)(long)i) != 0) {
			fprintf(stderr, "threads: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);

	wait_for_quit();
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
