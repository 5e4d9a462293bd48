/*
 * store: writes profiling sessions to the database, off the sampling path.
 *
 * The store owns one SQLite connection and one writer thread.  Sampler
 * threads hand it batches (store_append) and never wait for the disk: a
 * batch is queued and written in a transaction with whatever else is queued,
 * at most STORE_FLUSH_MS after it arrived.  A write that fails (disk full,
 * read-only file system, I/O error) fails the session it belongs to with the
 * error text, drops that session's later batches, and keeps the store and
 * every other session running; sessions written before are untouched.
 *
 * The other calls but store_session_failed and the batch helpers are run
 * by the writer, on its connection and in order with the batches queued
 * before them, while the caller waits (they are called on rare events: a
 * session starts or ends, a schedule fires).  All functions are
 * thread-safe, store_close excepted: nothing may call the store during or
 * after it.
 */
#ifndef PERCH_STORE_H
#define PERCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "intern.h"

#define STORE_FLUSH_MS 1000

struct store;

/* What a new session records (strings are copied). */
struct store_session_info {
	const char *name;	/* or NULL */
	pid_t pid;
	const char *exe;	/* or NULL */
	const char *cmdline;	/* or NULL */
	uid_t owner_uid;	/* the target's */
	int64_t requested_by;	/* client uid, or -1 (schedule) */
	int64_t schedule_id;	/* or -1 */
	uint64_t started_ns;	/* CLOCK_REALTIME */
	double duration_s;	/* <= 0: until stopped */
	double rate_hz;
	bool children;
	const char *mode;	/* "wall" */
	bool ptrace_only;	/* running threads stopped, never kernel-sampled */
	unsigned int max_stops;	/* per process and tick; UINT_MAX: every one */
};

/* One thread seen for the first time in a session. */
struct store_thread {
	uint32_t id;		/* per session, from 0 */
	pid_t pid, tid;
	char name[64];
};

/* One thread sample. */
struct store_sample {
	uint32_t thread_id;
	uint32_t stack_id;
	uint64_t time_ns;	/* CLOCK_REALTIME */
	char state;		/* kernel letter */
};

/*
 * A batch of one session's data.  The store takes ownership of the whole
 * batch (store_append); build it with the helpers below.
 */
struct store_batch {
	int64_t session_id;
	struct intern_defs defs;
	struct store_thread *threads;
	size_t nthreads, threads_cap;
	struct store_sample *samples;
	size_t nsamples, samples_cap;
	/* Running totals of the session, written with the batch. */
	uint64_t ticks, thread_samples, late_ticks, eintr_caused;
	uint64_t kernel_samples, stopped_samples;	/* thread-samples by capture */
};

struct store_batch *store_batch_new(int64_t session_id);
/* Room for n samples at once: the next batch of a session is the last one's size. */
void store_batch_reserve(struct store_batch *b, size_t n);
void store_batch_add_thread(struct store_batch *b, const struct store_thread *t);
void store_batch_add_sample(struct store_batch *b, const struct store_sample *s);
void store_batch_free(struct store_batch *b);

/*
 * Opens (creating, migrating) the database at path and starts the writer.
 * Sessions left 'recording' by a daemon that died are marked 'interrupted'.
 * Returns 0 or a negative errno with a message in *cause (caller frees).
 */
int store_open(const char *path, struct store **out, char **cause);

/*
 * Flushes everything queued, stops the writer, closes; NULL-safe.  A session
 * not ended by then is stored as 'interrupted'.
 */
void store_close(struct store *st);

/* Creates a session in state 'recording'.  Returns 0 or a negative errno. */
int store_session_begin(struct store *st, const struct store_session_info *info,
			int64_t *session_id, char **cause);

/*
 * Queues a batch; never blocks on I/O.  Takes ownership of b.  A batch of a
 * failed session is dropped; so is one that would put more than about
 * 4 million samples in the queue (the disk cannot keep up), and its session
 * fails: later batches would refer to its frames and stacks.
 */
void store_append(struct store *st, struct store_batch *b);

/*
 * Ends a session: flushes its queued batches, then sets its status
 * ("complete", "target-exited", "stopped", "failed"), error text (or NULL),
 * end time and target CPU time (-1: unknown).  A session that already
 * failed in the writer keeps 'failed' and its error.  Returns 0, -ENOENT
 * when the session is not recording, or the negative errno of the write
 * that failed it now (then stored as 'failed' if the database allows, else
 * later, and store_session_failed says so meanwhile).
 */
int store_session_end(struct store *st, int64_t session_id, const char *status,
		      const char *error, uint64_t ended_ns, int64_t target_cpu_ns);

/*
 * Whether the writer failed this session (disk full...), and why; the
 * sampler polls it to stop early.  *error (caller frees) is set only when
 * it returns true.  Cheap: no I/O, no wait for the writer.
 */
bool store_session_failed(struct store *st, int64_t session_id, char **error);

/*
 * Deletes a session and everything it owns, and gives the space back to the
 * file system.  -ENOENT when there is no such session, -EBUSY when it is
 * still recording.
 */
int store_session_delete(struct store *st, int64_t session_id, char **cause);

/*
 * Retention: deletes the oldest sessions of a schedule (schedule_id >= 0) or
 * of the whole database (-1) beyond keep_count sessions and those started
 * more than keep_age_s before now_ns (a negative limit is no limit), then
 * gives the space back.  A recording session counts towards keep_count but
 * is never deleted.  *deleted (may be NULL) gets how many went.
 */
int store_retention(struct store *st, int64_t schedule_id, int64_t keep_count,
		    double keep_age_s, uint64_t now_ns, int *deleted,
		    char **cause);

/* A row of the schedules table. */
struct store_schedule {
	int64_t id;		/* set by store_schedule_add */
	char *name;		/* or NULL */
	char *target_kind;	/* "pid", "exe" or "cmdline" */
	char *target;
	double interval_s, duration_s, rate_hz;
	bool children;
	int64_t keep_count;	/* -1: no limit */
	double keep_age_s;	/* -1: no limit */
	int64_t max_stops;	/* -1: the daemon's default; 0: all (proto_start) */
	bool ptrace_only;
	uid_t owner_uid;
	uint64_t created_ns;	/* CLOCK_REALTIME */
	uint64_t next_ns;	/* next firing, CLOCK_REALTIME */
	bool enabled;
};

/*
 * Adds s (its strings are read, not taken) and sets s->id.  A value the
 * schema refuses (unknown target_kind, interval <= 0...) gives -EINVAL.
 */
int store_schedule_add(struct store *st, struct store_schedule *s,
		       char **cause);

/* -ENOENT when there is no such schedule.  Its runs go with it. */
int store_schedule_remove(struct store *st, int64_t id, char **cause);

/* Every schedule, by id; free *out with store_schedules_free. */
int store_schedule_list(struct store *st, struct store_schedule **out,
			size_t *n, char **cause);
void store_schedules_free(struct store_schedule *v, size_t n);

int store_schedule_set_next(struct store *st, int64_t id, uint64_t next_ns,
			    char **cause);

/*
 * Records a firing: outcome "started" (with the session's id), "skipped"
 * (no target; session_id -1) or "failed", and a message or NULL.
 */
int store_schedule_run(struct store *st, int64_t schedule_id,
		       uint64_t fired_ns, const char *outcome,
		       int64_t session_id, const char *message, char **cause);

#endif
