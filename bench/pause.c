/*
 * bench_pause: what one sample costs the target and the sampler.
 *
 * For a thread spinning at the bottom of a 20- and a 200-frame recursion
 * (tests/targets/deep), measured in the same run with the variants
 * interleaved (in an order rotated every round, each after the thread ran
 * undisturbed for SETTLE_NS):
 *   bare   PTRACE_INTERRUPT + waitpid + PTRACE_GETREGSET + PTRACE_CONT on an
 *          already seized thread: the floor of any ptrace sampler's pause;
 *   perch  the engine's pause for that thread in target_sample()
 *          (interrupt to detach, stack copy included);
 *   bare+copy  the bare cycle (polling) that also copies as many bytes of
 *          the thread's stack as perch did: not a target, it shows what
 *          of perch's pause is the copy;
 *   bare+copy+detach  the same, ended by PTRACE_DETACH instead of
 *          PTRACE_CONT, as perch must end it (it leaves no thread traced
 *          between samples): not a target either, it is the floor of a
 *          pause that copies the stack and leaves nothing traced;
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
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "series.h"
#include "spawn.h"
#include "target.h"
#include "procfs.h"
#include "tracer.h"

static double pct(const struct series *s, double p)
{
	return percentile(s->v, s->n, p);
}

/* The CPU a thread last ran on (/proc/PID/task/TID/stat field 39), or -1. */
static int last_cpu(pid_t pid, pid_t tid)
{
	char path[96], buf[1024];
	struct procfs_stat st;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n < 0 || procfs_parse_stat(buf, (size_t)n, &st) < 0)
		return -1;
	return st.processor;
}

/*
 * Interrupts a seized thread and waits for its stop: in waitpid (blocking),
 * or polling waitpid for up to 100 µs first as the engine does (not when the
 * thread needs our CPU to stop, as the engine does not either).
 */
static int stop_seized(pid_t tid, bool poll)
{
	unsigned long long deadline = mono_ns() + 100000;
	int status;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -1;
	for (;;) {
		bool nohang = poll && mono_ns() < deadline;
		pid_t r = waitpid(tid, &status, __WALL | (nohang ? WNOHANG : 0));

		if (r == 0)
			continue;
		if (r != tid)
			return -1;
		if (WIFSTOPPED(status) && status >> 16 == PTRACE_EVENT_STOP)
			return 0;
		if (WIFSTOPPED(status))
			ptrace(PTRACE_CONT, tid, 0, (void *)(long)WSTOPSIG(status));
		else
			return -1;
	}
}

/*
 * The bare cycle of a sampler that stays seized: INTERRUPT, wait, GETREGSET,
 * CONT, timed from the interrupt to the return of PTRACE_CONT.  With len > 0
 * it also does what perch's pause must: copy len bytes of the thread's
 * stack from its stack pointer into buf before letting it go (not a target
 * of the issue: it shows how much of perch's pause over the bare cycle is
 * that copy).  With detach it lets the thread go as perch does, by
 * PTRACE_DETACH (timed to its return) rather than PTRACE_CONT.
 */
static double bare_cycle(pid_t pid, pid_t tid, bool poll, size_t len, void *buf, bool detach)
{
	struct user_regs_struct regs;
	struct iovec iov = { &regs, sizeof regs }, local = { buf, len }, remote;
	unsigned long long t0, t1;
	bool copied = true;

	poll = poll && last_cpu(pid, tid) != sched_getcpu();
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)
		return -1;
	t0 = mono_ns();
	if (stop_seized(tid, poll) < 0)
		return -1;
	ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov);
	if (len > 0) {
		remote.iov_base = (void *)regs.rsp;
		remote.iov_len = len;
		copied = process_vm_readv(pid, &local, 1, &remote, 1, 0) >= 0;
	}
	if (detach) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		t1 = mono_ns();
	} else {
		ptrace(PTRACE_CONT, tid, 0, 0);
		t1 = mono_ns();
		stop_seized(tid, false);
		ptrace(PTRACE_DETACH, tid, 0, 0);
	}
	return copied ? (double)(t1 - t0) / 1000.0 : -1;
}

/* A stock libunwind-ptrace unwind of a stopped thread; returns µs. */
static double stock_unwind(pid_t tid, unw_addr_space_t *as, void **upt, int *frames)
{
	unsigned long long t0, t1;
	unw_cursor_t c;
	int n = 0;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0 || stop_seized(tid, false) < 0)
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

/* One target (a deep process) and everything measured on it. */
struct subject {
	int depth;
	struct child c;
	pid_t tid;
	struct target *t, *tmask;
	unw_addr_space_t as;
	void *upt;
	size_t frames;
	int stock_frames;
	uint64_t copy_bytes, copies;
	struct series bare, bare_poll, bare_copy, bare_detach, pause, cpu, cpu_mask, stock, naive;
	unsigned char copy_buf[65536];
};

/* Starts the subject's target (one per block of rounds). */
static int subject_open(struct subject *sj)
{
	struct target_opts mask_opts = { .unwind.keep_signal_masking = true };
	char depth_arg[16];
	const char *args[] = { "--depth", depth_arg, "--threads", "1", NULL };
	char *cause;

	snprintf(depth_arg, sizeof depth_arg, "%d", sj->depth);
	if (spawn_target(&sj->c, "deep", args) < 0 || (sj->tid = deep_thread(sj->c.pid)) < 0) {
		fprintf(stderr, "bench_pause: cannot start deep\n");
		return -1;
	}
	if (target_open(sj->c.pid, NULL, &sj->t, &cause) < 0 ||
	    target_open(sj->c.pid, &mask_opts, &sj->tmask, &cause) < 0) {
		fprintf(stderr, "bench_pause: %s\n", cause);
		return -1;
	}
	return 0;
}

/* How long the thread runs undisturbed before each pause measured. */
#define SETTLE_NS 300000

/* One round on one subject; measurements of warm-up rounds are dropped. */
static void round_on(struct subject *sj, int i)
{
	const struct target_stats *ts = target_stats(sj->t);
	uint64_t copies = ts->thread_samples[PERCH_CAPTURE_STOPPED];
	size_t len = copies != 0 ? (size_t)(ts->copy_bytes / copies) : 8192;
	size_t clen = len < sizeof sj->copy_buf ? len : sizeof sj->copy_buf;
	double v[5], b, bp, bc, bd, p = 0, x = -1, m, k, nv = -1;
	size_t nf = 0;

	/*
	 * The five pauses in an order rotated every round, each of a thread
	 * that ran undisturbed for SETTLE_NS, as a sampler's thread has
	 * between ticks.  One let go microseconds ago stops sooner (it is
	 * still on its way out of the kernel): until 2026-11-27 the bare
	 * cycles ran back to back, each right after the previous one's
	 * release, and measured 17-18 µs where the same cycle of a thread
	 * that had run 300 µs took 21-23 µs, while perch's pause came after
	 * the unwinders' work; perch then read 1.2-1.4x the bare cycle.
	 */
	for (int n = 0; n < 5; n++) {
		int w = (n + (i < 0 ? -i : i)) % 5;

		nanosleep(&(struct timespec){ 0, SETTLE_NS }, NULL);
		if (w == 4)
			v[w] = x = engine_cpu(sj->t, sj->tid, &p, &nf);
		else
			v[w] = bare_cycle(sj->c.pid, sj->tid, w != 0, w >= 2 ? clen : 0,
					  sj->copy_buf, w == 3);
	}
	b = v[0], bp = v[1], bc = v[2], bd = v[3];
	m = engine_cpu(sj->tmask, sj->tid, &(double){ 0 }, &(size_t){ 0 });
	k = stock_unwind(sj->tid, &sj->as, &sj->upt, &sj->stock_frames);
	if (i % 10 == 0) {
		unw_addr_space_t fresh_as = NULL;
		void *fresh_upt = NULL;

		nv = stock_unwind(sj->tid, &fresh_as, &fresh_upt, &sj->stock_frames);
		_UPT_destroy(fresh_upt);
		unw_destroy_addr_space(fresh_as);
	}
	if (i < 0 || b < 0 || bp < 0 || bc < 0 || bd < 0 || x < 0 || m < 0 || k < 0)
		return;
	sj->frames = nf;
	series_add(&sj->bare, b);
	series_add(&sj->bare_poll, bp);
	series_add(&sj->bare_copy, bc);
	series_add(&sj->bare_detach, bd);
	series_add(&sj->pause, p);
	series_add(&sj->cpu, x);
	series_add(&sj->cpu_mask, m);
	series_add(&sj->stock, k);
	if (nv >= 0)
		series_add(&sj->naive, nv);
}

static void report(struct subject *sj)
{
	printf("| %d | %zu | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.2f× / %.2f× | %.2f× / %.2f× |\n",
	       sj->depth, sj->frames, pct(&sj->bare, 50), pct(&sj->bare, 99),
	       pct(&sj->bare_poll, 50), pct(&sj->bare_poll, 99),
	       pct(&sj->pause, 50), pct(&sj->pause, 99),
	       pct(&sj->pause, 50) / pct(&sj->bare_poll, 50),
	       pct(&sj->pause, 99) / pct(&sj->bare_poll, 99),
	       pct(&sj->pause, 50) / pct(&sj->bare, 50),
	       pct(&sj->pause, 99) / pct(&sj->bare, 99));
}

/*
 * Issue 5's targets for the pause against the bare cycle: p50 <= 1.2x and
 * p99 <= 2x, checked against both bare cycles, so that a miss says by how
 * much whichever way the bare cycle waits.
 */
static void report_targets(struct subject *sj)
{
	static const struct {
		const char *name;
		double p, limit;
	} t[] = { { "p50", 50, 1.2 }, { "p99", 99, 2.0 } };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		double perch = pct(&sj->pause, t[i].p);
		double vs_poll = perch / pct(&sj->bare_poll, t[i].p);
		double vs_block = perch / pct(&sj->bare, t[i].p);

		printf("- depth %d, %s ≤ %.1f× bare: %.2f× polling (%s), %.2f× blocking (%s)\n",
		       sj->depth, t[i].name, t[i].limit, vs_poll,
		       vs_poll <= t[i].limit ? "met" : "**missed**", vs_block,
		       vs_block <= t[i].limit ? "met" : "**missed**");
	}
}

static void report_cpu(struct subject *sj)
{
	printf("| %d | %zu | %.1f | %.1f | %.1f | %.0f |\n", sj->depth, sj->frames,
	       pct(&sj->cpu, 50), pct(&sj->cpu_mask, 50), pct(&sj->stock, 50),
	       pct(&sj->naive, 50));
}

/* Ends the subject's target after a block of rounds. */
static void subject_close(struct subject *sj)
{
	sj->copy_bytes += target_stats(sj->t)->copy_bytes;
	sj->copies += target_stats(sj->t)->thread_samples[PERCH_CAPTURE_STOPPED];
	_UPT_destroy(sj->upt);
	unw_destroy_addr_space(sj->as);
	sj->upt = NULL;
	sj->as = NULL;
	target_close(sj->t);
	target_close(sj->tmask);
	child_quit(&sj->c);
}

static void subject_free(struct subject *sj)
{
	fprintf(stderr, "depth %d: %zu samples, stock unwinder saw %d frames, "
		"perch copied %.0f bytes of stack per thread sample\n", sj->depth,
		sj->bare.n, sj->stock_frames, (double)sj->copy_bytes / (double)sj->copies);
	free(sj->bare.v); free(sj->bare_poll.v); free(sj->bare_copy.v); free(sj->bare_detach.v); free(sj->pause.v); free(sj->cpu.v);
	free(sj->cpu_mask.v); free(sj->stock.v); free(sj->naive.v);
}

#define BLOCKS 5
#define WARMUP 30

int main(int argc, char **argv)
{
	struct subject sj[2] = { { .depth = 20 }, { .depth = 200 } };
	int samples = argc > 1 ? atoi(argv[1]) : 1000;

	if (samples < BLOCKS) {
		fprintf(stderr, "usage: bench_pause [SAMPLES]\n");
		return 2;
	}
	/*
	 * As perchd's samplers do; the bare cycles run on the same thread.  (The
	 * targets do not inherit it: tracer_prioritize resets it on fork.)
	 */
	if (tracer_prioritize() != 1)
		fprintf(stderr, "bench_pause: not running real-time: pauses include waiting for a CPU\n");
	/*
	 * Blocks of rounds alternate between the depths, one target running at
	 * a time: one busy target thread and the sampler on two CPUs.
	 */
	for (int b = 0; b < 2 * BLOCKS; b++) {
		struct subject *s = &sj[(b & 1) ^ (b / 2 & 1)];

		if (subject_open(s) < 0)
			return 1;
		for (int i = -WARMUP; i < samples / BLOCKS; i++)
			round_on(s, i);
		subject_close(s);
	}
	printf("Pause per thread sample (µs, p50 / p99), the thread spinning at the bottom of the recursion\n\n");
	printf("| depth | frames | bare cycle, blocking wait | bare cycle, polling wait "
	       "| perch | perch / bare polling | perch / bare blocking |\n");
	printf("|---|---|---|---|---|---|---|\n");
	report(&sj[0]);
	report(&sj[1]);
	printf("\nperch pause at depth 200 / depth 20: %.2f× (p50)\n\n",
	       pct(&sj[1].pause, 50) / pct(&sj[0].pause, 50));
	printf("Targets (issue 5): perch's pause p50 ≤ 1.2×, p99 ≤ 2× the bare cycle\n\n");
	report_targets(&sj[0]);
	report_targets(&sj[1]);
	printf("\nNot a target: the polling bare cycle that also copies the stack perch copied"
	       " (its average length for that thread), and that cycle ended by PTRACE_DETACH"
	       " as perch ends it, µs p50 / p99\n\n");
	printf("| depth | bytes copied | bare polling + copy | + detach instead of cont | perch "
	       "| perch / (bare polling + copy) | perch / (+ detach) |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < 2; k++)
		printf("| %d | %.0f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.2f× / %.2f× "
		       "| %.2f× / %.2f× |\n", sj[k].depth,
		       sj[k].copies ? (double)sj[k].copy_bytes / (double)sj[k].copies : 0.0,
		       pct(&sj[k].bare_copy, 50), pct(&sj[k].bare_copy, 99),
		       pct(&sj[k].bare_detach, 50), pct(&sj[k].bare_detach, 99),
		       pct(&sj[k].pause, 50), pct(&sj[k].pause, 99),
		       pct(&sj[k].pause, 50) / pct(&sj[k].bare_copy, 50),
		       pct(&sj[k].pause, 99) / pct(&sj[k].bare_copy, 99),
		       pct(&sj[k].pause, 50) / pct(&sj[k].bare_detach, 50),
		       pct(&sj[k].pause, 99) / pct(&sj[k].bare_detach, 99));
	printf("\n");
	printf("Sampler CPU per thread sample, warm (µs, p50)\n\n");
	printf("| depth | frames | perch (unwind + symbolize) | perch, keeping libunwind's signal masking "
	       "| stock libunwind-ptrace accessors, cached | stock, fresh per sample |\n");
	printf("|---|---|---|---|---|---|\n");
	report_cpu(&sj[0]);
	report_cpu(&sj[1]);
	subject_free(&sj[0]);
	subject_free(&sj[1]);
	return 0;
}
