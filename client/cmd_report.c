/*
 * The report commands: show (call tree), flat, callers, callees, hot-paths.
 * They read the database only; no daemon is needed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "paths.h"
#include "query.h"
#include "render.h"
#include "report_opts.h"
#include "xalloc.h"

enum report {
	REPORT_SHOW,
	REPORT_FLAT,
	REPORT_CALLERS,
	REPORT_CALLEES,
	REPORT_HOT_PATHS,
};

struct report_args {
	enum report kind;
	const char *session, *func, *paths;
	struct profile_filter filter;
	bool json, show_all, by_line;
	size_t limit, depth;
	double min_percent;
};

/* Options every report takes, then those of some. */
enum {
	OPT_JSON = REPORT_OPT_NEXT,
	OPT_PATHS, OPT_BY, OPT_DEPTH, OPT_SHOW_ALL, OPT_MIN_PERCENT,
};

static const struct option longopts[] = {
	REPORT_OPTS_LONGOPTS,
	{ "json", no_argument, NULL, OPT_JSON },
	{ "paths", required_argument, NULL, OPT_PATHS },
	{ "by", required_argument, NULL, OPT_BY },
	{ "depth", required_argument, NULL, OPT_DEPTH },
	{ "show-all", no_argument, NULL, OPT_SHOW_ALL },
	{ "min-percent", required_argument, NULL, OPT_MIN_PERCENT },
	{ NULL, 0, NULL, 0 },
};

static const char *const names[] = { "show", "flat", "callers", "callees", "hot-paths" };

/* Which report may take an option (the common ones are always allowed). */
static bool allowed(enum report k, int opt)
{
	switch (opt) {
	case OPT_PATHS: return k == REPORT_SHOW || k == REPORT_FLAT || k == REPORT_HOT_PATHS;
	case OPT_BY: return k == REPORT_FLAT;
	case OPT_DEPTH: return k == REPORT_HOT_PATHS;
	case OPT_SHOW_ALL:
	case OPT_MIN_PERCENT: return k == REPORT_SHOW;
	case 'n': return k != REPORT_SHOW;
	default: return true;
	}
}

static int bad(const char *what, const char *value)
{
	client_error("invalid %s '%s'", what, value);
	return 2;
}

static int parse_value(struct report_args *a, int c, const char *v)
{
	char *end;
	int rc = report_opts_parse(&a->filter, c, v);

	if (rc >= 0)
		return rc;
	switch (c) {
	case OPT_JSON: a->json = true; break;
	case OPT_PATHS: a->paths = v; break;
	case OPT_BY:
		if (strcmp(v, "function") != 0 && strcmp(v, "line") != 0)
			return bad("--by (function or line)", v);
		a->by_line = strcmp(v, "line") == 0;
		break;
	case OPT_DEPTH:
		a->depth = strtoul(v, &end, 10);
		if (*end != '\0' || end == v)
			return bad("--depth", v);
		break;
	case OPT_SHOW_ALL: a->show_all = true; break;
	case OPT_MIN_PERCENT:
		a->min_percent = strtod(v, &end);
		if (*end != '\0' || end == v || !(a->min_percent >= 0 && a->min_percent <= 100))
			return bad("--min-percent (0 to 100)", v);
		break;
	case 'n':
		a->limit = strtoul(v, &end, 10);
		if (*end != '\0' || end == v)
			return bad("-n", v);
		break;
	default:
		return -1;
	}
	return 0;
}

static int parse(int argc, char **argv, struct report_args *a)
{
	int c, rc;

	report_opts_init(&a->filter);
	a->min_percent = 1;
	a->limit = a->kind == REPORT_HOT_PATHS ? 10 : 20;
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:", longopts, NULL)) != -1) {
		if (c == '?' || !allowed(a->kind, c))
			return client_usage(names[a->kind]);
		if ((rc = parse_value(a, c, optarg)) != 0)
			return rc < 0 ? client_usage(names[a->kind]) : rc;
	}
	if ((rc = report_opts_check(&a->filter)) != 0)
		return rc;
	if (optind < argc)
		a->session = argv[optind++];
	if ((a->kind == REPORT_CALLERS || a->kind == REPORT_CALLEES) && optind < argc)
		a->func = argv[optind++];
	if (a->session == NULL || optind != argc ||
	    ((a->kind == REPORT_CALLERS || a->kind == REPORT_CALLEES) && a->func == NULL))
		return client_usage(names[a->kind]);
	return -1;
}

static void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static int show(const struct report_args *a, struct profile *p, const struct render_opts *o)
{
	struct qtree *t;

	profile_mark_libraries(p, a->paths);
	t = query_tree(p, a->show_all);
	if (a->json) {
		json_object *doc = json_object_new_object();

		json_object_object_add(doc, "session", render_header_json(p, a->filter.cpu_only));
		json_object_object_add(doc, "tree", render_tree_json(p, t));
		print_json(doc);
	} else {
		render_header(stdout, p, o);
		render_tree(stdout, p, t, o);
	}
	query_tree_free(t);
	return 0;
}

static int flat(const struct report_args *a, struct profile *p, const struct render_opts *o)
{
	struct qrow *rows;
	size_t n = query_flat(p, a->paths, a->by_line, &rows);

	if (a->json) {
		print_json(render_rows_json(p, rows, n, p->total, a->limit));
	} else {
		render_header(stdout, p, o);
		render_rows(stdout, p, rows, n, p->total,
			    a->by_line ? "SELF TIME BY LINE" : "SELF TIME BY FUNCTION", o);
	}
	free(rows);
	return 0;
}

static int callers(const struct report_args *a, struct profile *p, const struct render_opts *o)
{
	bool callees = a->kind == REPORT_CALLEES;
	char *suggest = NULL, title[512];
	struct qrow *rows;
	uint64_t total = 0;
	long n = query_callers(p, a->func, callees, &rows, &total, &suggest);

	if (n < 0) {
		client_error("no function '%s' in session %" PRId64 "%s%s", a->func, p->id,
			     suggest ? "; did you mean: " : "", suggest ? suggest : "");
		free(suggest);
		return 1;
	}
	if (a->json) {
		print_json(render_rows_json(p, rows, (size_t)n, total, a->limit));
	} else {
		char time[32];

		render_header(stdout, p, o);
		render_time(time, sizeof time, p, total);
		snprintf(title, sizeof title, "%s OF %s (%s, %.1f %% of all samples; %% of its time)",
			 callees ? "CALLEES" : "CALLERS", a->func, time,
			 p->total ? 100.0 * (double)total / (double)p->total : 0);
		render_rows(stdout, p, rows, (size_t)n, total, title, o);
	}
	free(rows);
	return 0;
}

static int hot_paths(const struct report_args *a, struct profile *p, const struct render_opts *o)
{
	struct qpath *paths;
	size_t n;

	profile_mark_libraries(p, a->paths);
	n = query_hot_paths(p, a->depth, &paths);
	if (a->json) {
		print_json(render_paths_json(p, paths, n, a->limit));
	} else {
		render_header(stdout, p, o);
		render_paths(stdout, p, paths, n, o);
	}
	query_paths_free(paths, n);
	return 0;
}

static int report(enum report kind, int argc, char **argv)
{
	struct report_args a = { .kind = kind };
	struct render_opts o = { 0 };
	struct profile *p = NULL;
	sqlite3 *db = NULL;
	int rc = parse(argc, argv, &a);

	if (rc >= 0)
		return rc;
	if ((rc = report_opts_load(a.session, &a.filter, &db, &p)) != 0)
		goto out;
	o.color = !a.json && render_want_color(stdout);
	o.cpu_only = a.filter.cpu_only;
	o.min_percent = a.min_percent;
	o.limit = a.limit;
	switch (kind) {
	case REPORT_SHOW: rc = show(&a, p, &o); break;
	case REPORT_FLAT: rc = flat(&a, p, &o); break;
	case REPORT_HOT_PATHS: rc = hot_paths(&a, p, &o); break;
	default: rc = callers(&a, p, &o); break;
	}
out:
	profile_free(p);
	sqlite3_close(db);
	return rc;
}

int report_tree(int64_t id)
{
	struct profile_filter f = { .from_s = -1, .to_s = -1 };
	struct report_args a = { .kind = REPORT_SHOW, .min_percent = 1 };
	struct render_opts o = { .min_percent = 1 };
	char *path = paths_default_db(), *cause = NULL;
	struct profile *p = NULL;
	sqlite3 *db = NULL;
	int rc = 1, r;

	a.filter = f;
	r = db_open(path, DB_READ_ONLY, &db, &cause);
	if (r == -EACCES) {
		/*
		 * A user profiling their own process through a root daemon:
		 * the session is stored, only the database is not theirs to
		 * read.  The recording itself succeeded.
		 */
		client_error("session %lld is stored, but %s; run 'perch show %lld' as a user "
			     "who can read the database", (long long)id, cause, (long long)id);
		rc = 0;
	} else if (r < 0 || profile_load(db, id, &f, &p, &cause) < 0) {
		client_error("%s", cause);
	} else {
		o.color = render_want_color(stdout);
		rc = show(&a, p, &o);
	}
	profile_free(p);
	sqlite3_close(db);
	free(cause);
	free(path);
	return rc;
}

int cmd_show(int argc, char **argv)
{
	return report(REPORT_SHOW, argc, argv);
}

int cmd_flat(int argc, char **argv)
{
	return report(REPORT_FLAT, argc, argv);
}

int cmd_callers(int argc, char **argv)
{
	return report(REPORT_CALLERS, argc, argv);
}

int cmd_callees(int argc, char **argv)
{
	return report(REPORT_CALLEES, argc, argv);
}

int cmd_hot_paths(int argc, char **argv)
{
	return report(REPORT_HOT_PATHS, argc, argv);
}
