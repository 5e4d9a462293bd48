/*
 * bench_pause: what one sample costs the target and the sampler.
 *
 * For a thread spinning at the bottom of a 20- and a 200-frame recursion
 * (tests/targets/deep), measured in the same run with the variants
 * interleaved:
 *   bare   PTRACE_INTERRUPT + waitpid + PTRACE_GETREGSET + PTRACE_CONT on an
 *          already seized thread: the floor of any ptrace sampler's pause;
 *   perch  the engine's pause for that thread in target_sample()
 *          (interrupt to detach, stack copy included);
 * then the sampler's CPU per thread sample (unwind + symbolize, warm) for
 *   perch        the engine as shipped;
 *   perch+mask   the engine keeping libunwind's signal masking;
 *   stock        libunwind-ptrace's own accessors, address space and
 *                _UPT_info reused, UNW_CACHE_GLOBAL (thread stopped meanwhile);
 *   naive        stock accessors with a fresh address space and _UPT_info
 *                per sample.
 * Prints a markdown table: medians, p99 and ratios.
 */
#include <elf.h>
#include <errno.h>
#include <libunwind-ptrace.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "target.h"
#include "tracer.h"

struct series {
	double *v;
	size_t n, cap;
};

static void add(struct series *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (s->v == NULL)
			abort();
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(struct series *s, double p)
{
	size_t i;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof *s->v, cmp_double);
	i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

static int stop_seized(pid_t tid)
{
	int status;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -1;
	for (;;) {
		if (waitpid(tid, &status, __WALL) != tid)
			return -1;
		if (WIFSTOPPED(status) && status >> 16 == PTRACE_EVENT_STOP)
			return 0;
		if (WIFSTOPPED(status))
			ptrace(PTRACE_CONT, tid, 0, (void *)(long)WSTOPSIG(status));
		else
			return -1;
	}
}

/* The bare cycle, timed from the interrupt to the return of PTRACE_CONT. */
static double bare_cycle(pid_t tid)
{
	struct user_regs_struct regs;
	struct iovec iov = { &regs, sizeof regs };
	unsigned long long t0, t1;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)
		return -1;
	t0 = mono_ns();
	if (stop_seized(tid) < 0)
		return -1;
	ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov);
	ptrace(PTRACE_CONT, tid, 0, 0);
	t1 = mono_ns();
	stop_seized(tid);
	ptrace(PTRACE_DETACH, tid, 0, 0);
	return (double)(t1 - t0) / 1000.0;
}

/* A stock libunwind-ptrace unwind of a stopped thread; returns µs. */
static double stock_unwind(pid_t tid, unw_addr_space_t *as, void **upt, int *frames)
{
	unsigned long long t0, t1;
	unw_cursor_t c;
	int n = 0;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0 || stop_seized(tid) < 0)
		return -1;
	t0 = mono_ns();
	if (*as == NULL) {
		*as = unw_create_addr_space(&_UPT_accessors, 0);
		unw_set_caching_policy(*as, UNW_CACHE_GLOBAL);
		*upt = _UPT_create(tid);
	}
	if (unw_init_remote(&c, *as, *upt) == 0)
		while (++n < 1024 && unw_step(&c) > 0)
			;
	t1 = mono_ns();
	ptrace(PTRACE_DETACH, tid, 0, 0);
	*frames = n;
	return (double)(t1 - t0) / 1000.0;
}

static const struct perch_thread *find(const struct perch_sample *s, pid_t tid)
{
	for (size_t i = 0; i < s->nthreads; i++)
		if (s->threads[i].tid == tid)
			return &s->threads[i];
	return NULL;
}

static pid_t deep_thread(pid_t pid)
{
	pid_t tids[16];
	int n = proc_threads(pid, tids, 16);

	for (int i = 0; i < n; i++) {
		char path[96], name[32] = "";
		FILE *f;

		snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)pid, (int)tids[i]);
		f = fopen(path, "r");
		if (f != NULL) {
			if (fgets(name, sizeof name, f) == NULL)
				name[0] = '\0';
			fclose(f);
		}
		if (strncmp(name, "deep-0", 6) == 0)
			return tids[i];
	}
	return -1;
}

/* Engine CPU per sample of the deep thread: unwind + symbolize, in µs. */
static double engine_cpu(struct target *t, pid_t tid, double *pause, size_t *nframes)
{
	const struct target_stats *st = target_stats(t);
	uint64_t before = st->unwind_ns + st->symbolize_ns;
	struct perch_sample s;
	const struct perch_thread *th;

	if (target_sample(t, &s) < 0 || (th = find(&s, tid)) == NULL ||
	    th->capture != PERCH_CAPTURE_STOPPED)
		return -1;
	*pause = (double)th->pause_ns / 1000.0;
	*nframes = th->nframes;
	return (double)(st->unwind_ns + st->symbolize_ns - before) / 1000.0;
}

static int run_depth(int depth, int samples)
{
	char depth_arg[16];
	const char *args[] = { "--depth", depth_arg, "--threads", "1", NULL };
	struct series bare = { 0 }, pause = { 0 }, cpu = { 0 }, cpu_mask = { 0 };
	struct series stock = { 0 }, naive = { 0 };
	struct target_opts mask_opts = { .unwind.keep_signal_masking = true };
	struct target *t, *tm;
	unw_addr_space_t as = NULL;
	void *upt = NULL;
	struct child c;
	size_t nframes = 0;
	int stock_frames = 0;
	char *cause;
	pid_t tid;

	snprintf(depth_arg, sizeof depth_arg, "%d", depth);
	if (spawn_target(&c, "deep", args) < 0 || (tid = deep_thread(c.pid)) < 0) {
		fprintf(stderr, "bench_pause: cannot start deep\n");
		return -1;
	}
	if (target_open(c.pid, NULL, &t, &cause) < 0 ||
	    target_open(c.pid, &mask_opts, &tm, &cause) < 0) {
		fprintf(stderr, "bench_pause: %s\n", cause);
		child_kill(&c);
		return -1;
	}
	for (int i = -50; i < samples; i++) {
		double b = bare_cycle(tid), p, x, m, k, nv;
		unw_addr_space_t fresh_as = NULL;
		void *fresh_upt = NULL;
		size_t nf;

		m = engine_cpu(tm, tid, &p, &nf);
		k = stock_unwind(tid, &as, &upt, &stock_frames);
		if (i % 10 == 0) {
			nv = stock_unwind(tid, &fresh_as, &fresh_upt, &stock_frames);
			_UPT_destroy(fresh_upt);
			unw_destroy_addr_space(fresh_as);
		} else {
			nv = -1;
		}
		x = engine_cpu(t, tid, &p, &nf);
		if (i < 0 || b < 0 || x < 0 || m < 0 || k < 0)
			continue;
		nframes = nf;
		add(&bare, b);
		add(&pause, p);
		add(&cpu, x);
		add(&cpu_mask, m);
		add(&stock, k);
		if (nv >= 0)
			add(&naive, nv);
	}
	printf("| %d | %zu | %.1f / %.1f | %.1f / %.1f | %.2f× / %.2f× | %.1f | %.1f | %.1f | %.0f |\n",
	       depth, nframes, pct(&bare, 50), pct(&bare, 99), pct(&pause, 50),
	       pct(&pause, 99), pct(&pause, 50) / pct(&bare, 50),
	       pct(&pause, 99) / pct(&bare, 99), pct(&cpu, 50), pct(&cpu_mask, 50),
	       pct(&stock, 50), pct(&naive, 50));
	fprintf(stderr, "depth %d: %zu samples, stock unwinder saw %d frames, "
		"perch copied %.0f bytes of stack per thread sample\n", depth, bare.n,
		stock_frames, (double)target_stats(t)->copy_bytes /
		(double)target_stats(t)->thread_samples[PERCH_CAPTURE_STOPPED]);
	_UPT_destroy(upt);
	unw_destroy_addr_space(as);
	target_close(t);
	target_close(tm);
	child_quit(&c);
	free(bare.v); free(pause.v); free(cpu.v); free(cpu_mask.v);
	free(stock.v); free(naive.v);
	return 0;
}

int main(int argc, char **argv)
{
	int samples = argc > 1 ? atoi(argv[1]) : 1000;

	if (samples <= 0) {
		fprintf(stderr, "usage: bench_pause [SAMPLES]\n");
		return 2;
	}
	/* As perchd's samplers do; the bare cycle runs on the same thread. */
	if (tracer_prioritize() != 1)
		fprintf(stderr, "bench_pause: not running real-time: pauses include waiting for a CPU\n");
	printf("| depth | frames | bare cycle p50 / p99 (µs) | perch pause p50 / p99 (µs) "
	       "| ratio p50 / p99 | perch CPU (µs) | perch + libunwind signal masking (µs) "
	       "| stock accessors, cached (µs) | stock, fresh per sample (µs) |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	if (run_depth(20, samples) < 0 || run_depth(200, samples) < 0)
		return 1;
	return 0;
}
