/*
 * perchd and the perch client as a user runs them: each test starts its own
 * `perchd --foreground` on a socket and database in a temporary directory,
 * drives the real `perch` binary with PERCH_SOCKET and PERCH_DB set, and
 * reads the database read-only with SQLite.  Tests profile only targets they
 * started; the teardown kills every process a test started and removes its
 * directory (and a tmpfs it mounted), whatever failed.
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "db.h"
#include "samplecodec.h"
#include "spawn.h"

#define PERCH PERCH_BIN_DIR "/client/perch"
#define PERCHD PERCH_BIN_DIR "/daemon/perchd"
#define SETPRIV "/usr/bin/setpriv"
#define NOBODY 65534
#define MAX_CLIENTS 16

/* One test's world: its directory, daemon, clients and mount. */
struct fx {
	char dir[64];
	char sock[128], db[192], log[192];
	pid_t daemon;			/* our perchd, 0 when not running */
	char mnt[128];			/* a tmpfs we mounted, or "" */
	pid_t clients[MAX_CLIENTS];	/* commands started, not yet reaped */
	int nfiles;			/* numbers the output files */
};

/* A command started by a test: perch, perchd, or another program. */
struct cmd {
	pid_t pid;
	char out_path[160], err_path[160];
	unsigned long long started;
	int status;			/* wait status */
	double secs;			/* from start to exit */
	char *out, *err;		/* what it printed */
};

/* ---- processes ---------------------------------------------------------- */

static double secs_since(unsigned long long t0)
{
	return (double)(mono_ns() - t0) / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void track_client(struct fx *f, pid_t pid, bool add)
{
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (add ? f->clients[i] == 0 : f->clients[i] == pid) {
			f->clients[i] = add ? pid : 0;
			return;
		}
	}
	assert_false(add);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fd < 0 ? 0 : read(fd, buf + len, cap - len - 1);
		len += n > 0 ? (size_t)n : 0;
	} while (n > 0);
	buf[len] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

/* The child side of start_cmd: never returns. */
static void exec_child(const struct fx *f, const struct cmd *c, uid_t uid,
		       const char *const *argv)
{
	int out = open(c->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(c->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* If the test process dies, what it started dies with it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (out < 0 || err < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(err, 2) < 0)
		_exit(126);
	setenv("PERCH_SOCKET", f->sock, 1);
	setenv("PERCH_DB", f->db, 1);
	/* A daemon autostarted by mistake would outlive the test: refuse. */
	setenv("PERCH_DAEMON", "/nonexistent/perchd", 1);
	if (uid != 0 && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
		_exit(126);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

/* Starts argv (argv[0] a path) as uid with stdout and stderr to files. */
static void start_cmd(struct fx *f, struct cmd *c, uid_t uid, const char *const *argv)
{
	memset(c, 0, sizeof *c);
	f->nfiles++;
	snprintf(c->out_path, sizeof c->out_path, "%s/out.%d", f->dir, f->nfiles);
	snprintf(c->err_path, sizeof c->err_path, "%s/err.%d", f->dir, f->nfiles);
	c->started = mono_ns();
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0)
		exec_child(f, c, uid, argv);
	track_client(f, c->pid, true);
}

/* Waits at most timeout_ms for c; returns false (c still running) on timeout. */
static bool wait_cmd(struct fx *f, struct cmd *c, long timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;
	pid_t r;

	while ((r = waitpid(c->pid, &c->status, WNOHANG)) == 0) {
		if (mono_ns() > deadline)
			return false;
		sleep_ms(5);
	}
	assert_int_equal(r, c->pid);
	c->secs = secs_since(c->started);
	track_client(f, c->pid, false);
	free(c->out);
	free(c->err);
	c->out = slurp(c->out_path);
	c->err = slurp(c->err_path);
	return true;
}

static void free_cmd(struct cmd *c)
{
	free(c->out);
	free(c->err);
	c->out = c->err = NULL;
}

static int exit_code(const struct cmd *c)
{
	return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status);
}

/* Collects the NULL-terminated arguments after "perch". */
static void perch_argv(const char **argv, size_t max, va_list ap)
{
	size_t n = 1;

	argv[0] = PERCH;
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < max);
}

/* Starts perch as uid in the background. */
static void perch_bg(struct fx *f, struct cmd *c, uid_t uid, ...)
{
	const char *argv[24];
	va_list ap;

	va_start(ap, uid);
	perch_argv(argv, 24, ap);
	va_end(ap);
	start_cmd(f, c, uid, argv);
}

/* Runs perch as uid and waits for it (30 s at most: more is a hang). */
static void perch_va(struct fx *f, struct cmd *c, uid_t uid, va_list ap)
{
	const char *argv[24];

	perch_argv(argv, 24, ap);
	start_cmd(f, c, uid, argv);
	if (!wait_cmd(f, c, 30000))
		fail_msg("perch %s %s did not finish in 30 s", argv[1], argv[2] ? argv[2] : "");
}

static void perch(struct fx *f, struct cmd *c, uid_t uid, ...)
{
	va_list ap;

	va_start(ap, uid);
	perch_va(f, c, uid, ap);
	va_end(ap);
}

/* A refusal: non-zero exit, one "perch: " line on stderr naming what. */
static void assert_refused(const struct cmd *c, const char *what)
{
	size_t len = strlen(c->err);

	if (exit_code(c) == 0 || len == 0 || strncmp(c->err, "perch: ", 7) != 0 ||
	    strchr(c->err, '\n') != c->err + len - 1 ||
	    (what != NULL && strstr(c->err, what) == NULL))
		fail_msg("expected one error line with '%s'; got exit %d, stdout '%s', stderr '%s'",
			 what ? what : "", exit_code(c), c->out, c->err);
}

/* Runs perch as uid, which must exit 0. */
static void perch_ok(struct fx *f, uid_t uid, ...)
{
	struct cmd c;
	va_list ap;

	va_start(ap, uid);
	perch_va(f, &c, uid, ap);
	va_end(ap);
	assert_int_equal(exit_code(&c), 0);
	free_cmd(&c);
}

/* Runs perch as uid, which must refuse naming what (see assert_refused). */
static void perch_refused(struct fx *f, uid_t uid, const char *what, ...)
{
	struct cmd c;
	va_list ap;

	va_start(ap, what);
	perch_va(f, &c, uid, ap);
	va_end(ap);
	assert_refused(&c, what);
	free_cmd(&c);
}

/* ---- the daemon ----------------------------------------------------------- */

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Reads one reply line into buf.  Returns its length, 0 when the daemon
 * closed the connection first, -1 after timeout_ms without a whole line.
 */
static ssize_t read_reply(int fd, char *buf, size_t size, int timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;
	size_t len = 0;

	while (len + 1 < size) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		long long left = (long long)(deadline - mono_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		/* A byte at a time: the next reply stays in the socket. */
		n = read(fd, buf + len, 1);
		if (n <= 0)
			return 0;
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* One request on a fresh connection; the parsed reply or NULL. */
static json_object *call(const struct fx *f, const char *request)
{
	char buf[65536];
	int fd = connect_to(f->sock);
	json_object *o = NULL;

	if (fd < 0)
		return NULL;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) == (ssize_t)strlen(request) &&
	    read_reply(fd, buf, sizeof buf, 10000) > 0)
		o = json_tokener_parse(buf);
	close(fd);
	return o;
}

/* o's member key, which must be there (borrowed from o). */
static json_object *member(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	return v;
}

/* The last object of array arr whose member key is id, or NULL (borrowed). */
static json_object *find_entry(json_object *arr, const char *key, int64_t id)
{
	json_object *found = NULL, *v;

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (json_object_object_get_ex(o, key, &v) && json_object_get_int64(v) == id)
			found = o;
	}
	return found;
}

static bool daemon_answers(const struct fx *f)
{
	json_object *o = call(f, "{\"v\":1,\"id\":1,\"op\":\"version\"}\n"), *ok;
	bool yes = o != NULL && json_object_object_get_ex(o, "ok", &ok) &&
		   json_object_get_boolean(ok);

	json_object_put(o);
	return yes;
}

/*
 * Starts perchd --foreground with the extra NULL-terminated arguments and
 * waits until it answers.  Its stderr goes to f->log.
 */
static void daemon_start(struct fx *f, ...)
{
	const char *argv[16] = { PERCHD, "--foreground", "--socket", f->sock, "--db", f->db };
	size_t n = 6;
	struct cmd c;
	va_list ap;

	va_start(ap, f);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < 16);
	va_end(ap);
	start_cmd(f, &c, 0, argv);
	snprintf(f->log, sizeof f->log, "%s", c.err_path);
	f->daemon = c.pid;
	for (int i = 0; i < 500 && !daemon_answers(f); i++) {
		if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
			track_client(f, c.pid, false);
			f->daemon = 0;
			fail_msg("perchd exited at start: %s", slurp(c.err_path));
		}
		sleep_ms(10);
	}
	assert_true(daemon_answers(f));
}

/* Signals our daemon and waits at most timeout_ms; false if it stays. */
static bool daemon_kill(struct fx *f, int sig, long timeout_ms, int *status)
{
	struct cmd c = { .pid = f->daemon, .started = mono_ns() };

	assert_true(f->daemon > 0);
	kill(f->daemon, sig);
	if (!wait_cmd(f, &c, timeout_ms))
		return false;
	*status = c.status;
	free_cmd(&c);
	f->daemon = 0;
	return true;
}

/* The daemon is still running; else what it said. */
static void assert_daemon_alive(struct fx *f)
{
	int status;

	assert_true(f->daemon > 0);
	if (waitpid(f->daemon, &status, WNOHANG) == f->daemon) {
		track_client(f, f->daemon, false);
		f->daemon = 0;
		fail_msg("perchd died (status 0x%x): %s", status, slurp(f->log));
	}
}

/* Waits until the daemon reports a session of pid with samples; its id. */
static int64_t wait_recording(const struct fx *f, pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		json_object *o = call(f, "{\"v\":1,\"id\":2,\"op\":\"status\"}\n"), *arr, *v;

		if (o != NULL && json_object_object_get_ex(o, "sessions", &arr)) {
			for (size_t j = 0; j < json_object_array_length(arr); j++) {
				json_object *s = json_object_array_get_idx(arr, j);
				int64_t id;

				json_object_object_get_ex(s, "session", &v);
				id = json_object_get_int64(v);
				json_object_object_get_ex(s, "pid", &v);
				if (json_object_get_int(v) != pid)
					continue;
				json_object_object_get_ex(s, "samples", &v);
				if (json_object_get_int64(v) >= 5) {
					json_object_put(o);
					return id;
				}
			}
		}
		json_object_put(o);
		sleep_ms(20);
	}
	fail_msg("no session of pid %d is recording", (int)pid);
	return -1;
}

/* ---- the database --------------------------------------------------------- */

static sqlite3 *db_ro(const struct fx *f)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* The first column of the first row of sql, with ?1 bound to id. */
static int64_t q_int(sqlite3 *db, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	int64_t v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("no row for %s (?1 = %" PRId64 "): %s", sql, id, sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Same for text, copied into buf ("" for NULL). */
static const char *q_text(sqlite3 *db, const char *sql, int64_t id, char *buf, size_t size)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("no row for %s (?1 = %" PRId64 ")", sql, id);
	snprintf(buf, size, "%s", sqlite3_column_text(st, 0) ?
		 (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_finalize(st);
	return buf;
}

static void assert_status(const struct fx *f, int64_t id, const char *want)
{
	char status[32];
	sqlite3 *db = db_ro(f);

	q_text(db, "SELECT status FROM sessions WHERE id = ?1", id, status, sizeof status);
	sqlite3_close(db);
	if (strcmp(status, want) != 0)
		fail_msg("session %" PRId64 " is '%s', expected '%s'", id, status, want);
}

struct decoded {
	uint32_t thread, stack;
	char state;
	uint64_t time_ns;
};

struct decode_ctx {
	struct decoded *v;
	size_t n, cap;
	uint32_t thread;
	uint64_t last_ns;		/* of this thread so far */
	bool backwards;
};

static int on_sample(void *arg, const struct codec_sample *s)
{
	struct decode_ctx *d = arg;

	if (s->time_ns < d->last_ns)
		d->backwards = true;
	d->last_ns = s->time_ns;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 1024;
		d->v = realloc(d->v, d->cap * sizeof *d->v);
		assert_non_null(d->v);
	}
	d->v[d->n++] = (struct decoded){ d->thread, s->stack_id, s->state, s->time_ns };
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const struct decoded *x = a, *y = b;

	if (x->thread != y->thread)
		return x->thread < y->thread ? -1 : 1;
	if (x->stack != y->stack)
		return x->stack < y->stack ? -1 : 1;
	return (x->state > y->state) - (x->state < y->state);
}

/* Decodes every chunk of a session: counts agree, times never go back. */
static void decode_chunks(sqlite3 *db, int64_t id, struct decode_ctx *d)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT thread_id, first_ns, last_ns, samples, "
					    "data FROM sample_chunks WHERE session_id = ?1 "
					    "ORDER BY thread_id, first_ns", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint32_t thread = (uint32_t)sqlite3_column_int(st, 0);
		long n;

		if (thread != d->thread || d->n == 0)
			d->last_ns = 0;
		d->thread = thread;
		n = codec_decode(sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4),
				 (uint64_t)sqlite3_column_int64(st, 1), on_sample, d);
		assert_int_equal(n, sqlite3_column_int64(st, 3));
		assert_int_equal(d->last_ns, (uint64_t)sqlite3_column_int64(st, 2));
	}
	sqlite3_finalize(st);
	assert_false(d->backwards);
}

/* The raw samples tally to exactly the counts table. */
static void compare_counts(sqlite3 *db, int64_t id, struct decode_ctx *d)
{
	sqlite3_stmt *st;
	size_t i = 0;

	qsort(d->v, d->n, sizeof *d->v, by_key);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT thread_id, stack_id, state, samples "
					    "FROM counts WHERE session_id = ?1 "
					    "ORDER BY thread_id, stack_id, state", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct decoded key = { (uint32_t)sqlite3_column_int(st, 0),
				       (uint32_t)sqlite3_column_int(st, 1),
				       (char)sqlite3_column_text(st, 2)[0], 0 };
		int64_t run = 0;

		while (i < d->n && by_key(&d->v[i], &key) == 0) {
			run++;
			i++;
		}
		if (run != sqlite3_column_int64(st, 3))
			fail_msg("counts (thread %u, stack %u, %c) = %lld, raw samples %lld",
				 key.thread, key.stack, key.state,
				 (long long)sqlite3_column_int64(st, 3), (long long)run);
	}
	sqlite3_finalize(st);
	assert_int_equal(i, d->n);
}

/*
 * What every stored session must satisfy: totals, counts and raw samples
 * agree, and every id refers to a row.  Returns thread_samples.
 */
static int64_t check_session_data(const struct fx *f, int64_t id)
{
	sqlite3 *db = db_ro(f);
	struct decode_ctx d = { 0 };
	int64_t ts;

	ts = q_int(db, "SELECT thread_samples FROM sessions WHERE id = ?1", id);
	assert_int_equal(ts, q_int(db, "SELECT coalesce(sum(samples), 0) FROM counts "
				   "WHERE session_id = ?1", id));
	assert_int_equal(q_int(db, "SELECT count(*) FROM counts c WHERE session_id = ?1 AND "
			       "NOT EXISTS (SELECT 1 FROM stack_nodes n WHERE n.session_id = "
			       "c.session_id AND n.id = c.stack_id)", id), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM stack_nodes n WHERE session_id = ?1 "
			       "AND (NOT EXISTS (SELECT 1 FROM frames f WHERE f.session_id = ?1 "
			       "AND f.id = n.frame_id) OR (parent_id != 0 AND NOT EXISTS "
			       "(SELECT 1 FROM stack_nodes p WHERE p.session_id = ?1 AND "
			       "p.id = n.parent_id)))", id), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM counts c WHERE session_id = ?1 AND "
			       "NOT EXISTS (SELECT 1 FROM threads t WHERE t.session_id = ?1 "
			       "AND t.id = c.thread_id)", id), 0);
	decode_chunks(db, id, &d);
	assert_int_equal(d.n, ts);
	compare_counts(db, id, &d);
	free(d.v);
	sqlite3_close(db);
	return ts;
}

/* Samples of a session whose leaf frame is func (threads named like name). */
static int64_t leaf_samples(sqlite3 *db, int64_t id, const char *func, const char *name)
{
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT coalesce(sum(c.samples), 0) FROM counts c "
		"JOIN threads t ON t.session_id = c.session_id AND t.id = c.thread_id "
		"LEFT JOIN stack_nodes n ON n.session_id = c.session_id AND n.id = c.stack_id "
		"LEFT JOIN frames fr ON fr.session_id = c.session_id AND fr.id = n.frame_id "
		"WHERE c.session_id = ?1 AND t.name LIKE ?3 AND (?2 IS NULL OR fr.func = ?2)",
		-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	if (func != NULL)
		sqlite3_bind_text(st, 2, func, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * Ticks of a session of secs at rate_hz are rate x duration within 10 %: the
 * daemon's warm-up sample is not counted, and its clock starts after it.
 * Ticks a stall made the sampler skip (it never bursts to catch up) are
 * counted late, and those only may make up a shortfall: a session's JSON
 * (o) has both numbers.
 */
static void assert_samples_near(json_object *o, double rate_hz, double secs)
{
	int64_t samples = json_object_get_int64(member(o, "samples"));
	int64_t late = json_object_get_int64(member(o, "late_samples"));
	double want = rate_hz * secs;

	if ((double)(samples + late) < want * 0.9 || (double)samples > want * 1.1)
		fail_msg("%" PRId64 " samples (%" PRId64 " late) in %.1f s at %.0f Hz: expected"
			 " %.0f +- 10 %%", samples, late, secs, rate_hz, want);
}

/*
 * func is the leaf (innermost frame) of more samples than any other function,
 * all threads of the session counted; a sample with no frame counts under "?".
 */
static void assert_top_leaf(sqlite3 *db, int64_t id, const char *func)
{
	sqlite3_stmt *st;
	char top[3][128] = { "", "", "" };
	int64_t n[3] = { 0, 0, 0 };
	int rows = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT coalesce(fr.func, '?'), sum(c.samples) AS s FROM counts c "
		"LEFT JOIN stack_nodes n ON n.session_id = c.session_id AND n.id = c.stack_id "
		"LEFT JOIN frames fr ON fr.session_id = c.session_id AND fr.id = n.frame_id "
		"WHERE c.session_id = ?1 GROUP BY 1 ORDER BY s DESC, 1 LIMIT 3",
		-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	while (rows < 3 && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(top[rows], sizeof top[rows], "%s", sqlite3_column_text(st, 0));
		n[rows++] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	print_message("top leaf functions: %s %" PRId64 ", %s %" PRId64 ", %s %" PRId64 "\n",
		      top[0], n[0], top[1], n[1], top[2], n[2]);
	if (rows == 0 || strcmp(top[0], func) != 0 || (rows > 1 && n[1] >= n[0]))
		fail_msg("the top leaf function is '%s' (%" PRId64 " samples; next '%s', %"
			 PRId64 "), expected %s first", top[0], n[0], top[1], n[1], func);
}

/* ---- targets -------------------------------------------------------------- */

static const char *pid_str(pid_t pid)
{
	static char bufs[4][16];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof bufs[0], "%d", (int)pid);
	return b;
}

/* Starts `perch record -p pid` in rec until stopped; the session's id once it records. */
static int64_t record_bg(struct fx *f, struct cmd *rec, pid_t pid)
{
	perch_bg(f, rec, 0, "record", "-p", pid_str(pid), "--no-autostart", NULL);
	return wait_recording(f, pid);
}

/*
 * The text of a /proc status file in buf[size] (empty if unreadable), or
 * false when it cannot be opened: the process or thread is gone.
 */
static bool read_status(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return true;
}

/* TracerPid of one thread, or -1 when gone. */
static int thread_tracer(pid_t pid, pid_t tid)
{
	char path[96], buf[4096];
	const char *p;

	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (!read_status(path, buf, sizeof buf))
		return -1;
	p = strstr(buf, "TracerPid:");
	return p ? atoi(p + 10) : -1;
}

/* Whether every thread of pid runs free: not stopped, not traced. */
static bool untraced(pid_t pid, int want_threads, char *why, size_t size)
{
	pid_t tids[256];
	int n = proc_threads(pid, tids, 256);

	if (n < want_threads) {
		snprintf(why, size, "%d threads, expected %d", n, want_threads);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char st = proc_state(pid, tids[i]);
		int tracer = thread_tracer(pid, tids[i]);

		if (st == 't' || st == 'T' || st == 0 || tracer != 0) {
			snprintf(why, size, "thread %d: state '%c', TracerPid %d",
				 (int)tids[i], st ? st : '-', tracer);
			return false;
		}
	}
	return true;
}

/* The target is left running free within 2 s, and keeps using CPU. */
static void assert_untraced(pid_t pid, int want_threads)
{
	char why[128] = "";
	unsigned long long cpu;

	for (int i = 0; i < 100 && !untraced(pid, want_threads, why, sizeof why); i++)
		sleep_ms(20);
	if (!untraced(pid, want_threads, why, sizeof why))
		fail_msg("target %d not left alone: %s", (int)pid, why);
	cpu = proc_utime(pid);
	sleep_ms(200);
	assert_true(proc_utime(pid) > cpu);
}

/* The effective uid of a process, or -1. */
static long process_uid(pid_t pid)
{
	char path[64], buf[4096];
	const char *p;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!read_status(path, buf, sizeof buf))
		return -1;
	p = strstr(buf, "\nUid:");
	return p ? strtol(p + 5, NULL, 10) : -1;
}

static void spawn_or_fail(struct child *c, const char *name, const char *const *args)
{
	if (spawn_target(c, name, args) < 0)
		fail_msg("cannot start target %s", name);
}

/* ---- setup and teardown --------------------------------------------------- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/perch-test-daemon-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	/* Searchable by nobody, who connects to the socket in it (test_access). */
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

/*
 * Whether a sanitizer (PERCH_SANITIZE builds) reported anything on the
 * stderr of a command the test ran, the daemon included; prints it.
 */
static bool sanitizer_reports(const struct fx *f)
{
	bool found = false;

	for (int i = 1; i <= f->nfiles; i++) {
		char path[160], *text;

		snprintf(path, sizeof path, "%s/err.%d", f->dir, i);
		text = slurp(path);
		if (strstr(text, "runtime error:") || strstr(text, "AddressSanitizer") ||
		    strstr(text, "LeakSanitizer")) {
			print_error("sanitizer report in %s:\n%s\n", path, text);
			found = true;
		}
		free(text);
	}
	return found;
}

/* Stops our daemon gently (so that a sanitizer reports leaks), else kills it. */
static void stop_daemon(struct fx *f)
{
	int status;

	if (f->daemon > 0 && !daemon_kill(f, SIGTERM, 5000, &status)) {
		print_error("perchd did not stop in 5 s after SIGTERM\n");
		kill(f->daemon, SIGKILL);
	}
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bool reports;

	stop_daemon(f);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (f->clients[i] > 0) {
			kill(f->clients[i], SIGKILL);
			waitpid(f->clients[i], NULL, 0);
		}
	}
	spawn_kill_all();
	reports = sanitizer_reports(f);
	if (f->mnt[0] != '\0')
		umount2(f->mnt, MNT_DETACH);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return reports ? -1 : 0;
}

/* ---- 1, 2: recording ------------------------------------------------------ */

static void test_record(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct cmd c;
	json_object *arr, *s;
	int64_t id = 0, all, alpha, kernel, stopped;
	double share;
	char names[3][32], want[128];
	sqlite3 *db;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	/*
	 * 4 s, about 780 samples of the two workers: the kernel's samples vary
	 * as independent ones do (±1.6 points here), and the check below
	 * allows 5 (docs/DESIGN.md, "Running threads: kernel samples").
	 */
	perch(f, &c, 0, "record", "-p", pid_str(burner.pid), "-d", "4", NULL);
	assert_int_equal(exit_code(&c), 0);
	if (strstr(c.out, "session ") == NULL ||
	    sscanf(strstr(c.out, "session "), "session %" SCNd64 ": complete", &id) != 1)
		fail_msg("record printed '%s'", c.out);
	free_cmd(&c);

	perch(f, &c, 0, "sessions", "--json", NULL);
	assert_int_equal(exit_code(&c), 0);
	arr = json_tokener_parse(c.out);
	assert_non_null(arr);
	s = find_entry(arr, "session", id);
	assert_non_null(s);
	assert_string_equal(json_object_get_string(member(s, "status")), "complete");
	assert_samples_near(s, 99, 4);
	json_object_put(arr);
	free_cmd(&c);

	check_session_data(f, id);
	db = db_ro(f);
	assert_int_equal(q_int(db, "SELECT count(*) FROM threads WHERE session_id = ?1", id), 3);
	assert_int_equal(q_int(db, "SELECT count(*) FROM threads WHERE session_id = ?1 AND "
			       "pid = tid", id), 1);
	q_text(db, "SELECT name FROM threads WHERE session_id = ?1 ORDER BY name LIMIT 1",
	       id, names[0], sizeof names[0]);
	q_text(db, "SELECT name FROM threads WHERE session_id = ?1 ORDER BY name LIMIT 1 "
	       "OFFSET 1", id, names[1], sizeof names[1]);
	q_text(db, "SELECT name FROM threads WHERE session_id = ?1 ORDER BY name LIMIT 1 "
	       "OFFSET 2", id, names[2], sizeof names[2]);
	assert_string_equal(names[0], "burner");
	assert_string_equal(names[1], "burner-0");
	assert_string_equal(names[2], "burner-1");
	assert_true(q_int(db, "SELECT count(*) FROM frames WHERE session_id = ?1 AND "
			  "func = 'burn_alpha'", id) > 0);
	assert_true(q_int(db, "SELECT count(*) FROM frames WHERE session_id = ?1 AND "
			  "func = 'burn_beta'", id) > 0);
	all = leaf_samples(db, id, NULL, "burner-%");
	alpha = leaf_samples(db, id, "burn_alpha", "burner-%");
	share = all > 0 ? 100.0 * (double)alpha / (double)all : 0;
	print_message("burn_alpha: %.1f %% of %" PRId64 " worker samples\n", share, all);
	if (share < 70 || share > 80)
		fail_msg("burn_alpha is the leaf in %.1f %% of worker samples, expected 75 +- 5",
			 share);
	assert_top_leaf(db, id, "burn_alpha");
	/*
	 * How its running threads were sampled, for readers: by the kernel
	 * where perf events are allowed, stops otherwise; each running
	 * thread-sample is one or the other, and the header says which.
	 */
	q_text(db, "SELECT sampling FROM sessions WHERE id = ?1", id, names[0], sizeof names[0]);
	assert_string_equal(names[0], "kernel");
	assert_int_equal(q_int(db, "SELECT max_stops FROM sessions WHERE id = ?1", id),
			 sysconf(_SC_NPROCESSORS_ONLN));
	kernel = q_int(db, "SELECT kernel_samples FROM sessions WHERE id = ?1", id);
	stopped = q_int(db, "SELECT stopped_samples FROM sessions WHERE id = ?1", id);
	print_message("%" PRId64 " kernel samples, %" PRId64 " stops\n", kernel, stopped);
	assert_true(kernel + stopped >= all / 2);
	assert_true(kernel + stopped <= q_int(db, "SELECT thread_samples FROM sessions "
					      "WHERE id = ?1", id));
	sqlite3_close(db);
	perch(f, &c, 0, "flat", "last", NULL);
	assert_int_equal(exit_code(&c), 0);
	snprintf(want, sizeof want, "running threads: kernel samples %" PRId64 ", stops %" PRId64,
		 kernel, stopped);
	if (strstr(c.out, want) == NULL)
		fail_msg("no '%s' in the header:\n%s", want, c.out);
	free_cmd(&c);
	assert_int_equal(child_quit(&burner), 0);
}

static void test_record_json(void **state)
{
	struct fx *f = *state;
	struct child burner;
	json_object *o, *v;
	struct cmd c;
	sqlite3 *db;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	perch(f, &c, 0, "record", "-p", pid_str(burner.pid), "-d", "1", "--json",
	      "--no-autostart", NULL);
	assert_int_equal(exit_code(&c), 0);
	o = json_tokener_parse(c.out);
	if (o == NULL || !json_object_is_type(o, json_type_object))
		fail_msg("record --json printed '%s'", c.out);
	v = member(o, "session");
	assert_true(json_object_is_type(v, json_type_int));
	assert_true(json_object_get_int64(v) > 0);
	db = db_ro(f);
	assert_true(q_int(db, "SELECT count(*) FROM sessions WHERE id = ?1",
			  json_object_get_int64(v)) == 1);
	sqlite3_close(db);
	v = member(o, "status");
	assert_true(json_object_is_type(v, json_type_string));
	assert_string_equal(json_object_get_string(v), "complete");
	v = member(o, "samples");
	assert_true(json_object_is_type(v, json_type_int));
	assert_true(json_object_get_int64(v) > 0);
	json_object_put(o);
	free_cmd(&c);
	assert_int_equal(child_quit(&burner), 0);
}

/* ---- 3, 4: stopping a recording ------------------------------------------ */

static void test_ctrl_c(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct cmd rec;
	int64_t id;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	id = record_bg(f, &rec, burner.pid);
	sleep_ms(1000);
	kill(rec.pid, SIGINT);
	if (!wait_cmd(f, &rec, 5000))
		fail_msg("perch record still runs 5 s after SIGINT");
	if (exit_code(&rec) != 0)
		fail_msg("record exited %d after SIGINT: %s", exit_code(&rec), rec.err);
	assert_non_null(strstr(rec.out, "stopped"));
	assert_status(f, id, "stopped");
	assert_true(check_session_data(f, id) > 0);
	free_cmd(&rec);
	assert_untraced(burner.pid, 3);
	assert_int_equal(child_quit(&burner), 0);
}

/* The session id in a `perch status --json` array, with its fields checked. */
static void check_status_json(const char *out, int64_t id)
{
	json_object *arr = json_tokener_parse(out), *s, *v;

	if (arr == NULL || !json_object_is_type(arr, json_type_array))
		fail_msg("status --json printed '%s'", out);
	s = find_entry(arr, "session", id);
	if (s == NULL)
		fail_msg("status does not show session %" PRId64 ": %s", id, out);
	v = member(s, "elapsed_s");
	assert_true(json_object_is_type(v, json_type_double) ||
		    json_object_is_type(v, json_type_int));
	assert_true(json_object_get_double(v) > 0);
	assert_true(json_object_get_int64(member(s, "samples")) > 0);
	v = member(s, "late_percent");
	assert_true(json_object_is_type(v, json_type_double) ||
		    json_object_is_type(v, json_type_int));
	assert_true(json_object_get_double(v) >= 0 && json_object_get_double(v) <= 100);
	json_object_put(arr);
}

static void test_status_stop(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct cmd rec, c;
	char id_arg[24];
	int64_t id;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	id = record_bg(f, &rec, burner.pid);
	perch(f, &c, 0, "status", "--json", NULL);
	assert_int_equal(exit_code(&c), 0);
	check_status_json(c.out, id);
	free_cmd(&c);
	perch(f, &c, 0, "status", NULL);
	assert_int_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.out, pid_str(burner.pid)));
	free_cmd(&c);

	snprintf(id_arg, sizeof id_arg, "%" PRId64, id);
	perch_ok(f, 0, "stop", id_arg, NULL);
	if (!wait_cmd(f, &rec, 5000))
		fail_msg("perch record still runs 5 s after perch stop");
	assert_int_equal(exit_code(&rec), 0);
	free_cmd(&rec);
	assert_status(f, id, "stopped");
	assert_true(check_session_data(f, id) > 0);
	/* Stopping it again: there is nothing recording by that id. */
	perch_refused(f, 0, NULL, "stop", id_arg, NULL);
	assert_int_equal(child_quit(&burner), 0);
}

/* ---- two sessions at once ------------------------------------------------- */

/* The session id that `perch record --json` printed; its status and samples checked. */
static int64_t record_result(const struct cmd *c, const char *want_status, double rate_hz,
			     double secs)
{
	json_object *o = json_tokener_parse(c->out), *v;
	int64_t id;

	if (exit_code(c) != 0 || o == NULL || !json_object_object_get_ex(o, "session", &v))
		fail_msg("record: exit %d, printed '%s' '%s'", exit_code(c), c->out, c->err);
	id = json_object_get_int64(v);
	v = member(o, "status");
	if (strcmp(json_object_get_string(v), want_status) != 0)
		fail_msg("session %" PRId64 " ended '%s', expected '%s'", id,
			 json_object_get_string(v), want_status);
	assert_samples_near(o, rate_hz, secs);
	json_object_put(o);
	return id;
}

/*
 * A session holds the threads of pid and no others: as many as pid has, each
 * with pid's pid and one of its tids, named main_name (the main thread) or
 * burner-N.
 */
static void assert_threads_of(const struct fx *f, int64_t id, pid_t pid, int nthreads,
			      const char *main_name)
{
	pid_t tids[64];
	int n = proc_threads(pid, tids, 64);
	sqlite3 *db = db_ro(f);
	sqlite3_stmt *st;
	int rows = 0;

	assert_int_equal(n, nthreads);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT pid, tid, name FROM threads "
					    "WHERE session_id = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		pid_t tid = (pid_t)sqlite3_column_int(st, 1);
		const char *name = (const char *)sqlite3_column_text(st, 2);
		bool known = false, named = tid == pid ? strcmp(name, main_name) == 0 :
							   strncmp(name, "burner-", 7) == 0;

		rows++;
		for (int i = 0; i < n; i++)
			known |= tids[i] == tid;
		if (sqlite3_column_int(st, 0) != pid || !known || !named)
			fail_msg("session %" PRId64 " of pid %d has thread pid %d tid %d '%s'",
				 id, (int)pid, sqlite3_column_int(st, 0), (int)tid, name);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(rows, n);
}

/*
 * Two sessions at once, on two burners: `perch status` shows both while they
 * run, and each ends complete with its own count of samples (ticks counted
 * into the wrong session would double one) and its own process's threads
 * only.  One worker each, and 99 Hz: on two CPUs, more spinning threads than
 * CPUs make a thread wait a time slice to stop, and the ticks it delays are
 * skipped.
 */
static void test_concurrent(void **state)
{
	const char *const args[] = { "--threads", "1", NULL };
	struct fx *f = *state;
	struct child a, b;
	struct cmd rec_a, rec_b, c;
	int64_t id_a, id_b;

	daemon_start(f, NULL);
	spawn_or_fail(&a, "burner", args);
	spawn_or_fail(&b, "burner", args);
	perch_bg(f, &rec_a, 0, "record", "-p", pid_str(a.pid), "-d", "2", "--json",
		 "--no-autostart", NULL);
	perch_bg(f, &rec_b, 0, "record", "-p", pid_str(b.pid), "-d", "2", "--json",
		 "--no-autostart", NULL);
	id_a = wait_recording(f, a.pid);
	id_b = wait_recording(f, b.pid);
	assert_int_not_equal(id_a, id_b);

	perch(f, &c, 0, "status", "--json", NULL);
	assert_int_equal(exit_code(&c), 0);
	check_status_json(c.out, id_a);
	check_status_json(c.out, id_b);
	free_cmd(&c);
	perch(f, &c, 0, "status", NULL);
	assert_int_equal(exit_code(&c), 0);
	if (strstr(c.out, pid_str(a.pid)) == NULL || strstr(c.out, pid_str(b.pid)) == NULL)
		fail_msg("perch status does not show both pids %d and %d: '%s'", (int)a.pid,
			 (int)b.pid, c.out);
	free_cmd(&c);

	if (!wait_cmd(f, &rec_a, 10000) || !wait_cmd(f, &rec_b, 10000))
		fail_msg("two 2 s recordings still run after 10 s");
	print_message("pid %d: %spid %d: %s", (int)a.pid, rec_a.out, (int)b.pid, rec_b.out);
	assert_int_equal(record_result(&rec_a, "complete", 99, 2), id_a);
	assert_int_equal(record_result(&rec_b, "complete", 99, 2), id_b);
	free_cmd(&rec_a);
	free_cmd(&rec_b);
	assert_status(f, id_a, "complete");
	assert_status(f, id_b, "complete");
	check_session_data(f, id_a);
	check_session_data(f, id_b);
	assert_threads_of(f, id_a, a.pid, 2, "burner");
	assert_threads_of(f, id_b, b.pid, 2, "burner");
	assert_int_equal(child_quit(&a), 0);
	assert_int_equal(child_quit(&b), 0);
}

/* ---- stops per tick --------------------------------------------------------- */

/*
 * Voluntary context switches of perchd's sampler thread (named
 * perchd-sampler: one session at a time here), -1 when there is none: each
 * is a wake-up from its timed wait, or a lock it waited for.
 */
static long sampler_sleeps(pid_t daemon)
{
	char path[96], buf[4096];
	struct dirent *de;
	long v = -1;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)daemon);
	d = opendir(path);
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%.16s/comm", (int)daemon, de->d_name);
		if (!read_status(path, buf, sizeof buf) || strcmp(buf, "perchd-sampler\n") != 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%.16s/status", (int)daemon, de->d_name);
		if (read_status(path, buf, sizeof buf) &&
		    (p = strstr(buf, "\nvoluntary_ctxt_switches:")) != NULL)
			v = atol(p + strlen("\nvoluntary_ctxt_switches:"));
		break;
	}
	if (d != NULL)
		closedir(d);
	return v;
}

/* Ticks taken so far by a running session (the status op's samples). */
static int64_t session_ticks(const struct fx *f, int64_t id)
{
	json_object *o = call(f, "{\"v\":1,\"id\":3,\"op\":\"status\"}\n"), *arr, *v;
	int64_t n = -1;

	if (o != NULL && json_object_object_get_ex(o, "sessions", &arr)) {
		json_object *s = find_entry(arr, "session", id);

		if (s != NULL && json_object_object_get_ex(s, "samples", &v))
			n = json_object_get_int64(v);
	}
	json_object_put(o);
	return n;
}

/*
 * At 999 Hz on a target whose threads are all settled by their rings and
 * watches (two spinning workers, a sleeping main thread), the sampler takes
 * several ticks at each wake-up (session.c, COALESCE_SPAN_NS): it sleeps
 * far fewer times than it takes ticks, and yet every tick is stored with
 * its own time, the time it was due.  One wake-up per tick (before
 * 2026-11-26 20:00) fails the first check; stamping ticks with the time
 * they were taken fails the second.
 */
static void test_coalesced_ticks(void **state)
{
	struct fx *f = *state;
	struct decode_ctx d = { 0 };
	struct child burner;
	struct cmd rec;
	int64_t id, t0, t1, main_id;
	long w0, w1;
	size_t gaps = 0, short_gaps = 0;
	sqlite3 *db;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	perch_bg(f, &rec, 0, "record", "-p", pid_str(burner.pid), "-r", "999", "-d", "3",
		 "--no-autostart", NULL);
	id = wait_recording(f, burner.pid);
	/* Past the first ticks: samplers opened, the main thread watched. */
	sleep_ms(500);
	w0 = sampler_sleeps(f->daemon);
	t0 = session_ticks(f, id);
	sleep_ms(1000);
	w1 = sampler_sleeps(f->daemon);
	t1 = session_ticks(f, id);
	print_message("999 Hz: %" PRId64 " ticks in 1 s, %ld sleeps of the sampler\n", t1 - t0,
		      w1 - w0);
	assert_true(w0 >= 0 && w1 >= w0 && t0 >= 0);
	assert_true(t1 - t0 >= 500);
	if ((double)(w1 - w0) >= 0.6 * (double)(t1 - t0))
		fail_msg("the sampler slept %ld times for %" PRId64 " ticks", w1 - w0, t1 - t0);
	assert_true(wait_cmd(f, &rec, 20000));
	assert_int_equal(exit_code(&rec), 0);
	free_cmd(&rec);

	check_session_data(f, id);
	db = db_ro(f);
	main_id = q_int(db, "SELECT id FROM threads WHERE session_id = ?1 AND pid = tid", id);
	decode_chunks(db, id, &d);
	/* The main thread sleeps: one sample at every tick, each at its due time. */
	for (size_t i = 1; i < d.n; i++) {
		if (d.v[i].thread != (uint32_t)main_id || d.v[i - 1].thread != (uint32_t)main_id)
			continue;
		gaps++;
		short_gaps += d.v[i].time_ns - d.v[i - 1].time_ns < 300000;
	}
	print_message("main thread: %zu gaps between samples, %zu under 0.3 ms\n", gaps,
		      short_gaps);
	assert_true(gaps >= 1000);
	assert_true(short_gaps * 20 < gaps);
	free(d.v);
	sqlite3_close(db);
	assert_int_equal(child_quit(&burner), 0);
}

/*
 * `perch record --stops 1 --ptrace-only` on four spinning threads (without
 * --ptrace-only the kernel samples running threads, and no stop is made):
 * one thread is stopped per tick, in turn, and each running sample stands
 * for the ticks its thread was passed over, so every worker still has about
 * one sample per tick (without the weights it would have a quarter of
 * them).  A --stops out of range is refused by the client, and a max_stops
 * or ptrace_only out of range or of the wrong type by the daemon
 * (check_bad_lines).
 */
static void test_stops(void **state)
{
	const char *const args[] = { "--threads", "4", NULL };
	struct fx *f = *state;
	struct child b;
	struct cmd c;
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t id, ticks, stopped;
	char name[128];
	int workers = 0;

	daemon_start(f, NULL);
	perch(f, &c, 0, "record", "-p", "2147483647", "--stops", "0", "--no-autostart", NULL);
	assert_int_equal(exit_code(&c), 2);
	assert_non_null(strstr(c.err, "invalid --stops '0'"));
	free_cmd(&c);
	spawn_or_fail(&b, "burner", args);
	perch(f, &c, 0, "record", "-p", pid_str(b.pid), "-d", "2", "--stops", "1", "--ptrace-only",
	      "--json", "--no-autostart", NULL);
	id = record_result(&c, "complete", 99, 2);
	free_cmd(&c);
	check_session_data(f, id);
	db = db_ro(f);
	ticks = q_int(db, "SELECT samples FROM sessions WHERE id = ?1", id);
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT t.tid, coalesce(sum(c.samples), 0) FROM threads t "
		"LEFT JOIN counts c ON c.session_id = t.session_id AND c.thread_id = t.id "
		"WHERE t.session_id = ?1 AND t.name LIKE 'burner-%' GROUP BY t.id",
		-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t n = sqlite3_column_int64(st, 1);

		print_message("thread %d: %lld samples in %lld ticks\n", sqlite3_column_int(st, 0),
			      (long long)n, (long long)ticks);
		/* What is still owed at the end is lost: a few rounds of turns. */
		if (n > ticks || n < ticks * 8 / 10)
			fail_msg("thread %d has %lld samples in %lld ticks", sqlite3_column_int(st, 0),
				 (long long)n, (long long)ticks);
		workers++;
	}
	sqlite3_finalize(st);
	/* Stops only, at most one a tick, and the header says so. */
	q_text(db, "SELECT sampling FROM sessions WHERE id = ?1", id, name, sizeof name);
	assert_string_equal(name, "ptrace");
	assert_int_equal(q_int(db, "SELECT max_stops FROM sessions WHERE id = ?1", id), 1);
	assert_int_equal(q_int(db, "SELECT kernel_samples FROM sessions WHERE id = ?1", id), 0);
	stopped = q_int(db, "SELECT stopped_samples FROM sessions WHERE id = ?1", id);
	assert_true(stopped >= ticks / 2);
	sqlite3_close(db);
	perch(f, &c, 0, "flat", "last", NULL);
	assert_int_equal(exit_code(&c), 0);
	snprintf(name, sizeof name, "running threads: stops %" PRId64
		 " (--ptrace-only, at most 1 a tick)", stopped);
	if (strstr(c.out, name) == NULL)
		fail_msg("no '%s' in the header:\n%s", name, c.out);
	free_cmd(&c);
	assert_int_equal(workers, 4);
	assert_int_equal(child_quit(&b), 0);
}

/* ---- 5: refusals ---------------------------------------------------------- */

/* A pid nobody uses now. */
static pid_t free_pid(void)
{
	for (pid_t pid = 4000000; pid > 1000; pid -= 7)
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return pid;
	fail_msg("no free pid");
	return -1;
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct cmd rec;
	const char *pid;
	sqlite3 *db;
	int64_t id;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	pid = pid_str(burner.pid);
	id = record_bg(f, &rec, burner.pid);

	perch_refused(f, 0, "already", "record", "-p", pid, "-d", "1", "--no-autostart",
		      NULL);
	/* The first session goes on. */
	assert_int_equal(wait_recording(f, burner.pid), id);

	perch_refused(f, 0, "no such process", "record", "-p", pid_str(free_pid()), "-d", "1",
		      "--no-autostart", NULL);
	perch_refused(f, 0, "rate", "record", "-p", pid, "-r", "0", "--no-autostart", NULL);
	perch_refused(f, 0, "duration", "record", "-p", pid, "-d", "-1", "--no-autostart",
		      NULL);
	perch_refused(f, 0, "pid", "record", "-p", "abc", "--no-autostart", NULL);

	kill(rec.pid, SIGINT);
	assert_true(wait_cmd(f, &rec, 5000));
	assert_int_equal(exit_code(&rec), 0);
	free_cmd(&rec);
	assert_status(f, id, "stopped");
	/* Nothing but the first session was recorded. */
	db = db_ro(f);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions", 0), 1);
	sqlite3_close(db);
	assert_int_equal(child_quit(&burner), 0);
}

/* ---- 6, 7: targets that come and go --------------------------------------- */

static void test_target_exits(void **state)
{
	const char *const args[] = { "--seconds", "1", NULL };
	struct fx *f = *state;
	struct child burner;
	struct cmd c;
	int64_t id = 0;
	sqlite3 *db;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", args);
	/* Not reaped until the end: its parent may be slow to reap it. */
	perch(f, &c, 0, "record", "-p", pid_str(burner.pid), "-d", "5", "--json",
	      "--no-autostart", NULL);
	print_message("record returned after %.2f s: %s%s", c.secs, c.out, c.err);
	assert_int_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.out, "\"target-exited\""));
	if (c.secs >= 3)
		fail_msg("record returned %.1f s after it started, 1 s after the target exited",
			 c.secs);
	db = db_ro(f);
	id = q_int(db, "SELECT max(id) FROM sessions", 0);
	assert_true(q_int(db, "SELECT samples FROM sessions WHERE id = ?1", id) > 0);
	sqlite3_close(db);
	assert_status(f, id, "target-exited");
	check_session_data(f, id);
	free_cmd(&c);
	assert_int_equal(child_wait(&burner), 0);
}

static void test_children(void **state)
{
	const char *const args[] = { "--children", "2", NULL };
	struct fx *f = *state;
	struct child forker;
	int64_t id, in_child;
	sqlite3 *db;

	daemon_start(f, NULL);
	spawn_or_fail(&forker, "forker", args);
	perch_ok(f, 0, "record", "-p", pid_str(forker.pid), "-d", "2", "--children",
		 "--no-autostart", NULL);
	db = db_ro(f);
	id = q_int(db, "SELECT max(id) FROM sessions", 0);
	assert_int_equal(q_int(db, "SELECT children FROM sessions WHERE id = ?1", id), 1);
	assert_true(q_int(db, "SELECT count(DISTINCT pid) FROM threads WHERE session_id = ?1",
			  id) >= 3);
	in_child = leaf_samples(db, id, "child_work", "%");
	print_message("%" PRId64 " samples in child_work of %" PRId64 "\n", in_child,
		      leaf_samples(db, id, NULL, "%"));
	assert_true(in_child > 0);
	sqlite3_close(db);
	check_session_data(f, id);
	assert_int_equal(child_quit(&forker), 0);
}

/* ---- 8, 9: the daemon goes away ------------------------------------------- */

static void test_daemon_sigterm(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct cmd rec;
	struct stat st;
	int64_t id;
	int status;

	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	id = record_bg(f, &rec, burner.pid);
	sleep_ms(500);
	if (!daemon_kill(f, SIGTERM, 5000, &status))
		fail_msg("perchd still runs 5 s after SIGTERM");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_status(f, id, "stopped");
	assert_true(check_session_data(f, id) > 0);
	assert_untraced(burner.pid, 3);
	/* The client lost its daemon: it must end, not hang. */
	assert_true(wait_cmd(f, &rec, 5000));
	print_message("record after the daemon left: exit %d, %s", exit_code(&rec), rec.err);
	free_cmd(&rec);
	assert_int_equal(child_quit(&burner), 0);
}

static void test_daemon_kill9(void **state)
{
	const char *const args[] = { "--threads", "16", NULL };
	struct fx *f = *state;
	struct child target;
	struct cmd rec;
	int64_t id;
	int status;

	daemon_start(f, NULL);
	spawn_or_fail(&target, "threads", args);
	id = record_bg(f, &rec, target.pid);
	sleep_ms(300);
	assert_true(daemon_kill(f, SIGKILL, 5000, &status));
	assert_untraced(target.pid, 17);
	assert_true(wait_cmd(f, &rec, 5000));
	free_cmd(&rec);
	assert_status(f, id, "recording");
	daemon_start(f, NULL);
	assert_status(f, id, "interrupted");
	assert_int_equal(child_quit(&target), 0);
}

/* ---- 10: schedules -------------------------------------------------------- */

/* A copy of burner with a name no other process has, for --exe. */
static void unique_burner(struct fx *f, struct child *c, char *name, size_t size)
{
	char src[512], dst[256], buf[65536];
	int in, out;
	ssize_t n;

	static int made;

	/* One of its own for each call: the schedules find it by name. */
	snprintf(name, size, "pb%d-%d", (int)getpid(), made++);
	snprintf(src, sizeof src, "%s/burner", PERCH_TARGETS_DIR);
	snprintf(dst, sizeof dst, "%s/%s", f->dir, name);
	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	if (spawn_path(c, dst, NULL) < 0)
		fail_msg("cannot start %s", dst);
}

/* The id of the schedule that `perch schedule add` reported. */
static int64_t schedule_add(struct fx *f, const char *exe, const char *every,
			    const char *dur, const char *keep)
{
	struct cmd c;
	int64_t id = 0;

	if (keep != NULL)
		perch(f, &c, 0, "schedule", "add", "--exe", exe, "--every", every, "--for", dur,
		      "--keep", keep, NULL);
	else
		perch(f, &c, 0, "schedule", "add", "--exe", exe, "--every", every, "--for", dur,
		      NULL);
	assert_int_equal(exit_code(&c), 0);
	if (sscanf(c.out, "schedule %" SCNd64 " added", &id) != 1)
		fail_msg("schedule add printed '%s' '%s'", c.out, c.err);
	free_cmd(&c);
	return id;
}

/* The schedule as `perch schedule ls --json` lists it, or NULL (put it). */
static json_object *schedule_listed(struct fx *f, int64_t id)
{
	json_object *arr, *found;
	struct cmd c;

	perch(f, &c, 0, "schedule", "ls", "--json", NULL);
	assert_int_equal(exit_code(&c), 0);
	arr = json_tokener_parse(c.out);
	if (arr == NULL || !json_object_is_type(arr, json_type_array))
		fail_msg("schedule ls --json printed '%s'", c.out);
	found = json_object_get(find_entry(arr, "schedule", id));
	json_object_put(arr);
	free_cmd(&c);
	return found;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Sessions of schedule id: in all, and kept (ended more than 0.5 s ago:
 * retention runs just after a session ends), and the oldest one's id.
 */
static void count_scheduled(const struct fx *f, int64_t id, int64_t *all, int64_t *kept,
			    int64_t *oldest)
{
	sqlite3 *db = db_ro(f);
	sqlite3_stmt *st;

	*all = q_int(db, "SELECT count(*) FROM sessions WHERE schedule_id = ?1", id);
	*oldest = q_int(db, "SELECT coalesce(min(id), 0) FROM sessions WHERE schedule_id = ?1",
			id);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sessions WHERE "
					    "schedule_id = ?1 AND status != 'recording' AND "
					    "ended_ns < ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)(real_ns() - 500000000u));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*kept = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The schedule as listed has what was asked. */
static void check_listed(struct fx *f, int64_t id, const char *exe)
{
	json_object *o = schedule_listed(f, id);

	assert_non_null(o);
	assert_string_equal(json_object_get_string(member(o, "target")), exe);
	assert_string_equal(json_object_get_string(member(o, "kind")), "exe");
	assert_true(json_object_get_double(member(o, "interval_s")) == 2.0);
	assert_int_equal(json_object_get_int64(member(o, "keep_count")), 2);
	json_object_put(o);
}

/* A burner schedule fires every 2 s, keeping its 2 latest sessions. */
static int64_t check_burner_schedule(struct fx *f, const char *exe)
{
	int64_t id = schedule_add(f, exe, "2s", "1s", "2"), all, kept, oldest, first = 0, seen = 0;
	unsigned long long t0 = mono_ns();
	sqlite3 *db;

	check_listed(f, id, exe);
	/* Firings at 2, 4 and 6 s: the third makes retention delete the first. */
	while (secs_since(t0) < 7.6) {
		count_scheduled(f, id, &all, &kept, &oldest);
		if (all > 3 || kept > 2)
			fail_msg("schedule %" PRId64 " has %" PRId64 " sessions, %" PRId64
				 " ended, with --keep 2", id, all, kept);
		seen = all > seen ? all : seen;
		first = first ? first : oldest;
		sleep_ms(100);
	}
	count_scheduled(f, id, &all, &kept, &oldest);
	print_message("schedule %" PRId64 ": %" PRId64 " sessions, %" PRId64 " kept after %.1f s\n",
		      id, all, kept, secs_since(t0));
	assert_true(seen >= 2);
	assert_int_equal(kept, 2);
	if (first == 0 || oldest == first)
		fail_msg("the schedule's first session (%" PRId64 ") was not deleted", first);
	db = db_ro(f);
	assert_true(q_int(db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?1 "
			  "AND outcome = 'started'", id) >= 3);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions WHERE schedule_id = ?1 "
			       "AND status NOT IN ('complete', 'recording')", id), 0);
	sqlite3_close(db);
	return id;
}

/* A schedule whose target does not exist: skipped runs, once per firing. */
static void check_missing_schedule(struct fx *f)
{
	unsigned long long t0 = mono_ns();
	int64_t id = schedule_add(f, "no-such-program-xyz", "1s", "500ms", NULL), runs;
	char id_arg[24];
	json_object *o;
	sqlite3 *db;

	sleep_ms(2500);
	assert_daemon_alive(f);
	db = db_ro(f);
	runs = q_int(db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?1", id);
	assert_true(runs >= 1);
	assert_true(runs <= (int64_t)secs_since(t0) + 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?1 "
			       "AND outcome != 'skipped'", id), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?1 "
			       "AND session_id IS NOT NULL", id), 0);
	sqlite3_close(db);

	snprintf(id_arg, sizeof id_arg, "%" PRId64, id);
	perch_ok(f, 0, "schedule", "rm", id_arg, NULL);
	o = schedule_listed(f, id);
	assert_null(o);
	db = db_ro(f);
	assert_int_equal(q_int(db, "SELECT count(*) FROM schedules WHERE id = ?1", id), 0);
	sqlite3_close(db);
	perch_refused(f, 0, NULL, "schedule", "rm", id_arg, NULL);
}

static void test_schedules(void **state)
{
	struct fx *f = *state;
	struct child burner;
	char exe[32];
	json_object *o;
	int64_t id;
	int status;

	daemon_start(f, NULL);
	unique_burner(f, &burner, exe, sizeof exe);
	id = check_burner_schedule(f, exe);
	check_missing_schedule(f);

	assert_true(daemon_kill(f, SIGTERM, 5000, &status));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	daemon_start(f, NULL);
	o = schedule_listed(f, id);
	if (o == NULL)
		fail_msg("schedule %" PRId64 " is gone after a restart", id);
	json_object_put(o);
	assert_untraced(burner.pid, 3);
	assert_int_equal(child_quit(&burner), 0);
}

/* One firing of a schedule, with the session it started. */
struct firing {
	uint64_t fired_ns;
	char outcome[16];
	char message[160];
	int64_t session;	/* 0: none */
	pid_t pid;		/* the session's, or 0 */
	char status[24];	/* the session's, or "" */
};

/* The firings of schedule id after after_ns, oldest first; how many. */
static int firings(const struct fx *f, int64_t id, uint64_t after_ns, struct firing *v, int max)
{
	sqlite3 *db = db_ro(f);
	sqlite3_stmt *st;
	int n = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT r.fired_ns, r.outcome, coalesce(r.message, ''), "
		"coalesce(r.session_id, 0), coalesce(s.pid, 0), coalesce(s.status, '') "
		"FROM schedule_runs r LEFT JOIN sessions s ON s.id = r.session_id "
		"WHERE r.schedule_id = ?1 AND r.fired_ns > ?2 ORDER BY r.fired_ns",
		-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)after_ns);
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		v[n].fired_ns = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(v[n].outcome, sizeof v[n].outcome, "%s", sqlite3_column_text(st, 1));
		snprintf(v[n].message, sizeof v[n].message, "%s", sqlite3_column_text(st, 2));
		v[n].session = sqlite3_column_int64(st, 3);
		v[n].pid = (pid_t)sqlite3_column_int(st, 4);
		snprintf(v[n].status, sizeof v[n].status, "%s", sqlite3_column_text(st, 5));
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/*
 * Waits at most timeout_ms for a firing of schedule id after after_ns with
 * this outcome (and, for "started", whose session has ended); the first.
 */
static struct firing wait_firing(const struct fx *f, int64_t id, uint64_t after_ns,
				 const char *outcome, long timeout_ms)
{
	unsigned long long t0 = mono_ns();
	struct firing v[16];

	while (secs_since(t0) * 1000 < (double)timeout_ms) {
		int n = firings(f, id, after_ns, v, 16);

		for (int i = 0; i < n; i++)
			if (strcmp(v[i].outcome, outcome) == 0 &&
			    (strcmp(outcome, "started") != 0 ||
			     strcmp(v[i].status, "recording") != 0))
				return v[i];
		sleep_ms(50);
	}
	fail_msg("schedule %" PRId64 ": no '%s' firing (ended) in %ld ms", id, outcome,
		 timeout_ms);
	return v[0];
}

/* `perch schedule add --exe exe --every 2s --for 1s ARGS...`: the new schedule's id. */
static int64_t schedule_add_with(struct fx *f, const char *exe, const char *a1, const char *a2,
				 const char *a3)
{
	struct cmd c;
	int64_t id = 0;

	perch(f, &c, 0, "schedule", "add", "--exe", exe, "--every", "2s", "--for", "1s", a1, a2,
	      a3, NULL);
	assert_int_equal(exit_code(&c), 0);
	if (sscanf(c.out, "schedule %" SCNd64 " added", &id) != 1)
		fail_msg("schedule add printed '%s' '%s'", c.out, c.err);
	free_cmd(&c);
	return id;
}

/*
 * A schedule that asks for stops (--ptrace-only --stops 1, then --stops
 * all): listed so, and its sessions sample so, as `perch record` would.
 */
static void test_schedule_sampling(void **state)
{
	struct fx *f = *state;
	struct child burner;
	struct firing fr;
	struct cmd c;
	char exe[32], id_arg[24], sampling[16];
	int64_t id;
	json_object *o;
	sqlite3 *db;

	daemon_start(f, NULL);
	unique_burner(f, &burner, exe, sizeof exe);
	perch_refused(f, 0, "--stops", "schedule", "add", "--exe", exe, "--every", "2s",
		      "--for", "1s", "--stops", "0", NULL);
	id = schedule_add_with(f, exe, "--ptrace-only", "--stops", "1");
	o = schedule_listed(f, id);
	assert_non_null(o);
	assert_int_equal(json_object_get_int64(member(o, "max_stops")), 1);
	assert_true(json_object_get_boolean(member(o, "ptrace_only")));
	json_object_put(o);
	perch(f, &c, 0, "schedule", "ls", NULL);
	assert_int_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.out, "stops 1, ptrace only"));
	free_cmd(&c);
	fr = wait_firing(f, id, 0, "started", 6000);
	db = db_ro(f);
	q_text(db, "SELECT sampling FROM sessions WHERE id = ?1", fr.session, sampling,
	       sizeof sampling);
	assert_string_equal(sampling, "ptrace");
	assert_int_equal(q_int(db, "SELECT max_stops FROM sessions WHERE id = ?1", fr.session), 1);
	assert_int_equal(q_int(db, "SELECT kernel_samples FROM sessions WHERE id = ?1",
			       fr.session), 0);
	assert_true(q_int(db, "SELECT stopped_samples FROM sessions WHERE id = ?1",
			  fr.session) > 0);
	sqlite3_close(db);
	snprintf(id_arg, sizeof id_arg, "%" PRId64, id);
	perch_ok(f, 0, "schedule", "rm", id_arg, NULL);

	/* --stops all: every running thread, -1 as in a session. */
	id = schedule_add_with(f, exe, "--stops", "all", NULL);
	o = schedule_listed(f, id);
	assert_non_null(o);
	assert_int_equal(json_object_get_int64(member(o, "max_stops")), -1);
	assert_false(json_object_get_boolean(member(o, "ptrace_only")));
	json_object_put(o);
	fr = wait_firing(f, id, 0, "started", 6000);
	db = db_ro(f);
	assert_int_equal(q_int(db, "SELECT max_stops FROM sessions WHERE id = ?1", fr.session),
			 -1);
	q_text(db, "SELECT sampling FROM sessions WHERE id = ?1", fr.session, sampling,
	       sizeof sampling);
	assert_string_equal(sampling, "kernel");
	sqlite3_close(db);
	snprintf(id_arg, sizeof id_arg, "%" PRId64, id);
	perch_ok(f, 0, "schedule", "rm", id_arg, NULL);
	assert_int_equal(child_quit(&burner), 0);
}

/*
 * A schedule by executable name follows its target across a restart: a
 * firing while no such process runs is a skipped run, and the firings after
 * a new process (new pid) starts profile that one.
 */
static void test_schedule_restart(void **state)
{
	struct fx *f = *state;
	struct child first, second;
	struct firing fr, v[16];
	char exe[32], path[256];
	uint64_t killed_ns, restarted_ns;
	int64_t id;
	int n;

	daemon_start(f, NULL);
	unique_burner(f, &first, exe, sizeof exe);
	snprintf(path, sizeof path, "%s/%s", f->dir, exe);
	id = schedule_add(f, exe, "2s", "1s", NULL);

	/* The first firing (2 s after add) profiles the first process. */
	fr = wait_firing(f, id, 0, "started", 6000);
	if (fr.pid != first.pid || strcmp(fr.status, "complete") != 0)
		fail_msg("first firing: session %" PRId64 " of pid %d is '%s'; expected pid %d, "
			 "complete", fr.session, (int)fr.pid, fr.status, (int)first.pid);
	assert_threads_of(f, fr.session, first.pid, 3, exe);

	/* Gone between firings: the next firing finds nothing. */
	child_kill(&first);
	killed_ns = real_ns();
	fr = wait_firing(f, id, killed_ns, "skipped", 4000);
	print_message("firing with no process: '%s' '%s'\n", fr.outcome, fr.message);
	assert_int_equal(fr.session, 0);
	assert_non_null(strstr(fr.message, exe));
	assert_daemon_alive(f);

	/* Back, with a new pid: later firings profile it. */
	restarted_ns = real_ns();
	if (spawn_path(&second, path, NULL) < 0)
		fail_msg("cannot start %s again", path);
	assert_int_not_equal(second.pid, first.pid);
	fr = wait_firing(f, id, restarted_ns, "started", 6000);
	print_message("pid %d, then pid %d: session %" PRId64 " of pid %d, '%s'\n",
		      (int)first.pid, (int)second.pid, fr.session, (int)fr.pid, fr.status);
	if (fr.pid != second.pid || strcmp(fr.status, "complete") != 0)
		fail_msg("after the restart: session %" PRId64 " of pid %d is '%s'; expected pid "
			 "%d, complete", fr.session, (int)fr.pid, fr.status, (int)second.pid);
	assert_threads_of(f, fr.session, second.pid, 3, exe);
	check_session_data(f, fr.session);

	/* Every firing since the kill: skipped until the restart, then the new pid. */
	n = firings(f, id, killed_ns, v, 16);
	for (int i = 0; i < n; i++) {
		bool before = v[i].fired_ns < restarted_ns;

		if (before ? strcmp(v[i].outcome, "skipped") != 0 || v[i].session != 0 :
			     strcmp(v[i].outcome, "started") != 0 || v[i].pid != second.pid)
			fail_msg("firing %d after the kill (%s the restart): '%s', session %"
				 PRId64 " of pid %d", i, before ? "before" : "after", v[i].outcome,
				 v[i].session, (int)v[i].pid);
	}
	assert_int_equal(child_quit(&second), 0);
}

/* ---- 11: who may profile what --------------------------------------------- */

/* Whether nobody may run path (exit status of a child that tries). */
static bool nobody_can_run(const char *path)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(2);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static mode_t mode_of(const char *path, gid_t *gid)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	if (gid != NULL)
		*gid = st.st_gid;
	return st.st_mode & 07777;
}

/* Without --group the socket is 0600; with a group name, 0660 and that group. */
static void check_modes(struct fx *f)
{
	int status;
	gid_t gid;

	daemon_start(f, NULL);
	assert_int_equal(mode_of(f->sock, NULL), 0600);
	assert_int_equal(mode_of(f->db, NULL), 0600);
	assert_true(daemon_kill(f, SIGTERM, 5000, &status));
	if (getgrgid(NOBODY) != NULL) {
		daemon_start(f, "--group", getgrgid(NOBODY)->gr_name, NULL);
		assert_int_equal(mode_of(f->sock, &gid), 0660);
		assert_int_equal(gid, NOBODY);
		assert_true(daemon_kill(f, SIGTERM, 5000, &status));
	}
}

/* nobody's status: lists mine, not theirs. */
static void check_nobody_status(struct fx *f, int64_t mine, int64_t theirs)
{
	json_object *arr, *v;
	bool seen_mine = false;
	struct cmd c;
	char id_arg[24];

	perch(f, &c, NOBODY, "status", "--json", NULL);
	assert_int_equal(exit_code(&c), 0);
	arr = json_tokener_parse(c.out);
	assert_non_null(arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object_object_get_ex(json_object_array_get_idx(arr, i), "session", &v);
		if (json_object_get_int64(v) == theirs)
			fail_msg("nobody's status shows root's session: %s", c.out);
		seen_mine |= json_object_get_int64(v) == mine;
	}
	if (!seen_mine)
		fail_msg("nobody's status does not show nobody's session %" PRId64 ": %s",
			 mine, c.out);
	json_object_put(arr);
	free_cmd(&c);
	snprintf(id_arg, sizeof id_arg, "%" PRId64, theirs);
	perch_refused(f, NOBODY, NULL, "stop", id_arg, NULL);
}

static void test_access(void **state)
{
	const char *const nobody_args[] = { "--reuid=65534", "--regid=65534", "--clear-groups",
					    PERCH_TARGETS_DIR "/burner", NULL };
	struct fx *f = *state;
	struct child root_burner, nobody_burner;
	struct cmd root_rec, nobody_rec;
	int64_t theirs, mine;
	sqlite3 *db;

	if (geteuid() != 0 || !nobody_can_run(PERCH) ||
	    !nobody_can_run(PERCH_TARGETS_DIR "/burner") || access(SETPRIV, X_OK) < 0) {
		print_message("skipped: not root, or nobody cannot run the binaries, or no %s\n",
			      SETPRIV);
		skip();
	}
	check_modes(f);
	daemon_start(f, "--group", "65534", NULL);
	assert_int_equal(mode_of(f->sock, NULL), 0660);
	assert_int_equal(mode_of(f->db, NULL), 0600);
	spawn_or_fail(&root_burner, "burner", NULL);
	if (spawn_path(&nobody_burner, SETPRIV, nobody_args) < 0)
		fail_msg("cannot start burner as nobody");
	assert_int_equal(process_uid(nobody_burner.pid), NOBODY);

	perch_refused(f, NOBODY, "not permitted", "record", "-p", pid_str(root_burner.pid),
		      "-d", "1", "--no-autostart", NULL);

	theirs = record_bg(f, &root_rec, root_burner.pid);
	perch_bg(f, &nobody_rec, NOBODY, "record", "-p", pid_str(nobody_burner.pid), "-d", "2",
		 "--no-autostart", NULL);
	mine = wait_recording(f, nobody_burner.pid);
	check_nobody_status(f, mine, theirs);
	assert_true(wait_cmd(f, &nobody_rec, 10000));
	print_message("nobody's record: exit %d, stdout '%s', stderr '%s'\n",
		      exit_code(&nobody_rec), nobody_rec.out, nobody_rec.err);
	assert_null(strstr(nobody_rec.err, "not permitted"));
	/* Recorded and kept; the root-only database is only named. */
	assert_int_equal(exit_code(&nobody_rec), 0);
	assert_non_null(strstr(nobody_rec.err, "is stored, but"));
	free_cmd(&nobody_rec);
	assert_status(f, mine, "complete");
	db = db_ro(f);
	assert_int_equal(q_int(db, "SELECT owner_uid FROM sessions WHERE id = ?1", mine), NOBODY);
	assert_int_equal(q_int(db, "SELECT requested_by FROM sessions WHERE id = ?1", mine),
			 NOBODY);
	sqlite3_close(db);
	kill(root_rec.pid, SIGINT);
	assert_true(wait_cmd(f, &root_rec, 5000));
	assert_int_equal(exit_code(&root_rec), 0);
	free_cmd(&root_rec);
	assert_int_equal(child_quit(&root_burner), 0);
	assert_int_equal(child_quit(&nobody_burner), 0);
}

/* ---- 12: the socket ------------------------------------------------------- */

/* The reply to one line: its error code ("" for ok) and id. */
static void expect_error(int fd, const char *code, int64_t id)
{
	char buf[4096];
	json_object *o, *v;

	if (read_reply(fd, buf, sizeof buf, 5000) <= 0)
		fail_msg("no reply where '%s' was expected", code);
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_object_get_ex(o, "error", &v) ||
	    strcmp(json_object_get_string(v), code) != 0)
		fail_msg("expected error '%s', got %s", code, buf);
	assert_false(json_object_get_boolean(member(o, "ok")));
	assert_true(json_object_get_string_len(member(o, "message")) > 0);
	assert_int_equal(json_object_get_int64(member(o, "id")), id);
	json_object_put(o);
}

static void check_bad_lines(struct fx *f)
{
	static char big[100 * 1024];
	char buf[4096];
	int fd = connect_to(f->sock);
	size_t sent = 0;

	assert_true(fd >= 0);
	send_str(fd, "garbage\n");
	expect_error(fd, "bad-request", 0);
	send_str(fd, "[1,2,3]\n");
	expect_error(fd, "bad-request", 0);
	send_str(fd, "{\"v\":1,\"id\":3\n");
	expect_error(fd, "bad-request", 0);
	send_str(fd, "{\"v\":1,\"id\":4,\"op\":\"frobnicate\"}\n");
	expect_error(fd, "unknown-op", 4);
	send_str(fd, "{\"v\":2,\"id\":5,\"op\":\"version\"}\n");
	expect_error(fd, "unsupported-version", 5);
	send_str(fd, "{\"v\":1,\"id\":6,\"op\":\"start\",\"pid\":\"1\"}\n");
	expect_error(fd, "bad-request", 6);
	send_str(fd, "{\"v\":1,\"id\":8,\"op\":\"start\",\"pid\":2147483647,\"max_stops\":4097}\n");
	expect_error(fd, "bad-request", 8);
	send_str(fd, "{\"v\":1,\"id\":9,\"op\":\"start\",\"pid\":2147483647,\"max_stops\":\"2\"}\n");
	expect_error(fd, "bad-request", 9);
	send_str(fd, "{\"v\":1,\"id\":10,\"op\":\"start\",\"pid\":2147483647,\"ptrace_only\":1}\n");
	expect_error(fd, "bad-request", 10);
	/* Still the same connection: it answers a good request. */
	send_str(fd, "{\"v\":1,\"id\":7,\"op\":\"version\"}\n");
	assert_true(read_reply(fd, buf, sizeof buf, 5000) > 0);
	assert_non_null(strstr(buf, "\"ok\":true"));

	memset(big, 'x', sizeof big);
	while (sent < sizeof big) {
		ssize_t n = send(fd, big + sent, sizeof big - sent, MSG_NOSIGNAL);

		if (n <= 0)
			break;	/* the daemon may close before taking it all */
		sent += (size_t)n;
	}
	expect_error(fd, "too-large", 0);
	/* Then it hangs up. */
	assert_int_equal(read_reply(fd, buf, sizeof buf, 5000), 0);
	close(fd);
}

static void test_socket_robustness(void **state)
{
	struct fx *f = *state;
	int idle[70], fd;
	char buf[4096];
	ssize_t n;
	struct cmd c;

	daemon_start(f, NULL);
	check_bad_lines(f);
	assert_true(daemon_answers(f));

	/* 70 idle clients; the daemon serves 64 and hangs up on the others. */
	for (int i = 0; i < 70; i++) {
		idle[i] = connect_to(f->sock);
		assert_true(idle[i] >= 0);
	}
	fd = connect_to(f->sock);
	assert_true(fd >= 0);
	send(fd, "{\"v\":1,\"id\":1,\"op\":\"version\"}\n", 31, MSG_NOSIGNAL);
	n = read_reply(fd, buf, sizeof buf, 5000);
	print_message("71st connection: %s\n", n < 0 ? "no answer in 5 s" :
		      n == 0 ? "closed by the daemon" : buf);
	assert_true(n >= 0);
	close(fd);
	perch(f, &c, 0, "status", NULL);
	print_message("perch status with 70 idle clients: exit %d, '%s' '%s'\n",
		      exit_code(&c), c.out, c.err);
	if (exit_code(&c) != 0)
		assert_refused(&c, NULL);
	free_cmd(&c);
	assert_daemon_alive(f);

	for (int i = 0; i < 70; i++)
		close(idle[i]);
	for (int i = 0; i < 100 && !daemon_answers(f); i++)
		sleep_ms(20);
	perch_ok(f, 0, "status", NULL);
	assert_daemon_alive(f);
}

/* Resident memory of a process in KiB, from /proc/PID/status. */
static long vm_rss_kib(pid_t pid)
{
	char path[64], *text, *p;
	long kib;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	text = slurp(path);
	p = strstr(text, "\nVmRSS:");
	kib = p ? strtol(p + 7, NULL, 10) : -1;
	free(text);
	assert_true(kib > 0);
	return kib;
}

/* What came back on a connection, and whether the daemon hung up. */
struct inbox {
	char *buf;
	size_t len, cap;
	size_t lines;
	bool closed;
};

static void inbox_read(int fd, struct inbox *in)
{
	for (;;) {
		ssize_t n;

		if (in->cap - in->len < 65536) {
			in->cap = in->cap ? in->cap * 2 : 262144;
			in->buf = realloc(in->buf, in->cap);
			assert_non_null(in->buf);
		}
		n = recv(fd, in->buf + in->len, in->cap - in->len - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			in->closed = true;
			return;
		}
		for (ssize_t i = 0; i < n; i++)
			in->lines += in->buf[in->len + (size_t)i] == '\n';
		in->len += (size_t)n;
		in->buf[in->len] = '\0';
	}
}

/*
 * Sends len bytes while reading replies, so that neither side waits for the
 * other; then reads until want_lines lines came back or the daemon hangs up.
 * Returns how many bytes the daemon took before it hung up (len: all).  A
 * daemon that neither reads nor hangs up for timeout_ms fails the test.
 */
static size_t exchange(int fd, const char *data, size_t len, size_t want_lines,
		       struct inbox *in, int timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;
	size_t sent = 0;
	bool gone = false;

	while (!in->closed && (sent < len && !gone ? true : in->lines < want_lines)) {
		struct pollfd pfd = { fd, POLLIN | (sent < len && !gone ? POLLOUT : 0), 0 };
		long long left = (long long)(deadline - mono_ns()) / 1000000;

		if (left <= 0 || mono_ns() > deadline)
			fail_msg("the daemon took %zu of %zu bytes and sent %zu lines, then "
				 "nothing for %d ms", sent, len, in->lines, timeout_ms);
		if (poll(&pfd, 1, (int)left) < 0)
			continue;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			inbox_read(fd, in);
		if (pfd.revents & POLLOUT) {
			size_t chunk = len - sent < 65536 ? len - sent : 65536;
			ssize_t n = send(fd, data + sent, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
				gone = true;
		}
	}
	return sent;
}

/* Numbers from a fixed seed (xorshift64). */
static uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * A 10 MB line gets "too-large" (or only a hang-up) without the daemon
 * holding 10 MB, and it answers new connections afterwards.
 */
static void check_huge_line(struct fx *f)
{
	const size_t size = 10u << 20;
	char *line = malloc(size + 1);
	struct inbox in = { 0 };
	long before, after;
	size_t taken;
	json_object *o, *v;
	int fd;

	assert_non_null(line);
	memset(line, '{', size);
	line[size] = '\n';
	/* Settled first: the daemon has served a connection or two. */
	assert_true(daemon_answers(f));
	before = vm_rss_kib(f->daemon);
	fd = connect_to(f->sock);
	assert_true(fd >= 0);
	taken = exchange(fd, line, size + 1, 1, &in, 15000);
	/* Whatever it said, it hangs up after a refused line. */
	while (!in.closed) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		if (poll(&pfd, 1, 5000) <= 0)
			fail_msg("no hang-up within 5 s after a 10 MB line; got '%s'",
				 in.buf ? in.buf : "");
		inbox_read(fd, &in);
	}
	close(fd);
	print_message("10 MB line: the daemon took %zu bytes, answered '%s'\n", taken,
		      in.len ? in.buf : "(nothing)");
	if (in.lines > 1 || (in.len > 0 && in.lines != 1))
		fail_msg("more than one reply to a 10 MB line: '%s'", in.buf);
	if (in.lines == 1) {
		o = json_tokener_parse(in.buf);
		if (o == NULL || !json_object_object_get_ex(o, "error", &v) ||
		    strcmp(json_object_get_string(v), "too-large") != 0)
			fail_msg("a 10 MB line got '%s', expected error 'too-large'", in.buf);
		json_object_put(o);
	}
	free(in.buf);
	free(line);
	assert_daemon_alive(f);
	assert_true(daemon_answers(f));
	after = vm_rss_kib(f->daemon);
	print_message("daemon RSS: %ld KiB before, %ld KiB after\n", before, after);
	if (after - before >= 4096)
		fail_msg("daemon RSS grew from %ld to %ld KiB after a 10 MB line", before, after);
}

/*
 * 1 MB of random bytes (NULs and newlines among them): one error reply per
 * line, nothing else, and the connection still answers a good request.
 */
static void check_random_bytes(struct fx *f)
{
	const size_t size = 1u << 20;
	static const char good[] = "\n{\"v\":1,\"id\":77,\"op\":\"version\"}\n";
	char *data = malloc(size + sizeof good), *line, *nl;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct inbox in = { 0 };
	size_t newlines = 0, nuls = 0, errors = 0;
	json_object *o, *v;
	int fd;

	assert_non_null(data);
	for (size_t i = 0; i < size; i++) {
		data[i] = (char)(next_random(&x) >> 56);
		newlines += data[i] == '\n';
		nuls += data[i] == '\0';
	}
	assert_true(newlines > 1000 && nuls > 1000);
	/* A newline ends the last random line, then a request that is fine. */
	memcpy(data + size, good, sizeof good - 1);
	newlines += 2;

	fd = connect_to(f->sock);
	assert_true(fd >= 0);
	assert_int_equal(exchange(fd, data, size + sizeof good - 1, newlines, &in, 20000),
			 size + sizeof good - 1);
	close(fd);
	if (in.closed && in.lines < newlines)
		fail_msg("the daemon hung up after %zu replies to %zu lines", in.lines, newlines);
	assert_int_equal(in.lines, newlines);
	for (line = in.buf; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		bool last = nl + 1 == in.buf + in.len;

		*nl = '\0';
		o = json_tokener_parse(line);
		if (o == NULL || !json_object_object_get_ex(o, "ok", &v))
			fail_msg("reply %zu to random bytes is '%s'", errors, line);
		if (json_object_get_boolean(v) != last)
			fail_msg("reply %zu of %zu is '%s'", errors + 1, newlines, line);
		if (!last)
			errors++;
		else if (!json_object_object_get_ex(o, "id", &v) || json_object_get_int(v) != 77)
			fail_msg("the good request's reply is '%s'", line);
		json_object_put(o);
	}
	print_message("1 MB of random bytes: %zu lines (%zu NULs), %zu error replies\n",
		      newlines - 1, nuls, errors);
	assert_int_equal(errors, newlines - 1);
	free(in.buf);
	free(data);
	assert_daemon_alive(f);
	assert_true(daemon_answers(f));
}

static void test_socket_garbage(void **state)
{
	struct fx *f = *state;

	daemon_start(f, NULL);
	check_huge_line(f);
	check_random_bytes(f);
	perch_ok(f, 0, "status", NULL);
	assert_daemon_alive(f);
}

/* ---- 13: disk full -------------------------------------------------------- */

/* Fills the file system of dir but for about `leave` bytes. */
static void fill(const char *dir, size_t leave)
{
	static char zeros[65536];
	char path[256];
	off_t size = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	while ((n = write(fd, zeros, sizeof zeros)) > 0)
		size += n;
	while ((n = write(fd, zeros, 1)) > 0)
		size += n;
	assert_int_equal(ftruncate(fd, size > (off_t)leave ? size - (off_t)leave : 0), 0);
	close(fd);
}

static void test_disk_full(void **state)
{
	/* Deep stacks: thousands of new frame and stack rows to write. */
	const char *const args[] = { "--depth", "150", "--threads", "2", NULL };
	struct fx *f = *state;
	struct child burner, target;
	int64_t first, second, first_samples;
	char path[256];
	struct cmd c;
	json_object *o, *v;
	sqlite3 *db;

	snprintf(f->mnt, sizeof f->mnt, "%s/mnt", f->dir);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	if (mount("tmpfs", f->mnt, "tmpfs", 0, "size=1m,mode=0700") < 0) {
		print_message("skipped: cannot mount a tmpfs: %s\n", strerror(errno));
		f->mnt[0] = '\0';
		skip();
	}
	snprintf(f->db, sizeof f->db, "%s/perch.db", f->mnt);
	daemon_start(f, NULL);
	spawn_or_fail(&burner, "burner", NULL);
	perch(f, &c, 0, "record", "-p", pid_str(burner.pid), "-d", "1", "--json",
	      "--no-autostart", NULL);
	assert_int_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.out, "\"complete\""));
	free_cmd(&c);
	db = db_ro(f);
	first = q_int(db, "SELECT max(id) FROM sessions", 0);
	first_samples = q_int(db, "SELECT thread_samples FROM sessions WHERE id = ?1", first);
	sqlite3_close(db);
	assert_int_equal(child_quit(&burner), 0);

	fill(f->mnt, 12 * 1024);
	spawn_or_fail(&target, "deep", args);
	perch(f, &c, 0, "record", "-p", pid_str(target.pid), "-d", "4", "-r", "999", "--json",
	      "--no-autostart", NULL);
	print_message("record on a full disk: exit %d after %.1f s, '%s' '%s'\n", exit_code(&c),
		      c.secs, c.out, c.err);
	o = json_tokener_parse(c.out);
	if (o == NULL)
		fail_msg("record printed '%s' '%s'", c.out, c.err);
	second = json_object_get_int64(member(o, "session"));
	assert_string_equal(json_object_get_string(member(o, "status")), "failed");
	assert_true(json_object_object_get_ex(o, "error", &v) && v != NULL);
	if (strstr(json_object_get_string(v), "full") == NULL)
		fail_msg("error '%s' does not say the disk is full", json_object_get_string(v));
	json_object_put(o);
	free_cmd(&c);
	assert_status(f, second, "failed");

	assert_int_equal(check_session_data(f, first), first_samples);
	assert_status(f, first, "complete");
	perch_ok(f, 0, "sessions", NULL);
	perch_ok(f, 0, "status", NULL);
	assert_daemon_alive(f);
	assert_untraced(target.pid, 3);

	/* With space again, the daemon records again. */
	snprintf(path, sizeof path, "%s/filler", f->mnt);
	assert_int_equal(unlink(path), 0);
	perch(f, &c, 0, "record", "-p", pid_str(target.pid), "-d", "1", "--json",
	      "--no-autostart", NULL);
	assert_int_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.out, "\"complete\""));
	free_cmd(&c);
	assert_int_equal(child_quit(&target), 0);
}

/* ---- 14: a database from a newer perch ------------------------------------ */

static void test_newer_schema(void **state)
{
	struct fx *f = *state;
	const char *argv[] = { PERCHD, "--foreground", "--socket", f->sock, "--db", f->db, NULL };
	char *before, *after;
	struct stat st;
	struct cmd c;
	sqlite3 *db;
	size_t size;
	int status;

	daemon_start(f, NULL);
	assert_true(daemon_kill(f, SIGTERM, 5000, &status));
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99; PRAGMA "
				      "wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(stat(f->db, &st), 0);
	size = (size_t)st.st_size;
	before = slurp(f->db);

	start_cmd(f, &c, 0, argv);
	if (!wait_cmd(f, &c, 5000))
		fail_msg("perchd runs on a newer database");
	print_message("perchd on a newer database: exit %d, stderr '%s'\n", exit_code(&c), c.err);
	assert_int_not_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.err, f->db));
	assert_non_null(strstr(c.err, "newer"));
	if (strchr(c.err, '\n') != c.err + strlen(c.err) - 1)
		fail_msg("perchd said more than one line: '%s'", c.err);
	assert_int_equal(lstat(f->sock, &st), -1);
	after = slurp(f->db);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal((size_t)st.st_size, size);
	assert_memory_equal(before, after, size);
	free(before);
	free(after);
	free_cmd(&c);
}

/* ---- 15: older and foreign files ------------------------------------------ */

/* Runs sql on a new SQLite file at path (not through perch). */
static void make_sqlite(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Removes the database and its -wal and -shm. */
static void remove_db(const struct fx *f)
{
	char path[256];

	unlink(f->db);
	snprintf(path, sizeof path, "%s-wal", f->db);
	unlink(path);
	snprintf(path, sizeof path, "%s-shm", f->db);
	unlink(path);
}

/*
 * perchd opens the file at f->db as it is now and makes it a current perch
 * database with every table, usable by perch; then stops.
 */
static void check_upgraded(struct fx *f, const char *what)
{
	char buf[256];
	sqlite3 *db;
	struct cmd c;
	int status;

	daemon_start(f, NULL);
	db = db_ro(f);
	print_message("%s: version %" PRId64 ", %" PRId64 " tables after perchd opened it\n",
		      what, q_int(db, "PRAGMA user_version", 0),
		      q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'", 0));
	assert_int_equal(q_int(db, "PRAGMA application_id", 0), PERCH_APPLICATION_ID);
	assert_int_equal(q_int(db, "PRAGMA user_version", 0), PERCH_SCHEMA_VERSION);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
			       "AND name IN ('schedules', 'schedule_runs', 'sessions', 'threads', "
			       "'modules', 'frames', 'stack_nodes', 'counts', 'sample_chunks')",
			       0), 9);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions", 0), 0);
	assert_string_equal(q_text(db, "PRAGMA quick_check", 0, buf, sizeof buf), "ok");
	sqlite3_close(db);
	perch(f, &c, 0, "sessions", "--json", NULL);
	if (exit_code(&c) != 0 || strncmp(c.out, "[", 1) != 0)
		fail_msg("perch sessions on the %s: exit %d, '%s' '%s'", what, exit_code(&c),
			 c.out, c.err);
	free_cmd(&c);
	perch_ok(f, 0, "schedule", "ls", NULL);
	assert_true(daemon_kill(f, SIGTERM, 5000, &status));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	remove_db(f);
}

/*
 * Version 0 is an empty file, and a perch file (application id set) at
 * version 0 with no tables is an older perch file: perchd takes both to the
 * current schema through the same steps.
 */
static void test_older_schema(void **state)
{
	struct fx *f = *state;
	struct stat st;
	char buf[128];
	int fd;

	fd = open(f->db, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	check_upgraded(f, "0-byte file");

	/* SQLite wrote a first page, and nothing is in it. */
	make_sqlite(f->db, "CREATE TABLE t (x); DROP TABLE t");
	assert_int_equal(stat(f->db, &st), 0);
	assert_true(st.st_size > 0);
	check_upgraded(f, "empty SQLite file");

	snprintf(buf, sizeof buf, "PRAGMA application_id = %d", PERCH_APPLICATION_ID);
	make_sqlite(f->db, buf);
	{
		sqlite3 *db = db_ro(f);

		assert_int_equal(q_int(db, "PRAGMA application_id", 0), PERCH_APPLICATION_ID);
		assert_int_equal(q_int(db, "PRAGMA user_version", 0), 0);
		assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema", 0), 0);
		sqlite3_close(db);
	}
	check_upgraded(f, "perch file at version 0");
}

/*
 * A file of random bytes is refused: one line naming the file, no socket,
 * and the file byte for byte as it was, with no -wal or -shm beside it.
 */
static void test_garbage_db(void **state)
{
	const size_t size = 64 * 1024;
	struct fx *f = *state;
	const char *argv[] = { PERCHD, "--foreground", "--socket", f->sock, "--db", f->db, NULL };
	char *before = malloc(size), *after, path[256];
	uint64_t x = 0x243f6a8885a308d3ull;
	struct stat st;
	struct cmd c;
	int fd;

	assert_non_null(before);
	for (size_t i = 0; i < size; i++)
		before[i] = (char)(next_random(&x) >> 56);
	fd = open(f->db, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, before, size), (ssize_t)size);
	close(fd);

	start_cmd(f, &c, 0, argv);
	if (!wait_cmd(f, &c, 5000))
		fail_msg("perchd runs on a file of random bytes");
	print_message("perchd on random bytes: exit %d, stderr '%s'\n", exit_code(&c), c.err);
	assert_int_not_equal(exit_code(&c), 0);
	assert_non_null(strstr(c.err, f->db));
	assert_non_null(strstr(c.err, "not a database"));
	if (strchr(c.err, '\n') != c.err + strlen(c.err) - 1)
		fail_msg("perchd said more than one line: '%s'", c.err);
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal((size_t)st.st_size, size);
	after = slurp(f->db);
	assert_memory_equal(before, after, size);
	snprintf(path, sizeof path, "%s-wal", f->db);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof path, "%s-shm", f->db);
	assert_int_equal(lstat(path, &st), -1);
	free(before);
	free(after);
	free_cmd(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_c, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalesced_ticks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_exits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_sampling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_robustness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_older_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_db, setup, teardown),
	};

	/* PERCH_TEST_FILTER=test_schedules runs one case (a glob). */
	if (getenv("PERCH_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("PERCH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
