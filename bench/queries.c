/*
 * bench_queries: how long the report commands take on a large session.
 *
 * Writes one realistic session of 1 000 000 thread samples through the
 * store, as perchd would: 16 threads sampled at 99 Hz with +-10 % jitter
 * for about 10 minutes; 500 call paths 10 to 40 frames deep over 300
 * functions in 12 modules (the program and two of its libraries, the rest
 * system libraries that reports fold), each leaf sampled at one of up to 8
 * addresses, so some 3000 distinct stacks; busy threads hop between hot
 * stacks running (R), mixed ones mostly sleep, idle ones block on one stack
 * (S) — the model of bench_storage.
 *
 * Then, warm (one run first), the median and worst of RUNS runs of:
 *   command     the real perch binary, fork to exit, output to /dev/null:
 *               what a user waits for;
 *   in process  the same work through perch_report (load the session,
 *               query, render to /dev/null), split into load and the rest.
 * If `go` is on PATH and perch has `export --format pprof`, the same run
 * also times `go tool pprof -top` on the exported session.  Prints a
 * markdown table.
 *
 * usage: bench_queries [RUNS [DB]]
 *   RUNS  runs of each command (15); DB  where to write the session (a
 *   temporary file, removed afterwards; a given DB is kept).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "intern.h"
#include "profile.h"
#include "query.h"
#include "render.h"
#include "session_model.h"
#include "store.h"
#include "xalloc.h"

#define PERCH		PERCH_BIN_DIR "/client/perch"
#define SAMPLES		1000000
#define THREADS		16
#define MODULES		12
#define APP_MODULES	3	/* the program's; the others are system libraries */
#define FUNCS		300
#define ENTRY_FUNCS	6	/* _start, main, start_thread...: outermost only */
#define PATHS		500
#define MIN_DEPTH	10
#define MAX_DEPTH	40
#define LEAF_ADDRS	8
#define PERIOD_NS	10101010	/* 99 Hz */
#define BATCH_TICKS	25		/* what perchd hands over each 250 ms */
#define T0		1700000000000000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the session ----------------------------------------------------------- */

/* funcs[f][a]: function f at leaf address a (a > 0 only for leaves). */
static struct perch_frame funcs[FUNCS][LEAF_ADDRS];

static void make_funcs(void)
{
	static const char *const entry[ENTRY_FUNCS] = {
		"_start", "__libc_start_main", "main", "start_thread", "clone3",
		"worker_loop",
	};
	char text[256], *modules[MODULES];

	for (int m = 0; m < MODULES; m++) {
		if (m == 0)
			snprintf(text, sizeof text, "/opt/app/bin/server");
		else if (m < APP_MODULES)
			snprintf(text, sizeof text, "/opt/app/lib/libapp%d.so", m);
		else
			snprintf(text, sizeof text, "/usr/lib/x86_64-linux-gnu/libsys%d.so.%d", m,
				 m % 3 + 1);
		modules[m] = xstrdup(text);
	}
	for (int f = 0; f < FUNCS; f++) {
		int m = f < ENTRY_FUNCS ? (f == 2 || f == 5 ? 0 : MODULES - 1) :
			(int)below(MODULES);
		bool app = m < APP_MODULES;

		if (f < ENTRY_FUNCS)
			snprintf(text, sizeof text, "%s", entry[f]);
		else
			snprintf(text, sizeof text, "subsystem%d::Component%d::handle_%s_%d",
				 f % 17, f % 41, f % 2 ? "request" : "event", f);
		for (int a = 0; a < LEAF_ADDRS; a++) {
			struct perch_frame *fr = &funcs[f][a];

			fr->func = a == 0 ? xstrdup(text) : funcs[f][0].func;
			fr->module = modules[m];
			fr->build_id = "";
			fr->module_offset = 0x10000 + (uint64_t)f * 0x400 + (uint64_t)a * 0x1c;
			fr->addr = 0x400000 + fr->module_offset;
			if (app) {
				snprintf(text, sizeof text, "/build/app/src/subsystem%d/component%d.cc",
					 f % 17, f % 41);
				fr->file = a == 0 ? xstrdup(text) : funcs[f][0].file;
				fr->line = 20 + f * 7 % 2000 + a;
			}
			fr->inlined = app && f % 8 == 0;
		}
	}
}

/* Call paths as function numbers, outermost first. */
static uint32_t paths[PATHS][MAX_DEPTH];
static size_t depths[PATHS];

/*
 * Paths share what real ones share: the first few start from the entry
 * functions, each later one keeps at least a third of an earlier one and
 * grows its own leaf side from functions picked by popularity.
 */
static void make_paths(void)
{
	struct zipf z = zipf_make(FUNCS - ENTRY_FUNCS);

	for (size_t i = 0; i < PATHS; i++) {
		size_t keep, d = MIN_DEPTH + below(MAX_DEPTH - MIN_DEPTH + 1);

		if (i < 4) {
			static const uint32_t roots[2][3] = { { 0, 1, 2 }, { 4, 3, 5 } };

			memcpy(paths[i], roots[i % 2], sizeof roots[0]);
			keep = 3;
		} else {
			size_t j = below(i);

			keep = depths[j] / 3 + below(depths[j] - depths[j] / 3);
			memcpy(paths[i], paths[j], keep * sizeof paths[i][0]);
		}
		if (d <= keep)
			d = keep + 1;
		for (size_t k = keep; k < d; k++)
			paths[i][k] = ENTRY_FUNCS + (uint32_t)zipf_pick(&z);
		depths[i] = d;
	}
	free(z.cum);
}

struct thread_model {
	double stay;		/* chance of staying on the same stack */
	char usual, other;	/* usual state, and the rare one */
	size_t path, addr;
	char state;
	uint32_t order[PATHS];	/* this thread's popularity order of paths */
};

/*
 * Busy threads (0-3) hop between hot paths running, mixed ones (4-7) mostly
 * sleep, idle ones (8-15) block on one path; each has its favourites.
 */
static void threads_init(struct thread_model *th)
{
	for (int i = 0; i < THREADS; i++) {
		th[i] = (struct thread_model){
			.stay = i < 4 ? 0.6 : i < 8 ? 0.9 : 0.995,
			.usual = i < 4 ? 'R' : 'S', .other = i < 4 ? 'S' : 'R',
		};
		shuffled_order(th[i].order, PATHS);
		th[i].path = th[i].order[0];
		th[i].state = th[i].usual;
	}
}

static void step(struct thread_model *t, const struct zipf *z)
{
	if (uniform() >= t->stay) {
		t->path = t->order[zipf_pick(z)];
		t->addr = below(LEAF_ADDRS);
		t->state = uniform() < 0.9 ? t->usual : t->other;
	}
}

static uint32_t intern_path(struct interner *in, const struct thread_model *t,
			    struct intern_defs *defs)
{
	struct perch_frame leaf_first[MAX_DEPTH];
	size_t d = depths[t->path];

	for (size_t k = 0; k < d; k++)
		leaf_first[k] = funcs[paths[t->path][d - 1 - k]][k == 0 ? t->addr : 0];
	return interner_stack(in, leaf_first, d, defs);
}

static struct store_batch *make_batch(int64_t id, struct interner *in,
				      struct thread_model *th, const struct zipf *z,
				      uint64_t *tick, uint64_t *now)
{
	struct store_batch *b = store_batch_new(id);

	for (uint32_t t = 0; *tick == 0 && t < THREADS; t++) {
		struct store_thread st = { .id = t, .pid = 4242, .tid = 4242 + (pid_t)t };

		snprintf(st.name, sizeof st.name, "worker-%u", t);
		store_batch_add_thread(b, &st);
	}
	for (int k = 0; k < BATCH_TICKS && *tick * THREADS < SAMPLES; k++, (*tick)++) {
		for (uint32_t t = 0; t < THREADS; t++) {
			struct store_sample s = {
				.thread_id = t, .stack_id = intern_path(in, &th[t], &b->defs),
				.time_ns = *now, .state = th[t].state,
			};

			store_batch_add_sample(b, &s);
			step(&th[t], z);
		}
		*now += (uint64_t)(PERIOD_NS * (0.9 + 0.2 * uniform()));
	}
	b->ticks = *tick;
	b->thread_samples = *tick * THREADS;
	return b;
}

static void write_session(const char *path)
{
	struct store_session_info info = {
		.name = "bench", .pid = 4242, .exe = "/opt/app/bin/server",
		.cmdline = "server --threads 16", .owner_uid = 0, .requested_by = 0,
		.schedule_id = -1, .started_ns = T0, .rate_hz = 99, .mode = "wall",
	};
	static struct thread_model th[THREADS];
	struct zipf z = zipf_make(PATHS);
	struct interner *in = interner_create();
	uint64_t tick = 0, now = T0, t0 = mono_ns();
	struct store *st;
	char *cause = NULL;
	int64_t id;

	make_funcs();
	make_paths();
	threads_init(th);
	if (store_open(path, &st, &cause) < 0 || store_session_begin(st, &info, &id, &cause) < 0) {
		fprintf(stderr, "bench_queries: %s\n", cause);
		exit(1);
	}
	while (tick * THREADS < SAMPLES)
		store_append(st, make_batch(id, in, th, &z, &tick, &now));
	if (store_session_end(st, id, "complete", NULL, now, -1) < 0) {
		fprintf(stderr, "bench_queries: the session was not stored\n");
		exit(1);
	}
	store_close(st);
	interner_free(in);
	free(z.cum);
	fprintf(stderr, "bench_queries: wrote %llu samples, %.0f s at 99 Hz, in %.1f s\n",
		(unsigned long long)(tick * THREADS), (double)(now - T0) / 1e9,
		(double)(mono_ns() - t0) / 1e9);
}

/* ---- timing ------------------------------------------------------------------ */

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct timing {
	double median, worst;	/* ms */
};

static struct timing summarize(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, by_value);
	return (struct timing){ n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[n - 1] };
}

/* Runs argv (argv[0] a path) with output to /dev/null; wall ms, or -1. */
static double run_ms(const char *const *argv, const char *db)
{
	uint64_t t0 = mono_ns();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(126);
		setenv("PERCH_DB", db, 1);
		setenv("NO_COLOR", "1", 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return (double)(mono_ns() - t0) / 1e6;
}

static bool time_command(const char *const *argv, const char *db, int runs,
			 struct timing *out)
{
	double *v = xcalloc((size_t)runs, sizeof *v);

	/* The first run warms the page cache and the dynamic loader. */
	if (run_ms(argv, db) < 0) {
		free(v);
		return false;
	}
	for (int i = 0; i < runs; i++)
		if ((v[i] = run_ms(argv, db)) < 0) {
			free(v);
			return false;
		}
	*out = summarize(v, runs);
	free(v);
	return true;
}

/* ---- in process ---------------------------------------------------------------- */

enum what { SHOW, SHOW_JSON, FLAT, CALLERS, CALLEES, HOT_PATHS };

struct query {
	const char *label;
	enum what what;
	const char *args[8];		/* after "perch" */
	struct profile_filter filter;
	const char *func;		/* callers and callees */
};

/* The query's work after loading, output to out. */
static void query_and_render(const struct query *q, struct profile *p, FILE *out)
{
	struct render_opts o = { .min_percent = 1, .limit = q->what == HOT_PATHS ? 10 : 20 };
	struct qtree *t;
	struct qrow *rows;
	struct qpath *hp;
	uint64_t total;
	char *suggest = NULL;
	size_t n;
	long r;

	render_header(out, p, &o);
	switch (q->what) {
	case SHOW:
	case SHOW_JSON:
		profile_mark_libraries(p, NULL);
		t = query_tree(p, false);
		if (q->what == SHOW) {
			render_tree(out, p, t, &o);
		} else {
			json_object *j = render_tree_json(p, t);

			fputs(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN), out);
			json_object_put(j);
		}
		query_tree_free(t);
		break;
	case FLAT:
		n = query_flat(p, NULL, false, &rows);
		render_rows(out, p, rows, n, p->total, "SELF TIME BY FUNCTION", &o);
		free(rows);
		break;
	case CALLERS:
	case CALLEES:
		r = query_callers(p, q->func, q->what == CALLEES, &rows, &total, &suggest);
		if (r < 0) {
			fprintf(stderr, "bench_queries: no function %s\n", q->func);
			exit(1);
		}
		render_rows(out, p, rows, (size_t)r, total, "CALLERS", &o);
		free(rows);
		break;
	case HOT_PATHS:
		profile_mark_libraries(p, NULL);
		n = query_hot_paths(p, 0, &hp);
		render_paths(out, p, hp, n, &o);
		query_paths_free(hp, n);
		break;
	}
	fflush(out);
}

struct split {
	struct timing load, rest, total;
};

static void time_in_process(const struct query *q, sqlite3 *db, int runs, struct split *out)
{
	double *load = xcalloc((size_t)runs, sizeof *load);
	double *rest = xcalloc((size_t)runs, sizeof *rest);
	double *total = xcalloc((size_t)runs, sizeof *total);
	FILE *null = fopen("/dev/null", "w");

	for (int i = -1; i < runs; i++) {
		struct profile *p = NULL;
		char *cause = NULL;
		uint64_t t0 = mono_ns(), t1;

		if (profile_load(db, 1, &q->filter, &p, &cause) < 0) {
			fprintf(stderr, "bench_queries: %s\n", cause);
			exit(1);
		}
		t1 = mono_ns();
		query_and_render(q, p, null);
		profile_free(p);
		if (i < 0)
			continue;	/* warm-up */
		load[i] = (double)(t1 - t0) / 1e6;
		rest[i] = (double)(mono_ns() - t1) / 1e6;
		total[i] = load[i] + rest[i];
	}
	out->load = summarize(load, runs);
	out->rest = summarize(rest, runs);
	out->total = summarize(total, runs);
	fclose(null);
	free(load);
	free(rest);
	free(total);
}

/* The function with the most self time, and the one most stacks go through. */
static void pick_functions(sqlite3 *db, char **hot, char **wide)
{
	struct profile_filter f = { .from_s = -1, .to_s = -1 };
	struct profile *p;
	struct qrow *rows;
	char *cause = NULL;
	size_t n;

	if (profile_load(db, 1, &f, &p, &cause) < 0) {
		fprintf(stderr, "bench_queries: %s\n", cause);
		exit(1);
	}
	n = query_flat(p, NULL, false, &rows);
	*hot = xstrdup(n > 0 ? rows[0].frame->func : "main");
	*wide = xstrdup(funcs[paths[0][2]][0].func);
	free(rows);
	profile_free(p);
}

/* ---- go tool pprof ----------------------------------------------------------------- */

/* Whether perch can export pprof: its export command's help says so. */
static bool perch_exports_pprof(void)
{
	FILE *f = popen(PERCH " export --help 2>/dev/null", "r");
	char line[512];
	bool yes = false;

	if (f == NULL)
		return false;
	while (fgets(line, sizeof line, f) != NULL)
		yes |= strstr(line, "pprof") != NULL;
	return pclose(f) == 0 && yes;
}

static void bench_pprof(const char *db, const char *dir, int runs)
{
	const char *const have_go[] = { "go", "version", NULL };
	char file[128];
	const char *const export[] = { PERCH, "export", "1", "--format", "pprof", "-o", file,
				       NULL };
	const char *const top[] = { "go", "tool", "pprof", "-top", file, NULL };
	struct timing t;

	snprintf(file, sizeof file, "%s/session.pb.gz", dir);
	if (run_ms(have_go, db) < 0) {
		printf("\n`go tool pprof -top`: skipped (no `go` on PATH; apt install golang-go)\n");
		return;
	}
	if (!perch_exports_pprof()) {
		printf("\n`go tool pprof -top`: skipped (this perch has no `export --format pprof`)\n");
		return;
	}
	if (!time_command(export, db, runs, &t)) {
		printf("\n`perch export --format pprof` failed\n");
		return;
	}
	printf("| `perch export 1 --format pprof -o FILE` | %.1f | %.1f | | | |\n",
	       t.median, t.worst);
	if (!time_command(top, db, runs, &t)) {
		printf("\n`go tool pprof -top` failed on the exported file\n");
		unlink(file);
		return;
	}
	printf("| `go tool pprof -top FILE` (for comparison) | %.1f | %.1f | | | |\n",
	       t.median, t.worst);
	unlink(file);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 15;
	char dir[] = "/tmp/bench-queries-XXXXXX", path[256], *hot, *wide, *cause = NULL;
	struct query queries[] = {
		{ .label = "show", .what = SHOW, .args = { "show", "1" } },
		{ .label = "show --json", .what = SHOW_JSON, .args = { "show", "1", "--json" } },
		{ .label = "flat", .what = FLAT, .args = { "flat", "1" } },
		{ .label = "callers HOT", .what = CALLERS, .args = { "callers", "1", NULL } },
		{ .label = "callees WIDE", .what = CALLEES, .args = { "callees", "1", NULL } },
		{ .label = "hot-paths", .what = HOT_PATHS, .args = { "hot-paths", "1" } },
		{ .label = "flat --thread worker-3", .what = FLAT, .args = { "flat", "1", "--thread", "worker-3" } },
		{ .label = "show --cpu", .what = SHOW, .args = { "show", "1", "--cpu" } },
		{ .label = "show --from 2m --to 7m", .what = SHOW, .args = { "show", "1", "--from", "2m", "--to", "7m" } },
	};
	size_t nq = sizeof queries / sizeof queries[0];
	sqlite3 *db;

	if (runs < 1 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: bench_queries [RUNS [DB]]\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s", argc > 2 ? argv[2] : "");
	if (argc <= 2)
		snprintf(path, sizeof path, "%s/queries.db", dir);
	unlink(path);
	write_session(path);
	if (db_open(path, DB_READ_ONLY, &db, &cause) < 0) {
		fprintf(stderr, "bench_queries: %s\n", cause);
		return 1;
	}
	pick_functions(db, &hot, &wide);
	for (size_t i = 0; i < nq; i++) {
		struct query *q = &queries[i];

		q->filter = (struct profile_filter){ .from_s = -1, .to_s = -1 };
		q->func = q->what == CALLERS ? hot : wide;
		if (q->what == CALLERS || q->what == CALLEES)
			q->args[2] = q->func;
		for (size_t k = 2; q->args[k] != NULL; k++) {
			if (strcmp(q->args[k], "--thread") == 0)
				q->filter.thread = q->args[k + 1];
			if (strcmp(q->args[k], "--cpu") == 0)
				q->filter.cpu_only = true;
			if (strcmp(q->args[k], "--from") == 0)
				q->filter.from_s = 120;
			if (strcmp(q->args[k], "--to") == 0)
				q->filter.to_s = 420;
		}
	}
	printf("1 000 000 samples, 16 threads; HOT = %s, WIDE = %s; %d runs each, warm.\n\n",
	       hot, wide, runs);
	printf("| command | perch, median ms | worst ms | in process: load | query + render"
	       " | total |\n|---|---|---|---|---|---|\n");
	{
		const char *const version[] = { PERCH, "--version", NULL };
		struct timing t;

		if (time_command(version, path, runs, &t))
			printf("| `perch --version` (starting the process) | %.1f | %.1f | | | |\n",
			       t.median, t.worst);
	}
	for (size_t i = 0; i < nq; i++) {
		const char *argv_q[10] = { PERCH };
		struct timing cmd;
		struct split in;

		memcpy(argv_q + 1, queries[i].args, sizeof queries[i].args);
		if (!time_command(argv_q, path, runs, &cmd)) {
			fprintf(stderr, "bench_queries: perch %s failed\n", queries[i].label);
			return 1;
		}
		time_in_process(&queries[i], db, runs, &in);
		printf("| `perch %s` | %.1f | %.1f | %.1f | %.1f | %.1f |\n", queries[i].label,
		       cmd.median, cmd.worst, in.load.median, in.rest.median, in.total.median);
	}
	bench_pprof(path, dir, runs);
	sqlite3_close(db);
	free(hot);
	free(wide);
	if (argc <= 2) {
		char wal[300];

		unlink(path);
		snprintf(wal, sizeof wal, "%s-wal", path);
		unlink(wal);
		snprintf(wal, sizeof wal, "%s-shm", path);
		unlink(wal);
	}
	rmdir(dir);
	return 0;
}
