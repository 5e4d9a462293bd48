/*
 * export: a loaded session written in a format other tools read —
 * perch's own JSON, Brendan Gregg's folded stacks, speedscope, pprof and a
 * self-contained HTML report.  Each writer takes the samples the profile
 * holds under its filters (struct profile_filter), writes to out, and
 * returns 0 or a negative errno with a one-line *cause (caller frees).  A
 * writer that fails may have written part of its output: the caller
 * discards it (cmd_export writes to a temporary file).
 */
#ifndef PERCH_EXPORT_H
#define PERCH_EXPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "export_html.h"	/* export_html(): a self-contained HTML report */
#include "profile.h"

/*
 * perch's JSON:
 * {"session": {the header of `perch show --json`},
 *  "frames": [{id, func, file, line, module, address, inlined}],
 *  "stacks": [{id, parent, frame}]   (parent 0: the root; a parent comes first)
 *  "samples": [{stack, samples}]}    (samples whose leaf is that stack)
 * listing only the frames and stacks the samples use.
 */
int export_json(FILE *out, const struct profile *p, bool cpu_only, char **cause);

/*
 * Folded stacks, one line per distinct stack of function names, outermost
 * first: "main;work;leaf 42".  Inlined functions are frames of their own.
 * ';' in a name becomes ':' and control characters '?', which the format
 * cannot carry.
 */
int export_folded(FILE *out, const struct profile *p, char **cause);

/* One speedscope profile: a thread (or the whole session) and its samples. */
struct export_thread {
	const char *name;		/* shown by speedscope */
	const struct profile *p;	/* the same session, filtered to it */
};

/*
 * speedscope's file format: shared frames (one per function, file and
 * module) and one "sampled" profile per entry of threads, in seconds from
 * the session start; f gives the time window.
 */
int export_speedscope(FILE *out, const struct profile *p, const struct profile_filter *f,
		      const struct export_thread *threads, size_t nthreads, char **cause);

/* A module's build id, which the profile does not hold. */
struct export_module {
	const char *path;
	const char *build_id;		/* hex, "" when unknown */
};

struct export_pprof_opts {
	const struct profile_filter *filter;	/* sample type and time window */
	const struct export_module *modules;
	size_t nmodules;
};

/* pprof's profile.proto, gzipped (export_pprof.c). */
int export_pprof(FILE *out, const struct profile *p, const struct export_pprof_opts *o,
		 char **cause);

#endif
