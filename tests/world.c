#include "world.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static const char *phase = "battery";
static int failures;

void world_set_phase(const char *name)
{
	phase = name;
}

void world_fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: ", phase);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failures++;
}

int world_failures(void)
{
	return failures;
}

void world_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

uint64_t world_random(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n ? rng_state % n : 0;
}

void world_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static char *slurp(const char *path)
{
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	if (buf == NULL)
		abort();
	while (fd >= 0 && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 4096 && (buf = realloc(buf, cap *= 2)) == NULL)
			abort();
	}
	buf[len] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

/* ---- the world ---------------------------------------------------------- */

int world_init(struct world *w)
{
	memset(w, 0, sizeof *w);
	snprintf(w->root, sizeof w->root, "/tmp/perch-battery-XXXXXX");
	return mkdtemp(w->root) ? 0 : -1;
}

int world_phase(struct world *w, const char *name, const char *db_dir)
{
	snprintf(w->dir, sizeof w->dir, "%s/%s", w->root, name);
	if (mkdir(w->dir, 0700) < 0 && errno != EEXIST)
		return -1;
	snprintf(w->sock, sizeof w->sock, "%s/perch.sock", w->dir);
	snprintf(w->db, sizeof w->db, "%s/perch.db", db_dir ? db_dir : w->dir);
	snprintf(w->log, sizeof w->log, "%s/perchd.log", w->dir);
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

void world_remove(struct world *w)
{
	nftw(w->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- commands ------------------------------------------------------------ */

/* The child side of a command: never returns. */
static void exec_child(const struct world *w, const char *const *argv, const char *out_path,
		       const char *err_path, bool append)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
	int out = open(out_path, flags, 0644);
	int err = open(err_path, flags, 0644);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* The battery killed by a timeout takes what it started along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (out < 0 || err < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(err, 2) < 0)
		_exit(126);
	setenv("PERCH_SOCKET", w->sock, 1);
	setenv("PERCH_DB", w->db, 1);
	/* A daemon autostarted by mistake would outlive the battery. */
	setenv("PERCH_DAEMON", "/nonexistent/perchd", 1);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static void start(struct world *w, struct cmd *c, const char *const *argv, bool append,
		  const char *out_path, const char *err_path)
{
	memset(c, 0, sizeof *c);
	snprintf(c->out_path, sizeof c->out_path, "%s", out_path);
	snprintf(c->err_path, sizeof c->err_path, "%s", err_path);
	c->started_ns = mono_ns();
	c->pid = fork();
	if (c->pid < 0) {
		perror("battery: fork");
		abort();
	}
	if (c->pid == 0)
		exec_child(w, argv, out_path, err_path, append);
}

void world_cmd_start(struct world *w, struct cmd *c, const char *const *args)
{
	const char *argv[32] = { WORLD_PERCH };
	char out[192], err[192];
	size_t n = 1;

	for (; args[n - 1] != NULL && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	w->nfiles++;
	snprintf(out, sizeof out, "%s/out.%d", w->dir, w->nfiles);
	snprintf(err, sizeof err, "%s/err.%d", w->dir, w->nfiles);
	start(w, c, argv, false, out, err);
}

static bool sanitizer_report(const char *text)
{
	return strstr(text, "AddressSanitizer") || strstr(text, "LeakSanitizer") ||
	       strstr(text, "runtime error:");
}

static void finish(struct cmd *c)
{
	c->done = true;
	c->secs = (double)(mono_ns() - c->started_ns) / 1e9;
	c->out = slurp(c->out_path);
	c->err = slurp(c->err_path);
	if (sanitizer_report(c->err))
		world_fail("sanitizer report from perch:\n%s", c->err);
	/* Thousands of clients run: keep the directory small. */
	unlink(c->out_path);
	unlink(c->err_path);
}

bool world_cmd_poll(struct cmd *c)
{
	if (!c->done && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		finish(c);
	return c->done;
}

bool world_cmd_wait(struct cmd *c, long timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;

	while (!world_cmd_poll(c)) {
		if (mono_ns() > deadline) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			finish(c);
			c->status = -1;
			return false;
		}
		world_sleep_ms(2);
	}
	return true;
}

void world_cmd_free(struct cmd *c)
{
	free(c->out);
	free(c->err);
	c->out = c->err = NULL;
}

int world_cmd_exit(const struct cmd *c)
{
	if (!c->done || c->status == -1)
		return -1;
	return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status);
}

int world_perch(struct world *w, struct cmd *c, long timeout_ms, ...)
{
	const char *args[31];
	size_t n = 0;
	va_list ap;

	va_start(ap, timeout_ms);
	while ((args[n] = va_arg(ap, const char *)) != NULL && n < 30)
		n++;
	args[n] = NULL;
	va_end(ap);
	world_cmd_start(w, c, args);
	return world_cmd_wait(c, timeout_ms) ? world_cmd_exit(c) : -1;
}

/* ---- the daemon ---------------------------------------------------------- */

static bool answers(const struct world *w)
{
	json_object *o = world_call(w, "{\"v\":1,\"id\":1,\"op\":\"version\"}\n"), *ok;
	bool yes = o && json_object_object_get_ex(o, "ok", &ok) && json_object_get_boolean(ok);

	json_object_put(o);
	return yes;
}

int world_daemon_start(struct world *w)
{
	const char *argv[] = { WORLD_PERCHD, "--foreground", "--socket", w->sock, "--db", w->db,
			       NULL };
	char out[192];
	struct cmd c;
	int status;

	snprintf(out, sizeof out, "%s/perchd.out", w->dir);
	start(w, &c, argv, true, out, w->log);
	w->daemon = c.pid;
	for (int i = 0; i < 1000; i++) {
		if (answers(w))
			return 0;
		if (waitpid(w->daemon, &status, WNOHANG) == w->daemon) {
			fprintf(stderr, "battery: perchd exited at start (status 0x%x)\n", status);
			w->daemon = 0;
			return -1;
		}
		world_sleep_ms(10);
	}
	fprintf(stderr, "battery: perchd does not answer 10 s after its start\n");
	world_daemon_kill(w);
	return -1;
}

int world_daemon_stop(struct world *w)
{
	int status = 0;

	if (w->daemon <= 0)
		return 0;
	kill(w->daemon, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(w->daemon, &status, WNOHANG) == w->daemon) {
			w->daemon = 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				return 0;
			fprintf(stderr, "battery: perchd ended with status 0x%x after SIGTERM\n",
				status);
			return -1;
		}
		world_sleep_ms(10);
	}
	fprintf(stderr, "battery: perchd still runs 10 s after SIGTERM\n");
	world_daemon_kill(w);
	return -1;
}

void world_daemon_kill(struct world *w)
{
	if (w->daemon <= 0)
		return;
	kill(w->daemon, SIGKILL);
	waitpid(w->daemon, NULL, 0);
	w->daemon = 0;
}

bool world_daemon_alive(struct world *w)
{
	int status;

	if (w->daemon <= 0)
		return false;
	if (waitpid(w->daemon, &status, WNOHANG) == w->daemon) {
		fprintf(stderr, "battery: perchd died (status 0x%x)\n", status);
		w->daemon = 0;
		return false;
	}
	return true;
}

bool world_daemon_log_clean(const struct world *w)
{
	char *text = slurp(w->log);
	bool clean = !sanitizer_report(text);

	if (!clean)
		world_fail("sanitizer report in %s:\n%s", w->log, text);
	free(text);
	return clean;
}

/* ---- the protocol -------------------------------------------------------- */

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof sa.sun_path) {
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One line of reply, 10 s at most. */
static json_object *read_reply(int fd)
{
	static char buf[1 << 16];
	unsigned long long deadline = mono_ns() + 10000000000ull;
	size_t len = 0;

	while (len + 1 < sizeof buf) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		long long left = (long long)(deadline - mono_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return NULL;
		n = read(fd, buf + len, sizeof buf - len - 1);
		if (n <= 0)
			return NULL;
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len) != NULL)
			return json_tokener_parse(buf);
	}
	return NULL;
}

json_object *world_call(const struct world *w, const char *request)
{
	int fd = connect_to(w->sock);
	json_object *o = NULL;
	size_t len = strlen(request);

	if (fd < 0)
		return NULL;
	if (send(fd, request, len, MSG_NOSIGNAL) == (ssize_t)len)
		o = read_reply(fd);
	close(fd);
	return o;
}

int64_t world_start(const struct world *w, pid_t pid, double duration_s, double rate_hz,
		    bool children, char *why, size_t size)
{
	char req[256];
	json_object *o, *v;
	int64_t id = -1;

	snprintf(req, sizeof req,
		 "{\"v\":1,\"id\":3,\"op\":\"start\",\"pid\":%d,\"duration_s\":%g,"
		 "\"rate_hz\":%g,\"children\":%s}\n",
		 (int)pid, duration_s, rate_hz, children ? "true" : "false");
	o = world_call(w, req);
	if (o == NULL)
		snprintf(why, size, "no reply from perchd");
	else if (json_object_object_get_ex(o, "session", &v))
		id = json_object_get_int64(v);
	else
		snprintf(why, size, "%s", json_object_to_json_string(o));
	json_object_put(o);
	return id;
}

/* The id of pid's session in a status reply if it has min_samples, else -1. */
static int64_t recording(json_object *o, pid_t pid, int64_t min_samples)
{
	json_object *arr, *v;

	if (o == NULL || !json_object_object_get_ex(o, "sessions", &arr))
		return -1;
	for (size_t j = 0; j < json_object_array_length(arr); j++) {
		json_object *s = json_object_array_get_idx(arr, j);

		if (!json_object_object_get_ex(s, "pid", &v) || json_object_get_int(v) != pid)
			continue;
		if (json_object_object_get_ex(s, "samples", &v) &&
		    json_object_get_int64(v) >= min_samples &&
		    json_object_object_get_ex(s, "session", &v))
			return json_object_get_int64(v);
	}
	return -1;
}

int64_t world_wait_samples(const struct world *w, pid_t pid, int64_t min_samples,
			   long timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;

	do {
		json_object *o = world_call(w, "{\"v\":1,\"id\":2,\"op\":\"status\"}\n");
		int64_t id = recording(o, pid, min_samples);

		json_object_put(o);
		if (id >= 0)
			return id;
		world_sleep_ms(2);
	} while (mono_ns() < deadline);
	return -1;
}

/* ---- the database --------------------------------------------------------- */

sqlite3 *world_db(const struct world *w)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(w->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "battery: cannot open %s: %s\n", w->db, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

int64_t world_q_int(sqlite3 *db, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (db == NULL || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int read_row(sqlite3 *db, int64_t id, struct session_row *r)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT status, coalesce(error, ''), samples, thread_samples,"
			       " late_samples FROM sessions WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(r->status, sizeof r->status, "%s", sqlite3_column_text(st, 0));
		snprintf(r->error, sizeof r->error, "%s", sqlite3_column_text(st, 1));
		r->samples = sqlite3_column_int64(st, 2);
		r->thread_samples = sqlite3_column_int64(st, 3);
		r->late_samples = sqlite3_column_int64(st, 4);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int world_session(const struct world *w, int64_t id, bool wait_end, long timeout_ms,
		  struct session_row *r)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;
	int rc;

	memset(r, 0, sizeof *r);
	for (;;) {
		sqlite3 *db = world_db(w);

		rc = db ? read_row(db, id, r) : -1;
		sqlite3_close(db);
		if ((rc == 0 && (!wait_end || strcmp(r->status, "recording") != 0)) ||
		    mono_ns() > deadline)
			return rc;
		world_sleep_ms(10);
	}
}

int64_t world_flat_samples(const char *json, const char *func)
{
	json_object *arr = json_tokener_parse(json), *v;
	int64_t n = -1;

	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return -1;
	}
	n = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *row = json_object_array_get_idx(arr, i);

		if (func != NULL && (!json_object_object_get_ex(row, "func", &v) ||
				     strcmp(json_object_get_string(v), func) != 0))
			continue;
		if (json_object_object_get_ex(row, "samples", &v))
			n += json_object_get_int64(v);
	}
	json_object_put(arr);
	return n;
}

/* ---- processes ------------------------------------------------------------ */

/* A "Key:" number of /proc/PID[/task/TID]/status, or -1. */
static long status_field(const char *path, const char *key)
{
	char buf[4096];
	const char *p;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

bool world_untraced(pid_t pid, char *why, size_t size)
{
	pid_t tids[512];
	int n = proc_threads(pid, tids, 512);

	if (n == 0) {
		snprintf(why, size, "process %d has no threads", (int)pid);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char path[96], st = proc_state(pid, tids[i]);
		long tracer;

		snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
		tracer = status_field(path, "TracerPid:");
		/* A thread that just exited has no state and no status: not stuck. */
		if (st == 0 && tracer < 0)
			continue;
		if (st == 'T' || st == 't' || tracer > 0) {
			snprintf(why, size, "pid %d thread %d: state '%c', TracerPid %ld",
				 (int)pid, (int)tids[i], st ? st : '-', tracer);
			return false;
		}
	}
	return true;
}

bool world_kill_wait(pid_t pid, long timeout_ms)
{
	siginfo_t info;

	kill(pid, SIGKILL);
	for (long waited = 0; waited <= timeout_ms; waited += 5) {
		memset(&info, 0, sizeof info);
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    info.si_pid == pid)
			return true;
		world_sleep_ms(5);
	}
	return false;
}

/* Prints a /proc file of a thread on one line, prefixed by its name. */
static void print_file(const char *path, const char *label)
{
	char buf[2048];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("      %s: %s\n", label, buf);
}

void world_describe(pid_t pid, const char *what)
{
	pid_t tids[512];
	int n = proc_threads(pid, tids, 512);

	printf("    %s %d, %d threads:\n", what, (int)pid, n);
	for (int i = 0; i < n; i++) {
		char path[96], label[64];

		snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
		printf("    thread %d state '%c' TracerPid %ld\n", (int)tids[i],
		       proc_state(pid, tids[i]) ? proc_state(pid, tids[i]) : '-',
		       status_field(path, "TracerPid:"));
		snprintf(path, sizeof path, "/proc/%d/task/%d/wchan", (int)pid, (int)tids[i]);
		snprintf(label, sizeof label, "wchan");
		print_file(path, label);
		snprintf(path, sizeof path, "/proc/%d/task/%d/stack", (int)pid, (int)tids[i]);
		snprintf(label, sizeof label, "stack");
		print_file(path, label);
	}
	fflush(stdout);
}

long world_rss_kib(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	return status_field(path, "VmRSS:");
}

unsigned long long world_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, stime = 0;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	p = strrchr(buf, ')');
	/* Fields 14 and 15, counted from the state (field 3) after the ')'. */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &stime) != 2)
		return 0;
	return ut + stime;
}

bool world_runs(pid_t pid, long timeout_ms)
{
	unsigned long long t0 = world_cpu_ticks(pid);

	for (long waited = 0; waited <= timeout_ms; waited += 10) {
		if (world_cpu_ticks(pid) > t0)
			return true;
		world_sleep_ms(10);
	}
	return false;
}
