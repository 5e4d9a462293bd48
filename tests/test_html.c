/*
 * The HTML report (client/export_html.c): a session of known stacks is
 * written with the real store, loaded and exported, and the page is checked
 * twice — as text (self-contained, data escaped) and in headless Chromium,
 * where the page's own #selftest expands the call tree, unfolds a group of
 * library frames, zooms the flame graph and sorts the table, then reports
 * into the DOM that --dump-dom gives back.  Screenshots of the page land in
 * the build directory (tests/artifacts/).  Without Chromium (Debian's
 * `chromium`, or PERCH_CHROMIUM) the browser checks are skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "export_html.h"
#include "intern.h"
#include "profile.h"
#include "store.h"
#include "xalloc.h"

#define ARTIFACTS PERCH_BIN_DIR "/tests/artifacts"
#define T0 1768471200000000000ull	/* 2026-01-15 10:00:00 UTC */
#define TICK_NS 10101010ull		/* 99 Hz */
#define APP "/srv/burner/burner"
#define SRC "/srv/burner/burner.c"
#define LIBC "/usr/lib/x86_64-linux-gnu/libc.so.6"
/* Text that would end the data's script element if it were not escaped. */
#define HOSTILE "</script><script>document.title='pwned'</script><!--"

struct world {
	char dir[64];
	char db[128];
	int64_t ids[2];		/* a session, and one without samples */
	char html[2][192];	/* their reports */
};

/* ---- a session of known stacks ------------------------------------------- */

struct fr {
	const char *func, *module, *file;
	int line;
	bool inlined;
};

static const struct fr f_clone3 = { "clone3", LIBC, NULL, 0, false };
static const struct fr f_start_thread = { "start_thread", LIBC, NULL, 0, false };
static const struct fr f_worker_main = { "worker_main", APP, SRC, 94, false };
static const struct fr f_work_loop = { "work_loop", APP, SRC, 79, false };
static const struct fr f_burn_alpha = { "burn_alpha", APP, SRC, 57, false };
static const struct fr f_burn_beta = { "burn_beta", APP, SRC, 66, false };
static const struct fr f_mix64 = { "mix64<uint64_t>", APP, SRC, 40, true };
static const struct fr f_qsort = { "qsort", LIBC, NULL, 0, false };
static const struct fr f_msort = { "msort_with_tmp", LIBC, NULL, 0, false };
static const struct fr f_compare_units = { "compare_units", APP, SRC, 20, false };
static const struct fr f_start = { "_start", APP, NULL, 0, false };
static const struct fr f_libc_start = { "__libc_start_main", LIBC, NULL, 0, false };
static const struct fr f_call_main = { "__libc_start_call_main", LIBC, NULL, 0, false };
static const struct fr f_main = { "main", APP, SRC, 170, false };
static const struct fr f_wait_quit = { "wait_for_quit", APP, SRC, 108, false };
static const struct fr f_fgets = { "fgets", LIBC, NULL, 0, false };
static const struct fr f_underflow = { "_IO_file_underflow", LIBC, NULL, 0, false };
static const struct fr f_read = { "read", LIBC, NULL, 0, false };

/* A stack, outermost frame first; NULL ends it. */
struct stack {
	const struct fr *frames[10];
	uint32_t thread;
	char state;
	int samples;
};

/*
 * Two workers burn CPU, mostly in burn_alpha, sometimes through a run of
 * libc frames (qsort calling back); the main thread waits in read().
 */
static const struct stack stacks[] = {
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_alpha }, 1, 'R', 60 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_alpha }, 2, 'R', 55 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_beta }, 1, 'R', 25 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_beta }, 2, 'R', 30 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_qsort, &f_msort, &f_msort,
	    &f_compare_units }, 1, 'R', 10 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_qsort, &f_msort, &f_msort,
	    &f_compare_units }, 2, 'R', 12 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_alpha, &f_mix64 }, 1, 'R', 5 },
	{ { &f_clone3, &f_start_thread, &f_worker_main, &f_work_loop, &f_burn_alpha, &f_mix64 }, 2, 'R', 3 },
	{ { &f_start, &f_libc_start, &f_call_main, &f_main, &f_wait_quit, &f_fgets, &f_underflow, &f_read },
	  0, 'S', 100 },
};

#define TICKS 100

static uint32_t intern(struct interner *in, const struct stack *s, struct store_batch *b)
{
	struct perch_frame pf[10];
	size_t n = 0;

	while (n < 10 && s->frames[n] != NULL)
		n++;
	/* The interner takes the leaf first. */
	for (size_t i = 0; i < n; i++) {
		const struct fr *f = s->frames[n - 1 - i];
		uint64_t addr = 0x1000 + (uint64_t)f->line * 0x40 + strlen(f->func);

		pf[i] = (struct perch_frame){
			.addr = addr, .module = f->module, .build_id = "", .module_offset = addr,
			.func = f->func, .file = f->file, .line = f->line, .inlined = f->inlined,
		};
	}
	return interner_stack(in, pf, n, &b->defs);
}

static int64_t record(struct store *st, const char *name, bool with_samples)
{
	struct store_session_info info = {
		.name = name, .pid = 4242, .exe = APP,
		.cmdline = APP " --threads 2 --name " HOSTILE, .owner_uid = 0,
		.requested_by = 0, .schedule_id = -1, .started_ns = T0, .duration_s = 1,
		.rate_hz = 99, .mode = "wall", .max_stops = 2,
	};
	static const char *const names[] = { "burner", "burner-0", "burner-1" };
	struct interner *in = interner_create();
	struct store_batch *b;
	char *cause = NULL;
	int64_t id;

	assert_int_equal(store_session_begin(st, &info, &id, &cause), 0);
	b = store_batch_new(id);
	for (uint32_t t = 0; t < 3; t++) {
		struct store_thread th = { .id = t, .pid = 4242, .tid = 4242 + (pid_t)t };

		snprintf(th.name, sizeof th.name, "%s", names[t]);
		store_batch_add_thread(b, &th);
	}
	for (size_t i = 0; with_samples && i < sizeof stacks / sizeof stacks[0]; i++) {
		uint32_t id_ = intern(in, &stacks[i], b);

		for (int k = 0; k < stacks[i].samples; k++) {
			struct store_sample s = {
				.thread_id = stacks[i].thread, .stack_id = id_,
				.time_ns = T0 + (uint64_t)k * TICK_NS, .state = stacks[i].state,
			};

			store_batch_add_sample(b, &s);
		}
	}
	b->ticks = with_samples ? TICKS : 0;
	b->thread_samples = with_samples ? 3 * TICKS : 0;
	b->late_ticks = with_samples ? 2 : 0;
	b->kernel_samples = with_samples ? 196 : 0;
	b->stopped_samples = with_samples ? 2 : 0;
	store_append(st, b);
	assert_int_equal(store_session_end(st, id, "complete", NULL, T0 + TICKS * TICK_NS,
					   with_samples ? 2020000000 : 0), 0);
	interner_free(in);
	return id;
}

static void export_session(const char *db_path, int64_t id, const char *out_path)
{
	struct profile_filter f = { .from_s = -1, .to_s = -1 };
	struct profile *p = NULL;
	char *cause = NULL;
	sqlite3 *db = NULL;
	FILE *out;

	assert_int_equal(db_open(db_path, DB_READ_ONLY, &db, &cause), 0);
	assert_int_equal(profile_load(db, id, &f, &p, &cause), 0);
	profile_mark_libraries(p, NULL);
	out = fopen(out_path, "w");
	assert_non_null(out);
	assert_int_equal(export_html(out, p, &cause), 0);
	assert_int_equal(fclose(out), 0);
	profile_free(p);
	sqlite3_close(db);
}

static int setup(void **state)
{
	struct world *w = xcalloc(1, sizeof *w);
	struct store *st = NULL;
	char *cause = NULL;

	strcpy(w->dir, "/tmp/perch-html-XXXXXX");
	if (mkdtemp(w->dir) == NULL)
		return -1;
	snprintf(w->db, sizeof w->db, "%s/perch.db", w->dir);
	if (mkdir(ARTIFACTS, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(w->html[0], sizeof w->html[0], "%s/report.html", ARTIFACTS);
	snprintf(w->html[1], sizeof w->html[1], "%s/report-empty.html", ARTIFACTS);
	*state = w;
	if (store_open(w->db, &st, &cause) < 0) {
		fprintf(stderr, "store_open: %s\n", cause);
		return -1;
	}
	w->ids[0] = record(st, "burner <2 workers> & co", true);
	w->ids[1] = record(st, NULL, false);
	store_close(st);
	export_session(w->db, w->ids[0], w->html[0]);
	export_session(w->db, w->ids[1], w->html[1]);
	return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct world *w = *state;

	nftw(w->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(w);
	return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* The text between start and end in s (caller frees), or NULL. */
static char *between(const char *s, const char *start, const char *end)
{
	const char *a = strstr(s, start), *b;

	if (a == NULL)
		return NULL;
	a += strlen(start);
	b = strstr(a, end);
	return b ? xstrndup(a, (size_t)(b - a)) : NULL;
}

/* The browser: PERCH_CHROMIUM, else chromium on PATH; NULL when absent. */
static char *find_chromium(void)
{
	const char *env = getenv("PERCH_CHROMIUM"), *path = getenv("PATH");

	if (env != NULL && *env != '\0')
		return access(env, X_OK) == 0 ? xstrdup(env) : NULL;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p != '\0';) {
		size_t len = strcspn(p, ":");
		char *c = xasprintf("%.*s/chromium", (int)len, p);

		if (len > 0 && access(c, X_OK) == 0)
			return c;
		free(c);
		p += len + (p[len] == ':');
	}
	return NULL;
}

/*
 * Runs headless Chromium on url with the extra flags, its stdout into
 * out_path (may be NULL), in a process group of its own so that its helper
 * processes go with it.  Returns its exit status, or -1 after 120 s.
 */
static int chromium(const char *bin, const char *profile_dir, const char *const *extra,
		    const char *url, const char *out_path)
{
	const char *argv[32];
	char *user_dir = xasprintf("--user-data-dir=%s", profile_dir);
	int n = 0, status = -1;
	pid_t pid;

	argv[n++] = bin;
	/* As root and without a network: the flags that work here (see setup.sh). */
	argv[n++] = "--headless";
	argv[n++] = "--no-sandbox";
	argv[n++] = "--disable-gpu";
	argv[n++] = "--disable-quic";
	argv[n++] = "--no-first-run";
	argv[n++] = "--disable-background-networking";
	argv[n++] = "--disable-component-update";
	argv[n++] = "--disable-sync";
	argv[n++] = "--hide-scrollbars";
	argv[n++] = "--force-device-scale-factor=1";
	argv[n++] = "--virtual-time-budget=5000";
	argv[n++] = user_dir;
	while (*extra != NULL)
		argv[n++] = *extra++;
	argv[n++] = url;
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(ARTIFACTS "/chromium.log", O_WRONLY | O_CREAT | O_APPEND, 0644);

		setpgid(0, 0);
		dup2(out, 1);
		dup2(err, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	setpgid(pid, pid);
	for (int waited = 0; waited < 120000; waited += 50) {
		struct timespec ts = { 0, 50000000 };
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		nanosleep(&ts, NULL);
	}
	/* Whatever of ours is left (helpers, or all of it after a timeout). */
	kill(-pid, SIGKILL);
	if (status < 0)
		waitpid(pid, NULL, 0);
	free(user_dir);
	return status;
}

/* Loads page#selftest and checks the report the page wrote; returns the DOM. */
static char *run_selftest(const struct world *w, const char *bin, const char *page)
{
	static const char *const dump[] = { "--dump-dom", NULL };
	char *url = xasprintf("file://%s#selftest", page);
	char *out = xasprintf("%s/dom.html", w->dir);
	char *prof = xasprintf("%s/chromium", w->dir);
	char *dom, *log;

	assert_int_equal(chromium(bin, prof, dump, url, out), 0);
	dom = slurp(out);
	log = between(dom, "<pre id=\"selftest\"", "</pre>");
	assert_non_null(log);
	printf("selftest of %s:\n%s\n", page, strchr(log, '>') ? strchr(log, '>') + 1 : log);
	assert_non_null(strstr(log, "data-result=\"pass\">"));
	free(log);
	free(prof);
	free(out);
	free(url);
	return dom;
}

static void screenshot(const struct world *w, const char *bin, const char *page,
		       const char *png, bool dark)
{
	char *shot = xasprintf("--screenshot=%s", png);
	const char *const args[] = { shot, "--window-size=1280,1640",
				     dark ? "--force-dark-mode" : NULL, NULL };
	char *url = xasprintf("file://%s", page);
	char *prof = xasprintf("%s/chromium", w->dir);
	struct stat sb;

	unlink(png);
	assert_int_equal(chromium(bin, prof, args, url, NULL), 0);
	assert_int_equal(stat(png, &sb), 0);
	assert_true(sb.st_size > 10000);
	printf("screenshot: %s\n", png);
	free(prof);
	free(url);
	free(shot);
}

/* ---- the tests ---------------------------------------------------------------- */

/* The page as text: whole, nothing to load, the profile's text escaped. */
static void test_page_text(void **state)
{
	struct world *w = *state;
	char *page = slurp(w->html[0]);
	char *json = between(page, "<script type=\"application/json\" id=\"perch-data\">",
			     "</script>");

	assert_non_null(strstr(page, "<!DOCTYPE html>"));
	assert_null(strstr(page, "{{"));
	assert_non_null(strstr(page, "</html>"));
	/* Nothing fetched: no external script, style sheet, font or image. */
	assert_null(strstr(page, "src="));
	assert_null(strstr(page, "<link"));
	assert_null(strstr(page, "url("));
	assert_null(strstr(page, "@import"));
	assert_non_null(strstr(page, "default-src 'none'"));
	/* The title is HTML-escaped, the JSON has no '<' that could end it. */
	assert_non_null(strstr(page, "<title>perch: burner &lt;2 workers&gt; &amp; co (pid 4242)"));
	assert_non_null(json);
	assert_null(strchr(json, '<'));
	assert_non_null(strstr(json, "\\u003c/script\\u003e"));
	assert_non_null(strstr(json, "\"burn_alpha\""));
	/* The whole tree, library frames included, flagged (1) for the page. */
	assert_non_null(strstr(json, "[\"msort_with_tmp\",null,0,"));
	assert_non_null(strstr(json, "\"" LIBC "\""));
	assert_non_null(strstr(json, "\"ticks\":100,"));
	assert_non_null(strstr(json, "\"sampling\":\"kernel\",\"max_stops\":2,"
			       "\"kernel_samples\":196,\"stopped_samples\":2,"));
	/* The root: 300 samples, none its own, two kids (clone3 and _start). */
	assert_non_null(strstr(json, "\"tree\":[-1,300,0,2,"));
	free(json);
	free(page);
}

/* A write that fails is reported, not ignored. */
static void test_write_error(void **state)
{
	struct world *w = *state;
	struct profile_filter f = { .from_s = -1, .to_s = -1 };
	struct profile *p = NULL;
	char *cause = NULL;
	sqlite3 *db = NULL;
	FILE *full = fopen("/dev/full", "w");

	if (full == NULL)
		skip();
	assert_int_equal(db_open(w->db, DB_READ_ONLY, &db, &cause), 0);
	assert_int_equal(profile_load(db, w->ids[0], &f, &p, &cause), 0);
	assert_int_equal(export_html(full, p, &cause), -EIO);
	assert_non_null(strstr(cause, "cannot write the HTML report"));
	free(cause);
	fclose(full);
	profile_free(p);
	sqlite3_close(db);
}

static void test_in_chromium(void **state)
{
	struct world *w = *state;
	char *bin = find_chromium(), *dom, *title;

	if (bin == NULL) {
		printf("chromium not installed (Debian: apt-get install chromium; or set "
		       "PERCH_CHROMIUM): browser checks skipped\n");
		skip();
	}
	dom = run_selftest(w, bin, w->html[0]);
	/* The rows the self test opened are in the page: the hot function... */
	assert_non_null(strstr(dom, "<span class=\"fn\">burn_alpha</span>"));
	/* ...and the library frames of the group it unfolded. */
	assert_non_null(strstr(dom, "<span class=\"fn\">start_thread</span>"));
	assert_non_null(strstr(dom, "<span class=\"fn\">clone3</span>"));
	/* How running threads were sampled, in the header's tiles. */
	assert_non_null(strstr(dom, "196 kernel samples, 2 stops"));
	/* The command line was shown as text, not run. */
	title = between(dom, "<title>", "</title>");
	assert_non_null(title);
	assert_null(strstr(title, "pwned"));
	assert_non_null(strstr(dom, "--name &lt;/script&gt;"));
	free(title);
	free(dom);
	free(run_selftest(w, bin, w->html[1]));
	screenshot(w, bin, w->html[0], ARTIFACTS "/report.png", false);
	screenshot(w, bin, w->html[0], ARTIFACTS "/report-dark.png", true);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_text),
		cmocka_unit_test(test_write_error),
		cmocka_unit_test(test_in_chromium),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
