/*
 * Tests of db_open: creating, reopening and upgrading perch's database,
 * refusing (and never touching) files that are not ours, newer, corrupt or
 * not permitted, and reading while another connection writes; and of
 * db_open_image, which must judge a file's bytes as db_open judges the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "xalloc.h"

#define NOBODY 65534

struct fixture {
	char dir[64];
	char *path;		/* dir/perch.db, not created */
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);

	strcpy(f->dir, "/tmp/perch-test-db-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->path = xasprintf("%s/perch.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char *p = xasprintf("%s/%s", f->dir, e->d_name);

		if (e->d_name[0] != '.')
			unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

/* A plain SQLite connection, to make files db_open must judge. */
static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static sqlite3 *open_ok(const char *path, enum db_mode mode)
{
	sqlite3 *db;
	char *cause;
	int r = db_open(path, mode, &db, &cause);

	if (r != 0)
		fail_msg("db_open: %d %s", r, cause);
	assert_null(cause);
	return db;
}

static void open_fails(const char *path, enum db_mode mode, int err,
		       const char *msg)
{
	sqlite3 *db = (sqlite3 *)&db;	/* not NULL: db_open must clear it */
	char *cause;

	assert_int_equal(db_open(path, mode, &db, &cause), err);
	assert_null(db);
	assert_non_null(cause);
	if (strstr(cause, msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", cause, msg);
	free(cause);
}

static void insert_session(sqlite3 *db, int pid)
{
	char *sql = xasprintf("INSERT INTO sessions (pid, owner_uid, started_ns,"
			      " rate_hz, status, exe) VALUES (%d, 0, 0, 99,"
			      " 'complete', hex(randomblob(300)))", pid);

	exec_ok(db, sql);
	free(sql);
}

static void make_perch_db(const char *path, int sessions)
{
	sqlite3 *db = open_ok(path, DB_READ_WRITE);

	exec_ok(db, "BEGIN");
	for (int i = 0; i < sessions; i++)
		insert_session(db, i);
	exec_ok(db, "COMMIT");
	sqlite3_close(db);
}

static bool exists(const char *path, const char *suffix)
{
	char *p = xasprintf("%s%s", path, suffix);
	bool r = access(p, F_OK) == 0;

	free(p);
	return r;
}

static void remove_file(const char *path, const char *suffix)
{
	char *p = xasprintf("%s%s", path, suffix);

	assert_int_equal(unlink(p), 0);
	free(p);
}

static struct stat file_stat(const char *path, const char *suffix)
{
	char *p = xasprintf("%s%s", path, suffix);
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	free(p);
	return st;
}

static mode_t file_mode(const char *path, const char *suffix)
{
	return file_stat(path, suffix).st_mode & 07777;
}

/* A file's bytes and times, to prove that a refusal left it alone. */
struct snapshot {
	char *bytes;
	size_t len;
	struct timespec mtime, ctime;
};

static struct snapshot take(const char *path)
{
	struct snapshot s = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	s.len = (size_t)st.st_size;
	s.bytes = xmalloc(s.len + 1);
	assert_int_equal(read(fd, s.bytes, s.len + 1), (ssize_t)s.len);
	s.mtime = st.st_mtim;
	s.ctime = st.st_ctim;
	close(fd);
	return s;
}

static void assert_unchanged(const char *path, struct snapshot *before)
{
	struct snapshot now = take(path);

	assert_int_equal(now.len, before->len);
	assert_memory_equal(now.bytes, before->bytes, now.len);
	assert_int_equal(now.mtime.tv_sec, before->mtime.tv_sec);
	assert_int_equal(now.mtime.tv_nsec, before->mtime.tv_nsec);
	assert_int_equal(now.ctime.tv_sec, before->ctime.tv_sec);
	assert_int_equal(now.ctime.tv_nsec, before->ctime.tv_nsec);
	free(now.bytes);
	free(before->bytes);
}

/* db_open_image on the bytes of path, named path. */
static void image_fails(const struct snapshot *file, const char *path, int err,
			const char *msg)
{
	sqlite3 *db = (sqlite3 *)&db;
	char *cause;

	assert_int_equal(db_open_image(file->bytes, file->len, path, &db, &cause), err);
	assert_null(db);
	assert_non_null(cause);
	if (strstr(cause, msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", cause, msg);
	free(cause);
}

/* Read-write, read-only, and its bytes as an image. */
static void refused_every_way(const char *path, int err, const char *msg)
{
	struct snapshot before = take(path);

	open_fails(path, DB_READ_WRITE, err, msg);
	open_fails(path, DB_READ_ONLY, err, msg);
	image_fails(&before, path, err, msg);
	assert_unchanged(path, &before);
}

static void test_create(void **state)
{
	static const char *const tables[] = {
		"schedules", "schedule_runs", "sessions", "threads", "modules",
		"frames", "stack_nodes", "counts", "sample_chunks",
	};
	struct fixture *f = *state;
	mode_t old = umask(0);
	sqlite3 *db = open_ok(f->path, DB_READ_WRITE);

	umask(old);
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		char *sql = xasprintf("SELECT count(*) FROM sqlite_schema WHERE"
				      " type = 'table' AND name = '%s'", tables[i]);

		assert_int_equal(query_int(db, sql), 1);
		free(sql);
	}
	assert_int_equal(query_int(db, "PRAGMA application_id"), PERCH_APPLICATION_ID);
	assert_int_equal(query_int(db, "PRAGMA user_version"), PERCH_SCHEMA_VERSION);
	assert_int_equal(query_int(db, "PRAGMA auto_vacuum"), 2);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 1);
	assert_int_equal(query_int(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
	insert_session(db, 1);
	/* Writing in WAL mode has made the side files: private as well. */
	assert_int_equal(file_mode(f->path, ""), 0600);
	assert_int_equal(file_mode(f->path, "-wal"), 0600);
	assert_int_equal(file_mode(f->path, "-shm"), 0600);
	sqlite3_close(db);

	/* Kept on close, for readers who cannot create them; WAL emptied. */
	assert_int_equal(file_mode(f->path, "-wal"), 0600);
	assert_int_equal(file_mode(f->path, "-shm"), 0600);
	assert_int_equal(file_stat(f->path, "-wal").st_size, 0);
	db = raw_open(f->path);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 1);
	sqlite3_close(db);
}

struct racer {
	const char *path;
	pthread_barrier_t *start;
	int r;
	char *cause;
};

static void *race_open(void *arg)
{
	struct racer *rc = arg;
	sqlite3 *db;

	pthread_barrier_wait(rc->start);
	rc->r = db_open(rc->path, DB_READ_WRITE, &db, &rc->cause);
	if (rc->r == 0)
		sqlite3_close(db);
	return NULL;
}

/* Two daemons creating the same file at once: both end up with it, once. */
static void test_create_race(void **state)
{
	struct fixture *f = *state;

	for (int round = 0; round < 40; round++) {
		char *path = xasprintf("%s/race%d.db", f->dir, round);
		struct racer rc[2] = { { path, NULL, 0, NULL }, { path, NULL, 0, NULL } };
		pthread_barrier_t start;
		pthread_t threads[2];
		sqlite3 *db;

		pthread_barrier_init(&start, NULL, 2);
		for (int i = 0; i < 2; i++) {
			rc[i].start = &start;
			assert_int_equal(pthread_create(&threads[i], NULL, race_open, &rc[i]), 0);
		}
		for (int i = 0; i < 2; i++) {
			pthread_join(threads[i], NULL);
			if (rc[i].r != 0)
				fail_msg("round %d: %d %s", round, rc[i].r, rc[i].cause);
		}
		pthread_barrier_destroy(&start);
		db = open_ok(path, DB_READ_ONLY);
		assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema"
					   " WHERE name = 'sessions'"), 1);
		assert_int_equal(query_int(db, "PRAGMA auto_vacuum"), 2);
		sqlite3_close(db);
		free(path);
	}
}

static void test_reopen(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	make_perch_db(f->path, 3);
	db = open_ok(f->path, DB_READ_WRITE);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 3);
	insert_session(db, 4);
	sqlite3_close(db);

	db = open_ok(f->path, DB_READ_ONLY);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 4);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM sessions", NULL, NULL, NULL),
			 SQLITE_READONLY);
	sqlite3_close(db);
}

/*
 * A file's bytes opened in memory: read as the file is read, never written;
 * the WAL-mode header of a file perchd wrote does not stop it.
 */
static void test_image(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("no database at %s (the file is empty)", f->path);
	struct snapshot file, empty = { 0 };
	sqlite3 *db;
	char *cause;

	make_perch_db(f->path, 3);
	file = take(f->path);
	assert_true(file.len > 19);
	assert_int_equal(file.bytes[18], 2);
	assert_int_equal(db_open_image(file.bytes, file.len, f->path, &db, &cause), 0);
	assert_null(cause);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 3);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM sessions", NULL, NULL, NULL),
			 SQLITE_READONLY);
	sqlite3_close(db);
	assert_unchanged(f->path, &file);

	empty.bytes = "";
	image_fails(&empty, f->path, -ENOENT, msg);
	free(msg);
}

static void test_foreign_keys_cascade(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	make_perch_db(f->path, 1);
	db = open_ok(f->path, DB_READ_WRITE);
	exec_ok(db, "INSERT INTO threads VALUES (1, 0, 10, 10, 'main')");
	assert_int_equal(sqlite3_exec(db, "INSERT INTO threads VALUES (99, 0, 10, 10, 'x')",
				      NULL, NULL, NULL), SQLITE_CONSTRAINT);
	exec_ok(db, "DELETE FROM sessions");
	assert_int_equal(query_int(db, "SELECT count(*) FROM threads"), 0);
	sqlite3_close(db);
}

static void test_readonly_missing(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("no database at %s", f->path);
	int fd;

	open_fails(f->path, DB_READ_ONLY, -ENOENT, msg);
	assert_false(exists(f->path, ""));

	/* An empty file is no database either, until perchd creates one in it. */
	fd = open(f->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	open_fails(f->path, DB_READ_ONLY, -ENOENT, msg);
	sqlite3_close(open_ok(f->path, DB_READ_WRITE));
	sqlite3_close(open_ok(f->path, DB_READ_ONLY));
	free(msg);
}

static void test_missing_directory(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/no/such/perch.db", f->dir);

	open_fails(path, DB_READ_WRITE, -ENOENT, "No such file or directory");
	open_fails(f->dir, DB_READ_WRITE, -EISDIR, f->dir);
	open_fails(f->dir, DB_READ_ONLY, -EINVAL, "not a regular file");
	free(path);
}

static void test_newer_refused(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("%s was written by a newer perch (schema %d; this"
			      " perch reads up to %d)", f->path,
			      PERCH_SCHEMA_VERSION + 1, PERCH_SCHEMA_VERSION);
	char *bump = xasprintf("PRAGMA user_version = %d", PERCH_SCHEMA_VERSION + 1);
	sqlite3 *db;

	make_perch_db(f->path, 10);
	db = raw_open(f->path);
	exec_ok(db, bump);
	sqlite3_close(db);
	refused_every_way(f->path, -EPROTO, msg);
	free(bump);
	free(msg);
}

static void test_foreign_refused(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("%s is not a perch database", f->path);
	sqlite3 *db = raw_open(f->path);

	exec_ok(db, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')");
	sqlite3_close(db);
	refused_every_way(f->path, -EINVAL, msg);

	/* Another program's id, in WAL mode, and no tables at all. */
	unlink(f->path);
	db = raw_open(f->path);
	exec_ok(db, "PRAGMA journal_mode = WAL; PRAGMA application_id = 42");
	sqlite3_close(db);
	refused_every_way(f->path, -EINVAL, msg);
	free(msg);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_garbage_refused(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("%s is corrupt or not a database", f->path);
	unsigned char junk[8192];

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 7919 >> 3);
	write_file(f->path, junk, sizeof junk);
	refused_every_way(f->path, -EIO, msg);
	write_file(f->path, "hello\n", 6);
	refused_every_way(f->path, -EIO, msg);
	/* The right magic, nothing sensible after it. */
	memcpy(junk, "SQLite format 3", 16);
	write_file(f->path, junk, sizeof junk);
	refused_every_way(f->path, -EIO, msg);
	/* SQLite never got far enough to make its side files. */
	assert_false(exists(f->path, "-wal"));
	assert_false(exists(f->path, "-shm"));
	free(msg);
}

static void test_truncated_refused(void **state)
{
	struct fixture *f = *state;
	char *msg = xasprintf("%s is corrupt or not a database", f->path);
	struct stat st;

	make_perch_db(f->path, 2000);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size > 100 * 4096);
	assert_int_equal(truncate(f->path, st.st_size / 2), 0);
	refused_every_way(f->path, -EIO, msg);
	assert_int_equal(truncate(f->path, 4096), 0);
	refused_every_way(f->path, -EIO, msg);
	assert_int_equal(truncate(f->path, 60), 0);
	refused_every_way(f->path, -EIO, msg);
	free(msg);
}

/*
 * A perch file at schema version 0, which holds nothing: upgrading it runs
 * every migration step in order, the path a real older file takes.
 */
static void test_older_upgraded(void **state)
{
	struct fixture *f = *state;
	char *set_id = xasprintf("PRAGMA application_id = %d", PERCH_APPLICATION_ID);
	sqlite3 *db = raw_open(f->path);

	exec_ok(db, set_id);
	sqlite3_close(db);

	/* Readers take older files as they are. */
	db = open_ok(f->path, DB_READ_ONLY);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 0);
	sqlite3_close(db);

	db = open_ok(f->path, DB_READ_WRITE);
	assert_int_equal(query_int(db, "PRAGMA user_version"), PERCH_SCHEMA_VERSION);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema"
				   " WHERE name = 'sample_chunks'"), 1);
	sqlite3_close(db);
	free(set_id);
}

/*
 * A version-1 file with sessions and a schedule in it (made by dropping
 * what versions 2 and 3 added): the upgrade keeps every row and adds the
 * sampling columns, empty (NULL: not known) for sessions, the defaults for
 * schedules, and a reader of the current version reads the old file as it
 * is.
 */
static void test_version_1_upgraded(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	make_perch_db(f->path, 20);
	db = raw_open(f->path);
	exec_ok(db, "INSERT INTO schedules (target_kind, target, interval_s, duration_s,"
		" rate_hz, owner_uid, created_ns, next_ns) VALUES ('exe', 'redis-server',"
		" 3600, 30, 99, 0, 0, 0);"
		"ALTER TABLE schedules DROP COLUMN max_stops;"
		"ALTER TABLE schedules DROP COLUMN ptrace_only;"
		"ALTER TABLE sessions DROP COLUMN sampling;"
		"ALTER TABLE sessions DROP COLUMN max_stops;"
		"ALTER TABLE sessions DROP COLUMN kernel_samples;"
		"ALTER TABLE sessions DROP COLUMN stopped_samples;"
		"PRAGMA user_version = 1");
	sqlite3_close(db);

	db = open_ok(f->path, DB_READ_ONLY);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 20);
	sqlite3_close(db);

	db = open_ok(f->path, DB_READ_WRITE);
	assert_int_equal(PERCH_SCHEMA_VERSION, 3);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 3);
	assert_int_equal(db_schema_version(db), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions"), 20);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE sampling IS NULL"
				   " AND max_stops IS NULL AND kernel_samples = 0"
				   " AND stopped_samples = 0"), 20);
	/* Only the two ways perch samples. */
	assert_int_not_equal(sqlite3_exec(db, "UPDATE sessions SET sampling = 'other'",
					  NULL, NULL, NULL), SQLITE_OK);
	/* Version 3: the schedule samples as perch record does by default. */
	assert_int_equal(query_int(db, "SELECT count(*) FROM schedules WHERE max_stops IS NULL"
				   " AND ptrace_only = 0"), 1);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE schedules SET max_stops = 0",
					  NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE schedules SET ptrace_only = 2",
					  NULL, NULL, NULL), SQLITE_OK);
	exec_ok(db, "UPDATE schedules SET max_stops = -1, ptrace_only = 1");
	sqlite3_close(db);
}

struct writer {
	const char *path;
	atomic_bool stop;
	atomic_long begun;	/* rows in transactions begun */
	atomic_long committed;	/* rows in transactions committed */
	int error;
	char *cause;
};

/* Inserts sessions, a few per transaction, until told to stop. */
static void *write_loop(void *arg)
{
	struct writer *w = arg;
	sqlite3 *db;
	long n = 0;

	if ((w->error = db_open(w->path, DB_READ_WRITE, &db, &w->cause)) < 0)
		return NULL;
	while (!atomic_load(&w->stop) && w->error == 0) {
		char *sql = xasprintf("BEGIN; INSERT INTO sessions (pid, owner_uid,"
				      " started_ns, rate_hz, status, exe) VALUES"
				      " (%ld, 0, 0, 99, 'recording', hex(randomblob(2000)));"
				      " INSERT INTO sessions (pid, owner_uid, started_ns,"
				      " rate_hz, status) VALUES (%ld, 0, 0, 99, 'recording');"
				      " COMMIT", n, n + 1);

		atomic_store(&w->begun, n + 2);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			w->error = sqlite3_errcode(db);
			w->cause = xstrdup(sqlite3_errmsg(db));
		}
		free(sql);
		n += 2;
		atomic_store(&w->committed, n);
		usleep(300);
	}
	sqlite3_close(db);
	return NULL;
}

/*
 * Readers, fresh and long-lived, see the writer's commits as they land (in
 * pairs: never half a transaction) and never "database is locked", through
 * the writer's automatic checkpoints.
 */
static void test_read_while_writing(void **state)
{
	struct fixture *f = *state;
	struct writer w = { .path = f->path };
	long last = 0, seen = 0;
	pthread_t thread;
	sqlite3 *kept;

	make_perch_db(f->path, 0);
	kept = open_ok(f->path, DB_READ_ONLY);
	assert_int_equal(pthread_create(&thread, NULL, write_loop, &w), 0);
	for (int i = 0; i < 600 && w.error == 0; i++) {
		sqlite3 *db = i % 2 ? kept : open_ok(f->path, DB_READ_ONLY);
		long n = (long)query_int(db, "SELECT count(*) FROM sessions");

		assert_true(n % 2 == 0);
		assert_true(n >= last);
		assert_true(n <= atomic_load(&w.begun));
		if (n != last)
			seen++;
		last = n;
		if (db != kept)
			sqlite3_close(db);
		usleep(1000);
	}
	atomic_store(&w.stop, true);
	pthread_join(thread, NULL);
	if (w.error != 0)
		fail_msg("writer: %d %s", w.error, w.cause);
	print_message("%ld commits, %ld distinct counts seen by readers\n",
		      atomic_load(&w.committed) / 2, seen);
	assert_true(seen > 10);
	assert_int_equal(query_int(kept, "SELECT count(*) FROM sessions"),
			 atomic_load(&w.committed));
	sqlite3_close(kept);
}

/* Runs fn as user nobody in a child; the child's exit status says how it went. */
static int as_nobody(void (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(100);
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* In the child: exits with 1 + the step that went wrong, and says why. */
static void expect_open(const char *path, enum db_mode mode, int err, int step)
{
	sqlite3 *db;
	char *cause;
	int r = db_open(path, mode, &db, &cause);

	if (r != err) {
		fprintf(stderr, "step %d: db_open gave %d (%s), wanted %d\n", step,
			r, cause ? cause : "", err);
		_exit(1 + step);
	}
	if (r == 0)
		sqlite3_close(db);
	free(cause);
}

static void denied_steps(void *arg)
{
	struct fixture *f = arg;
	char *fresh = xasprintf("%s/new.db", f->dir);

	expect_open(f->path, DB_READ_WRITE, -EACCES, 0);
	expect_open(f->path, DB_READ_ONLY, -EACCES, 1);
	expect_open(fresh, DB_READ_WRITE, -EACCES, 2);
	free(fresh);
}

static void test_permission_denied(void **state)
{
	struct fixture *f = *state;

	if (geteuid() != 0)
		skip();
	make_perch_db(f->path, 1);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(as_nobody(denied_steps, f), 0);
	assert_false(exists(f->dir, "/new.db"));
}

static void chmod_all(const char *path, mode_t mode)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };

	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", path, suffixes[i]);

		assert_int_equal(chmod(p, mode), 0);
		free(p);
	}
}

/* In the child: read while the parent writes, through a read-only -shm. */
static void read_steps(void *arg)
{
	struct fixture *f = arg;
	long last = -1, changes = 0;

	for (int i = 0; i < 300; i++) {
		sqlite3 *db;
		char *cause;
		sqlite3_stmt *stmt;
		long n;

		if (db_open(f->path, DB_READ_ONLY, &db, &cause) < 0) {
			fprintf(stderr, "read %d: %s\n", i, cause);
			_exit(1);
		}
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sessions", -1, &stmt,
				       NULL) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_ROW) {
			fprintf(stderr, "read %d: %s\n", i, sqlite3_errmsg(db));
			_exit(2);
		}
		n = sqlite3_column_int64(stmt, 0);
		sqlite3_finalize(stmt);
		sqlite3_close(db);
		if (n < last)
			_exit(3);
		changes += n != last;
		last = n;
		usleep(2000);
	}
	if (changes < 10)
		_exit(4);
}

static void missing_side_files_step(void *arg)
{
	struct fixture *f = arg;

	expect_open(f->path, DB_READ_ONLY, -EACCES, 0);
}

/*
 * A database readable but not writable to a client, as an administrator
 * might share one: the client reads through the -shm the daemon keeps,
 * and gets a clear refusal if the side files are gone.
 */
static void test_readonly_not_owner(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	pid_t pid;
	int status = -1, n = 0;

	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(f->dir, 0755), 0);
	make_perch_db(f->path, 1);
	chmod_all(f->path, 0644);

	db = open_ok(f->path, DB_READ_WRITE);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(100);
		read_steps(f);
		_exit(0);
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		insert_session(db, n++);
		usleep(1000);
	}
	sqlite3_close(db);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	remove_file(f->path, "-wal");
	remove_file(f->path, "-shm");
	assert_int_equal(as_nobody(missing_side_files_step, f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_keys_cascade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_older_upgraded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_1_upgraded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_while_writing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permission_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_not_owner, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
