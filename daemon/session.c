#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "intern.h"
#include "procfs.h"
#include "target.h"
#include "tracer.h"
#include "xalloc.h"

/* Batches go to the store this often: small enough to lose little on a crash. */
#define BATCH_NS 250000000ull
/* How often descendants are looked for, and CPU times read. */
#define SCAN_NS 1000000000ull
/*
 * Ticks taken at one wake-up while every target is unattended (target.h):
 * due within COALESCE_SPAN_NS of the first, at most COALESCE_MAX of them.
 * Waking up is what a tick costs most when its threads are settled by
 * their rings: at 999 Hz on 4 burner threads, 45 % of the sampler thread's
 * time was in its timed wait (a profile of 2026-11-26 19:25).  The span
 * keeps a thread that runs all along within its ring (RING_SAMPLES in
 * ksample.c) and the ticks that need a read within a few milliseconds of
 * their due time; at 225 Hz and less (a period over 4.4 ms, jittered by 10 %)
 * every tick has its own wake-up.
 */
#define COALESCE_SPAN_NS 4000000ull
#define COALESCE_MAX 4
/*
 * How often other processes must be seen runnable, on average over about
 * the last OTHERS_SPAN ticks, for the sampler to follow the target's CPUs.
 */
#define OTHERS_SPAN 16u
#define OTHERS_SHARE 0.25

/* One sampled process: the target, or one of its descendants. */
struct proc {
	pid_t pid;
	struct target *t;
	int64_t cpu_first, cpu_last;	/* utime+stime in ticks, -1 unknown */
	int rc;				/* of this tick's first half */
};

/* A thread seen in this session: (pid, tid, name) -> session thread id. */
struct thread_key {
	pid_t pid, tid;
	uint32_t id;
	char name[64];
	/* The stack of its last stored sample, for a sample that reuses it. */
	bool has_stack;
	uint32_t stack;
};

struct session {
	int64_t id;
	struct session_params p;
	char *name, *exe, *cmdline;
	uid_t owner_uid;
	uint64_t started_ns;
	struct store *store;
	session_end_fn on_end;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;			/* under lock */
	/* Set by the sampler before on_end. */
	const char *final_status;
	char *final_error;
	_Atomic uint64_t ticks, late_ticks, thread_samples;
	/* Thread-samples (weighted) the kernel took, and stops took. */
	_Atomic uint64_t kernel_samples, stopped_samples;
	_Atomic unsigned int nprocs, nthreads;
	/* Sampler thread only. */
	struct proc *procs;
	size_t nproc, proc_cap;
	struct tracer_job **jobs;	/* this tick's stops, of every process */
	size_t jobs_cap;
	cpu_set_t allowed, placed;	/* the sampler's CPUs: at start, now */
	double others_seen;	/* share of recent ticks: follow_target_cpus */
	int loadavg_fd;		/* /proc/loadavg, read at every tick, or -1 */
	struct interner *interner;
	uint64_t eintr_done;		/* from processes no longer sampled */
	int64_t cpu_done;
	struct thread_key *keys;
	size_t nkeys, keys_cap;
	uint32_t *index;		/* open addressing over keys */
	size_t index_cap;
	uint64_t rng;
	pid_t denied;			/* a process dropped by access_recheck */
	bool unattended;		/* the last tick: every target_unattended */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t cpu_ticks(pid_t pid)
{
	struct procfs_stat st;

	if (procfs_read_stat(pid, &st) < 0)
		return -1;
	return (int64_t)(st.utime + st.stime);
}

static char *read_text(const char *fmt, pid_t pid, bool link)
{
	char path[64], buf[4096];
	ssize_t n;

	snprintf(path, sizeof path, fmt, (int)pid);
	n = link ? readlink(path, buf, sizeof buf - 1) : procfs_read_path(path, buf, sizeof buf);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	/* cmdline separates arguments with NULs. */
	for (ssize_t i = 0; !link && i < n - 1; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	if (!link && buf[n - 1] == '\0')
		buf[n - 1] = '\0';
	return xstrdup(buf);
}

static int add_proc(struct session *s, pid_t pid, char **cause)
{
	/*
	 * The kernel samples a running thread once per tick period of its own
	 * CPU time: one that runs all along has one new sample at each tick.
	 */
	struct target_opts opts = {
		.max_stops = s->p.max_stops,
		.kernel_period_ns = s->p.ptrace_only ? 0 : (uint64_t)(1e9 / s->p.rate_hz),
	};
	struct target *t;
	int rc;

	rc = target_open(pid, &opts, &t, cause);
	if (rc < 0)
		return rc;
	if (s->nproc == s->proc_cap) {
		s->proc_cap = s->proc_cap ? s->proc_cap * 2 : 4;
		s->procs = xreallocarray(s->procs, s->proc_cap, sizeof *s->procs);
	}
	s->procs[s->nproc].pid = pid;
	s->procs[s->nproc].t = t;
	s->procs[s->nproc].cpu_first = s->procs[s->nproc].cpu_last = cpu_ticks(pid);
	s->nproc++;
	atomic_store(&s->nprocs, (unsigned int)s->nproc);
	return 0;
}

/* ---- threads of the session -------------------------------------------- */

static size_t key_slot(pid_t pid, pid_t tid, size_t mask)
{
	uint64_t h = ((uint64_t)(uint32_t)pid << 32 | (uint32_t)tid) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) & mask;
}

/* The slot of (pid, tid) in the index, empty (UINT32_MAX) or matching. */
static size_t find_slot(const struct session *s, pid_t pid, pid_t tid)
{
	size_t mask = s->index_cap - 1, i = key_slot(pid, tid, mask);

	while (s->index[i] != UINT32_MAX &&
	       (s->keys[s->index[i]].pid != pid || s->keys[s->index[i]].tid != tid))
		i = (i + 1) & mask;
	return i;
}

static void grow_index(struct session *s)
{
	size_t old = s->index_cap;
	uint32_t *prev = s->index;

	s->index_cap = old ? old * 2 : 64;
	s->index = xmalloc(s->index_cap * sizeof *s->index);
	memset(s->index, 0xff, s->index_cap * sizeof *s->index);
	for (size_t i = 0; i < old; i++)
		if (prev[i] != UINT32_MAX)
			s->index[find_slot(s, s->keys[prev[i]].pid, s->keys[prev[i]].tid)] = prev[i];
	free(prev);
}

/*
 * The session's key for a thread, registering it (in b) when new.  A thread
 * id the kernel recycled shows up under a new name, and gets a new key.  The
 * pointer is good until the next call.
 */
static struct thread_key *thread_key(struct session *s, pid_t pid,
				     const struct perch_thread *th, struct store_batch *b)
{
	struct store_thread st;
	size_t slot;

	if (s->nkeys * 2 >= s->index_cap)
		grow_index(s);
	slot = find_slot(s, pid, th->tid);
	/*
	 * A reused sample repeats this thread's last one, name included (the
	 * engine read nothing new of it): only a fresh one can show a new name.
	 */
	if (s->index[slot] != UINT32_MAX &&
	    (th->capture == PERCH_CAPTURE_REUSED ||
	     strcmp(s->keys[s->index[slot]].name, th->name) == 0))
		return &s->keys[s->index[slot]];
	if (s->nkeys == s->keys_cap) {
		s->keys_cap = s->keys_cap ? s->keys_cap * 2 : 32;
		s->keys = xreallocarray(s->keys, s->keys_cap, sizeof *s->keys);
	}
	memset(&st, 0, sizeof st);
	st.id = (uint32_t)s->nkeys;
	st.pid = pid;
	st.tid = th->tid;
	snprintf(st.name, sizeof st.name, "%s", th->name);
	s->keys[s->nkeys].pid = pid;
	s->keys[s->nkeys].tid = th->tid;
	s->keys[s->nkeys].id = st.id;
	memcpy(s->keys[s->nkeys].name, st.name, sizeof st.name);
	s->keys[s->nkeys].has_stack = false;
	s->index[slot] = (uint32_t)s->nkeys;
	store_batch_add_thread(b, &st);
	return &s->keys[s->nkeys++];
}

/* ---- sampling ----------------------------------------------------------- */

/*
 * Ends one process's tick (target_end) into b, adding its thread count to
 * *threads.  Returns 0 or -ESRCH when it has exited.
 */
static int sample_proc(struct session *s, struct proc *pr, struct store_batch *b,
		       unsigned int *threads)
{
	struct perch_sample smp;
	uint64_t total = 0, kernel = 0, stopped = 0;
	int rc = target_end(pr->t, &smp);

	if (rc < 0)
		return rc;
	/*
	 * Checked again after the capture: a setuid exec that landed between
	 * the check before it and the capture must not leave one sample of
	 * the new program.  (Reading the memory of a process in exec waits
	 * until its new credentials are in place, so this check sees them.)
	 */
	if ((rc = access_recheck(pr->pid, s->p.uid, s->p.gid)) < 0)
		return rc;
	for (size_t i = 0; i < smp.nthreads; i++) {
		const struct perch_thread *th = &smp.threads[i];
		struct thread_key *key;
		struct store_sample ss;

		if (th->capture == PERCH_CAPTURE_NONE)
			continue;
		key = thread_key(s, pr->pid, th, b);
		ss.thread_id = key->id;
		/*
		 * A reused stack is the one this thread's last sample stored (the
		 * engine reuses only its previous sample, and every sample but a
		 * failed one is stored); an idle thread then costs no interning.
		 */
		if (th->capture == PERCH_CAPTURE_REUSED && key->has_stack)
			ss.stack_id = key->stack;
		else
			ss.stack_id = interner_stack(s->interner, th->frames, th->nframes,
						     &b->defs);
		key->stack = ss.stack_id;
		key->has_stack = true;
		ss.time_ns = smp.time_ns;
		ss.state = th->state;
		/* A stop carried through earlier ticks stands for each of them. */
		for (unsigned int k = 0; k < th->weight; k++)
			store_batch_add_sample(b, &ss);
		total += th->weight;
		if (th->capture == PERCH_CAPTURE_KERNEL)
			kernel += th->weight;
		else if (th->capture == PERCH_CAPTURE_STOPPED)
			stopped += th->weight;
	}
	/*
	 * Added once a process, not once a thread: an atomic add costs tens
	 * of nanoseconds, which 64 idle threads made a tenth of a tick.
	 */
	atomic_fetch_add(&s->thread_samples, total);
	if (kernel != 0)
		atomic_fetch_add(&s->kernel_samples, kernel);
	if (stopped != 0)
		atomic_fetch_add(&s->stopped_samples, stopped);
	*threads += (unsigned int)smp.nthreads;
	return 0;
}

static void drop_proc(struct session *s, size_t i)
{
	struct proc *pr = &s->procs[i];

	s->eintr_done += target_stats(pr->t)->eintr_caused;
	if (pr->cpu_last >= 0 && pr->cpu_first >= 0)
		s->cpu_done += pr->cpu_last - pr->cpu_first;
	target_close(pr->t);
	/* Its strings are gone: the interner must not match them by address. */
	interner_forget(s->interner);
	s->procs[i] = s->procs[--s->nproc];
	atomic_store(&s->nprocs, (unsigned int)s->nproc);
}

/*
 * Where the sampler waits for the next tick.  A real-time thread wakes on
 * the CPU it last ran on and preempts whatever runs there.  When that is
 * another process the samples are biased: a server whose client (on the
 * same host) is preempted runs out of requests within microseconds, and the
 * sampler then finds it blocked, or stops it on its way into epoll_wait.
 * Measured: redis-server pinned to CPU 0 and redis-benchmark to CPU 1, the
 * server's main thread runnable 96 % of the time (schedstat), perchd
 * confined to CPU 1 found it blocked in 40 % of the ticks, on CPU 0 in 2 %.
 *
 * So when other processes are running (the host's runnable count, from
 * /proc/loadavg, exceeds the target's running threads and the sampler),
 * the sampler waits on the CPUs where the target's threads were running at
 * the last tick, and preempts a thread it is about to stop anyway.  Once
 * the stops are collected it moves off them (leave_target_cpus), so that
 * the threads it released get their CPU back while it unwinds.  When
 * nothing else runs it may wake anywhere: it perturbs no one.
 */
static int host_runnable(struct session *s)
{
	char buf[128];
	ssize_t n;
	const char *p;

	/* Kept open: an open and a close per tick cost more than the read. */
	if (s->loadavg_fd < 0)
		s->loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	n = s->loadavg_fd >= 0 ? procfs_pread_line(s->loadavg_fd, buf, sizeof buf) : -1;

	/* "0.41 0.35 0.30 3/142 12345": the 3 */
	if (n <= 0 || (p = memchr(buf, '/', (size_t)n)) == NULL)
		return -1;
	while (p > buf && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return atoi(p);
}

static void place_sampler(struct session *s, const cpu_set_t *want)
{
	if (CPU_EQUAL(want, &s->placed))
		return;
	if (sched_setaffinity(0, sizeof *want, want) == 0)
		s->placed = *want;
}

static void follow_target_cpus(struct session *s)
{
	unsigned int running = 0;
	bool at_look = false;
	cpu_set_t want;
	int host;

	CPU_ZERO(&want);
	for (size_t i = 0; i < s->nproc; i++)
		running += target_running_cpus(s->procs[i].t, &want, &at_look);
	/*
	 * Every thread that runs has a kernel sampler: the tick counts each by
	 * its ring's record of the due time, which the sampler's wake-up comes
	 * after, wherever it wakes.  Then placing it buys nothing and costs a
	 * read of /proc/loadavg a tick (5 % of perchd's CPU at 999 Hz) and,
	 * when other processes run, two migrations a tick.
	 */
	if (!at_look) {
		place_sampler(s, &s->allowed);
		return;
	}
	CPU_AND(&want, &want, &s->allowed);
	/*
	 * Other processes count as running when they were runnable at a
	 * quarter of the recent ticks: the runnable count is an instant, and a
	 * client in ping-pong with the target is runnable half the time.  A
	 * process that only wakes now and then (perch record's progress, the
	 * store's writer, a cron job) does not count: following the target's
	 * CPUs costs a lone busy target the sampler's wake-ups on its own CPU
	 * (a 1-thread burner at 999 Hz lost 4.3 % of its work, against 3.7 %
	 * with this rule, when any runnable process seen in the last 32 ticks
	 * counted: docs/DESIGN.md).
	 */
	host = host_runnable(s);
	s->others_seen += ((host >= 0 && (unsigned int)host > running + 1 ? 1.0 : 0.0) -
			   s->others_seen) / OTHERS_SPAN;
	if (CPU_COUNT(&want) == 0 || CPU_EQUAL(&want, &s->allowed) ||
	    s->others_seen < OTHERS_SHARE)
		want = s->allowed;
	place_sampler(s, &want);
}

static void leave_target_cpus(struct session *s)
{
	cpu_set_t rest;

	if (CPU_EQUAL(&s->placed, &s->allowed))
		return;
	CPU_XOR(&rest, &s->allowed, &s->placed);
	place_sampler(s, CPU_COUNT(&rest) > 0 ? &rest : &s->allowed);
}

/*
 * One tick over every process, due at due (monotonic).  Returns -ESRCH when the session has nothing
 * left to sample (the target exited, and with children all descendants too).
 */
static int tick(struct session *s, struct store_batch *b, uint64_t due, uint64_t deadline)
{
	unsigned int threads = 0;
	size_t njobs = 0;

	/*
	 * Every process's threads are interrupted first, then their stops are
	 * collected together until the next tick is due; a stop still pending
	 * then is carried (see target_end) rather than making the tick late.
	 */
	for (size_t i = 0; i < s->nproc; i++) {
		struct tracer_job **jobs;
		size_t n;

		struct proc *pr = &s->procs[i];

		pr->rc = access_recheck(pr->pid, s->p.uid, s->p.gid);
		if (pr->rc == 0)
			pr->rc = target_begin(pr->t, due);
		if (pr->rc < 0)
			continue;
		n = target_jobs(pr->t, &jobs);
		if (n == 0)
			continue;
		if (njobs + n > s->jobs_cap) {
			s->jobs_cap = (njobs + n) * 2;
			s->jobs = xreallocarray(s->jobs, s->jobs_cap, sizeof *s->jobs);
		}
		memcpy(s->jobs + njobs, jobs, n * sizeof *jobs);
		njobs += n;
	}
	tracer_collect(s->jobs, njobs, deadline);
	leave_target_cpus(s);
	for (size_t i = 0; i < s->nproc;) {
		int rc = s->procs[i].rc;

		if (rc == 0 && (rc = sample_proc(s, &s->procs[i], b, &threads)) != -ESRCH &&
		    rc != -EPERM)
			rc = 0;
		if (rc == -EPERM && s->denied == 0)
			s->denied = s->procs[i].pid;
		if (rc < 0)
			drop_proc(s, i);
		else
			i++;
	}
	atomic_store(&s->nthreads, threads);
	s->unattended = s->nproc > 0;
	for (size_t i = 0; i < s->nproc; i++)
		s->unattended &= target_unattended(s->procs[i].t);
	return s->nproc == 0 ? -ESRCH : 0;
}

static bool sampled(const struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->nproc; i++)
		if (s->procs[i].pid == pid)
			return true;
	return false;
}

/* Parent pid of every process, for following descendants. */
static size_t all_parents(pid_t (**out)[2])
{
	pid_t (*v)[2] = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	while (d != NULL && (de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		struct procfs_stat st;

		if (pid <= 0)
			continue;
		if (procfs_read_stat(pid, &st) < 0 || st.state == 'Z' || st.state == 'X')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[n][0] = pid;
		v[n++][1] = st.ppid;
	}
	if (d != NULL)
		closedir(d);
	*out = v;
	return n;
}

/* Starts sampling descendants of the target that appeared since last time. */
static void follow_children(struct session *s)
{
	pid_t (*pp)[2];
	size_t n = all_parents(&pp);
	bool added;

	/* Repeat until no new generation: a child's children are descendants too. */
	do {
		added = false;
		for (size_t i = 0; i < n; i++) {
			char *cause = NULL;

			if (pp[i][0] != s->p.pid && !sampled(s, pp[i][0]) &&
			    sampled(s, pp[i][1]) && pp[i][0] != getpid() &&
			    access_check(pp[i][0], s->p.uid, s->p.gid, s->p.client_pid,
					 &cause) == 0 &&
			    add_proc(s, pp[i][0], &cause) == 0)
				added = true;
			free(cause);
		}
	} while (added);
	free(pp);
}

static void read_cpu(struct session *s)
{
	for (size_t i = 0; i < s->nproc; i++) {
		int64_t v = cpu_ticks(s->procs[i].pid);

		if (v >= 0)
			s->procs[i].cpu_last = v;
	}
}

/* ---- the sampler thread ------------------------------------------------- */

/* Waits until the monotonic time at (ns); returns true when asked to stop. */
static bool wait_until(struct session *s, uint64_t at)
{
	struct timespec ts = { (time_t)(at / 1000000000u), (long)(at % 1000000000u) };
	bool stop;

	pthread_mutex_lock(&s->lock);
	while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &ts) != ETIMEDOUT)
		;
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/*
 * The next interval: the period with ±10 % of uniform jitter, so that
 * sampling never locks step with a timer of the target's own.
 */
static uint64_t jittered(struct session *s, uint64_t period)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return period - period / 10 + s->rng % (period / 5 + 1);
}

/*
 * Hands the batch to the store with the session's totals; a fresh one back,
 * with room for as many samples: growing it from nothing took a handful of
 * reallocations a batch, the largest by mmap (3-4 % of perchd's time at 999
 * Hz on 67 threads, a profile of 2026-11-26 20:25).
 */
static struct store_batch *hand_off(struct session *s, struct store_batch *b)
{
	uint64_t eintr = s->eintr_done;
	size_t n = b->nsamples;
	struct store_batch *next;

	for (size_t i = 0; i < s->nproc; i++)
		eintr += target_stats(s->procs[i].t)->eintr_caused;
	b->ticks = atomic_load(&s->ticks);
	b->thread_samples = atomic_load(&s->thread_samples);
	b->late_ticks = atomic_load(&s->late_ticks);
	b->eintr_caused = eintr;
	b->kernel_samples = atomic_load(&s->kernel_samples);
	b->stopped_samples = atomic_load(&s->stopped_samples);
	store_append(s->store, b);
	next = store_batch_new(s->id);
	store_batch_reserve(next, n + n / 8);
	return next;
}

/*
 * Counts a tick that starts late (more than half a period after its time)
 * and skips, counting them as late too, the ticks a long stall made us miss:
 * sampling never bursts to catch up.
 */
static uint64_t account_lateness(struct session *s, uint64_t now, uint64_t due,
				 uint64_t period)
{
	if (now <= due + period / 2)
		return due;
	atomic_fetch_add(&s->late_ticks, 1);
	if (now > due + period) {
		uint64_t missed = (now - due) / period;

		atomic_fetch_add(&s->late_ticks, missed);
		due += missed * period;
	}
	return due;
}

static const char *run(struct session *s, char **error)
{
	uint64_t period = (uint64_t)(1e9 / s->p.rate_hz), due = mono_ns();
	uint64_t end = s->p.duration_s > 0 ? due + (uint64_t)(s->p.duration_s * 1e9) : UINT64_MAX;
	uint64_t last_batch, last_scan;
	struct store_batch *b = store_batch_new(s->id);
	struct perch_sample warm;
	const char *status;

	/*
	 * A first sample that is not recorded: it loads the symbols of what the
	 * threads run now (tens of milliseconds for a libc with debug info),
	 * which would otherwise make the first recorded ticks late.
	 */
	if (s->p.children)
		follow_children(s);
	for (size_t i = 0; i < s->nproc; i++)
		target_sample(s->procs[i].t, &warm);
	due = mono_ns();
	last_batch = last_scan = due;
	if (sched_getaffinity(0, sizeof s->allowed, &s->allowed) < 0) {
		CPU_ZERO(&s->allowed);
		CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &s->allowed);
	}
	s->placed = s->allowed;
	s->others_seen = 0;
	s->unattended = false;
	status = NULL;
	for (;;) {
		uint64_t now, next = due, dues[COALESCE_MAX];
		size_t k = 1;

		follow_target_cpus(s);
		/* The ticks of this wake-up (see COALESCE_SPAN_NS); it comes at the last. */
		dues[0] = due;
		while (s->unattended && k < COALESCE_MAX) {
			uint64_t d = dues[k - 1] + jittered(s, period);

			if (d - dues[0] >= COALESCE_SPAN_NS || d >= end)
				break;
			dues[k++] = d;
		}
		if (wait_until(s, dues[k - 1] < end ? dues[k - 1] : end)) {
			status = "stopped";
			break;
		}
		now = mono_ns();
		for (size_t i = 0; i < k && status == NULL; i++) {
			if (now >= end && (i == k - 1 || dues[i] >= end)) {
				status = "complete";
				break;
			}
			/* Only the wake-up's own tick can be late: the others were left for it. */
			due = i == k - 1 ? account_lateness(s, now, dues[i], period) : dues[i];
			next = i + 1 < k ? dues[i + 1] : due + jittered(s, period);
			if (tick(s, b, due, next) < 0) {
				status = "target-exited";
				if (s->denied != 0)
					*error = xasprintf("process %d became setuid, setgid or "
							   "non-dumpable: uid %u may no longer "
							   "profile it", (int)s->denied,
							   (unsigned int)s->p.uid);
				break;
			}
			atomic_fetch_add(&s->ticks, 1);
		}
		if (status != NULL)
			break;
		if (now - last_scan >= SCAN_NS) {
			if (s->p.children)
				follow_children(s);
			read_cpu(s);
			last_scan = now;
		}
		if (now - last_batch >= BATCH_NS) {
			b = hand_off(s, b);
			last_batch = now;
			if (store_session_failed(s->store, s->id, error)) {
				status = "failed";
				break;
			}
		}
		due = next;
	}
	read_cpu(s);
	store_batch_free(hand_off(s, b));
	return status;
}

static void *sampler_main(void *arg)
{
	struct session *s = arg;
	char *error = NULL;
	const char *status;
	int64_t cpu;
	long hz = sysconf(_SC_CLK_TCK);

	/* For top -H and for tests that count this thread's wake-ups. */
	pthread_setname_np(pthread_self(), "perchd-sampler");
	tracer_prioritize();
	status = run(s, &error);
	while (s->nproc > 0)
		drop_proc(s, s->nproc - 1);
	cpu = s->cpu_done;
	/*
	 * A session the writer failed (disk full...) ends 'failed' whatever
	 * the sampler saw; the owner learns it from here even when the
	 * database cannot take the status.
	 */
	if (store_session_failed(s->store, s->id, &s->final_error)) {
		status = "failed";
	} else if (error != NULL) {
		s->final_error = error;
		error = NULL;
	}
	store_session_end(s->store, s->id, status, s->final_error, real_ns(),
			  hz > 0 ? cpu * (1000000000 / hz) : -1);
	pthread_mutex_lock(&s->lock);
	s->final_status = status;
	pthread_mutex_unlock(&s->lock);
	free(error);
	s->on_end(s, s->arg);
	return NULL;
}

/* ---- the session's owner ------------------------------------------------ */

static struct session *session_new(const struct session_params *p, struct store *st)
{
	struct session *s = xcalloc(1, sizeof *s);

	s->loadavg_fd = -1;
	pthread_condattr_t ca;

	s->p = *p;
	s->name = p->name ? xstrdup(p->name) : NULL;
	s->p.name = s->name;
	/*
	 * No more threads can run at once than there are CPUs: stopping that
	 * many per tick, in turn, samples CPU time as perf does (one sample per
	 * CPU per tick), and the cost of a tick stops growing with the number
	 * of threads that want a CPU.
	 */
	if (s->p.max_stops == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		s->p.max_stops = cpus > 0 ? (unsigned int)cpus : 1;
	}
	s->store = st;
	s->interner = interner_create();
	s->rng = mono_ns() | 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

static void session_destroy(struct session *s)
{
	while (s->nproc > 0)
		drop_proc(s, s->nproc - 1);
	free(s->procs);
	free(s->jobs);
	if (s->loadavg_fd >= 0)
		close(s->loadavg_fd);
	interner_free(s->interner);
	free(s->keys);
	free(s->index);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->name);
	free(s->exe);
	free(s->cmdline);
	free(s->final_error);
	free(s);
}

int session_start(struct store *st, const struct session_params *p,
		  session_end_fn on_end, void *arg, struct session **out,
		  char **cause)
{
	struct session *s = session_new(p, st);
	struct store_session_info info;
	long uid;
	int rc;

	rc = add_proc(s, p->pid, cause);
	if (rc < 0)
		goto out_destroy;
	uid = access_process_uid(p->pid);
	s->owner_uid = uid >= 0 ? (uid_t)uid : 0;
	s->exe = read_text("/proc/%d/exe", p->pid, true);
	s->cmdline = read_text("/proc/%d/cmdline", p->pid, false);
	s->started_ns = real_ns();
	memset(&info, 0, sizeof info);
	info.name = s->name;
	info.pid = p->pid;
	info.exe = s->exe;
	info.cmdline = s->cmdline;
	info.owner_uid = s->owner_uid;
	info.requested_by = p->requested_by;
	info.schedule_id = p->schedule_id;
	info.started_ns = s->started_ns;
	info.duration_s = p->duration_s;
	info.rate_hz = p->rate_hz;
	info.children = p->children;
	info.mode = "wall";
	info.ptrace_only = p->ptrace_only;
	info.max_stops = s->p.max_stops;
	rc = store_session_begin(st, &info, &s->id, cause);
	if (rc < 0)
		goto out_destroy;
	s->on_end = on_end;
	s->arg = arg;
	rc = -pthread_create(&s->thread, NULL, sampler_main, s);
	if (rc < 0) {
		store_session_end(st, s->id, "failed", "cannot start a sampler thread",
				  real_ns(), -1);
		*cause = xasprintf("cannot start a sampler thread: %s", strerror(-rc));
		goto out_destroy;
	}
	*out = s;
	return 0;

out_destroy:
	session_destroy(s);
	return rc;
}

void session_stop(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void session_info(struct session *s, struct session_info *out)
{
	memset(out, 0, sizeof *out);
	out->id = s->id;
	out->pid = s->p.pid;
	out->owner_uid = s->owner_uid;
	out->requested_by = s->p.requested_by;
	out->schedule_id = s->p.schedule_id;
	out->name = s->name;
	out->exe = s->exe;
	out->started_ns = s->started_ns;
	out->duration_s = s->p.duration_s;
	out->rate_hz = s->p.rate_hz;
	out->children = s->p.children;
	out->ticks = atomic_load(&s->ticks);
	out->late_ticks = atomic_load(&s->late_ticks);
	out->thread_samples = atomic_load(&s->thread_samples);
	out->processes = atomic_load(&s->nprocs);
	out->threads = atomic_load(&s->nthreads);
	pthread_mutex_lock(&s->lock);
	out->status = s->final_status ? s->final_status : "recording";
	out->error = s->final_status ? s->final_error : NULL;
	pthread_mutex_unlock(&s->lock);
}

int64_t session_id(const struct session *s)
{
	return s->id;
}

pid_t session_pid(const struct session *s)
{
	return s->p.pid;
}

void session_free(struct session *s)
{
	if (s == NULL)
		return;
	pthread_join(s->thread, NULL);
	session_destroy(s);
}
