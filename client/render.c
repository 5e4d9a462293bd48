#include "render.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define RESET "\033[0m"
#define BOLD "\033[1m"
#define DIM "\033[2m"
#define RED "\033[31m"
#define YELLOW "\033[33m"
#define GREEN "\033[32m"

bool render_want_color(FILE *f)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(fileno(f)) && (nc == NULL || nc[0] == '\0');
}

void render_time(char *buf, size_t size, const struct profile *p, uint64_t samples)
{
	double s = profile_seconds(p, samples);

	if (s >= 10)
		snprintf(buf, size, "%.1fs", s);
	else if (s >= 1)
		snprintf(buf, size, "%.2fs", s);
	else if (s >= 0.001)
		snprintf(buf, size, "%.0fms", s * 1e3);
	else
		snprintf(buf, size, "%.0fµs", s * 1e6);
}

static double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0;
}

/* A percentage, coloured by size as hot spots should catch the eye. */
static const char *heat(double pct, const struct render_opts *o)
{
	if (!o->color)
		return "";
	return pct >= 50 ? RED : pct >= 20 ? YELLOW : pct >= 5 ? GREEN : DIM;
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

/* "file:line", or "module+0xOFF", or "" into buf. */
static void location(char *buf, size_t size, const struct pframe *f)
{
	if (f->file != NULL && f->line > 0)
		snprintf(buf, size, "%s:%d", f->file, f->line);
	else if (f->module != NULL)
		snprintf(buf, size, "%s+0x%" PRIx64, base_name(f->module), f->address);
	else
		buf[0] = '\0';
}

void render_header(FILE *out, const struct profile *p, const struct render_opts *o)
{
	time_t t = (time_t)(p->started_ns / 1000000000u);
	double due = (double)(p->ticks + p->late_ticks);
	char when[32];

	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
	fprintf(out, "%sperch%s  session %" PRId64 "%s%s%s  %s (pid %d)\n",
		o->color ? BOLD : "", o->color ? RESET : "", p->id,
		p->name ? " \"" : "", p->name ? p->name : "", p->name ? "\"" : "",
		p->exe ? p->exe : "?", p->pid);
	fprintf(out, "recorded %s for %.1f s, %" PRId64 " samples at %g Hz (%.1f %% late), %s\n",
		when, p->ended_ns > p->started_ns ? (double)(p->ended_ns - p->started_ns) / 1e9 : 0,
		p->ticks, p->rate_hz, due > 0 ? 100.0 * (double)p->late_ticks / due : 0,
		p->status ? p->status : "?");
	/* How running threads were sampled: kernel samples and stops differ (DESIGN.md). */
	if (p->sampling != NULL && strcmp(p->sampling, "ptrace") == 0) {
		char most[48] = "every one each tick";

		if (p->max_stops >= 0)
			snprintf(most, sizeof most, "at most %" PRId64 " a tick", p->max_stops);
		fprintf(out, "running threads: stops %" PRId64 " (--ptrace-only, %s)\n",
			p->stopped_samples, most);
	} else if (p->sampling != NULL) {
		fprintf(out, "running threads: kernel samples %" PRId64 ", stops %" PRId64 "%s\n",
			p->kernel_samples, p->stopped_samples,
			p->kernel_samples == 0 && p->stopped_samples > 0 ?
			" (no kernel samples: perf events not allowed? see perchd(8))" : "");
	}
	if (p->target_cpu_ns >= 0)
		fprintf(out, "target CPU time %.2f s; ", (double)p->target_cpu_ns / 1e9);
	fprintf(out, "%s\n\n", o->cpu_only ?
		"showing CPU time: samples of running threads only" :
		"showing wall-clock time: every thread, running or waiting");
	if (p->error != NULL)
		fprintf(out, "error: %s\n\n", p->error);
}

static void tree_line(FILE *out, const struct profile *p, const struct qtree *t,
		      uint64_t self_only, const char *prefix, bool last,
		      const struct render_opts *o)
{
	uint64_t samples = self_only ? self_only : t->total;
	double pct = percent(samples, p->total);
	char time[32], where[512];

	render_time(time, sizeof time, p, samples);
	fprintf(out, "%s%s%s%7s %5.1f%%%s  ", prefix, last ? "└─ " : "├─ ",
		heat(pct, o), time, pct, o->color ? RESET : "");
	if (self_only) {
		fprintf(out, "%s[self]%s\n", o->color ? DIM : "", o->color ? RESET : "");
	} else if (t->frame == NULL) {
		fprintf(out, "%s[%u frame%s hidden]  %s%s\n", o->color ? DIM : "", t->hidden,
			t->hidden == 1 ? "" : "s", t->modules ? t->modules : "",
			o->color ? RESET : "");
	} else {
		location(where, sizeof where, t->frame);
		fprintf(out, "%s%s%s  %s%s%s%s\n", o->color ? BOLD : "", t->frame->func,
			o->color ? RESET : "", o->color ? DIM : "", where,
			t->frame->inlined ? "  (inlined)" : "", o->color ? RESET : "");
	}
}

static bool shown(const struct profile *p, uint64_t samples, const struct render_opts *o)
{
	return samples > 0 && percent(samples, p->total) >= o->min_percent;
}

static void tree_kids(FILE *out, const struct profile *p, const struct qtree *t,
		      const char *prefix, const struct render_opts *o)
{
	size_t n = 0, printed = 0;
	bool self = t->nkids > 0 && shown(p, t->self, o);
	char *deeper;

	for (size_t i = 0; i < t->nkids; i++)
		n += shown(p, t->kids[i]->total, o);
	n += self;
	for (size_t i = 0; i < t->nkids; i++) {
		const struct qtree *k = t->kids[i];
		bool last;

		if (!shown(p, k->total, o))
			continue;
		last = ++printed == n;
		tree_line(out, p, k, 0, prefix, last, o);
		deeper = xasprintf("%s%s", prefix, last ? "   " : "│  ");
		tree_kids(out, p, k, deeper, o);
		free(deeper);
	}
	if (self)
		tree_line(out, p, t, t->self, prefix, true, o);
}

void render_tree(FILE *out, const struct profile *p, const struct qtree *t,
		 const struct render_opts *o)
{
	if (p->total == 0) {
		fprintf(out, "no samples match\n");
		return;
	}
	tree_kids(out, p, t, "", o);
	if (o->min_percent > 0)
		fprintf(out, "\n(nodes under %g %% hidden; --min-percent 0 shows all%s)\n",
			o->min_percent, ", --show-all shows library frames");
}

void render_rows(FILE *out, const struct profile *p, const struct qrow *rows,
		 size_t n, uint64_t total, const char *title, const struct render_opts *o)
{
	char time[32], where[512];

	fprintf(out, "%s%9s %7s  %s%s\n", o->color ? BOLD : "", "TIME", "%", title,
		o->color ? RESET : "");
	for (size_t i = 0; i < n && (o->limit == 0 || i < o->limit); i++) {
		double pct = percent(rows[i].samples, total);

		render_time(time, sizeof time, p, rows[i].samples);
		if (rows[i].frame == NULL) {
			fprintf(out, "%s%9s %6.1f%%%s  %s\n", heat(pct, o), time, pct,
				o->color ? RESET : "", rows[i].special);
			continue;
		}
		location(where, sizeof where, rows[i].frame);
		fprintf(out, "%s%9s %6.1f%%%s  %-40s %s%s%s\n", heat(pct, o), time, pct,
			o->color ? RESET : "", rows[i].frame->func, o->color ? DIM : "", where,
			o->color ? RESET : "");
	}
	if (o->limit > 0 && n > o->limit)
		fprintf(out, "(%zu more; -n shows more)\n", n - o->limit);
}

void render_paths(FILE *out, const struct profile *p, const struct qpath *paths,
		  size_t n, const struct render_opts *o)
{
	char time[32], where[512];

	for (size_t i = 0; i < n && (o->limit == 0 || i < o->limit); i++) {
		double pct = percent(paths[i].samples, p->total);

		render_time(time, sizeof time, p, paths[i].samples);
		fprintf(out, "%s%9s %6.1f%%%s  ", heat(pct, o), time, pct, o->color ? RESET : "");
		if (paths[i].n == 0)
			fprintf(out, "(only library frames)");
		for (size_t k = 0; k < paths[i].n; k++) {
			location(where, sizeof where, paths[i].frames[k]);
			fprintf(out, "%s%s%s%s", k ? " → " : "", paths[i].frames[k]->func,
				*where ? " " : "", where);
		}
		fputc('\n', out);
	}
}

/* ---- JSON ---------------------------------------------------------------- */

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* A frame's fields; without a frame, special names the row. */
static void add_frame(json_object *o, const struct pframe *f, const char *special)
{
	json_object_object_add(o, "func", json_object_new_string(f ? f->func : special));
	json_object_object_add(o, "file", f ? str_or_null(f->file) : NULL);
	json_object_object_add(o, "line", f && f->line > 0 ? json_object_new_int(f->line) : NULL);
	json_object_object_add(o, "module", f ? str_or_null(f->module) : NULL);
}

static void add_amount(json_object *o, const struct profile *p, uint64_t samples,
		       uint64_t total)
{
	json_object_object_add(o, "samples", json_object_new_int64((int64_t)samples));
	json_object_object_add(o, "time_ms",
			       json_object_new_double(profile_seconds(p, samples) * 1e3));
	json_object_object_add(o, "percent", json_object_new_double(percent(samples, total)));
}

json_object *render_header_json(const struct profile *p, bool cpu_only)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "session", json_object_new_int64(p->id));
	json_object_object_add(o, "name", str_or_null(p->name));
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "exe", str_or_null(p->exe));
	json_object_object_add(o, "cmdline", str_or_null(p->cmdline));
	json_object_object_add(o, "status", str_or_null(p->status));
	json_object_object_add(o, "error", str_or_null(p->error));
	json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)p->started_ns));
	json_object_object_add(o, "duration_s", json_object_new_double(
		p->ended_ns > p->started_ns ? (double)(p->ended_ns - p->started_ns) / 1e9 : 0));
	json_object_object_add(o, "rate_hz", json_object_new_double(p->rate_hz));
	json_object_object_add(o, "ticks", json_object_new_int64(p->ticks));
	json_object_object_add(o, "late_ticks", json_object_new_int64(p->late_ticks));
	json_object_object_add(o, "target_cpu_ns", p->target_cpu_ns >= 0 ?
			       json_object_new_int64(p->target_cpu_ns) : NULL);
	json_object_object_add(o, "sampling", str_or_null(p->sampling));
	json_object_object_add(o, "max_stops", p->max_stops >= -1 ?
			       json_object_new_int64(p->max_stops) : NULL);
	json_object_object_add(o, "kernel_samples", p->sampling != NULL ?
			       json_object_new_int64(p->kernel_samples) : NULL);
	json_object_object_add(o, "stopped_samples", p->sampling != NULL ?
			       json_object_new_int64(p->stopped_samples) : NULL);
	json_object_object_add(o, "time", json_object_new_string(cpu_only ? "cpu" : "wall"));
	json_object_object_add(o, "samples", json_object_new_int64((int64_t)p->total));
	return o;
}

json_object *render_tree_json(const struct profile *p, const struct qtree *t)
{
	json_object *o = json_object_new_object(), *kids = json_object_new_array();

	if (t->frame != NULL) {
		add_frame(o, t->frame, NULL);
		json_object_object_add(o, "inlined", json_object_new_boolean(t->frame->inlined));
	} else {
		json_object_object_add(o, "func", json_object_new_string(
			t->hidden ? "[frames hidden]" : "[root]"));
		json_object_object_add(o, "hidden", json_object_new_int((int)t->hidden));
		json_object_object_add(o, "modules", str_or_null(t->modules));
	}
	add_amount(o, p, t->total, p->total);
	json_object_object_add(o, "self", json_object_new_int64((int64_t)t->self));
	for (size_t i = 0; i < t->nkids; i++)
		json_object_array_add(kids, render_tree_json(p, t->kids[i]));
	json_object_object_add(o, "children", kids);
	return o;
}

json_object *render_rows_json(const struct profile *p, const struct qrow *rows,
			      size_t n, uint64_t total, size_t limit)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n && (limit == 0 || i < limit); i++) {
		json_object *o = json_object_new_object();

		add_frame(o, rows[i].frame, rows[i].special);
		add_amount(o, p, rows[i].samples, total);
		json_object_array_add(arr, o);
	}
	return arr;
}

json_object *render_paths_json(const struct profile *p, const struct qpath *paths,
			       size_t n, size_t limit)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n && (limit == 0 || i < limit); i++) {
		json_object *o = json_object_new_object(), *path = json_object_new_array();

		add_amount(o, p, paths[i].samples, p->total);
		for (size_t k = 0; k < paths[i].n; k++) {
			json_object *f = json_object_new_object();

			add_frame(f, paths[i].frames[k], NULL);
			json_object_array_add(path, f);
		}
		json_object_object_add(o, "path", path);
		json_object_array_add(arr, o);
	}
	return arr;
}
