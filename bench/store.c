/*
 * bench_store: what storing samples costs.
 *
 *   intern   the sampler's cost of interning one thread sample's stack
 *            (depth 30), warm, for a server-like stream: 16 threads, each
 *            a fixed 20-frame base and a 10-frame tail drawn from 40 per
 *            thread with Zipf weights; and for uniformly random stacks;
 *   writer   the writer's throughput for that stream at 999 Hz (samples
 *            a second, as fast as it can take them), the time a sampler
 *            spends in store_append, and bytes per sample in the file.
 *
 * Usage: bench_store [DB]   (default /tmp/bench-store.db, removed after)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "intern.h"
#include "store.h"
#include "xalloc.h"

#define THREADS	16
#define DEPTH	30
#define BASE	20
#define TAILS	40
#define POOL	4000
#define RATE_HZ	999
#define SECONDS	60	/* of simulated sampling for the writer */
#define BATCH_TICKS	250	/* what perchd hands over each 250 ms */

static struct perch_frame pool[POOL];
static struct perch_frame stacks[THREADS][TAILS][DEPTH];
static double zipf_cdf[TAILS];

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void make_pool(void)
{
	char b[256], *mods[8];

	for (int m = 0; m < 8; m++) {
		snprintf(b, sizeof b, "/usr/lib/x86_64-linux-gnu/libmodule%d.so.6", m);
		mods[m] = xstrdup(b);
	}
	for (int i = 0; i < POOL; i++) {
		snprintf(b, sizeof b, "ns::Service<std::basic_string<char> >::"
			 "handler_%d(Request const&, Response&)", i);
		pool[i].func = xstrdup(b);
		snprintf(b, sizeof b, "/build/app-1.2.3/src/module%d/file%d.cc",
			 i % 17, i % 300);
		pool[i].file = xstrdup(b);
		pool[i].module = mods[i % 8];
		pool[i].build_id = "3f2a9c0e4b1d7a8e6f5c4b3a2918d7e6f5a4b3c2";
		pool[i].module_offset = pool[i].addr = 0x1000 + (uint64_t)i * 16;
		pool[i].line = i % 900 + 1;
		pool[i].inlined = i % 7 == 0;
	}
}

/* Leaf first: the tail (varies) at [0, DEPTH - BASE), the base after. */
static void make_stacks(void)
{
	double sum = 0;

	for (int k = 0; k < TAILS; k++)
		sum += zipf_cdf[k] = 1.0 / (k + 1);
	for (int k = 0; k < TAILS; k++)
		zipf_cdf[k] = (k ? zipf_cdf[k - 1] : 0) + zipf_cdf[k] / sum;
	for (int t = 0; t < THREADS; t++)
		for (int k = 0; k < TAILS; k++)
			for (int d = 0; d < DEPTH; d++)
				stacks[t][k][d] = d >= DEPTH - BASE ?
					pool[(t % 4) * BASE + d] :
					pool[100 + rand() % (POOL - 100)];
}

static int zipf_pick(void)
{
	double u = (double)rand() / RAND_MAX;
	int k = 0;

	while (k < TAILS - 1 && zipf_cdf[k] < u)
		k++;
	return k;
}

static void bench_intern(void)
{
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };
	enum { N = 2000000 };
	static uint8_t pick[N];
	uint64_t t0, cold, warm, rnd;
	unsigned sink = 0;

	for (int i = 0; i < N; i++)
		pick[i] = (uint8_t)zipf_pick();
	t0 = mono_ns();
	for (int t = 0; t < THREADS; t++)
		for (int k = 0; k < TAILS; k++)
			sink += interner_stack(in, stacks[t][k], DEPTH, &defs);
	cold = mono_ns() - t0;
	intern_defs_clear(&defs);
	t0 = mono_ns();
	for (int i = 0; i < N; i++)
		sink += interner_stack(in, stacks[i % THREADS][pick[i]], DEPTH, &defs);
	warm = mono_ns() - t0;
	t0 = mono_ns();
	for (int i = 0; i < N; i++)
		sink += interner_stack(in, stacks[rand() % THREADS][rand() % TAILS],
				       DEPTH, &defs);
	rnd = mono_ns() - t0;
	printf("| intern, first time (%d stacks) | %.2f µs/stack |\n",
	       THREADS * TAILS, cold / 1e3 / (THREADS * TAILS));
	printf("| intern, warm, server-like stream | %.0f ns/thread sample |\n",
	       (double)warm / N);
	printf("| intern, warm, uniformly random of %d stacks | %.0f ns/thread sample |\n",
	       THREADS * TAILS, (double)rnd / N);
	if (sink == 42)
		printf("\n");
	intern_defs_free(&defs);
	interner_free(in);
}

static void flush(struct store *st)
{
	struct store_schedule *v;
	size_t n;
	char *cause;

	if (store_schedule_list(st, &v, &n, &cause) == 0)
		store_schedules_free(v, n);
}

static struct store_batch *make_batch(int64_t id, struct interner *in,
				      uint64_t *tick, bool first)
{
	struct store_batch *b = store_batch_new(id);

	for (uint32_t t = 0; first && t < THREADS; t++) {
		struct store_thread th = { .id = t, .pid = 100, .tid = 100 + (pid_t)t };

		snprintf(th.name, sizeof th.name, "worker-%u", t);
		store_batch_add_thread(b, &th);
	}
	for (int k = 0; k < BATCH_TICKS; k++, (*tick)++)
		for (uint32_t t = 0; t < THREADS; t++) {
			struct store_sample s = {
				.thread_id = t,
				.stack_id = interner_stack(in, stacks[t][zipf_pick()],
							   DEPTH, &b->defs),
				.time_ns = 1700000000000000000ull + *tick * 1001001,
				.state = rand() % 4 ? 'R' : 'S',
			};

			store_batch_add_sample(b, &s);
		}
	b->ticks = *tick;
	b->thread_samples = *tick * THREADS;
	return b;
}

/*
 * paced: a transaction per simulated second, as perchd's writer does at
 * STORE_FLUSH_MS (a request makes the writer write what is queued).
 */
static void bench_writer(const char *path, bool paced)
{
	struct store_session_info info = {
		.pid = 100, .requested_by = -1, .schedule_id = -1,
		.started_ns = 1700000000000000000ull, .rate_hz = RATE_HZ, .mode = "wall",
	};
	struct interner *in = interner_create();
	uint64_t tick = 0, t0, append_ns = 0, worst = 0, total;
	int batches = SECONDS * RATE_HZ / BATCH_TICKS;
	struct store *st;
	char *cause = NULL;
	int64_t id;
	struct store_batch **v;
	struct stat sb;

	if (store_open(path, &st, &cause) < 0 ||
	    store_session_begin(st, &info, &id, &cause) < 0) {
		fprintf(stderr, "bench_store: %s\n", cause);
		exit(1);
	}
	/* Built first: the sampler's interning is measured above. */
	v = xcalloc((size_t)batches, sizeof *v);
	for (int i = 0; i < batches; i++)
		v[i] = make_batch(id, in, &tick, i == 0);
	t0 = mono_ns();
	for (int i = 0; i < batches; i++) {
		uint64_t a = mono_ns(), d;

		store_append(st, v[i]);
		d = mono_ns() - a;
		append_ns += d;
		worst = d > worst ? d : worst;
		if (paced && i % (RATE_HZ / BATCH_TICKS) == RATE_HZ / BATCH_TICKS - 1)
			flush(st);
	}
	store_session_end(st, id, "complete", NULL, 1, -1);
	total = mono_ns() - t0;
	store_close(st);
	stat(path, &sb);
	printf("| writer, %d threads × %d Hz × depth %d, %d s of samples, %s |"
	       " %.0f samples/s (%.2f s for %llu samples) |\n",
	       THREADS, RATE_HZ, DEPTH, SECONDS,
	       paced ? "a transaction a second" : "all queued at once",
	       tick * THREADS / (total / 1e9),
	       total / 1e9, (unsigned long long)(tick * THREADS));
	printf("| store_append | %.1f µs mean, %.1f µs worst |\n",
	       append_ns / 1e3 / batches, worst / 1e3);
	printf("| file size | %.2f bytes/sample (%lld bytes) |\n",
	       (double)sb.st_size / (double)(tick * THREADS), (long long)sb.st_size);
	free(v);
	interner_free(in);
}

static void bench_file(const char *path, bool paced)
{
	char wal[80];

	unlink(path);
	bench_writer(path, paced);
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(path);
	unlink(wal);
}

int main(int argc, char **argv)
{
	char path[64];

	srand(1);
	make_pool();
	make_stacks();
	printf("| what | cost |\n|---|---|\n");
	bench_intern();
	snprintf(path, sizeof path, "%s", argc > 1 ? argv[1] : "/tmp/bench-store.db");
	bench_file(path, false);
	bench_file(path, true);
	return 0;
}
