/*
 * The battery's world (tests/battery.c): a temporary directory, one perchd
 * at a time on a socket and database in it, perch clients run with
 * PERCH_SOCKET and PERCH_DB pointing there, the daemon's protocol spoken
 * directly when a client would be too slow, the database read read-only,
 * and what /proc says of the processes the battery started.
 *
 * Every wait is bounded: a hung daemon or client is reported, never waited
 * for.  Every process started here gets PR_SET_PDEATHSIG, so a battery
 * killed by a timeout leaves nothing running.
 */
#ifndef PERCH_TEST_WORLD_H
#define PERCH_TEST_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>
#include <sqlite3.h>

#define WORLD_PERCH PERCH_BIN_DIR "/client/perch"
#define WORLD_PERCHD PERCH_BIN_DIR "/daemon/perchd"

struct world {
	char root[64];		/* the battery's directory */
	char dir[128];		/* the current phase's directory, in root */
	char sock[160];
	char db[192];
	char log[192];		/* the daemon's stderr, appended to by every start */
	pid_t daemon;		/* our perchd, 0 when none runs */
	int nfiles;		/* numbers the clients' output files */
};

/* A command started in the background: perch, or the daemon. */
struct cmd {
	pid_t pid;
	char out_path[192], err_path[192];
	unsigned long long started_ns;
	int status;		/* wait status, once done */
	bool done;
	double secs;		/* from start to exit */
	char *out, *err;	/* what it printed, once done (owned) */
};

/* What the database says of a session. */
struct session_row {
	char status[32];
	char error[256];
	int64_t samples, thread_samples, late_samples;
};

/* ---- the report ---------------------------------------------------------- */

/* Names the phase that later failures belong to. */
void world_set_phase(const char *name);

/* Prints "FAIL phase: ..." and counts it. */
void world_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Failures so far. */
int world_failures(void);

/* ---- the world ---------------------------------------------------------- */

/* Makes root (mkdtemp); 0 or -1. */
int world_init(struct world *w);

/*
 * Starts a phase: its directory root/name, the socket in it, the database
 * in db_dir (NULL: the phase's directory).
 */
int world_phase(struct world *w, const char *name, const char *db_dir);

/* Removes root and everything in it. */
void world_remove(struct world *w);

/* ---- the daemon ---------------------------------------------------------- */

/* Starts perchd --foreground and waits (10 s at most) until it answers. */
int world_daemon_start(struct world *w);

/* SIGTERM, then 10 s for a clean exit; -1 if it hung or exited non-zero. */
int world_daemon_stop(struct world *w);

/* SIGKILL, reaped: when this returns every thread of it is gone. */
void world_daemon_kill(struct world *w);

/* Whether our daemon still runs (reaps it when it does not). */
bool world_daemon_alive(struct world *w);

/* No sanitizer report in the daemon's stderr; else a failure with it. */
bool world_daemon_log_clean(const struct world *w);

/* ---- clients ------------------------------------------------------------- */

/* Starts perch with the NULL-terminated arguments; output to files. */
void world_cmd_start(struct world *w, struct cmd *c, const char *const *args);

/* Waits at most timeout_ms; false if still running (then it is killed). */
bool world_cmd_wait(struct cmd *c, long timeout_ms);

/* Whether c has finished (reads its output then); never blocks. */
bool world_cmd_poll(struct cmd *c);

void world_cmd_free(struct cmd *c);

/* The exit code, 128 + signal, or -1 when not finished. */
int world_cmd_exit(const struct cmd *c);

/*
 * Runs perch to completion (timeout_ms at most); returns its exit code or
 * -1 when it hung.  *c holds the output (world_cmd_free).
 */
int world_perch(struct world *w, struct cmd *c, long timeout_ms, ...);

/* ---- the protocol -------------------------------------------------------- */

/* One request line on a fresh connection; the parsed reply or NULL. */
json_object *world_call(const struct world *w, const char *request);

/*
 * Asks for a session of pid (duration_s 0: until stopped); its id, or -1
 * with the daemon's message in why.
 */
int64_t world_start(const struct world *w, pid_t pid, double duration_s, double rate_hz,
		    bool children, char *why, size_t size);

/*
 * The session of pid in the daemon's status ("sessions"), waiting until it
 * has min_samples ticks (timeout_ms at most); its id or -1.
 */
int64_t world_wait_samples(const struct world *w, pid_t pid, int64_t min_samples,
			   long timeout_ms);

/* ---- the database --------------------------------------------------------- */

sqlite3 *world_db(const struct world *w);

/* The first integer of sql with ?1 bound to id; -1 on any error. */
int64_t world_q_int(sqlite3 *db, const char *sql, int64_t id);

/*
 * The row of session id, waiting (timeout_ms at most) until its status is
 * no longer `recording` when wait_end.  0, or -1 when there is no row.
 */
int world_session(const struct world *w, int64_t id, bool wait_end, long timeout_ms,
		  struct session_row *r);

/* Self samples of functions named func in perch flat's JSON, or -1. */
int64_t world_flat_samples(const char *json, const char *func);

/* ---- processes ------------------------------------------------------------ */

/*
 * Whether every thread of pid runs free: state neither T nor t, TracerPid
 * 0.  Otherwise why says which thread and how.
 */
bool world_untraced(pid_t pid, char *why, size_t size);

/*
 * SIGKILLs pid and waits at most timeout_ms until it can be reaped (it is
 * left for the caller to reap); false if it is still there.
 */
bool world_kill_wait(pid_t pid, long timeout_ms);

/* Prints every thread of pid: state, TracerPid, wchan, kernel stack. */
void world_describe(pid_t pid, const char *what);

/* VmRSS of pid in KiB, or -1. */
long world_rss_kib(pid_t pid);

/* utime + stime of pid, in clock ticks. */
unsigned long long world_cpu_ticks(pid_t pid);

/* Waits until pid uses CPU (timeout_ms at most); whether it did. */
bool world_runs(pid_t pid, long timeout_ms);

void world_sleep_ms(long ms);

/* A pseudo-random number below n (xorshift, seeded by world_seed). */
uint64_t world_random(uint64_t n);
void world_seed(uint64_t seed);

#endif
