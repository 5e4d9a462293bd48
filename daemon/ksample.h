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
 * KSAMPLE_MAX_STACK).  Its state is unknown until ksample_assume or its
 * first switch.  Returns 0 with *out, or a negative errno:
 * -ESRCH when the thread is gone; see switchwatch_unsupported for the
 * errors that mean no event can work here.
 */
int ksample_open(pid_t tid, uint64_t period_ns, size_t stack_bytes,
		 struct ksampler **out);

/*
 * The event ksample_open opens, in *attr, with *stack_bytes rounded as it
 * rounds it; returns the ring's size in pages.  For bench_event_cost, which
 * opens the same event other ways.
 */
struct perf_event_attr;
size_t ksample_attr(uint64_t period_ns, size_t *stack_bytes, struct perf_event_attr *attr);

/*
 * The event also records the thread's context switches, each with its
 * time, so that the engine can tell what the thread was doing at the
 * moment a tick was due rather than when it got to look, tens of
 * microseconds later (docs/DESIGN.md, "The state at the due time"), and
 * can know a running thread still running without reading its /proc stat.
 */
enum ksample_state {
	KSAMPLE_RUNNING,	/* on a CPU */
	KSAMPLE_WAITING,	/* switched out runnable: waits for a CPU */
	KSAMPLE_ASLEEP,		/* switched out to sleep, or stopped */
	KSAMPLE_UNKNOWN,	/* records were lost, none since tells: read its state */
};

/* What one look at the ring found. */
struct ksample_look {
	enum ksample_state at_due;	/* the state at the due time */
	enum ksample_state now;		/* after the newest record in the ring */
	bool switched;			/* any switch up to the due time */
	/*
	 * Time the thread spent on a CPU between its newest sample and the
	 * due time, from the switch records in between, or KSAMPLE_RAN_UNKNOWN
	 * (no sample yet, or records were lost since).  A thread that ran
	 * well over a period without a sample has had its sampling throttled
	 * by the kernel; one that ran less than a period is simply not due,
	 * however long ago its last sample was (many threads sharing few
	 * CPUs each run a small part of the time).
	 */
	uint64_t ran_ns;
};

#define KSAMPLE_RAN_UNKNOWN UINT64_MAX

/*
 * Looks at the records up to due_ns (CLOCK_MONOTONIC) that earlier looks
 * left: puts the newest sample among them into snap (registers, stack copy
 * at the stack pointer), hands them all back to the kernel, and says in
 * *look what the thread was doing at due_ns (the state after the last
 * switch up to it, or the state the last look left) and what the newer
 * records say it does now; those records stay for the next look.  Returns
 * 1 with a sample, 0 when none came, or -EIO for a record it cannot read
 * (then both states are KSAMPLE_UNKNOWN).
 */
int ksample_take(struct ksampler *k, uint64_t due_ns, struct thread_snapshot *snap,
		 struct ksample_look *look);

/*
 * The thread's state as read after ksample_open returned: what it is until
 * its first switch.  Read before, it could have blocked in between with no
 * record of it; read after, any switch in between is in the ring and
 * decides instead.
 */
void ksample_assume(struct ksampler *k, enum ksample_state state);

/* The mean sampling period asked for, ns of the thread's CPU time. */
uint64_t ksample_period_ns(const struct ksampler *k);

/* The stack bytes asked of each sample. */
size_t ksample_stack_bytes(const struct ksampler *k);

/* Records the kernel could not write because the ring was full. */
uint64_t ksample_lost(const struct ksampler *k);

/* NULL-safe. */
void ksample_close(struct ksampler *k);

#endif
