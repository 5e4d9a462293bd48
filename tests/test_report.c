/*
 * Tests of the report side: perch show, flat, callers, callees and
 * hot-paths on a database built through the store with known frames,
 * stacks, threads, states and times, so that every number is known.
 *
 * The real perch binary runs with PERCH_DB pointing at it, NO_COLOR=1 and
 * TZ=UTC (the header prints a local date).  Its text output is compared with
 * golden files, tests/golden/NAME.txt; after a deliberate change of the
 * output, rewrite them and review the diff:
 *
 *     PERCH_UPDATE_GOLDEN=1 ctest --test-dir BUILD -R test_report
 *
 * A mismatch leaves the output in BUILD/tests/report-actual/NAME.txt.
 * The JSON shapes, the filters (thread, CPU, time windows decoded from the
 * raw chunks), library folding, errors and recursion are checked on the
 * parsed output, and the filters also in process through perch_report.
 *
 * The session: 2400 ticks at 100 Hz of two threads.
 *   server (tid 4242), every 20 ticks:
 *     4  main → serve → parse → fread → read@a          S
 *     3  main → serve → parse → fread → read@b          S
 *     2  main → serve → parse                           R
 *     6  main → serve → handle (inlined) → compute      R
 *     4  main → serve → walk → walk → walk              R
 *     1  main → serve → walk → qsort → walk             R
 *   worker (tid 4243): the first half start_thread → worker_main → idle →
 *   poll (S); the second, every 10 ticks, 7 start_thread → worker_main →
 *   compute (R) and 3 start_thread → worker_main → log_line → write (S).
 * fread, read (two leaf addresses), qsort, start_thread, poll and write are
 * in libc; the rest in the program, with sources under /src/demo.  The
 * shares are chosen so that no two rows or paths of a report tie.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "intern.h"
#include "profile.h"
#include "query.h"
#include "store.h"
#include "xalloc.h"

#define PERCH		PERCH_BIN_DIR "/client/perch"
#define GOLDEN_DIR	PERCH_SOURCE_DIR "/tests/golden"
#define ACTUAL_DIR	PERCH_BIN_DIR "/tests/report-actual"

#define T0		1700000000000000000ull	/* 2023-11-14 22:13:20 UTC */
#define PERIOD_NS	10000000ull		/* 100 Hz: a sample is 10 ms */
#define TICKS		2400
#define HALF		(TICKS / 2)
#define BATCH_TICKS	100
#define SAMPLES		(2 * TICKS)

#define APP	"/opt/demo/bin/demo-server"
#define LIBC	"/usr/lib/x86_64-linux-gnu/libc.so.6"
#define SRC	"/src/demo/"

enum frame {
	MAIN, SERVE, PARSE, FREAD, READ_A, READ_B, HANDLE, COMPUTE, WALK_CALL, WALK,
	QSORT, START, WMAIN, IDLE, POLL, LOG, WRITE, NFRAMES
};

#define FRAME(fn, src, ln, mod, off, inl) { \
	.addr = 0x400000 + (off), .module = (mod), .build_id = "", \
	.module_offset = (off), .func = (fn), .file = (src), .line = (ln), \
	.inlined = (inl) }

static const struct perch_frame frame_defs[NFRAMES] = {
	[MAIN] = FRAME("main", SRC "main.c", 12, APP, 0x1100, false),
	[SERVE] = FRAME("serve", SRC "server.c", 40, APP, 0x1200, false),
	[PARSE] = FRAME("parse", SRC "parse.c", 77, APP, 0x1300, false),
	[FREAD] = FRAME("fread", NULL, 0, LIBC, 0x7a010, false),
	[READ_A] = FRAME("read", NULL, 0, LIBC, 0x11c010, false),
	[READ_B] = FRAME("read", NULL, 0, LIBC, 0x11c024, false),
	[HANDLE] = FRAME("handle", SRC "server.c", 55, APP, 0x1250, true),
	[COMPUTE] = FRAME("compute", SRC "compute.c", 9, APP, 0x1400, false),
	[WALK_CALL] = FRAME("walk", SRC "walk.c", 24, APP, 0x1520, false),
	[WALK] = FRAME("walk", SRC "walk.c", 21, APP, 0x1500, false),
	[QSORT] = FRAME("qsort", NULL, 0, LIBC, 0x4a0f0, false),
	[START] = FRAME("start_thread", NULL, 0, LIBC, 0x94ac0, false),
	[WMAIN] = FRAME("worker_main", SRC "worker.c", 8, APP, 0x1600, false),
	[IDLE] = FRAME("idle", SRC "worker.c", 30, APP, 0x1650, false),
	[POLL] = FRAME("poll", NULL, 0, LIBC, 0x118f20, false),
	[LOG] = FRAME("log_line", SRC "log.c", 5, APP, 0x1700, false),
	[WRITE] = FRAME("write", NULL, 0, LIBC, 0x11d0a0, false),
};

enum stack { A1, A2, B, C, E, F, G, H, I, NSTACKS };

static const struct stack_def {
	char state;
	uint64_t samples;	/* in the whole session */
	uint64_t late;		/* of them, from 12 s on */
	size_t n;
	enum frame frames[6];	/* outermost first */
} stack_defs[NSTACKS] = {
	[A1] = { 'S', 480, 240, 5, { MAIN, SERVE, PARSE, FREAD, READ_A } },
	[A2] = { 'S', 360, 180, 5, { MAIN, SERVE, PARSE, FREAD, READ_B } },
	[B] = { 'R', 240, 120, 3, { MAIN, SERVE, PARSE } },
	[C] = { 'R', 720, 360, 4, { MAIN, SERVE, HANDLE, COMPUTE } },
	[E] = { 'R', 480, 240, 5, { MAIN, SERVE, WALK_CALL, WALK_CALL, WALK } },
	[F] = { 'R', 120, 60, 5, { MAIN, SERVE, WALK_CALL, QSORT, WALK } },
	[G] = { 'S', 1200, 0, 4, { START, WMAIN, IDLE, POLL } },
	[H] = { 'R', 840, 840, 3, { START, WMAIN, COMPUTE } },
	[I] = { 'S', 360, 360, 4, { START, WMAIN, LOG, WRITE } },
};

static enum stack server_stack(unsigned int tick)
{
	static const enum stack cycle[20] = {
		A1, A1, A1, A1, A2, A2, A2, B, B, C, C, C, C, C, C, E, E, E, E, F,
	};

	return cycle[tick % 20];
}

static enum stack worker_stack(unsigned int tick)
{
	return tick < HALF ? G : tick % 10 < 7 ? H : I;
}

/* What the group setup made. */
static struct {
	char dir[64];
	char db[96], empty_db[96], missing_db[96];
	uint32_t stack_id[NSTACKS];
} fx;

/* ---- building the database ------------------------------------------------ */

static uint32_t intern(struct interner *in, enum stack s, struct intern_defs *defs)
{
	const struct stack_def *d = &stack_defs[s];
	struct perch_frame leaf_first[6];

	for (size_t i = 0; i < d->n; i++)
		leaf_first[i] = frame_defs[d->frames[d->n - 1 - i]];
	return interner_stack(in, leaf_first, d->n, defs);
}

static void add_sample(struct store_batch *b, struct interner *in, uint32_t thread,
		       enum stack s, unsigned int tick)
{
	struct store_sample smp = {
		.thread_id = thread,
		.stack_id = intern(in, s, &b->defs),
		.time_ns = T0 + tick * PERIOD_NS,
		.state = stack_defs[s].state,
	};

	fx.stack_id[s] = smp.stack_id;
	store_batch_add_sample(b, &smp);
}

/* A session; ptrace_stops > 0: recorded with --ptrace-only --stops N. */
static int64_t begin(struct store *st, const char *name, pid_t pid, const char *exe,
		     uint64_t started_ns, unsigned int ptrace_stops)
{
	struct store_session_info info = {
		.name = name, .pid = pid, .exe = exe, .cmdline = "demo-server --port 8080",
		.owner_uid = 1000, .requested_by = 1000, .schedule_id = -1,
		.started_ns = started_ns, .duration_s = 24, .rate_hz = 100, .mode = "wall",
		.ptrace_only = ptrace_stops > 0, .max_stops = ptrace_stops > 0 ? ptrace_stops : 2,
	};
	char *cause = NULL;
	int64_t id = 0;

	assert_int_equal(store_session_begin(st, &info, &id, &cause), 0);
	return id;
}

/* Session 1: the one described at the top, in batches as perchd makes them. */
static void write_demo(struct store *st)
{
	static const struct store_thread threads[] = {
		{ .id = 0, .pid = 4242, .tid = 4242, .name = "server" },
		{ .id = 1, .pid = 4242, .tid = 4243, .name = "worker" },
	};
	struct interner *in = interner_create();
	int64_t id = begin(st, "demo", 4242, APP, T0, 0);
	uint64_t running = 0;

	assert_int_equal(id, 1);
	for (unsigned int tick = 0; tick < TICKS; tick += BATCH_TICKS) {
		struct store_batch *b = store_batch_new(id);

		for (size_t t = 0; tick == 0 && t < 2; t++)
			store_batch_add_thread(b, &threads[t]);
		for (unsigned int k = tick; k < tick + BATCH_TICKS; k++) {
			add_sample(b, in, 0, server_stack(k), k);
			add_sample(b, in, 1, worker_stack(k), k);
		}
		b->ticks = tick + BATCH_TICKS;
		b->thread_samples = 2 * b->ticks;
		b->late_ticks = b->ticks / 100;
		/* Each thread's first running tick is a stop; the kernel takes the rest. */
		for (size_t i = 0; i < b->nsamples; i++)
			running += b->samples[i].state == 'R';
		b->stopped_samples = 2;
		b->kernel_samples = running - 2;
		store_append(st, b);
	}
	assert_int_equal(store_session_end(st, id, "complete", NULL,
					   T0 + TICKS * PERIOD_NS, 19500000000), 0);
	interner_free(in);
}

/* Session 2, the newest: ten samples of one thread, stopped by the user. */
static void write_other(struct store *st)
{
	struct store_thread th = { .id = 0, .pid = 5000, .tid = 5000, .name = "other" };
	struct interner *in = interner_create();
	int64_t id = begin(st, "other", 5000, "/usr/bin/other", T0 + 60 * 1000000000ull, 2);
	struct store_batch *b = store_batch_new(id);

	assert_int_equal(id, 2);
	store_batch_add_thread(b, &th);
	for (unsigned int k = 0; k < 10; k++) {
		struct store_sample smp = {
			.thread_id = 0, .stack_id = intern(in, B, &b->defs),
			.time_ns = T0 + 60 * 1000000000ull + k * PERIOD_NS, .state = 'R',
		};

		store_batch_add_sample(b, &smp);
	}
	b->ticks = b->thread_samples = b->stopped_samples = 10;
	store_append(st, b);
	assert_int_equal(store_session_end(st, id, "stopped", NULL,
					   T0 + 61 * 1000000000ull, -1), 0);
	interner_free(in);
}

static void make_db(const char *path, bool with_sessions)
{
	struct store *st = NULL;
	char *cause = NULL;

	assert_int_equal(store_open(path, &st, &cause), 0);
	if (with_sessions) {
		write_demo(st);
		write_other(st);
	}
	store_close(st);
}

static int setup(void **state)
{
	(void)state;
	snprintf(fx.dir, sizeof fx.dir, "/tmp/perch-report-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	snprintf(fx.db, sizeof fx.db, "%s/report.db", fx.dir);
	snprintf(fx.empty_db, sizeof fx.empty_db, "%s/empty.db", fx.dir);
	snprintf(fx.missing_db, sizeof fx.missing_db, "%s/missing.db", fx.dir);
	make_db(fx.db, true);
	make_db(fx.empty_db, false);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- running perch -------------------------------------------------------- */

struct run {
	int status;		/* exit status, or 128 + signal */
	char *out, *err;
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 4096, n;
	char *buf = xmalloc(cap);

	assert_non_null(f);
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0)
			buf = xreallocarray(buf, cap *= 2, 1);
	}
	assert_int_equal(ferror(f), 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Runs perch with the NULL-terminated args on db, in a fixed environment. */
static struct run run_perch_on(const char *db, const char *first, va_list ap)
{
	char out_path[96], err_path[96], db_env[128];
	const char *argv[24] = { PERCH, first };
	char *const envp[] = {
		db_env, "NO_COLOR=1", "TZ=UTC", "PERCH_SOCKET=/nonexistent/perch.sock",
		"PERCH_DAEMON=/nonexistent/perchd", "HOME=/nonexistent", NULL,
	};
	struct run r;
	size_t n = 2;
	pid_t pid;
	int status;

	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < sizeof argv / sizeof argv[0]);
	snprintf(out_path, sizeof out_path, "%s/stdout", fx.dir);
	snprintf(err_path, sizeof err_path, "%s/stderr", fx.dir);
	snprintf(db_env, sizeof db_env, "PERCH_DB=%s", db);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		execve(PERCH, (char *const *)argv, envp);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r.out = slurp(out_path);
	r.err = slurp(err_path);
	return r;
}

static struct run run_perch(const char *first, ...)
{
	struct run r;
	va_list ap;

	va_start(ap, first);
	r = run_perch_on(fx.db, first, ap);
	va_end(ap);
	return r;
}

static struct run run_perch_db(const char *db, const char *first, ...)
{
	struct run r;
	va_list ap;

	va_start(ap, first);
	r = run_perch_on(db, first, ap);
	va_end(ap);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs a report that must succeed and print JSON; returns it parsed. */
static json_object *run_json(const char *first, ...)
{
	json_object *doc;
	struct run r;
	va_list ap;

	va_start(ap, first);
	r = run_perch_on(fx.db, first, ap);
	va_end(ap);
	if (r.status != 0 || r.err[0] != '\0')
		fail_msg("perch %s: exit %d: %s", first, r.status, r.err);
	doc = json_tokener_parse(r.out);
	if (doc == NULL)
		fail_msg("perch %s: not JSON: %s", first, r.out);
	run_free(&r);
	return doc;
}

/* ---- golden text output --------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Says where the first difference is, as a line of each. */
static void report_difference(const char *name, const char *want, const char *got)
{
	int line = 1;
	size_t i = 0;

	for (; want[i] != '\0' && want[i] == got[i]; i++)
		line += want[i] == '\n';
	while (i > 0 && want[i - 1] != '\n')
		i--;
	print_error("%s.txt differs at line %d:\n  want: %.*s\n  got:  %.*s\n",
		    name, line, (int)strcspn(want + i, "\n"), want + i,
		    (int)strcspn(got + i, "\n"), got + i);
	print_error("output in " ACTUAL_DIR "/%s.txt; PERCH_UPDATE_GOLDEN=1 rewrites "
		    "tests/golden/\n", name);
}

static bool golden_matches(const char *name, const char *got)
{
	char path[256], *want;
	struct stat sb;
	bool same;

	snprintf(path, sizeof path, "%s/%s.txt", GOLDEN_DIR, name);
	if (getenv("PERCH_UPDATE_GOLDEN") != NULL) {
		write_file(path, got);
		return true;
	}
	if (stat(path, &sb) < 0) {
		print_error("%s missing; PERCH_UPDATE_GOLDEN=1 writes it\n", path);
		return false;
	}
	want = slurp(path);
	same = strcmp(want, got) == 0;
	if (!same) {
		mkdir(ACTUAL_DIR, 0755);
		snprintf(path, sizeof path, "%s/%s.txt", ACTUAL_DIR, name);
		write_file(path, got);
		report_difference(name, want, got);
	}
	free(want);
	return same;
}

static const struct golden {
	const char *name;
	const char *args[8];
} goldens[] = {
	{ "show", { "show", "1" } },
	{ "show-all", { "show", "1", "--show-all" } },
	{ "show-paths", { "show", "1", "--paths", "parse.c,walk.c" } },
	{ "show-min-percent", { "show", "1", "--min-percent", "20" } },
	{ "show-cpu-worker", { "show", "1", "--cpu", "--thread", "worker" } },
	{ "flat", { "flat", "1" } },
	{ "flat-by-line", { "flat", "1", "--by", "line", "-n", "4" } },
	{ "flat-paths", { "flat", "1", "--paths", "/src/demo/" } },
	{ "callers-compute", { "callers", "1", "compute" } },
	{ "callers-main", { "callers", "1", "main" } },
	{ "callees-parse", { "callees", "1", "parse" } },
	{ "callees-walk", { "callees", "1", "walk" } },
	{ "hot-paths", { "hot-paths", "1" } },
	{ "hot-paths-depth", { "hot-paths", "1", "--depth", "2", "-n", "3" } },
	{ "hot-paths-paths", { "hot-paths", "1", "--paths", "walk.c" } },
	{ "show-window", { "show", "1", "--from", "12s" } },
};

static void test_golden(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
		const char *const *a = goldens[i].args;
		struct run r = run_perch(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);

		if (r.status != 0 || r.err[0] != '\0') {
			print_error("%s: exit %d: %s\n", goldens[i].name, r.status, r.err);
			failed++;
		} else if (!golden_matches(goldens[i].name, r.out)) {
			failed++;
		}
		run_free(&r);
	}
	assert_int_equal(failed, 0);
}

/* ---- JSON shapes ------------------------------------------------------------ */

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no key '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

static bool is(json_object *v, json_type t)
{
	return json_object_get_type(v) == t;
}

static bool is_or_null(json_object *v, json_type t)
{
	return v == NULL || is(v, t);
}

static int64_t samples_of(json_object *o)
{
	return json_object_get_int64(get(o, "samples"));
}

/* samples, time_ms and percent of a row, node or path, against the total. */
static void check_amount(json_object *o, int64_t total)
{
	int64_t n = samples_of(o);

	assert_true(is(get(o, "samples"), json_type_int));
	assert_true(is(get(o, "time_ms"), json_type_double));
	assert_true(is(get(o, "percent"), json_type_double));
	assert_true(n > 0);
	assert_float_equal(json_object_get_double(get(o, "time_ms")), (double)n * 10, 1e-6);
	assert_float_equal(json_object_get_double(get(o, "percent")),
			   100.0 * (double)n / (double)total, 1e-6);
}

static void check_frame(json_object *o)
{
	json_object *line = get(o, "line");

	assert_true(is(get(o, "func"), json_type_string));
	assert_true(is_or_null(get(o, "file"), json_type_string));
	assert_true(is_or_null(line, json_type_int));
	assert_true(is_or_null(get(o, "module"), json_type_string));
	assert_true(line == NULL || json_object_get_int(line) > 0);
}

/* An array of rows {func, file, line, module, samples, time_ms, percent}. */
static int64_t check_rows(json_object *arr, int64_t total)
{
	int64_t sum = 0, prev = INT64_MAX;

	assert_true(is(arr, json_type_array));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *row = json_object_array_get_idx(arr, i);

		assert_int_equal(json_object_object_length(row), 7);
		check_frame(row);
		check_amount(row, total);
		assert_true(samples_of(row) <= prev);
		prev = samples_of(row);
		sum += prev;
	}
	return sum;
}

/* The row of func in a rows array, or NULL. */
static json_object *row_named(json_object *arr, const char *func)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *row = json_object_array_get_idx(arr, i);

		if (strcmp(json_object_get_string(get(row, "func")), func) == 0)
			return row;
	}
	return NULL;
}

static int64_t samples_named(json_object *arr, const char *func)
{
	json_object *row = row_named(arr, func);

	if (row == NULL)
		fail_msg("no row '%s' in %s", func, json_object_to_json_string(arr));
	return samples_of(row);
}

/* A node's samples are its self plus its children's; returns the nodes. */
static size_t check_tree(json_object *node, int64_t total)
{
	json_object *kids = get(node, "children");
	int64_t sum = json_object_get_int64(get(node, "self"));
	size_t nodes = 1;

	if (json_object_object_get_ex(node, "hidden", NULL)) {
		assert_true(is(get(node, "func"), json_type_string));
		assert_true(is(get(node, "hidden"), json_type_int));
		assert_true(is_or_null(get(node, "modules"), json_type_string));
	} else {
		check_frame(node);
		assert_true(is(get(node, "inlined"), json_type_boolean));
	}
	check_amount(node, total);
	assert_true(is(kids, json_type_array));
	for (size_t i = 0; i < json_object_array_length(kids); i++) {
		json_object *k = json_object_array_get_idx(kids, i);

		nodes += check_tree(k, total);
		sum += samples_of(k);
	}
	assert_int_equal(sum, samples_of(node));
	return nodes;
}

static void test_json_rows(void **state)
{
	static const char *const views[][4] = {
		{ "flat", "1", "--json" }, { "callers", "1", "compute", "--json" },
		{ "callees", "1", "parse", "--json" }, { "callers", "1", "main", "--json" },
	};
	static const int64_t sums[] = { SAMPLES, 1560, 1080, TICKS };

	(void)state;
	for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
		json_object *arr = run_json(views[i][0], views[i][1], views[i][2], views[i][3],
					    NULL);

		assert_int_equal(check_rows(arr, sums[i]), sums[i]);
		json_object_put(arr);
	}
}

static void test_json_flat_values(void **state)
{
	json_object *arr = run_json("flat", "1", "--json", NULL), *row;

	(void)state;
	assert_int_equal(json_object_array_length(arr), 6);
	row = json_object_array_get_idx(arr, 0);
	assert_string_equal(json_object_get_string(get(row, "func")), "compute");
	assert_string_equal(json_object_get_string(get(row, "file")), SRC "compute.c");
	assert_int_equal(json_object_get_int(get(row, "line")), 9);
	assert_string_equal(json_object_get_string(get(row, "module")), APP);
	assert_int_equal(samples_of(row), 1560);
	row = row_named(arr, "read");
	assert_non_null(row);
	assert_null(get(row, "file"));
	assert_null(get(row, "line"));
	assert_string_equal(json_object_get_string(get(row, "module")), LIBC);
	assert_int_equal(samples_of(row), 840);
	assert_int_equal(samples_named(arr, "poll"), 1200);
	assert_int_equal(samples_named(arr, "walk"), 600);
	assert_int_equal(samples_named(arr, "write"), 360);
	assert_int_equal(samples_named(arr, "parse"), 240);
	json_object_put(arr);
	/* -n limits the rows, not the percentages' base. */
	arr = run_json("flat", "1", "-n", "2", "--json", NULL);
	assert_int_equal(json_object_array_length(arr), 2);
	check_rows(arr, SAMPLES);
	json_object_put(arr);
}

static void test_json_hot_paths(void **state)
{
	json_object *arr = run_json("hot-paths", "1", "-n", "100", "--json", NULL);
	int64_t sum = 0;

	(void)state;
	assert_true(is(arr, json_type_array));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i), *path = get(o, "path");

		assert_int_equal(json_object_object_length(o), 4);
		check_amount(o, SAMPLES);
		assert_true(is(path, json_type_array));
		assert_true(json_object_array_length(path) > 0);
		for (size_t k = 0; k < json_object_array_length(path); k++) {
			json_object *f = json_object_array_get_idx(path, k);

			assert_int_equal(json_object_object_length(f), 4);
			check_frame(f);
			/* Library frames are left out. */
			assert_string_equal(json_object_get_string(get(f, "module")), APP);
		}
		sum += samples_of(o);
	}
	assert_int_equal(sum, SAMPLES);
	/* The hottest: worker_main → compute, outermost first. */
	{
		json_object *top = json_object_array_get_idx(arr, 0), *path = get(top, "path");

		assert_int_equal(samples_of(top), 1200);
		assert_int_equal(json_object_array_length(path), 2);
		assert_string_equal(json_object_get_string(
			get(json_object_array_get_idx(path, 0), "func")), "worker_main");
		assert_string_equal(json_object_get_string(
			get(json_object_array_get_idx(path, 1), "func")), "idle");
	}
	json_object_put(arr);
}

static void test_json_show(void **state)
{
	json_object *doc = run_json("show", "1", "--json", NULL);
	json_object *s = get(doc, "session"), *tree = get(doc, "tree");

	(void)state;
	assert_int_equal(json_object_object_length(doc), 2);
	assert_int_equal(json_object_get_int64(get(s, "session")), 1);
	assert_string_equal(json_object_get_string(get(s, "name")), "demo");
	assert_int_equal(json_object_get_int(get(s, "pid")), 4242);
	assert_string_equal(json_object_get_string(get(s, "exe")), APP);
	assert_string_equal(json_object_get_string(get(s, "cmdline")), "demo-server --port 8080");
	assert_string_equal(json_object_get_string(get(s, "status")), "complete");
	assert_null(get(s, "error"));
	assert_int_equal(json_object_get_int64(get(s, "started_ns")), (int64_t)T0);
	assert_float_equal(json_object_get_double(get(s, "duration_s")), 24, 1e-9);
	assert_float_equal(json_object_get_double(get(s, "rate_hz")), 100, 1e-9);
	assert_int_equal(json_object_get_int64(get(s, "ticks")), TICKS);
	assert_int_equal(json_object_get_int64(get(s, "late_ticks")), 24);
	assert_int_equal(json_object_get_int64(get(s, "target_cpu_ns")), 19500000000);
	assert_string_equal(json_object_get_string(get(s, "time")), "wall");
	assert_int_equal(json_object_get_int64(get(s, "samples")), SAMPLES);
	assert_string_equal(json_object_get_string(get(tree, "func")), "[root]");
	assert_int_equal(samples_of(tree), SAMPLES);
	assert_true(check_tree(tree, SAMPLES) > 10);
	json_object_put(doc);
}

/* ---- filters --------------------------------------------------------------- */

static int64_t show_samples(const char *a1, const char *a2, const char *a3, const char *a4)
{
	json_object *doc = run_json("show", "1", "--json", a1, a2, a3, a4, NULL);
	int64_t n = json_object_get_int64(get(get(doc, "session"), "samples"));

	assert_int_equal(samples_of(get(doc, "tree")), n);
	json_object_put(doc);
	return n;
}

static void test_filters_cli(void **state)
{
	json_object *arr;

	(void)state;
	assert_int_equal(show_samples(NULL, NULL, NULL, NULL), SAMPLES);
	assert_int_equal(show_samples("--thread", "worker", NULL, NULL), TICKS);
	assert_int_equal(show_samples("--thread", "4243", NULL, NULL), TICKS);
	assert_int_equal(show_samples("--thread", "4242", NULL, NULL), TICKS);
	assert_int_equal(show_samples("--cpu", NULL, NULL, NULL), 2400);
	assert_int_equal(show_samples("--cpu", "--thread", "server", NULL), 1560);
	assert_int_equal(show_samples("--from", "12s", NULL, NULL), SAMPLES / 2);
	assert_int_equal(show_samples("--to", "11995ms", NULL, NULL), SAMPLES / 2);
	assert_int_equal(show_samples("--from", "6s", "--to", "17995ms"), SAMPLES / 2);
	assert_int_equal(show_samples("--from", "12s", "--cpu", NULL), 1620);
	assert_int_equal(show_samples("--from", "24s", NULL, NULL), 0);
	/* --cpu keeps only R samples: poll, read and write wait. */
	arr = run_json("flat", "1", "--cpu", "--json", NULL);
	assert_int_equal(check_rows(arr, 2400), 2400);
	assert_null(row_named(arr, "poll"));
	assert_null(row_named(arr, "read"));
	assert_null(row_named(arr, "write"));
	assert_int_equal(samples_named(arr, "compute"), 1560);
	json_object_put(arr);
	/* A window of the second half: half of each server stack, all of H and I. */
	arr = run_json("flat", "1", "--from", "12s", "--json", NULL);
	assert_int_equal(check_rows(arr, SAMPLES / 2), SAMPLES / 2);
	assert_int_equal(samples_named(arr, "read"), 420);
	assert_int_equal(samples_named(arr, "compute"), 360 + 840);
	assert_int_equal(samples_named(arr, "write"), 360);
	assert_null(row_named(arr, "poll"));
	json_object_put(arr);
	arr = run_json("flat", "1", "--thread", "worker", "--to", "11995ms", "--json", NULL);
	assert_int_equal(json_object_array_length(arr), 1);
	assert_int_equal(samples_named(arr, "poll"), 1200);
	json_object_put(arr);
}

static struct profile *load(sqlite3 *db, const char *thread, bool cpu, double from,
			    double to)
{
	struct profile_filter f = { thread, cpu, from, to };
	struct profile *p = NULL;
	char *cause = NULL;

	if (profile_load(db, 1, &f, &p, &cause) < 0)
		fail_msg("profile_load: %s", cause);
	return p;
}

/* Each stack's count under a filter: in a window, the late part of it. */
static void check_stacks(const struct profile *p, bool cpu, int half, bool worker_only)
{
	uint64_t total = 0;

	for (int s = 0; s < NSTACKS; s++) {
		const struct stack_def *d = &stack_defs[s];
		uint64_t want = half == 0 ? d->samples : half > 0 ? d->late : d->samples - d->late;

		if ((cpu && d->state != 'R') || (worker_only && s < G))
			want = 0;
		assert_int_equal(p->self[fx.stack_id[s]], want);
		total += want;
	}
	assert_int_equal(p->total, total);
}

static void test_filters_in_process(void **state)
{
	static const struct {
		const char *thread;
		bool cpu;
		double from, to;
		int half;	/* 0: all, 1: from 12 s, -1: before */
	} cases[] = {
		{ NULL, false, -1, -1, 0 }, { NULL, true, -1, -1, 0 },
		{ "worker", false, -1, -1, 0 }, { "4243", true, -1, -1, 0 },
		{ NULL, false, 12, -1, 1 }, { NULL, false, 11.995, -1, 1 },
		{ NULL, false, -1, 11.995, -1 }, { NULL, false, 0, 11.995, -1 },
		{ NULL, true, 12, 30, 1 }, { "worker", false, 12, -1, 1 },
		{ "worker", true, -1, 11.995, -1 },
	};
	sqlite3 *db = NULL;
	char *cause = NULL;

	(void)state;
	assert_int_equal(db_open(fx.db, DB_READ_ONLY, &db, &cause), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct profile *p = load(db, cases[i].thread, cases[i].cpu, cases[i].from,
					 cases[i].to);

		check_stacks(p, cases[i].cpu, cases[i].half, cases[i].thread != NULL);
		profile_free(p);
	}
	sqlite3_close(db);
}

/* Every chunk decoded whole gives back the counts table. */
static void test_window_covers_all(void **state)
{
	sqlite3 *db = NULL;
	char *cause = NULL;
	struct profile *all, *window;

	(void)state;
	assert_int_equal(db_open(fx.db, DB_READ_ONLY, &db, &cause), 0);
	all = load(db, NULL, false, -1, -1);
	window = load(db, NULL, false, 0, 24);
	assert_int_equal(all->nnodes, window->nnodes);
	assert_memory_equal(all->self, window->self, all->nnodes * sizeof *all->self);
	assert_int_equal(window->total, SAMPLES);
	profile_free(all);
	profile_free(window);
	sqlite3_close(db);
}

/* ---- library folding ------------------------------------------------------- */

/* The child of node named func, or NULL. */
static json_object *kid(json_object *node, const char *func)
{
	json_object *kids = get(node, "children");

	for (size_t i = 0; i < json_object_array_length(kids); i++) {
		json_object *k = json_object_array_get_idx(kids, i);

		if (strcmp(json_object_get_string(get(k, "func")), func) == 0)
			return k;
	}
	fail_msg("no child '%s' in %s", func, json_object_to_json_string(node));
	return NULL;
}

static void check_group(json_object *g, int hidden, const char *modules, int64_t samples)
{
	assert_int_equal(json_object_get_int(get(g, "hidden")), hidden);
	assert_string_equal(json_object_get_string(get(g, "modules")), modules);
	assert_int_equal(samples_of(g), samples);
}

static void test_folding(void **state)
{
	json_object *doc = run_json("show", "1", "--json", NULL), *tree = get(doc, "tree");
	json_object *serve = kid(kid(tree, "main"), "serve"), *n;

	(void)state;
	/* parse → fread → read: one group, with nothing of the program below. */
	n = kid(kid(serve, "parse"), "[frames hidden]");
	assert_int_equal(samples_of(n), 840);
	assert_int_equal(json_object_get_int64(get(n, "self")), 840);
	assert_int_equal(json_object_array_length(get(n, "children")), 0);
	/* walk → qsort → walk: the group holds the program's frame again. */
	n = kid(kid(serve, "walk"), "[frames hidden]");
	check_group(n, 1, "libc.so.6", 120);
	assert_int_equal(samples_of(kid(n, "walk")), 120);
	/* A thread's outermost library frame folds too. */
	n = kid(tree, "[frames hidden]");
	check_group(n, 1, "libc.so.6", TICKS);
	assert_int_equal(samples_of(kid(n, "worker_main")), TICKS);
	json_object_put(doc);

	/* --show-all: the frames themselves, read's two addresses as one. */
	doc = run_json("show", "1", "--show-all", "--json", NULL);
	tree = get(doc, "tree");
	n = kid(kid(kid(kid(kid(tree, "main"), "serve"), "parse"), "fread"), "read");
	assert_int_equal(samples_of(n), 840);
	assert_int_equal(json_object_get_int64(get(n, "self")), 840);
	assert_int_equal(samples_of(kid(kid(tree, "start_thread"), "worker_main")), TICKS);
	json_object_put(doc);

	/* --paths: only parse.c and walk.c are the program's. */
	doc = run_json("show", "1", "--paths", "parse.c,walk.c", "--json", NULL);
	tree = get(doc, "tree");
	n = kid(tree, "[frames hidden]");
	assert_int_equal(samples_of(n), SAMPLES);
	assert_int_equal(samples_of(kid(n, "parse")), 1080);
	assert_int_equal(samples_of(kid(n, "walk")), 600);
	json_object_put(doc);
}

static void test_hot_paths_paths(void **state)
{
	json_object *arr = run_json("hot-paths", "1", "--paths", "walk.c", "--json", NULL);
	static const struct {
		int64_t samples;
		size_t n;
	} want[] = { { SAMPLES - 600, 0 }, { 480, 3 }, { 120, 2 } };

	(void)state;
	/*
	 * Only walk.c's frames stay: walk three deep, walk twice (qsort between
	 * is libc), and the samples without walk as one empty path.
	 */
	assert_int_equal(json_object_array_length(arr), 3);
	for (size_t i = 0; i < 3; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *path = get(o, "path");

		assert_int_equal(samples_of(o), want[i].samples);
		assert_int_equal(json_object_array_length(path), want[i].n);
		for (size_t k = 0; k < want[i].n; k++)
			assert_string_equal(json_object_get_string(
				get(json_object_array_get_idx(path, k), "func")), "walk");
	}
	json_object_put(arr);
}

/*
 * A group says how many frames it hides as the tree would show them with
 * --show-all (merged by function): fread → read is 2, whatever the number
 * of addresses read was sampled at (the leaf's address varies from sample
 * to sample, and each address is a frame of its own in the database).
 */
static void test_folding_counts_functions(void **state)
{
	json_object *doc = run_json("show", "1", "--json", NULL), *tree = get(doc, "tree");

	(void)state;
	check_group(kid(kid(kid(kid(tree, "main"), "serve"), "parse"), "[frames hidden]"),
		    2, "libc.so.6", 840);
	json_object_put(doc);
}

/* ---- recursion ------------------------------------------------------------- */

static void test_recursion(void **state)
{
	json_object *arr = run_json("callers", "1", "walk", "--json", NULL);
	sqlite3 *db = NULL;
	char *cause = NULL, *suggest = NULL;
	struct profile *p;
	struct qrow *rows;
	uint64_t total = 0;
	long n;

	(void)state;
	/* walk is on 600 samples' stacks, twice or three times on each. */
	assert_int_equal(check_rows(arr, 600), 600);
	assert_int_equal(json_object_array_length(arr), 1);
	assert_int_equal(samples_named(arr, "serve"), 600);
	json_object_put(arr);
	arr = run_json("callees", "1", "walk", "--json", NULL);
	assert_int_equal(check_rows(arr, 600), 600);
	assert_int_equal(samples_named(arr, "walk"), 480);
	assert_int_equal(samples_named(arr, "qsort"), 120);
	json_object_put(arr);

	assert_int_equal(db_open(fx.db, DB_READ_ONLY, &db, &cause), 0);
	p = load(db, NULL, false, -1, -1);
	n = query_callers(p, "walk", true, &rows, &total, &suggest);
	assert_int_equal(n, 2);
	assert_int_equal(total, 600);
	free(rows);
	n = query_callers(p, "compute", false, &rows, &total, &suggest);
	assert_int_equal(n, 2);
	assert_int_equal(total, 1560);
	assert_string_equal(rows[0].frame->func, "worker_main");
	assert_int_equal(rows[0].samples, 840);
	assert_string_equal(rows[1].frame->func, "handle");
	assert_int_equal(rows[1].samples, 720);
	free(rows);
	profile_free(p);
	sqlite3_close(db);
}

/* The outermost frames' callers and a leaf's callees are the special row. */
static void test_special_rows(void **state)
{
	json_object *arr = run_json("callers", "1", "main", "--json", NULL);

	(void)state;
	assert_int_equal(json_object_array_length(arr), 1);
	assert_string_equal(json_object_get_string(get(json_object_array_get_idx(arr, 0),
							"func")), "[root]");
	json_object_put(arr);
	arr = run_json("callees", "1", "parse", "--json", NULL);
	assert_int_equal(samples_named(arr, "[self]"), 240);
	assert_int_equal(samples_named(arr, "fread"), 840);
	json_object_put(arr);
}

/* ---- sessions and errors ---------------------------------------------------- */

static void test_last(void **state)
{
	json_object *doc = run_json("show", "last", "--json", NULL);
	json_object *s = get(doc, "session");

	(void)state;
	assert_int_equal(json_object_get_int64(get(s, "session")), 2);
	assert_string_equal(json_object_get_string(get(s, "status")), "stopped");
	assert_int_equal(json_object_get_int64(get(s, "samples")), 10);
	assert_null(get(s, "target_cpu_ns"));
	assert_string_equal(json_object_get_string(get(s, "sampling")), "ptrace");
	assert_int_equal(json_object_get_int64(get(s, "max_stops")), 2);
	assert_int_equal(json_object_get_int64(get(s, "kernel_samples")), 0);
	assert_int_equal(json_object_get_int64(get(s, "stopped_samples")), 10);
	json_object_put(doc);
}

/*
 * A version-1 file (before sessions recorded how they sampled), which perch
 * reads as it is: the same report, with no sampling line in the header and
 * nulls in the JSON.  Made from a copy of the demo file by dropping the
 * columns version 2 added.
 */
static void test_version_1_file(void **state)
{
	char path[160], *sql;
	struct run r;
	json_object *doc, *s;
	sqlite3 *db;

	(void)state;
	snprintf(path, sizeof path, "%s/v1.db", fx.dir);
	sql = xasprintf("VACUUM INTO '%s'", path);
	assert_int_equal(sqlite3_open(fx.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(sql);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE sessions DROP COLUMN sampling;"
				      "ALTER TABLE sessions DROP COLUMN max_stops;"
				      "ALTER TABLE sessions DROP COLUMN kernel_samples;"
				      "ALTER TABLE sessions DROP COLUMN stopped_samples;"
				      "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	r = run_perch_db(path, "flat", "1", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "showing wall-clock time"));
	assert_null(strstr(r.out, "running threads"));
	run_free(&r);
	r = run_perch_db(fx.db, "flat", "1", NULL);
	assert_non_null(strstr(r.out, "running threads: "));
	run_free(&r);
	r = run_perch_db(path, "show", "1", "--json", NULL);
	assert_int_equal(r.status, 0);
	doc = json_tokener_parse(r.out);
	assert_non_null(doc);
	s = get(doc, "session");
	assert_int_equal(json_object_get_int64(get(s, "samples")), SAMPLES);
	assert_null(get(s, "sampling"));
	assert_null(get(s, "max_stops"));
	assert_null(get(s, "kernel_samples"));
	json_object_put(doc);
	run_free(&r);
}

/* A failed command: the status, nothing on stdout, one line on stderr. */
static void check_error(struct run *r, int status, const char *message)
{
	if (r->status != status || r->out[0] != '\0' || strstr(r->err, message) == NULL ||
	    strchr(r->err, '\n') != r->err + strlen(r->err) - 1)
		fail_msg("want exit %d and '%s'; got exit %d, stdout '%s', stderr '%s'",
			 status, message, r->status, r->out, r->err);
	run_free(r);
}

static void test_errors(void **state)
{
	struct run r;

	(void)state;
	r = run_perch("show", "99", NULL);
	check_error(&r, 1, "perch: no session 99 (see 'perch sessions')\n");
	r = run_perch("flat", "0", NULL);
	check_error(&r, 1, "perch: '0' is not a session (a number, or 'last')\n");
	r = run_perch("hot-paths", "1x", NULL);
	check_error(&r, 1, "'1x' is not a session");
	r = run_perch_db(fx.empty_db, "show", "last", NULL);
	check_error(&r, 1, "perch: no sessions recorded yet\n");
	r = run_perch_db(fx.missing_db, "flat", "last", NULL);
	check_error(&r, 1, "perch: no database at ");
	r = run_perch("callers", "1", "prase", NULL);
	check_error(&r, 1, "perch: no function 'prase' in session 1; did you mean: parse\n");
	r = run_perch("callees", "1", "comptue", NULL);
	check_error(&r, 1, "did you mean: compute\n");
	r = run_perch("callers", "1", "zzzzzzzzz", NULL);
	check_error(&r, 1, "perch: no function 'zzzzzzzzz' in session 1\n");
	r = run_perch("show", "1", "--thread", "nosuch", NULL);
	check_error(&r, 1, "perch: no thread 'nosuch' in session 1");
	r = run_perch("show", "1", "--from", "20s", "--to", "10s", NULL);
	check_error(&r, 2, "perch: --from is after --to\n");
	r = run_perch("show", "1", "--from", "soon", NULL);
	check_error(&r, 2, "perch: invalid --from");
	r = run_perch("callers", "1", NULL);
	check_error(&r, 2, "usage: perch callers SESSION FUNC");
	r = run_perch("flat", "1", "--depth", "3", NULL);
	check_error(&r, 2, "usage: perch flat SESSION");
	r = run_perch("show", NULL);
	check_error(&r, 2, "usage: perch show SESSION");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_json_rows),
		cmocka_unit_test(test_json_flat_values),
		cmocka_unit_test(test_json_hot_paths),
		cmocka_unit_test(test_json_show),
		cmocka_unit_test(test_filters_cli),
		cmocka_unit_test(test_filters_in_process),
		cmocka_unit_test(test_window_covers_all),
		cmocka_unit_test(test_folding),
		cmocka_unit_test(test_folding_counts_functions),
		cmocka_unit_test(test_hot_paths_paths),
		cmocka_unit_test(test_recursion),
		cmocka_unit_test(test_special_rows),
		cmocka_unit_test(test_last),
		cmocka_unit_test(test_version_1_file),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
