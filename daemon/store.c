/*
 * store: see store.h.
 *
 * Everything that touches the database runs on the writer thread, in the
 * order it was queued: batches from the samplers, and requests (session
 * begin and end, schedules, retention) whose callers wait for them.  The
 * writer takes the whole queue at once and writes each run of consecutive
 * batches in one transaction (store_write.c).  Callers only ever hold the
 * mutex to queue or to read a session's failure, never across I/O.
 */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "store_impl.h"
#include "xalloc.h"

/*
 * Samples queued and not yet written, over all sessions, beyond which a
 * session's batch is refused and the session failed (its later batches
 * would refer to frames and stacks of the refused one): the writer is
 * stuck, and the daemon must not grow without bound.  About 100 MB.
 */
#define QUEUE_MAX_SAMPLES	(4u << 20)

static const char *const stmt_sql[NSTMT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT session",
	[S_RELEASE] = "RELEASE session",
	[S_ROLLBACK_TO] = "ROLLBACK TO session",
	[S_THREAD] = "INSERT INTO threads (session_id, id, pid, tid, name)"
		     " VALUES (?, ?, ?, ?, ?)",
	[S_MODULE] = "INSERT INTO modules (session_id, id, path, build_id)"
		     " VALUES (?, ?, ?, ?)",
	[S_FRAME] = "INSERT INTO frames (session_id, id, module_id, address,"
		    " func, file, line, inlined) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	[S_NODE] = "INSERT INTO stack_nodes (session_id, id, parent_id, frame_id)"
		   " VALUES (?, ?, ?, ?)",
	[S_COUNT] = "INSERT INTO counts (session_id, thread_id, stack_id, state,"
		    " samples) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
		    " SET samples = samples + excluded.samples",
	[S_CHUNK] = "INSERT INTO sample_chunks (session_id, thread_id, first_ns,"
		    " last_ns, samples, data) VALUES (?, ?, ?, ?, ?, ?)",
	[S_TOTALS] = "UPDATE sessions SET samples = ?2, thread_samples = ?3,"
		     " late_samples = ?4, eintr_caused = ?5, kernel_samples = ?6,"
		     " stopped_samples = ?7 WHERE id = ?1",
	[S_FAILED] = "UPDATE sessions SET status = 'failed', error = ?2"
		     " WHERE id = ?1",
	[S_END] = "UPDATE sessions SET status = ?2, error = ?3, ended_ns = ?4,"
		  " target_cpu_ns = ?5 WHERE id = ?1",
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* ---- statements --------------------------------------------------------- */

/* Remembers why the statement failed, before a rollback says something else. */
int store_failed_with(struct store *st, int rc)
{
	free(st->err);
	st->err = xasprintf("cannot write %s: %s", st->path,
			    sqlite3_errmsg(st->db));
	st->err_rc = rc;
	return rc;
}

/* Runs a prepared statement whose parameters are bound; 0 or an SQLite rc. */
int store_step(struct store *st, sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = 0;
	else
		store_failed_with(st, rc);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return rc;
}

int store_run(struct store *st, enum stmt which)
{
	return store_step(st, st->stmt[which]);
}

void store_bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(stmt, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(stmt, i);
}

/* A one-off statement (rare requests); 0 or an SQLite rc. */
int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);

	return rc == SQLITE_OK ? 0 : store_failed_with(st, rc);
}

/* Ends a transaction that failed, unless SQLite already rolled it back. */
void store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		store_run(st, S_ROLLBACK);
}

/* ---- sessions and their failures ---------------------------------------- */

struct sess *store_find_sess(struct store *st, int64_t id)
{
	for (struct sess *s = st->sessions; s != NULL; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

bool store_sess_failed(struct store *st, struct sess *s)
{
	bool failed;

	pthread_mutex_lock(&st->mu);
	failed = s->failed;
	pthread_mutex_unlock(&st->mu);
	return failed;
}

/* The session gets no more data: its pending samples go. */
void store_fail_sess(struct store *st, struct sess *s, const char *error)
{
	pthread_mutex_lock(&st->mu);
	if (!s->failed) {
		s->failed = true;
		s->error = xstrdup(error);
	}
	pthread_mutex_unlock(&st->mu);
	store_free_threads(s);
}

static void free_sess(struct sess *s)
{
	store_free_threads(s);
	free(s->touched);
	free(s->error);
	free(s);
}

void store_unlink_sess(struct store *st, struct sess *s)
{
	struct sess **pp;

	pthread_mutex_lock(&st->mu);
	for (pp = &st->sessions; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	pthread_mutex_unlock(&st->mu);
	free_sess(s);
}

static char *sess_error(struct store *st, struct sess *s)
{
	char *error;

	pthread_mutex_lock(&st->mu);
	error = s->error != NULL ? xstrdup(s->error) : NULL;
	pthread_mutex_unlock(&st->mu);
	return error;
}

static int write_end(struct store *st, int64_t id, const char *status,
		     const char *error, uint64_t ended_ns, int64_t cpu_ns)
{
	sqlite3_stmt *stmt = st->stmt[S_END];

	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, status, -1, SQLITE_STATIC);
	store_bind_text(stmt, 3, error);
	sqlite3_bind_int64(stmt, 4, (int64_t)ended_ns);
	if (cpu_ns >= 0)
		sqlite3_bind_int64(stmt, 5, cpu_ns);
	return store_step(st, stmt);
}

/* Tries to store the status of a session the writer failed. */
void store_write_failed(struct store *st, struct sess *s)
{
	sqlite3_stmt *stmt = st->stmt[S_FAILED];
	char *error;

	if (s->fail_written)
		return;
	error = sess_error(st, s);
	sqlite3_bind_int64(stmt, 1, s->id);
	sqlite3_bind_text(stmt, 2, error, -1, SQLITE_TRANSIENT);
	s->fail_written = store_step(st, stmt) == 0;
	free(error);
}

/* ---- requests ----------------------------------------------------------- */

/* A request's failure from the last failed statement. */
int store_request_failed(struct store *st, struct request *rq, int rc)
{
	rq->cause = xstrdup(st->err != NULL ? st->err : sqlite3_errstr(rc));
	return errno_of(rc);
}

int store_request_error(struct request *rq, int r, char *cause)
{
	rq->cause = cause;
	return r;
}

/* Queues rq and waits until the writer has run it. */
int store_call(struct store *st, int (*run)(struct store *, struct request *),
	       void *arg, char **cause)
{
	struct request rq = { .run = run, .arg = arg };
	struct item *it = xcalloc(1, sizeof *it);

	it->req = &rq;
	pthread_mutex_lock(&st->mu);
	if (st->tail != NULL)
		st->tail->next = it;
	else
		st->head = it;
	st->tail = it;
	pthread_cond_signal(&st->wake);
	while (!rq.done)
		pthread_cond_wait(&st->done, &st->mu);
	pthread_mutex_unlock(&st->mu);
	if (rq.rc < 0 && cause != NULL)
		*cause = rq.cause;
	else
		free(rq.cause);
	return rq.rc;
}

static void run_request(struct store *st, struct request *rq)
{
	rq->rc = rq->run(st, rq);
	pthread_mutex_lock(&st->mu);
	rq->done = true;
	pthread_cond_broadcast(&st->done);
	pthread_mutex_unlock(&st->mu);
}

struct begin_arg {
	const struct store_session_info *info;
	int64_t id;
};

static void bind_session(sqlite3_stmt *stmt, const struct store_session_info *in)
{
	store_bind_text(stmt, 1, in->name);
	sqlite3_bind_int64(stmt, 2, in->pid);
	store_bind_text(stmt, 3, in->exe);
	store_bind_text(stmt, 4, in->cmdline);
	sqlite3_bind_int64(stmt, 5, in->owner_uid);
	if (in->requested_by >= 0)
		sqlite3_bind_int64(stmt, 6, in->requested_by);
	if (in->schedule_id >= 0)
		sqlite3_bind_int64(stmt, 7, in->schedule_id);
	sqlite3_bind_int64(stmt, 8, (int64_t)in->started_ns);
	if (in->duration_s > 0)
		sqlite3_bind_double(stmt, 9, in->duration_s);
	sqlite3_bind_double(stmt, 10, in->rate_hz);
	sqlite3_bind_int(stmt, 11, in->children);
	sqlite3_bind_text(stmt, 12, in->mode != NULL ? in->mode : "wall", -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(stmt, 13, in->ptrace_only ? "ptrace" : "kernel", -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 14, in->max_stops == UINT_MAX ? -1 : (int64_t)in->max_stops);
}

static int do_begin(struct store *st, struct request *rq)
{
	static const char sql[] =
		"INSERT INTO sessions (name, pid, exe, cmdline,"
		" owner_uid, requested_by, schedule_id, started_ns,"
		" duration_s, rate_hz, children, mode, sampling, max_stops, status) VALUES"
		" (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'recording')";
	struct begin_arg *a = rq->arg;
	sqlite3_stmt *stmt;
	struct sess *s;
	int rc = store_prepare(st, sql, &stmt);

	if (rc != 0)
		return store_request_failed(st, rq, rc);
	bind_session(stmt, a->info);
	rc = store_step(st, stmt);
	sqlite3_finalize(stmt);
	if (rc != 0)
		return store_request_failed(st, rq, rc);
	a->id = sqlite3_last_insert_rowid(st->db);
	s = xcalloc(1, sizeof *s);
	s->id = a->id;
	pthread_mutex_lock(&st->mu);
	s->next = st->sessions;
	st->sessions = s;
	pthread_mutex_unlock(&st->mu);
	return 0;
}

struct end_arg {
	int64_t id;
	const char *status, *error;
	uint64_t ended_ns;
	int64_t cpu_ns;
};

static int write_failed_end(struct store *st, struct sess *s)
{
	char *error = sess_error(st, s);
	int rc = write_end(st, s->id, "failed", error, s->ended_ns, s->cpu_ns);

	free(error);
	return rc;
}

/*
 * The last chunks and the final status, in one transaction.  When that
 * fails the session fails, and its status is written alone if it can be;
 * if not, the session stays in memory, for store_session_failed and to try
 * again later.  Returns 0, or the SQLite rc that failed the session.
 */
static int end_sess(struct store *st, struct sess *s, const struct end_arg *a)
{
	int rc = 0, wrc;

	s->ended_ns = a->ended_ns;
	s->cpu_ns = a->cpu_ns;
	if (!store_sess_failed(st, s)) {
		if ((rc = store_run(st, S_BEGIN)) == 0 &&
		    (rc = store_write_partial_chunks(st, s)) == 0 &&
		    (rc = write_end(st, s->id, a->status, a->error,
				    a->ended_ns, a->cpu_ns)) == 0)
			rc = store_run(st, S_COMMIT);
		if (rc == 0) {
			store_unlink_sess(st, s);
			return 0;
		}
		store_rollback(st);
		store_settle_threads(s, false);
		store_fail_sess(st, s, st->err);
	}
	if ((wrc = write_failed_end(st, s)) != 0) {
		s->ended = true;
		return wrc;
	}
	store_unlink_sess(st, s);
	return rc;
}

static int do_end(struct store *st, struct request *rq)
{
	struct end_arg *a = rq->arg;
	struct sess *s = store_find_sess(st, a->id);
	int rc;

	if (s == NULL || s->ended)
		return store_request_error(rq, -ENOENT, xasprintf(
			"no session %lld is recording", (long long)a->id));
	if ((rc = end_sess(st, s, a)) != 0)
		return store_request_failed(st, rq, rc);
	return 0;
}

/* ---- the writer --------------------------------------------------------- */

static bool request_queued(const struct store *st)
{
	for (const struct item *it = st->head; it != NULL; it = it->next)
		if (it->req != NULL)
			return true;
	return false;
}

/* Whether a session ended without its status written (writer, under mu). */
static bool end_unwritten(const struct store *st)
{
	for (const struct sess *s = st->sessions; s != NULL; s = s->next)
		if (s->ended)
			return true;
	return false;
}

/*
 * Waits for work, then up to STORE_FLUSH_MS after the oldest batch for more
 * (not when a caller waits on a request, nor when stopping), and takes the
 * whole queue.  While a session's final status could not be written (a
 * full disk), returns every second even without work, so that the status
 * is retried once there is space, not only when another session writes.
 */
static struct item *take(struct store *st, bool *stop)
{
	struct item *items;

	pthread_mutex_lock(&st->mu);
	while (st->head == NULL && !st->stopping) {
		uint64_t due = mono_ns() + 1000000000ull;
		struct timespec ts = {
			(time_t)(due / 1000000000u), (long)(due % 1000000000u),
		};

		if (!end_unwritten(st))
			pthread_cond_wait(&st->wake, &st->mu);
		else if (pthread_cond_timedwait(&st->wake, &st->mu, &ts) == ETIMEDOUT)
			break;
	}
	while (st->head != NULL && !st->stopping && !request_queued(st)) {
		uint64_t due = st->head->queued_ns + STORE_FLUSH_MS * 1000000ull;
		struct timespec ts = {
			(time_t)(due / 1000000000u), (long)(due % 1000000000u),
		};

		if (mono_ns() >= due)
			break;
		pthread_cond_timedwait(&st->wake, &st->mu, &ts);
	}
	items = st->head;
	st->head = st->tail = NULL;
	st->queued_samples = 0;
	*stop = st->stopping;
	pthread_mutex_unlock(&st->mu);
	return items;
}

/* In queue order: runs of batches, and the requests between them. */
static void process(struct store *st, struct item *items)
{
	while (items != NULL) {
		struct item *next = items->next;

		if (items->batch != NULL) {
			store_group_batch(st, items->batch);
		} else {
			store_write_run(st);
			run_request(st, items->req);
		}
		free(items);
		items = next;
	}
	store_write_run(st);
}

/* At close: sessions nobody ended were interrupted. */
static void interrupt_sessions(struct store *st)
{
	struct timespec ts;
	struct end_arg a = {
		.status = "interrupted", .cpu_ns = -1,
		.error = "perchd stopped before the session ended",
	};

	clock_gettime(CLOCK_REALTIME, &ts);
	a.ended_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (struct sess *s = st->sessions, *next; s != NULL; s = next) {
		next = s->next;
		if (!s->ended)
			end_sess(st, s, &a);
	}
}

/* Sessions that ended while their status could not be written. */
static void retry_ended(struct store *st)
{
	for (struct sess *s = st->sessions, *next; s != NULL; s = next) {
		next = s->next;
		if (s->ended && write_failed_end(st, s) == 0)
			store_unlink_sess(st, s);
	}
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	struct item *items;
	bool stop;

	for (;;) {
		items = take(st, &stop);
		if (items == NULL && stop)
			break;
		process(st, items);
		retry_ended(st);
	}
	interrupt_sessions(st);
	return NULL;
}

/* ---- opening and closing ------------------------------------------------ */

static int prepare_all(struct store *st, char **cause)
{
	for (int i = 0; i < NSTMT; i++) {
		int rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &st->stmt[i], NULL);

		if (rc != SQLITE_OK) {
			*cause = xasprintf("%s: cannot prepare statements: %s",
					   st->path, sqlite3_errmsg(st->db));
			return errno_of(rc);
		}
	}
	return 0;
}

/* Sessions a daemon was recording when it died. */
static int recover(struct store *st, char **cause)
{
	int rc = sqlite3_exec(st->db,
		"UPDATE sessions SET status = 'interrupted',"
		" error = 'perchd stopped before the session ended',"
		" ended_ns = (SELECT max(last_ns) FROM sample_chunks"
		"             WHERE session_id = sessions.id)"
		" WHERE status = 'recording'", NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	*cause = xasprintf("%s: cannot mark interrupted sessions: %s", st->path,
			   sqlite3_errmsg(st->db));
	return errno_of(rc);
}

static int init_sync(struct store *st)
{
	pthread_condattr_t ca;
	int r;

	if ((r = pthread_condattr_init(&ca)) != 0)
		return -r;
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(&st->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0)
		return -r;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->done, NULL);
	return 0;
}

static void free_store(struct store *st)
{
	for (int i = 0; i < NSTMT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	for (struct sess *s = st->sessions, *next; s != NULL; s = next) {
		next = s->next;
		free_sess(s);
	}
	for (size_t i = 0; i < st->groups_cap; i++)
		free(st->groups[i].b);
	free(st->groups);
	free(st->counts);
	free(st->count_used);
	free(st->err);
	free(st->path);
	free(st);
}

int store_open(const char *path, struct store **out, char **cause)
{
	struct store *st = xcalloc(1, sizeof *st);
	int r;

	st->path = xstrdup(path);
	if ((r = db_open(path, DB_READ_WRITE, &st->db, cause)) < 0 ||
	    (r = prepare_all(st, cause)) < 0 || (r = recover(st, cause)) < 0)
		goto free_store;
	if ((r = init_sync(st)) < 0) {
		*cause = xasprintf("cannot set up the store: %s", strerror(-r));
		goto free_store;
	}
	if ((r = -pthread_create(&st->writer, NULL, writer_main, st)) < 0) {
		*cause = xasprintf("cannot start the writer thread: %s",
				   strerror(-r));
		goto destroy_sync;
	}
	*out = st;
	return 0;

destroy_sync:
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->done);
	pthread_mutex_destroy(&st->mu);
free_store:
	free_store(st);
	return r;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->writer, NULL);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->done);
	pthread_mutex_destroy(&st->mu);
	free_store(st);
}

/* ---- the public calls --------------------------------------------------- */

struct store_batch *store_batch_new(int64_t session_id)
{
	struct store_batch *b = xcalloc(1, sizeof *b);

	b->session_id = session_id;
	return b;
}

void store_batch_add_thread(struct store_batch *b, const struct store_thread *t)
{
	if (b->nthreads == b->threads_cap) {
		b->threads_cap = b->threads_cap ? b->threads_cap * 2 : 16;
		b->threads = xreallocarray(b->threads, b->threads_cap,
					   sizeof *b->threads);
	}
	b->threads[b->nthreads++] = *t;
}

void store_batch_reserve(struct store_batch *b, size_t n)
{
	if (n <= b->samples_cap)
		return;
	b->samples_cap = n;
	b->samples = xreallocarray(b->samples, n, sizeof *b->samples);
}

void store_batch_add_sample(struct store_batch *b, const struct store_sample *s)
{
	if (b->nsamples == b->samples_cap) {
		b->samples_cap = b->samples_cap ? b->samples_cap * 2 : 256;
		b->samples = xreallocarray(b->samples, b->samples_cap,
					   sizeof *b->samples);
	}
	b->samples[b->nsamples++] = *s;
}

void store_batch_free(struct store_batch *b)
{
	if (b == NULL)
		return;
	intern_defs_free(&b->defs);
	free(b->threads);
	free(b->samples);
	free(b);
}

/* Under mu: whether b may be queued, failing its session when not. */
static bool admit(struct store *st, const struct store_batch *b)
{
	struct sess *s = store_find_sess(st, b->session_id);

	if (s == NULL || s->failed || s->ended)
		return false;
	if (st->queued_samples + b->nsamples <= QUEUE_MAX_SAMPLES)
		return true;
	s->failed = true;
	s->error = xasprintf("cannot write %s fast enough: %zu samples waiting",
			     st->path, st->queued_samples);
	return false;
}

void store_append(struct store *st, struct store_batch *b)
{
	struct item *it = xcalloc(1, sizeof *it);
	bool queued;

	it->batch = b;
	it->queued_ns = mono_ns();
	pthread_mutex_lock(&st->mu);
	queued = admit(st, b);
	if (queued) {
		st->queued_samples += b->nsamples;
		if (st->tail != NULL)
			st->tail->next = it;
		else
			st->head = it;
		st->tail = it;
		/* A writer waiting on a batch before needs no wake-up. */
		if (st->head == it)
			pthread_cond_signal(&st->wake);
	}
	pthread_mutex_unlock(&st->mu);
	if (!queued) {
		free(it);
		store_batch_free(b);
	}
}

int store_session_begin(struct store *st, const struct store_session_info *info,
			int64_t *session_id, char **cause)
{
	struct begin_arg a = { info, -1 };
	int r = store_call(st, do_begin, &a, cause);

	if (r == 0)
		*session_id = a.id;
	return r;
}

int store_session_end(struct store *st, int64_t session_id, const char *status,
		      const char *error, uint64_t ended_ns, int64_t target_cpu_ns)
{
	struct end_arg a = { session_id, status, error, ended_ns, target_cpu_ns };

	return store_call(st, do_end, &a, NULL);
}

bool store_session_failed(struct store *st, int64_t session_id, char **error)
{
	struct sess *s;
	bool failed = false;

	pthread_mutex_lock(&st->mu);
	s = store_find_sess(st, session_id);
	if (s != NULL && s->failed) {
		failed = true;
		*error = s->error != NULL ? xstrdup(s->error) : NULL;
	}
	pthread_mutex_unlock(&st->mu);
	return failed;
}
