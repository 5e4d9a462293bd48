/*
 * Tests of the store against real SQLite files: what a session leaves in
 * the database (read back with plain SQL), counts over several batches, raw
 * samples decoded from their chunks, close, recovery after a crash,
 * schedules, retention, a full disk (a small tmpfs), a writer locked out of
 * the file, and a reader that queries while the writer works.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "intern.h"
#include "samplecodec.h"
#include "store.h"
#include "xalloc.h"

#define T0		1700000000000000000ull
#define TICK_NS		1001000ull	/* whole microseconds: decoded exactly */
#define NFUNCS		64
#define MAX_THREADS	16

static char funcs[NFUNCS][32];

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a fake sampler ------------------------------------------------------ */

struct expect_count {
	uint32_t thread_id, stack_id, n;
	char state;
};

struct fake {
	struct store *st;
	int64_t id;
	struct interner *in;
	uint32_t nthreads;
	/* What the database must end up holding. */
	struct expect_count *counts;
	size_t ncounts;
	struct codec_sample *samples[MAX_THREADS];	/* per thread, in order */
	size_t nsamples[MAX_THREADS];
	uint64_t ticks;
};

static int64_t begin(struct store *st, const char *name, int64_t schedule_id,
		     uint64_t started_ns)
{
	struct store_session_info info = {
		.name = name, .pid = 4242, .exe = "/usr/bin/app",
		.cmdline = "app --serve", .owner_uid = 1000, .requested_by = 0,
		.schedule_id = schedule_id, .started_ns = started_ns,
		.duration_s = 30, .rate_hz = 999, .mode = "wall",
	};
	char *cause = NULL;
	int64_t id = -1;

	assert_int_equal(store_session_begin(st, &info, &id, &cause), 0);
	assert_null(cause);
	assert_true(id > 0);
	return id;
}

static void fake_begin(struct fake *f, struct store *st, const char *name,
		       int64_t schedule_id, uint64_t started_ns)
{
	memset(f, 0, sizeof *f);
	f->st = st;
	f->id = begin(st, name, schedule_id, started_ns);
	f->in = interner_create();
}

static void fake_init(struct fake *f, struct store *st, const char *name)
{
	fake_begin(f, st, name, -1, T0);
}

static void fake_free(struct fake *f)
{
	interner_free(f->in);
	free(f->counts);
	for (int t = 0; t < MAX_THREADS; t++)
		free(f->samples[t]);
}

/* A stack of depth frames whose leaf is funcs[leaf]. */
static uint32_t fake_stack(struct fake *f, int leaf, int depth,
			   struct store_batch *b)
{
	struct perch_frame fr[MAX_THREADS + 3];

	for (int i = 0; i < depth; i++) {
		int fn = i == 0 ? leaf : (depth - i) % NFUNCS;

		fr[i] = (struct perch_frame){
			.addr = 0x1000 + (uint64_t)fn * 16, .module = "/usr/bin/app",
			.build_id = "0123abcd", .module_offset = 0x1000 + (uint64_t)fn * 16,
			.func = funcs[fn], .file = "app.c", .line = fn + 1,
		};
	}
	return interner_stack(f->in, fr, (size_t)depth, &b->defs);
}

static void expect(struct fake *f, const struct store_sample *s)
{
	struct codec_sample **v = &f->samples[s->thread_id];
	size_t i;

	for (i = 0; i < f->ncounts; i++)
		if (f->counts[i].thread_id == s->thread_id &&
		    f->counts[i].stack_id == s->stack_id &&
		    f->counts[i].state == s->state)
			break;
	if (i == f->ncounts) {
		f->counts = xreallocarray(f->counts, ++f->ncounts, sizeof *f->counts);
		f->counts[i] = (struct expect_count){ s->thread_id, s->stack_id, 0, s->state };
	}
	f->counts[i].n++;
	*v = xreallocarray(*v, f->nsamples[s->thread_id] + 1, sizeof **v);
	(*v)[f->nsamples[s->thread_id]++] = (struct codec_sample){
		s->time_ns, s->stack_id, s->state,
	};
}

/* ticks ticks of nthreads threads, as one batch. */
static void fake_ticks(struct fake *f, uint32_t nthreads, int ticks)
{
	struct store_batch *b = store_batch_new(f->id);
	const struct store_sample *room;

	/* Reserved room takes every sample without moving (hand_off's reuse). */
	store_batch_reserve(b, (size_t)nthreads * (size_t)ticks + 1);
	store_batch_reserve(b, 1);
	room = b->samples;
	for (; f->nthreads < nthreads; f->nthreads++) {
		struct store_thread t = { .id = f->nthreads, .pid = 4242,
					  .tid = 4242 + (pid_t)f->nthreads };

		snprintf(t.name, sizeof t.name, "worker-%u", f->nthreads);
		store_batch_add_thread(b, &t);
	}
	for (int k = 0; k < ticks; k++, f->ticks++)
		for (uint32_t t = 0; t < nthreads; t++) {
			struct store_sample s = {
				.thread_id = t,
				.stack_id = fake_stack(f, (int)((f->ticks + t) % 5) + 20,
						       3 + (int)t, b),
				.time_ns = T0 + f->ticks * TICK_NS,
				.state = (f->ticks + t) % 3 ? 'R' : 'S',
			};

			store_batch_add_sample(b, &s);
			expect(f, &s);
		}
	assert_ptr_equal(b->samples, room);
	assert_int_equal(b->samples_cap, (size_t)nthreads * (size_t)ticks + 1);
	b->ticks = f->ticks;
	b->thread_samples = f->ticks * nthreads;
	b->late_ticks = 3;
	b->eintr_caused = 2;
	store_append(f->st, b);
}

/* ---- reading back -------------------------------------------------------- */

static char dir[64];
static char dbpath[128];

static int setup_dir(void **state)
{
	(void)state;
	for (int i = 0; i < NFUNCS; i++)
		snprintf(funcs[i], sizeof funcs[i], "function_%d", i);
	strcpy(dir, "/tmp/perch-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/perch.db", dir);
	return 0;
}

static int teardown_dir(void **state)
{
	char path[160];

	(void)state;
	for (const char *sfx = ""; sfx != NULL;
	     sfx = !*sfx ? "-wal" : sfx[1] == 'w' ? "-shm" : NULL) {
		snprintf(path, sizeof path, "%s%s", dbpath, sfx);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

static sqlite3 *reader(const char *path)
{
	sqlite3 *db = NULL;
	char *cause = NULL;

	assert_int_equal(db_open(path, DB_READ_ONLY, &db, &cause), 0);
	return db;
}

static int64_t q1(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt *stmt;
	char *sql;
	va_list ap;
	int64_t v = -1;

	va_start(ap, fmt);
	assert_true(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	free(sql);
	return v;
}

static char *qtext(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt *stmt;
	char *sql, *v = NULL;
	va_list ap;

	va_start(ap, fmt);
	assert_true(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
		v = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	free(sql);
	return v;
}

/* A column (or an expression of columns) of session id. */
static int64_t sess_col(sqlite3 *db, int64_t id, const char *expr)
{
	return q1(db, "SELECT %s FROM sessions WHERE id = %lld", expr, (long long)id);
}

static void assert_status(sqlite3 *db, int64_t id, const char *status)
{
	char *s = qtext(db, "SELECT status FROM sessions WHERE id = %lld",
			(long long)id);

	assert_non_null(s);
	assert_string_equal(s, status);
	free(s);
}

static void check_counts(sqlite3 *db, const struct fake *f)
{
	for (size_t i = 0; i < f->ncounts; i++)
		assert_int_equal(q1(db, "SELECT samples FROM counts WHERE"
				    " session_id = %lld AND thread_id = %u AND"
				    " stack_id = %u AND state = '%c'",
				    (long long)f->id, f->counts[i].thread_id,
				    f->counts[i].stack_id, f->counts[i].state),
				 f->counts[i].n);
	assert_int_equal(q1(db, "SELECT count(*) FROM counts WHERE session_id = %lld",
			    (long long)f->id), f->ncounts);
}

struct decoded {
	const struct codec_sample *want;
	size_t n, i;
};

static int check_one(void *arg, const struct codec_sample *s)
{
	struct decoded *d = arg;

	assert_true(d->i < d->n);
	assert_int_equal(s->time_ns, d->want[d->i].time_ns);
	assert_int_equal(s->stack_id, d->want[d->i].stack_id);
	assert_int_equal(s->state, d->want[d->i].state);
	d->i++;
	return 0;
}

/* Every thread's chunks, in time order, decode to exactly its samples. */
static void check_chunks(sqlite3 *db, const struct fake *f)
{
	for (uint32_t t = 0; t < f->nthreads; t++) {
		struct decoded d = { f->samples[t], f->nsamples[t], 0 };
		sqlite3_stmt *stmt;
		char sql[200];

		snprintf(sql, sizeof sql, "SELECT first_ns, last_ns, samples, data"
			 " FROM sample_chunks WHERE session_id = %lld AND"
			 " thread_id = %u ORDER BY first_ns", (long long)f->id, t);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
		while (sqlite3_step(stmt) == SQLITE_ROW) {
			size_t first = d.i;
			long n = codec_decode(sqlite3_column_blob(stmt, 3),
					      (size_t)sqlite3_column_bytes(stmt, 3),
					      (uint64_t)sqlite3_column_int64(stmt, 0),
					      check_one, &d);

			assert_int_equal(n, sqlite3_column_int64(stmt, 2));
			assert_true(n <= 1000);
			assert_int_equal(sqlite3_column_int64(stmt, 1),
					 f->samples[t][d.i - 1].time_ns);
			assert_int_equal(sqlite3_column_int64(stmt, 0),
					 f->samples[t][first].time_ns);
		}
		sqlite3_finalize(stmt);
		assert_int_equal(d.i, d.n);
	}
}

static struct store *open_store(const char *path)
{
	struct store *st = NULL;
	char *cause = NULL;

	assert_int_equal(store_open(path, &st, &cause), 0);
	assert_null(cause);
	return st;
}

/* ---- tests --------------------------------------------------------------- */

static void test_session_rows(void **state)
{
	struct store *st = open_store(dbpath);
	struct fake f;
	sqlite3 *db;
	char *s;

	(void)state;
	fake_init(&f, st, "first");
	fake_ticks(&f, 2, 10);
	fake_ticks(&f, 3, 10);
	assert_int_equal(store_session_end(st, f.id, "complete", NULL, T0 + 5000000000ull,
					   123456789), 0);
	db = reader(dbpath);
	assert_status(db, f.id, "complete");
	assert_null(qtext(db, "SELECT error FROM sessions WHERE id = %lld", (long long)f.id));
	assert_int_equal(sess_col(db, f.id, "samples"), 20);
	assert_int_equal(sess_col(db, f.id, "thread_samples"), 60);
	assert_int_equal(sess_col(db, f.id, "late_samples + eintr_caused"), 5);
	assert_int_equal(sess_col(db, f.id, "target_cpu_ns"), 123456789);
	assert_int_equal(sess_col(db, f.id, "ended_ns - started_ns"), 5000000000ll);
	assert_int_equal(q1(db, "SELECT schedule_id IS NULL AND requested_by = 0 FROM sessions"), 1);
	s = qtext(db, "SELECT name || ' ' || exe || ' ' || cmdline || ' ' || mode FROM sessions");
	assert_string_equal(s, "first /usr/bin/app app --serve wall");
	free(s);
	assert_int_equal(q1(db, "SELECT count(*) FROM threads"), 3);
	s = qtext(db, "SELECT name FROM threads WHERE id = 2 AND tid = 4244");
	assert_string_equal(s, "worker-2");
	free(s);
	assert_int_equal(q1(db, "SELECT count(*) FROM modules"), 1);
	s = qtext(db, "SELECT path || ' ' || build_id FROM modules WHERE id = 1");
	assert_string_equal(s, "/usr/bin/app 0123abcd");
	free(s);
	/* Every node's frame exists, every parent is a node or the root. */
	assert_true(q1(db, "SELECT count(*) FROM stack_nodes") > 5);
	assert_int_equal(q1(db, "SELECT count(*) FROM stack_nodes n WHERE NOT EXISTS"
			    " (SELECT 1 FROM frames f WHERE f.id = n.frame_id) OR"
			    " (n.parent_id <> 0 AND NOT EXISTS (SELECT 1 FROM"
			    " stack_nodes p WHERE p.id = n.parent_id))"), 0);
	s = qtext(db, "SELECT func || ':' || file || ':' || line || ':' || inlined"
		  " || ':' || module_id || ':' || address FROM frames WHERE id = 1");
	assert_string_equal(s, "function_1:app.c:2:0:1:4112");
	free(s);
	check_counts(db, &f);
	check_chunks(db, &f);
	sqlite3_close(db);
	fake_free(&f);
	store_close(st);
}

/* Counts of one key from batches written in different transactions. */
static void test_counts_across_runs(void **state)
{
	struct store *st = open_store(dbpath);
	struct store_schedule *v;
	size_t n;
	struct fake f;
	char *cause = NULL;
	sqlite3 *db;

	(void)state;
	fake_init(&f, st, "runs");
	for (int i = 0; i < 4; i++) {
		fake_ticks(&f, 2, 7);
		fake_ticks(&f, 2, 5);
		/* A request makes the writer write what is queued, now. */
		assert_int_equal(store_schedule_list(st, &v, &n, &cause), 0);
		store_schedules_free(v, n);
	}
	assert_int_equal(store_session_end(st, f.id, "stopped", "by user", T0, -1), 0);
	db = reader(dbpath);
	assert_status(db, f.id, "stopped");
	assert_int_equal(sess_col(db, f.id, "target_cpu_ns IS NULL"), 1);
	check_counts(db, &f);
	check_chunks(db, &f);
	assert_int_equal(q1(db, "SELECT sum(samples) FROM counts WHERE session_id = %lld",
			    (long long)f.id), 96);
	sqlite3_close(db);
	fake_free(&f);
	store_close(st);
}

/* 2,500 samples of one thread: chunks of 1,000, 1,000 and 500. */
static void test_chunks(void **state)
{
	struct store *st = open_store(dbpath);
	struct fake f;
	sqlite3 *db;

	(void)state;
	fake_init(&f, st, "chunks");
	for (int i = 0; i < 5; i++)
		fake_ticks(&f, 1, 500);
	assert_int_equal(store_session_end(st, f.id, "complete", NULL, T0, -1), 0);
	db = reader(dbpath);
	assert_int_equal(q1(db, "SELECT count(*) FROM sample_chunks WHERE session_id = %lld",
			    (long long)f.id), 3);
	assert_int_equal(q1(db, "SELECT group_concat(samples) = '1000,1000,500' FROM"
			    " (SELECT samples FROM sample_chunks WHERE session_id = %lld"
			    " ORDER BY first_ns)", (long long)f.id), 1);
	/* Well under the 12 bytes a sample the storage aims at. */
	assert_true(q1(db, "SELECT sum(length(data)) FROM sample_chunks WHERE"
		       " session_id = %lld", (long long)f.id) < 2500 * 4);
	check_chunks(db, &f);
	sqlite3_close(db);
	fake_free(&f);
	store_close(st);
}

/* A session nobody ended is interrupted at close, its samples flushed. */
static void test_close_interrupts(void **state)
{
	struct store *st = open_store(dbpath);
	struct fake f;
	sqlite3 *db;

	(void)state;
	fake_init(&f, st, "left open");
	fake_ticks(&f, 2, 30);
	store_close(st);
	db = reader(dbpath);
	assert_status(db, f.id, "interrupted");
	check_counts(db, &f);
	check_chunks(db, &f);
	sqlite3_close(db);
	fake_free(&f);
}

/* A daemon that died left a session 'recording'. */
static void test_crash_recovery(void **state)
{
	sqlite3 *db = NULL;
	char *cause = NULL, *err;
	struct store *st;

	(void)state;
	assert_int_equal(db_open(dbpath, DB_READ_WRITE, &db, &cause), 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO sessions (id, pid, owner_uid,"
				      " started_ns, rate_hz, status) VALUES"
				      " (77, 1, 0, 5, 99, 'recording');"
				      "INSERT INTO sample_chunks VALUES (77, 0, 10, 20, 1, x'00')",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_store(dbpath);
	store_close(st);
	db = reader(dbpath);
	assert_status(db, 77, "interrupted");
	assert_int_equal(q1(db, "SELECT ended_ns FROM sessions WHERE id = 77"), 20);
	err = qtext(db, "SELECT error FROM sessions WHERE id = 77");
	assert_non_null(strstr(err, "stopped"));
	free(err);
	sqlite3_close(db);
}

static void test_schedules(void **state)
{
	struct store *st = open_store(dbpath);
	struct store_schedule a = {
		.name = "hourly", .target_kind = "exe", .target = "redis-server",
		.interval_s = 3600, .duration_s = 30, .rate_hz = 99,
		.children = true, .keep_count = 24, .keep_age_s = -1,
		.owner_uid = 1000, .created_ns = T0, .next_ns = T0 + 1, .enabled = true,
	};
	struct store_schedule b = {
		.target_kind = "pid", .target = "123", .interval_s = 60,
		.duration_s = 5, .rate_hz = 999, .keep_count = -1,
		.keep_age_s = 86400, .created_ns = T0, .next_ns = T0 + 2,
	};
	struct store_schedule bad = b, *v;
	char *cause = NULL;
	size_t n;
	int64_t sid;
	sqlite3 *db;

	(void)state;
	assert_int_equal(store_schedule_add(st, &a, &cause), 0);
	assert_int_equal(store_schedule_add(st, &b, &cause), 0);
	assert_true(a.id > 0 && b.id > a.id);
	bad.target_kind = "host";
	assert_int_equal(store_schedule_add(st, &bad, &cause), -EINVAL);
	assert_non_null(cause);
	free(cause);
	cause = NULL;
	assert_int_equal(store_schedule_set_next(st, b.id, T0 + 60, &cause), 0);
	assert_int_equal(store_schedule_set_next(st, 999, 1, &cause), -ENOENT);
	free(cause);
	cause = NULL;
	assert_int_equal(store_schedule_list(st, &v, &n, &cause), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "hourly");
	assert_string_equal(v[0].target_kind, "exe");
	assert_string_equal(v[0].target, "redis-server");
	assert_true(v[0].children && v[0].enabled);
	assert_int_equal(v[0].keep_count, 24);
	assert_true(v[0].keep_age_s < 0);
	assert_int_equal(v[0].owner_uid, 1000);
	assert_true(v[0].interval_s == 3600 && v[0].duration_s == 30 && v[0].rate_hz == 99);
	assert_null(v[1].name);
	assert_false(v[1].children || v[1].enabled);
	assert_int_equal(v[1].keep_count, -1);
	assert_true(v[1].keep_age_s == 86400);
	assert_int_equal(v[1].next_ns, T0 + 60);
	assert_int_equal(v[1].created_ns, T0);
	store_schedules_free(v, n);

	sid = begin(st, NULL, a.id, T0);
	assert_int_equal(store_session_end(st, sid, "complete", NULL, T0, -1), 0);
	assert_int_equal(store_schedule_run(st, a.id, T0, "started", sid, NULL, &cause), 0);
	assert_int_equal(store_schedule_run(st, a.id, T0 + 9, "skipped", -1,
					    "no process named redis-server", &cause), 0);
	assert_int_equal(store_schedule_run(st, a.id, T0, "exploded", -1, NULL, &cause), -EINVAL);
	free(cause);
	cause = NULL;
	db = reader(dbpath);
	assert_int_equal(q1(db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = %lld",
			    (long long)a.id), 2);
	assert_int_equal(q1(db, "SELECT session_id FROM schedule_runs WHERE outcome = 'started'"), sid);
	assert_int_equal(q1(db, "SELECT session_id IS NULL FROM schedule_runs WHERE outcome = 'skipped'"), 1);
	assert_int_equal(store_schedule_remove(st, a.id, &cause), 0);
	assert_int_equal(store_schedule_remove(st, a.id, &cause), -ENOENT);
	free(cause);
	assert_int_equal(q1(db, "SELECT count(*) FROM schedule_runs"), 0);
	/* The session stays, no longer tied to a schedule. */
	assert_int_equal(sess_col(db, sid, "schedule_id IS NULL"), 1);
	sqlite3_close(db);
	store_close(st);
}

/* A session of schedule sched started at started_ns, with some data. */
static int64_t old_session(struct store *st, int64_t sched, uint64_t started_ns)
{
	struct fake f;
	int64_t id;

	fake_begin(&f, st, "old", sched, started_ns);
	fake_ticks(&f, 8, 1000);
	assert_int_equal(store_session_end(st, f.id, "complete", NULL,
					   started_ns + 1, -1), 0);
	id = f.id;
	fake_free(&f);
	return id;
}

static off_t file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static bool session_exists(sqlite3 *db, int64_t id)
{
	return sess_col(db, id, "count(*)") == 1;
}

static void test_retention(void **state)
{
	struct store_schedule sch = {
		.target_kind = "exe", .target = "app", .interval_s = 1,
		.duration_s = 1, .rate_hz = 99, .keep_count = -1, .keep_age_s = -1,
		.created_ns = T0, .next_ns = T0,
	};
	struct store *st = open_store(dbpath);
	int64_t s[5], lone, rec;
	int deleted = -1;
	char *cause = NULL;
	int64_t pages;
	off_t size;
	sqlite3 *db;

	(void)state;
	assert_int_equal(store_schedule_add(st, &sch, &cause), 0);
	lone = old_session(st, -1, T0);
	for (int i = 0; i < 5; i++)
		s[i] = old_session(st, sch.id, T0 + (uint64_t)(i + 1) * 1000000000u);
	store_close(st);
	size = file_size(dbpath);
	st = open_store(dbpath);
	rec = begin(st, "recording", sch.id, T0 + 6000000000ull);
	db = reader(dbpath);
	pages = q1(db, "PRAGMA page_count");

	/* At most 3 of the schedule, the recording one included. */
	if (store_retention(st, sch.id, 3, -1, T0, &deleted, &cause) != 0)
		fail_msg("%s", cause);
	assert_int_equal(deleted, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(session_exists(db, s[i]), i >= 3);
	assert_true(session_exists(db, lone) && session_exists(db, rec));
	assert_int_equal(q1(db, "SELECT count(*) FROM counts WHERE session_id IN"
			    " (%lld, %lld, %lld)", (long long)s[0], (long long)s[1],
			    (long long)s[2]), 0);
	assert_int_equal(q1(db, "PRAGMA freelist_count"), 0);
	assert_true(q1(db, "PRAGMA page_count") < pages);

	/* Younger than 3.5 s at T0 + 7 s, over all sessions. */
	assert_int_equal(store_retention(st, -1, -1, 3.5, T0 + 7000000000ull,
					 &deleted, &cause), 0);
	assert_int_equal(deleted, 1);
	assert_false(session_exists(db, lone));
	assert_true(session_exists(db, s[3]) && session_exists(db, rec));

	assert_int_equal(store_session_delete(st, rec, &cause), -EBUSY);
	free(cause);
	cause = NULL;
	assert_int_equal(store_session_delete(st, 999999, &cause), -ENOENT);
	free(cause);
	cause = NULL;
	assert_int_equal(store_session_delete(st, s[3], &cause), 0);
	assert_false(session_exists(db, s[3]));
	sqlite3_close(db);
	store_close(st);
	/* rec was left recording: interrupted now, and deletable. */
	st = open_store(dbpath);
	assert_int_equal(store_session_delete(st, rec, &cause), 0);
	store_close(st);
	assert_true(file_size(dbpath) < size);
}

/* ---- a full disk --------------------------------------------------------- */

/* A batch of n frames with long names, all new: it fills a disk fast. */
static struct store_batch *big_batch(int64_t session_id, uint32_t *next_id,
				     uint32_t n)
{
	struct store_batch *b = store_batch_new(session_id);
	struct intern_defs *d = &b->defs;
	struct store_sample smp = { 0, 0, T0 + *next_id * TICK_NS, 'R' };
	char name[200];

	d->frames = xcalloc(n, sizeof *d->frames);
	d->nodes = xcalloc(n, sizeof *d->nodes);
	d->frames_cap = d->nodes_cap = n;
	for (uint32_t i = 0; i < n; i++, (*next_id)++) {
		snprintf(name, sizeof name, "%0150u_a_long_function_name", *next_id);
		d->frames[i] = (struct intern_frame){
			.id = *next_id, .module_id = -1, .address = *next_id,
			.func = xstrdup(name),
		};
		d->nodes[i] = (struct intern_node){ *next_id, 0, *next_id };
	}
	d->nframes = d->nnodes = n;
	smp.stack_id = *next_id - 1;
	store_batch_add_sample(b, &smp);
	return b;
}

/* Fills the file system of path but for room bytes. */
static void fill(const char *path, off_t room)
{
	static char zeros[4096];
	off_t size = 0;
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	setvbuf(fp, NULL, _IONBF, 0);
	while (fwrite(zeros, 1, sizeof zeros, fp) == sizeof zeros)
		size += (off_t)sizeof zeros;
	fclose(fp);
	assert_int_equal(truncate(path, size > room ? size - room : 0), 0);
}

static void check_full(struct store *st, const char *path, struct fake *ok)
{
	struct fake f;
	uint32_t next_id = 1;
	uint64_t worst = 0, t0 = now_ns(CLOCK_MONOTONIC);
	char *error = NULL;
	sqlite3 *db;

	fake_init(&f, st, "too big");
	while (!store_session_failed(st, f.id, &error)) {
		uint64_t a = now_ns(CLOCK_MONOTONIC), d;

		store_append(st, big_batch(f.id, &next_id, 2000));
		d = now_ns(CLOCK_MONOTONIC) - a;
		worst = d > worst ? d : worst;
		assert_true(now_ns(CLOCK_MONOTONIC) - t0 < 30000000000ull);
		usleep(50000);
	}
	/*
	 * The sampler never waited for the disk (a loose bound: a loaded
	 * machine may preempt anyone; test_append_locked_out is exact).
	 */
	assert_true(worst < 1000000000);
	assert_non_null(error);
	assert_non_null(strstr(error, "disk"));
	free(error);
	/* Later batches are dropped; the end keeps 'failed'. */
	store_append(st, big_batch(f.id, &next_id, 10));
	store_session_end(st, f.id, "complete", NULL, T0, -1);
	db = reader(path);
	check_counts(db, ok);
	check_chunks(db, ok);
	assert_status(db, ok->id, "complete");
	sqlite3_close(db);
	fake_free(&f);
}

/* The small file system test_disk_full fills; "" when it cannot mount. */
static char mnt[64];

static int mount_small(void **state)
{
	(void)state;
	setup_dir(state);
	strcpy(mnt, "/tmp/perch-full-XXXXXX");
	assert_non_null(mkdtemp(mnt));
	if (mount("perch-test", mnt, "tmpfs", 0, "size=2m") != 0) {
		rmdir(mnt);
		mnt[0] = '\0';
	}
	return 0;
}

/* Runs even when the test failed: never leave a mount behind. */
static int unmount_small(void **state)
{
	if (mnt[0] != '\0') {
		umount2(mnt, MNT_DETACH);
		rmdir(mnt);
	}
	return teardown_dir(state);
}

static void test_disk_full(void **state)
{
	char path[96], filler[96];
	struct store *st;
	struct fake ok, again;
	sqlite3 *db;
	char *err;

	(void)state;
	if (mnt[0] == '\0')
		skip();
	snprintf(path, sizeof path, "%s/perch.db", mnt);
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	st = open_store(path);
	fake_init(&ok, st, "fits");
	fake_ticks(&ok, 4, 300);
	assert_int_equal(store_session_end(st, ok.id, "complete", NULL, T0, -1), 0);
	fill(filler, 64 * 1024);
	check_full(st, path, &ok);

	unlink(filler);
	fake_init(&again, st, "after");
	fake_ticks(&again, 2, 100);
	assert_int_equal(store_session_end(st, again.id, "complete", NULL, T0, -1), 0);
	db = reader(path);
	assert_status(db, again.id, "complete");
	check_counts(db, &again);
	check_chunks(db, &again);
	assert_status(db, ok.id + 1, "failed");
	err = qtext(db, "SELECT error FROM sessions WHERE id = %lld", (long long)ok.id + 1);
	assert_non_null(strstr(err, "disk"));
	free(err);
	sqlite3_close(db);
	store_close(st);
	fake_free(&ok);
	fake_free(&again);
}

/*
 * Another connection holds the write lock for 2.5 s: the writer waits in
 * SQLite's busy handler, the sampler must not wait with it, and nothing is
 * lost once the lock goes.
 */
static void test_append_locked_out(void **state)
{
	struct store *st = open_store(dbpath);
	uint64_t t0, worst = 0;
	sqlite3 *locker;
	struct fake f;
	char *error;

	(void)state;
	fake_init(&f, st, "locked out");
	assert_int_equal(sqlite3_open_v2(dbpath, &locker, SQLITE_OPEN_READWRITE,
					 NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	t0 = now_ns(CLOCK_MONOTONIC);
	while (now_ns(CLOCK_MONOTONIC) - t0 < 2500000000ull) {
		uint64_t a = now_ns(CLOCK_MONOTONIC), d;

		fake_ticks(&f, 4, 25);
		d = now_ns(CLOCK_MONOTONIC) - a;
		worst = d > worst ? d : worst;
		usleep(20000);
	}
	/* The writer has been stuck since STORE_FLUSH_MS after the start. */
	assert_int_equal(q1(locker, "SELECT count(*) FROM counts"), 0);
	assert_int_equal(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(locker);
	assert_true(worst < 500000000);
	assert_false(store_session_failed(st, f.id, &error));
	assert_int_equal(store_session_end(st, f.id, "complete", NULL, T0, -1), 0);
	locker = reader(dbpath);
	assert_status(locker, f.id, "complete");
	check_counts(locker, &f);
	check_chunks(locker, &f);
	sqlite3_close(locker);
	fake_free(&f);
	store_close(st);
}

/* ---- a reader during heavy writing --------------------------------------- */

static atomic_bool writing;

static void *produce(void *arg)
{
	struct fake *f = arg;

	while (atomic_load(&writing)) {
		fake_ticks(f, MAX_THREADS, 50);
		usleep(5000);
	}
	return NULL;
}

static void test_concurrent_reader(void **state)
{
	struct store *st = open_store(dbpath);
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	int64_t last = 0, queries = 0;
	pthread_t producer;
	struct fake f;
	sqlite3 *db;

	(void)state;
	fake_init(&f, st, "busy");
	db = reader(dbpath);
	atomic_store(&writing, true);
	assert_int_equal(pthread_create(&producer, NULL, produce, &f), 0);
	while (now_ns(CLOCK_MONOTONIC) - t0 < 3000000000ull) {
		int64_t n = q1(db, "SELECT sum(c.samples) FROM counts c JOIN"
			       " stack_nodes n ON n.session_id = c.session_id AND"
			       " n.id = c.stack_id JOIN frames fr ON fr.session_id ="
			       " n.session_id AND fr.id = n.frame_id WHERE"
			       " c.session_id = %lld", (long long)f.id);

		/* q1 asserts every statement; the sum only grows. */
		assert_true(n >= last || n == -1);
		last = n > last ? n : last;
		queries++;
	}
	atomic_store(&writing, false);
	pthread_join(producer, NULL);
	assert_int_equal(store_session_end(st, f.id, "complete", NULL, T0, -1), 0);
	assert_true(queries > 50);
	assert_true(last > 0);
	check_counts(db, &f);
	check_chunks(db, &f);
	sqlite3_close(db);
	fake_free(&f);
	store_close(st);
}

#define IN_DIR(test) cmocka_unit_test_setup_teardown(test, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
		IN_DIR(test_session_rows),
		IN_DIR(test_counts_across_runs),
		IN_DIR(test_chunks),
		IN_DIR(test_close_interrupts),
		IN_DIR(test_crash_recovery),
		IN_DIR(test_schedules),
		IN_DIR(test_retention),
		cmocka_unit_test_setup_teardown(test_disk_full, mount_small,
						unmount_small),
		IN_DIR(test_append_locked_out),
		IN_DIR(test_concurrent_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
