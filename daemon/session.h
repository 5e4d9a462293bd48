/*
 * session: one profiling session — a sampler thread that samples a process
 * (and, with children, its descendants) at a jittered rate, interns the
 * stacks and hands batches to the store, until its duration ends, the target
 * exits, the store fails it, or it is asked to stop.
 *
 * The sampler thread does every ptrace call of the session (ptrace requests
 * must come from one thread) and never waits for the disk.  When it ends it
 * closes the session in the store and then calls on_end from its own
 * thread; the owner then calls session_free, which joins it.
 */
#ifndef PERCH_SESSION_H
#define PERCH_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

struct session;

struct session_params {
	pid_t pid;
	double duration_s;	/* <= 0: until stopped */
	double rate_hz;
	bool children;
	const char *name;	/* or NULL */
	int64_t requested_by;	/* client uid, or -1 for a schedule */
	int64_t schedule_id;	/* or -1 */
	/*
	 * Whose rights the session samples with (access.h): descendants it
	 * may not trace are not followed, and a process that stops being
	 * traceable by them (a setuid exec) is dropped.  uid 0: anything.
	 */
	uid_t uid;
	gid_t gid;
	pid_t client_pid;	/* the process that asked, 0 for a schedule */
	/*
	 * Threads stopped at once per process and tick (target_opts): 0 = as
	 * many as this machine has CPUs online, UINT_MAX = every running
	 * thread at every tick.
	 */
	unsigned int max_stops;
	/*
	 * Running threads are stopped as blocked ones are, never sampled by
	 * the kernel (target_opts.kernel_period_ns).
	 */
	bool ptrace_only;
};

/* What status reports about a running session. */
struct session_info {
	int64_t id;
	pid_t pid;
	uid_t owner_uid;	/* the target's */
	int64_t requested_by;
	int64_t schedule_id;
	const char *name, *exe;	/* valid while the session is */
	uint64_t started_ns;
	double duration_s, rate_hz;
	bool children;
	uint64_t ticks, late_ticks, thread_samples;
	unsigned int processes, threads;
	const char *status;	/* "recording", then how it ended */
	const char *error;	/* or NULL */
};

typedef void (*session_end_fn)(struct session *s, void *arg);

/*
 * Opens the target and the session in the store and starts sampling.
 * Returns 0, or a negative errno with a one-line *cause (caller frees).
 */
int session_start(struct store *st, const struct session_params *p,
		  session_end_fn on_end, void *arg, struct session **out,
		  char **cause);

/* Asks the sampler to stop (status "stopped"); returns at once. */
void session_stop(struct session *s);

/* A consistent snapshot of the session's counters. */
void session_info(struct session *s, struct session_info *out);

int64_t session_id(const struct session *s);
pid_t session_pid(const struct session *s);

/* Joins the sampler thread (after on_end) and frees; NULL-safe. */
void session_free(struct session *s);

#endif
