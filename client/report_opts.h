/*
 * report_opts: what the commands that read a recorded session share — the
 * options that choose which samples count (--thread, --cpu, --from, --to)
 * and loading the session under them.
 */
#ifndef PERCH_REPORT_OPTS_H
#define PERCH_REPORT_OPTS_H

#include <getopt.h>
#include <sqlite3.h>

#include "profile.h"

/* getopt_long codes of the common options; a command's own start at NEXT. */
enum {
	REPORT_OPT_THREAD = 256,
	REPORT_OPT_CPU,
	REPORT_OPT_FROM,
	REPORT_OPT_TO,
	REPORT_OPT_NEXT,
};

/* The common options' entries, for a command's struct option array. */
#define REPORT_OPTS_LONGOPTS \
	{ "thread", required_argument, NULL, REPORT_OPT_THREAD }, \
	{ "cpu", no_argument, NULL, REPORT_OPT_CPU }, \
	{ "from", required_argument, NULL, REPORT_OPT_FROM }, \
	{ "to", required_argument, NULL, REPORT_OPT_TO }

/* No filter: every thread, wall-clock time, the whole session. */
void report_opts_init(struct profile_filter *f);

/*
 * Takes option opt (a getopt_long code) with its value.  Returns 0 when it
 * was a common option, -1 when it is not one, 2 (the exit status of a usage
 * error) after printing why the value is wrong.
 */
int report_opts_parse(struct profile_filter *f, int opt, const char *value);

/* After the options: 0, or 2 after printing why they contradict. */
int report_opts_check(const struct profile_filter *f);

/*
 * Opens the database read-only and loads session ("last" or a number)
 * under f.  Returns 0, or 1 (the exit status) after printing the error.
 * The caller closes *db and frees *p, also after a failure (both may be
 * NULL then).
 */
int report_opts_load(const char *session, const struct profile_filter *f,
		     sqlite3 **db, struct profile **p);

#endif
