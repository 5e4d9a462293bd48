#include "tracer.h"

#include <elf.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "xalloc.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void thread_snapshot_reserve(struct thread_snapshot *snap, size_t len)
{
	if (snap->stack_cap < len) {
		free(snap->stack);
		snap->stack = xmalloc(len);
		snap->stack_cap = len;
	}
}

int tracer_prioritize(void)
{
	struct sched_param sp = { .sched_priority = 1 };

	/*
	 * RESET_ON_FORK: a process this thread starts (a test or benchmark
	 * target) must not inherit real-time priority.
	 */
	if (sched_setscheduler((pid_t)gettid(), SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0)
		return 1;
	return setpriority(PRIO_PROCESS, (id_t)gettid(), -10) == 0 ? 0 : -1;
}

ssize_t tracer_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	return n < 0 ? -errno : n;
}

/* One process_vm_readv; the length is already bounded by the stack mapping. */
static int copy_stack(pid_t tid, uint64_t sp, size_t len,
		      struct thread_snapshot *snap)
{
	ssize_t n;

	thread_snapshot_reserve(snap, len);
	snap->stack_addr = sp;
	n = tracer_read(tid, sp, snap->stack, len);
	if (n == -EFAULT && len > 4096) {
		/* The stack mapping was not known: settle for its first page. */
		len = 4096 - (sp & 4095);
		n = tracer_read(tid, sp, snap->stack, len);
	}
	if (n < 0)
		return n == -ESRCH ? -ESRCH : -EIO;
	snap->stack_len = (size_t)n;
	return 0;
}

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * How long to poll for stops before sleeping.  A thread stops some 10-30 µs
 * after PTRACE_INTERRUPT; a sleeping tracer then needs another 10-20 µs to
 * be woken and scheduled, and the target stays stopped all that time.
 * Polling takes that wake-up out of the target's pause (bench_pause: p50
 * 45 -> 28 µs) for about the same sampler CPU.  Then the tracer sleeps until
 * one of its threads stops: short naps instead would preempt, at each
 * wake-up, a thread that needs this CPU to run to its stop.
 */
#ifndef POLL_NS
#define POLL_NS 100000u
#endif

/*
 * The next wait status of one job's thread.  Returns 1 with *status, 0 when
 * nothing happened (only when !block), or a negative errno.  Our own child's
 * exit is only peeked at (WNOWAIT) and reported as -ESRCH: consuming it
 * would take it from the caller's own waitpid.
 */
static int next_status(const struct tracer_job *j, bool block, int *status)
{
	int nohang = block ? 0 : WNOHANG;
	siginfo_t si;
	pid_t r;

	if (j->flags & TRACER_OWN_CHILD) {
		memset(&si, 0, sizeof si);
		if (waitid(P_PID, (id_t)j->tid, &si,
			   WEXITED | WSTOPPED | __WALL | WNOWAIT | nohang) < 0)
			return -errno;
		if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED ||
		    si.si_code == CLD_DUMPED)
			return -ESRCH;
		if (si.si_pid == 0)
			return 0;
	}
	r = waitpid(j->tid, status, __WALL | nohang);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == j->tid;
}

/*
 * What a wait status means for a job whose thread we interrupted.  Any
 * ptrace-stop satisfies the interrupt (the kernel clears a pending interrupt
 * on every trap): the interrupt stop itself, a group-stop, or the
 * delivery-stop of a signal that arrived meanwhile; all leave the thread
 * stopped with its user registers readable, and *deliver is the signal to
 * hand back on detach, unchanged.  Returns 1 for a stop, 0 for a status to
 * ignore, -ESRCH when the thread exited or is exiting.
 */
static int classify(int status, struct thread_snapshot *snap, int *deliver)
{
	int event;

	if (WIFEXITED(status) || WIFSIGNALED(status))
		return -ESRCH;
	if (!WIFSTOPPED(status))
		return 0;
	event = status >> 16;
	if (event == PTRACE_EVENT_EXIT)
		return -ESRCH;
	*deliver = 0;
	if (event == PTRACE_EVENT_STOP) {
		if (is_stop_signal(WSTOPSIG(status)))
			snap->group_stopped = true;
	} else if (event == 0) {
		*deliver = WSTOPSIG(status);
		snap->signals_reinjected++;
	}
	return 1;
}

/*
 * Waits for one thread's stop (the fallback of release).  A thread killed
 * while we held it runs on to its exit and stops there (TRACEEXIT): it is
 * gone for sampling, but it must still be detached, or it stays stopped
 * half-dead, and its process unreapable, until perchd itself exits.
 */
static int wait_for_stop(struct tracer_job *j, int *deliver)
{
	for (;;) {
		int status, rc = next_status(j, true, &status);

		if (rc < 0)
			return rc == -ECHILD ? -ESRCH : rc;
		if (rc == 1 && WIFSTOPPED(status) && status >> 16 == PTRACE_EVENT_EXIT) {
			ptrace(PTRACE_DETACH, j->tid, 0, 0);
			return -ESRCH;
		}
		if (rc == 1 && (rc = classify(status, j->snap, deliver)) != 0)
			return rc < 0 ? rc : 0;
	}
}

/*
 * Detaches the job's thread, which is only possible from a ptrace-stop,
 * delivering the signal that stopped it if any.  Should an error path have
 * left the thread seized but running, stop it first: perch never leaves a
 * thread traced.
 */
static int release(struct tracer_job *j, int deliver)
{
	if (ptrace(PTRACE_DETACH, j->tid, 0, (void *)(intptr_t)deliver) == 0)
		return 0;
	if (errno != ESRCH)
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, j->tid, 0, 0) < 0 || wait_for_stop(j, &deliver) < 0)
		return -ESRCH;
	return ptrace(PTRACE_DETACH, j->tid, 0, (void *)(intptr_t)deliver) == 0 ? 0 : -errno;
}

static void finish(struct tracer_job *j, int rc, int deliver)
{
	int detached = release(j, deliver);

	j->snap->pause_ns = now_ns() - j->t0;
	j->rc = rc < 0 ? rc : detached;
	j->done = true;
}

/*
 * How many bytes of stack to copy from sp: up to copy_end when sp lies below
 * it by at most copy_max, else copy_len; then bounded by end (the end of
 * the mapping holding sp, 0 when unknown).
 */
static size_t copy_len_at(uint64_t sp, size_t copy_len, uint64_t copy_end, size_t copy_max,
			  uint64_t end)
{
	if (copy_end > sp && copy_end - sp <= copy_max)
		copy_len = (size_t)(copy_end - sp);
	if (end > sp && end - sp < copy_len)
		copy_len = (size_t)(end - sp);
	return copy_len;
}

/* The thread is stopped: registers, stack, release. */
static void capture(struct tracer_job *j, int deliver)
{
	struct thread_snapshot *snap = j->snap;
	struct iovec iov = { &snap->regs, sizeof snap->regs };
	size_t copy_len = j->copy_len;
	uint64_t end;

	if (ptrace(PTRACE_GETREGSET, j->tid, (void *)NT_PRSTATUS, &iov) < 0) {
		finish(j, errno == ESRCH ? -ESRCH : -errno, deliver);
		return;
	}
	snap->regs_full = true;
	snap->interrupted_syscall = deliver == 0 && (int64_t)snap->regs.orig_rax >= 0 &&
				    (int64_t)snap->regs.rax == -EINTR;
	end = j->stack_end ? j->stack_end(j->ctx, snap->regs.rsp) : 0;
	copy_len = copy_len_at(snap->regs.rsp, copy_len, j->copy_end, j->copy_max, end);
	finish(j, copy_stack(j->tid, snap->regs.rsp, copy_len, snap), deliver);
}

int tracer_start(struct tracer_job *j)
{
	struct thread_snapshot *snap = j->snap;

	j->done = false;
	j->rc = 0;
	snap->regs_full = false;
	snap->group_stopped = false;
	snap->interrupted_syscall = false;
	snap->stack_len = 0;
	snap->signals_reinjected = 0;
	snap->pause_ns = 0;
	/*
	 * TRACEEXIT makes a thread that starts exiting while seized report it
	 * instead of turning into a zombie we would have to reap.
	 */
	if (ptrace(PTRACE_SEIZE, j->tid, 0, (void *)(long)PTRACE_O_TRACEEXIT) < 0) {
		j->rc = errno == ESRCH ? -ESRCH : -errno;
		j->done = true;
		return j->rc;
	}
	j->t0 = now_ns();
	if (ptrace(PTRACE_INTERRUPT, j->tid, 0, 0) < 0) {
		finish(j, errno == ESRCH ? -ESRCH : -errno, 0);
		return j->rc;
	}
	return 0;
}

/* Handles whatever happened to one pending job.  Returns true if it did. */
static bool step(struct tracer_job *j, bool block)
{
	int status, deliver = 0, rc = next_status(j, block, &status);

	if (rc == 0)
		return false;
	if (rc < 0) {
		finish(j, rc == -ECHILD ? -ESRCH : rc, 0);
		return true;
	}
	rc = classify(status, j->snap, &deliver);
	if (rc < 0)
		finish(j, rc, 0);
	else if (rc > 0)
		capture(j, deliver);
	return true;
}

/* CPUs this process may run on, minus the tracer's own. */
static size_t other_cpus(void)
{
	static _Atomic size_t cached;	/* affinity is set at start-up only */
	size_t n = atomic_load_explicit(&cached, memory_order_relaxed);
	cpu_set_t set;

	if (n == 0) {
		n = sched_getaffinity(0, sizeof set, &set) == 0 ? (size_t)CPU_COUNT(&set) : 1;
		if (n == 0)
			n = 1;
		atomic_store_explicit(&cached, n, memory_order_relaxed);
	}
	return n - 1;
}

/*
 * One pass over the pending jobs; returns how many are still pending, and
 * whether one of them last ran on our CPU (polling would keep it from
 * running to its stop).
 */
static size_t sweep(struct tracer_job **jobs, size_t n, bool *no_poll)
{
	size_t pending = 0;

	*no_poll = false;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i]->done || step(jobs[i], false))
			continue;
		pending++;
		*no_poll |= (jobs[i]->flags & TRACER_NO_POLL) != 0;
	}
	/*
	 * More threads to stop than other CPUs to stop on: at least one of
	 * them needs the CPU a polling (real-time) tracer holds, so polling
	 * only delays the stops it waits for and burns the target's CPU.
	 */
	*no_poll |= pending > other_cpus();
	return pending;
}

/*
 * Sleeps until a tracee or child of this thread has something to report,
 * without consuming it, and returns whose it is (0 on error).
 */
static pid_t wait_any(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | __WALL | __WNOTHREAD | WNOWAIT) < 0)
		return 0;
	return si.si_pid;
}

static struct tracer_job *pending_job(struct tracer_job **jobs, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (!jobs[i]->done && (tid == 0 || jobs[i]->tid == tid))
			return jobs[i];
	return NULL;
}

/*
 * The deadline of a collection that must sleep: a timer sends this thread a
 * signal, whose handler does nothing but make waitid fail with EINTR, at the
 * deadline and every millisecond after, should one land just before the
 * wait.  Thread-directed, so no other thread of the process sees it.
 */
#define DEADLINE_REPEAT_NS 1000000u

static void on_deadline(int sig)
{
	(void)sig;
}

/*
 * Each thread that collects has one timer, created at its first deadline
 * and deleted when the thread exits: creating and deleting one per tick
 * cost five system calls where arming and disarming cost two.
 */
static pthread_key_t timer_key;

static void delete_timer(void *p)
{
	timer_t *timer = p;

	timer_delete(*timer);
	free(timer);
}

static void init_deadlines(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_deadline;	/* no SA_RESTART: the wait must end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 4, &sa, NULL);
	pthread_key_create(&timer_key, delete_timer);
}

/* This thread's timer, or NULL when none can be made. */
static timer_t *thread_timer(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	timer_t *timer;
	struct sigevent ev;
	sigset_t set;

	pthread_once(&once, init_deadlines);
	timer = pthread_getspecific(timer_key);
	if (timer != NULL)
		return timer;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGRTMIN + 4;
	/* glibc 2.36 has no sigev_notify_thread_id macro. */
	ev._sigev_un._tid = gettid();
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	timer = xmalloc(sizeof *timer);
	if (pthread_sigmask(SIG_UNBLOCK, &set, NULL) != 0 ||
	    timer_create(CLOCK_MONOTONIC, &ev, timer) < 0) {
		free(timer);
		return NULL;
	}
	if (pthread_setspecific(timer_key, timer) != 0) {
		delete_timer(timer);
		return NULL;
	}
	return timer;
}

static bool arm_deadline(timer_t *timer, uint64_t deadline_ns)
{
	struct itimerspec its = {
		.it_value = { (time_t)(deadline_ns / 1000000000u),
			      (long)(deadline_ns % 1000000000u) },
		.it_interval = { 0, DEADLINE_REPEAT_NS },
	};

	return timer != NULL && timer_settime(*timer, TIMER_ABSTIME, &its, NULL) == 0;
}

static void disarm_deadline(timer_t *timer)
{
	struct itimerspec off;

	memset(&off, 0, sizeof off);
	timer_settime(*timer, 0, &off, NULL);
}

size_t tracer_collect(struct tracer_job **jobs, size_t n, uint64_t deadline_ns)
{
	uint64_t start = now_ns(), now;
	bool no_poll, armed = false;
	timer_t *timer = NULL;
	size_t pending;

	while ((pending = sweep(jobs, n, &no_poll)) > 0 && (now = now_ns()) < deadline_ns) {
		if (!no_poll && now - start < POLL_NS)
			continue;
		if (deadline_ns != TRACER_ALL && !armed &&
		    !(armed = arm_deadline(timer = thread_timer(), deadline_ns))) {
			/* No timer: naps, which cost a wake-up each, to the deadline. */
			struct timespec nap = { 0, 200000 };

			nanosleep(&nap, NULL);
			continue;
		}
		/*
		 * A report for something else (a child of the caller's that
		 * exited, which we must not reap) would wake us again at once:
		 * then wait for one of our threads specifically.  Either wait
		 * ends early, with nothing, at the deadline.
		 */
		if (pending_job(jobs, n, wait_any()) == NULL)
			step(pending_job(jobs, n, 0), true);
	}
	if (armed)
		disarm_deadline(timer);
	return pending;
}

int tracer_capture(pid_t tid, unsigned int flags, size_t copy_len,
		   uint64_t (*stack_end)(void *ctx, uint64_t sp), void *ctx,
		   struct thread_snapshot *snap)
{
	struct tracer_job j = { .tid = tid, .flags = flags, .copy_len = copy_len,
				.snap = snap, .stack_end = stack_end, .ctx = ctx };
	struct tracer_job *jobs[1] = { &j };

	if (tracer_start(&j) == 0)
		tracer_collect(jobs, 1, TRACER_ALL);
	return j.rc;
}

int tracer_copy_blocked(pid_t tid, uint64_t sp, uint64_t pc, size_t copy_len,
			uint64_t copy_end, size_t copy_max, uint64_t stack_end,
			struct thread_snapshot *snap)
{
	memset(&snap->regs, 0, sizeof snap->regs);
	snap->regs.rsp = sp;
	snap->regs.rip = pc;
	snap->regs_full = false;
	snap->group_stopped = false;
	snap->interrupted_syscall = false;
	snap->pause_ns = 0;
	snap->signals_reinjected = 0;
	snap->stack_len = 0;
	return copy_stack(tid, sp, copy_len_at(sp, copy_len, copy_end, copy_max, stack_end), snap);
}

void thread_snapshot_free(struct thread_snapshot *snap)
{
	if (snap == NULL)
		return;
	free(snap->stack);
	snap->stack = NULL;
	snap->stack_cap = 0;
}
