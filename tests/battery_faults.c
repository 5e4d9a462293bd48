/*
 * The battery's faults: targets killed while sampled, thread churn, exec,
 * fork, a full disk, and perchd itself killed.  Each phase starts its own
 * daemon in its own directory and checks what the issue states, failing
 * (world_fail) on every difference.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "battery.h"
#include "spawn.h"

/* The record's JSON: {session, status, samples, late_samples, error}. */
struct record_result {
	int64_t session, samples, late;
	char status[32];
	char error[256];
};

static bool parse_record(const struct cmd *c, struct record_result *r)
{
	json_object *o = json_tokener_parse(c->out), *v;

	memset(r, 0, sizeof *r);
	r->session = -1;
	if (o == NULL)
		return false;
	if (json_object_object_get_ex(o, "session", &v))
		r->session = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "samples", &v))
		r->samples = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "late_samples", &v))
		r->late = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "status", &v))
		snprintf(r->status, sizeof r->status, "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "error", &v) && v != NULL)
		snprintf(r->error, sizeof r->error, "%s", json_object_get_string(v));
	json_object_put(o);
	return r->session >= 0;
}

/* Runs perch record to its end; whether it said a session ended `want`. */
static bool record(struct world *w, pid_t pid, const char *secs, const char *rate,
		   bool children, const char *want, struct record_result *r)
{
	struct cmd c;
	int rc;

	if (children)
		rc = world_perch(w, &c, 60000, "record", "-p", battery_num(pid), "-d", secs, "-r",
				 rate, "--children", "--json", "--no-autostart", NULL);
	else
		rc = world_perch(w, &c, 60000, "record", "-p", battery_num(pid), "-d", secs, "-r",
				 rate, "--json", "--no-autostart", NULL);
	if (rc != 0 || !parse_record(&c, r) || strcmp(r->status, want) != 0) {
		world_fail("perch record -p %d -d %s: exit %d, '%s' '%s' (expected %s)", (int)pid,
			   secs, rc, c.out, c.err, want);
		world_cmd_free(&c);
		return false;
	}
	world_cmd_free(&c);
	return true;
}

/* perch flat SESSION --json: the samples of func (NULL: all), or -1. */
static int64_t flat(struct world *w, int64_t id, const char *func)
{
	struct cmd c;
	int64_t n = -1;
	int rc = world_perch(w, &c, 30000, "flat", battery_num(id), "--json", "-n", "100000",
			     NULL);

	if (rc == 0)
		n = world_flat_samples(c.out, func);
	if (n < 0)
		world_fail("perch flat %" PRId64 ": exit %d, '%.200s' '%s'", id, rc, c.out, c.err);
	world_cmd_free(&c);
	return n;
}

static bool spawn(struct child *c, const char *name, const char *const *args)
{
	if (spawn_target(c, name, args) == 0)
		return true;
	world_fail("cannot start target %s", name);
	return false;
}

static bool quit(struct child *c, const char *name)
{
	if (child_quit(c) == 0)
		return true;
	world_fail("%s did not exit 0 when asked to quit (status 0x%x)", name, c->status);
	return false;
}

/* ---- targets killed while sampled ---------------------------------------- */

struct kind {
	const char *name;
	const char *const args[6];
};

static const struct kind kill_kinds[] = {
	{ "burner", { "--threads", "2", NULL } },
	{ "threads", { "--threads", "8", "--busy", "2", NULL } },
	{ "churn", { "--rate", "1000", NULL } },
	{ "epollwait", { "--threads", "4", "--tick-us", "1000", NULL } },
};

/* What the record client and the database say after the kill. */
static bool check_killed(struct world *w, struct cmd *rec, int64_t id, int64_t *kept)
{
	struct record_result r;
	struct session_row row;
	int64_t in_flat;

	if (!world_cmd_wait(rec, 10000)) {
		world_fail("session %" PRId64 ": perch record still runs 10 s after the target died",
			   id);
		return false;
	}
	if (world_cmd_exit(rec) != 0 || !parse_record(rec, &r) ||
	    strcmp(r.status, "target-exited") != 0 || r.samples <= 0) {
		world_fail("session %" PRId64 ": record exit %d, '%s' '%s'", id,
			   world_cmd_exit(rec), rec->out, rec->err);
		return false;
	}
	if (world_session(w, id, true, 5000, &row) < 0 || strcmp(row.status, "target-exited") ||
	    row.samples <= 0 || row.thread_samples <= 0) {
		world_fail("session %" PRId64 " in the database: '%s', %" PRId64 " samples, %" PRId64
			   " thread samples", id, row.status, row.samples, row.thread_samples);
		return false;
	}
	in_flat = flat(w, id, NULL);
	if (in_flat != row.thread_samples) {
		world_fail("session %" PRId64 ": perch flat reads %" PRId64 " of %" PRId64
			   " thread samples", id, in_flat, row.thread_samples);
		return false;
	}
	*kept += row.thread_samples;
	return true;
}

/* One target, one recording, one SIGKILL at a random moment of it. */
static bool kill_one(struct world *w, int i, int64_t *kept)
{
	const struct kind *k = &kill_kinds[world_random(4)];
	const char *rate = world_random(2) ? "999" : "99";
	long delay_us = (long)world_random(150000);
	struct child t;
	struct cmd rec;
	int64_t id;
	bool ok;

	if (!spawn(&t, k->name, k->args))
		return false;
	world_cmd_start(w, &rec, (const char *const[]){ "record", "-p", battery_num(t.pid),
			"-r", rate, "--json", "--no-autostart", NULL });
	id = world_wait_samples(w, t.pid, 1, 10000);
	if (id < 0) {
		child_kill(&t);
		world_cmd_wait(&rec, 5000);
		world_fail("kill %d: no session of %s (pid %d) recording after 10 s: '%s' '%s'",
			   i, k->name, (int)t.pid, rec.out, rec.err);
		world_cmd_free(&rec);
		return false;
	}
	world_sleep_ms(delay_us / 1000);
	if (!world_kill_wait(t.pid, 10000)) {
		world_fail("kill %d: %s (pid %d, %s Hz) cannot be reaped 10 s after SIGKILL",
			   i, k->name, (int)t.pid, rate);
		world_describe(t.pid, "target");
		world_describe(w->daemon, "perchd");
		/* Only perchd's end lets the target finish dying. */
		world_daemon_kill(w);
		child_kill(&t);
		world_cmd_wait(&rec, 5000);
		world_cmd_free(&rec);
		return false;
	}
	child_kill(&t);
	ok = check_killed(w, &rec, id, kept);
	if (!ok)
		printf("  (kill %d: %s at %s Hz, %ld ms after its first sample)\n", i, k->name,
		       rate, delay_us / 1000);
	world_cmd_free(&rec);
	return ok && battery_daemon_serves(w, "after a target was killed");
}

void phase_target_kills(struct world *w, const struct params *p)
{
	long rss0, rss1;
	int64_t kept = 0;
	int done = 0;

	if (world_phase(w, "target-kills", NULL) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
		return;
	}
	rss0 = world_rss_kib(w->daemon);
	for (int i = 0; i < p->target_kills && !battery_stop; i++) {
		if (!kill_one(w, i, &kept) && !world_daemon_alive(w))
			break;
		done++;
		if ((i + 1) % (p->target_kills / 10 ? p->target_kills / 10 : 1) == 0)
			printf("  %d/%d targets killed\n", i + 1, p->target_kills);
		fflush(stdout);
	}
	rss1 = world_rss_kib(w->daemon);
	printf("  %d targets killed while sampled; %" PRId64 " thread samples kept and read back;"
	       " perchd RSS %ld -> %ld KiB\n", done, kept, rss0, rss1);
	if (world_daemon_stop(w) < 0)
		world_fail("perchd did not stop cleanly after the kills");
}

/* ---- thread churn --------------------------------------------------------- */

/*
 * Each short thread works this long: long enough to be found in /proc and
 * stopped (a tick lists the task directory, opens three files and
 * interrupts, some 50-100 µs), short enough that 1000 of them fit in a
 * second with time to spare.  churn's default, a few µs of work in a thread
 * of some 30 µs, is over before any tick can list it: perch caught 4-6 of
 * 5000 such threads and none in short_task.
 */
#define CHURN_WORK_US "200"

/*
 * What churn achieves on this machine now, unsampled: on a loaded machine
 * thread creation itself is slower than 1000/s.
 */
static double churn_baseline(void)
{
	const char *const args[] = { "--rate", "1000", "--work-us", CHURN_WORK_US, "--seconds", "3",
				     NULL };
	struct child t;

	if (!spawn(&t, "churn", args))
		return -1;
	if (child_wait(&t) < 0 || child_report_long(&t, "created") < 0) {
		world_fail("churn --seconds 3 did not report");
		return -1;
	}
	return (double)child_report_long(&t, "created") / 3;
}

void phase_churn(struct world *w, const struct params *p)
{
	const char *const args[] = { "--rate", "1000", "--work-us", CHURN_WORK_US, NULL };
	struct record_result r;
	struct child t;
	unsigned long long t0;
	double secs, expected, baseline;
	long created;
	sqlite3 *db;

	if (world_phase(w, "churn", NULL) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
		return;
	}
	if ((baseline = churn_baseline()) < 0 || !spawn(&t, "churn", args))
		return;
	t0 = mono_ns();
	if (record(w, t.pid, battery_num((long long)p->churn_s), "999", false, "complete", &r)) {
		int64_t due = r.samples + r.late;

		db = world_db(w);
		printf("  %" PRId64 " ticks (%.2f %% late), %" PRId64 " threads seen, %" PRId64
		       " of them churn-short\n", r.samples, due ? 100.0 * (double)r.late / (double)due : 0,
		       world_q_int(db, "SELECT count(*) FROM threads WHERE session_id = ?1", r.session),
		       world_q_int(db, "SELECT count(*) FROM threads WHERE session_id = ?1 AND "
				   "name = 'churn-short'", r.session));
		sqlite3_close(db);
		/* Every tick is taken or counted late: the session ran its length. */
		if (due < 0.9 * 999 * p->churn_s || r.samples > 1.1 * 999 * p->churn_s)
			world_fail("%" PRId64 " ticks, %" PRId64 " late in %.0f s at 999 Hz",
				   r.samples, r.late, p->churn_s);
		/*
		 * A short thread spends 200 µs of every ms in short_task: a
		 * perfect sampler finds it there in ~20 % of the ticks.  1 % is
		 * asked, which a loaded machine or the sanitizers leave room for.
		 */
		int64_t in_short = flat(w, r.session, "short_task");

		printf("  %" PRId64 " samples in short_task (%.1f %% of the ticks)\n", in_short,
		       r.samples ? 100.0 * (double)in_short / (double)r.samples : 0);
		if (in_short < 0.01 * (double)r.samples)
			world_fail("%" PRId64 " samples in short_task in %" PRId64 " ticks (< 1 %%)",
				   in_short, r.samples);
	}
	battery_untraced(t.pid, "after the churn session");
	battery_daemon_serves(w, "after the churn session");
	if (quit(&t, "churn")) {
		secs = (double)(mono_ns() - t0) / 1e9;
		created = child_report_long(&t, "created");
		expected = secs * (baseline < 1000 ? baseline : 1000);
		printf("  churn created %ld threads in %.1f s (%.0f / s; %.0f / s unsampled)\n",
		       created, secs, (double)created / secs, baseline);
		/* churn keeps its rate unless something delays it. */
		if ((double)created < 0.9 * expected && battery_sanitized)
			printf("  (the rate is not checked under the sanitizers: it measures how"
			       " much longer ASan's sampler holds each stop)\n");
		else if ((double)created < 0.9 * expected)
			world_fail("churn created %ld threads in %.1f s, below 90 %% of its"
				   " unsampled %.0f / s", created, secs, baseline);
	}
	if (world_daemon_stop(w) < 0)
		world_fail("perchd did not stop cleanly");
}

/* ---- exec and fork -------------------------------------------------------- */

void phase_exec(struct world *w, const struct params *p)
{
	char burner[512];
	struct record_result r;

	if (world_phase(w, "exec", NULL) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
		return;
	}
	snprintf(burner, sizeof burner, "%s/burner", PERCH_TARGETS_DIR);
	for (int i = 0; i < p->exec_runs && !battery_stop; i++) {
		long ms = 200 + (long)world_random(1000);
		const char *const args[] = { "--exec", burner, "--ms", battery_num(ms), NULL };
		int64_t before, after;
		struct child t;

		if (!spawn(&t, "execer", args))
			return;
		if (record(w, t.pid, "2", "99", false, "complete", &r)) {
			before = flat(w, r.session, "before_exec");
			after = flat(w, r.session, "burn_alpha");
			printf("  exec after %ld ms: %" PRId64 " samples in before_exec, %" PRId64
			       " in burn_alpha (after the exec)\n", ms, before, after);
			if (before <= 0 || after <= 0)
				world_fail("exec after %ld ms: the session missed one side of the exec",
					   ms);
		}
		battery_untraced(t.pid, "after the exec session");
		battery_daemon_serves(w, "after the exec session");
		quit(&t, "execer (burner after its exec)");
	}
	if (world_daemon_stop(w) < 0)
		world_fail("perchd did not stop cleanly");
}

/* forker's children exist before the session; check they were followed. */
static void forker_run(struct world *w)
{
	const char *const args[] = { "--children", "2", NULL };
	struct record_result r;
	struct child t;
	sqlite3 *db;

	if (!spawn(&t, "forker", args))
		return;
	if (record(w, t.pid, "2", "99", true, "complete", &r)) {
		int64_t procs, in_child = flat(w, r.session, "child_work");

		db = world_db(w);
		procs = world_q_int(db, "SELECT count(DISTINCT pid) FROM threads WHERE "
				    "session_id = ?1", r.session);
		sqlite3_close(db);
		printf("  forker: %" PRId64 " processes, %" PRId64 " samples in child_work\n",
		       procs, in_child);
		if (procs < 3 || in_child <= 0)
			world_fail("forker --children 2: %" PRId64 " processes sampled, %" PRId64
				   " samples in child_work", procs, in_child);
	}
	battery_untraced(t.pid, "after the forker session");
	quit(&t, "forker");
}

/*
 * A shell that forks a new worker (burner, 1.2 s) as the last one ends,
 * started with a death signal so that it cannot outlive the battery.
 */
static pid_t start_shell(void)
{
	char script[640];
	pid_t pid;

	snprintf(script, sizeof script,
		 "while :; do %s/burner --threads 1 --seconds 1.2 </dev/null >/dev/null; done",
		 PERCH_TARGETS_DIR);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* A process of the session, other than root, still alive: untraced? */
static void check_session_processes(struct world *w, int64_t id, pid_t root)
{
	sqlite3 *db = world_db(w);
	sqlite3_stmt *st;

	if (db == NULL || sqlite3_prepare_v2(db, "SELECT DISTINCT pid FROM threads WHERE "
					     "session_id = ?1", -1, &st, NULL) != SQLITE_OK) {
		world_fail("cannot list the processes of session %" PRId64, id);
		sqlite3_close(db);
		return;
	}
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		pid_t pid = (pid_t)sqlite3_column_int(st, 0);
		char why[160];

		if (pid != root && kill(pid, 0) == 0 && !world_untraced(pid, why, sizeof why))
			world_fail("worker %d left alone? %s", (int)pid, why);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void shell_run(struct world *w)
{
	struct record_result r;
	pid_t sh = start_shell();

	if (sh < 0) {
		world_fail("cannot fork the shell");
		return;
	}
	world_sleep_ms(200);
	if (record(w, sh, "5", "99", true, "complete", &r)) {
		int64_t procs, in_worker = flat(w, r.session, "burn_alpha");
		sqlite3 *db = world_db(w);

		procs = world_q_int(db, "SELECT count(DISTINCT pid) FROM threads WHERE "
				    "session_id = ?1", r.session);
		sqlite3_close(db);
		printf("  shell forking workers: %" PRId64 " processes, %" PRId64
		       " samples in burn_alpha\n", procs, in_worker);
		/* The shell and at least three of the ~4 workers of 5 s. */
		if (procs < 4 || in_worker <= 0)
			world_fail("shell forking workers: %" PRId64 " processes sampled, %" PRId64
				   " samples in burn_alpha", procs, in_worker);
		check_session_processes(w, r.session, sh);
	}
	battery_untraced(sh, "after the shell session");
	kill(sh, SIGKILL);
	waitpid(sh, NULL, 0);
}

void phase_fork(struct world *w, const struct params *p)
{
	if (world_phase(w, "fork", NULL) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
		return;
	}
	for (int i = 0; i < p->fork_runs && !battery_stop; i++) {
		forker_run(w);
		shell_run(w);
		battery_daemon_serves(w, "after the fork sessions");
	}
	if (world_daemon_stop(w) < 0)
		world_fail("perchd did not stop cleanly");
}

/* ---- the disk fills up ----------------------------------------------------- */

/* Fills the file system of path completely; the bytes written. */
static long long fill(const char *path)
{
	static char zeros[65536];
	long long size = 0;
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	while ((n = write(fd, zeros, sizeof zeros)) > 0)
		size += n;
	while ((n = write(fd, zeros, 512)) > 0)
		size += n;
	while ((n = write(fd, zeros, 1)) > 0)
		size += n;
	close(fd);
	return size;
}

/* The earlier session reads back whole while the disk is full. */
static void check_intact(struct world *w, int64_t id, int64_t samples)
{
	struct session_row row;
	int64_t now = flat(w, id, NULL);

	if (now != samples)
		world_fail("session %" PRId64 " reads %" PRId64 " samples, had %" PRId64, id, now,
			   samples);
	if (world_session(w, id, false, 0, &row) < 0 || strcmp(row.status, "complete") != 0)
		world_fail("session %" PRId64 " is '%s' now, was complete", id, row.status);
}

/* A session that fills the disk mid-way: it fails and says why. */
static void fill_mid_session(struct world *w, const char *mnt, pid_t pid, int64_t first,
			     int64_t first_samples)
{
	char filler[256];
	struct record_result r;
	struct session_row row;
	struct cmd rec, c;
	long long filled;
	int64_t id;

	world_cmd_start(w, &rec, (const char *const[]){ "record", "-p", battery_num(pid), "-d",
			"20", "-r", "999", "--json", "--no-autostart", NULL });
	id = world_wait_samples(w, pid, 50, 10000);
	if (id < 0) {
		world_cmd_wait(&rec, 1000);
		world_fail("no session of deep recording: '%s' '%s'", rec.out, rec.err);
		world_cmd_free(&rec);
		return;
	}
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	filled = fill(filler);
	if (!world_cmd_wait(&rec, 15000)) {
		world_fail("session %" PRId64 " still records 15 s after the disk filled", id);
	} else if (!parse_record(&rec, &r) || strcmp(r.status, "failed") != 0 ||
		   strstr(r.error, "full") == NULL) {
		world_fail("record on a disk that filled up: exit %d, '%s' '%s'",
			   world_cmd_exit(&rec), rec.out, rec.err);
	} else {
		printf("  session %" PRId64 " failed %.1f s after the disk filled (%lld bytes"
		       " filled): %s\n", r.session, rec.secs, filled, r.error);
	}
	world_cmd_free(&rec);
	/* Read while the disk is still full. */
	check_intact(w, first, first_samples);
	if (world_session(w, id, false, 0, &row) < 0)
		world_fail("session %" PRId64 " has no row", id);
	else
		printf("  its row reads '%s' (%s) with the disk full\n", row.status, row.error);
	if (world_perch(w, &c, 30000, "sessions", "--json", NULL) != 0)
		world_fail("perch sessions on a full disk: '%s'", c.err);
	world_cmd_free(&c);
	battery_daemon_serves(w, "with the disk full");
	battery_untraced(pid, "after the disk filled");
	if (!world_runs(pid, 2000))
		world_fail("the target stopped running after the disk filled");
	unlink(filler);
	/* Written once there is space again (the store retries the status). */
	if (world_session(w, id, true, 5000, &row) < 0 || strcmp(row.status, "failed") != 0)
		world_fail("session %" PRId64 " is '%s' once there is space, expected failed", id,
			   row.status);
}

static void disk_run(struct world *w, const char *mnt)
{
	const char *const deep_args[] = { "--depth", "150", "--threads", "2", NULL };
	const char *const burner_args[] = { "--threads", "1", NULL };
	struct record_result r;
	struct child b, d;
	int64_t first, first_samples;

	if (!spawn(&b, "burner", burner_args))
		return;
	if (!record(w, b.pid, "1", "99", false, "complete", &r)) {
		child_kill(&b);
		return;
	}
	first = r.session;
	first_samples = flat(w, first, NULL);
	quit(&b, "burner");
	if (!spawn(&d, "deep", deep_args))
		return;
	fill_mid_session(w, mnt, d.pid, first, first_samples);
	/* With space again, the daemon records again. */
	record(w, d.pid, "1", "99", false, "complete", &r);
	check_intact(w, first, first_samples);
	quit(&d, "deep");
}

void phase_disk_full(struct world *w, const struct params *p)
{
	char mnt[160];

	snprintf(mnt, sizeof mnt, "%s/disk-mnt", w->root);
	if (mkdir(mnt, 0700) < 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700") < 0) {
		printf("  skipped: cannot mount a tmpfs: %s\n", strerror(errno));
		return;
	}
	if (world_phase(w, "disk-full", mnt) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
	} else {
		for (int i = 0; i < p->disk_runs && !battery_stop; i++)
			disk_run(w, mnt);
		if (world_daemon_stop(w) < 0)
			world_fail("perchd did not stop cleanly");
	}
	umount2(mnt, MNT_DETACH);
}

/* ---- perchd killed -------------------------------------------------------- */

/* After the kill: every thread of every target runs free, at once or soon. */
static int check_released(pid_t *pids, int n, int iteration)
{
	int late = 0;

	for (int i = 0; i < n; i++) {
		char why[160];
		bool ok = world_untraced(pids[i], why, sizeof why);

		for (int tries = 0; !ok && tries < 200; tries++) {
			world_sleep_ms(10);
			ok = world_untraced(pids[i], why, sizeof why);
			late = 1;
		}
		if (!ok)
			world_fail("kill %d: 2 s after perchd died, %s", iteration, why);
		else if (!world_runs(pids[i], 2000))
			world_fail("kill %d: target %d uses no CPU after perchd died", iteration,
				   (int)pids[i]);
	}
	return late;
}

/* Sessions on every target, a random wait, SIGKILL, checks, restart. */
static bool kill_daemon_once(struct world *w, pid_t *pids, int n, int iteration, int *late)
{
	const char *rate = world_random(2) ? "999" : "99";
	long delay_ms = (long)world_random(300);
	int64_t ids[4];
	char why[256];

	for (int i = 0; i < n; i++) {
		if (world_start(w, pids[i], 0, atof(rate), false, why, sizeof why) < 0 ||
		    (ids[i] = world_wait_samples(w, pids[i], 1, 10000)) < 0) {
			world_fail("kill %d: no session of %d: %s", iteration, (int)pids[i], why);
			return false;
		}
	}
	world_sleep_ms(delay_ms);
	world_daemon_kill(w);
	*late += check_released(pids, n, iteration);
	if (world_daemon_start(w) < 0) {
		world_fail("kill %d: perchd does not start again", iteration);
		return false;
	}
	for (int i = 0; i < n; i++) {
		struct session_row row;

		if (world_session(w, ids[i], false, 0, &row) < 0 ||
		    strcmp(row.status, "interrupted") != 0)
			world_fail("kill %d: session %" PRId64 " is '%s' after the restart, expected"
				   " interrupted", iteration, ids[i], row.status);
	}
	return battery_daemon_serves(w, "after a restart");
}

void phase_daemon_kills(struct world *w, const struct params *p)
{
	/* Every thread busy (a stop per thread per tick), and mostly idle. */
	const char *const busy[] = { "--threads", "16", NULL };
	const char *const idle[] = { "--threads", "16", "--busy", "2", NULL };
	struct child t[2];
	pid_t pids[2];
	int late = 0, done = 0;

	if (world_phase(w, "daemon-kills", NULL) < 0 || world_daemon_start(w) < 0) {
		world_fail("cannot start perchd");
		return;
	}
	if (!spawn(&t[0], "threads", busy))
		return;
	if (!spawn(&t[1], "threads", idle)) {
		child_kill(&t[0]);
		return;
	}
	pids[0] = t[0].pid;
	pids[1] = t[1].pid;
	for (int i = 0; i < p->daemon_kills && !battery_stop; i++) {
		if (!kill_daemon_once(w, pids, 2, i, &late))
			break;
		done++;
		if ((i + 1) % (p->daemon_kills / 10 ? p->daemon_kills / 10 : 1) == 0)
			printf("  %d/%d daemon kills\n", i + 1, p->daemon_kills);
		fflush(stdout);
	}
	printf("  perchd killed %d times while sampling two 17-thread targets; %d times a thread"
	       " needed more than an instant to be released\n", done, late);
	quit(&t[0], "threads (16 busy)");
	quit(&t[1], "threads (2 of 16 busy)");
	printf("  idle_wakeups of the mostly idle target: %ld\n",
	       child_report_long(&t[1], "idle_wakeups"));
	if (world_daemon_stop(w) < 0)
		world_fail("perchd did not stop cleanly");
}
