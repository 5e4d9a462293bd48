/*
 * bench_seize_mode: stay seized between samples, or seize per sample?
 *
 * Measured in one run against tests/targets/siglat (a spinning main thread
 * and a thread blocked reading stdin), the configurations interleaved in
 * rounds:
 *
 * 1. The latency of the target's signals: SIGUSR1, one in flight at a time,
 *    sent after a random 200-1200 µs gap (plus up to one period under
 *    stay/tick, which releases every signal at a tick) so that it lands at a
 *    random phase of the sampling cycle, timed from just before sigqueue to
 *    the entry of the handler, under
 *      none        no sampler;
 *      per-sample  the engine: target_sample() at 99 or 999 Hz, ±10 %;
 *      stay/tick   a tracer that seizes every thread once, samples running
 *                  threads with INTERRUPT … CONT, and services the
 *                  signal-delivery-stops that piled up only at each tick;
 *      stay/event  the same, but between ticks it waits for tracee stops
 *                  (SIGCHLD through sigtimedwait) and re-injects each
 *                  signal at once: the best a stay-seized tracer can do.
 * 2. The cost of one capture of the spinning thread, the same wait (poll
 *    100 µs, then block) and 16 KiB copy in both: SEIZE … DETACH against
 *    INTERRUPT … CONT, as the target's pause and the sampler's CPU.
 *
 * With two CPUs the sender shares one with the sampler, so it rarely sends
 * while a capture is in progress.  --pin puts the target and the sender on
 * CPU 0 and the samplers on CPU 1: signals then land in captures as often as
 * time says (each one preempts the target instead of crossing CPUs).
 *
 * Prints markdown tables.  Attaches only to the target it starts.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "series.h"
#include "spawn.h"
#include "target.h"
#include "targets/siglat.h"

#define MAX_THREADS 16
#define PAGE 4096u
#define COPY_LEN (16u * 1024)
#define POLL_NS 100000u		/* as daemon/tracer.c */
#define ACK_TIMEOUT_NS 2000000000ull
#define GAP_MIN_US 200
#define GAP_MAX_US 1200
#define TRACER_CHECK_EVERY 10

/* ---- numbers ---------------------------------------------------------- */

/* The p-th percentile of v[0..n) (ns, exact as doubles), in µs. */
static double pct_us(const double *v, size_t n, double p)
{
	return percentile(v, n, p) / 1000.0;
}

static double spct(const struct series *s, double p)
{
	return pct_us(s->v, s->n, p);
}

/* splitmix64: each thread draws its own gaps and jitter. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * 0x1p-53;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void sleep_random_us(uint64_t *seed, int lo, int hi)
{
	sleep_until(mono_ns() + (uint64_t)((lo + (hi - lo) * rng_unit(seed)) * 1000.0));
}

/* The next tick: one period of 1/hz, ±10 %, never in the past. */
static uint64_t next_tick(uint64_t prev, int hz, uint64_t *seed)
{
	uint64_t now = mono_ns(), base = prev > now ? prev : now;

	return base + (uint64_t)(1e9 / hz * (0.9 + 0.2 * rng_unit(seed)));
}

/* ---- ptrace ----------------------------------------------------------- */

struct capture {
	struct user_regs_struct regs;
	uint8_t stack[COPY_LEN];
	size_t stack_len;
	uint64_t pause_ns;	/* PTRACE_INTERRUPT to the return of CONT/DETACH */
};

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* The next wait status of tid, polled for POLL_NS, then waited for. */
static int wait_stop(pid_t tid, int *status)
{
	uint64_t deadline = mono_ns() + POLL_NS;

	for (;;) {
		bool block = mono_ns() > deadline;
		pid_t r = waitpid(tid, status, __WALL | (block ? 0 : WNOHANG));

		if (r == tid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Registers and 16 KiB of stack.  One remote iovec per page: the copy stops
 * at the first unmapped page (the top of the stack) instead of failing.
 */
static int copy_regs_stack(pid_t tid, struct capture *cap)
{
	struct iovec regs = { &cap->regs, sizeof cap->regs };
	struct iovec local = { cap->stack, COPY_LEN }, remote[COPY_LEN / PAGE + 1];
	uint64_t addr;
	size_t left = COPY_LEN;
	unsigned long n = 0;
	ssize_t got;

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &regs) < 0)
		return -errno;
	for (addr = cap->regs.rsp; left > 0; n++) {
		size_t chunk = PAGE - (addr & (PAGE - 1));

		chunk = chunk < left ? chunk : left;
		remote[n] = (struct iovec){ (void *)(uintptr_t)addr, chunk };
		addr += chunk;
		left -= chunk;
	}
	got = process_vm_readv(tid, &local, 1, remote, n, 0);
	if (got < 0)
		return -errno;
	cap->stack_len = (size_t)got;
	return 0;
}

/* Resumes a seized thread from the stop described by status. */
static void resume(pid_t tid, int status)
{
	int event = status >> 16, sig = WSTOPSIG(status);

	if (event == PTRACE_EVENT_STOP && is_stop_signal(sig))
		ptrace(PTRACE_LISTEN, tid, 0, 0);	/* leave a group-stop stopped */
	else
		ptrace(PTRACE_CONT, tid, 0, (void *)(long)(event == 0 ? sig : 0));
}

/*
 * INTERRUPT … CONT on a thread already seized.  The first stop may be a
 * signal-delivery-stop: one that was already waiting (the interrupt is then
 * still pending) or one that began as the interrupt came (it consumed the
 * interrupt: any trap clears a pending one).  Handing the signal back and
 * interrupting again covers both: exactly one interrupt stop follows, and
 * none is left pending to stop the thread again after the capture.
 */
static int capture_seized(pid_t tid, struct capture *cap, uint64_t *reinjected)
{
	uint64_t t0 = mono_ns();
	int status, rc;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -errno;
	for (;;) {
		if ((rc = wait_stop(tid, &status)) < 0)
			return rc;
		if (!WIFSTOPPED(status))
			return -ESRCH;
		if (status >> 16 != 0)
			break;
		resume(tid, status);
		(*reinjected)++;
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
			return -errno;
	}
	rc = copy_regs_stack(tid, cap);
	resume(tid, status);
	cap->pause_ns = mono_ns() - t0;
	return rc;
}

/* SEIZE … DETACH, as daemon/tracer.c does it. */
static int capture_per_sample(pid_t tid, struct capture *cap)
{
	uint64_t t0;
	int status, rc, deliver;

	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACEEXIT) < 0)
		return -errno;
	t0 = mono_ns();
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 || wait_stop(tid, &status) < 0 ||
	    !WIFSTOPPED(status))
		return -ESRCH;	/* the benchmark gives up and kills the target */
	/* Any stop will do; a signal that stopped it goes back with the detach. */
	deliver = status >> 16 == 0 ? WSTOPSIG(status) : 0;
	rc = copy_regs_stack(tid, cap);
	if (ptrace(PTRACE_DETACH, tid, 0, (void *)(long)deliver) < 0 && rc == 0)
		rc = -errno;
	cap->pause_ns = mono_ns() - t0;
	return rc;
}

/* Lets a seized thread go from whatever state it is in, its signal included. */
static int release(pid_t tid)
{
	int status, rc;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -errno;
	if ((rc = wait_stop(tid, &status)) < 0)
		return rc;
	if (!WIFSTOPPED(status))
		return 0;
	return ptrace(PTRACE_DETACH, tid, 0,
		      (void *)(long)(status >> 16 == 0 ? WSTOPSIG(status) : 0)) < 0 ? -errno : 0;
}

/* ---- configurations and samplers -------------------------------------- */

enum kind { NONE, PER_SAMPLE, STAY_TICK, STAY_EVENT };

static const char *const kind_names[] = {
	[NONE] = "none",
	[PER_SAMPLE] = "per-sample (perch engine)",
	[STAY_TICK] = "stay-seized, tick-serviced",
	[STAY_EVENT] = "stay-seized, event-driven",
};

struct config {
	enum kind kind;
	int hz;
	struct series lat;		/* signal latencies, ns */
	double *round_p50;		/* µs */
	unsigned int tracer_checks, tracer_seen;
	size_t same_cpu;		/* signals handled on the sender's CPU */
	/* Written by the sampler thread, read after it is joined. */
	uint64_t reinjected, ticks, sampler_cpu_ns, sampler_wall_ns;
	struct series pause, sample_cpu;	/* per-sample: per target_sample */
};

struct sampler {
	struct config *cfg;
	pid_t pid;
	uint64_t seed;
	atomic_int state;	/* 0 starting, 1 sampling, -1 failed */
	atomic_bool stop;
};

static int engine_tick(struct target *t, struct config *cfg)
{
	uint64_t cpu0 = thread_cpu_ns();
	struct perch_sample s;
	int rc = target_sample(t, &s);

	if (rc < 0)
		return rc;
	series_add(&cfg->sample_cpu, thread_cpu_ns() - cpu0);
	for (size_t i = 0; i < s.nthreads; i++)
		if (s.threads[i].capture == PERCH_CAPTURE_STOPPED)
			series_add(&cfg->pause, s.threads[i].pause_ns);
	cfg->ticks++;
	return 0;
}

/* target_* calls must all come from one thread: this one. */
static void *per_sample_thread(void *arg)
{
	struct sampler *s = arg;
	struct config *cfg = s->cfg;
	uint64_t next, cpu0, w0;
	struct perch_sample warm;
	struct target *t;
	char *cause;

	if (target_open(s->pid, NULL, &t, &cause) < 0) {
		fprintf(stderr, "bench_seize_mode: %s\n", cause);
		free(cause);
		atomic_store(&s->state, -1);
		return NULL;
	}
	/* The first sample loads the symbols: a start-up cost, not a tick's. */
	atomic_store(&s->state, target_sample(t, &warm) < 0 ? -1 : 1);
	next = w0 = mono_ns();
	cpu0 = thread_cpu_ns();
	while (atomic_load(&s->state) == 1 && !atomic_load(&s->stop)) {
		next = next_tick(next, cfg->hz, &s->seed);
		sleep_until(next);
		if (engine_tick(t, cfg) < 0)
			atomic_store(&s->state, -1);
	}
	cfg->sampler_cpu_ns += thread_cpu_ns() - cpu0;
	cfg->sampler_wall_ns += mono_ns() - w0;
	cfg->reinjected += target_stats(t)->signals_reinjected;
	target_close(t);
	return NULL;
}

struct seized {
	pid_t pid;
	pid_t tids[MAX_THREADS];
	int n;
	uint64_t reinjected;
	struct capture cap;
};

static int seize_all(struct seized *z)
{
	pid_t tids[MAX_THREADS];
	int n = proc_threads(z->pid, tids, MAX_THREADS);

	for (z->n = 0; z->n < n; z->n++) {
		if (ptrace(PTRACE_SEIZE, tids[z->n], 0, 0) < 0) {
			perror("bench_seize_mode: PTRACE_SEIZE");
			return -1;
		}
		z->tids[z->n] = tids[z->n];
	}
	return z->n > 0 ? 0 : -1;
}

static int release_all(struct seized *z)
{
	int rc = 0;

	for (int i = 0; i < z->n; i++)
		if (release(z->tids[i]) < 0)
			rc = -1;
	return rc;
}

/* Resumes every tracee stop that is waiting, re-injecting its signal. */
static void drain(struct seized *z)
{
	int status;
	pid_t tid;

	while ((tid = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
		if (!WIFSTOPPED(status))
			continue;
		if (status >> 16 == 0)
			z->reinjected++;
		resume(tid, status);
	}
}

/* Captures the threads that are running; blocked ones need no stop. */
static int sample_running(struct seized *z)
{
	for (int i = 0; i < z->n; i++) {
		int rc;

		if (proc_state(z->pid, z->tids[i]) != 'R')
			continue;
		rc = capture_seized(z->tids[i], &z->cap, &z->reinjected);
		if (rc < 0 && rc != -ESRCH)
			return rc;
	}
	return 0;
}

/*
 * Services tracee stops as they come until deadline.  A ptrace-stop sends the
 * tracer SIGCHLD (blocked in every thread of this process, so it stays
 * pending for sigtimedwait); a stale one only costs an empty drain.
 */
static void serve_until(struct seized *z, uint64_t deadline)
{
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (uint64_t now = mono_ns(); now < deadline; now = mono_ns()) {
		struct timespec ts = { (time_t)((deadline - now) / 1000000000u),
				       (long)((deadline - now) % 1000000000u) };

		if (sigtimedwait(&chld, NULL, &ts) == SIGCHLD)
			drain(z);
	}
}

/* All ptrace requests of a stay-seized run come from this thread. */
static void *seized_thread(void *arg)
{
	struct sampler *s = arg;
	struct config *cfg = s->cfg;
	struct seized *z = calloc(1, sizeof *z);
	uint64_t next, cpu0, w0;

	if (z == NULL)
		abort();
	z->pid = s->pid;
	atomic_store(&s->state, seize_all(z) < 0 ? -1 : 1);
	next = w0 = mono_ns();
	cpu0 = thread_cpu_ns();
	while (atomic_load(&s->state) == 1 && !atomic_load(&s->stop)) {
		next = next_tick(next, cfg->hz, &s->seed);
		if (cfg->kind == STAY_EVENT)
			serve_until(z, next);
		else
			sleep_until(next);
		/* The tick-serviced tracer resumes what waited for it only now. */
		drain(z);
		if (sample_running(z) < 0)
			atomic_store(&s->state, -1);
		cfg->ticks++;
	}
	cfg->sampler_cpu_ns += thread_cpu_ns() - cpu0;
	cfg->sampler_wall_ns += mono_ns() - w0;
	if (release_all(z) < 0)
		atomic_store(&s->state, -1);
	cfg->reinjected += z->reinjected;
	free(z);
	return NULL;
}

/* ---- the sender ------------------------------------------------------- */

static int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

/* --pin: the target on CPU 0, this process on CPU 1 except while it sends. */
static int pin_target(pid_t pid)
{
	pid_t tids[MAX_THREADS];
	int n = proc_threads(pid, tids, MAX_THREADS);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	for (int i = 0; i < n; i++)
		if (sched_setaffinity(tids[i], sizeof set, &set) < 0)
			return -1;
	return pin_self(1);
}

struct bench {
	struct child child;
	struct siglat_page *page;
	uint32_t seq;
	uint64_t seed;
	int rounds, signals, captures;
	bool pin;
	double others_load;	/* % of a CPU used by other processes meanwhile */
};

/* Sends one SIGUSR1 and waits for the handler to report its latency. */
static int send_one(struct bench *b, uint64_t *latency, bool *same_cpu)
{
	struct siglat_page *pg = b->page;
	uint32_t seq = ++b->seq, ack;
	union sigval none = { .sival_int = 0 };
	uint64_t deadline;
	int cpu = sched_getcpu();

	atomic_store(&pg->seq, seq);
	atomic_store(&pg->send_ns, mono_ns());
	if (sigqueue(b->child.pid, SIGUSR1, none) < 0) {
		perror("bench_seize_mode: sigqueue");
		return -1;
	}
	deadline = mono_ns() + ACK_TIMEOUT_NS;
	while ((ack = atomic_load(&pg->ack)) != seq) {
		struct timespec ts = { 0, 10000000 };

		if (mono_ns() > deadline) {
			fprintf(stderr, "bench_seize_mode: signal %u not handled\n", seq);
			return -1;
		}
		syscall(SYS_futex, &pg->ack, FUTEX_WAIT, ack, &ts, NULL, 0);
	}
	*latency = atomic_load(&pg->latency_ns);
	*same_cpu = atomic_load(&pg->cpu) == cpu;
	return 0;
}

static int send_signals(struct bench *b, struct config *cfg)
{
	/*
	 * A tick-serviced tracer releases each signal at a tick, so a short gap
	 * would land the next one just after a tick every time: spread it over
	 * a whole period to make its phase uniform.
	 */
	int extra_us = cfg->kind == STAY_TICK ? 1000000 / cfg->hz : 0;

	for (int i = 0; i < b->signals; i++) {
		uint64_t lat;
		bool same_cpu;

		if (i % TRACER_CHECK_EVERY == 0) {
			cfg->tracer_checks++;
			if (proc_tracer(b->child.pid) != 0)
				cfg->tracer_seen++;
		}
		sleep_random_us(&b->seed, GAP_MIN_US, GAP_MAX_US + extra_us);
		if (send_one(b, &lat, &same_cpu) < 0)
			return -1;
		series_add(&cfg->lat, lat);
		cfg->same_cpu += same_cpu;
	}
	return 0;
}

/* Every thread untraced and not stopped, within 100 ms of the detach. */
static int check_released(pid_t pid)
{
	pid_t tids[MAX_THREADS];
	int n = proc_threads(pid, tids, MAX_THREADS);

	for (int tries = 0; tries < 100; tries++) {
		bool clean = n > 0;

		for (int i = 0; i < n; i++) {
			char st = proc_state(pid, tids[i]);

			if (proc_tracer(tids[i]) != 0 || st == 't' || st == 'T')
				clean = false;
		}
		if (clean)
			return 0;
		sleep_until(mono_ns() + 1000000);
	}
	fprintf(stderr, "bench_seize_mode: target still traced or stopped\n");
	return -1;
}

static int run_config(struct bench *b, struct config *cfg, int round)
{
	struct sampler s = { .cfg = cfg, .pid = b->child.pid, .seed = rng_next(&b->seed) };
	size_t first = cfg->lat.n;
	pthread_t th;
	int rc = 0;

	if (cfg->kind != NONE) {
		if (pthread_create(&th, NULL, cfg->kind == PER_SAMPLE ? per_sample_thread
				   : seized_thread, &s) != 0)
			return -1;
		while (atomic_load(&s.state) == 0)
			sleep_until(mono_ns() + 100000);
	}
	/* The sampler, already started, stays on CPU 1. */
	if (b->pin && pin_self(0) < 0)
		rc = -1;
	else if (atomic_load(&s.state) >= 0)
		rc = send_signals(b, cfg);
	if (b->pin && pin_self(1) < 0)
		rc = -1;
	atomic_store(&s.stop, true);
	if (cfg->kind != NONE)
		pthread_join(th, NULL);
	if (rc < 0 || atomic_load(&s.state) < 0 || check_released(b->child.pid) < 0)
		return -1;
	cfg->round_p50[round] = pct_us(cfg->lat.v + first, cfg->lat.n - first, 50);
	return 0;
}

/* ---- capture cost ----------------------------------------------------- */

struct cost {
	struct series pause, cpu, wall;
};

/* Captures of the main thread, the target running 0.5-1.5 ms in between. */
static int cost_block(struct bench *b, bool stay, struct cost *c)
{
	static struct capture cap;
	pid_t tid = b->child.pid;
	uint64_t reinjected = 0;
	int rc = 0;

	if (stay && ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)
		return -errno;
	for (int i = 0; i < b->captures; i++) {
		uint64_t cpu0, w0;

		sleep_random_us(&b->seed, 500, 1500);
		cpu0 = thread_cpu_ns();
		w0 = mono_ns();
		rc = stay ? capture_seized(tid, &cap, &reinjected)
			  : capture_per_sample(tid, &cap);
		if (rc < 0)
			break;
		series_add(&c->cpu, thread_cpu_ns() - cpu0);
		series_add(&c->wall, mono_ns() - w0);
		series_add(&c->pause, cap.pause_ns);
	}
	if (stay && release(tid) < 0 && rc == 0)
		rc = -1;
	return rc < 0 || check_released(tid) < 0 ? -1 : 0;
}

/* ---- report ----------------------------------------------------------- */

static size_t count_above(const struct series *s, double us)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->v[i] / 1000.0 > us;
	return n;
}

static void latency_row(const struct config *c, const struct series *none, int rounds)
{
	double lo = c->round_p50[0], hi = lo, wall_s = (double)c->sampler_wall_ns / 1e9;
	char rate[16] = "–";

	for (int r = 1; r < rounds; r++) {
		lo = c->round_p50[r] < lo ? c->round_p50[r] : lo;
		hi = c->round_p50[r] > hi ? c->round_p50[r] : hi;
	}
	if (c->hz)
		snprintf(rate, sizeof rate, "%d Hz", c->hz);
	printf("| %s | %s | %zu | %.1f | %.1f | %.1f | %.1f | %.2f× | %.2f× | %.1f %% "
	       "| %.1f–%.1f | %u / %u | %llu | %.2f | %.1f | %.0f %% |\n",
	       kind_names[c->kind], rate, c->lat.n, spct(&c->lat, 50), spct(&c->lat, 90),
	       spct(&c->lat, 99), spct(&c->lat, 100), spct(&c->lat, 50) / spct(none, 50),
	       spct(&c->lat, 99) / spct(none, 99),
	       100.0 * (double)count_above(&c->lat, spct(none, 99)) / (double)c->lat.n,
	       lo, hi, c->tracer_seen, c->tracer_checks, (unsigned long long)c->reinjected,
	       wall_s > 0 ? 100.0 * (double)c->sampler_cpu_ns / 1e9 / wall_s : 0,
	       wall_s > 0 ? (double)c->ticks / wall_s : 0,
	       100.0 * (double)c->same_cpu / (double)c->lat.n);
}

static void print_latency(const struct config *cfgs, int n, const struct bench *b)
{
	printf("### Signal latency of the target (sigqueue → SIGUSR1 handler entry)\n\n");
	printf("| mode | rate | signals | p50 (µs) | p90 (µs) | p99 (µs) | max (µs) "
	       "| p50 / none | p99 / none | slower than none's p99 | p50 per round, min–max (µs) "
	       "| TracerPid ≠ 0 between samples (checks) | signals re-injected by the sampler "
	       "| sampler CPU (%% of a CPU) | ticks/s | handled on the sender's CPU |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < n; i++)
		latency_row(&cfgs[i], &cfgs[0].lat, b->rounds);
}

static void cost_row(const char *name, const struct cost *c)
{
	printf("| %s | %zu | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, c->pause.n,
	       spct(&c->pause, 50), spct(&c->pause, 99), spct(&c->cpu, 50),
	       spct(&c->cpu, 99), spct(&c->wall, 50));
}

static void print_cost(const struct cost *per, const struct cost *stay,
		       const struct config *cfgs, int n)
{
	printf("\n### One capture of the spinning thread (16 KiB stack copy; "
	       "wait: poll 100 µs, then block)\n\n");
	printf("| capture | n | pause p50 (µs) | pause p99 (µs) | sampler CPU p50 (µs) "
	       "| sampler CPU p99 (µs) | wall p50 (µs) |\n");
	printf("|---|---|---|---|---|---|---|\n");
	cost_row("per-sample: SEIZE, INTERRUPT, wait, GETREGSET, copy, DETACH", per);
	cost_row("stay-seized: INTERRUPT, wait, GETREGSET, copy, CONT", stay);
	printf("| saved by staying seized (p50) | | %.1f | | %.1f | | %.1f |\n",
	       spct(&per->pause, 50) - spct(&stay->pause, 50),
	       spct(&per->cpu, 50) - spct(&stay->cpu, 50),
	       spct(&per->wall, 50) - spct(&stay->wall, 50));
	for (int i = 0; i < n; i++) {
		if (cfgs[i].kind != PER_SAMPLE)
			continue;
		printf("| perch engine in the latency runs, %d Hz: pause of the spinning "
		       "thread; CPU of a whole target_sample (2 threads, unwind, symbols) "
		       "| %zu | %.1f | %.1f | %.1f | %.1f | |\n", cfgs[i].hz,
		       cfgs[i].pause.n, spct(&cfgs[i].pause, 50), spct(&cfgs[i].pause, 99),
		       spct(&cfgs[i].sample_cpu, 50), spct(&cfgs[i].sample_cpu, 99));
	}
}

static void print_command(const struct bench *b)
{
	struct utsname u;

	uname(&u);
	printf("\nCommand: `bench_seize_mode --rounds %d --signals %d --captures %d%s` "
	       "(%ld CPUs, Linux %s; other processes used %.0f %% of a CPU meanwhile); "
	       "target's own count: %ld signals, p50 %.1f µs, p99 %.1f µs, max %.1f µs.\n",
	       b->rounds, b->signals, b->captures, b->pin ? " --pin" : "",
	       sysconf(_SC_NPROCESSORS_ONLN), u.release, b->others_load,
	       child_report_long(&b->child, "count"),
	       (double)child_report_long(&b->child, "p50_ns") / 1000.0,
	       (double)child_report_long(&b->child, "p99_ns") / 1000.0,
	       (double)child_report_long(&b->child, "max_ns") / 1000.0);
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench_seize_mode [--rounds N=5] [--signals N=1000] "
		"[--captures N=200] [--pin]\n");
	exit(2);
}

static int parse_count(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end != '\0' || v < 1 || v > 1000000)
		usage();
	return (int)v;
}

static void parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option options[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "signals", required_argument, NULL, 's' },
		{ "captures", required_argument, NULL, 'c' },
		{ "pin", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	b->rounds = 5;
	b->signals = 1000;
	b->captures = 200;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 'r')
			b->rounds = parse_count(optarg);
		else if (opt == 's')
			b->signals = parse_count(optarg);
		else if (opt == 'c')
			b->captures = parse_count(optarg);
		else if (opt == 'p')
			b->pin = true;
		else
			usage();
	}
	if (optind != argc)
		usage();
}

/* Starts siglat on a fresh shared page; the file is gone once both mapped it. */
static int start_target(struct bench *b)
{
	char path[] = "/dev/shm/perch-siglat-XXXXXX";
	const char *args[] = { "--shm", path, NULL };
	int fd = mkstemp(path), rc = -1;

	if (fd < 0 || ftruncate(fd, PAGE) < 0) {
		perror("bench_seize_mode: /dev/shm");
		return -1;
	}
	b->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (b->page != MAP_FAILED)
		rc = spawn_target(&b->child, "siglat", args);
	unlink(path);
	if (rc < 0)
		fprintf(stderr, "bench_seize_mode: cannot start siglat\n");
	return rc;
}

/*
 * The machine is shared: CPU time, in clock ticks, used by everything (from
 * /proc/stat) and by this benchmark and its target, to tell how much the
 * rest took while we measured.
 */
static unsigned long long busy_ticks(void)
{
	unsigned long long f[8] = { 0 };
	FILE *fp = fopen("/proc/stat", "r");

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1],
		   &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]) != 8)
		memset(f, 0, sizeof f);
	fclose(fp);
	return f[0] + f[1] + f[2] + f[5] + f[6] + f[7];	/* all but idle, iowait */
}

static unsigned long long own_ticks(pid_t pid)
{
	unsigned long long ut = 0, st = 0;
	char path[64], buf[1024];
	const char *p;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return 0;
	if (fgets(buf, sizeof buf, fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st) != 2)
		return 0;
	return ut + st;
}

/* Percent of one CPU used by other processes since *mark; moves the mark. */
static double others_load(pid_t child, unsigned long long mark[3])
{
	unsigned long long now[3] = { busy_ticks(), own_ticks(getpid()) + own_ticks(child),
				      mono_ns() };
	double ticks = (double)(now[2] - mark[2]) / 1e9 * (double)sysconf(_SC_CLK_TCK);
	double other = (double)(now[0] - mark[0]) - (double)(now[1] - mark[1]);

	memcpy(mark, now, sizeof now);
	return ticks > 0 && other > 0 ? 100.0 * other / ticks : 0;
}

static int run_rounds(struct bench *b, struct config *cfgs, int ncfg,
		      struct cost *per, struct cost *stay)
{
	unsigned long long mark[3];

	others_load(b->child.pid, mark);
	b->others_load = 0;
	for (int r = 0; r < b->rounds; r++) {
		double load;

		for (int i = 0; i < ncfg; i++)
			if (run_config(b, &cfgs[i], r) < 0)
				return -1;
		/* Alternate which capture kind goes first. */
		if (cost_block(b, r % 2, r % 2 ? stay : per) < 0 ||
		    cost_block(b, !(r % 2), r % 2 ? per : stay) < 0) {
			fprintf(stderr, "bench_seize_mode: capture failed\n");
			return -1;
		}
		load = others_load(b->child.pid, mark);
		b->others_load += load / b->rounds;
		fprintf(stderr, "round %d/%d done; other processes used %.0f %% of a CPU\n",
			r + 1, b->rounds, load);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfgs[] = {
		{ .kind = NONE }, { .kind = PER_SAMPLE, .hz = 99 },
		{ .kind = PER_SAMPLE, .hz = 999 }, { .kind = STAY_TICK, .hz = 99 },
		{ .kind = STAY_TICK, .hz = 999 }, { .kind = STAY_EVENT, .hz = 99 },
		{ .kind = STAY_EVENT, .hz = 999 },
	};
	int ncfg = (int)(sizeof cfgs / sizeof cfgs[0]);
	struct cost per = { 0 }, stay = { 0 };
	struct bench b = { .seed = mono_ns() ^ (uint64_t)getpid() };
	sigset_t chld;

	parse_args(&b, argc, argv);
	for (int i = 0; i < ncfg; i++)
		if ((cfgs[i].round_p50 = calloc((size_t)b.rounds, sizeof(double))) == NULL)
			abort();
	if (start_target(&b) < 0)
		return 1;
	if (b.pin && pin_target(b.child.pid) < 0) {
		perror("bench_seize_mode: --pin");
		child_kill(&b.child);
		return 1;
	}
	/* After the fork: the target must not inherit the mask.  See serve_until. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, NULL);
	if (run_rounds(&b, cfgs, ncfg, &per, &stay) < 0) {
		child_kill(&b.child);
		return 1;
	}
	if (child_quit(&b.child) < 0)
		fprintf(stderr, "bench_seize_mode: siglat did not exit cleanly\n");
	print_latency(cfgs, ncfg, &b);
	print_cost(&per, &stay, cfgs, ncfg);
	print_command(&b);
	return 0;
}
