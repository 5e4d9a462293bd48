/*
 * deep: threads that recurse D frames deep and spin at the bottom, so the
 * stack at the hot leaf is deep_leaf, D x recurse, the thread function, ...
 * --main runs the recursion in the main thread as well, to get the main
 * thread's stack shape (main, __libc_start_call_main, ...).
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
static atomic_int at_leaf;	/* deep-N threads that reached deep_leaf */
static int depth = 200;
static pthread_barrier_t started;

static __attribute__((noinline, noclone)) void deep_leaf(void)
{
	unsigned long x = 1;

	atomic_fetch_add(&at_leaf, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		__asm__ volatile("" : "+r"(x));
	}
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

static void *deep_thread(void *arg)
{
	char name[16];

	snprintf(name, sizeof name, "deep-%d", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&started);
	recurse(depth);
	return NULL;
}

static void wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

static void *quit_thread(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "deep-stdin");
	pthread_barrier_wait(&started);
	wait_for_quit();
	atomic_store(&stop, true);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: deep [--depth D] [--threads N] [--main]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "depth", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "main", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	bool in_main = false;
	int nthreads = 1, opt;
	pthread_t *threads, quitter;
	char *end;

	/* A test runner that crashes must not leave us spinning. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			depth = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || depth < 1 || depth > 100000)
				usage();
			break;
		case 't':
			nthreads = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nthreads < 0 || nthreads > 4096)
				usage();
			break;
		case 'm':
			in_main = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (nthreads == 0 && !in_main))
		usage();

	threads = calloc((size_t)nthreads, sizeof *threads);
	if (threads == NULL && nthreads > 0)
		return 1;
	pthread_barrier_init(&started, NULL,
			     (unsigned int)nthreads + 1 + in_main);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&threads[i], NULL, deep_thread,
				   (void *)(long)i) != 0) {
			fprintf(stderr, "deep: pthread_create failed\n");
			return 1;
		}
	}
	if (in_main && pthread_create(&quitter, NULL, quit_thread, NULL) != 0) {
		fprintf(stderr, "deep: pthread_create failed\n");
		return 1;
	}
	pthread_barrier_wait(&started);
	/*
	 * "ready" once every deep-N thread spins at the bottom: right after
	 * the barrier one of them may still be in it (waking the others).
	 */
	while (atomic_load(&at_leaf) < nthreads)
		usleep(100);
	printf("ready\n");
	fflush(stdout);

	if (in_main) {
		recurse(depth);
		pthread_join(quitter, NULL);
	} else {
		wait_for_quit();
		atomic_store(&stop, true);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("depth=%d\n", depth);
	free(threads);
	return 0;
}
