/*
 * target: the sampling engine's interface — open a process, take samples of
 * all its threads, close.  perchd, `perch dump` and the benchmarks all use it.
 *
 * One sample visits every thread of the process:
 *  - a thread that has not run since its previous sample (its schedstat run
 *    time is unchanged) keeps its previous stack and is not touched; one
 *    that stays blocked is watched for context switches (switchwatch.h),
 *    so that proving it has not run costs no system call at all;
 *  - a thread blocked in a system call is read without being stopped: its
 *    stack pointer and program counter come from /proc, its stack cannot
 *    change while it stays blocked (checked again after the copy), so no
 *    signal or interrupt ever reaches it and its system call never returns
 *    EINTR because of perch;
 *  - any other thread is stopped just long enough to copy its registers and
 *    the top of its stack (tracer.c), then unwound from the copy.
 *
 * All calls on one target must come from the same thread.
 */
#ifndef PERCH_TARGET_H
#define PERCH_TARGET_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "unwinder.h"

struct perch_frame {
	uint64_t addr;		/* instruction address in the target */
	const char *module;	/* mapped file path, "[vdso]", or NULL */
	const char *build_id;	/* hex, "" when unknown */
	uint64_t module_offset;	/* ELF virtual address within module */
	const char *func;	/* never NULL */
	const char *file;	/* source file or NULL */
	int line;		/* 0 when unknown */
	bool inlined;		/* inlined into the next frame */
};

/* How a thread's stack was obtained in this sample. */
enum perch_capture {
	PERCH_CAPTURE_STOPPED,	/* interrupted, copied, resumed */
	PERCH_CAPTURE_BLOCKED,	/* blocked in a syscall: read without a stop */
	PERCH_CAPTURE_REUSED,	/* has not run since its previous sample */
	PERCH_CAPTURE_NONE,	/* no stack this time (see error) */
	PERCH_CAPTURE_KERNEL,	/* running: the kernel's sample, no stop (ksample.h) */
	/*
	 * Asleep when the tick was due but woken before the engine looked:
	 * the stack where it last blocked (docs/DESIGN.md, "The state at the
	 * due time").
	 */
	PERCH_CAPTURE_LAST_BLOCKED,
	PERCH_CAPTURE_KINDS
};

struct perch_thread {
	pid_t tid;
	const char *name;	/* NUL-terminated; good until the next call on the target */
	/*
	 * The kernel's letter (R S D T t ...), except 'W' for a kernel-sampled
	 * thread that was runnable but waiting for a CPU when the tick was due
	 * (preempted): its R is then R on a CPU only.
	 */
	char state;
	enum perch_capture capture;
	bool complete;		/* the stack reaches the thread's root */
	int error;		/* negative errno when capture is NONE */
	uint64_t pause_ns;	/* how long the thread was stopped, or 0 */
	/*
	 * The ticks this sample stands for, at least 1: a thread whose stop
	 * was still pending at the end of earlier ticks (see target_end) is
	 * sampled for each of them once it stops.
	 */
	unsigned int weight;
	const struct perch_frame *frames;	/* leaf first */
	size_t nframes;
};

struct perch_sample {
	uint64_t time_ns;	/* CLOCK_REALTIME at the start of the sample */
	const struct perch_thread *threads;
	size_t nthreads;
	unsigned int threads_gone;	/* threads that exited mid-sample */
};

struct target_opts {
	bool no_symbols;	/* frames carry addresses and modules only */
	size_t max_stack_copy;	/* bytes; 0 = default (512 KiB) */
	/*
	 * At most this many threads stopped at once, per tick; 0 = no limit.
	 * The running threads over the limit are stopped in turn, and each
	 * running sample then stands for the running ticks its thread was
	 * skipped (see target_end).
	 */
	unsigned int max_stops;
	/*
	 * Read every blocked thread's schedstat at every tick instead of
	 * watching the idle ones for context switches (for comparison).
	 */
	bool no_switchwatch;
	/*
	 * Running threads are sampled by the kernel every kernel_period_ns of
	 * their CPU time (ksample.h) instead of being stopped, where perf
	 * events are allowed; 0 = always stop them.
	 */
	uint64_t kernel_period_ns;
	struct unwinder_opts unwind;
};

/* Running totals, for benchmarks and status. */
struct target_stats {
	uint64_t samples;
	uint64_t thread_samples[PERCH_CAPTURE_KINDS];	/* by enum perch_capture */
	uint64_t pause_ns;		/* sum over stopped threads */
	uint64_t unwind_ns;		/* sum over unwound threads */
	uint64_t symbolize_ns;
	uint64_t frames;
	uint64_t incomplete;		/* stacks that did not reach the root */
	uint64_t late_reads;		/* stack words read after resuming */
	uint64_t maps_refreshes;
	uint64_t signals_reinjected;
	uint64_t eintr_caused;		/* stops that made a syscall fail with EINTR */
	uint64_t copy_bytes;
	uint64_t carried;		/* thread-ticks left to a later tick */
	uint64_t skipped;		/* running thread-ticks over max_stops */
	uint64_t watched;		/* reused thread-ticks a watch proved, no read */
	uint64_t watched_running;	/* skipped running thread-ticks, proved the same way */
	uint64_t watches;		/* switch watches opened */
	uint64_t kernel_samplers;	/* kernel samplers opened */
	uint64_t kernel_waits;		/* running thread-ticks skipped: no kernel sample yet */
	uint64_t kernel_looks;		/* running thread-ticks settled by the ring, no read */
	/*
	 * Thread-ticks the ring showed asleep at the due time and running at
	 * the look: counted as blocked (LAST_BLOCKED), or, when no blocked
	 * stack of the thread was known yet, skipped and owed to its next
	 * blocked sample (woke_unknown).
	 */
	uint64_t kernel_woke;
	uint64_t kernel_woke_unknown;
};

struct target;
struct tracer_job;

/*
 * Opens pid for sampling.  Nothing is stopped or attached yet.  Refuses,
 * with a one-line message in *cause (caller frees), a pid that does not
 * exist, a kernel thread, perch's own process, a process already traced by
 * someone else (named from TracerPid), or one perch may not trace.
 * Returns 0 or a negative errno.
 */
int target_open(pid_t pid, const struct target_opts *opts, struct target **out,
		char **cause);

/*
 * Takes one sample of every thread, waiting for every stop (max_stops does
 * not apply).  *out and
 * everything it points to stay valid until the next call or target_close.
 * Returns 0, -ESRCH when the process has exited (no sample), or another
 * negative errno.
 */
int target_sample(struct target *t, struct perch_sample *out);

/*
 * The same in three steps, for a caller that must keep its rate when
 * threads are slow to stop, or samples several targets at once:
 * target_begin lists the threads, captures those that need no stop and
 * starts stopping the others; the caller collects the stops of every
 * target (target_jobs, tracer_collect) until its deadline; target_end
 * unwinds what was captured into *out (valid as for target_sample).
 *
 * A thread still not stopped at target_end is left out of that tick and
 * carried: it stays seized with its interrupt pending, the next ticks do
 * not stop it again, and its sample, once it stops, has one weight per tick
 * it was carried through, plus one.  It cannot have run user code in
 * between, so its stack then was its stack at each of those ticks.  Only a
 * thread waiting for a CPU is that slow: on a machine with more running
 * threads than CPUs, a stop waits for the scheduler's next preemption
 * (4 ms at HZ=250), and waiting for all of them would make every tick late.
 *
 * With max_stops, a running thread found when that many stops are already
 * under way is skipped: left out of the tick, not stopped.  The threads
 * are visited from a different one each tick (after the last one stopped),
 * so the running threads take turns, and a thread's next sample taken
 * running stands for the running ticks it was skipped, plus one (weight).
 * A sample taken blocked stands for its own tick only: the skipped ticks
 * found the thread running, and moving them to a blocked stack would make
 * the thread look less busy than it was.  Skipped ticks of a thread that
 * exits, or of a target closed, before its next running sample are lost.
 *
 * due_ns is when the tick was due (CLOCK_MONOTONIC; 0: now): a thread
 * sampled by the kernel counts as running or blocked by what it was doing
 * then, not a few tens of microseconds later when the caller woke up; a
 * tick may be taken later still (target_unattended), and the sample's time
 * is the due time's.
 *
 * target_begin returns as target_sample; target_end returns 0 or -ESRCH.
 */
int target_begin(struct target *t, uint64_t due_ns);
size_t target_jobs(struct target *t, struct tracer_job ***jobs);
int target_end(struct target *t, struct perch_sample *out);

/*
 * NULL-safe.  Never leaves a thread stopped or traced: waits for carried
 * stops first.
 */
void target_close(struct target *t);

/*
 * Whether the last tick was settled by the threads' kernel-sample rings and
 * switch watches alone: no thread's /proc files read, none stopped.  Such
 * ticks can be taken late, several at one wake-up, with the same result:
 * a ring says what its thread was doing at each due time and keeps the
 * samples up to it, and a watch that has not moved since the last look
 * proves its thread did not run at any of them.  A tick that needs more
 * (a thread to read or to stop) reads it when the tick is taken, so the
 * caller goes back to one tick per wake-up when this turns false.
 */
bool target_unattended(const struct target *t);

/*
 * Adds to *set the CPUs of the threads that ran between their last two
 * samples (where they were last seen); returns how many threads were found
 * running (on a CPU or waiting for one) at the last tick.  Sets *at_look
 * when one of them has no kernel sampler, so that the next tick judges it
 * by what it does when the sampler gets to it, not by its ring's record of
 * the due time (docs/DESIGN.md, "Where the sampler runs").
 */
unsigned int target_running_cpus(const struct target *t, cpu_set_t *set, bool *at_look);

pid_t target_pid(const struct target *t);
const struct target_stats *target_stats(const struct target *t);

/* Human words for a kernel state letter: "running", "sleeping", ... */
const char *target_state_name(char state);

#endif
