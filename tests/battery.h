/*
 * The fault and load battery (issue 6 §3): phases that each start their own
 * perchd and targets, inflict one kind of fault or load, and check what a
 * user would see.  battery.c holds main, the load and the readers;
 * battery_faults.c the faults.
 */
#ifndef PERCH_TEST_BATTERY_H
#define PERCH_TEST_BATTERY_H

#include <stdbool.h>

#include "world.h"

/* How much of each phase to run: CI-short, --full, or sanitized. */
struct params {
	int target_kills;	/* targets SIGKILLed while sampled */
	double churn_s;		/* 1000 threads/s sampled at 999 Hz */
	int exec_runs;		/* targets that exec mid-session */
	int fork_runs;		/* forker, and a shell forking workers */
	int disk_runs;		/* database fills up mid-session */
	int daemon_kills;	/* perchd SIGKILLed while sampling */
	int load_targets;	/* server-like targets of 16 threads at 99 Hz */
	double load_s;
	long load_tick_us;	/* how often each event loop thread wakes */
	int readers;		/* concurrent perch clients querying */
	double readers_s;
};

/* Built with PERCH_SANITIZE: some bounds measure ASan, not perch. */
extern const bool battery_sanitized;

/* Set by SIGINT/SIGTERM: phases stop at their next step. */
extern volatile int battery_stop;

void phase_target_kills(struct world *w, const struct params *p);
void phase_churn(struct world *w, const struct params *p);
void phase_exec(struct world *w, const struct params *p);
void phase_fork(struct world *w, const struct params *p);
void phase_disk_full(struct world *w, const struct params *p);
void phase_daemon_kills(struct world *w, const struct params *p);

/* Helpers the phases share (battery.c). */

/* The pid as a string, in one of a few rotating buffers. */
const char *battery_num(long long n);

/* `perch status --json` answers, and the daemon still runs; else a failure. */
bool battery_daemon_serves(struct world *w, const char *when);

/* Every thread of pid runs free within 2 s; else a failure naming when. */
bool battery_untraced(pid_t pid, const char *when);

#endif
