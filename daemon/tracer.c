#include "tracer.h"

#include <elf.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
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

static void reserve(struct thread_snapshot *snap, size_t len)
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

	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
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

	reserve(snap, len);
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
 * How long to poll for a stop before sleeping in waitpid.  A thread stops
 * some 10-30 µs after PTRACE_INTERRUPT; a sleeping tracer then needs another
 * 10-20 µs to be woken and scheduled, and the target stays stopped all that
 * time.  Polling takes that wake-up out of the target's pause (bench_pause:
 * p50 45 -> 28 µs) for about the same sampler CPU.
 */
#ifndef POLL_NS
#define POLL_NS 100000u
#endif

/*
 * Whether tid has a wait status ready, without consuming it.  Our own child's
 * exit is only peeked at: consuming it would take it from the caller's own
 * waitpid.
 */
static int peek_status(pid_t tid, bool block, bool *exited)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)tid, &si, WEXITED | WSTOPPED | __WALL | WNOWAIT |
		   (block ? 0 : WNOHANG)) < 0)
		return -errno;
	*exited = si.si_code == CLD_EXITED || si.si_code == CLD_KILLED ||
		  si.si_code == CLD_DUMPED;
	return si.si_pid != 0;
}

/* The next wait status of tid: polled for a while, then waited for. */
static int next_status(pid_t tid, unsigned int flags, int *status)
{
	uint64_t deadline = (flags & TRACER_NO_POLL) ? 0 : now_ns() + POLL_NS;

	for (;;) {
		bool block = now_ns() > deadline, exited = false;
		pid_t r;

		if (flags & TRACER_OWN_CHILD) {
			int ready = peek_status(tid, block, &exited);

			if (ready < 0)
				return ready;
			if (exited)
				return -ESRCH;
			if (!ready)
				continue;
		}
		r = waitpid(tid, status, __WALL | (block ? 0 : WNOHANG));
		if (r < 0)
			return -errno;
		if (r == tid)
			return 0;
	}
}

/*
 * Waits for the trap PTRACE_INTERRUPT promised.  Any ptrace-stop satisfies
 * it (the kernel clears the pending interrupt on every trap): the interrupt
 * stop itself, a group-stop, or the delivery-stop of a signal that arrived
 * meanwhile.  All of them leave the thread stopped with its user registers
 * readable; *deliver is the signal to hand back on detach, unchanged.
 * Returns 0, -ESRCH when the thread exited or is exiting, or a negative errno.
 */
static int wait_for_stop(pid_t tid, unsigned int flags,
			 struct thread_snapshot *snap, int *deliver)
{
	*deliver = 0;
	for (;;) {
		int status, event, rc = next_status(tid, flags, &status);

		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return rc == -ECHILD ? -ESRCH : rc;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -ESRCH;
		if (!WIFSTOPPED(status))
			continue;
		event = status >> 16;
		if (event == PTRACE_EVENT_EXIT)
			return -ESRCH;
		if (event == PTRACE_EVENT_STOP) {
			if (is_stop_signal(WSTOPSIG(status)))
				snap->group_stopped = true;
		} else if (event == 0) {
			*deliver = WSTOPSIG(status);
			snap->signals_reinjected++;
		}
		return 0;
	}
}

/*
 * Detaches tid, which is only possible from a ptrace-stop, delivering the
 * signal that stopped it if any.  Should an error path have left the thread
 * seized but running, stop it first: perch never leaves a thread traced.
 */
static int release(pid_t tid, unsigned int flags, int deliver,
		   struct thread_snapshot *snap)
{
	if (ptrace(PTRACE_DETACH, tid, 0, (void *)(intptr_t)deliver) == 0)
		return 0;
	if (errno != ESRCH)
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ||
	    wait_for_stop(tid, flags, snap, &deliver) < 0)
		return -ESRCH;
	return ptrace(PTRACE_DETACH, tid, 0, (void *)(intptr_t)deliver) == 0 ? 0 : -errno;
}

int tracer_capture(pid_t tid, unsigned int flags, size_t copy_len,
		   uint64_t (*stack_end)(void *ctx, uint64_t sp), void *ctx,
		   struct thread_snapshot *snap)
{
	struct iovec iov = { &snap->regs, sizeof snap->regs };
	uint64_t t0, end;
	int rc, detached, deliver = 0;

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
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACEEXIT) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	t0 = now_ns();
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		rc = errno == ESRCH ? -ESRCH : -errno;
		goto out_detach;
	}
	rc = wait_for_stop(tid, flags, snap, &deliver);
	if (rc < 0)
		goto out_detach;
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0) {
		rc = errno == ESRCH ? -ESRCH : -errno;
		goto out_detach;
	}
	snap->regs_full = true;
	snap->interrupted_syscall = deliver == 0 && (int64_t)snap->regs.orig_rax >= 0 &&
				    (int64_t)snap->regs.rax == -EINTR;
	end = stack_end ? stack_end(ctx, snap->regs.rsp) : 0;
	if (end > snap->regs.rsp && end - snap->regs.rsp < copy_len)
		copy_len = (size_t)(end - snap->regs.rsp);
	rc = copy_stack(tid, snap->regs.rsp, copy_len, snap);
out_detach:
	/* A thread in group-stop stays stopped after the detach. */
	detached = release(tid, flags, deliver, snap);
	snap->pause_ns = now_ns() - t0;
	return rc < 0 ? rc : detached;
}

int tracer_copy_blocked(pid_t tid, uint64_t sp, uint64_t pc, size_t copy_len,
			uint64_t stack_end, struct thread_snapshot *snap)
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
	if (stack_end > sp && stack_end - sp < copy_len)
		copy_len = (size_t)(stack_end - sp);
	return copy_stack(tid, sp, copy_len, snap);
}

void thread_snapshot_free(struct thread_snapshot *snap)
{
	if (snap == NULL)
		return;
	free(snap->stack);
	snap->stack = NULL;
	snap->stack_cap = 0;
}
