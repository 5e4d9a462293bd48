/*
 * bench_state_truth DB SESSION TID SWITCHES [REAL0 REAL1]: the state perch
 * stored for thread TID at each tick of SESSION, against the thread's own
 * context switches at the same instant (bench/state_truth.sh).
 *
 * SWITCHES is `perf script --ns --show-switch-events -F time,event` of a
 * `perf record -e dummy --switch-events -k CLOCK_MONOTONIC -t TID` made
 * over the session: one line a switch, "SEC.NS: PERF_RECORD_SWITCH IN" or
 * "OUT" (with "preempt" when the thread was still runnable).  perch stores
 * each sample at its due time in CLOCK_REALTIME; the two clocks' offset is
 * read here, once (a few seconds of NTP slewing move it by microseconds).
 *
 * Prints one line of "key=value" fields:
 *   lost           PERF_RECORD_LOST lines in SWITCHES (perf's ring overflowed:
 *                  the truth has gaps, and the row should not be judged)
 *   ticks          samples of TID compared (a tick with weight > 1 is
 *                  stored as several samples at one time, and counts so)
 *   agree          ticks whose state matches the switches: R on a CPU, W
 *                  switched out preempted, anything else switched out asleep
 *   perch_r, true_r  share of the ticks with R, by perch and by the switches
 *   perch_w, true_w  the same for W (preempted, waiting for a CPU)
 *   span_on        the thread's share of time on a CPU by the switches over
 *                  the span of the samples
 *   window_on      the same over [REAL0, REAL1] (realtime ns), when given
 *
 * bench_state_truth --window SWITCHES REAL0 REAL1 prints lost and
 * window_on only, for a window in which perch recorded nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "samplecodec.h"

enum { ON_CPU, PREEMPTED, ASLEEP };

struct sw {
	uint64_t t;		/* CLOCK_MONOTONIC */
	int after;		/* the thread's state after this switch */
};

struct tick {
	uint64_t t;		/* CLOCK_MONOTONIC */
	char state;
};

struct vec {
	void *v;
	size_t n, cap, size;
};

static void *push(struct vec *a)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 1024;
		a->v = realloc(a->v, a->cap * a->size);
		if (a->v == NULL) {
			perror("bench_state_truth");
			exit(1);
		}
	}
	return (char *)a->v + a->n++ * a->size;
}

static int64_t real_minus_mono(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000 + (r.tv_nsec - m.tv_nsec);
}

struct decode_ctx {
	struct vec *ticks;
	int64_t offset;
};

static int on_sample(void *arg, const struct codec_sample *s)
{
	struct decode_ctx *c = arg;
	struct tick *k = push(c->ticks);

	k->t = (uint64_t)((int64_t)s->time_ns - c->offset);
	k->state = s->state;
	return 0;
}

static int cmp_tick(const void *a, const void *b)
{
	const struct tick *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

static int read_ticks(const char *path, long session, long tid, struct vec *ticks)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct decode_ctx c = { ticks, real_minus_mono() };
	int rc;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_state_truth: %s: %s\n", path, sqlite3_errmsg(db));
		return -1;
	}
	rc = sqlite3_prepare_v2(db,
				"SELECT c.first_ns, c.data FROM sample_chunks c "
				"JOIN threads t ON t.session_id = c.session_id AND t.id = c.thread_id "
				"WHERE c.session_id = ?1 AND t.tid = ?2 ORDER BY c.first_ns",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "bench_state_truth: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_bind_int64(st, 1, session);
	sqlite3_bind_int64(st, 2, tid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (codec_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
				 (uint64_t)sqlite3_column_int64(st, 0), on_sample, &c) < 0) {
			fprintf(stderr, "bench_state_truth: a malformed chunk\n");
			rc = SQLITE_CORRUPT;
			break;
		}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc != SQLITE_DONE)
		return -1;
	qsort(ticks->v, ticks->n, sizeof(struct tick), cmp_tick);
	return 0;
}

static int read_switches(const char *path, struct vec *sws, size_t *lost)
{
	FILE *f = fopen(path, "r");
	char line[256];

	if (f == NULL) {
		fprintf(stderr, "bench_state_truth: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long long sec, ns;
		char dir[8] = "";
		struct sw *s;

		/* Records perf lost leave gaps in the truth: counted, reported. */
		if (strstr(line, "PERF_RECORD_LOST") != NULL)
			(*lost)++;
		if (sscanf(line, " %llu.%llu: PERF_RECORD_SWITCH %7s", &sec, &ns, dir) != 3)
			continue;
		s = push(sws);
		s->t = sec * 1000000000ull + ns;
		s->after = strcmp(dir, "IN") == 0	  ? ON_CPU
			   : strstr(line, "preempt") != NULL ? PREEMPTED
							     : ASLEEP;
	}
	fclose(f);
	return 0;
}

/* Index of the last switch at or before t, or -1. */
static long last_before(const struct sw *s, size_t n, uint64_t t)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s[mid].t <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

/* Share of [a, b) the thread spent on a CPU, by the switches. */
static double on_share(const struct sw *s, size_t n, uint64_t a, uint64_t b)
{
	long i = last_before(s, n, a);
	int state = i >= 0 ? s[i].after : ASLEEP;
	uint64_t from = a, on = 0;

	for (size_t k = (size_t)(i + 1); k < n && s[k].t < b; k++) {
		if (state == ON_CPU)
			on += s[k].t - from;
		from = s[k].t;
		state = s[k].after;
	}
	if (state == ON_CPU)
		on += b - from;
	return b > a ? (double)on / (double)(b - a) : 0;
}

/* on_share over a window given in CLOCK_REALTIME ns (decimal strings). */
static double window_share(const struct vec *sws, const char *real0, const char *real1)
{
	int64_t off = real_minus_mono();

	return on_share(sws->v, sws->n, (uint64_t)(strtoll(real0, NULL, 10) - off),
			(uint64_t)(strtoll(real1, NULL, 10) - off));
}

/* --window: no session, only the thread's share on a CPU over the window. */
static int window_only(const char *path, const char *real0, const char *real1)
{
	struct vec sws = { .size = sizeof(struct sw) };
	size_t lost = 0;

	if (read_switches(path, &sws, &lost) < 0)
		return 1;
	if (sws.n == 0) {
		fprintf(stderr, "bench_state_truth: no switches in %s\n", path);
		return 1;
	}
	printf("lost=%zu window_on=%.4f\n", lost, window_share(&sws, real0, real1));
	free(sws.v);
	return 0;
}

int main(int argc, char **argv)
{
	struct vec ticks = { .size = sizeof(struct tick) }, sws = { .size = sizeof(struct sw) };
	size_t agree = 0, pr = 0, tr = 0, pw = 0, tw = 0, n = 0, lost = 0;
	const struct tick *k;
	const struct sw *s;
	bool detail = getenv("STATE_TRUTH_DETAIL") != NULL;

	if (argc == 5 && strcmp(argv[1], "--window") == 0)
		return window_only(argv[2], argv[3], argv[4]);
	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: bench_state_truth DB SESSION TID SWITCHES [REAL0 REAL1]\n"
				"       bench_state_truth --window SWITCHES REAL0 REAL1\n");
		return 2;
	}
	if (read_ticks(argv[1], atol(argv[2]), atol(argv[3]), &ticks) < 0 ||
	    read_switches(argv[4], &sws, &lost) < 0)
		return 1;
	k = ticks.v;
	s = sws.v;
	if (ticks.n == 0 || sws.n == 0) {
		fprintf(stderr, "bench_state_truth: %zu ticks, %zu switches: nothing to compare\n",
			ticks.n, sws.n);
		return 1;
	}
	for (size_t i = 0; i < ticks.n; i++) {
		long j = last_before(s, sws.n, k[i].t);
		int truth;
		char want;
		bool ok;

		/* Ticks before the first switch seen cannot be judged. */
		if (j < 0)
			continue;
		truth = s[j].after;
		want = truth == ON_CPU ? 'R' : truth == PREEMPTED ? 'W' : 'S';
		n++;
		pr += k[i].state == 'R';
		pw += k[i].state == 'W';
		tr += truth == ON_CPU;
		tw += truth == PREEMPTED;
		/* Any state but R and W is "not on a CPU, not waiting for one". */
		ok = want == 'S' ? k[i].state != 'R' && k[i].state != 'W' : k[i].state == want;
		agree += ok;
		/* With STATE_TRUTH_DETAIL set, each tick that disagrees, on stderr. */
		if (!ok && detail)
			fprintf(stderr, "tick %" PRIu64 " perch %c switches %c, %" PRIu64
				" us after the last switch, %" PRId64 " us before the next\n",
				k[i].t, k[i].state, want, (k[i].t - s[j].t) / 1000,
				(size_t)j + 1 < sws.n ? (int64_t)(s[j + 1].t - k[i].t) / 1000 : -1);
	}
	if (n == 0) {
		fprintf(stderr, "bench_state_truth: no tick after the first switch\n");
		return 1;
	}
	printf("lost=%zu ticks=%zu agree=%.4f perch_r=%.4f true_r=%.4f perch_w=%.4f true_w=%.4f span_on=%.4f",
	       lost, n, (double)agree / n, (double)pr / n, (double)tr / n, (double)pw / n,
	       (double)tw / n, on_share(s, sws.n, k[0].t, k[ticks.n - 1].t));
	if (argc == 7)
		printf(" window_on=%.4f", window_share(&sws, argv[5], argv[6]));
	printf("\n");
	free(ticks.v);
	free(sws.v);
	return 0;
}
