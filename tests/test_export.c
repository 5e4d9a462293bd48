/*
 * Tests of perch export: the protobuf writer pprof files are made with, then
 * every format of the real perch binary on a database built through the
 * store, where every number is known:
 *
 *   app (tid 4242, thread 0)                      worker-1 (tid 4243, thread 1)
 *     12  _start → main → outer_hot → mix_inlined  R   55  __clone3 → start_thread →
 *      5  _start → main → read                     S       work_loop → burn_alpha   R
 *      3  _start → main → odd;name                 R    5  the same from another line
 *                                                           of work_loop             R
 *                                                      20  ... work_loop → burn_beta R
 *
 * mix_inlined is inlined into outer_hot (same address).  The 100 samples
 * are 10 ms apart from the session start + 1 ms, in the order: alpha 55,
 * alpha' 5, beta 20, mix 12, read 5, odd 3 — so --from 0.6s keeps the last
 * 40 and --to 0.6s the first 60.
 *
 * pprof files are read back with `go tool pprof` (the test is skipped when
 * go is missing); a last test records real targets with perchd and checks
 * that pprof and `perch flat` agree, and that an inlined function is a line
 * of its caller's location.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "intern.h"
#include "protobuf.h"
#include "spawn.h"
#include "store.h"

#define PERCH	PERCH_BIN_DIR "/client/perch"
#define PERCHD	PERCH_BIN_DIR "/daemon/perchd"

#define T0	1700000000000000000ull
#define TICK_NS	10000000ull		/* 100 Hz */
#define APP	"/usr/bin/app"
#define LIBC	"/usr/lib/x86_64-linux-gnu/libc.so.6"
#define APP_BUILD_ID	"aa11bb22cc33"

/* ---- the protobuf writer -------------------------------------------------- */

static void assert_bytes(const struct protobuf *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->data, want, n);
}

/* The examples of the protocol buffers encoding documentation. */
static void test_protobuf_examples(void **state)
{
	static const uint8_t varint[] = { 0x08, 0x96, 0x01 };
	static const uint8_t string[] = { 0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g' };
	static const uint8_t packed[] = { 0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05 };
	static const uint8_t nested[] = { 0x1a, 0x03, 0x08, 0x96, 0x01 };
	static const uint64_t values[] = { 3, 270, 86942 };
	struct protobuf b = { 0 }, m = { 0 };

	(void)state;
	protobuf_uint(&b, 1, 150);
	assert_bytes(&b, varint, sizeof varint);
	protobuf_reset(&b);
	protobuf_string(&b, 2, "testing");
	assert_bytes(&b, string, sizeof string);
	protobuf_reset(&b);
	protobuf_packed(&b, 4, values, 3);
	assert_bytes(&b, packed, sizeof packed);
	protobuf_reset(&b);
	protobuf_packed(&b, 4, values, 0);
	assert_int_equal(b.len, 0);
	protobuf_uint(&m, 1, 150);
	protobuf_message(&b, 3, &m);
	assert_bytes(&b, nested, sizeof nested);
	protobuf_free(&m);
	protobuf_free(&b);
	protobuf_free(NULL);
}

static void test_protobuf_edges(void **state)
{
	static const uint8_t minus_one[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0x01 };
	static const uint8_t zero_big_field[] = { 0x80, 0x01, 0x00 };
	static const uint8_t max[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				       0x01 };
	struct protobuf b = { 0 };
	char big[1000];

	(void)state;
	/* protobuf's int64 -1: ten bytes. */
	protobuf_uint(&b, 1, (uint64_t)(int64_t)-1);
	assert_bytes(&b, minus_one, sizeof minus_one);
	protobuf_reset(&b);
	/* Field 16 needs a two-byte tag. */
	protobuf_uint(&b, 16, 0);
	assert_bytes(&b, zero_big_field, sizeof zero_big_field);
	protobuf_reset(&b);
	protobuf_varint(&b, UINT64_MAX);
	assert_bytes(&b, max, sizeof max);
	/* A field longer than the buffer's first allocation; length 1000 = e8 07. */
	protobuf_reset(&b);
	memset(big, 'x', sizeof big);
	protobuf_bytes(&b, 6, big, sizeof big);
	assert_int_equal(b.len, 3 + sizeof big);
	assert_int_equal(b.data[0], 0x32);
	assert_int_equal(b.data[1], 0xe8);
	assert_int_equal(b.data[2], 0x07);
	assert_memory_equal(b.data + 3, big, sizeof big);
	protobuf_free(&b);
}

/* ---- the database ------------------------------------------------------------ */

enum frame {
	START, MAIN, OUTER, MIX, READ, ODD, CLONE, THREAD, LOOP, LOOP2, ALPHA, BETA, NFRAMES
};

#define FRAME(fn, src, ln, mod, off, inl) { \
	.addr = 0x400000 + (off), .module = (mod), \
	.build_id = (mod)[5] == 'b' ? APP_BUILD_ID : "dd44", .module_offset = (off), \
	.func = (fn), .file = (src), .line = (ln), .inlined = (inl) }

static const struct perch_frame frame_defs[NFRAMES] = {
	[START] = FRAME("_start", NULL, 0, APP, 0x1000, false),
	[MAIN] = FRAME("main", "app.c", 10, APP, 0x1100, false),
	[OUTER] = FRAME("outer_hot", "app.c", 60, APP, 0x1500, false),
	[MIX] = FRAME("mix_inlined", "app.c", 21, APP, 0x1500, true),
	[READ] = FRAME("read", "read.c", 26, LIBC, 0xa000, false),
	[ODD] = FRAME("odd;name", "app.c", 70, APP, 0x1600, false),
	[CLONE] = FRAME("__clone3", "clone3.S", 81, LIBC, 0x9000, false),
	[THREAD] = FRAME("start_thread", "pthread_create.c", 442, LIBC, 0x8000, false),
	[LOOP] = FRAME("work_loop", "app.c", 30, APP, 0x1200, false),
	[LOOP2] = FRAME("work_loop", "app.c", 31, APP, 0x1210, false),
	[ALPHA] = FRAME("burn_alpha", "app.c", 40, APP, 0x1300, false),
	[BETA] = FRAME("burn_beta", "app.c", 50, APP, 0x1400, false),
};

static const struct stack_def {
	uint32_t thread;
	char state;
	unsigned int samples;
	size_t n;
	enum frame frames[4];	/* outermost first */
} stack_defs[] = {
	{ 1, 'R', 55, 4, { CLONE, THREAD, LOOP, ALPHA } },
	{ 1, 'R', 5, 4, { CLONE, THREAD, LOOP2, ALPHA } },
	{ 1, 'R', 20, 4, { CLONE, THREAD, LOOP, BETA } },
	{ 0, 'R', 12, 4, { START, MAIN, OUTER, MIX } },
	{ 0, 'S', 5, 3, { START, MAIN, READ } },
	{ 0, 'R', 3, 3, { START, MAIN, ODD } },
};

#define NSTACKS (sizeof stack_defs / sizeof stack_defs[0])

static struct {
	char dir[64];
	char db[96];
	char mnt[128];		/* a tmpfs mounted by a test, or "" */
	int nfiles;
	pid_t daemon;
} fx;

static uint32_t intern(struct interner *in, const struct stack_def *d, struct intern_defs *defs)
{
	struct perch_frame leaf_first[4];

	for (size_t i = 0; i < d->n; i++)
		leaf_first[i] = frame_defs[d->frames[d->n - 1 - i]];
	return interner_stack(in, leaf_first, d->n, defs);
}

static void write_session(struct store *st)
{
	static const struct store_thread threads[] = {
		{ .id = 0, .pid = 4242, .tid = 4242, .name = "app" },
		{ .id = 1, .pid = 4242, .tid = 4243, .name = "worker-1" },
	};
	struct store_session_info info = {
		.name = NULL, .pid = 4242, .exe = APP, .cmdline = "app", .owner_uid = 0,
		.requested_by = 0, .schedule_id = -1, .started_ns = T0, .duration_s = 1,
		.rate_hz = 100, .mode = "wall",
	};
	struct interner *in = interner_create();
	struct store_batch *b;
	unsigned int k = 0;
	char *cause = NULL;
	int64_t id = 0;

	assert_int_equal(store_session_begin(st, &info, &id, &cause), 0);
	assert_int_equal(id, 1);
	b = store_batch_new(id);
	store_batch_add_thread(b, &threads[0]);
	store_batch_add_thread(b, &threads[1]);
	for (size_t s = 0; s < NSTACKS; s++) {
		uint32_t stack = intern(in, &stack_defs[s], &b->defs);

		for (unsigned int i = 0; i < stack_defs[s].samples; i++, k++) {
			struct store_sample smp = {
				.thread_id = stack_defs[s].thread, .stack_id = stack,
				.time_ns = T0 + k * TICK_NS + 1000000, .state = stack_defs[s].state,
			};

			store_batch_add_sample(b, &smp);
		}
	}
	b->ticks = b->thread_samples = k;
	store_append(st, b);
	assert_int_equal(store_session_end(st, id, "complete", NULL, T0 + 1000000000, 950000000),
			 0);
	interner_free(in);
}

static int group_setup(void **state)
{
	struct store *st = NULL;
	char *cause = NULL;

	(void)state;
	umask(022);
	snprintf(fx.dir, sizeof fx.dir, "/tmp/perch-export-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	snprintf(fx.db, sizeof fx.db, "%s/export.db", fx.dir);
	if (store_open(fx.db, &st, &cause) < 0) {
		fprintf(stderr, "store_open: %s\n", cause);
		return -1;
	}
	write_session(st);
	store_close(st);
	return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- running commands ------------------------------------------------------- */

struct run {
	int status;		/* exit code; 128 + signal */
	char *out, *err;
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (f == NULL)
		return strdup("");
	/* An empty file gives -1 and a buffer with nothing defined in it. */
	if (getdelim(&buf, &len, '\0', f) < 0) {
		assert_true(feof(f));
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf ? buf : strdup("");
}

/* The child's side: its environment, files and terminal, then exec. */
static void exec_child(const char *const *argv, const char *out, const char *err, int tty)
{
	int o = tty >= 0 ? tty : open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int null = open("/dev/null", O_RDONLY);
	char gocache[128];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (o < 0 || e < 0 || null < 0 || dup2(null, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
		_exit(126);
	snprintf(gocache, sizeof gocache, "%s/gocache", fx.dir);
	setenv("PERCH_DB", fx.db, 1);
	setenv("PERCH_DAEMON", "/nonexistent/perchd", 1);
	setenv("NO_COLOR", "1", 1);
	setenv("TZ", "UTC", 1);
	/* go tool pprof: no network, no file outside the test's directory. */
	setenv("HOME", fx.dir, 1);
	setenv("GOCACHE", gocache, 1);
	setenv("GOPATH", gocache, 1);
	setenv("GOTELEMETRY", "off", 1);
	setenv("GOPROXY", "off", 1);
	setenv("GOFLAGS", "", 1);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

/* Runs argv (stdout to a terminal when tty >= 0) and waits for it. */
static void run_argv(struct run *r, const char *const *argv, int tty)
{
	char out[128], err[128];
	int status;
	pid_t pid;

	fx.nfiles++;
	snprintf(out, sizeof out, "%s/out.%d", fx.dir, fx.nfiles);
	snprintf(err, sizeof err, "%s/err.%d", fx.dir, fx.nfiles);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		exec_child(argv, out, err, tty);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = slurp(out);
	r->err = slurp(err);
	unlink(out);
	unlink(err);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* perch with the NULL-terminated arguments; fails the test unless exit 0. */
static void perch_ok(struct run *r, ...)
{
	const char *argv[24] = { PERCH };
	size_t n = 1;
	va_list ap;

	va_start(ap, r);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < 24);
	va_end(ap);
	run_argv(r, argv, -1);
	if (r->status != 0)
		fail_msg("perch %s %s: exit %d: %s", argv[1], argv[2] ? argv[2] : "", r->status,
			 r->err);
}

/* Same, expecting exit status want and stderr containing what. */
static void perch_fails(int want, const char *what, ...)
{
	const char *argv[24] = { PERCH };
	struct run r;
	size_t n = 1;
	va_list ap;

	va_start(ap, what);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < 24);
	va_end(ap);
	run_argv(&r, argv, -1);
	if (r.status != want || strstr(r.err, what) == NULL)
		fail_msg("perch %s: expected exit %d and '%s'; got %d, '%s'", argv[1], want, what,
			 r.status, r.err);
	run_free(&r);
}

static json_object *parse_json(const char *text)
{
	json_object *o = json_tokener_parse(text);

	if (o == NULL)
		fail_msg("not JSON: '%.300s'", text);
	return o;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

/* ---- folded ---------------------------------------------------------------- */

static uint64_t folded_sum(const char *text, const char *leaf, uint64_t *leaf_samples)
{
	uint64_t sum = 0;

	*leaf_samples = 0;
	for (const char *line = text; *line != '\0';) {
		const char *nl = strchr(line, '\n'), *space;
		char *end;
		unsigned long long n;

		assert_non_null(nl);
		space = memrchr(line, ' ', (size_t)(nl - line));
		assert_non_null(space);
		n = strtoull(space + 1, &end, 10);
		assert_ptr_equal(end, nl);
		sum += n;
		if ((size_t)(space - line) >= strlen(leaf) &&
		    strncmp(space - strlen(leaf), leaf, strlen(leaf)) == 0)
			*leaf_samples += n;
		line = nl + 1;
	}
	return sum;
}

/* The samples perch's own report counts. */
static int64_t show_samples(const char *option)
{
	struct run r;
	json_object *o;
	int64_t n;

	if (option != NULL)
		perch_ok(&r, "show", "1", "--json", option, NULL);
	else
		perch_ok(&r, "show", "1", "--json", NULL);
	o = parse_json(r.out);
	n = json_object_get_int64(get(get(o, "session"), "samples"));
	json_object_put(o);
	run_free(&r);
	return n;
}

static void test_folded(void **state)
{
	static const char want[] =
		"__clone3;start_thread;work_loop;burn_alpha 60\n"
		"__clone3;start_thread;work_loop;burn_beta 20\n"
		"_start;main;odd:name 3\n"
		"_start;main;outer_hot;mix_inlined 12\n"
		"_start;main;read 5\n";
	uint64_t alpha;
	struct run r;

	(void)state;
	perch_ok(&r, "export", "1", "--format", "folded", NULL);
	assert_string_equal(r.out, want);
	assert_int_equal(folded_sum(r.out, ";burn_alpha", &alpha), show_samples(NULL));
	assert_int_equal(alpha, 60);
	run_free(&r);

	perch_ok(&r, "export", "last", "--format", "folded", "--cpu", NULL);
	assert_int_equal(folded_sum(r.out, ";burn_alpha", &alpha), 95);
	assert_int_equal(show_samples("--cpu"), 95);
	assert_null(strstr(r.out, ";read "));
	run_free(&r);

	perch_ok(&r, "export", "1", "--format", "folded", "--from", "0.6s", NULL);
	assert_int_equal(folded_sum(r.out, ";burn_alpha", &alpha), 40);
	assert_int_equal(alpha, 0);
	run_free(&r);
	perch_ok(&r, "export", "1", "--format", "folded", "--to", "0.6s", NULL);
	assert_int_equal(folded_sum(r.out, ";burn_alpha", &alpha), 60);
	assert_int_equal(alpha, 60);
	run_free(&r);
	perch_ok(&r, "export", "1", "--format", "folded", "--thread", "worker-1", NULL);
	assert_int_equal(folded_sum(r.out, ";burn_beta", &alpha), 80);
	assert_int_equal(alpha, 20);
	run_free(&r);
}

/* ---- perch's JSON ------------------------------------------------------------ */

static json_object *by_id(json_object *arr, int64_t id)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (json_object_get_int64(get(o, "id")) == id)
			return o;
	}
	return NULL;
}

/* Every reference resolves; returns the sum of the samples. */
static int64_t check_json_shape(json_object *doc)
{
	json_object *frames = get(doc, "frames"), *stacks = get(doc, "stacks");
	json_object *samples = get(doc, "samples");
	int64_t sum = 0, last = 0;

	for (size_t i = 0; i < json_object_array_length(frames); i++) {
		json_object *f = json_object_array_get_idx(frames, i);

		assert_true(json_object_is_type(get(f, "func"), json_type_string));
		assert_true(json_object_is_type(get(f, "address"), json_type_int));
		assert_true(json_object_is_type(get(f, "inlined"), json_type_boolean));
		get(f, "file");
		get(f, "line");
		get(f, "module");
	}
	for (size_t i = 0; i < json_object_array_length(stacks); i++) {
		json_object *s = json_object_array_get_idx(stacks, i);
		int64_t id = json_object_get_int64(get(s, "id"));
		int64_t parent = json_object_get_int64(get(s, "parent"));

		/* Parents come first. */
		assert_true(id > last);
		last = id;
		assert_true(parent == 0 || (parent < id && by_id(stacks, parent) != NULL));
		assert_non_null(by_id(frames, json_object_get_int64(get(s, "frame"))));
	}
	for (size_t i = 0; i < json_object_array_length(samples); i++) {
		json_object *s = json_object_array_get_idx(samples, i);

		assert_non_null(by_id(stacks, json_object_get_int64(get(s, "stack"))));
		assert_true(json_object_get_int64(get(s, "samples")) > 0);
		sum += json_object_get_int64(get(s, "samples"));
	}
	return sum;
}

/* The frame of the stack holding mix_inlined, and its parent's frame. */
static void check_inlined(json_object *doc)
{
	json_object *frames = get(doc, "frames"), *stacks = get(doc, "stacks");
	bool found = false;

	for (size_t i = 0; i < json_object_array_length(stacks); i++) {
		json_object *s = json_object_array_get_idx(stacks, i), *f, *parent, *pf;

		f = by_id(frames, json_object_get_int64(get(s, "frame")));
		if (strcmp(json_object_get_string(get(f, "func")), "mix_inlined") != 0)
			continue;
		assert_true(json_object_get_boolean(get(f, "inlined")));
		parent = by_id(stacks, json_object_get_int64(get(s, "parent")));
		pf = by_id(frames, json_object_get_int64(get(parent, "frame")));
		assert_string_equal(json_object_get_string(get(pf, "func")), "outer_hot");
		assert_int_equal(json_object_get_int64(get(pf, "address")),
				 json_object_get_int64(get(f, "address")));
		assert_string_equal(json_object_get_string(get(f, "module")), APP);
		assert_int_equal(json_object_get_int(get(f, "line")), 21);
		found = true;
	}
	assert_true(found);
}

static void test_json(void **state)
{
	struct run r;
	json_object *doc, *session;

	(void)state;
	perch_ok(&r, "export", "1", "--format", "json", NULL);
	doc = parse_json(r.out);
	session = get(doc, "session");
	assert_int_equal(json_object_get_int64(get(session, "session")), 1);
	assert_int_equal(json_object_get_int64(get(session, "samples")), 100);
	assert_string_equal(json_object_get_string(get(session, "time")), "wall");
	assert_int_equal(check_json_shape(doc), 100);
	/* 12 distinct frames, 6 + 4 shared stack nodes: all used. */
	assert_int_equal(json_object_array_length(get(doc, "frames")), 12);
	assert_int_equal(json_object_array_length(get(doc, "samples")), 6);
	check_inlined(doc);
	json_object_put(doc);
	run_free(&r);

	/* Under a filter, only what the remaining samples use. */
	perch_ok(&r, "export", "1", "--format", "json", "--cpu", "--thread", "app", NULL);
	doc = parse_json(r.out);
	assert_string_equal(json_object_get_string(get(get(doc, "session"), "time")), "cpu");
	assert_int_equal(check_json_shape(doc), 15);
	assert_int_equal(json_object_array_length(get(doc, "frames")), 5);
	assert_null(strstr(r.out, "\"read\""));
	assert_null(strstr(r.out, "burn_alpha"));
	json_object_put(doc);
	run_free(&r);
}

/* ---- speedscope --------------------------------------------------------------- */

static const char *frame_name(json_object *frames, json_object *index)
{
	int64_t i = json_object_get_int64(index);

	assert_true(json_object_is_type(index, json_type_int));
	assert_true(i >= 0 && (size_t)i < json_object_array_length(frames));
	return json_object_get_string(get(json_object_array_get_idx(frames, (size_t)i), "name"));
}

/* Checks a sampled profile against the shared frames; returns its seconds. */
static double check_sampled(json_object *p, json_object *frames, double start, double end)
{
	json_object *samples = get(p, "samples"), *weights = get(p, "weights");
	double sum = 0;

	assert_string_equal(json_object_get_string(get(p, "type")), "sampled");
	assert_string_equal(json_object_get_string(get(p, "unit")), "seconds");
	assert_true(json_object_is_type(get(p, "name"), json_type_string));
	assert_true(fabs(json_object_get_double(get(p, "startValue")) - start) < 1e-9);
	assert_true(fabs(json_object_get_double(get(p, "endValue")) - end) < 1e-9);
	assert_int_equal(json_object_array_length(samples), json_object_array_length(weights));
	for (size_t i = 0; i < json_object_array_length(samples); i++) {
		json_object *stack = json_object_array_get_idx(samples, i);
		size_t n = json_object_array_length(stack);

		assert_true(n > 0);
		for (size_t k = 0; k < n; k++)
			frame_name(frames, json_object_array_get_idx(stack, k));
		/* Root first: every stack here starts at a thread's entry. */
		assert_true(strcmp(frame_name(frames, json_object_array_get_idx(stack, 0)),
				   "_start") == 0 ||
			    strcmp(frame_name(frames, json_object_array_get_idx(stack, 0)),
				   "__clone3") == 0);
		sum += json_object_get_double(json_object_array_get_idx(weights, i));
	}
	return sum;
}

static json_object *profile_named(json_object *profiles, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(profiles); i++) {
		json_object *p = json_object_array_get_idx(profiles, i);

		if (strcmp(json_object_get_string(get(p, "name")), name) == 0)
			return p;
	}
	fail_msg("no profile '%s'", name);
	return NULL;
}

/* A thread's burn_alpha stack: __clone3 → ... → burn_alpha, 0.6 s. */
static void check_alpha(json_object *worker, json_object *frames)
{
	json_object *samples = get(worker, "samples");
	bool found = false;

	for (size_t i = 0; i < json_object_array_length(samples); i++) {
		json_object *stack = json_object_array_get_idx(samples, i);
		size_t n = json_object_array_length(stack);

		if (strcmp(frame_name(frames, json_object_array_get_idx(stack, n - 1)),
			   "burn_alpha") != 0)
			continue;
		assert_false(found);
		found = true;
		assert_int_equal(n, 4);
		assert_true(fabs(json_object_get_double(json_object_array_get_idx(
			get(worker, "weights"), i)) - 0.6) < 1e-9);
	}
	assert_true(found);
}

static void test_speedscope(void **state)
{
	json_object *doc, *frames, *profiles;
	struct run r;

	(void)state;
	perch_ok(&r, "export", "1", "--format", "speedscope", NULL);
	doc = parse_json(r.out);
	assert_string_equal(json_object_get_string(get(doc, "$schema")),
			    "https://www.speedscope.app/file-format-schema.json");
	assert_true(json_object_is_type(get(doc, "name"), json_type_string));
	assert_int_equal(json_object_get_int(get(doc, "activeProfileIndex")), 0);
	assert_int_equal(strncmp(json_object_get_string(get(doc, "exporter")), "perch ", 6), 0);
	frames = get(get(doc, "shared"), "frames");
	/* One frame per function: work_loop's two lines make one. */
	assert_int_equal(json_object_array_length(frames), 11);
	profiles = get(doc, "profiles");
	assert_int_equal(json_object_array_length(profiles), 2);
	assert_true(fabs(check_sampled(profile_named(profiles, "worker-1 (tid 4243)"), frames,
				       0, 1) - 0.8) < 1e-9);
	assert_true(fabs(check_sampled(profile_named(profiles, "app (tid 4242)"), frames,
				       0, 1) - 0.2) < 1e-9);
	check_alpha(profile_named(profiles, "worker-1 (tid 4243)"), frames);
	json_object_put(doc);
	run_free(&r);

	/* The window is each profile's start and end. */
	perch_ok(&r, "export", "1", "--format", "speedscope", "--from", "0.6s", NULL);
	doc = parse_json(r.out);
	profiles = get(doc, "profiles");
	frames = get(get(doc, "shared"), "frames");
	assert_true(fabs(check_sampled(profile_named(profiles, "worker-1 (tid 4243)"), frames,
				       0.6, 1) - 0.2) < 1e-9);
	json_object_put(doc);
	run_free(&r);

	perch_ok(&r, "export", "1", "--format", "speedscope", "--thread", "4242", NULL);
	doc = parse_json(r.out);
	profiles = get(doc, "profiles");
	assert_int_equal(json_object_array_length(profiles), 1);
	assert_true(fabs(check_sampled(profile_named(profiles, "thread 4242"),
				       get(get(doc, "shared"), "frames"), 0, 1) - 0.2) < 1e-9);
	json_object_put(doc);
	run_free(&r);
}

/* ---- pprof ------------------------------------------------------------------ */

static bool have_go(void)
{
	const char *argv[] = { "go", "version", NULL };
	struct run r;
	bool yes;

	run_argv(&r, argv, -1);
	yes = r.status == 0;
	run_free(&r);
	return yes;
}

static void skip_without_go(void)
{
	if (!have_go()) {
		print_message("skipped: no 'go' (Debian's golang-go) to read pprof files\n");
		skip();
	}
}

/* go tool pprof ARG FILE; its output (caller frees). */
static char *go_pprof(const char *arg, const char *file)
{
	const char *argv[] = { "go", "tool", "pprof", arg, file, NULL };
	struct run r;

	run_argv(&r, argv, -1);
	if (r.status != 0)
		fail_msg("go tool pprof %s %s: exit %d: %s", arg, file, r.status, r.err);
	free(r.err);
	return r.out;
}

/* The first row of pprof -top: function and flat%. */
static void pprof_top(const char *file, char *func, size_t size, double *percent)
{
	char *out = go_pprof("-top", file), *row = strstr(out, "flat%");
	char flat[32], name[256];

	if (row == NULL || (row = strchr(row, '\n')) == NULL ||
	    sscanf(row + 1, "%31s %lf%%%*s %*s %*s %255[^\n]", flat, percent, name) != 3)
		fail_msg("cannot read pprof -top:\n%s", out);
	snprintf(func, size, "%s", name);
	free(out);
}

/* The first row of perch flat --json. */
static void flat_top(const char *session, bool cpu, char *func, size_t size, double *percent)
{
	json_object *rows, *top;
	struct run r;

	if (cpu)
		perch_ok(&r, "flat", session, "--json", "--cpu", NULL);
	else
		perch_ok(&r, "flat", session, "--json", NULL);
	rows = parse_json(r.out);
	assert_true(json_object_array_length(rows) > 0);
	top = json_object_array_get_idx(rows, 0);
	snprintf(func, size, "%s", json_object_get_string(get(top, "func")));
	*percent = json_object_get_double(get(top, "percent"));
	json_object_put(rows);
	run_free(&r);
}

static void assert_same_top(const char *session, bool cpu, const char *file)
{
	char pfunc[256], ffunc[256];
	double ppct, fpct;

	pprof_top(file, pfunc, sizeof pfunc, &ppct);
	flat_top(session, cpu, ffunc, sizeof ffunc, &fpct);
	print_message("top: pprof %s %.2f %%, perch flat %s %.2f %%\n", pfunc, ppct, ffunc, fpct);
	/* pprof marks a function it saw only inlined. */
	if (strncmp(pfunc, ffunc, strlen(ffunc)) != 0 ||
	    (pfunc[strlen(ffunc)] != '\0' && strcmp(pfunc + strlen(ffunc), " (inline)") != 0))
		fail_msg("pprof's top function is '%s', perch's '%s'", pfunc, ffunc);
	if (fabs(ppct - fpct) > 2)
		fail_msg("pprof gives %s %.2f %%, perch %.2f %%", ffunc, ppct, fpct);
}

/* A location of pprof -raw whose first line is inner and second outer. */
static bool raw_has_inline(const char *raw, const char *inner, const char *outer)
{
	const char *locs = strstr(raw, "\nLocations\n");

	for (const char *l = locs; l != NULL && (l = strchr(l + 1, '\n')) != NULL;) {
		const char *next = strchr(l + 1, '\n');
		char first[256] = "", second[256] = "";

		if (next == NULL)
			break;
		/* "     7: 0x1500 M=1 mix_inlined app.c:21 s=0" then "             outer_hot ..." */
		if (sscanf(l + 1, "%*d: %*s %*s %255s", first) == 1 && strcmp(first, inner) == 0 &&
		    sscanf(next + 1, "%255s", second) == 1 && strcmp(second, outer) == 0 &&
		    strchr(second, ':') == NULL)
			return true;
	}
	return false;
}

/* The values of pprof -raw's samples: counts and nanoseconds. */
static void raw_totals(const char *raw, long long *count, long long *ns)
{
	const char *s = strstr(raw, "\nSamples:\n");
	long long c, t;

	*count = *ns = 0;
	assert_non_null(s);
	s = strchr(s + 10, '\n');
	while (s != NULL && sscanf(s + 1, "%lld %lld:", &c, &t) == 2) {
		*count += c;
		*ns += t;
		s = strchr(s + 1, '\n');
	}
}

static void test_pprof(void **state)
{
	char file[128], *raw;
	long long count, ns;
	struct run r;

	(void)state;
	skip_without_go();
	snprintf(file, sizeof file, "%s/fixture.pb.gz", fx.dir);
	perch_ok(&r, "export", "1", "--format", "pprof", "-o", file, NULL);
	run_free(&r);
	assert_same_top("1", false, file);
	raw = go_pprof("-raw", file);
	assert_true(raw_has_inline(raw, "mix_inlined", "outer_hot"));
	assert_non_null(strstr(raw, "samples/count wall/nanoseconds[dflt]"));
	assert_non_null(strstr(raw, "PeriodType: wall nanoseconds\nPeriod: 10000000\n"));
	/* The main binary is the first mapping, with its build id. */
	assert_non_null(strstr(raw, "\n1: 0x0/0x1601/0x0 " APP " " APP_BUILD_ID " "));
	raw_totals(raw, &count, &ns);
	assert_int_equal(count, 100);
	assert_int_equal(ns, 1000000000);
	free(raw);

	perch_ok(&r, "export", "1", "--format", "pprof", "--cpu", "--from", "0.6s", "-o", file,
		 NULL);
	run_free(&r);
	raw = go_pprof("-raw", file);
	assert_non_null(strstr(raw, "samples/count cpu/nanoseconds[dflt]"));
	/* 400 ms; the pprof in Debian 12's go prints it as "400m". */
	assert_non_null(strstr(raw, "Duration: 400m"));
	raw_totals(raw, &count, &ns);
	assert_int_equal(count, 35);
	free(raw);
}

/* ---- the output: files, terminals, errors ----------------------------------------- */

static size_t files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* pprof's binary output is refused on a terminal. */
static void test_pprof_terminal(void **state)
{
	const char *argv[] = { PERCH, "export", "1", "--format", "pprof", NULL };
	int master = posix_openpt(O_RDWR | O_NOCTTY), tty;
	struct run r;

	(void)state;
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	tty = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(tty >= 0);
	run_argv(&r, argv, tty);
	close(tty);
	close(master);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "-o FILE needed"));
	run_free(&r);
}

static void test_output_file(void **state)
{
	char dir[128], file[192], missing[192];
	struct stat sb;
	struct run r;
	char *text, *again;

	(void)state;
	snprintf(dir, sizeof dir, "%s/out", fx.dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(file, sizeof file, "%s/session.json", dir);
	perch_ok(&r, "export", "1", "--format", "json", "-o", file, NULL);
	assert_string_equal(r.out, "");
	run_free(&r);
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	text = slurp(file);
	json_object_put(parse_json(text));

	/* A failed export leaves the old file as it was, and nothing beside it. */
	perch_fails(1, "no thread 'nosuch'", "export", "1", "--format", "json", "--thread",
		    "nosuch", "-o", file, NULL);
	perch_fails(1, "no session 7", "export", "7", "--format", "json", "-o", file, NULL);
	again = slurp(file);
	assert_string_equal(again, text);
	assert_int_equal(files_in(dir), 1);
	free(again);
	free(text);

	snprintf(missing, sizeof missing, "%s/none/x.json", dir);
	perch_fails(1, "cannot write", "export", "1", "--format", "json", "-o", missing, NULL);
	perch_fails(2, "--format is needed", "export", "1", NULL);
	perch_fails(2, "invalid --format 'svg'", "export", "1", "--format", "svg", NULL);
	perch_fails(2, "--from is after --to", "export", "1", "--format", "json", "--from", "2s",
		    "--to", "1s", NULL);
	perch_fails(2, "usage: perch export", "export", "--format", "json", NULL);
}

/* A write that fails half-way (a full file system) leaves no file behind. */
static void test_disk_full(void **state)
{
	char file[192], *text;
	int fd;

	(void)state;
	snprintf(fx.mnt, sizeof fx.mnt, "%s/mnt", fx.dir);
	assert_int_equal(mkdir(fx.mnt, 0700), 0);
	if (mount("tmpfs", fx.mnt, "tmpfs", 0, "size=4k,mode=0700") < 0) {
		print_message("skipped: cannot mount a tmpfs: %s\n", strerror(errno));
		fx.mnt[0] = '\0';
		skip();
	}
	snprintf(file, sizeof file, "%s/old.json", fx.mnt);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old\n", 4), 4);
	close(fd);
	/* The old file holds the one page: the export cannot have any. */
	perch_fails(1, "No space left", "export", "1", "--format", "json", "-o", file, NULL);
	text = slurp(file);
	assert_string_equal(text, "old\n");
	free(text);
	assert_int_equal(files_in(fx.mnt), 1);
	umount2(fx.mnt, MNT_DETACH);
	fx.mnt[0] = '\0';
}

static void test_stdout_error(void **state)
{
	const char *argv[] = { "/bin/sh", "-c", PERCH " export 1 --format folded >/dev/full",
			       NULL };
	struct run r;

	(void)state;
	run_argv(&r, argv, -1);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "No space left"));
	run_free(&r);
}

static void test_html(void **state)
{
	char file[128], *text;
	struct run r;

	(void)state;
	snprintf(file, sizeof file, "%s/report.html", fx.dir);
	perch_ok(&r, "export", "1", "--format", "html", "-o", file, NULL);
	run_free(&r);
	text = slurp(file);
	assert_non_null(strstr(text, "<html"));
	assert_non_null(strstr(text, "burn_alpha"));
	free(text);
}

/* ---- a real session: perchd records burner and inline_target ---------------------- */

static void daemon_start(void)
{
	char sock[128];
	pid_t pid;

	snprintf(sock, sizeof sock, "%s/perch.sock", fx.dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char log[128];
		int fd;

		snprintf(log, sizeof log, "%s/perchd.log", fx.dir);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(PERCHD, PERCHD, "--foreground", "--socket", sock, "--db", fx.db, NULL);
		_exit(127);
	}
	fx.daemon = pid;
	setenv("PERCH_SOCKET", sock, 1);
}

static void daemon_stop(void)
{
	if (fx.daemon > 0) {
		kill(fx.daemon, SIGTERM);
		waitpid(fx.daemon, NULL, 0);
		fx.daemon = 0;
	}
}

/* Records pid for secs; the new session's id as text into id. */
static void record(pid_t pid, const char *secs, char *id, size_t size)
{
	const char *argv[] = { PERCH, "record", "-p", NULL, "-d", secs, "--json",
			       "--no-autostart", NULL };
	char pidstr[16];
	json_object *o;
	struct run r;

	snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
	argv[3] = pidstr;
	/* The daemon may not listen yet. */
	for (int i = 0; i < 100; i++) {
		run_argv(&r, argv, -1);
		if (r.status == 0 || strstr(r.err, "cannot reach the daemon") == NULL)
			break;
		run_free(&r);
		usleep(50000);
	}
	if (r.status != 0)
		fail_msg("perch record: exit %d: %s", r.status, r.err);
	o = parse_json(r.out);
	snprintf(id, size, "%" PRId64, json_object_get_int64(get(o, "session")));
	json_object_put(o);
	run_free(&r);
}

static void test_real_sessions(void **state)
{
	char file[128], burner_id[24], inline_id[24], *raw;
	struct child burner, inl;
	struct run r;

	(void)state;
	skip_without_go();
	daemon_start();
	if (spawn_target(&burner, "burner", NULL) < 0 || spawn_target(&inl, "inline_target", NULL) < 0)
		fail_msg("cannot start the targets");
	record(burner.pid, "2", burner_id, sizeof burner_id);
	record(inl.pid, "1", inline_id, sizeof inline_id);
	assert_int_equal(child_quit(&burner), 0);
	assert_int_equal(child_quit(&inl), 0);
	daemon_stop();

	snprintf(file, sizeof file, "%s/burner.pb.gz", fx.dir);
	perch_ok(&r, "export", burner_id, "--format", "pprof", "--cpu", "-o", file, NULL);
	run_free(&r);
	assert_same_top(burner_id, true, file);

	snprintf(file, sizeof file, "%s/inline.pb.gz", fx.dir);
	perch_ok(&r, "export", inline_id, "--format", "pprof", "-o", file, NULL);
	run_free(&r);
	raw = go_pprof("-raw", file);
	if (!raw_has_inline(raw, "mix_inlined", "outer_hot"))
		fail_msg("no location with mix_inlined inlined into outer_hot:\n%s", raw);
	free(raw);
}

static int teardown(void **state)
{
	(void)state;
	daemon_stop();
	spawn_kill_all();
	if (fx.mnt[0] != '\0')
		umount2(fx.mnt, MNT_DETACH);
	fx.mnt[0] = '\0';
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protobuf_examples),
		cmocka_unit_test(test_protobuf_edges),
		cmocka_unit_test(test_folded),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_speedscope),
		cmocka_unit_test(test_pprof),
		cmocka_unit_test(test_pprof_terminal),
		cmocka_unit_test_teardown(test_output_file, teardown),
		cmocka_unit_test_teardown(test_disk_full, teardown),
		cmocka_unit_test(test_stdout_error),
		cmocka_unit_test(test_html),
		cmocka_unit_test_teardown(test_real_sessions, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
