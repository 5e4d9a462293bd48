/*
 * profile: one session read from the database into memory, as the query
 * side needs it — frames, the stack prefix tree, threads, and how many
 * samples each stack got under the caller's filters.
 *
 * Without a time window the counts come from the per-(thread, stack, state)
 * aggregates, so loading costs the number of distinct stacks, not of
 * samples; a time window decodes the raw sample chunks of the window.
 */
#ifndef PERCH_PROFILE_H
#define PERCH_PROFILE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pframe {
	const char *func;
	const char *file;	/* or NULL */
	int line;		/* 0: unknown */
	const char *module;	/* path, or NULL */
	uint64_t address;
	bool inlined;
	bool library;		/* set by profile_mark_libraries */
};

struct pnode {
	uint32_t parent;	/* 0: the root */
	uint32_t frame;
	uint32_t depth;		/* root children have depth 1 */
};

struct pthread_info {
	uint32_t id;
	int pid, tid;
	const char *name;
};

struct profile_filter {
	const char *thread;	/* tid or thread name; NULL: all threads */
	bool cpu_only;		/* only samples of running threads (state R) */
	double from_s, to_s;	/* window from the session start; < 0: open */
};

struct profile {
	/* The session. */
	int64_t id;
	int pid;
	const char *name, *exe, *cmdline, *status, *error, *mode;
	uint64_t started_ns, ended_ns;
	double rate_hz, duration_s;
	int64_t ticks, thread_samples, late_ticks, target_cpu_ns, eintr_caused;
	int64_t schedule_id;	/* -1: none */
	/*
	 * How running threads were sampled (schema version 2 on; NULL and -2
	 * before): "kernel" or "ptrace" as asked, stops allowed per process and
	 * tick (-1: every running thread), and thread-samples by capture.
	 */
	const char *sampling;
	int64_t max_stops, kernel_samples, stopped_samples;
	/* Indexed by id; frames[0] and nodes[0] are unused. */
	struct pframe *frames;
	size_t nframes;
	struct pnode *nodes;
	size_t nnodes;
	struct pthread_info *threads;
	size_t nthreads;
	/* Samples per stack (leaf node id), after the filters. */
	uint64_t *self;
	uint64_t total;		/* sum of self */
	char *strings;		/* owns every string above */
	size_t strings_len, strings_cap;
};

/*
 * The id of the newest session for "last", or of the number given.  Returns
 * 0 or -ENOENT with *cause.
 */
int profile_resolve(sqlite3 *db, const char *spec, int64_t *id, char **cause);

/* Loads a session.  Returns 0 or a negative errno with a one-line *cause. */
int profile_load(sqlite3 *db, int64_t id, const struct profile_filter *f,
		 struct profile **out, char **cause);

void profile_free(struct profile *p);

/*
 * Marks library frames: with paths (comma-separated substrings), frames
 * whose file and module match none; without, frames of system files
 * (modules under /usr, /lib, [vdso]; sources not under the session's own).
 */
void profile_mark_libraries(struct profile *p, const char *paths);

/* Whether s contains one of the comma-separated substrings of paths. */
bool profile_path_match(const char *s, const char *paths);

/* Seconds a number of samples stands for (one sample = one period). */
double profile_seconds(const struct profile *p, uint64_t samples);

#endif
