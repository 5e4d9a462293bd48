/*
 * render: the report commands' output — text for a person (colour only on a
 * terminal, never with NO_COLOR) and JSON for a program.
 */
#ifndef PERCH_RENDER_H
#define PERCH_RENDER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "query.h"

struct render_opts {
	bool color;
	bool cpu_only;		/* say "CPU time" rather than "wall-clock time" */
	double min_percent;	/* tree: hide nodes below this share */
	size_t limit;		/* rows: at most this many (0: all) */
};

/* Whether to colour f: a terminal, and NO_COLOR not set. */
bool render_want_color(FILE *f);

/* The session header (program, pid, when, samples, duration, time kind). */
void render_header(FILE *out, const struct profile *p, const struct render_opts *o);

void render_tree(FILE *out, const struct profile *p, const struct qtree *t,
		 const struct render_opts *o);
void render_rows(FILE *out, const struct profile *p, const struct qrow *rows,
		 size_t n, uint64_t total, const char *title, const struct render_opts *o);
void render_paths(FILE *out, const struct profile *p, const struct qpath *paths,
		  size_t n, const struct render_opts *o);

/* JSON shapes (documented in `perch help`); the caller puts the result. */
json_object *render_header_json(const struct profile *p, bool cpu_only);
json_object *render_tree_json(const struct profile *p, const struct qtree *t);
json_object *render_rows_json(const struct profile *p, const struct qrow *rows,
			      size_t n, uint64_t total, size_t limit);
json_object *render_paths_json(const struct profile *p, const struct qpath *paths,
			       size_t n, size_t limit);

/* "1.23s", "456ms", "78.9µs" for a number of samples. */
void render_time(char *buf, size_t size, const struct profile *p, uint64_t samples);

#endif
