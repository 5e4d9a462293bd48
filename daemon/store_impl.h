/*
 * store_impl: what the store's files share (store.c: the queue, the writer
 * thread, sessions; store_write.c: writing runs of batches; store_admin.c:
 * schedules and retention).  Internal to the store: nothing else includes it.
 *
 * Everything here belongs to the writer thread but the fields marked
 * "under mu".  Functions returning int give 0 or an SQLite result code,
 * except the request functions, which give 0 or a negative errno.
 */
#ifndef PERCH_STORE_IMPL_H
#define PERCH_STORE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "samplecodec.h"
#include "store.h"

enum stmt {
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_THREAD, S_MODULE, S_FRAME, S_NODE, S_COUNT, S_CHUNK, S_TOTALS,
	S_FAILED, S_END, NSTMT
};

/* A thread's samples not yet in a chunk, and their floor for the next. */
struct pending {
	struct codec_buf buf;
	uint64_t floor_ns;	/* the last chunk's last time: first_ns > it */
};

struct thread_buf {
	struct pending cur;
	struct pending undo;	/* cur before the open transaction */
	bool saved;
};

struct sess {
	struct sess *next;
	int64_t id;
	/* Under the store's mutex. */
	bool failed;
	char *error;
	/* Writer only. */
	bool fail_written;	/* status 'failed' is in the database */
	/* Ended, but its status could not be written yet: retried. */
	bool ended;
	uint64_t ended_ns;
	int64_t cpu_ns;
	struct thread_buf *threads;
	size_t nthreads;
	uint32_t *touched;	/* threads saved in the open transaction */
	size_t ntouched, touched_cap;
};

struct request {
	int (*run)(struct store *st, struct request *rq);
	void *arg;
	int rc;
	char *cause;
	bool done;
};

struct item {
	struct item *next;
	struct store_batch *batch;	/* or */
	struct request *req;
	uint64_t queued_ns;	/* CLOCK_MONOTONIC */
};

/* One session's batches within a run. */
struct group {
	struct sess *s;
	struct store_batch **b;
	size_t n, cap;
	bool failed;
};

struct count {
	uint32_t thread_id, stack_id, n;
	char state;		/* 0: empty slot */
};

struct store {
	char *path;
	sqlite3 *db;
	sqlite3_stmt *stmt[NSTMT];
	pthread_t writer;
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	/* Under mu. */
	struct item *head, *tail;
	size_t queued_samples;
	bool stopping;
	struct sess *sessions;
	/* Writer only. */
	struct group *groups;
	size_t ngroups, groups_cap;
	struct count *counts;
	size_t counts_cap, ncounts;
	uint32_t *count_used;	/* occupied slots, to empty the table */
	char *err;		/* the last failed statement's message */
	int err_rc;
};

/* Statements (store.c). */
int store_failed_with(struct store *st, int rc);
int store_step(struct store *st, sqlite3_stmt *stmt);
int store_run(struct store *st, enum stmt which);
void store_bind_text(sqlite3_stmt *stmt, int i, const char *s);
int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out);
void store_rollback(struct store *st);

/* Sessions (store.c). */
struct sess *store_find_sess(struct store *st, int64_t id);
bool store_sess_failed(struct store *st, struct sess *s);
void store_fail_sess(struct store *st, struct sess *s, const char *error);
void store_unlink_sess(struct store *st, struct sess *s);
void store_write_failed(struct store *st, struct sess *s);

/* Requests: run on the writer thread while the caller waits (store.c). */
int store_call(struct store *st, int (*run)(struct store *, struct request *),
	       void *arg, char **cause);
int store_request_failed(struct store *st, struct request *rq, int rc);
int store_request_error(struct request *rq, int r, char *cause);

/* Runs of batches (store_write.c). */
void store_group_batch(struct store *st, struct store_batch *b);
void store_write_run(struct store *st);
int store_write_partial_chunks(struct store *st, struct sess *s);
void store_settle_threads(struct sess *s, bool committed);
void store_free_threads(struct sess *s);

#endif
