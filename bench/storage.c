/*
 * bench_storage: how many bytes a sample costs on disk.
 *
 * Writes one realistic session straight into the real schema (db_open, the
 * sample codec): 16 threads sampled at 99 Hz with +-10 % jitter, ~500
 * distinct stacks 10 to 40 frames deep, stored as prefix-tree nodes over 300
 * frames in 12 modules; busy threads hop between hot stacks in state R,
 * idle ones sit on one stack in state S.  Samples go into sample_chunks
 * (per thread, CHUNK samples a row) and the counts table.  The file is
 * measured as written, then after VACUUM as a whole and per table (dbstat).
 *
 * usage: bench_storage [SAMPLES [CHUNK [PATH]]]
 *   SAMPLES thread samples in all (1000000), CHUNK samples a chunk (1000),
 *   PATH    where to write (a temporary file, removed afterwards).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "samplecodec.h"
#include "session_model.h"
#include "xalloc.h"

#define THREADS 16
#define MODULES 12
#define FRAMES 300
#define STACKS 500
#define MIN_DEPTH 10
#define MAX_DEPTH 40
#define PERIOD_NS 10101010	/* 99 Hz */
#define SESSION 1

/* The prefix tree of stacks, as the interner builds it: node 0 is the root. */
struct tree {
	uint32_t *parent, *frame, *first_child, *next_sibling;
	size_t n, cap;
};

static void tree_grow(struct tree *t)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1024;
		t->parent = xreallocarray(t->parent, t->cap, sizeof(uint32_t));
		t->frame = xreallocarray(t->frame, t->cap, sizeof(uint32_t));
		t->first_child = xreallocarray(t->first_child, t->cap, sizeof(uint32_t));
		t->next_sibling = xreallocarray(t->next_sibling, t->cap, sizeof(uint32_t));
	}
}

static void tree_init(struct tree *t)
{
	tree_grow(t);
	t->parent[0] = t->frame[0] = t->first_child[0] = t->next_sibling[0] = 0;
	t->n = 1;
}

static uint32_t tree_child(struct tree *t, uint32_t parent, uint32_t frame)
{
	for (uint32_t c = t->first_child[parent]; c != 0; c = t->next_sibling[c])
		if (t->frame[c] == frame)
			return c;
	tree_grow(t);
	uint32_t id = (uint32_t)t->n++;

	t->parent[id] = parent;
	t->frame[id] = frame;
	t->first_child[id] = 0;
	t->next_sibling[id] = t->first_child[parent];
	t->first_child[parent] = id;
	return id;
}

/*
 * Stacks share what real ones share: the first few are built from the
 * entry frames (frames 0-5: _start, main, start_thread...), each later one
 * keeps at least a third of an earlier one and grows its own leaf side from
 * frames picked by popularity.
 */
static void make_stacks(struct tree *t, uint32_t *leaf)
{
	static uint32_t path[STACKS][MAX_DEPTH];
	static size_t depth[STACKS];
	struct zipf z = zipf_make(FRAMES - 6);

	tree_init(t);
	for (size_t i = 0; i < STACKS;) {
		size_t keep = 0, d = MIN_DEPTH + below(MAX_DEPTH - MIN_DEPTH + 1);
		uint32_t node = 0;

		if (i < 4) {
			path[i][0] = (uint32_t)(i % 2 ? 0 : 3);
			path[i][1] = (uint32_t)(i % 2 ? 1 : 4);
			path[i][2] = (uint32_t)(i % 2 ? 2 : 5);
			keep = 3;
		} else {
			size_t j = below(i);

			keep = depth[j] / 3 + below(depth[j] - depth[j] / 3);
			memcpy(path[i], path[j], keep * sizeof(uint32_t));
		}
		if (d <= keep)
			d = keep + 1;
		for (size_t k = keep; k < d; k++)
			path[i][k] = 6 + (uint32_t)zipf_pick(&z);
		depth[i] = d;
		for (size_t k = 0; k < d; k++)
			node = tree_child(t, node, path[i][k]);
		/* Rare: the same path twice; draw this stack again. */
		for (size_t j = 0; j < i; j++)
			if (leaf[j] == node)
				node = 0;
		if (node != 0)
			leaf[i++] = node;
	}
	free(z.cum);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_storage: %s: %s\n", sql, sqlite3_errmsg(db));
		exit(1);
	}
	return stmt;
}

static void run(sqlite3 *db, sqlite3_stmt *stmt)
{
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		fprintf(stderr, "bench_storage: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	sqlite3_reset(stmt);
}

static void exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_storage: %s: %s\n", sql, sqlite3_errmsg(db));
		exit(1);
	}
}

static void write_definitions(sqlite3 *db, const struct tree *t)
{
	sqlite3_stmt *mod = prepare(db, "INSERT INTO modules VALUES (1, ?, ?, ?)");
	sqlite3_stmt *frm = prepare(db, "INSERT INTO frames VALUES (1, ?, ?, ?, ?, ?, ?, ?)");
	sqlite3_stmt *node = prepare(db, "INSERT INTO stack_nodes VALUES (1, ?, ?, ?)");
	sqlite3_stmt *thr = prepare(db, "INSERT INTO threads VALUES (1, ?, 4242, ?, ?)");
	char text[160];

	for (int m = 0; m < MODULES; m++) {
		sqlite3_bind_int(mod, 1, m);
		snprintf(text, sizeof text, "/usr/lib/x86_64-linux-gnu/libmodule%d.so.%d", m, m % 3 + 1);
		sqlite3_bind_text(mod, 2, text, -1, SQLITE_TRANSIENT);
		snprintf(text, sizeof text, "%016llx%016llx%08x", (unsigned long long)rng(),
			 (unsigned long long)rng(), (unsigned)rng());
		sqlite3_bind_text(mod, 3, text, -1, SQLITE_TRANSIENT);
		run(db, mod);
	}
	for (int f = 0; f < FRAMES; f++) {
		int m = (int)below(MODULES);

		sqlite3_bind_int(frm, 1, f);
		sqlite3_bind_int(frm, 2, m);
		sqlite3_bind_int64(frm, 3, (sqlite3_int64)(0x10000 + below(0x400000)));
		snprintf(text, sizeof text, "subsystem%d::Component%d::handle_%s_%d", f % 17,
			 f % 41, f % 2 ? "request" : "event", f);
		sqlite3_bind_text(frm, 4, text, -1, SQLITE_TRANSIENT);
		snprintf(text, sizeof text, "/build/project/src/subsystem%d/component%d.cc",
			 f % 17, f % 41);
		sqlite3_bind_text(frm, 5, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(frm, 6, 20 + (int)below(2000));
		sqlite3_bind_int(frm, 7, below(8) == 0);
		run(db, frm);
	}
	for (uint32_t n = 1; n < t->n; n++) {
		sqlite3_bind_int64(node, 1, n);
		sqlite3_bind_int64(node, 2, t->parent[n]);
		sqlite3_bind_int64(node, 3, t->frame[n]);
		run(db, node);
	}
	for (int i = 0; i < THREADS; i++) {
		sqlite3_bind_int(thr, 1, i);
		sqlite3_bind_int(thr, 2, 4242 + i);
		snprintf(text, sizeof text, "worker-%d", i);
		sqlite3_bind_text(thr, 3, text, -1, SQLITE_TRANSIENT);
		run(db, thr);
	}
	sqlite3_finalize(mod);
	sqlite3_finalize(frm);
	sqlite3_finalize(node);
	sqlite3_finalize(thr);
}

struct thread_model {
	double stay;		/* chance of staying on the same stack */
	char usual, other;	/* usual state, and the rare one */
	uint32_t stack;
	char state;
	uint32_t *order;	/* this thread's popularity order of stacks */
	struct codec_buf buf;
};

static void flush_chunk(sqlite3 *db, sqlite3_stmt *stmt, int thread,
			struct codec_buf *b, size_t *bytes)
{
	if (b->count == 0)
		return;
	sqlite3_bind_int(stmt, 1, thread);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)b->first_ns);
	sqlite3_bind_int64(stmt, 3, (sqlite3_int64)b->last_ns);
	sqlite3_bind_int64(stmt, 4, (sqlite3_int64)b->count);
	sqlite3_bind_blob(stmt, 5, b->data, (int)b->len, SQLITE_STATIC);
	run(db, stmt);
	*bytes += b->len;
	codec_reset(b);
}

struct totals {
	size_t samples, chunks, blob_bytes, count_rows;
};

/*
 * Busy threads (0-3) hop between hot stacks running, mixed ones (4-7) mostly
 * sleep, idle ones (8-15) block on one stack; every thread has its own
 * favourite stacks.
 */
static void threads_init(struct thread_model *th, const uint32_t *leaf)
{
	for (int i = 0; i < THREADS; i++) {
		th[i] = (struct thread_model){
			.stay = i < 4 ? 0.6 : i < 8 ? 0.9 : 0.995,
			.usual = i < 4 ? 'R' : 'S', .other = i < 4 ? 'S' : 'R',
			.order = xcalloc(STACKS, sizeof(uint32_t)),
		};
		shuffled_order(th[i].order, STACKS);
		th[i].stack = leaf[th[i].order[0]];
		th[i].state = th[i].usual;
	}
}

/* counts[thread * nodes + stack][state is S] */
static void write_counts(sqlite3 *db, uint32_t (*counts)[2], size_t nodes,
			 struct totals *tot)
{
	sqlite3_stmt *cnt = prepare(db, "INSERT INTO counts VALUES (1, ?, ?, ?, ?)");

	for (size_t k = 0; k < THREADS * nodes; k++)
		for (int s = 0; s < 2; s++) {
			if (counts[k][s] == 0)
				continue;
			sqlite3_bind_int64(cnt, 1, (sqlite3_int64)(k / nodes));
			sqlite3_bind_int64(cnt, 2, (sqlite3_int64)(k % nodes));
			sqlite3_bind_text(cnt, 3, s ? "S" : "R", 1, SQLITE_STATIC);
			sqlite3_bind_int64(cnt, 4, counts[k][s]);
			run(db, cnt);
			tot->count_rows++;
		}
	sqlite3_finalize(cnt);
}

static void write_samples(sqlite3 *db, const uint32_t *leaf, size_t nodes,
			  size_t samples, size_t chunk, struct totals *tot)
{
	sqlite3_stmt *ins = prepare(db, "INSERT INTO sample_chunks (session_id,"
				    " thread_id, first_ns, last_ns, samples, data)"
				    " VALUES (1, ?, ?, ?, ?, ?)");
	uint32_t (*counts)[2] = xcalloc(THREADS * nodes, sizeof *counts);
	struct thread_model th[THREADS];
	struct zipf z = zipf_make(STACKS);
	uint64_t tick = 1700000000000000000ull;

	threads_init(th, leaf);
	for (size_t n = 0; n < samples; n += THREADS) {
		tick += PERIOD_NS - PERIOD_NS / 10 + below(PERIOD_NS / 5);
		for (int i = 0; i < THREADS && n + (size_t)i < samples; i++) {
			struct thread_model *m = &th[i];
			/* Threads are sampled one after the other within a tick. */
			uint64_t t = tick + (uint64_t)i * 12000 + below(3000);

			if (uniform() >= m->stay) {
				m->stack = leaf[m->order[zipf_pick(&z)]];
				m->state = below(10) == 0 ? m->other : m->usual;
			}
			codec_append(&m->buf, &(struct codec_sample){ t, m->stack, m->state });
			counts[(size_t)i * nodes + m->stack][m->state == 'S']++;
			tot->samples++;
			if (m->buf.count == chunk) {
				flush_chunk(db, ins, i, &m->buf, &tot->blob_bytes);
				tot->chunks++;
			}
		}
	}
	for (int i = 0; i < THREADS; i++) {
		tot->chunks += th[i].buf.count != 0;
		flush_chunk(db, ins, i, &th[i].buf, &tot->blob_bytes);
		codec_free(&th[i].buf);
		free(th[i].order);
	}
	write_counts(db, counts, nodes, tot);
	free(counts);
	free(z.cum);
	sqlite3_finalize(ins);
}

static void print_breakdown(sqlite3 *db, off_t file_size, size_t samples)
{
	sqlite3_stmt *stmt = prepare(db,
		"SELECT name, count(*), sum(pgsize), sum(payload), sum(unused)"
		" FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC");
	sqlite3_int64 listed = 0;

	printf("\n| table or index | pages | bytes | payload | unused | bytes/sample |\n"
	       "|---|---:|---:|---:|---:|---:|\n");
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		sqlite3_int64 bytes = sqlite3_column_int64(stmt, 2);

		listed += bytes;
		printf("| %s | %lld | %lld | %lld | %lld | %.3f |\n",
		       (const char *)sqlite3_column_text(stmt, 0),
		       (long long)sqlite3_column_int64(stmt, 1), (long long)bytes,
		       (long long)sqlite3_column_int64(stmt, 3),
		       (long long)sqlite3_column_int64(stmt, 4),
		       (double)bytes / (double)samples);
	}
	printf("| (header, pointer maps, free) | | %lld | | | %.3f |\n",
	       (long long)(file_size - listed),
	       (double)(file_size - listed) / (double)samples);
	sqlite3_finalize(stmt);
}

static struct stat print_size(sqlite3 *db, const char *path, const char *what,
			      size_t samples)
{
	struct stat st;

	exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	if (stat(path, &st) < 0) {
		perror("bench_storage: stat");
		exit(1);
	}
	printf("%s: %lld bytes, %.2f bytes/sample\n", what, (long long)st.st_size,
	       (double)st.st_size / (double)samples);
	return st;
}

static void remove_db(const char *path, const char *dir)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };

	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char *p = xasprintf("%s%s", path, suffixes[i]);

		unlink(p);
		free(p);
	}
	rmdir(dir);
}

/* Writes the whole session, then vacuums; returns the file's final size. */
static off_t write_session(sqlite3 *db, const char *path, size_t samples,
			   size_t chunk)
{
	uint32_t leaf[STACKS];
	struct tree t = { 0 };
	struct totals tot = { 0 };

	make_stacks(&t, leaf);
	exec(db, "BEGIN");
	exec(db, "INSERT INTO sessions (id, name, pid, exe, cmdline, owner_uid,"
		 " started_ns, ended_ns, rate_hz, status)"
		 " VALUES (1, 'bench', 4242, '/usr/sbin/server',"
		 " '/usr/sbin/server --config /etc/server.conf', 1000,"
		 " 1700000000000000000, 1700000631000000000, 99, 'complete')");
	write_definitions(db, &t);
	write_samples(db, leaf, t.n, samples, chunk, &tot);
	exec(db, "COMMIT");
	printf("%zu samples (%d threads, 99 Hz), %d stacks as %zu tree nodes over"
	       " %d frames\n%zu chunks of <= %zu samples, %zu count rows\n"
	       "sample blobs: %zu bytes, %.2f bytes/sample\n",
	       tot.samples, THREADS, STACKS, t.n - 1, FRAMES, tot.chunks, chunk,
	       tot.count_rows, tot.blob_bytes,
	       (double)tot.blob_bytes / (double)tot.samples);
	free(t.parent);
	free(t.frame);
	free(t.first_child);
	free(t.next_sibling);

	/* As the daemon leaves it (written in time order), then compacted. */
	print_size(db, path, "database file as written", samples);
	exec(db, "VACUUM");
	return print_size(db, path, "database file after VACUUM", samples).st_size;
}

int main(int argc, char **argv)
{
	size_t samples = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t chunk = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	char tmp[] = "/tmp/perch-bench-storage-XXXXXX";
	char *path = argc > 3 ? xstrdup(argv[3]) : NULL;
	sqlite3 *db;
	char *cause;
	off_t size;

	if (samples == 0 || chunk == 0) {
		fprintf(stderr, "usage: bench_storage [SAMPLES [CHUNK [PATH]]]\n");
		return 2;
	}
	if (path == NULL) {
		if (mkdtemp(tmp) == NULL) {
			perror("bench_storage: mkdtemp");
			return 1;
		}
		path = xasprintf("%s/perch.db", tmp);
	}
	if (db_open(path, DB_READ_WRITE, &db, &cause) < 0) {
		fprintf(stderr, "bench_storage: %s\n", cause);
		return 1;
	}
	size = write_session(db, path, samples, chunk);
	sqlite3_close(db);

	if (db_open(path, DB_READ_ONLY, &db, &cause) < 0) {
		fprintf(stderr, "bench_storage: %s\n", cause);
		return 1;
	}
	print_breakdown(db, size, samples);
	sqlite3_close(db);

	if (argc <= 3)
		remove_db(path, tmp);
	free(path);
	return 0;
}
