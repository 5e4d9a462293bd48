/*
 * A growing series of measurements and its percentiles, shared by
 * bench_pause and bench_seize_mode.  Header-only: each bench stays one
 * source file.
 */
#ifndef PERCH_BENCH_SERIES_H
#define PERCH_BENCH_SERIES_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct series {
	double *v;	/* owned: free(v) */
	size_t n, cap;
};

static inline void series_add(struct series *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (s->v == NULL)
			abort();
	}
	s->v[s->n++] = x;
}

static inline int series_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of v[0..n), 0 when empty; v is left untouched. */
static inline double percentile(const double *v, size_t n, double p)
{
	double *tmp, x;

	if (n == 0)
		return 0;
	tmp = malloc(n * sizeof *tmp);
	if (tmp == NULL)
		abort();
	memcpy(tmp, v, n * sizeof *tmp);
	qsort(tmp, n, sizeof *tmp, series_cmp);
	x = tmp[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
	free(tmp);
	return x;
}

#endif
