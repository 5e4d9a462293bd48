/*
 * tracer: the only code that stops a target thread.
 *
 * One capture seizes the thread (PTRACE_SEIZE, never PTRACE_ATTACH),
 * interrupts it, takes its registers (PTRACE_GETREGSET) and one copy of the
 * top of its stack (process_vm_readv), and detaches.  Nothing else happens
 * while the thread is stopped: unwinding and symbolization work on the copy
 * afterwards.  Between captures the target is not traced at all, so its
 * signals, clones and debuggers see no tracer (see docs/DESIGN.md for the
 * measurement behind this choice).
 *
 * Whatever stop the interrupt turns into is used for the capture: the
 * interrupt stop itself, a group-stop (the thread stays stopped after the
 * detach), or the delivery-stop of a signal that arrived meanwhile (the
 * signal is handed back, unchanged, by the detach).  A thread that starts
 * exiting reports it (PTRACE_O_TRACEEXIT) and goes on exiting untraced.
 *
 * All ptrace calls of one capture happen on the calling thread.  The target
 * is never written to.
 */
#ifndef PERCH_TRACER_H
#define PERCH_TRACER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct thread_snapshot {
	struct user_regs_struct regs;
	bool regs_full;		/* false: only rip and rsp are known */
	uint64_t stack_addr;	/* address of stack[0]: the stack pointer */
	uint8_t *stack;		/* owned; grown as needed */
	size_t stack_len;	/* bytes copied */
	size_t stack_cap;
	bool group_stopped;	/* the thread was in a group-stop (SIGSTOP) */
	uint64_t pause_ns;	/* from PTRACE_INTERRUPT to PTRACE_DETACH */
	int signals_reinjected;	/* signals handed back on detach */
	/*
	 * The interrupt stopped the thread on its way out of a system call that
	 * failed with EINTR because of it (epoll_wait and the like, which the
	 * kernel does not restart): the target will see that EINTR.
	 */
	bool interrupted_syscall;
};

/*
 * tid is the main thread of a child of the caller: should it exit meanwhile,
 * leave its exit status to the caller's own waitpid.
 */
#define TRACER_OWN_CHILD 0x1u

/*
 * Do not poll for the stop: the thread last ran on the caller's CPU, where
 * a real-time caller that polls keeps it from running to its stop.
 */
#define TRACER_NO_POLL 0x2u

/*
 * One thread to capture.  Captures are started one after the other and
 * collected as the threads stop, each released as soon as it is copied: a
 * tick costs the slowest thread's stop, not the sum of all, and each thread
 * is paused only from its own interrupt to its own detach.
 */
struct tracer_job {
	pid_t tid;
	unsigned int flags;		/* TRACER_* */
	size_t copy_len;		/* stack bytes wanted */
	struct thread_snapshot *snap;	/* filled in */
	/*
	 * Bounds the copy by the end of the mapping holding the stack pointer
	 * (0 when unknown); may be NULL.
	 */
	uint64_t (*stack_end)(void *ctx, uint64_t sp);
	void *ctx;
	/*
	 * Where the thread's last unwind ended (0 when unknown): a stack
	 * pointer below it by at most copy_max bytes gets exactly
	 * [sp, copy_end) copied instead of copy_len bytes; either is bounded by
	 * the end of the mapping holding sp.
	 */
	uint64_t copy_end;
	size_t copy_max;
	/* Set by the tracer. */
	bool done;
	int rc;				/* once done: 0 or a negative errno */
	uint64_t t0;			/* when the interrupt was sent */
};

/*
 * Seizes and interrupts the job's thread.  Returns 0 (the job is pending)
 * or a negative errno (done: -ESRCH gone, -EPERM not traceable).
 */
int tracer_start(struct tracer_job *job);

/*
 * Captures and releases pending jobs as their threads stop, until all are
 * done or CLOCK_MONOTONIC reaches deadline_ns: TRACER_NOW takes only those
 * already stopped, TRACER_ALL waits for every one.  Returns how many are
 * still pending.  Their threads stay seized with the interrupt pending, so
 * each stops on its next way to user space, having run no user code since
 * the interrupt: a later call collects it, and its stack is still the one
 * it had then.  (A thread waits that long only for a CPU: an interrupt
 * cannot take it off a run queue.)  Jobs may belong to several targets.
 */
size_t tracer_collect(struct tracer_job **jobs, size_t n, uint64_t deadline_ns);

#define TRACER_NOW 0
#define TRACER_ALL UINT64_MAX

/*
 * Stops tid, copies registers and up to copy_len bytes of stack (bounded by
 * stack_end, the end of the mapping holding the stack pointer, when known;
 * 0 when not), and lets it go.
 *
 * Returns 0, -ESRCH when the thread is gone or exiting, -EPERM when it
 * cannot be traced (another tracer, no permission), -EIO when the stack
 * could not be read, or another negative errno.
 */
int tracer_capture(pid_t tid, unsigned int flags, size_t copy_len,
		   uint64_t (*stack_end)(void *ctx, uint64_t sp), void *ctx,
		   struct thread_snapshot *snap);

/*
 * Copies the stack of a thread blocked in a system call without stopping it:
 * rip and rsp come from /proc/PID/task/TID/syscall, the stack is stable while
 * the thread stays blocked.  The caller checks afterwards that the thread did
 * not run meanwhile.  The length is chosen as a stop's (copy_len, copy_end,
 * copy_max: struct tracer_job), bounded by stack_end (0: unknown).
 */
int tracer_copy_blocked(pid_t tid, uint64_t sp, uint64_t pc, size_t copy_len,
			uint64_t copy_end, size_t copy_max, uint64_t stack_end,
			struct thread_snapshot *snap);

/*
 * Gives the calling (sampling) thread real-time priority (SCHED_FIFO 1), or
 * failing that nice -10.  A target thread stays stopped until its sampler
 * runs again: on a busy machine a sampler of normal priority waits for a CPU
 * behind the target's own threads while holding one of them stopped
 * (bench_pause with both CPUs busy: pause p50 115 µs, p99 8 ms; real-time:
 * 27 µs and 50 µs).  Returns 1 for real-time, 0 for nice, -1 for neither.
 */
int tracer_prioritize(void);

/* Reads target memory after the fact (for stack beyond the copy). */
ssize_t tracer_read(pid_t pid, uint64_t addr, void *buf, size_t len);

/* Makes room for len bytes of stack copy (the old contents are not kept). */
void thread_snapshot_reserve(struct thread_snapshot *snap, size_t len);

void thread_snapshot_free(struct thread_snapshot *snap);

#endif
