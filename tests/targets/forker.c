/*
 * forker: a parent with CPU-bound child processes, for following children.
 * The children spin in child_work(); a parent thread spins lightly (about
 * 10 % of a CPU) in parent_work() while the main thread waits on stdin.
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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_bool stop;

static __attribute__((noinline, noclone, noreturn)) void child_work(void)
{
	unsigned long x = 1;

	for (;;) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		__asm__ volatile("" : "+r"(x));
	}
}

static void spin_ms(long ms)
{
	struct timespec start, now;
	unsigned long x = 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			__asm__ volatile("" : "+r"(x));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 +
		 (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

static __attribute__((noinline, noclone)) void parent_work(void)
{
	const struct timespec rest = { 0, 9000000 };

	while (!atomic_load(&stop)) {
		spin_ms(1);
		nanosleep(&rest, NULL);
	}
}

static pthread_barrier_t named;

static void *parent_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "forker-parent");
	/* Named before "ready": a profiler looks for it by that name. */
	pthread_barrier_wait(&named);
	parent_work();
	return NULL;
}

static pid_t start_child(pid_t parent)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* The death signal is not inherited; if the parent already died, go. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "forker-child");
	child_work();
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
	fprintf(stderr, "usage: forker [--children N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "children", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	int nchildren = 2, reaped = 0, opt;
	pthread_t parent_thread;
	pid_t *children;
	char *end;

	/* A test runner that crashes must not leave us (or the children) running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			nchildren = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || nchildren < 0 || nchildren > 1024)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	children = calloc((size_t)nchildren, sizeof *children);
	if (children == NULL && nchildren > 0)
		return 1;
	/* Fork while single-threaded: the children need nothing but libc. */
	for (int i = 0; i < nchildren; i++) {
		children[i] = start_child(getpid());
		if (children[i] < 0) {
			perror("forker: fork");
			return 1;
		}
	}
	pthread_barrier_init(&named, NULL, 2);
	if (pthread_create(&parent_thread, NULL, parent_main, NULL) != 0) {
		fprintf(stderr, "forker: pthread_create failed\n");
		return 1;
	}
	pthread_barrier_wait(&named);
	printf("ready\n");
	fflush(stdout);

	wait_for_quit();
	atomic_store(&stop, true);
	for (int i = 0; i < nchildren; i++)
		kill(children[i], SIGKILL);
	for (int i = 0; i < nchildren; i++)
		if (waitpid(children[i], NULL, 0) == children[i])
			reaped++;
	pthread_join(parent_thread, NULL);
	printf("children=%d\nreaped=%d\n", nchildren, reaped);
	free(children);
	return 0;
}
