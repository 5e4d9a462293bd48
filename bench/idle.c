/*
 * bench_idle: the engine's cost per tick against the number of idle threads
 * (BENCHMARKS.md, table 4; driven by bench/idle.sh).
 *
 * The target is tests/targets/threads with B busy threads and I idle ones
 * blocked on a condition variable (a futex wait).  Each round starts one
 * target per idle count, in an order that rotates from round to round so
 * that drifting machine load does not favour one count, and times
 * target_sample() at the given rate: the sampling thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID: the engine is single-threaded) and the wall
 * time of the call.  The first ticks are left out: they capture every
 * thread and warm the symbol caches, which a long session pays once.
 *
 * Output, one line per idle count, for the script to format:
 *   idle=I threads=T cpu_us=MED,MIN,MAX wall_us=MED,MIN,MAX
 *   pause_us=MED stopped=S blocked=B reused=R watched=W2 wakeups=W
 * where MED/MIN/MAX are the median, minimum and maximum of the per-round
 * medians, S/B/R the thread captures per tick of each kind, and W the
 * idle_wakeups the target reported (spurious returns from its futex wait,
 * summed over rounds: a sampler that woke idle threads would show them).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spawn.h"
#include "target.h"
#include "tracer.h"

#define WARMUP_TICKS 5
#define MAX_COUNTS 8

struct result {
	int idle;
	double *cpu_med, *wall_med;	/* one per round */
	double pause_ns, stopped, blocked, reused, watched, ticks;
	long wakeups;
	size_t threads;
};

static unsigned long long clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull +
	       (unsigned long long)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Sleeps until an absolute CLOCK_MONOTONIC time. */
static void sleep_until(unsigned long long ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull),
			       (long)(ns % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* One target, one idle count, one round: fills the round's medians. */
static int run_one(struct result *r, int busy, int ticks, double rate,
		   size_t round, bool no_watch)
{
	char nthreads[16], nbusy[16];
	const char *args[] = { "--threads", nthreads, "--busy", nbusy, NULL };
	const struct target_stats *st;
	struct target_stats before = { 0 };
	struct target_opts opts = { 0 };
	struct perch_sample s;
	struct target *t = NULL;
	struct child c;
	double *cpu, *wall;
	unsigned long long period = (unsigned long long)(1e9 / rate), next;
	char *cause = NULL;
	int rc = -1;

	snprintf(nthreads, sizeof nthreads, "%d", r->idle + busy);
	snprintf(nbusy, sizeof nbusy, "%d", busy);
	if (spawn_target(&c, "threads", args) < 0) {
		fprintf(stderr, "bench_idle: cannot start threads\n");
		return -1;
	}
	cpu = calloc((size_t)ticks, sizeof *cpu);
	wall = calloc((size_t)ticks, sizeof *wall);
	if (cpu == NULL || wall == NULL)
		goto out_free;
	opts.no_switchwatch = no_watch;
	if (target_open(c.pid, &opts, &t, &cause) < 0) {
		fprintf(stderr, "bench_idle: %s\n", cause ? cause : "target_open");
		goto out_free;
	}
	next = clock_ns(CLOCK_MONOTONIC);
	for (int i = -WARMUP_TICKS; i < ticks; i++) {
		unsigned long long c0, w0;

		next += period;
		sleep_until(next);
		if (i == 0)
			before = *target_stats(t);
		c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		w0 = clock_ns(CLOCK_MONOTONIC);
		if (target_sample(t, &s) < 0) {
			fprintf(stderr, "bench_idle: target_sample failed\n");
			goto out_close;
		}
		if (i >= 0) {
			cpu[i] = (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e3;
			wall[i] = (double)(clock_ns(CLOCK_MONOTONIC) - w0) / 1e3;
		}
	}
	st = target_stats(t);
	r->threads = s.nthreads;
	r->ticks += ticks;
	r->pause_ns += (double)(st->pause_ns - before.pause_ns);
	r->stopped += (double)(st->thread_samples[PERCH_CAPTURE_STOPPED] -
			       before.thread_samples[PERCH_CAPTURE_STOPPED]);
	r->blocked += (double)(st->thread_samples[PERCH_CAPTURE_BLOCKED] -
			       before.thread_samples[PERCH_CAPTURE_BLOCKED]);
	r->reused += (double)(st->thread_samples[PERCH_CAPTURE_REUSED] -
			      before.thread_samples[PERCH_CAPTURE_REUSED]);
	r->watched += (double)(st->watched - before.watched);
	r->cpu_med[round] = median(cpu, (size_t)ticks);
	r->wall_med[round] = median(wall, (size_t)ticks);
	rc = 0;
out_close:
	target_close(t);
out_free:
	free(cause);
	free(cpu);
	free(wall);
	if (child_quit(&c) == 0 && rc == 0) {
		long w = child_report_long(&c, "idle_wakeups");

		r->wakeups += w > 0 ? w : 0;
	} else {
		child_kill(&c);
	}
	return rc;
}

static void print_range(const char *key, double *v, size_t n)
{
	/* median() sorts: min and max are then the ends. */
	double med = median(v, n);

	printf(" %s=%.1f,%.1f,%.1f", key, med, v[0], v[n - 1]);
}

static int parse_counts(const char *arg, struct result *res, size_t *n)
{
	char *copy = strdup(arg), *save = NULL, *tok;

	*n = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_COUNTS || atoi(tok) < 0) {
			free(copy);
			return -1;
		}
		res[(*n)++].idle = atoi(tok);
	}
	free(copy);
	return *n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "ticks", required_argument, NULL, 't' },
		{ "idle", required_argument, NULL, 'i' },
		{ "busy", required_argument, NULL, 'b' },
		{ "rate", required_argument, NULL, 'f' },
		{ "no-switchwatch", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	struct result res[MAX_COUNTS] = { { 0 } };
	int rounds = 3, ticks = 200, busy = 2, opt;
	double rate = 99;
	bool no_watch = false;
	size_t n = 0;

	if (parse_counts("2,16,64", res, &n) < 0)
		return 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': rounds = atoi(optarg); break;
		case 't': ticks = atoi(optarg); break;
		case 'b': busy = atoi(optarg); break;
		case 'f': rate = atof(optarg); break;
		case 'w': no_watch = true; break;
		case 'i':
			if (parse_counts(optarg, res, &n) < 0)
				return 2;
			break;
		default:
			fprintf(stderr, "usage: bench_idle [--rounds R] [--ticks K] "
				"[--idle I,I,...] [--busy B] [--rate HZ] [--no-switchwatch]\n");
			return 2;
		}
	}
	if (rounds < 1 || ticks < 1 || busy < 0 || !(rate > 0))
		return 2;
	/* As in perchd: a sampler that waits for a CPU holds threads stopped. */
	tracer_prioritize();
	for (size_t i = 0; i < n; i++) {
		res[i].cpu_med = calloc((size_t)rounds, sizeof(double));
		res[i].wall_med = calloc((size_t)rounds, sizeof(double));
		if (res[i].cpu_med == NULL || res[i].wall_med == NULL)
			return 1;
	}
	for (int r = 0; r < rounds; r++)
		for (size_t k = 0; k < n; k++) {
			size_t i = (k + (size_t)r) % n;

			if (run_one(&res[i], busy, ticks, rate, (size_t)r, no_watch) < 0) {
				spawn_kill_all();
				return 1;
			}
		}
	for (size_t i = 0; i < n; i++) {
		printf("idle=%d threads=%zu", res[i].idle, res[i].threads);
		print_range("cpu_us", res[i].cpu_med, (size_t)rounds);
		print_range("wall_us", res[i].wall_med, (size_t)rounds);
		printf(" pause_us=%.1f stopped=%.2f blocked=%.2f reused=%.2f"
		       " watched=%.2f wakeups=%ld\n",
		       res[i].pause_ns / res[i].ticks / 1e3,
		       res[i].stopped / res[i].ticks, res[i].blocked / res[i].ticks,
		       res[i].reused / res[i].ticks, res[i].watched / res[i].ticks,
		       res[i].wakeups);
		free(res[i].cpu_med);
		free(res[i].wall_med);
	}
	return 0;
}
