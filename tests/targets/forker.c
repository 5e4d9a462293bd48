/*
 * forker: a parent with CPU-bound child processes, for following children.
 * The children spin in child_work(); a parent thread spins lightly (about
 * 10 % of a CPU) in parent_work() while the main thread waits on stdin.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target_util.h"

static atomic_bool stop;

static __attribute__((noinline, noclone, noreturn)) void child_work(void)
{
	unsigned long x = 1;

	for (;;)
		TARGET_MIX(x);
}

static void spin_ms(long ms)
{
	TARGET_SPIN_MS(ms, true);
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

int main(int argc, char **argv)
{
	int nchildren = 2, reaped = 0;
	const struct target_option options[] = {
		{ "children", .int_value = &nchildren, .min = 0, .max = 1024 },
		{ NULL },
	};
	pthread_t parent_thread;
	pid_t *children;

	/* A test runner that crashes must not leave us (or the children) running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, "usage: forker [--children N]");

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
	parent_thread = target_thread("forker", parent_main, NULL);
	pthread_barrier_wait(&named);
	target_ready();

	target_wait_for_quit();
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
