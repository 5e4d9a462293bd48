/*
 * A damaged, hostile or foreign database file read by the client: the
 * bytes of the input become the database, and the real client commands run
 * on it as a user would run them (perch sessions, then reports of the last
 * session, one of them over a time window so that the raw sample chunks are
 * decoded too).  Their output goes to /dev/null.
 *
 * The commands open the database with db_open and close it with
 * sqlite3_close, both replaced here (-Wl,--wrap): the input is opened once
 * with db_open_image, held in memory, and every command gets that one
 * connection (or db_open_image's error), whose close is put off to the end
 * of the input.  So an input costs no file, -wal or -shm, SQLite parses its
 * schema once, not five times, and no input can see another's.  What the
 * commands do not reach this way is db_open's open(2) and fstat of a path.
 *
 * Only perch's code is instrumented: the system SQLite is not, so coverage
 * guides the fuzzer through the client's loading code, not SQLite's pages.
 */
#include <stdarg.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "fuzz.h"
#include "xalloc.h"

#define DB_NAME "/nonexistent/perch-fuzz.db"

/* This input's connection, or why db_open_image refused it. */
static sqlite3 *shared;
static int open_error;
static char *open_cause;

/* The commands print their errors through the client's front end. */
void client_error(const char *fmt, ...)
{
	(void)fmt;
}

int client_usage(const char *name)
{
	fprintf(stderr, "fuzz_db: usage error in %s\n", name);
	abort();
}

int __wrap_db_open(const char *path, enum db_mode mode, sqlite3 **out, char **cause);
int __real_sqlite3_close(sqlite3 *db);
int __wrap_sqlite3_close(sqlite3 *db);

int __wrap_db_open(const char *path, enum db_mode mode, sqlite3 **out, char **cause)
{
	FUZZ_CHECK(mode == DB_READ_ONLY && strcmp(path, DB_NAME) == 0);
	*out = shared;
	*cause = open_cause != NULL ? xstrdup(open_cause) : NULL;
	return open_error;
}

/*
 * A command is done with the shared connection: it must have finalized its
 * statements, or the real sqlite3_close would have failed and leaked it.
 */
int __wrap_sqlite3_close(sqlite3 *db)
{
	if (db != NULL && db == shared) {
		FUZZ_CHECK(sqlite3_next_stmt(db, NULL) == NULL);
		return SQLITE_OK;
	}
	return __real_sqlite3_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Only named in messages: the file is never opened. */
	setenv("PERCH_DB", DB_NAME, 1);
	setenv("TZ", "UTC", 1);
	if (freopen("/dev/null", "w", stdout) == NULL) {
		perror("fuzz_db: /dev/null");
		exit(1);
	}
	return 0;
}

/* Runs one client command; argv is NULL-terminated. */
static void run(int (*cmd)(int, char **), char **argv)
{
	int argc = 0, rc;

	while (argv[argc] != NULL)
		argc++;
	rc = cmd(argc, argv);
	FUZZ_CHECK(rc == 0 || rc == 1);
	fflush(stdout);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sessions[] = { "sessions", "--json", NULL };
	char *show[] = { "show", "last", NULL };
	char *flat[] = { "flat", "--to", "1000000", "--json", "last", NULL };
	char *callers[] = { "callers", "--cpu", "last", "main", NULL };
	char *hot[] = { "hot-paths", "--json", "last", NULL };

	open_error = db_open_image(data, size, DB_NAME, &shared, &open_cause);
	run(cmd_sessions, sessions);
	run(cmd_show, show);
	run(cmd_flat, flat);
	run(cmd_callers, callers);
	run(cmd_hot_paths, hot);
	FUZZ_CHECK(__real_sqlite3_close(shared) == SQLITE_OK);
	shared = NULL;
	free(open_cause);
	open_cause = NULL;
	return 0;
}
