/*
 * bench_event_cost THREADS ROUNDS [STACK_BYTES=4096]: what the kernel's
 * sampling events alone cost a CPU-bound target, without perchd.  Runs
 * tests/targets/burner --threads THREADS --seconds 3 four times a round:
 * unsampled, with a kernel sampler (ksample.c, as the engine opens it) on
 * every thread at a 0.8 ms period, unsampled, and at an 8 ms period.  A
 * reader empties the rings every millisecond in every run, sampled or not,
 * so that its own wake-ups cost all runs alike.  Prints the burner's work
 * per run and each sampled run's loss against the mean of the round's two
 * unsampled runs (BENCHMARKS.md, the full run of 2026-11-26 13:46).
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ksample.h"
#include "spawn.h"

#define MAX_THREADS 512

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The burner's work units (alpha + beta) for one run; period 0: no samplers. */
static double run(const char *threads, uint64_t period_ns, size_t stack)
{
	const char *args[] = { "--threads", threads, "--seconds", "3", NULL };
	struct ksampler *ks[MAX_THREADS];
	struct thread_snapshot snap = { 0 };
	struct ksample_look look;
	struct child c;
	size_t n = 0;
	double work;

	if (spawn_target(&c, "burner", args) < 0) {
		fprintf(stderr, "bench_event_cost: cannot start the burner\n");
		exit(1);
	}
	if (period_ns > 0) {
		char path[64];
		struct dirent *e;
		DIR *d;

		snprintf(path, sizeof path, "/proc/%d/task", (int)c.pid);
		d = opendir(path);
		while (d != NULL && (e = readdir(d)) != NULL && n < MAX_THREADS) {
			int tid = atoi(e->d_name), rc;

			if (tid <= 0)
				continue;
			rc = ksample_open(tid, period_ns, stack, &ks[n]);
			if (rc < 0) {
				fprintf(stderr, "bench_event_cost: ksample_open: %s\n", strerror(-rc));
				exit(1);
			}
			ksample_assume(ks[n++], KSAMPLE_RUNNING);
		}
		if (d != NULL)
			closedir(d);
	}
	for (;;) {
		siginfo_t info = { .si_pid = 0 };

		/* Exited? Left unreaped: child_wait collects its report. */
		if (waitid(P_PID, (id_t)c.pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    info.si_pid != 0)
			break;
		usleep(1000);
		for (size_t i = 0; i < n; i++)
			ksample_take(ks[i], now_ns(), &snap, &look);
	}
	for (size_t i = 0; i < n; i++)
		ksample_close(ks[i]);
	thread_snapshot_free(&snap);
	if (child_wait(&c) < 0) {
		fprintf(stderr, "bench_event_cost: the burner did not end\n");
		exit(1);
	}
	work = (double)child_report_long(&c, "alpha_units") +
	       (double)child_report_long(&c, "beta_units");
	return work;
}

int main(int argc, char **argv)
{
	size_t stack = argc > 3 ? (size_t)atol(argv[3]) : 4096;
	int rounds = argc > 2 ? atoi(argv[2]) : 0;

	if (argc < 3 || atoi(argv[1]) < 1 || atoi(argv[1]) > MAX_THREADS - 1 || rounds < 1) {
		fprintf(stderr, "usage: bench_event_cost THREADS ROUNDS [STACK_BYTES]\n");
		return 2;
	}
	printf("burner --threads %s --seconds 3, %d rounds, %zu-byte stack copies\n", argv[1],
	       rounds, stack);
	for (int r = 0; r < rounds; r++) {
		double a = run(argv[1], 0, 0), b = run(argv[1], 800000, stack);
		double c = run(argv[1], 0, 0), d = run(argv[1], 8000000, stack);
		double base = (a + c) / 2;

		printf("round %d: unsampled %.0f, 0.8 ms %.0f (%.2f %% lost), unsampled %.0f, "
		       "8 ms %.0f (%.2f %% lost)\n", r, a, b, 100 * (1 - b / base), c, d,
		       100 * (1 - d / base));
		fflush(stdout);
	}
	return 0;
}
