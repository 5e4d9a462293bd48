/*
 * Starting the test targets (tests/targets/).  A target's stdin is a pipe
 * the test holds: writing "q" or closing it ends the target, so a failed or
 * killed test never leaves a spinning process behind.  Its stdout is read for
 * the "ready" line and, at the end, its key=value report.
 */
#ifndef PERCH_TEST_SPAWN_H
#define PERCH_TEST_SPAWN_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct child {
	pid_t pid;
	int in_fd;		/* the target's stdin */
	int out_fd;		/* the target's stdout */
	char buf[4096];		/* read from out_fd, not yet consumed */
	size_t blen;
	char report[4096];	/* what it printed after "ready" */
	int status;		/* wait status once reaped */
	bool reaped;
};

/*
 * Starts PERCH_TARGETS_DIR/name with the NULL-terminated args and waits (at
 * most 10 s) for its "ready" line.  Returns 0 or -1.
 */
int spawn_target(struct child *c, const char *name, const char *const *args);

/* Same, for a program given by path. */
int spawn_path(struct child *c, const char *path, const char *const *args);

/* Asks the target to finish, collects its report and reaps it. */
int child_quit(struct child *c);

/* Waits for a target that ends by itself; collects its report. */
int child_wait(struct child *c);

/* SIGKILLs and reaps the target (idempotent). */
void child_kill(struct child *c);

/*
 * Kills every target started and not yet reaped: the teardown of a test
 * that failed half-way (cmocka leaves the test function at the failure).
 */
void spawn_kill_all(void);

/* A number from the report ("key=N"), or -1 when absent. */
long child_report_long(const struct child *c, const char *key);

/* The scheduler state letter of a thread, from /proc (0 when gone). */
char proc_state(pid_t pid, pid_t tid);

/* User CPU time of a process in clock ticks (/proc/PID/stat). */
unsigned long long proc_utime(pid_t pid);

/* TracerPid of a process, or -1. */
int proc_tracer(pid_t pid);

/* Lists the thread ids of pid into tids[max]; returns how many. */
int proc_threads(pid_t pid, pid_t *tids, int max);

/* Monotonic time in nanoseconds. */
unsigned long long mono_ns(void);

#endif
