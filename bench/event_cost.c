/*
 * bench_event_cost THREADS ROUNDS [STACK_BYTES=4096] [inherit]: what the
 * kernel's sampling events alone cost a CPU-bound target, without perchd.
 * Runs tests/targets/burner --threads THREADS --seconds 3 four times a
 * round: unsampled, with a kernel sampler (ksample.c, as the engine opens
 * it) on every thread at a 0.8 ms period, unsampled, and at an 8 ms period.
 * A reader empties the rings every millisecond in every run, sampled or
 * not, so that its own wake-ups cost all runs alike.  Prints the burner's
 * work per run and each sampled run's loss against the mean of the round's
 * two unsampled runs (BENCHMARKS.md, the full run of 2026-11-26 13:46).
 *
 * With "inherit", the two sampled runs of a round are at 0.8 ms both: the
 * engine's event attached to every thread of the running burner, as perch
 * and `perf record -p` attach, and the same event opened on the burner
 * before it starts, one per CPU, inherited by its threads as they are
 * created, as `perf record -- burner` opens it.  Both readers only count
 * and discard the records.  Whether attaching costs the target more than
 * inheriting is what table 2 of issue 5 needed to know (perf starts the
 * burner there, perch attaches).
 */
#include <linux/perf_event.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ksample.h"
#include "perfring.h"
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
		pid_t tids[MAX_THREADS];
		int nt = proc_threads(c.pid, tids, MAX_THREADS);

		for (int i = 0; i < nt; i++) {
			int rc = ksample_open(tids[i], period_ns, stack, &ks[n]);

			if (rc < 0) {
				fprintf(stderr, "bench_event_cost: ksample_open: %s\n", strerror(-rc));
				exit(1);
			}
			ksample_assume(ks[n++], KSAMPLE_RUNNING);
		}
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

/* Sample records in the rings since the last call, counted; the rest dropped. */
static uint64_t drain(struct perfring *rings, size_t n)
{
	uint64_t samples = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t head = perfring_head(&rings[i]), tail = perfring_tail(&rings[i]);

		while (tail < head) {
			/* Headers are 8-byte aligned and never split by the ring's end. */
			const struct perf_event_header *h =
				(const void *)(rings[i].data + (tail & rings[i].mask));

			samples += h->type == PERF_RECORD_SAMPLE;
			tail += h->size;
		}
		perfring_release(&rings[i], head);
	}
	return samples;
}

static void open_or_die(struct perf_event_attr *attr, pid_t pid, int cpu, size_t pages,
			struct perfring *r)
{
	int rc = perfring_open_cpu(attr, pid, cpu, pages, r);

	if (rc < 0) {
		fprintf(stderr, "bench_event_cost: perf_event_open: %s\n", strerror(-rc));
		exit(1);
	}
}

/*
 * One run for the inherit mode: the burner's work units; *samples the
 * records taken.  inherit: events opened on the burner's first thread
 * before it runs, one per CPU, inherited by every thread it creates;
 * otherwise on each of its threads once it is ready.
 */
static double run_raw(const char *threads, bool sampled, bool inherit, size_t stack,
		      uint64_t *samples)
{
	static struct perfring rings[MAX_THREADS];
	long ncpus = sysconf(_SC_NPROCESSORS_CONF);
	int gate[2], out[2];
	struct perf_event_attr attr;
	size_t pages = ksample_attr(800000, &stack, &attr), n = 0;
	double work = 0;
	char line[256];
	FILE *f;
	pid_t pid;

	if (pipe(gate) < 0 || pipe(out) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		char go;

		close(gate[1]);
		dup2(out[1], 1);
		if (read(gate[0], &go, 1) != 1)
			_exit(127);
		execl(PERCH_TARGETS_DIR "/burner", "burner", "--threads", threads, "--seconds", "3",
		      (char *)NULL);
		_exit(127);
	}
	close(gate[0]);
	close(out[1]);
	attr.inherit = inherit;
	for (long cpu = 0; sampled && inherit && cpu < ncpus && n < MAX_THREADS; cpu++)
		open_or_die(&attr, pid, (int)cpu, pages, &rings[n++]);
	if (write(gate[1], "g", 1) != 1)
		exit(1);
	f = fdopen(out[0], "r");
	if (f == NULL || fgets(line, sizeof line, f) == NULL || strcmp(line, "ready\n") != 0) {
		fprintf(stderr, "bench_event_cost: the burner did not start\n");
		exit(1);
	}
	if (sampled && !inherit) {
		pid_t tids[MAX_THREADS];
		int nt = proc_threads(pid, tids, MAX_THREADS);

		for (int i = 0; i < nt; i++)
			open_or_die(&attr, tids[i], -1, pages, &rings[n++]);
	}
	*samples = 0;
	for (;;) {
		siginfo_t info = { .si_pid = 0 };

		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    info.si_pid != 0)
			break;
		usleep(1000);
		*samples += drain(rings, n);
	}
	*samples += drain(rings, n);
	while (fgets(line, sizeof line, f) != NULL) {
		char *units = strstr(line, "_units=");

		if (units != NULL)
			work += atof(units + 7);
	}
	fclose(f);
	close(gate[1]);
	waitpid(pid, NULL, 0);
	for (size_t i = 0; i < n; i++)
		perfring_close(&rings[i]);
	return work;
}

static void inherit_rounds(const char *threads, int rounds, size_t stack)
{
	printf("burner --threads %s --seconds 3, %d rounds, %zu-byte stack copies, 0.8 ms: "
	       "attached to every thread, or inherited from the start\n", threads, rounds, stack);
	for (int r = 0; r < rounds; r++) {
		uint64_t none, at, inh;
		double a = run_raw(threads, false, false, stack, &none);
		double b = run_raw(threads, true, false, stack, &at);
		double c = run_raw(threads, false, false, stack, &none);
		double d = run_raw(threads, true, true, stack, &inh);
		double base = (a + c) / 2;

		printf("round %d: unsampled %.0f, attached %.0f (%.2f %% lost, %llu samples), "
		       "unsampled %.0f, inherited %.0f (%.2f %% lost, %llu samples)\n", r, a, b,
		       100 * (1 - b / base), (unsigned long long)at, c, d, 100 * (1 - d / base),
		       (unsigned long long)inh);
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	size_t stack = argc > 3 ? (size_t)atol(argv[3]) : 4096;
	int rounds = argc > 2 ? atoi(argv[2]) : 0;

	if (argc < 3 || atoi(argv[1]) < 1 || atoi(argv[1]) > MAX_THREADS - 1 || rounds < 1 ||
	    (argc > 4 && strcmp(argv[4], "inherit") != 0)) {
		fprintf(stderr, "usage: bench_event_cost THREADS ROUNDS [STACK_BYTES] [inherit]\n");
		return 2;
	}
	if (argc > 4) {
		inherit_rounds(argv[1], rounds, stack);
		return 0;
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
