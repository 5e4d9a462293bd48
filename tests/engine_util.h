/*
 * What the engine tests (test_engine.c, test_engine_maps.c) share: opening
 * a target, finding frames in a sampled stack, and the source lines of a
 * target's function.  Header-only: each test stays one executable built from
 * its own file and spawn.c.  Include it after <cmocka.h>.
 */
#ifndef PERCH_TEST_ENGINE_UTIL_H
#define PERCH_TEST_ENGINE_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "target.h"

/* The target for pid, opened or the test failed. */
static inline struct target *open_target_opts(pid_t pid, const struct target_opts *opts)
{
	struct target *t = NULL;
	char *cause = NULL;

	if (target_open(pid, opts, &t, &cause) < 0)
		fail_msg("target_open(%d): %s", (int)pid, cause);
	return t;
}

static inline struct target *open_target(pid_t pid)
{
	return open_target_opts(pid, NULL);
}

/* Index of the first frame of func (th may be NULL), or -1. */
static inline int find_func(const struct perch_thread *th, const char *func)
{
	for (size_t i = 0; th != NULL && i < th->nframes; i++)
		if (strcmp(th->frames[i].func, func) == 0)
			return (int)i;
	return -1;
}

static inline bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);

	return s != NULL && a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * Lines [first, last] of function name's definition in a target's source:
 * from the line naming it with "(" and no ";" to the next line starting "}".
 */
static inline void function_lines(const char *source, const char *name, int *first,
				  int *last)
{
	char path[512], line[512], pat[128];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/tests/targets/%s", PERCH_SOURCE_DIR, source);
	snprintf(pat, sizeof pat, "%s(", name);
	*first = *last = 0;
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL) {
		n++;
		if (*first == 0 && strstr(line, pat) && !strchr(line, ';') &&
		    line[0] != ' ' && line[0] != '\t')
			*first = n;
		else if (*first != 0 && line[0] == '}') {
			*last = n;
			break;
		}
	}
	fclose(f);
	assert_true(*first > 0 && *last > *first);
}

#endif
