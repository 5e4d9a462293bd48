/*
 * query: what the report commands compute from a loaded profile — the call
 * tree with library frames collapsed, self time by function, callers and
 * callees of a function, and the hottest call paths.  Pure computation over
 * struct profile; rendering is elsewhere.
 */
#ifndef PERCH_QUERY_H
#define PERCH_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* One row of a flat, callers or callees view. */
struct qrow {
	const struct pframe *frame;	/* NULL: the row named by special */
	const char *special;		/* "[self]" (callees) or "[root]" (callers) */
	uint64_t samples;
};

/* A node of the call tree as shown. */
struct qtree {
	const struct pframe *frame;	/* NULL for a group of hidden frames */
	uint64_t total, self;
	unsigned int hidden;		/* functions in a hidden group */
	const struct pframe **fns;	/* those functions, one frame each */
	char *modules;			/* a group's modules, comma-separated */
	struct qtree **kids;		/* by total, largest first */
	size_t nkids;
};

/*
 * The call tree of the whole profile (a root with frame NULL, hidden 0).
 * Unless show_all, each run of library frames (profile_mark_libraries)
 * under a shown frame becomes one group node.
 */
struct qtree *query_tree(const struct profile *p, bool show_all);
void query_tree_free(struct qtree *t);

/*
 * Self time by function (or by function and line), largest first.  With
 * paths, only functions whose file or module contains one of the
 * comma-separated substrings.  Returns the number of rows in *rows.
 */
size_t query_flat(const struct profile *p, const char *paths, bool by_line,
		  struct qrow **rows);

/*
 * Callers (or callees) of the function named func: how much of func's time
 * each contributes, largest first.  *func_total gets func's inclusive
 * samples.  Returns the number of rows, or -ENOENT when no frame is named
 * func (*suggest then lists near names, caller frees).
 */
long query_callers(const struct profile *p, const char *func, bool callees,
		   struct qrow **rows, uint64_t *func_total, char **suggest);

/* One hot path: shown frames from outermost to innermost. */
struct qpath {
	uint64_t samples;
	const struct pframe **frames;
	size_t n;
};

/*
 * The call paths that cost most, keeping only frames that are not library
 * frames, and of those the innermost depth (0: all).  Largest first.
 */
size_t query_hot_paths(const struct profile *p, size_t depth, struct qpath **out);
void query_paths_free(struct qpath *v, size_t n);

#endif
