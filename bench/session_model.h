/*
 * The random draws behind the synthetic session of bench_storage and
 * bench_queries: one fixed-seed generator (the same session every run), Zipf
 * popularity, and each thread's own order of favourite stacks.
 * Header-only: each bench stays one source file.
 */
#ifndef PERCH_BENCH_SESSION_MODEL_H
#define PERCH_BENCH_SESSION_MODEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "xalloc.h"

/* xorshift64*, from a fixed seed. */
static inline uint64_t rng(void)
{
	static uint64_t state = 0x2545f4914f6cdd1dull;

	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ull;
}

static inline uint64_t below(uint64_t n)
{
	return rng() % n;
}

static inline double uniform(void)
{
	return (double)(rng() >> 11) / 9007199254740992.0;
}

/* Picks 0..n-1 with Zipf weights (s = 1.1) from a cumulative table. */
struct zipf {
	double *cum;	/* owned: free(cum) */
	size_t n;
};

static inline struct zipf zipf_make(size_t n)
{
	struct zipf z = { xcalloc(n, sizeof(double)), n };
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		z.cum[i] = sum += 1 / pow((double)i + 1, 1.1);
	for (size_t i = 0; i < n; i++)
		z.cum[i] /= sum;
	return z;
}

static inline size_t zipf_pick(const struct zipf *z)
{
	double u = uniform();
	size_t lo = 0, hi = z->n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (z->cum[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* order[0..n) = 0..n-1 shuffled: a thread's popularity order of stacks. */
static inline void shuffled_order(uint32_t *order, size_t n)
{
	for (size_t s = 0; s < n; s++)
		order[s] = (uint32_t)s;
	for (size_t s = n - 1; s > 0; s--) {
		size_t j = below(s + 1);
		uint32_t x = order[s];

		order[s] = order[j];
		order[j] = x;
	}
}

#endif
