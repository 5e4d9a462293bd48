#include "target.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addrspace.h"
#include "ksample.h"
#include "procfs.h"
#include "switchwatch.h"
#include "symbolizer.h"
#include "tracer.h"
#include "xalloc.h"

#define DEFAULT_MAX_COPY (512u * 1024)
#define MIN_COPY 4096u
#define COPY_SLACK 1024u
/* Copied past where the last unwind ended (adapt_copy_len). */
#define END_SLACK 256u
#define MAX_UNWIND 1024
/* Re-read the maps now and then even when nothing looks stale. */
#define MAPS_REFRESH_EVERY 128
/* Between two listings of an unchanged task directory (list_threads). */
#define RELIST_NS 1000000000ull
/* Ticks between two reads of a kernel-sampled thread's stat (kernel_look). */
#define RELIST_EVERY 64
/* Quiet ticks in a row before a thread is watched (found_quiet). */
#define WATCH_AFTER 4
/* Looks in a row at a moved watch before it is closed (watch_look). */
#define WATCH_MOVED_MAX 8
/*
 * How long a thread may be found running with no kernel sample before it is
 * stopped instead, when its ring cannot tell how long it ran (kernel_settle).
 */
#define KERNEL_WAIT_MAX_NS (50 * 1000000ull)
/* Periods on a CPU without a sample that mean the kernel throttled it. */
#define KERNEL_OVERDUE 3

/* How a thread's sample is going, within one tick. */
enum step {
	STEP_REUSED,
	STEP_BLOCKED,		/* copied without a stop */
	STEP_PENDING,		/* being stopped: see job */
	STEP_SKIPPED,		/* running, over the tick's max_stops or no kernel sample */
	STEP_KERNEL,		/* running: the kernel's newest sample */
	STEP_LAST_BLOCKED,	/* asleep at the due time, awake now: see blocked */
	STEP_FAILED,		/* no stack this time: see error */
	STEP_GONE,
};

/* What perch remembers about one thread between samples. */
struct tstate {
	/*
	 * First, what a tick reads and writes of a thread that its switch
	 * watch proves blocked since its last sample (most threads of an idle
	 * process), together rather than spread over the whole struct.
	 */
	pid_t tid;
	enum step step;
	bool carried;		/* its stop was pending at the end of a tick (see target_end) */
	bool have_last;
	char last_state;
	bool last_complete;
	bool ran;		/* ran between its last two samples */
	bool watch_armed;
	bool armed_running;	/* an unmoved watch proves: running, or blocked */
	unsigned int carried_ticks;	/* ticks since, this one included */
	unsigned int moved_ticks;	/* consecutive looks at a moved watch */
	/*
	 * Ticks its ring showed it asleep at, before any blocked stack of it
	 * was known (settle_last_blocked): its next blocked sample stands for
	 * them.
	 */
	unsigned int owed_asleep;
	/* Running ticks skipped for max_stops since its last running sample. */
	unsigned int owed;
	/*
	 * A thread that stays blocked, or keeps running while skipped for the
	 * stop limit, is watched for context switches (switchwatch.h) instead
	 * of having its /proc files read every tick.  Armed once a read made
	 * after a look at the watch found it quiet (or running): from then on
	 * an unmoved watch proves it still is.
	 */
	struct switchwatch *watch;
	struct ksampler *ks;	/* sampled by the kernel while it runs (ksample.h) */
	struct perch_frame *frames;
	size_t nframes, frames_cap;
	bool seen;		/* present in this sample's task list */
	uint64_t last_run_ns, last_switches;
	uint64_t last_utime;
	int fd_schedstat, fd_stat, fd_syscall;
	size_t copy_len;	/* adapted to the stack depth seen */
	uint64_t copy_end;	/* where the last complete unwind ended, or 0 */
	uint64_t eintr_rip, eintr_rsp;	/* where the last counted EINTR was */
	/* This tick. */
	struct procfs_stat st;
	uint64_t run_ns, switches;	/* schedstat: run time, times switched in */
	int error;
	bool not_run;			/* not run since the last sample */
	struct tracer_job job;
	struct thread_snapshot snap;
	bool watch_failed;		/* could not open one: do not retry */
	unsigned int quiet_ticks;	/* consecutive quiet ticks, by reading */
	unsigned int skips_in_row;	/* ticks in a row skipped for max_stops */
	bool ks_failed;			/* could not open one: do not retry */
	uint64_t ks_last_ns;		/* monotonic: its last sample, or the opening */
	bool ks_held;			/* snap holds a sample kernel_look took */
	bool asleep_at_due;		/* its ring says so, this tick */
	/* Its stack the last time it was copied blocked (STEP_BLOCKED). */
	struct perch_frame *blocked;
	size_t nblocked, blocked_cap;
	bool have_blocked, blocked_complete;
	char blocked_state;
};

struct target {
	pid_t pid;
	bool own_child;		/* the caller is the target's parent */
	struct target_opts opts;
	DIR *tasks;
	struct addrspace aspace;
	unsigned int unwound_generation;
	struct unwinder *unwinder;
	struct symbolizer *symbolizer;
	struct tstate **threads;
	size_t nthreads, threads_cap;
	struct perch_thread *out;
	size_t out_cap;
	struct tracer_job **jobs;	/* threads being stopped this tick */
	size_t njobs;
	unsigned int limit;		/* this tick's max_stops, 0: none */
	unsigned int stops_left;	/* this tick, under the limit */
	size_t visiting;		/* index of the thread being begun */
	size_t first;			/* where this tick's visit starts */
	unsigned int running;		/* threads found running this tick */
	unsigned int reads;		/* threads its rings and watches did not settle */
	unsigned int cpus;		/* online when opened */
	bool watch_off;			/* switch watches cannot work here */
	bool kernel_off;		/* kernel samples cannot work here */
	nlink_t tasks_nlink;		/* of /proc/PID/task at the last listing */
	uint64_t listed_ns;		/* when that was (monotonic) */
	bool relist;			/* a thread was found gone: list again */
	struct unwind_frame *ufr;
	bool maps_stale;
	uint64_t ticks;
	uint64_t time_ns;	/* of this tick */
	uint64_t due_ns;	/* monotonic: when this tick was due */
	struct target_stats stats;
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

const char *target_state_name(char state)
{
	switch (state) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "disk-wait";
	case 'T': return "stopped";
	case 't': return "traced";
	case 'Z': return "zombie";
	case 'X': return "dead";
	case 'I': return "idle";
	case 'P': return "parked";
	case 'W': return "waiting";
	default: return "unknown";
	}
}

/* ---- opening ---------------------------------------------------------- */

static int check_target(pid_t pid, bool *own_child, char **cause)
{
	char path[64], buf[4096], tracer_comm[64] = "?";
	struct procfs_status st;
	struct procfs_stat pst;
	ssize_t n;
	int fd;

	if (pid <= 0) {
		*cause = xasprintf("invalid pid %d", (int)pid);
		return -EINVAL;
	}
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n < 0 || procfs_parse_status(buf, (size_t)n, &st) < 0) {
		*cause = xasprintf("no such process: %d", (int)pid);
		return -ESRCH;
	}
	if (procfs_read_stat(pid, &pst) < 0) {
		*cause = xasprintf("no such process: %d", (int)pid);
		return -ESRCH;
	}
	*own_child = pst.ppid == getpid();
	if (st.tgid != pid) {
		*cause = xasprintf("%d is a thread of process %d; give the process id",
				   (int)pid, (int)st.tgid);
		return -EINVAL;
	}
	if (st.kthread || (pst.flags & PROCFS_PF_KTHREAD)) {
		*cause = xasprintf("%d (%s) is a kernel thread: it has no user stack",
				   (int)pid, st.name);
		return -EINVAL;
	}
	if (pid == getpid()) {
		*cause = xasprintf("%d is perch itself", (int)pid);
		return -EINVAL;
	}
	if (pst.state == 'Z' || pst.state == 'X') {
		*cause = xasprintf("process %d (%s) has exited", (int)pid, st.name);
		return -ESRCH;
	}
	if (st.tracer_pid != 0) {
		snprintf(path, sizeof path, "/proc/%d/comm", (int)st.tracer_pid);
		n = procfs_read_path(path, tracer_comm, sizeof tracer_comm);
		if (n > 0 && tracer_comm[n - 1] == '\n')
			tracer_comm[n - 1] = '\0';
		*cause = xasprintf("process %d (%s) is already traced by %d (%s)",
				   (int)pid, st.name, (int)st.tracer_pid,
				   n > 0 ? tracer_comm : "?");
		return -EBUSY;
	}
	/*
	 * Opening /proc/PID/mem asks the kernel the same question as attaching
	 * would (PTRACE_MODE_ATTACH, Yama included) without touching the target.
	 */
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		if (err == ENOENT || err == ESRCH) {
			*cause = xasprintf("no such process: %d", (int)pid);
			return -ESRCH;
		}
		*cause = xasprintf("not permitted to trace process %d (%s, uid %u): %s; "
				   "run perch as root or as the process owner",
				   (int)pid, st.name, (unsigned int)st.uid_real,
				   strerror(err));
		return -err;
	}
	close(fd);
	return 0;
}

int target_open(pid_t pid, const struct target_opts *opts, struct target **out,
		char **cause)
{
	struct target *t;
	char path[64];
	bool own_child;
	long cpus;
	int rc;

	*cause = NULL;
	rc = check_target(pid, &own_child, cause);
	if (rc < 0)
		return rc;
	t = xcalloc(1, sizeof *t);
	t->pid = pid;
	t->own_child = own_child;
	if (opts != NULL)
		t->opts = *opts;
	if (t->opts.max_stack_copy == 0)
		t->opts.max_stack_copy = DEFAULT_MAX_COPY;
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	t->tasks = opendir(path);
	if (t->tasks == NULL) {
		rc = -errno;
		*cause = xasprintf("cannot list threads of %d: %s", (int)pid,
				   strerror(errno));
		goto out_free;
	}
	rc = addrspace_init(&t->aspace, pid);
	if (rc < 0) {
		*cause = xasprintf("cannot read the memory map of %d: %s", (int)pid,
				   strerror(-rc));
		goto out_closedir;
	}
	t->unwinder = unwinder_create(&t->aspace, &t->opts.unwind);
	t->unwound_generation = t->aspace.generation;
	if (!t->opts.no_symbols)
		t->symbolizer = symbolizer_create(pid);
	t->ufr = xcalloc(MAX_UNWIND, sizeof *t->ufr);
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	t->cpus = cpus > 0 ? (unsigned int)cpus : 1;
	t->watch_off = t->opts.no_switchwatch;
	t->kernel_off = t->opts.kernel_period_ns == 0;
	*out = t;
	return 0;

out_closedir:
	closedir(t->tasks);
out_free:
	free(t);
	return rc;
}

/* ---- threads ---------------------------------------------------------- */

static void tstate_free(struct tstate *ts)
{
	if (ts->fd_schedstat >= 0)
		close(ts->fd_schedstat);
	if (ts->fd_stat >= 0)
		close(ts->fd_stat);
	if (ts->fd_syscall >= 0)
		close(ts->fd_syscall);
	switchwatch_close(ts->watch);
	ksample_close(ts->ks);
	thread_snapshot_free(&ts->snap);
	free(ts->frames);
	free(ts->blocked);
	free(ts);
}

static int open_task_file(pid_t pid, pid_t tid, const char *name)
{
	char path[96];

	snprintf(path, sizeof path, "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static struct tstate *tstate_new(struct target *t, pid_t tid)
{
	struct tstate *ts = xcalloc(1, sizeof *ts);

	ts->tid = tid;
	ts->fd_schedstat = open_task_file(t->pid, tid, "schedstat");
	ts->fd_stat = open_task_file(t->pid, tid, "stat");
	ts->fd_syscall = open_task_file(t->pid, tid, "syscall");
	ts->copy_len = 16 * 1024;
	return ts;
}

static struct tstate *find_thread(struct target *t, pid_t tid)
{
	size_t lo = 0, hi = t->nthreads;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->threads[mid]->tid == tid)
			return t->threads[mid];
		if (t->threads[mid]->tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int cmp_tstate(const void *a, const void *b)
{
	pid_t x = (*(struct tstate *const *)a)->tid;
	pid_t y = (*(struct tstate *const *)b)->tid;

	return (x > y) - (x < y);
}

/*
 * Brings the thread list in line with /proc/PID/task.  Returns 0, or -ESRCH
 * when the process is gone.
 */
static int update_threads(struct target *t)
{
	struct dirent *de;
	size_t n = 0, old = t->nthreads;
	bool added = false;

	for (size_t i = 0; i < t->nthreads; i++)
		t->threads[i]->seen = false;
	rewinddir(t->tasks);
	for (;;) {
		struct tstate *ts;
		char *end;
		long tid;

		errno = 0;
		de = readdir(t->tasks);
		if (de == NULL) {
			if (errno == ENOENT || errno == ESRCH)
				return -ESRCH;
			break;
		}
		tid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || tid <= 0)
			continue;
		ts = find_thread(t, (pid_t)tid);
		if (ts == NULL) {
			if (t->nthreads == t->threads_cap) {
				t->threads_cap = t->threads_cap ? t->threads_cap * 2 : 16;
				t->threads = xreallocarray(t->threads, t->threads_cap,
							   sizeof *t->threads);
			}
			ts = tstate_new(t, (pid_t)tid);
			t->threads[t->nthreads++] = ts;
			added = true;
		}
		ts->seen = true;
	}
	/*
	 * Drop threads that exited; keep the array sorted by tid.  A carried
	 * thread stays until its stop is collected: an exiting thread we have
	 * seized waits for us to release it.
	 */
	for (size_t i = 0; i < t->nthreads; i++) {
		if (t->threads[i]->seen || t->threads[i]->carried)
			t->threads[n++] = t->threads[i];
		else
			tstate_free(t->threads[i]);
	}
	t->nthreads = n;
	if (added || n != old)
		if (t->nthreads > 1)
			qsort(t->threads, t->nthreads, sizeof *t->threads, cmp_tstate);
	return t->nthreads == 0 ? -ESRCH : 0;
}

/*
 * Lists the threads again only when the list may have changed.  Reading the
 * directory costs the kernel a lookup per thread, as much as the rest of a
 * tick for a process of idle threads; its link count is the thread count
 * plus two, for nothing.  A thread that exits is found gone by its own reads
 * (an exiting thread runs, so even a watched one is read) and that forces a
 * listing, so a thread started as another exits is not missed either; the
 * listing every RELIST_NS is a backstop.  It was every 64 ticks, which at
 * 999 Hz was 6.5 % of perchd's time on a process of 67 threads (a profile
 * of 2026-11-26 20:25).
 */
static int list_threads(struct target *t)
{
	struct stat st;
	bool known = fstat(dirfd(t->tasks), &st) == 0;
	uint64_t now = mono_ns();

	if (known && !t->relist && st.st_nlink == t->tasks_nlink && now - t->listed_ns < RELIST_NS)
		return 0;
	/* The count is taken first: a thread started during the listing shows next tick. */
	t->tasks_nlink = known ? st.st_nlink : 0;
	t->relist = false;
	t->listed_ns = now;
	return update_threads(t);
}

/* ---- one thread ------------------------------------------------------- */

/*
 * Reads one of the thread's /proc files (kept open: reading from offset 0
 * makes the kernel regenerate it) into buf; each is one line.  -ESRCH when
 * the thread is gone.
 */
static ssize_t read_task(int fd, char *buf, size_t size)
{
	return fd < 0 ? -ESRCH : procfs_pread_line(fd, buf, size);
}

/* The thread's run time and, unless NULL, how many times it was switched in. */
static int read_sched(struct tstate *ts, uint64_t *run_ns, uint64_t *switches)
{
	struct procfs_schedstat ss;
	char buf[128];
	ssize_t n = read_task(ts->fd_schedstat, buf, sizeof buf);

	if (n < 0)
		return (int)n;
	if (procfs_parse_schedstat(buf, (size_t)n, &ss) < 0)
		return -EINVAL;
	*run_ns = ss.run_ns;
	if (switches != NULL)
		*switches = ss.timeslices;
	return 0;
}

static int read_stat(struct tstate *ts, struct procfs_stat *st)
{
	char buf[1024];
	ssize_t n = read_task(ts->fd_stat, buf, sizeof buf);

	return n < 0 ? (int)n : procfs_parse_stat(buf, (size_t)n, st);
}

static int read_syscall(struct tstate *ts, struct procfs_syscall *sc)
{
	char buf[256];
	ssize_t n = read_task(ts->fd_syscall, buf, sizeof buf);

	return n < 0 ? (int)n : procfs_parse_syscall(buf, (size_t)n, sc);
}

static uint64_t stack_end_of(void *ctx, uint64_t sp)
{
	struct target *t = ctx;
	struct mapping *m = addrspace_find(&t->aspace, sp);

	if (m == NULL) {
		t->maps_stale = true;
		return 0;
	}
	return m->end;
}

/*
 * A thread blocked in a system call: copy its stack without stopping it,
 * then make sure it did not run meanwhile.  Returns 1 when the thread ran
 * (the copy may be torn and the caller tries again), 0 or a negative errno.
 */
static int capture_blocked(struct target *t, struct tstate *ts,
			   const struct procfs_syscall *sc)
{
	uint64_t after = 0;
	int rc;

	rc = tracer_copy_blocked(ts->tid, sc->sp, sc->pc, ts->copy_len, ts->copy_end,
				 t->opts.max_stack_copy, stack_end_of(t, sc->sp), &ts->snap);
	if (rc < 0)
		return rc;
	rc = read_sched(ts, &after, NULL);
	if (rc < 0)
		return rc;
	return after != ts->run_ns;
}

/* This tick has a stop limit and no stop left under it. */
static bool no_stop_left(const struct target *t)
{
	return t->limit > 0 && t->stops_left == 0;
}

/*
 * Seizes and interrupts the thread; it is captured when it stops.  Over the
 * tick's max_stops, skips it instead.
 */
static void start_stop(struct target *t, struct tstate *ts)
{
	struct tracer_job *j = &ts->job;

	if (t->limit > 0) {
		if (t->stops_left == 0) {
			ts->step = STEP_SKIPPED;
			ts->owed++;
			ts->skips_in_row++;
			t->stats.skipped++;
			return;
		}
		t->stops_left--;
		/* The next tick's visit starts after the last thread stopped. */
		t->first = t->visiting + 1;
	}
	ts->skips_in_row = 0;
	j->tid = ts->tid;
	j->flags = ts->tid == t->pid && t->own_child ? TRACER_OWN_CHILD : 0;
	/* A real-time sampler polling on that CPU would keep it from stopping. */
	if (ts->st.processor >= 0 && ts->st.processor == sched_getcpu())
		j->flags |= TRACER_NO_POLL;
	j->copy_len = ts->copy_len;
	j->copy_end = ts->copy_end;
	j->copy_max = t->opts.max_stack_copy;
	j->snap = &ts->snap;
	j->stack_end = stack_end_of;
	j->ctx = t;
	ts->not_run = ts->have_last && ts->run_ns == ts->last_run_ns;
	if (tracer_start(j) < 0) {
		ts->step = j->rc == -ESRCH ? STEP_GONE : STEP_FAILED;
		ts->error = j->rc;
		return;
	}
	ts->step = STEP_PENDING;
	t->jobs[t->njobs++] = j;
}

/* After the stop: accounting, and the run time the stop left. */
static void stopped(struct target *t, struct tstate *ts)
{
	const struct thread_snapshot *snap = &ts->snap;

	t->stats.signals_reinjected += (uint64_t)snap->signals_reinjected;
	if (ts->job.rc < 0) {
		ts->step = ts->job.rc == -ESRCH ? STEP_GONE : STEP_FAILED;
		ts->error = ts->job.rc;
		return;
	}
	t->stats.pause_ns += snap->pause_ns;
	/*
	 * A thread detached on its way out of a system call may not have run
	 * yet at the next sample and still be on that way: the same EINTR, seen
	 * twice, is counted once.
	 */
	if (snap->interrupted_syscall &&
	    !(ts->not_run && snap->regs.rip == ts->eintr_rip &&
	      snap->regs.rsp == ts->eintr_rsp))
		t->stats.eintr_caused++;
	ts->eintr_rip = snap->interrupted_syscall ? snap->regs.rip : 0;
	ts->eintr_rsp = snap->interrupted_syscall ? snap->regs.rsp : 0;
	if (snap->group_stopped)
		ts->st.state = 'T';
	/*
	 * The stop itself made the thread run; remember the run time after it,
	 * so that a thread that stays idle (or stopped) is not stopped again.
	 */
	if (read_sched(ts, &ts->run_ns, &ts->switches) < 0)
		ts->step = STEP_GONE;
}

/* Grows the next copy when the unwind had to read deeper, shrinks it slowly. */
static void adapt_copy_len(struct target *t, struct tstate *ts,
			   const struct unwind_result *ur)
{
	size_t need = MIN_COPY;

	if (ur->stack_high > ts->snap.stack_addr)
		need = (size_t)(ur->stack_high - ts->snap.stack_addr) + COPY_SLACK;
	if (need < MIN_COPY)
		need = MIN_COPY;
	if (need > ts->copy_len || ur->late_reads > 0)
		ts->copy_len = need > ts->copy_len ? need : ts->copy_len * 2;
	else if (need < ts->copy_len / 2)
		ts->copy_len = (ts->copy_len + need) / 2;
	if (ts->copy_len > t->opts.max_stack_copy)
		ts->copy_len = t->opts.max_stack_copy;
	/*
	 * A thread's outermost frame stays where it is (its start routine's,
	 * near the top of its stack) however deep it is at the moment: the
	 * next copy ends where this unwind did, and so holds every frame at
	 * any depth and little else.  A length from the stack pointer must
	 * keep room for the thread going deeper, and still falls short when
	 * it goes much deeper (then the unwind reads the rest after the
	 * thread resumed); it came to 5 KiB for a 20-frame stack that needs
	 * 1.1 (bench_pause); the copy is made while the thread is stopped,
	 * though its length is the smaller part of its cost (docs/DESIGN.md,
	 * "The pause").  An unwind that stopped early, or read past its copy,
	 * proves nothing about the end: the next copy is by length again.
	 */
	ts->copy_end = ur->complete && ur->late_reads == 0 && ur->stack_high > ts->snap.stack_addr
			       ? ur->stack_high + END_SLACK
			       : 0;
}

static struct perch_frame *push_frame(struct tstate *ts)
{
	if (ts->nframes == ts->frames_cap) {
		ts->frames_cap = ts->frames_cap ? ts->frames_cap * 2 : 64;
		ts->frames = xreallocarray(ts->frames, ts->frames_cap,
					   sizeof *ts->frames);
	}
	return &ts->frames[ts->nframes++];
}

static void symbolize_frame(struct target *t, struct tstate *ts,
			    const struct unwind_frame *uf)
{
	struct elf_file *elf;
	struct mapping *m = addrspace_resolve(&t->aspace, uf->ip, &elf);
	struct sym_result sr = { NULL, 0 };
	uint64_t vaddr = 0;

	if (m == NULL)
		t->maps_stale = true;
	if (elf != NULL && m->bias_known)
		vaddr = uf->ip - m->bias;
	if (t->symbolizer != NULL) {
		if (elf != NULL)
			symbolizer_lookup(t->symbolizer, elf, vaddr, uf->is_return, &sr);
		else
			symbolizer_lookup_anon(t->symbolizer, uf->ip, &sr);
	}
	for (size_t i = 0; i < (sr.n ? sr.n : 1); i++) {
		struct perch_frame *f = push_frame(ts);

		f->addr = uf->ip;
		f->module = elf != NULL ? elf->path : NULL;
		f->build_id = elf != NULL ? elf->build_id_hex : "";
		f->module_offset = vaddr;
		f->func = sr.n ? sr.frames[i].func : "[unknown]";
		f->file = sr.n ? sr.frames[i].file : NULL;
		f->line = sr.n ? sr.frames[i].line : 0;
		f->inlined = sr.n ? sr.frames[i].inlined : false;
	}
}

static void unwind_thread(struct target *t, struct tstate *ts)
{
	struct mapping *sm = addrspace_find(&t->aspace, ts->snap.stack_addr);
	struct unwind_result ur;
	uint64_t t0 = mono_ns(), t1;

	if (t->unwound_generation != t->aspace.generation) {
		unwinder_flush(t->unwinder);
		t->unwound_generation = t->aspace.generation;
	}
	unwinder_unwind(t->unwinder, &ts->snap, sm ? sm->end : 0, t->ufr,
			MAX_UNWIND, &ur);
	t1 = mono_ns();
	t->stats.unwind_ns += t1 - t0;
	t->stats.late_reads += ur.late_reads;
	t->stats.copy_bytes += ts->snap.stack_len;
	adapt_copy_len(t, ts, &ur);
	ts->last_complete = ur.complete;
	if (!ur.complete)
		t->stats.incomplete++;
	ts->nframes = 0;
	for (size_t i = 0; i < ur.n; i++)
		symbolize_frame(t, ts, &t->ufr[i]);
	t->stats.frames += ts->nframes;
	t->stats.symbolize_ns += mono_ns() - t1;
}

static void refresh_maps(struct target *t)
{
	if (addrspace_refresh(&t->aspace) > 0)
		t->stats.maps_refreshes++;
	t->maps_stale = false;
}

/*
 * Whether the thread cannot have moved since its last sample, so that its
 * last stack still stands.  The kernel updates a running thread's run time
 * only at scheduler ticks, so an unchanged run time proves something only for
 * a thread off the CPU.  A stopped thread runs a little in the kernel each
 * time it is captured, but no user code: its user time tells.
 */
static bool unchanged(const struct tstate *ts)
{
	if (!ts->have_last)
		return false;
	if (ts->st.state == 'T')
		return ts->last_state == 'T' && ts->st.utime == ts->last_utime;
	return ts->st.state != 'R' && ts->run_ns == ts->last_run_ns;
}

/*
 * Whether the thread, blocked at its last sample, has not been switched in
 * since: then it has not executed an instruction, so its stack and its
 * state stand, and even its stat file need not be read.  The switch count
 * is what makes this safe: it grows as a thread is switched in, while its
 * run time grows only at the next scheduler tick or switch out.  A thread
 * woken and still waiting for a CPU keeps its blocked state here: it is not
 * running.  (Its name, if another thread renamed it, is read when it next
 * runs.)  This is the common case of a server's idle threads, and reading
 * one file instead of two for each is what the per-tick cost is made of.
 */
static bool quiet(const struct tstate *ts)
{
	char s = ts->last_state;

	return ts->have_last && s != 'R' && s != 'T' && s != 't' && s != 'Z' && s != 'X' &&
	       ts->run_ns == ts->last_run_ns && ts->switches == ts->last_switches;
}

/*
 * Starts watching a thread (switchwatch.h); the watch is armed by a later
 * read.  Where perf events cannot work at all, no thread of the target is
 * tried again; a thread that could not get one for its own reasons is not.
 */
static void open_watch(struct target *t, struct tstate *ts)
{
	int rc;

	if (t->watch_off || ts->watch_failed)
		return;
	rc = switchwatch_open(ts->tid, &ts->watch);
	if (rc == 0)
		t->stats.watches++;
	else if (switchwatch_unsupported(rc))
		t->watch_off = true;
	else
		ts->watch_failed = true;
}

/* A read made after this tick's look found the thread running or quiet. */
static void arm_watch(struct tstate *ts, bool running)
{
	ts->watch_armed = true;
	ts->armed_running = running;
}

static void close_watch(struct tstate *ts)
{
	switchwatch_close(ts->watch);
	ts->watch = NULL;
	ts->watch_armed = false;
	ts->moved_ticks = 0;
}

/*
 * A read has just found the thread quiet.  A watch looked at before that read
 * is armed: the read proves the thread did not run up to a moment after the
 * look, and the watch has counted every switch since.  A thread quiet for
 * WATCH_AFTER ticks in a row gets a watch (it is armed at its next quiet
 * read); one that wakes often never does.
 */
static void found_quiet(struct target *t, struct tstate *ts)
{
	if (ts->watch != NULL) {
		arm_watch(ts, false);
		return;
	}
	if (++ts->quiet_ticks >= WATCH_AFTER) {
		/* It stays idle: its kernel sampler's ring is locked memory for nothing. */
		ksample_close(ts->ks);
		ts->ks = NULL;
		open_watch(t, ts);
	}
}

/*
 * A read has just found the thread running, with no stop left this tick: it
 * will be skipped.  The same holds for a running thread as for a quiet one:
 * it cannot block without being switched out, so while its watch stays
 * still it is still running (on a CPU or waiting for one), and the next
 * ticks that have no stop for it skip it without reading its stat.  That is
 * what an oversubscribed process costs per tick: a read for each running
 * thread it cannot stop.
 */
static void found_running_skipped(struct target *t, struct tstate *ts)
{
	/*
	 * Only a thread skipped at the tick before too: one stopped every
	 * other tick finds its watch moved by its own stop each time.
	 */
	if (ts->watch == NULL) {
		if (ts->skips_in_row >= 1)
			open_watch(t, ts);
		return;
	}
	arm_watch(ts, true);
}

/*
 * The first look at a thread this tick, before any read.  Returns true when
 * the watch settled the thread (its step is set).  A watch that moved at
 * every look for WATCH_MOVED_MAX ticks is closed: its thread switches too
 * often for the watch to save a read, and each switch writes a record.
 */
static bool watch_look(struct target *t, struct tstate *ts)
{
	bool moved;

	if (ts->watch == NULL)
		return false;
	moved = switchwatch_moved(ts->watch);
	ts->moved_ticks = moved ? ts->moved_ticks + 1 : 0;
	if (ts->watch_armed && !moved) {
		if (!ts->armed_running) {
			ts->st.state = ts->last_state;
			ts->step = STEP_REUSED;
			t->stats.watched++;
			return true;
		}
		if (no_stop_left(t) && ts->ks == NULL) {
			/* Still running, and no stop for it: skipped (start_stop). */
			ts->st.state = 'R';
			t->running++;
			t->stats.watched_running++;
			start_stop(t, ts);
			return true;
		}
		/* A stop for it: read its state last thing before the stop, as always. */
	}
	ts->watch_armed = false;
	if (ts->moved_ticks >= WATCH_MOVED_MAX)
		close_watch(ts);
	return false;
}

/*
 * Opens a kernel sampler on a thread found running; it yields samples from
 * the next tick on.  Its state is read again once it is open (see
 * ksample_assume).  As for watches: where perf events cannot work at all,
 * no thread of the target tries again.
 */
static void open_kernel_sampler(struct target *t, struct tstate *ts)
{
	struct procfs_stat st;
	int rc = ksample_open(ts->tid, t->opts.kernel_period_ns, ts->copy_len, &ts->ks);

	if (rc == 0) {
		t->stats.kernel_samplers++;
		ts->ks_last_ns = mono_ns();
		if (read_stat(ts, &st) == 0)
			ksample_assume(ts->ks, st.state == 'R' ? KSAMPLE_RUNNING : KSAMPLE_ASLEEP);
	} else if (switchwatch_unsupported(rc)) {
		t->kernel_off = true;
	} else {
		ts->ks_failed = true;
	}
}

/*
 * The unwind wanted more stack than the kernel copies, or far less (the
 * target pays for every byte of every sample): the sampler is opened again.
 */
static bool kernel_copy_wrong(const struct tstate *ts)
{
	size_t have = ksample_stack_bytes(ts->ks);

	return (have < ts->copy_len && have < KSAMPLE_MAX_STACK) || have > 2 * ts->copy_len;
}

/*
 * A thread running, and a look at its ring made (rc from ksample_take, what
 * it found in *look).  Returns true when that settled it: the kernel took a
 * sample since the last look (STEP_KERNEL), or none came and it is skipped,
 * its next running sample standing for this tick too, as for max_stops.  No
 * sample comes while a running thread waits for a CPU, or before it has run
 * a whole period since its last one: many threads sharing few CPUs each run
 * a small part of the time (16 burner threads on 2 CPUs at 99 Hz: a sample
 * every ~80 ms of wall-clock time).  Either way its stack is what it was at
 * its last run, and the next sample shows where it runs.  Returns false when
 * it must be stopped: its ring shows it on a CPU for KERNEL_OVERDUE periods
 * since its last sample with none taken, which is the kernel throttling
 * sampling events whose interrupts take too long; or, when the ring cannot
 * tell (records lost), no sample came for KERNEL_WAIT_MAX_NS.  So no thread
 * goes unsampled for long.  Until 2026-11-26 20:00 the wall-clock bound alone
 * decided, and stopped 36 % of the thread-samples of 16 burner threads at
 * 99 Hz (docs/DESIGN.md, "Running threads: kernel samples").
 */
static bool kernel_settle(struct target *t, struct tstate *ts, int rc,
			  const struct ksample_look *look, uint64_t period_ns)
{
	bool due;

	if (rc > 0) {
		ts->step = STEP_KERNEL;
		ts->ks_last_ns = mono_ns();
		ts->skips_in_row = 0;
		return true;
	}
	if (look->ran_ns != KSAMPLE_RAN_UNKNOWN)
		due = look->ran_ns < KERNEL_OVERDUE * period_ns;
	else
		due = mono_ns() - ts->ks_last_ns < KERNEL_WAIT_MAX_NS;
	if (rc == 0 && due) {
		ts->step = STEP_SKIPPED;
		ts->owed++;
		t->stats.kernel_waits++;
		return true;
	}
	return false;
}

/*
 * A thread asleep when the tick was due (its ring says so) but running when
 * looked at: its stack at the due time was where it had blocked, which is
 * gone now.  Its last blocked stack stands in for it, when one is known: a
 * server's thread blocks in the same place again and again (redis in
 * epoll_wait), and counting the tick as running instead is what made perch
 * find redis running in 0.95-0.98 of the ticks against 0.78 by schedstat.
 * When no blocked stack of the thread is known yet, the tick is skipped
 * and owed to its next blocked sample, as a skipped running tick is owed to
 * its next running one.  Reading it now instead would count it running,
 * with where it runs after waking: perchd on a pinned redis-server's own
 * CPU, whose idle CPU wakes the sampler late, so that a request has woken
 * the server first at nearly every such tick and no blocked stack ever
 * comes, found it running in 0.99 of the ticks against 0.79 on a CPU by
 * schedstat (bench/placement.sh, 2026-11-26 17:22).
 */
static bool settle_last_blocked(struct target *t, struct tstate *ts)
{
	if (!ts->have_blocked) {
		t->stats.kernel_woke_unknown++;
		ts->owed_asleep++;
		ts->step = STEP_SKIPPED;
		return true;
	}
	ts->step = STEP_LAST_BLOCKED;
	t->stats.kernel_woke++;
	return true;
}

/*
 * A thread its stat has just shown running, with kernel samples allowed.
 * Returns as kernel_settle; also false when it has no sampler yet (one is
 * opened for the next ticks).
 */
static bool take_kernel_sample(struct target *t, struct tstate *ts)
{
	struct ksample_look look;
	int rc;

	if (t->kernel_off || ts->ks_failed)
		return false;
	if (ts->asleep_at_due && settle_last_blocked(t, ts))
		return true;
	if (ts->ks != NULL && kernel_copy_wrong(ts)) {
		ksample_close(ts->ks);
		ts->ks = NULL;
	}
	if (ts->ks == NULL) {
		open_kernel_sampler(t, ts);
		return false;
	}
	rc = ksample_take(ts->ks, t->due_ns, &ts->snap, &look);
	/* kernel_look took one before finding that it had to read the thread. */
	if (rc == 0 && ts->ks_held)
		rc = 1;
	if (kernel_settle(t, ts, rc, &look, ksample_period_ns(ts->ks)))
		return true;
	/* Stopped now: the next wait counts from here. */
	ts->ks_last_ns = mono_ns();
	return false;
}

/*
 * The first look at a thread with a kernel sampler, before any read.  Its
 * ring has the thread's context switches with their times, so it says what
 * the thread was doing when the tick was due, which is what the tick
 * counts, whatever the thread did in the tens of microseconds the sampler
 * took to wake up and get here (docs/DESIGN.md, "The state at the due
 * time"):
 * - running (on a CPU or waiting for one): the newest sample up to then is
 *   this tick's, and its stat need not be read (once in a while it is, so
 *   that its name and CPU stay current);
 * - asleep, and running now: its last blocked stack (settle_last_blocked);
 * - asleep, and still asleep as far as the ring shows: it is read as any
 *   other thread, and copied blocked or reused;
 * - unknown (records were lost): it is read as any other thread.
 * Returns true when that settled the thread.
 */
static bool kernel_look(struct target *t, struct tstate *ts)
{
	struct ksample_look look;
	uint64_t period_ns;
	int rc;

	ts->ks_held = false;
	ts->asleep_at_due = false;
	if (ts->ks == NULL || t->kernel_off)
		return false;
	rc = ksample_take(ts->ks, t->due_ns, &ts->snap, &look);
	ts->ks_held = rc > 0;
	period_ns = ksample_period_ns(ts->ks);
	/*
	 * Its copy is the wrong size for its stack: opened again for the next
	 * ticks, after this look (a new sampler knows nothing of the thread's
	 * past, and this tick's state is in the old one's ring).  The opening
	 * fails for a thread that is exiting, and then it has none: nothing
	 * below may use ts->ks (perchd crashed here on a target killed 16 ms
	 * after its first sample, a CI run of 2026-11-27).
	 */
	if (kernel_copy_wrong(ts)) {
		ksample_close(ts->ks);
		ts->ks = NULL;
		open_kernel_sampler(t, ts);
	}
	if (look.at_due == KSAMPLE_UNKNOWN)
		return false;
	if (look.at_due == KSAMPLE_ASLEEP) {
		ts->asleep_at_due = true;
		ts->ks_held = false;
		return (look.now == KSAMPLE_RUNNING || look.now == KSAMPLE_WAITING) &&
		       settle_last_blocked(t, ts);
	}
	if ((t->ticks + (uint64_t)ts->tid) % RELIST_EVERY == 0 && read_stat(ts, &ts->st) < 0) {
		ts->step = STEP_GONE;
		return true;
	}
	/*
	 * The kernel's R, split: on a CPU when the tick was due, or preempted
	 * and waiting for one ('W', which --cpu does not count, as perf counts
	 * only time on a CPU).
	 */
	ts->st.state = look.at_due == KSAMPLE_WAITING ? 'W' : 'R';
	if (!kernel_settle(t, ts, rc, &look, period_ns))
		/* To be stopped: read first, as any thread to be stopped is. */
		return false;
	t->running++;
	t->stats.kernel_looks++;
	return true;
}

/*
 * First half of a thread's sample: get its stack by the cheapest safe means
 * (see target.h), or start stopping it.  Returns false when the thread's
 * watch settled it without a system call.
 *
 * The syscall file is read last thing before the decision: a thread that
 * blocks between that read and PTRACE_INTERRUPT is woken by the interrupt,
 * and if it blocked in epoll_wait (or any call the kernel does not restart)
 * it sees EINTR.  Keeping that window to a few microseconds is all a ptrace
 * sampler can do; the stops that hit it anyway are counted (eintr_caused).
 * A thread that keeps waking up during a copy without a stop is stopped.
 */
static bool begin_thread(struct target *t, struct tstate *ts)
{
	/*
	 * A thread running at its last sample cannot be quiet, and if it still
	 * runs it is skipped (no stop left this tick) or the kernel sampled it:
	 * then its counters matter to nothing, and the state (read next)
	 * decides.  (Should it be stopped after all, they are read first.)
	 */
	bool skip_counters = ts->have_last && ts->last_state == 'R' &&
			     (no_stop_left(t) || (ts->ks != NULL && !t->kernel_off));
	struct procfs_syscall sc;
	int rc;

	/* Looked at before any read, so that a read after it can arm it. */
	if (watch_look(t, ts))
		return false;
	if (kernel_look(t, ts))
		return false;
	t->reads++;
	if (!skip_counters) {
		if (read_sched(ts, &ts->run_ns, &ts->switches) < 0) {
			ts->step = STEP_GONE;
			return true;
		}
		if (quiet(ts)) {
			found_quiet(t, ts);
			ts->st.state = ts->last_state;
			ts->step = STEP_REUSED;
			return true;
		}
	}
	ts->quiet_ticks = 0;
	if (read_stat(ts, &ts->st) < 0 || ts->st.state == 'Z' || ts->st.state == 'X') {
		ts->step = STEP_GONE;
		return true;
	}
	/*
	 * A running thread is stopped: its syscall file would only say
	 * "running", and its counters only matter for one that is not.
	 */
	if (ts->st.state == 'R') {
		t->running++;
		if (take_kernel_sample(t, ts))
			return true;
		if (skip_counters && !no_stop_left(t) &&
		    read_sched(ts, &ts->run_ns, &ts->switches) < 0) {
			ts->step = STEP_GONE;
			return true;
		}
		if (no_stop_left(t))
			found_running_skipped(t, ts);
		start_stop(t, ts);
		return true;
	}
	/*
	 * Not running: the counters again, after the state, so that a thread
	 * that ran and blocked again between the two reads shows in them.
	 */
	if (read_sched(ts, &ts->run_ns, &ts->switches) < 0) {
		ts->step = STEP_GONE;
		return true;
	}
	if (unchanged(ts)) {
		ts->step = STEP_REUSED;
		return true;
	}
	for (int attempt = 0; attempt < 3 && ts->st.state != 'T' && ts->st.state != 't';
	     attempt++) {
		if ((rc = read_syscall(ts, &sc)) < 0)
			goto failed;
		if (sc.state != PROCFS_SYSCALL_BLOCKED)
			break;
		rc = capture_blocked(t, ts, &sc);
		if (rc == 0) {
			ts->step = STEP_BLOCKED;
			return true;
		}
		if (rc < 0 || (rc = read_stat(ts, &ts->st)) < 0 ||
		    (rc = read_sched(ts, &ts->run_ns, &ts->switches)) < 0)
			goto failed;
	}
	start_stop(t, ts);
	return true;
failed:
	ts->step = rc == -ESRCH ? STEP_GONE : STEP_FAILED;
	ts->error = rc;
	return true;
}

/* Copies n frames to *dst (capacity *cap, grown as needed). */
static void copy_frames(struct perch_frame **dst, size_t *cap, const struct perch_frame *src,
			size_t n)
{
	if (*cap < n) {
		*cap = n;
		*dst = xreallocarray(*dst, n, sizeof **dst);
	}
	if (n > 0)
		memcpy(*dst, src, n * sizeof *src);
}

/* Second half: unwind and symbolize what was captured; fill pt. */
static void end_thread(struct target *t, struct tstate *ts, struct perch_thread *pt)
{
	memset(pt, 0, sizeof *pt);
	pt->tid = ts->tid;
	pt->weight = ts->carried ? ts->carried_ticks + 1 : 1;
	ts->carried = false;
	ts->carried_ticks = 0;
	pt->name = ts->st.comm;
	if (ts->step == STEP_PENDING)
		stopped(t, ts);
	pt->state = ts->step == STEP_LAST_BLOCKED ? ts->blocked_state : ts->st.state;
	/* Skipped ticks found it running: only a running sample stands for them. */
	if ((ts->step == STEP_PENDING || ts->step == STEP_KERNEL) &&
	    (pt->state == 'R' || pt->state == 'W')) {
		pt->weight += ts->owed;
		ts->owed = 0;
	}
	/* Ticks that found it asleep before its blocked stack was known. */
	if ((ts->step == STEP_BLOCKED || ts->step == STEP_REUSED ||
	     ts->step == STEP_LAST_BLOCKED) && pt->state != 'R' && pt->state != 'W') {
		pt->weight += ts->owed_asleep;
		ts->owed_asleep = 0;
	}
	ts->ran = ts->step == STEP_PENDING || ts->step == STEP_BLOCKED ||
		  ts->step == STEP_KERNEL || ts->step == STEP_LAST_BLOCKED;
	switch (ts->step) {
	case STEP_GONE:
		return;
	case STEP_FAILED:
		pt->capture = PERCH_CAPTURE_NONE;
		pt->error = ts->error;
		ts->have_last = false;
		return;
	case STEP_REUSED:
		pt->capture = PERCH_CAPTURE_REUSED;
		break;
	case STEP_LAST_BLOCKED:
		/*
		 * Its frames become this sample's, which a reused sample would
		 * repeat; but it has run since, so nothing of this sample may be
		 * reused or compared against: the next tick reads it afresh.
		 */
		pt->capture = PERCH_CAPTURE_LAST_BLOCKED;
		copy_frames(&ts->frames, &ts->frames_cap, ts->blocked, ts->nblocked);
		ts->nframes = ts->nblocked;
		ts->last_complete = ts->blocked_complete;
		ts->have_last = false;
		break;
	default:
		pt->capture = ts->step == STEP_PENDING	 ? PERCH_CAPTURE_STOPPED
			      : ts->step == STEP_KERNEL ? PERCH_CAPTURE_KERNEL
							 : PERCH_CAPTURE_BLOCKED;
		pt->pause_ns = ts->step == STEP_PENDING ? ts->snap.pause_ns : 0;
		if (t->maps_stale)
			refresh_maps(t);
		unwind_thread(t, ts);
		ts->have_last = true;
		ts->last_run_ns = ts->run_ns;
		ts->last_switches = ts->switches;
		/*
		 * A thread stopped for its sample was running, whatever its stat
		 * said a moment before: never take it for a blocked one.
		 */
		ts->last_state = (ts->step == STEP_PENDING && ts->st.state != 'T') ||
					 ts->step == STEP_KERNEL
				 ? 'R'
				 : ts->st.state;
		ts->last_utime = ts->st.utime;
		if (ts->step == STEP_BLOCKED) {
			copy_frames(&ts->blocked, &ts->blocked_cap, ts->frames, ts->nframes);
			ts->nblocked = ts->nframes;
			ts->blocked_complete = ts->last_complete;
			ts->blocked_state = ts->st.state;
			ts->have_blocked = true;
		}
	}
	pt->complete = ts->last_complete;
	pt->frames = ts->frames;
	pt->nframes = ts->nframes;
}

/* Gone, or a zombie waiting for its parent: nothing left to sample. */
static bool process_gone(pid_t pid)
{
	struct procfs_stat st;

	if (procfs_read_stat(pid, &st) < 0)
		return true;
	return st.state == 'Z' || st.state == 'X';
}

/* target_begin with a stop limit for this tick (0: none). */
static int begin(struct target *t, unsigned int limit, uint64_t due_ns)
{
	uint64_t now;
	unsigned int carried;
	size_t start;
	int rc;

	t->ticks++;
	if (t->maps_stale || t->ticks % MAPS_REFRESH_EVERY == 0)
		refresh_maps(t);
	rc = list_threads(t);
	if (rc < 0)
		return rc;
	if (t->out_cap < t->nthreads) {
		t->out_cap = t->nthreads * 2;
		t->out = xreallocarray(t->out, t->out_cap, sizeof *t->out);
		t->jobs = xreallocarray(t->jobs, t->out_cap, sizeof *t->jobs);
	}
	/* The sample's wall-clock time is when it was due: ticks may be taken late (target.h). */
	t->time_ns = real_ns();
	now = mono_ns();
	if (due_ns != 0 && now > due_ns)
		t->time_ns -= now - due_ns;
	t->due_ns = due_ns != 0 ? due_ns : now;
	t->reads = 0;
	/*
	 * Stops are started one after the other and collected as threads stop:
	 * the tick costs the slowest thread's stop, not the sum of all.
	 */
	t->njobs = 0;
	for (size_t i = 0; i < t->nthreads; i++) {
		struct tstate *ts = t->threads[i];

		if (ts->carried) {
			ts->carried_ticks++;
			t->jobs[t->njobs++] = &ts->job;
		}
	}
	carried = (unsigned int)t->njobs;
	/* Carried stops are stops under way: they count against the limit. */
	t->limit = limit;
	t->stops_left = limit > carried ? limit - carried : 0;
	start = t->first < t->nthreads ? t->first : 0;
	t->running = 0;
	for (size_t k = 0; k < t->nthreads; k++) {
		struct tstate *ts;

		t->visiting = (start + k) % t->nthreads;
		ts = t->threads[t->visiting];
		if (ts->carried)
			continue;
		/*
		 * Stops that came while this thread was read are released at
		 * once; a thread its watch settled took no time to check, and
		 * polling after each of many would cost more than the checks.
		 */
		if (begin_thread(t, ts) && t->njobs > 0)
			tracer_collect(t->jobs, t->njobs, TRACER_NOW);
	}
	/*
	 * As many running threads as CPUs (carried ones included: they wait
	 * for one): every CPU has a thread of the target to run, and a tracer
	 * polling for stops holds one of them.  Some stop then cannot come
	 * before the poll ends, and the poll's time is the target's.
	 */
	if (t->running + carried >= t->cpus)
		for (size_t i = 0; i < t->njobs; i++)
			t->jobs[i]->flags |= TRACER_NO_POLL;
	return 0;
}

size_t target_jobs(struct target *t, struct tracer_job ***jobs)
{
	*jobs = t->jobs;
	return t->njobs;
}

int target_end(struct target *t, struct perch_sample *out)
{
	size_t n = 0;
	unsigned int gone = 0;

	memset(out, 0, sizeof *out);
	out->time_ns = t->time_ns;
	for (size_t i = 0; i < t->nthreads; i++) {
		struct tstate *ts = t->threads[i];
		struct perch_thread *pt = &t->out[n];

		if (ts->step == STEP_PENDING && !ts->job.done) {
			ts->carried = true;
			t->stats.carried++;
			continue;
		}
		if (ts->step == STEP_SKIPPED) {
			ts->ran = true;
			continue;
		}
		end_thread(t, ts, pt);
		if (ts->step == STEP_GONE) {
			t->relist = true;
			gone++;
			continue;
		}
		t->stats.thread_samples[pt->capture]++;
		n++;
	}
	if (n == 0 && t->njobs == 0 && process_gone(t->pid))
		return -ESRCH;
	out->threads = t->out;
	out->nthreads = n;
	out->threads_gone = gone;
	t->stats.samples++;
	return 0;
}

int target_begin(struct target *t, uint64_t due_ns)
{
	return begin(t, t->opts.max_stops, due_ns);
}

int target_sample(struct target *t, struct perch_sample *out)
{
	/*
	 * Every thread: a caller that waits for all stops wants them all (a
	 * session's warm-up sample, which is not recorded, must not leave
	 * ticks owed to the recorded ones either).
	 */
	int rc = begin(t, 0, 0);

	if (rc < 0) {
		memset(out, 0, sizeof *out);
		return rc;
	}
	tracer_collect(t->jobs, t->njobs, TRACER_ALL);
	return target_end(t, out);
}

void target_close(struct target *t)
{
	if (t == NULL)
		return;
	t->njobs = 0;
	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i]->carried)
			t->jobs[t->njobs++] = &t->threads[i]->job;
	tracer_collect(t->jobs, t->njobs, TRACER_ALL);
	for (size_t i = 0; i < t->nthreads; i++)
		tstate_free(t->threads[i]);
	free(t->threads);
	free(t->out);
	free(t->jobs);
	free(t->ufr);
	symbolizer_free(t->symbolizer);
	unwinder_free(t->unwinder);
	addrspace_destroy(&t->aspace);
	closedir(t->tasks);
	free(t);
}

unsigned int target_running_cpus(const struct target *t, cpu_set_t *set, bool *at_look)
{
	unsigned int n = 0;

	for (size_t i = 0; i < t->nthreads; i++) {
		const struct tstate *ts = t->threads[i];
		bool running;

		if (!ts->have_last)
			continue;
		running = ts->last_state == 'R' || ts->last_state == 'W' ||
			  ts->step == STEP_SKIPPED;
		n += running;
		if ((running || ts->ran) && (t->kernel_off || ts->ks == NULL))
			*at_look = true;
		/*
		 * Any thread that ran since its previous sample, stopped or
		 * read blocked: a server seen blocked at every tick still runs
		 * between them.
		 */
		if (ts->ran && ts->st.processor >= 0 && ts->st.processor < CPU_SETSIZE)
			CPU_SET(ts->st.processor, set);
	}
	return n;
}

bool target_unattended(const struct target *t)
{
	return t->reads == 0 && t->njobs == 0 && !t->kernel_off;
}

pid_t target_pid(const struct target *t)
{
	return t->pid;
}

const struct target_stats *target_stats(const struct target *t)
{
	return &t->stats;
}
