/*
 * perch export: a session in a format other tools read (export.h).  Reads
 * the database only.  With -o, the output goes to a temporary file next to
 * FILE, renamed over it once complete: a failure never leaves half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "export.h"
#include "report_opts.h"
#include "xalloc.h"

enum format { FORMAT_HTML, FORMAT_JSON, FORMAT_FOLDED, FORMAT_SPEEDSCOPE, FORMAT_PPROF };

static const char *const formats[] = { "html", "json", "folded", "speedscope", "pprof" };

struct export_args {
	const char *session;
	const char *paths;	/* html: the user's code, or NULL */
	const char *output;	/* NULL: stdout */
	int format;		/* enum format, -1 before --format */
	struct profile_filter filter;
};

enum { OPT_FORMAT = REPORT_OPT_NEXT, OPT_PATHS };

static const struct option longopts[] = {
	REPORT_OPTS_LONGOPTS,
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "paths", required_argument, NULL, OPT_PATHS },
	{ "output", required_argument, NULL, 'o' },
	{ NULL, 0, NULL, 0 },
};

static int parse_format(struct export_args *a, const char *v)
{
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		if (strcmp(v, formats[i]) == 0) {
			a->format = (int)i;
			return 0;
		}
	}
	client_error("invalid --format '%s' (html, json, folded, speedscope or pprof)", v);
	return 2;
}

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, struct export_args *a)
{
	int c, rc;

	report_opts_init(&a->filter);
	a->format = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		if (c == '?')
			return client_usage("export");
		if ((rc = report_opts_parse(&a->filter, c, optarg)) > 0)
			return rc;
		if (rc == 0)
			continue;
		if (c == 'o')
			a->output = strcmp(optarg, "-") == 0 ? NULL : optarg;
		else if (c == OPT_PATHS)
			a->paths = optarg;
		else if ((rc = parse_format(a, optarg)) != 0)
			return rc;
	}
	if ((rc = report_opts_check(&a->filter)) != 0)
		return rc;
	if (optind < argc)
		a->session = argv[optind++];
	if (a->session == NULL || optind != argc)
		return client_usage("export");
	if (a->format < 0) {
		client_error("--format is needed: html, json, folded, speedscope or pprof");
		return 2;
	}
	return -1;
}

/* ---- the output file ------------------------------------------------------ */

struct output {
	const char *path;	/* NULL: stdout */
	char *tmp;		/* the file written, renamed to path at the end */
	FILE *f;
};

static int output_open(struct output *o, const char *path)
{
	mode_t mask;
	int fd;

	o->path = path;
	if (path == NULL) {
		o->f = stdout;
		return 0;
	}
	o->tmp = xasprintf("%s.XXXXXX", path);
	fd = mkostemp(o->tmp, O_CLOEXEC);
	if (fd < 0) {
		client_error("cannot write %s: %s", path, strerror(errno));
		free(o->tmp);
		o->tmp = NULL;
		return 1;
	}
	/* mkstemp makes it private; an export gets the usual mode. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) < 0 || (o->f = fdopen(fd, "w")) == NULL) {
		client_error("cannot write %s: %s", o->tmp, strerror(errno));
		close(fd);
		unlink(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
		return 1;
	}
	return 0;
}

/* Flushes everything to the disk, then puts the file in place. */
static int commit(struct output *o)
{
	int err = 0;

	errno = 0;
	if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) < 0)
		err = errno ? errno : EIO;
	if (fclose(o->f) != 0 && err == 0)
		err = errno;
	o->f = NULL;
	if (err == 0 && rename(o->tmp, o->path) < 0)
		err = errno;
	if (err != 0)
		client_error("cannot write %s: %s", o->path, strerror(err));
	return err ? 1 : 0;
}

/*
 * Ends the output: in place if the export succeeded (ok), else removed.
 * Returns the exit status.
 */
static int output_close(struct output *o, bool ok)
{
	int rc = ok ? 0 : 1;

	if (o->path == NULL) {
		if (fflush(stdout) != 0 || ferror(stdout)) {
			client_error("cannot write the output: %s", strerror(errno));
			rc = 1;
		}
		return rc;
	}
	if (ok) {
		rc = commit(o);
	} else {
		fclose(o->f);
		o->f = NULL;
	}
	if (rc != 0)
		unlink(o->tmp);
	free(o->tmp);
	return rc;
}

/* ---- speedscope: one profile per thread ------------------------------------ */

struct threads {
	struct export_thread *v;
	char **names;
	struct profile **loaded;	/* v[i].p when not the caller's profile */
	size_t n;
};

static bool tid_seen(const struct profile *p, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (p->threads[k].tid == p->threads[i].tid)
			return true;
	return false;
}

static void add_thread(struct threads *t, char *name, struct profile *p, bool loaded)
{
	t->v[t->n] = (struct export_thread){ name, p };
	t->names[t->n] = name;
	t->loaded[t->n] = loaded ? p : NULL;
	t->n++;
}

/*
 * Each thread's samples under the filter (a profile loaded per thread:
 * struct profile adds the threads up), or only the one the filter names.
 */
static int load_threads(const struct export_args *a, sqlite3 *db, struct profile *p,
			struct threads *t, char **cause)
{
	size_t cap = p->nthreads + 1;

	t->v = xcalloc(cap, sizeof *t->v);
	t->names = xcalloc(cap, sizeof *t->names);
	t->loaded = xcalloc(cap, sizeof *t->loaded);
	for (size_t i = 0; a->filter.thread == NULL && i < p->nthreads; i++) {
		const struct pthread_info *th = &p->threads[i];
		struct profile_filter f = a->filter;
		struct profile *tp;
		char tid[24];
		int rc;

		if (tid_seen(p, i))
			continue;
		snprintf(tid, sizeof tid, "%d", th->tid);
		f.thread = tid;
		if ((rc = profile_load(db, p->id, &f, &tp, cause)) < 0)
			return rc;
		if (tp->total == 0)
			profile_free(tp);
		else
			add_thread(t, xasprintf("%s (tid %d)", th->name ? th->name : "?", th->tid),
				   tp, true);
	}
	if (t->n == 0)
		add_thread(t, a->filter.thread ? xasprintf("thread %s", a->filter.thread) :
			   xstrdup("all threads"), p, false);
	return 0;
}

static void free_threads(struct threads *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->names[i]);
		profile_free(t->loaded[i]);
	}
	free(t->v);
	free(t->names);
	free(t->loaded);
}

static int speedscope(const struct export_args *a, sqlite3 *db, struct profile *p,
		      FILE *out, char **cause)
{
	struct threads t = { 0 };
	int rc = load_threads(a, db, p, &t, cause);

	if (rc == 0)
		rc = export_speedscope(out, p, &a->filter, t.v, t.n, cause);
	free_threads(&t);
	return rc;
}

/* ---- pprof: the modules' build ids ------------------------------------------ */

static int load_modules(sqlite3 *db, int64_t session, struct export_module **out,
			size_t *n, char **cause)
{
	sqlite3_stmt *st;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT path, build_id FROM modules WHERE session_id = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		*cause = xasprintf("cannot read the database: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, session);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		const char *build_id = (const char *)sqlite3_column_text(st, 1);

		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			*out = xreallocarray(*out, cap, sizeof **out);
		}
		(*out)[(*n)++] = (struct export_module){ xstrdup(path ? path : ""),
							 xstrdup(build_id ? build_id : "") };
	}
	sqlite3_finalize(st);
	return 0;
}

static int pprof(const struct export_args *a, sqlite3 *db, struct profile *p, FILE *out,
		 char **cause)
{
	struct export_pprof_opts o = { .filter = &a->filter };
	struct export_module *modules;
	int rc = load_modules(db, p->id, &modules, &o.nmodules, cause);

	o.modules = modules;
	if (rc == 0)
		rc = export_pprof(out, p, &o, cause);
	for (size_t i = 0; i < o.nmodules; i++) {
		free((char *)modules[i].path);
		free((char *)modules[i].build_id);
	}
	free(modules);
	return rc;
}

/* ---- the command ------------------------------------------------------------ */

static int write_export(const struct export_args *a, sqlite3 *db, struct profile *p,
			FILE *out, char **cause)
{
	switch (a->format) {
	case FORMAT_HTML:
		profile_mark_libraries(p, a->paths);
		return export_html(out, p, cause);
	case FORMAT_JSON: return export_json(out, p, a->filter.cpu_only, cause);
	case FORMAT_FOLDED: return export_folded(out, p, cause);
	case FORMAT_SPEEDSCOPE: return speedscope(a, db, p, out, cause);
	default: return pprof(a, db, p, out, cause);
	}
}

int cmd_export(int argc, char **argv)
{
	struct export_args a = { 0 };
	struct output o = { 0 };
	struct profile *p = NULL;
	sqlite3 *db = NULL;
	char *cause = NULL;
	int rc = parse(argc, argv, &a);
	bool ok;

	if (rc >= 0)
		return rc;
	if (a.format == FORMAT_PPROF && a.output == NULL && isatty(STDOUT_FILENO)) {
		client_error("pprof's format is binary: -o FILE needed");
		return 2;
	}
	/* The session first: when it cannot be read, no file is touched. */
	if ((rc = report_opts_load(a.session, &a.filter, &db, &p)) == 0 &&
	    (rc = output_open(&o, a.output)) == 0) {
		if (p->total == 0)
			client_error("warning: no samples match; the export has none");
		ok = write_export(&a, db, p, o.f, &cause) == 0;
		if (!ok)
			client_error("%s", cause ? cause : "export failed");
		rc = output_close(&o, ok);
	}
	free(cause);
	profile_free(p);
	sqlite3_close(db);
	return rc;
}
