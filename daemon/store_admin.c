/*
 * store_admin: schedules, retention and deleting sessions (see store.h),
 * as requests run by the writer thread in order with the batches.
 */
#include <errno.h>
#include <stdlib.h>

#include "store_impl.h"
#include "xalloc.h"

/* Gives the free pages back to the file system (auto_vacuum=INCREMENTAL). */
static int vacuum(struct store *st)
{
	sqlite3_stmt *stmt;
	int rc = store_prepare(st, "PRAGMA incremental_vacuum", &stmt);

	if (rc != 0)
		return rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	rc = rc == SQLITE_DONE ? 0 : store_failed_with(st, rc);
	sqlite3_finalize(stmt);
	/* The file shrinks when the WAL is copied back; do not wait for it. */
	if (rc == 0)
		sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	return rc;
}

/* Runs a one-off statement with int64 parameters; *changes may be NULL. */
static int exec_ints(struct store *st, const char *sql, const int64_t *v,
		     int n, int *changes)
{
	sqlite3_stmt *stmt;
	int rc = store_prepare(st, sql, &stmt);

	if (rc != 0)
		return rc;
	for (int i = 0; i < n; i++)
		sqlite3_bind_int64(stmt, i + 1, v[i]);
	rc = store_step(st, stmt);
	sqlite3_finalize(stmt);
	if (rc == 0 && changes != NULL)
		*changes = sqlite3_changes(st->db);
	return rc;
}

static int do_delete(struct store *st, struct request *rq)
{
	int64_t id = *(int64_t *)rq->arg;
	struct sess *s = store_find_sess(st, id);
	int changes, rc;

	if (s != NULL && !s->ended)
		return store_request_error(rq, -EBUSY, xasprintf(
			"session %lld is recording", (long long)id));
	rc = exec_ints(st, "DELETE FROM sessions WHERE id = ?1 AND"
		       " status <> 'recording'", &id, 1, &changes);
	if (rc == 0 && changes == 0)
		return store_request_error(rq, -ENOENT, xasprintf(
			"no session %lld (or it is recording)", (long long)id));
	if (rc == 0 && s != NULL)
		store_unlink_sess(st, s);
	if (rc == 0)
		rc = vacuum(st);
	return rc != 0 ? store_request_failed(st, rq, rc) : 0;
}

struct retention_arg {
	int64_t schedule_id, keep_count;
	double keep_age_s;
	uint64_t now_ns;
	int deleted;
};

static int do_retention(struct store *st, struct request *rq)
{
	struct retention_arg *a = rq->arg;
	int64_t v[4] = {
		a->schedule_id, a->keep_count, a->keep_age_s >= 0,
		(int64_t)a->now_ns - (int64_t)(a->keep_age_s * 1e9),
	};
	int rc = exec_ints(st,
		"DELETE FROM sessions WHERE id IN ("
		" SELECT id FROM (SELECT id, status, started_ns, ROW_NUMBER()"
		"  OVER (ORDER BY started_ns DESC, id DESC) AS newer"
		"  FROM sessions WHERE ?1 < 0 OR schedule_id = ?1)"
		" WHERE status <> 'recording' AND ((?2 >= 0 AND newer > ?2)"
		"  OR (?3 AND started_ns < ?4)))", v, 4, &a->deleted);

	if (rc == 0 && a->deleted > 0)
		rc = vacuum(st);
	return rc != 0 ? store_request_failed(st, rq, rc) : 0;
}

/* ---- schedule requests -------------------------------------------------- */

static int do_schedule_add(struct store *st, struct request *rq)
{
	static const char sql[] =
		"INSERT INTO schedules (name, target_kind, target,"
		" interval_s, duration_s, rate_hz, children, keep_count,"
		" keep_age_s, owner_uid, created_ns, next_ns, enabled, max_stops,"
		" ptrace_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	struct store_schedule *s = rq->arg;
	sqlite3_stmt *stmt;
	int rc = store_prepare(st, sql, &stmt);

	if (rc != 0)
		return store_request_failed(st, rq, rc);
	store_bind_text(stmt, 1, s->name);
	store_bind_text(stmt, 2, s->target_kind);
	store_bind_text(stmt, 3, s->target);
	sqlite3_bind_double(stmt, 4, s->interval_s);
	sqlite3_bind_double(stmt, 5, s->duration_s);
	sqlite3_bind_double(stmt, 6, s->rate_hz);
	sqlite3_bind_int(stmt, 7, s->children);
	if (s->keep_count >= 0)
		sqlite3_bind_int64(stmt, 8, s->keep_count);
	if (s->keep_age_s >= 0)
		sqlite3_bind_double(stmt, 9, s->keep_age_s);
	sqlite3_bind_int64(stmt, 10, s->owner_uid);
	sqlite3_bind_int64(stmt, 11, (int64_t)s->created_ns);
	sqlite3_bind_int64(stmt, 12, (int64_t)s->next_ns);
	sqlite3_bind_int(stmt, 13, s->enabled);
	/* The column says "all" as sessions.max_stops does: -1. */
	if (s->max_stops >= 0)
		sqlite3_bind_int64(stmt, 14, s->max_stops == 0 ? -1 : s->max_stops);
	sqlite3_bind_int(stmt, 15, s->ptrace_only);
	rc = store_step(st, stmt);
	sqlite3_finalize(stmt);
	if (rc != 0)
		return store_request_failed(st, rq, rc);
	s->id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

/* A one-row change that must find its row. */
static int change_row(struct store *st, struct request *rq, const char *sql,
		      const int64_t *v, int n, const char *what)
{
	int changes, rc = exec_ints(st, sql, v, n, &changes);

	if (rc != 0)
		return store_request_failed(st, rq, rc);
	if (changes == 0)
		return store_request_error(rq, -ENOENT, xasprintf(
			"no %s %lld", what, (long long)v[0]));
	return 0;
}

static int do_schedule_remove(struct store *st, struct request *rq)
{
	return change_row(st, rq, "DELETE FROM schedules WHERE id = ?1",
			  rq->arg, 1, "schedule");
}

static int do_schedule_set_next(struct store *st, struct request *rq)
{
	return change_row(st, rq, "UPDATE schedules SET next_ns = ?2"
			  " WHERE id = ?1", rq->arg, 2, "schedule");
}

static char *column_text(sqlite3_stmt *stmt, int i)
{
	const unsigned char *t = sqlite3_column_text(stmt, i);

	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static void read_schedule(sqlite3_stmt *stmt, struct store_schedule *s)
{
	s->id = sqlite3_column_int64(stmt, 0);
	s->name = column_text(stmt, 1);
	s->target_kind = column_text(stmt, 2);
	s->target = column_text(stmt, 3);
	s->interval_s = sqlite3_column_double(stmt, 4);
	s->duration_s = sqlite3_column_double(stmt, 5);
	s->rate_hz = sqlite3_column_double(stmt, 6);
	s->children = sqlite3_column_int(stmt, 7) != 0;
	s->keep_count = sqlite3_column_type(stmt, 8) == SQLITE_NULL ? -1 :
			sqlite3_column_int64(stmt, 8);
	s->keep_age_s = sqlite3_column_type(stmt, 9) == SQLITE_NULL ? -1 :
			sqlite3_column_double(stmt, 9);
	s->owner_uid = (uid_t)sqlite3_column_int64(stmt, 10);
	s->created_ns = (uint64_t)sqlite3_column_int64(stmt, 11);
	s->next_ns = (uint64_t)sqlite3_column_int64(stmt, 12);
	s->enabled = sqlite3_column_int(stmt, 13) != 0;
	s->max_stops = sqlite3_column_type(stmt, 14) == SQLITE_NULL ? -1 :
		       sqlite3_column_int64(stmt, 14) < 0 ? 0 : sqlite3_column_int64(stmt, 14);
	s->ptrace_only = sqlite3_column_int(stmt, 15) != 0;
}

struct list_arg {
	struct store_schedule *v;
	size_t n;
};

static int do_schedule_list(struct store *st, struct request *rq)
{
	static const char sql[] =
		"SELECT id, name, target_kind, target, interval_s,"
		" duration_s, rate_hz, children, keep_count, keep_age_s,"
		" owner_uid, created_ns, next_ns, enabled, max_stops, ptrace_only"
		" FROM schedules ORDER BY id";
	struct list_arg *a = rq->arg;
	size_t cap = 0;
	sqlite3_stmt *stmt;
	int rc = store_prepare(st, sql, &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (a->n == cap) {
			cap = cap ? cap * 2 : 8;
			a->v = xreallocarray(a->v, cap, sizeof *a->v);
		}
		read_schedule(stmt, &a->v[a->n++]);
		rc = 0;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc != 0)
		store_failed_with(st, rc);
	sqlite3_finalize(stmt);
	if (rc == 0)
		return 0;
	store_schedules_free(a->v, a->n);
	a->v = NULL;
	a->n = 0;
	return store_request_failed(st, rq, rc);
}

struct run_arg {
	int64_t schedule_id, session_id;
	uint64_t fired_ns;
	const char *outcome, *message;
};

static int do_schedule_run(struct store *st, struct request *rq)
{
	static const char sql[] =
		"INSERT INTO schedule_runs (schedule_id, fired_ns,"
		" outcome, session_id, message) VALUES (?, ?, ?, ?, ?)";
	struct run_arg *a = rq->arg;
	sqlite3_stmt *stmt;
	int rc = store_prepare(st, sql, &stmt);

	if (rc != 0)
		return store_request_failed(st, rq, rc);
	sqlite3_bind_int64(stmt, 1, a->schedule_id);
	sqlite3_bind_int64(stmt, 2, (int64_t)a->fired_ns);
	store_bind_text(stmt, 3, a->outcome);
	if (a->session_id >= 0)
		sqlite3_bind_int64(stmt, 4, a->session_id);
	store_bind_text(stmt, 5, a->message);
	rc = store_step(st, stmt);
	sqlite3_finalize(stmt);
	return rc != 0 ? store_request_failed(st, rq, rc) : 0;
}

int store_session_delete(struct store *st, int64_t session_id, char **cause)
{
	return store_call(st, do_delete, &session_id, cause);
}

int store_retention(struct store *st, int64_t schedule_id, int64_t keep_count,
		    double keep_age_s, uint64_t now_ns, int *deleted,
		    char **cause)
{
	struct retention_arg a = { schedule_id, keep_count, keep_age_s, now_ns, 0 };
	int r = store_call(st, do_retention, &a, cause);

	if (deleted != NULL)
		*deleted = r == 0 ? a.deleted : 0;
	return r;
}

int store_schedule_add(struct store *st, struct store_schedule *s, char **cause)
{
	return store_call(st, do_schedule_add, s, cause);
}

int store_schedule_remove(struct store *st, int64_t id, char **cause)
{
	return store_call(st, do_schedule_remove, &id, cause);
}

int store_schedule_list(struct store *st, struct store_schedule **out,
			size_t *n, char **cause)
{
	struct list_arg a = { NULL, 0 };
	int r = store_call(st, do_schedule_list, &a, cause);

	*out = a.v;
	*n = a.n;
	return r;
}

void store_schedules_free(struct store_schedule *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].target_kind);
		free(v[i].target);
	}
	free(v);
}

int store_schedule_set_next(struct store *st, int64_t id, uint64_t next_ns,
			    char **cause)
{
	int64_t v[2] = { id, (int64_t)next_ns };

	return store_call(st, do_schedule_set_next, v, cause);
}

int store_schedule_run(struct store *st, int64_t schedule_id,
		       uint64_t fired_ns, const char *outcome,
		       int64_t session_id, const char *message, char **cause)
{
	struct run_arg a = { schedule_id, session_id, fired_ns, outcome, message };

	return store_call(st, do_schedule_run, &a, cause);
}

