/*
 * db: opening perch's database.  Versioning and migration rules are in
 * schema/README.md.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate-2_sql.h"
#include "migrate-3_sql.h"
#include "schema_sql.h"
#include "xalloc.h"

/* Long enough to ride out a checkpoint or another perch creating the file. */
#define BUSY_TIMEOUT_MS 5000
/* A WAL grown past this (bytes) is cut back after each checkpoint. */
#define WAL_LIMIT "67108864"

/*
 * steps[v] takes a database from schema version v to v + 1 inside the
 * transaction that opens it read-write.  Version 0 is an empty file, so
 * creating a database is migrating it from version 0.  A new schema version
 * is one more entry here and PERCH_SCHEMA_VERSION + 1; released steps and
 * schema.sql never change.
 */
static const char *const steps[] = {
	(const char *)schema_sql,
	(const char *)migrate_2_sql,
	(const char *)migrate_3_sql,
};
_Static_assert(sizeof steps / sizeof steps[0] == PERCH_SCHEMA_VERSION,
	       "one migration step per schema version");

/*
 * What a file holds, read through SQLite (which sees a WAL's contents too).
 * A file with no schema objects, no application id and no version is empty:
 * a new file, or one SQLite created but nobody put anything in.
 */
struct db_info {
	int64_t app_id;
	int64_t version;
	int64_t objects;
};

static bool is_empty(const struct db_info *info)
{
	return info->objects == 0 && info->app_id == 0 && info->version == 0;
}

static int errno_of(sqlite3 *db, int rc)
{
	int err = sqlite3_system_errno(db);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -EIO;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
		return err == EACCES || err == EPERM || err == EROFS ? -EACCES :
		       err == ENOENT ? -ENOENT : -EIO;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Maps a failed SQLite call to a negative errno and a message about path. */
static int fail(sqlite3 *db, int rc, const char *path, char **cause)
{
	int r = errno_of(db, rc), err = sqlite3_system_errno(db);

	/*
	 * A WAL reader needs -wal and -shm.  When they are missing and the
	 * directory is not writable, SQLite says "attempt to write a readonly
	 * database", which misleads.
	 */
	if (sqlite3_extended_errcode(db) == SQLITE_READONLY_DIRECTORY) {
		*cause = xasprintf("cannot read %s: %s-wal and %s-shm are missing"
				   " and this user cannot create them in its"
				   " directory (perchd keeps them once it has"
				   " opened the database)", path, path, path);
		return -EACCES;
	}
	if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
		*cause = xasprintf("%s is corrupt or not a database: %s", path,
				   sqlite3_errmsg(db));
	else if ((rc & 0xff) == SQLITE_CANTOPEN && err != 0)
		*cause = xasprintf("%s: %s: %s", path, sqlite3_errmsg(db),
				   strerror(err));
	else
		*cause = xasprintf("%s: %s", path, sqlite3_errmsg(db));
	return r;
}

/*
 * Checks that path can be opened as asked before SQLite sees it: SQLite
 * would quietly fall back to read-only, or report a bare "unable to open".
 * A missing file is created for writing with mode 0600, exactly (umask may
 * clear bits we need): SQLite gives the -wal and -shm files the database
 * file's mode, so they are private too.
 */
static int check_file(const char *path, enum db_mode mode, char **cause)
{
	struct stat st;
	int fd, r = 0;

	if (mode == DB_READ_ONLY) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} else {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 && fchmod(fd, 0600) < 0)
			r = -errno;
		else if (fd < 0 && errno == EEXIST)
			fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT && mode == DB_READ_ONLY) {
			*cause = xasprintf("no database at %s", path);
			return r;
		}
		*cause = xasprintf("%s: %s", path, strerror(-r));
		return r == -EPERM ? -EACCES : r;
	}
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r < 0)
		*cause = xasprintf("%s: %s", path, strerror(-r));
	else if (!S_ISREG(st.st_mode))
		*cause = xasprintf("%s is not a regular file", path), r = -EINVAL;
	/* Closing any descriptor drops the process's locks: do it before SQLite. */
	close(fd);
	return r;
}

static int read_info(sqlite3 *db, const char *path, struct db_info *info,
		     char **cause)
{
	static const char sql[] =
		"SELECT (SELECT application_id FROM pragma_application_id),"
		" (SELECT user_version FROM pragma_user_version),"
		" (SELECT count(*) FROM sqlite_schema)";
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		info->app_id = sqlite3_column_int64(stmt, 0);
		info->version = sqlite3_column_int64(stmt, 1);
		info->objects = sqlite3_column_int64(stmt, 2);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_OK ? 0 : fail(db, rc, path, cause);
}

/* Whether a file holding info may be opened in mode, and why not. */
static int check_info(const struct db_info *info, const char *path,
		      enum db_mode mode, char **cause)
{
	if (is_empty(info)) {
		if (mode == DB_READ_WRITE)
			return 0;
		*cause = xasprintf("no database at %s (the file is empty)", path);
		return -ENOENT;
	}
	if (info->app_id != PERCH_APPLICATION_ID) {
		*cause = xasprintf("%s is not a perch database", path);
		return -EINVAL;
	}
	if (info->version > PERCH_SCHEMA_VERSION) {
		*cause = xasprintf("%s was written by a newer perch (schema %lld;"
				   " this perch reads up to %d)", path,
				   (long long)info->version, PERCH_SCHEMA_VERSION);
		return -EPROTO;
	}
	return 0;
}

static int exec(sqlite3 *db, const char *sql, const char *path, char **cause)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(db, rc, path, cause);
}

/*
 * Runs a check pragma that answers "ok" or rows of problems, such as
 * quick_check(1) or foreign_key_check; the first problem becomes *cause,
 * "PATH <what> <problem>".
 */
static int check_pragma(sqlite3 *db, const char *sql, const char *path,
			const char *what, char **cause)
{
	sqlite3_stmt *stmt;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *first = (const char *)sqlite3_column_text(stmt, 0);

		if (first == NULL || strcmp(first, "ok") != 0) {
			*cause = xasprintf("%s %s %s", path, what,
					   first ? first : "?");
			r = -EIO;
		}
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		r = fail(db, rc, path, cause);
	sqlite3_finalize(stmt);
	return r;
}

/*
 * Brings an empty or older file to PERCH_SCHEMA_VERSION in one write
 * transaction.  The file is examined again inside it: another perch may
 * have created or upgraded it since we looked.
 */
static int upgrade(sqlite3 *db, const char *path, char **cause)
{
	struct db_info info;
	char *ids;
	int r;

	if ((r = exec(db, "BEGIN IMMEDIATE", path, cause)) < 0)
		return r;
	if ((r = read_info(db, path, &info, cause)) < 0 ||
	    (r = check_info(&info, path, DB_READ_WRITE, cause)) < 0)
		goto rollback;
	if (info.version == PERCH_SCHEMA_VERSION)
		goto rollback;	/* nothing to write, and r == 0 */
	/* Migrating reads and rewrites much of the file anyway: check it first. */
	if (!is_empty(&info) &&
	    (r = check_pragma(db, "PRAGMA quick_check(1)", path,
			      "is corrupt or not a database: quick_check:", cause)) < 0)
		goto rollback;
	for (int64_t v = info.version; v < PERCH_SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(db, steps[v], NULL, NULL, NULL);

		if (rc != SQLITE_OK) {
			r = errno_of(db, rc);
			*cause = xasprintf("cannot upgrade %s from schema %lld to %lld: %s",
					   path, (long long)v, (long long)v + 1,
					   sqlite3_errmsg(db));
			goto rollback;
		}
	}
	/* Steps run with foreign keys off (they may rebuild tables): check now. */
	if ((r = check_pragma(db, "PRAGMA foreign_key_check", path,
			      "cannot be upgraded: foreign key violation in table",
			      cause)) < 0)
		goto rollback;
	ids = xasprintf("PRAGMA application_id = %d; PRAGMA user_version = %d",
			PERCH_APPLICATION_ID, PERCH_SCHEMA_VERSION);
	r = exec(db, ids, path, cause);
	free(ids);
	if (r < 0 || (r = exec(db, "COMMIT", path, cause)) < 0)
		goto rollback;
	return 0;

rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int use_wal(sqlite3 *db, const char *path, char **cause)
{
	struct timespec nap = { 0, 10 * 1000000L };
	sqlite3_stmt *stmt;
	const char *mode;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
	/*
	 * Changing the journal mode needs the file to itself, and SQLite may
	 * report another opener's lock as busy without calling the busy
	 * handler (to avoid a deadlock): retry for as long as the busy timeout.
	 */
	for (int i = 0; rc == SQLITE_OK && i < BUSY_TIMEOUT_MS / 10; i++) {
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		sqlite3_reset(stmt);
		rc = SQLITE_OK;
		nanosleep(&nap, NULL);
	}
	if (rc == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(stmt, 0);
		/* Without WAL, clients could not read while the daemon writes. */
		if (mode == NULL || strcmp(mode, "wal") != 0) {
			*cause = xasprintf("%s: cannot use write-ahead logging"
					   " (journal mode stays %s)", path,
					   mode ? mode : "?");
			r = -EIO;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		r = fail(db, rc, path, cause);
	sqlite3_finalize(stmt);
	return r;
}

/*
 * Read-write: make the file current.  Until it is known to be ours and
 * readable, closing must not checkpoint: that would write a refused file.
 */
static int prepare_rw(sqlite3 *db, const char *path, char **cause)
{
	struct db_info info;
	int r;

	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if ((r = read_info(db, path, &info, cause)) < 0 ||
	    (r = check_info(&info, path, DB_READ_WRITE, cause)) < 0)
		return r;
	/*
	 * Lets deleted sessions' space be given back.  Only possible before the
	 * file has a first page (a no-op on an empty file that has one).
	 */
	if (is_empty(&info) &&
	    (r = exec(db, "PRAGMA auto_vacuum = INCREMENTAL", path, cause)) < 0)
		return r;
	if (info.version < PERCH_SCHEMA_VERSION)
		if ((r = upgrade(db, path, cause)) < 0)
			return r;
	if ((r = use_wal(db, path, cause)) < 0 ||
	    (r = exec(db, "PRAGMA synchronous = NORMAL;"
		      " PRAGMA journal_size_limit = " WAL_LIMIT, path, cause)) < 0)
		return r;
	/*
	 * Keep -wal (emptied, thanks to journal_size_limit) and -shm after the
	 * last close, so that a reader who cannot create them in the directory
	 * can still read the file: SQLite reads through a read-only -shm.
	 */
	sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &(int){ 1 });
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	return 0;
}

static int prepare_ro(sqlite3 *db, const char *path, char **cause)
{
	struct db_info info;
	int r;

	if ((r = read_info(db, path, &info, cause)) < 0)
		return r;
	return check_info(&info, path, DB_READ_ONLY, cause);
}

/*
 * What every connection goes through once SQLite has it: the checks of the
 * file's identity and version (and, read-write, the migration).  Closes db
 * on failure.
 */
static int finish_open(sqlite3 *db, const char *path, enum db_mode mode,
		       sqlite3 **out, char **cause)
{
	int r;

	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	r = mode == DB_READ_ONLY ? prepare_ro(db, path, cause) :
				   prepare_rw(db, path, cause);
	if (r < 0 || (r = exec(db, "PRAGMA foreign_keys = ON", path, cause)) < 0) {
		sqlite3_close(db);
		return r;
	}
	*out = db;
	return 0;
}

int db_open(const char *path, enum db_mode mode, sqlite3 **out, char **cause)
{
	int flags = mode == DB_READ_ONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	const char *name = path;
	char *owned = NULL;
	sqlite3 *db = NULL;
	int rc, r;

	*out = NULL;
	*cause = NULL;
	if ((r = check_file(path, mode, cause)) < 0)
		return r;
	/* This SQLite takes names starting with "file:" as URIs. */
	if (strncmp(path, "file:", 5) == 0)
		name = owned = xasprintf("./%s", path);
	rc = sqlite3_open_v2(name, &db, flags, NULL);
	free(owned);
	if (db == NULL) {
		*cause = xasprintf("%s: out of memory", path);
		return -ENOMEM;
	}
	if (rc != SQLITE_OK) {
		r = fail(db, rc, path, cause);
		sqlite3_close(db);
		return r;
	}
	return finish_open(db, path, mode, out, cause);
}

int db_open_image(const void *data, size_t size, const char *name,
		  sqlite3 **out, char **cause)
{
	unsigned char *copy;
	sqlite3 *db = NULL;
	int rc, r;

	*out = NULL;
	*cause = NULL;
	rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
	copy = sqlite3_malloc64(size > 0 ? size : 1);
	if (db == NULL || copy == NULL) {
		sqlite3_free(copy);
		sqlite3_close(db);
		*cause = xasprintf("%s: out of memory", name);
		return -ENOMEM;
	}
	memcpy(copy, data, size);
	/*
	 * A file in WAL mode says so in its header (bytes 18 and 19 are 2).
	 * An image has no -wal beside it, and a reader of the file alone sees
	 * what a rollback-mode header (1) gives: the memory VFS has no WAL.
	 */
	if (size > 19 && copy[18] == 2 && copy[19] == 2)
		copy[18] = copy[19] = 1;
	if (rc == SQLITE_OK)
		rc = sqlite3_deserialize(db, "main", copy, (sqlite3_int64)size,
					 (sqlite3_int64)size,
					 SQLITE_DESERIALIZE_FREEONCLOSE |
					 SQLITE_DESERIALIZE_READONLY);
	else
		sqlite3_free(copy);
	if (rc != SQLITE_OK) {
		r = fail(db, rc, name, cause);
		sqlite3_close(db);
		return r;
	}
	return finish_open(db, name, DB_READ_ONLY, out, cause);
}

int db_schema_version(sqlite3 *db)
{
	sqlite3_stmt *stmt;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}
