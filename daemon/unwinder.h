/*
 * unwinder: turns a thread snapshot (registers + a copy of the top of its
 * stack) into a list of instruction addresses, after the thread was resumed.
 *
 * It drives libunwind's remote API with perch's own accessors: registers come
 * from the snapshot, memory from the stack copy or else from the mapped ELF
 * files (addrspace), and unwind tables are looked up in each file's
 * .eh_frame_hdr as perch mapped it.  Nothing here stops or reads the target
 * except, when the copy was too short, a late read of deeper stack words
 * (counted, so that the next copy can be longer).
 *
 * One unwinder per target; not thread-safe.
 */
#ifndef PERCH_UNWINDER_H
#define PERCH_UNWINDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addrspace.h"
#include "tracer.h"

struct unwinder;

struct unwinder_opts {
	/*
	 * Debian's libunwind masks every signal around each cache lock, two
	 * rt_sigprocmask calls per frame.  perch never unwinds from a signal
	 * handler, so by default the masking is skipped on unwinding threads
	 * (see unwinder.c); true keeps it, for measuring what it costs.
	 */
	bool keep_signal_masking;
};

/* One unwound frame. */
struct unwind_frame {
	uint64_t ip;
	bool is_return;		/* ip is a return address: the call is before it */
};

struct unwind_result {
	size_t n;
	bool complete;		/* reached the outermost frame (_start, clone) */
	int error;		/* libunwind's error when !complete, else 0 */
	uint64_t stack_high;	/* highest stack address the unwind read */
	unsigned int late_reads;	/* stack words read after the resume */
};

/* aspace is borrowed and must outlive the unwinder. */
struct unwinder *unwinder_create(struct addrspace *aspace,
				 const struct unwinder_opts *opts);

/* NULL-safe. */
void unwinder_free(struct unwinder *u);

/* Drops libunwind's caches; call when the target's maps changed. */
void unwinder_flush(struct unwinder *u);

/*
 * Unwinds snap into frames[0..max).  stack_end bounds the thread's stack
 * mapping (0 if unknown).  Returns 0 (see res->complete) or a negative errno.
 */
int unwinder_unwind(struct unwinder *u, const struct thread_snapshot *snap,
		    uint64_t stack_end, struct unwind_frame *frames, size_t max,
		    struct unwind_result *res);

#endif
