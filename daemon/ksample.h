/*
 * ksample: samples of a running thread taken by the kernel, without
 * stopping it.
 *
 * A thread stopped with PTRACE_INTERRUPT while it runs user code on another
 * CPU stops where it is when the interrupt reaches it, a few microseconds
 * later; a system call it enters meanwhile runs to its end, and the thread
 * stops on its way out of it.  So stops land on system call exits far more
 * often than the thread spends there (docs/DESIGN.md, "Stops land on system
 * call exits": 30 % of samples in pwrite against 1.3 % true).  A sampling
 * perf event on the thread has no such window: the kernel takes the sample
 * in the timer interrupt on the thread's own CPU, wherever the thread is,
 * and copies its user registers and the top of its user stack into a
 * mapped ring, as `perf record --call-graph dwarf` does.  The engine then
 * unwinds that copy exactly as it unwinds a stopped thread's.
 *
 * The event counts the thread's own CPU time (task-clock), so a thread
 * yields samples only while it runs: the engine takes, at a tick that finds
 * the thread running, the newest sample since it last looked.  Nothing is
 * delivered to the thread; it pays the interrupt and the copy.
 *
 * Opening fails where perf events are not allowed (perf_event_paranoid
 * above 1 for a tracer without CAP_PERFMON, a seccomp filter, the locked
 * memory limit); the engine then stops the thread as before.
 */
#ifndef PERCH_KSAMPLE_H
#define PERCH_KSAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"

struct ksampler;

/* The largest stack copy the kernel will put in one record. */
#define KSAMPLE_MAX_STACK 61440u

/*
 * Starts sampling thread tid every period_ns of its CPU time, each sample
 * with up to stack_bytes of its stack (rounded up to 8, at most
 * KSAMPLE_MAX_STACK).  Returns 0 with *out, or a negative errno:
 * -ESRCH when the thread is gone; see switchwatch_unsupported for the
 * errors that mean no event can work here.
 */
int ksample_open(pid_t tid, uint64_t period_ns, size_t stack_bytes,
		 struct ksampler **out);

/*
 * The event also records the thread's context switches, so that a thread
 * known to be running can be known still running without reading its
 * /proc stat: what the last switch since the last look was.
 */
enum ksample_switch {
	KSAMPLE_NO_SWITCH,	/* none: the thread is as it was */
	KSAMPLE_SWITCHED_IN,	/* on a CPU */
	KSAMPLE_PREEMPTED,	/* switched out runnable: waits for a CPU */
	KSAMPLE_SLEPT,		/* switched out to sleep, or stopped */
	KSAMPLE_UNKNOWN,	/* records were lost: read its state */
};

/*
 * Puts the newest sample since the last call into snap (registers, stack
 * copy at the stack pointer) and drops the others; *last says what the
 * last context switch since the last call was.  Returns 1 with a sample,
 * 0 when none came, or -EIO for a record it cannot read (then *last is
 * KSAMPLE_UNKNOWN).
 */
int ksample_take(struct ksampler *k, struct thread_snapshot *snap,
		 enum ksample_switch *last);

/* Drops every sample not yet taken. */
void ksample_discard(struct ksampler *k);

/* The stack bytes asked of each sample. */
size_t ksample_stack_bytes(const struct ksampler *k);

/* Records the kernel could not write because the ring was full. */
uint64_t ksample_lost(const struct ksampler *k);

/* NULL-safe. */
void ksample_close(struct ksampler *k);

#endif
