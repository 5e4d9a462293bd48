/*
 * perchd's security guarantees (docs/SECURITY.md), each tried by the user
 * it protects against: forked helpers drop to nobody or to a second
 * non-root uid (supplementary groups dropped) and talk to a root perchd
 * through the real perch client and through raw protocol requests; other
 * helpers squat the socket's and the database's paths before perchd starts.
 * Needs root (skipped otherwise).  Every target is a process this test
 * started; the teardown kills them all and removes the test's directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "spawn.h"

#define PERCH PERCH_BIN_DIR "/client/perch"
#define PERCHD PERCH_BIN_DIR "/daemon/perchd"
#define BURNER PERCH_TARGETS_DIR "/burner"
#define SETPRIV "/usr/bin/setpriv"
#define NOBODY 65534
/* A second non-root user; a uid needs no passwd entry to own processes. */
#define OTHER 64123
#define MAX_PROCS 16

struct fx {
	char dir[64];			/* 0711, root's */
	char sock[192], db[192];
	pid_t daemon;
	pid_t procs[MAX_PROCS];		/* forked helpers still running */
	int nfiles;
	char scope[192];		/* perchd's ptrace_scope file, or "" */
};

/* ---- processes ----------------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * In a forked child: become uid, with gid the same number and, of root's
 * groups, none.  The one supplementary group is the socket's (perchd runs
 * with --group 65534), as for users an administrator lets use perch.
 */
static void drop_to(uid_t uid)
{
	const gid_t socket_group = NOBODY;

	/* After the change of credentials, which clears the death signal. */
	if (setgroups(1, &socket_group) < 0 || setresgid(uid, uid, uid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(126);
}

static void track(struct fx *f, pid_t pid)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		if (f->procs[i] == 0) {
			f->procs[i] = pid;
			return;
		}
	}
	fail_msg("too many helper processes");
}

/* Waits for pid at most ms; returns its exit code, or -1 (killed) on timeout. */
static int wait_exit(pid_t pid, long ms)
{
	int status;

	for (long t = 0; t < ms; t += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static char *slurp_fd(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	return buf;
}

static int open_out(struct fx *f, char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/out.%d", f->dir, ++f->nfiles);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	return fd;
}

/*
 * Runs argv as uid (0: as the test) with PERCH_SOCKET and PERCH_DB set;
 * returns its exit code with what it printed.
 */
static int run_as(struct fx *f, uid_t uid, const char *const *argv, char **out, char **err)
{
	char opath[160], epath[160];
	int ofd = open_out(f, opath, sizeof opath), efd = open_out(f, epath, sizeof epath);
	int code;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null < 0 || dup2(null, 0) < 0 || dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
			_exit(126);
		setenv("PERCH_SOCKET", f->sock, 1);
		setenv("PERCH_DB", f->db, 1);
		/* Never a daemon of the client's own: it would outlive the test. */
		setenv("PERCH_DAEMON", "/nonexistent/perchd", 1);
		setenv("HOME", "/nonexistent", 1);
		if (uid != 0)
			drop_to(uid);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	code = wait_exit(pid, 30000);
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	*out = slurp_fd(ofd);
	*err = slurp_fd(efd);
	close(ofd);
	close(efd);
	return code;
}

/* perch ARGS... as uid: the exit code, stdout, stderr. */
static int perch_as(struct fx *f, uid_t uid, char **out, char **err, ...)
{
	const char *argv[16] = { PERCH };
	va_list ap;
	int n = 1;

	va_start(ap, err);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < 16);
	va_end(ap);
	return run_as(f, uid, argv, out, err);
}

/*
 * A refusal as users should see it: a non-zero exit and one line on stderr
 * that contains want.
 */
static void assert_refusal(int code, char *out, char *err, const char *want)
{
	char *nl = strchr(err, '\n');

	print_message("  refused (exit %d): %s", code, err);
	if (code == 0 || code >= 126)
		fail_msg("exit %d where a refusal was expected; stdout '%s' stderr '%s'",
			 code, out, err);
	if (nl == NULL || nl[1] != '\0' || strstr(err, want) == NULL)
		fail_msg("expected one line with '%s' on stderr, got '%s'", want, err);
	free(out);
	free(err);
}

/*
 * A connection to path, blocking once made.  The connect itself does not
 * block: a squatter that listens and never accepts fills its queue, and a
 * blocking connect would then wait for ever (it did, in a CI run, when
 * perchd was slow to start and the test's polling filled the queue).
 */
static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Who listens on the other end of a connected socket. */
static pid_t listener_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : -1;
}

/* In a child: one request on f->sock, the reply line to out_fd. */
static void exchange(const char *sock, const char *line, int out_fd)
{
	char buf[65536];
	size_t len = 0;
	int fd = connect_to(sock);

	if (fd < 0) {
		dprintf(out_fd, "connect: %s", strerror(errno));
		_exit(1);
	}
	if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0)
		_exit(1);
	while (len < sizeof buf - 1 && memchr(buf, '\n', len) == NULL) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0 || (n = read(fd, buf + len, sizeof buf - 1 - len)) <= 0)
			break;
		len += (size_t)n;
	}
	if (write(out_fd, buf, len) < 0)
		_exit(1);
	_exit(0);
}

/* A raw protocol request sent as uid; the parsed reply (caller puts). */
static json_object *request_as(struct fx *f, uid_t uid, const char *fmt, ...)
{
	char line[1024], *text;
	json_object *o;
	int fds[2];
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		if (uid != 0)
			drop_to(uid);
		exchange(f->sock, line, fds[1]);
	}
	close(fds[1]);
	text = slurp_fd(fds[0]);
	close(fds[0]);
	assert_int_equal(wait_exit(pid, 15000), 0);
	o = json_tokener_parse(text);
	if (o == NULL)
		fail_msg("unreadable reply to %s: '%s'", line, text);
	free(text);
	return o;
}

static bool reply_ok(json_object *r)
{
	json_object *v;

	return json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v);
}

/* An error reply with this code and a message; consumes r. */
static void assert_error(json_object *r, const char *code)
{
	json_object *v;

	if (reply_ok(r) || !json_object_object_get_ex(r, "error", &v) ||
	    strcmp(json_object_get_string(v), code) != 0)
		fail_msg("expected error %s, got %s", code, json_object_to_json_string(r));
	assert_true(json_object_object_get_ex(r, "message", &v));
	assert_true(json_object_get_string_len(v) > 10);
	print_message("  %s: %s\n", code, json_object_get_string(v));
	json_object_put(r);
}

static int64_t get_int(json_object *r, const char *key)
{
	json_object *v;

	if (!reply_ok(r) || !json_object_object_get_ex(r, key, &v))
		fail_msg("no %s in %s", key, json_object_to_json_string(r));
	return json_object_get_int64(v);
}

/* Whether the array r[key] holds an object whose field equals id. */
static bool lists(json_object *r, const char *key, const char *field, int64_t id)
{
	json_object *arr, *v;

	assert_true(reply_ok(r));
	assert_true(json_object_object_get_ex(r, key, &arr));
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr, i), field, &v) &&
		    json_object_get_int64(v) == id)
			return true;
	return false;
}

/* ---- the daemon ---------------------------------------------------------- */

/*
 * Starts perchd on sock and db with the extra arguments (NULL-terminated)
 * under the given umask (or the test's, for -1).  Returns 0 once it
 * listens; or, when it exits first, its exit code with its stderr in *err.
 */
static int daemon_try(struct fx *f, const char *sock, const char *db, int mask,
		      char **err, const char *const *extra)
{
	const char *argv[16] = { PERCHD, "--foreground", "--socket", sock, "--db", db };
	char epath[160];
	int n = 6, efd = open_out(f, epath, sizeof epath);
	pid_t pid;

	for (; extra != NULL && *extra != NULL; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	*err = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (mask >= 0)
			umask((mode_t)mask);
		if (f->scope[0] != '\0')
			setenv("PERCH_PTRACE_SCOPE_FILE", f->scope, 1);
		dup2(efd, 2);
		execv(PERCHD, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		int status, fd;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			lseek(efd, 0, SEEK_SET);
			*err = slurp_fd(efd);
			close(efd);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		fd = connect_to(sock);
		if (fd >= 0 && listener_pid(fd) == pid) {
			close(fd);
			close(efd);
			f->daemon = pid;
			return 0;
		}
		if (fd >= 0)
			close(fd);
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("perchd neither listened nor exited in 10 s");
	return -1;
}

static void daemon_start(struct fx *f, const char *const *extra)
{
	char *err;

	if (daemon_try(f, f->sock, f->db, -1, &err, extra) != 0)
		fail_msg("perchd did not start: %s", err);
}

static void daemon_stop(struct fx *f)
{
	if (f->daemon > 0) {
		kill(f->daemon, SIGTERM);
		assert_int_equal(wait_exit(f->daemon, 10000), 0);
		f->daemon = 0;
	}
}

/* perchd must refuse to start, saying want. */
static void daemon_refuses(struct fx *f, const char *sock, const char *db, const char *want,
			   const char *const *extra)
{
	char *err;
	int code = daemon_try(f, sock, db, -1, &err, extra);

	if (code == 0)
		fail_msg("perchd started on socket %s, db %s (wanted: %s)", sock, db, want);
	print_message("  perchd refused (exit %d): %s", code, err);
	/* 1 is a refusal; anything else a crash or a sanitizer's abort. */
	assert_int_equal(code, 1);
	if (strstr(err, want) == NULL)
		fail_msg("perchd's refusal does not say '%s': %s", want, err);
	free(err);
}

/* ---- targets ------------------------------------------------------------- */

static void burner_as(struct child *c, uid_t uid)
{
	char reuid[32], regid[32];
	const char *const args[] = { reuid, regid, "--clear-groups", BURNER, NULL };

	if (uid == 0) {
		if (spawn_target(c, "burner", NULL) < 0)
			fail_msg("cannot start burner");
		return;
	}
	snprintf(reuid, sizeof reuid, "--reuid=%u", (unsigned int)uid);
	snprintf(regid, sizeof regid, "--regid=%u", (unsigned int)uid);
	if (spawn_path(c, SETPRIV, args) < 0)
		fail_msg("cannot start burner as uid %u", (unsigned int)uid);
}

/*
 * A process of uid's, forked from the test (not exec'd), dumpable or not as
 * asked.  It waits for a byte on the pipe *go, then runs what(arg) (which
 * may exec), then sleeps.  Returns its pid once it waits.
 */
static pid_t helper_as(struct fx *f, uid_t uid, bool nondumpable, int *go,
		       void (*what)(const char *), const char *arg)
{
	int ready[2], gp[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(gp, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		close(ready[0]);
		close(gp[1]);
		dup2(null, 1);
		drop_to(uid);
		/*
		 * Changing credentials made us non-dumpable (suid_dumpable);
		 * a process that was exec'd as uid would be dumpable.
		 */
		if (prctl(PR_SET_DUMPABLE, nondumpable ? 0 : 1) < 0)
			_exit(125);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (read(gp[0], &c, 1) == 1 && what != NULL)
			what(arg);
		for (;;)
			pause();
	}
	track(f, pid);
	close(ready[1]);
	close(gp[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*go = gp[1];
	return pid;
}

/* Kills the children of a helper (they outlive it otherwise). */
static void kill_children(pid_t ppid)
{
	char path[64], buf[256], *p = buf, *end;
	int fd, n;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)ppid, (int)ppid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = (int)read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (long c; (c = strtol(p, &end, 10)) > 0; p = end)
		kill((pid_t)c, SIGKILL);
}

/* ---- setup and teardown ------------------------------------------------- */

static bool can_run(uid_t uid, const char *path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		drop_to(uid);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	return wait_exit(pid, 5000) == 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/perch-test-sec-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	/* Other users may pass through, to the socket, and nothing more. */
	chmod(f->dir, 0711);
	snprintf(f->sock, sizeof f->sock, "%s/perch.sock", f->dir);
	snprintf(f->db, sizeof f->db, "%s/perch.db", f->dir);
	*state = f;
	return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->daemon > 0) {
		kill(f->daemon, SIGTERM);
		if (wait_exit(f->daemon, 10000) != 0)
			print_error("perchd did not stop cleanly after SIGTERM\n");
	}
	for (int i = 0; i < MAX_PROCS; i++) {
		if (f->procs[i] > 0) {
			kill_children(f->procs[i]);
			kill(f->procs[i], SIGKILL);
			waitpid(f->procs[i], NULL, 0);
		}
	}
	spawn_kill_all();
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0 || !can_run(NOBODY, PERCH) || !can_run(OTHER, BURNER) ||
	    access(SETPRIV, X_OK) < 0) {
		print_message("skipped: needs root, %s, and binaries other users may run\n",
			      SETPRIV);
		skip();
	}
}

static const char *num(char *buf, long v)
{
	sprintf(buf, "%ld", v);
	return buf;
}

/* ---- 1: starting sessions ------------------------------------------------ */

/*
 * nobody may profile its own dumpable process, and no other: not root's,
 * not another user's, not its own once it is non-dumpable.
 */
static void test_start_refusals(void **state)
{
	struct fx *f = *state;
	struct child root_b, other_b, own_b;
	char *out, *err, p[24];
	int go, go2, code;
	pid_t nd, dumpable;
	json_object *r;

	need_root();
	daemon_start(f, (const char *const[]){ "--group", "65534", NULL });
	burner_as(&root_b, 0);
	burner_as(&other_b, OTHER);
	burner_as(&own_b, NOBODY);
	nd = helper_as(f, NOBODY, true, &go, NULL, NULL);
	dumpable = helper_as(f, NOBODY, false, &go2, NULL, NULL);

	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, root_b.pid), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "not permitted");
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, other_b.pid), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "not permitted");
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, nd), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "not dumpable");
	/* The same three through the protocol: one error code for all. */
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d}",
				(int)root_b.pid), "not-permitted");
	assert_error(request_as(f, OTHER, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d}",
				(int)own_b.pid), "not-permitted");
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d}",
				(int)nd), "not-permitted");

	/* Not a blanket refusal: the same helper, dumpable, may be profiled... */
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d,"
		       "\"duration_s\":0.2}", (int)dumpable);
	assert_true(get_int(r, "session") > 0);
	json_object_put(r);
	/* ...and nobody's own burner records. */
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, own_b.pid), "-d", "1",
			"--no-autostart", NULL);
	print_message("  own process: exit %d, stderr %s", code, err);
	assert_int_equal(code, 0);
	assert_null(strstr(err, "not permitted"));
	free(out);
	free(err);
	assert_int_equal(child_quit(&root_b), 0);
	assert_int_equal(child_quit(&other_b), 0);
	assert_int_equal(child_quit(&own_b), 0);
	close(go);
	close(go2);
}

/* ---- 2: every request against another user's sessions ------------------- */

static int64_t start_as(struct fx *f, uid_t uid, pid_t pid)
{
	json_object *r = request_as(f, uid, "{\"v\":1,\"id\":2,\"op\":\"start\",\"pid\":%d}",
				    (int)pid);
	int64_t id = get_int(r, "session");

	json_object_put(r);
	return id;
}

static json_object *status_as(struct fx *f, uid_t uid)
{
	return request_as(f, uid, "{\"v\":1,\"id\":3,\"op\":\"status\"}");
}

static void check_lists(struct fx *f, uid_t uid, const char *key, int64_t mine,
			int64_t theirs, int64_t others)
{
	json_object *r = status_as(f, uid);

	if (!lists(r, key, "session", mine) || lists(r, key, "session", theirs) ||
	    lists(r, key, "session", others))
		fail_msg("uid %u's %s: wanted %" PRId64 " only, of %" PRId64 ", %" PRId64
			 ", %" PRId64 ": %s", (unsigned int)uid, key, mine, mine, theirs,
			 others, json_object_to_json_string(r));
	json_object_put(r);
}

/* A schedule's runs, as root reads the database. */
static char *schedule_run(struct fx *f, int64_t schedule)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *text = NULL;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT outcome || ': ' || coalesce(message, '')"
					    " FROM schedule_runs WHERE schedule_id = ?1",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, schedule);
	if (sqlite3_step(st) == SQLITE_ROW)
		text = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return text;
}

static void test_other_sessions(void **state)
{
	struct fx *f = *state;
	struct child root_b, other_b, own_b;
	int64_t theirs, others, mine, sched, own_sched, ghost;
	char *out, *err, id[24], *run = NULL;
	json_object *r;
	int code;

	need_root();
	daemon_start(f, (const char *const[]){ "--group", "65534", NULL });
	burner_as(&root_b, 0);
	burner_as(&other_b, OTHER);
	burner_as(&own_b, NOBODY);
	theirs = start_as(f, 0, root_b.pid);
	others = start_as(f, 0, other_b.pid);	/* root profiles OTHER's process */
	mine = start_as(f, NOBODY, own_b.pid);
	r = request_as(f, 0, "{\"v\":1,\"id\":4,\"op\":\"schedule-add\",\"kind\":\"pid\","
		       "\"target\":\"%d\",\"interval_s\":3600,\"duration_s\":1}", (int)root_b.pid);
	sched = get_int(r, "schedule");
	json_object_put(r);

	/* version: the daemon's own facts, no session's. */
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":5,\"op\":\"version\"}");
	assert_true(reply_ok(r));
	assert_null(strstr(json_object_to_json_string(r), "session"));
	json_object_put(r);
	/* status: only nobody's, while recording. */
	check_lists(f, NOBODY, "sessions", mine, theirs, others);
	check_lists(f, OTHER, "sessions", others, theirs, mine);
	/* stop: someone else's session does not exist for nobody. */
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":6,\"op\":\"stop\",\"session\":%" PRId64
				"}", theirs), "no-such-session");
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":6,\"op\":\"stop\",\"session\":%" PRId64
				"}", others), "no-such-session");
	code = perch_as(f, NOBODY, &out, &err, "stop", num(id, (long)theirs), NULL);
	assert_refusal(code, out, err, "no recording session");
	check_lists(f, 0, "sessions", theirs, -1, -1);
	/* delete and shutdown: refused (delete is root's or perchd's user's only). */
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":7,\"op\":\"delete\",\"session\":%" PRId64
				"}", theirs), "not-permitted");
	code = perch_as(f, NOBODY, &out, &err, "rm", num(id, (long)theirs), NULL);
	assert_refusal(code, out, err, "only root");
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":8,\"op\":\"shutdown\"}"),
		     "not-permitted");
	/* Schedules: root's is neither listed nor removable. */
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":9,\"op\":\"schedule-ls\"}");
	assert_false(lists(r, "schedules", "schedule", sched));
	json_object_put(r);
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":10,\"op\":\"schedule-rm\","
				"\"schedule\":%" PRId64 "}", sched), "no-such-schedule");
	code = perch_as(f, NOBODY, &out, &err, "schedule", "rm", num(id, (long)sched), NULL);
	assert_refusal(code, out, err, "no schedule");
	r = request_as(f, 0, "{\"v\":1,\"id\":11,\"op\":\"schedule-ls\"}");
	assert_true(lists(r, "schedules", "schedule", sched));
	json_object_put(r);
	/* A schedule of nobody's that names root's process never profiles it. */
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":12,\"op\":\"schedule-add\",\"kind\":\"pid\","
		       "\"target\":\"%d\",\"interval_s\":1,\"duration_s\":0.5}", (int)root_b.pid);
	ghost = get_int(r, "schedule");
	json_object_put(r);
	for (int i = 0; i < 50 && run == NULL; i++) {
		sleep_ms(100);
		run = schedule_run(f, ghost);
	}
	print_message("  nobody's schedule on root's process: %s\n", run ? run : "(no run)");
	assert_non_null(run);
	assert_non_null(strstr(run, "failed: not permitted"));
	free(run);
	/* Reading the database: not through the daemon, and not directly. */
	code = perch_as(f, NOBODY, &out, &err, "show", num(id, (long)theirs), NULL);
	assert_refusal(code, out, err, "Permission denied");
	code = perch_as(f, NOBODY, &out, &err, "sessions", NULL);
	assert_refusal(code, out, err, "Permission denied");

	/* Everything on its own: stop, status of the ended session, schedules. */
	code = perch_as(f, NOBODY, &out, &err, "stop", num(id, (long)mine), NULL);
	print_message("  own stop: exit %d, %s%s", code, out, err);
	assert_int_equal(code, 0);
	free(out);
	free(err);
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":13,\"op\":\"schedule-add\",\"kind\":\"pid\","
		       "\"target\":\"%d\",\"interval_s\":3600,\"duration_s\":1}", (int)own_b.pid);
	own_sched = get_int(r, "schedule");
	json_object_put(r);
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":14,\"op\":\"schedule-ls\"}");
	assert_true(lists(r, "schedules", "schedule", own_sched));
	assert_true(lists(r, "schedules", "schedule", ghost));
	assert_false(lists(r, "schedules", "schedule", sched));
	json_object_put(r);
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":15,\"op\":\"schedule-rm\",\"schedule\":%"
		       PRId64 "}", own_sched);
	assert_true(reply_ok(r));
	json_object_put(r);
	/* Ended sessions: nobody sees its own, not the others'. */
	r = request_as(f, 0, "{\"v\":1,\"id\":16,\"op\":\"stop\",\"session\":%" PRId64 "}", theirs);
	assert_true(reply_ok(r));
	json_object_put(r);
	r = request_as(f, 0, "{\"v\":1,\"id\":16,\"op\":\"stop\",\"session\":%" PRId64 "}", others);
	assert_true(reply_ok(r));
	json_object_put(r);
	for (int i = 0; i < 100; i++) {
		r = status_as(f, 0);
		code = lists(r, "ended", "session", theirs) && lists(r, "ended", "session", mine) &&
		       lists(r, "ended", "session", others);
		json_object_put(r);
		if (code)
			break;
		sleep_ms(50);
	}
	check_lists(f, NOBODY, "ended", mine, theirs, others);
	check_lists(f, OTHER, "ended", others, theirs, mine);
	/* Root may delete; nobody may not, not even its own session. */
	assert_error(request_as(f, NOBODY, "{\"v\":1,\"id\":17,\"op\":\"delete\",\"session\":%"
				PRId64 "}", mine), "not-permitted");
	r = request_as(f, 0, "{\"v\":1,\"id\":18,\"op\":\"delete\",\"session\":%" PRId64 "}", mine);
	assert_true(reply_ok(r));
	json_object_put(r);
	assert_int_equal(child_quit(&root_b), 0);
	assert_int_equal(child_quit(&other_b), 0);
	assert_int_equal(child_quit(&own_b), 0);
	daemon_stop(f);
}

/* ---- 3: processes that stop being the client's ---------------------------- */

/* A setuid-root copy of burner, made by root, runnable by everyone. */
static void make_suid_burner(struct fx *f, char *path, size_t size)
{
	int in = open(BURNER, O_RDONLY), out;
	char buf[65536];
	ssize_t n;

	snprintf(path, size, "%s/suid-burner", f->dir);
	out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0700);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	assert_int_equal(fchmod(out, 04755), 0);
	close(out);
}

static void exec_burner(const char *path)
{
	execl(path, path, "--threads", "1", "--seconds", "60", (char *)NULL);
	_exit(127);
}

/* Two children: a plain burner, then the setuid one at path. */
static void spawn_children(const char *path)
{
	if (fork() == 0)
		exec_burner(BURNER);
	if (fork() == 0)
		exec_burner(path);
}

/* The children of a helper: the one running as root and the other. */
static void children_of(pid_t ppid, pid_t *root_child, pid_t *plain_child)
{
	char path[64], buf[256], *p = buf, *end;
	struct stat st;
	int fd, n;

	*root_child = *plain_child = 0;
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)ppid, (int)ppid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = (int)read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (long c; (c = strtol(p, &end, 10)) > 0; p = end) {
		snprintf(path, sizeof path, "/proc/%ld", c);
		if (stat(path, &st) == 0)
			*(st.st_uid == 0 ? root_child : plain_child) = (pid_t)c;
	}
}

static int64_t count(struct fx *f, const char *sql, int64_t session, int64_t arg)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n = -1;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, session);
	sqlite3_bind_int64(st, 2, arg);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static json_object *ended_entry(struct fx *f, uid_t uid, int64_t session)
{
	for (int i = 0; i < 100; i++) {
		json_object *r = status_as(f, uid), *arr, *v;

		json_object_object_get_ex(r, "ended", &arr);
		for (size_t k = 0; k < json_object_array_length(arr); k++) {
			json_object *e = json_object_array_get_idx(arr, k);

			if (json_object_object_get_ex(e, "session", &v) &&
			    json_object_get_int64(v) == session) {
				json_object_get(e);
				json_object_put(r);
				return e;
			}
		}
		json_object_put(r);
		sleep_ms(50);
	}
	fail_msg("session %" PRId64 " did not end", session);
	return NULL;
}

/*
 * A session of nobody's follows nobody's descendants, but not one that runs
 * a setuid program; and a target that execs a setuid program is no longer
 * sampled for nobody (the session ends, saying why).
 */
static void test_setuid_children_and_exec(void **state)
{
	struct fx *f = *state;
	char suid[192];
	json_object *r, *e, *v;
	int64_t s1, s2, n;
	int go1, go2;
	pid_t parent, plain = 0, setuid_child = 0, execer;

	need_root();
	make_suid_burner(f, suid, sizeof suid);
	if (!can_run(NOBODY, suid)) {
		print_message("skipped: nobody cannot run %s\n", suid);
		skip();
	}
	daemon_start(f, (const char *const[]){ "--group", "65534", NULL });

	/* 1. Children: one plain burner of nobody's, one setuid. */
	parent = helper_as(f, NOBODY, false, &go1, spawn_children, suid);
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d,"
		       "\"children\":true}", (int)parent);
	s1 = get_int(r, "session");
	json_object_put(r);
	assert_int_equal(write(go1, "g", 1), 1);
	for (int i = 0; i < 500 && (setuid_child == 0 || plain == 0); i++) {
		sleep_ms(10);
		children_of(parent, &setuid_child, &plain);
	}
	assert_true(setuid_child > 0 && plain > 0);
	sleep_ms(2500);		/* more than two scans for descendants */
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":2,\"op\":\"stop\",\"session\":%" PRId64 "}",
		       s1);
	assert_true(reply_ok(r));
	json_object_put(r);
	json_object_put(ended_entry(f, NOBODY, s1));
	n = count(f, "SELECT count(*) FROM threads WHERE session_id = ?1 AND pid = ?2"
		  " AND name LIKE 'burner%'", s1, plain);
	print_message("  threads recorded: plain child %" PRId64 ", setuid child %" PRId64 "\n",
		      n, count(f, "SELECT count(*) FROM threads WHERE session_id = ?1 AND pid = ?2"
			       " AND name LIKE '%burner%'", s1, setuid_child));
	assert_true(n > 0);
	assert_int_equal(count(f, "SELECT count(*) FROM threads WHERE session_id = ?1 AND pid = ?2"
			       " AND name LIKE '%burner%'", s1, setuid_child), 0);

	/* 2. The target itself execs a setuid program. */
	execer = helper_as(f, NOBODY, false, &go2, exec_burner, suid);
	r = request_as(f, NOBODY, "{\"v\":1,\"id\":3,\"op\":\"start\",\"pid\":%d}", (int)execer);
	s2 = get_int(r, "session");
	json_object_put(r);
	sleep_ms(300);
	assert_int_equal(write(go2, "g", 1), 1);
	e = ended_entry(f, NOBODY, s2);
	print_message("  after the setuid exec: %s\n", json_object_to_json_string(e));
	assert_true(json_object_object_get_ex(e, "status", &v));
	assert_string_equal(json_object_get_string(v), "target-exited");
	assert_true(json_object_object_get_ex(e, "error", &v) && v != NULL);
	assert_non_null(strstr(json_object_get_string(v), "may no longer profile"));
	json_object_put(e);
	/* Sampled before the exec; what ran after it (burner's threads), never. */
	assert_true(count(f, "SELECT count(*) FROM threads WHERE session_id = ?1 AND ?2 = ?2",
			  s2, 0) > 0);
	assert_int_equal(count(f, "SELECT count(*) FROM threads WHERE session_id = ?1"
			       " AND name LIKE '%burner%' AND ?2 = ?2", s2, 0), 0);
	close(go1);
	close(go2);
	daemon_stop(f);
}

/* ---- 4: the socket's path, squatted by another user ---------------------- */

struct victim {
	char path[160];
	struct stat st;
};

/* A root-owned file that perchd must never change. */
static void make_victim(struct fx *f, struct victim *v)
{
	int fd;

	snprintf(v->path, sizeof v->path, "%s/victim", f->dir);
	fd = open(v->path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	assert_int_equal(chmod(v->path, 0640), 0);
	assert_int_equal(stat(v->path, &v->st), 0);
}

static void check_victim(const struct victim *v)
{
	struct stat st;

	assert_int_equal(stat(v->path, &st), 0);
	assert_int_equal(st.st_mode, v->st.st_mode);
	assert_int_equal(st.st_uid, v->st.st_uid);
	assert_int_equal(st.st_gid, v->st.st_gid);
	assert_int_equal(st.st_size, v->st.st_size);
	assert_int_equal(st.st_mtim.tv_sec, v->st.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, v->st.st_mtim.tv_nsec);
}

enum squat { SQUAT_SYMLINK, SQUAT_DANGLING, SQUAT_FILE, SQUAT_DIR, SQUAT_STALE, SQUAT_LIVE };

/*
 * As OTHER, puts a thing at path.  For SQUAT_LIVE the helper keeps
 * listening until *hold is closed; returns its pid (0 otherwise).
 */
static pid_t squat(enum squat kind, const char *path, const char *target, int *hold)
{
	int ready[2], gp[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(gp, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int fd = -1, rc = 0;

		close(ready[0]);
		close(gp[1]);
		drop_to(OTHER);
		snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
		switch (kind) {
		case SQUAT_SYMLINK:
		case SQUAT_DANGLING: rc = symlink(target, path); break;
		case SQUAT_FILE:
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
			rc = fd < 0 || fchmod(fd, 0666) < 0;
			break;
		case SQUAT_DIR: rc = mkdir(path, 0777); break;
		case SQUAT_STALE:
		case SQUAT_LIVE:
			fd = socket(AF_UNIX, SOCK_STREAM, 0);
			rc = bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
			     (kind == SQUAT_LIVE && listen(fd, 4) < 0);
			break;
		}
		if (rc != 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		if (kind == SQUAT_LIVE)
			while (read(gp[0], &c, 1) > 0)
				;
		_exit(0);
	}
	close(ready[1]);
	close(gp[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	if (kind == SQUAT_LIVE) {
		*hold = gp[1];
		return pid;
	}
	close(gp[1]);
	assert_int_equal(wait_exit(pid, 5000), 0);
	return 0;
}

static void check_owner(const char *path, uid_t uid, mode_t type)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_mode & S_IFMT, type);
}

static void test_socket_squatting(void **state)
{
	struct fx *f = *state;
	char pub[96], sock[128], missing[160], link[256];
	const char *const group[] = { "--group", "65534", NULL };
	struct victim v;
	struct stat st;
	int hold;
	pid_t live;
	ssize_t n;

	need_root();
	make_victim(f, &v);
	/* A world-writable sticky directory, like /tmp. */
	snprintf(pub, sizeof pub, "%s/pub", f->dir);
	assert_int_equal(mkdir(pub, 0700), 0);
	assert_int_equal(chmod(pub, 01777), 0);
	snprintf(sock, sizeof sock, "%s/perch.sock", pub);

	/* A symbolic link to root's file: refused, neither followed nor changed. */
	squat(SQUAT_SYMLINK, sock, v.path, NULL);
	daemon_refuses(f, sock, f->db, "is not a socket", group);
	daemon_refuses(f, sock, f->db, "is not a socket", NULL);
	check_victim(&v);
	check_owner(sock, OTHER, S_IFLNK);
	n = readlink(sock, link, sizeof link - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, v.path);
	assert_int_equal(unlink(sock), 0);
	/* A dangling one: nothing is created where it points. */
	snprintf(missing, sizeof missing, "%s/created-through-link", f->dir);
	squat(SQUAT_DANGLING, sock, missing, NULL);
	daemon_refuses(f, sock, f->db, "is not a socket", group);
	assert_int_equal(lstat(missing, &st), -1);
	assert_int_equal(unlink(sock), 0);
	/* A file, a directory: refused, left as they are. */
	squat(SQUAT_FILE, sock, NULL, NULL);
	daemon_refuses(f, sock, f->db, "is not a socket", group);
	check_owner(sock, OTHER, S_IFREG);
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);
	assert_int_equal(unlink(sock), 0);
	squat(SQUAT_DIR, sock, NULL, NULL);
	daemon_refuses(f, sock, f->db, "is not a socket", group);
	check_owner(sock, OTHER, S_IFDIR);
	assert_int_equal(rmdir(sock), 0);
	/* Someone listening there: refused, and their socket stays. */
	live = squat(SQUAT_LIVE, sock, NULL, &hold);
	daemon_refuses(f, sock, f->db, "(uid 64123) already listens", group);
	check_owner(sock, OTHER, S_IFSOCK);
	/* Its queue full (it never accepts): still refused, not waited on. */
	{
		int queued[16], nq = 0;

		while (nq < 16 && (queued[nq] = connect_to(sock)) >= 0)
			nq++;
		assert_true(nq < 16);
		assert_int_equal(errno, EAGAIN);
		daemon_refuses(f, sock, f->db, "already listens on it (and accepts no", group);
		while (nq > 0)
			close(queued[--nq]);
	}
	check_owner(sock, OTHER, S_IFSOCK);
	close(hold);
	assert_int_equal(wait_exit(live, 5000), 0);
	/* A socket nobody listens on is a dead daemon's: replaced, and ours. */
	check_owner(sock, OTHER, S_IFSOCK);
	{
		char *err;

		assert_int_equal(daemon_try(f, sock, f->db, -1, &err, group), 0);
	}
	check_owner(sock, 0, S_IFSOCK);
	assert_int_equal(lstat(sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, 65534);
	daemon_stop(f);
	assert_int_equal(lstat(sock, &st), -1);
	check_victim(&v);
}

/* ---- 5: directories others may write ------------------------------------- */

static void test_unsafe_dirs(void **state)
{
	struct fx *f = *state;
	char pub[96], owned[96], open_dir[96], path[160], wal[160], sock[160];
	struct victim v;
	struct stat st;
	char *err;

	need_root();
	make_victim(f, &v);
	snprintf(pub, sizeof pub, "%s/pub", f->dir);
	assert_int_equal(mkdir(pub, 0700), 0);
	assert_int_equal(chmod(pub, 01777), 0);
	/*
	 * The database in a sticky world-writable directory, where another user
	 * has put the name of SQLite's log as a link to root's file.
	 */
	snprintf(path, sizeof path, "%s/perch.db", pub);
	snprintf(wal, sizeof wal, "%s/perch.db-wal", pub);
	squat(SQUAT_SYMLINK, wal, v.path, NULL);
	daemon_refuses(f, f->sock, path, "writable by other users", NULL);
	check_victim(&v);
	assert_int_equal(lstat(path, &st), -1);
	/* A directory of another user's, for the socket or the database. */
	snprintf(owned, sizeof owned, "%s/owned", f->dir);
	assert_int_equal(mkdir(owned, 0755), 0);
	assert_int_equal(chown(owned, OTHER, OTHER), 0);
	snprintf(sock, sizeof sock, "%s/perch.sock", owned);
	daemon_refuses(f, sock, f->db, "belongs to uid 64123", NULL);
	snprintf(path, sizeof path, "%s/sub/perch.db", owned);
	daemon_refuses(f, f->sock, path, "belongs to uid 64123", NULL);
	/* Refused before making anything in it. */
	snprintf(path, sizeof path, "%s/sub", owned);
	assert_int_equal(lstat(path, &st), -1);
	/* Root's, but writable by all and not sticky. */
	snprintf(open_dir, sizeof open_dir, "%s/open", f->dir);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	snprintf(sock, sizeof sock, "%s/perch.sock", open_dir);
	daemon_refuses(f, sock, f->db, "writable by other users", NULL);
	/* Under a symbolic link: the same checks on where it leads. */
	snprintf(path, sizeof path, "%s/link", f->dir);
	assert_int_equal(symlink(owned, path), 0);
	snprintf(sock, sizeof sock, "%s/link/perch.sock", f->dir);
	daemon_refuses(f, sock, f->db, "belongs to uid 64123", NULL);
	/* The sticky directory is fine for the socket alone. */
	snprintf(sock, sizeof sock, "%s/perch.sock", pub);
	assert_int_equal(daemon_try(f, sock, f->db, -1, &err, NULL), 0);
	check_owner(sock, 0, S_IFSOCK);
	assert_int_equal(lstat(sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	daemon_stop(f);
}

/* ---- 6: modes whatever the umask ------------------------------------------ */

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static void test_umask(void **state)
{
	struct fx *f = *state;
	static const char *const made[] = { "run", "run/perch", "lib", "lib/perch" };
	char sock[160], db[160], dir[192], wal[192], shm[192], *err, *out, p[24];
	struct child b;
	int code;

	need_root();
	snprintf(sock, sizeof sock, "%s/run/perch/perch.sock", f->dir);
	snprintf(db, sizeof db, "%s/lib/perch/perch.db", f->dir);
	assert_int_equal(daemon_try(f, sock, db, 0, &err, NULL), 0);
	snprintf(f->sock, sizeof f->sock, "%s", sock);
	snprintf(f->db, sizeof f->db, "%s", db);
	burner_as(&b, 0);
	code = perch_as(f, 0, &out, &err, "record", "-p", num(p, b.pid), "-d", "0.5",
			"--no-autostart", NULL);
	assert_int_equal(code, 0);
	free(out);
	free(err);
	assert_int_equal(child_quit(&b), 0);
	snprintf(wal, sizeof wal, "%s-wal", db);
	snprintf(shm, sizeof shm, "%s-shm", db);
	print_message("  umask 000: socket %04o, db %04o, -wal %04o, -shm %04o\n",
		      mode_of(sock), mode_of(db), mode_of(wal), mode_of(shm));
	assert_int_equal(mode_of(sock), 0600);
	assert_int_equal(mode_of(db), 0600);
	assert_int_equal(mode_of(wal), 0600);
	assert_int_equal(mode_of(shm), 0600);
	/* The directories perchd made. */
	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		snprintf(dir, sizeof dir, "%s/%s", f->dir, made[i]);
		assert_int_equal(mode_of(dir), 0700);
	}
	daemon_stop(f);
	/* 0600 in a directory nobody may pass: nobody cannot connect, and is told so. */
	snprintf(f->sock, sizeof f->sock, "%s/perch.sock", f->dir);
	assert_int_equal(daemon_try(f, f->sock, f->db, -1, &err, NULL), 0);
	assert_int_equal(mode_of(f->sock), 0600);
	code = perch_as(f, NOBODY, &out, &err, "status", NULL);
	assert_refusal(code, out, err, "Permission denied");
	daemon_stop(f);
}

/* ---- 7: the client checks who listens ------------------------------------ */

/*
 * As uid, listens on path and takes one connection: what the client sends
 * (until it closes, or a line) comes back through *report once the helper
 * is done.  The helper answers a request line as a daemon would not: with
 * a made-up session, as a squatter feeding fake replies would.
 */
static pid_t fake_daemon(struct fx *f, uid_t uid, const char *path, int *report)
{
	int ready[2], rep[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		struct pollfd p;
		char buf[4096];
		size_t len = 0;
		ssize_t n;
		int lfd, fd;

		close(ready[0]);
		close(rep[0]);
		drop_to(uid);
		/* Anyone may connect, as a squatter would want. */
		umask(0);
		snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
		lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
		    listen(lfd, 4) < 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		p = (struct pollfd){ lfd, POLLIN, 0 };
		if (poll(&p, 1, 20000) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
			_exit(2);
		p = (struct pollfd){ fd, POLLIN, 0 };
		while (len < sizeof buf && memchr(buf, '\n', len) == NULL &&
		       poll(&p, 1, 10000) == 1 && (n = read(fd, buf + len, sizeof buf - len)) > 0)
			len += (size_t)n;
		if (memchr(buf, '\n', len) != NULL)
			dprintf(fd, "{\"v\":1,\"id\":1,\"ok\":true,\"session\":4242,\"pid\":1}\n");
		if (len > 0 && write(rep[1], buf, len) != (ssize_t)len)
			_exit(3);
		_exit(0);
	}
	track(f, pid);
	close(ready[1]);
	close(rep[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*report = rep[0];
	return pid;
}

/* What the fake daemon was sent; waits for it to end. */
static char *fake_daemon_got(struct fx *f, pid_t pid, int report)
{
	char *got = slurp_fd(report);

	close(report);
	assert_int_equal(wait_exit(pid, 25000), 0);
	for (int i = 0; i < MAX_PROCS; i++)
		if (f->procs[i] == pid)
			f->procs[i] = 0;
	return got;
}

/*
 * A socket in a shared directory taken by another user before perchd (or
 * instead of it): perch refuses it, naming its uid and the path, and sends
 * nothing.  The user's own listener and root's perchd are talked to.
 */
static void test_client_checks_daemon(void **state)
{
	struct fx *f = *state;
	char pub[96], *out, *err, *got, p[24];
	int report, code;
	struct child b;
	pid_t fake;

	need_root();
	snprintf(pub, sizeof pub, "%s/pub", f->dir);
	assert_int_equal(mkdir(pub, 0700), 0);
	assert_int_equal(chmod(pub, 01777), 0);
	snprintf(f->sock, sizeof f->sock, "%s/perch.sock", pub);
	burner_as(&b, NOBODY);

	fake = fake_daemon(f, OTHER, f->sock, &report);
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, b.pid), "-d", "1", NULL);
	if (strstr(err, f->sock) == NULL)
		fail_msg("the refusal does not name %s: %s", f->sock, err);
	assert_refusal(code, out, err, "runs as uid 64123");
	got = fake_daemon_got(f, fake, report);
	assert_string_equal(got, "");
	free(got);
	/* Root is refused such a daemon too (it is nobody's to trust). */
	assert_int_equal(unlink(f->sock), 0);
	fake = fake_daemon(f, OTHER, f->sock, &report);
	code = perch_as(f, 0, &out, &err, "status", NULL);
	assert_refusal(code, out, err, "runs as uid 64123");
	got = fake_daemon_got(f, fake, report);
	assert_string_equal(got, "");
	free(got);

	/* The user's own listener is a daemon of theirs: it gets the request. */
	assert_int_equal(unlink(f->sock), 0);
	fake = fake_daemon(f, NOBODY, f->sock, &report);
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, b.pid), "-d", "1", NULL);
	print_message("  own listener: exit %d, stderr %s", code, err);
	free(out);
	free(err);
	got = fake_daemon_got(f, fake, report);
	if (strstr(got, "\"start\"") == NULL || strstr(got, num(p, b.pid)) == NULL)
		fail_msg("nobody's own listener did not get the start request: '%s'", got);
	free(got);

	/*
	 * A listener that never accepts, its queue full: perch says so and
	 * exits, instead of waiting in connect for ever.
	 */
	assert_int_equal(unlink(f->sock), 0);
	{
		int queued[16], nq = 0, hold;
		pid_t live = squat(SQUAT_LIVE, f->sock, NULL, &hold);

		while (nq < 16 && (queued[nq] = connect_to(f->sock)) >= 0)
			nq++;
		assert_true(nq < 16);
		code = perch_as(f, 0, &out, &err, "status", NULL);
		assert_refusal(code, out, err, "accepts no connections");
		while (nq > 0)
			close(queued[--nq]);
		close(hold);
		assert_int_equal(wait_exit(live, 5000), 0);
	}

	/* Root's perchd, reachable by nobody through --group. */
	assert_int_equal(unlink(f->sock), 0);
	daemon_start(f, (const char *const[]){ "--group", "65534", NULL });
	code = perch_as(f, NOBODY, &out, &err, "status", NULL);
	print_message("  root's perchd: exit %d, stderr %s", code, err);
	assert_int_equal(code, 0);
	free(out);
	free(err);
	daemon_stop(f);
	assert_int_equal(child_quit(&b), 0);
}

/* ---- 8: Yama's ptrace_scope --------------------------------------------- */

static void set_scope(struct fx *f, const char *text)
{
	int fd = open(f->scope, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * As uid, forks a child of its own and asks perchd to profile it (for
 * duration_s), as a program profiling its own worker would.  The reply.
 */
static json_object *start_own_child_as(struct fx *f, uid_t uid, double duration_s)
{
	char *text;
	json_object *o;
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char line[160];
		pid_t child;

		close(fds[0]);
		drop_to(uid);
		if (prctl(PR_SET_DUMPABLE, 1) < 0)
			_exit(125);
		child = fork();
		if (child == 0) {
			/* Gone with its parent; the pipe's end is the test's to see closed. */
			close(fds[1]);
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
				_exit(1);
			for (;;)
				pause();
		}
		snprintf(line, sizeof line, "{\"v\":1,\"id\":1,\"op\":\"start\",\"pid\":%d,"
			 "\"duration_s\":%g}", (int)child, duration_s);
		exchange(f->sock, line, fds[1]);
	}
	close(fds[1]);
	text = slurp_fd(fds[0]);
	close(fds[0]);
	assert_int_equal(wait_exit(pid, 15000), 0);
	o = json_tokener_parse(text);
	if (o == NULL)
		fail_msg("unreadable reply: '%s'", text);
	free(text);
	return o;
}

/*
 * What the kernel would let the client do, read from the scope file at
 * every request: 1, only its own descendants; 2, only root; 3, nobody, and
 * perchd says so when it starts.
 */
static void test_yama(void **state)
{
	struct fx *f = *state;
	char *out, *err, p[24], log[160];
	json_object *r;
	struct child b;
	int code;

	need_root();
	snprintf(f->scope, sizeof f->scope, "%s/ptrace_scope", f->dir);
	set_scope(f, "1\n");
	daemon_start(f, (const char *const[]){ "--group", "65534", NULL });
	burner_as(&b, NOBODY);

	/* Scope 1: nobody's burner is not a descendant of nobody's perch. */
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, b.pid), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "not a descendant");
	/* A process's own child is. */
	r = start_own_child_as(f, NOBODY, 0.2);
	assert_true(get_int(r, "session") > 0);
	json_object_put(r);
	/* Root is not bound by it. */
	code = perch_as(f, 0, &out, &err, "record", "-p", num(p, b.pid), "-d", "0.3",
			"--no-autostart", NULL);
	print_message("  root under scope 1: exit %d\n", code);
	assert_int_equal(code, 0);
	free(out);
	free(err);

	/* Read again at each request: 0 lets nobody record its burner. */
	set_scope(f, "0\n");
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, b.pid), "-d", "0.3",
			"--no-autostart", NULL);
	assert_int_equal(code, 0);
	free(out);
	free(err);

	/* Scope 2: only root, even for a child of the client's own. */
	set_scope(f, "2\n");
	assert_error(start_own_child_as(f, NOBODY, 0.2), "not-permitted");
	code = perch_as(f, NOBODY, &out, &err, "record", "-p", num(p, b.pid), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "only root");

	/* Scope 3: root too. */
	set_scope(f, "3\n");
	code = perch_as(f, 0, &out, &err, "record", "-p", num(p, b.pid), "-d", "1",
			"--no-autostart", NULL);
	assert_refusal(code, out, err, "ptrace is disabled on this host");
	daemon_stop(f);

	/* Started under scope 3, perchd says at once that it can do nothing. */
	daemon_start(f, NULL);
	snprintf(log, sizeof log, "%s/out.%d", f->dir, f->nfiles);
	daemon_stop(f);
	{
		int fd = open(log, O_RDONLY | O_CLOEXEC);
		char *text;

		assert_true(fd >= 0);
		text = slurp_fd(fd);
		close(fd);
		print_message("  perchd's log: %s", text);
		if (strstr(text, "ptrace is disabled on this host") == NULL)
			fail_msg("perchd did not say that ptrace is disabled: %s", text);
		free(text);
	}
	assert_int_equal(child_quit(&b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setuid_children_and_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_squatting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_checks_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yama, setup, teardown),
	};

	/* Replies and helpers' pipes must not kill the test on a closed end. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
