/*
 * A damaged, hostile or foreign database file read by the client: the
 * bytes of the input become the database file, and the real client
 * commands run on it as a user would run them (perch sessions, then
 * reports of the last session, one of them over a time window so that the
 * raw sample chunks are decoded too).  Their output goes to /dev/null.
 *
 * The file is written to a directory on tmpfs once per input; the -wal and
 * -shm files SQLite may leave beside it are removed before each input, so
 * that one input never sees another's.
 *
 * Only perch's code is instrumented: the system SQLite is not, so coverage
 * guides the fuzzer through the client's loading code, not SQLite's pages.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "fuzz.h"

/* tmpfs, so that writing each input costs no disk I/O; /tmp where absent. */
static char dir[64] = "/dev/shm/perch-fuzz-db-XXXXXX";
static char db_path[64], wal_path[64], shm_path[64];

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

static void remove_files(void)
{
	unlink(db_path);
	unlink(wal_path);
	unlink(shm_path);
}

static void remove_dir(void)
{
	remove_files();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL) {
		snprintf(dir, sizeof dir, "/tmp/perch-fuzz-db-XXXXXX");
		if (mkdtemp(dir) == NULL) {
			perror("fuzz_db: mkdtemp");
			exit(1);
		}
	}
	snprintf(db_path, sizeof db_path, "%s/perch.db", dir);
	snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
	snprintf(shm_path, sizeof shm_path, "%s-shm", db_path);
	atexit(remove_dir);
	setenv("PERCH_DB", db_path, 1);
	setenv("TZ", "UTC", 1);
	if (freopen("/dev/null", "w", stdout) == NULL) {
		perror("fuzz_db: /dev/null");
		exit(1);
	}
	return 0;
}

static void write_file(const uint8_t *data, size_t size)
{
	int fd = open(db_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	FUZZ_CHECK(fd >= 0);
	n = write(fd, data, size);
	FUZZ_CHECK(n >= 0 && (size_t)n == size);
	close(fd);
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

	remove_files();
	write_file(data, size);
	run(cmd_sessions, sessions);
	run(cmd_show, show);
	run(cmd_flat, flat);
	run(cmd_callers, callers);
	run(cmd_hot_paths, hot);
	return 0;
}
