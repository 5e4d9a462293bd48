/*
 * The HTML report.  The page (client/html/, compiled in) gets the profile as
 * one JSON blob in a <script type="application/json"> element:
 *
 *   {"session": {...header...},
 *    "threads": [[tid, "name"], ...],
 *    "modules": ["/usr/lib/.../libc.so.6", ...],
 *    "frames":  [["func", "file" or null, line, module index or -1, flags], ...]
 *               flags: 1 library frame, 2 inlined
 *    "tree":    [frame, total, self, nkids, ...]  every node of the call
 *               tree in pre-order, the root first (frame -1)}
 *
 * The tree is the whole call tree merged by function with every library
 * frame in it: the page's script folds runs of library frames itself, so a
 * reader can unfold any group — which a tree folded here could not offer.
 */
#include "export_html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "html_assets.h"
#include "query.h"
#include "xalloc.h"

/*
 * Writes s as a JSON string.  '<', '>' and '&' become \u escapes as well:
 * then no text from the profile (a function name, a command line) can end
 * the script element that holds the JSON or open an HTML comment in it.
 */
static void json_string(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	putc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == '<' || *c == '>' || *c == '&')
			fprintf(out, "\\u%04x", *c);
		else
			putc(*c, out);
	}
	putc('"', out);
}

/* Text for an HTML element or attribute. */
static void html_text(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		default: putc(*s, out);
		}
	}
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

static void key(FILE *out, const char *name)
{
	fprintf(out, ",\"%s\":", name);
}

static void write_session(FILE *out, const struct profile *p)
{
	double wall = p->ended_ns > p->started_ns ?
		      (double)(p->ended_ns - p->started_ns) / 1e9 : 0;

	fprintf(out, "{\"id\":%" PRId64 ",\"pid\":%d", p->id, p->pid);
	key(out, "name");
	json_string(out, p->name);
	key(out, "exe");
	json_string(out, p->exe);
	key(out, "cmdline");
	json_string(out, p->cmdline);
	key(out, "status");
	json_string(out, p->status);
	key(out, "error");
	json_string(out, p->error);
	key(out, "mode");
	json_string(out, p->mode);
	/* Milliseconds: nanoseconds since 1970 do not fit a double exactly. */
	fprintf(out, ",\"started_ms\":%" PRIu64 ",\"duration_s\":%.3f,\"rate_hz\":%g",
		p->started_ns / 1000000u, wall, p->rate_hz);
	fprintf(out, ",\"ticks\":%" PRId64 ",\"thread_samples\":%" PRId64
		",\"late_ticks\":%" PRId64 ",\"eintr_caused\":%" PRId64,
		p->ticks, p->thread_samples, p->late_ticks, p->eintr_caused);
	/* How running threads were sampled; null in sessions from before perch kept it. */
	key(out, "sampling");
	json_string(out, p->sampling);
	if (p->sampling != NULL)
		fprintf(out, ",\"max_stops\":%" PRId64 ",\"kernel_samples\":%" PRId64
			",\"stopped_samples\":%" PRId64, p->max_stops, p->kernel_samples,
			p->stopped_samples);
	key(out, "target_cpu_s");
	if (p->target_cpu_ns >= 0)
		fprintf(out, "%.3f}", (double)p->target_cpu_ns / 1e9);
	else
		fputs("null}", out);
}

static void write_threads(FILE *out, const struct profile *p)
{
	putc('[', out);
	for (size_t i = 0; i < p->nthreads; i++) {
		fprintf(out, "%s[%d,", i ? "," : "", p->threads[i].tid);
		json_string(out, p->threads[i].name);
		putc(']', out);
	}
	putc(']', out);
}

/*
 * The frames the tree uses, numbered from 0 in the order met, and their
 * modules.  slot maps a frame id (index into p->frames) to its number + 1.
 */
struct used {
	uint32_t *slot;
	const struct pframe **frames;
	size_t nframes;
	const char **modules;
	size_t nmodules;
};

static void use_frames(const struct profile *p, const struct qtree *t, struct used *u)
{
	if (t->frame != NULL) {
		size_t id = (size_t)(t->frame - p->frames);

		if (u->slot[id] == 0) {
			u->frames[u->nframes++] = t->frame;
			u->slot[id] = (uint32_t)u->nframes;
		}
	}
	for (size_t i = 0; i < t->nkids; i++)
		use_frames(p, t->kids[i], u);
}

/*
 * The number of module in u->modules, added if new; -1 for none.  A profile
 * holds one string per module, so pointers mostly decide; a session has
 * tens of modules, so a linear search is enough.
 */
static long module_index(struct used *u, const char *module)
{
	if (module == NULL)
		return -1;
	for (size_t i = 0; i < u->nmodules; i++)
		if (u->modules[i] == module || strcmp(u->modules[i], module) == 0)
			return (long)i;
	u->modules[u->nmodules] = module;
	return (long)u->nmodules++;
}

static void write_frames(FILE *out, struct used *u)
{
	long *mod = xcalloc(u->nframes + 1, sizeof *mod);

	u->modules = xcalloc(u->nframes + 1, sizeof *u->modules);
	for (size_t i = 0; i < u->nframes; i++)
		mod[i] = module_index(u, u->frames[i]->module);
	fputs(",\"modules\":[", out);
	for (size_t i = 0; i < u->nmodules; i++) {
		if (i)
			putc(',', out);
		json_string(out, u->modules[i]);
	}
	fputs("],\"frames\":[", out);
	for (size_t i = 0; i < u->nframes; i++) {
		const struct pframe *f = u->frames[i];

		fputs(i ? ",[" : "[", out);
		json_string(out, f->func);
		putc(',', out);
		json_string(out, f->file);
		fprintf(out, ",%d,%ld,%d]", f->line, mod[i],
			(f->library ? 1 : 0) | (f->inlined ? 2 : 0));
	}
	putc(']', out);
	free(mod);
}

static void write_nodes(FILE *out, const struct profile *p, const struct used *u,
			const struct qtree *t)
{
	long frame = t->frame ? (long)u->slot[t->frame - p->frames] - 1 : -1;

	fprintf(out, "%s%ld,%" PRIu64 ",%" PRIu64 ",%zu", t->frame ? "," : "",
		frame, t->total, t->self, t->nkids);
	for (size_t i = 0; i < t->nkids; i++)
		write_nodes(out, p, u, t->kids[i]);
}

static void write_data(FILE *out, const struct profile *p)
{
	struct qtree *t = query_tree(p, true);
	struct used u = { 0 };

	u.slot = xcalloc(p->nframes + 1, sizeof *u.slot);
	u.frames = xcalloc(p->nframes + 1, sizeof *u.frames);
	use_frames(p, t, &u);
	fputs("{\"session\":", out);
	write_session(out, p);
	fputs(",\"threads\":", out);
	write_threads(out, p);
	write_frames(out, &u);
	fputs(",\"tree\":[", out);
	write_nodes(out, p, &u, t);
	fputs("]}", out);
	free(u.modules);
	free(u.frames);
	free(u.slot);
	query_tree_free(t);
}

static void write_title(FILE *out, const struct profile *p)
{
	const char *what = p->name ? p->name : p->exe ? base_name(p->exe) : "?";

	fputs("perch: ", out);
	html_text(out, what);
	fprintf(out, " (pid %d), session %" PRId64, p->pid, p->id);
}

/*
 * The template with its {{title}}, {{style}}, {{script}} and {{data}} slots
 * filled.  The style sheet and script go in as they are: they are ours and
 * hold no "</style" or "</script".
 */
static void write_page(FILE *out, const struct profile *p)
{
	const char *s = (const char *)report_html, *open, *close;

	while ((open = strstr(s, "{{")) != NULL && (close = strstr(open, "}}")) != NULL) {
		size_t len = (size_t)(close - open - 2);

		fwrite(s, 1, (size_t)(open - s), out);
		if (len == 5 && memcmp(open + 2, "title", 5) == 0)
			write_title(out, p);
		else if (len == 5 && memcmp(open + 2, "style", 5) == 0)
			fputs((const char *)report_css, out);
		else if (len == 6 && memcmp(open + 2, "script", 6) == 0)
			fputs((const char *)report_js, out);
		else if (len == 4 && memcmp(open + 2, "data", 4) == 0)
			write_data(out, p);
		s = close + 2;
	}
	fputs(s, out);
}

int export_html(FILE *out, const struct profile *p, char **cause)
{
	errno = 0;
	write_page(out, p);
	if (fflush(out) != 0 || ferror(out)) {
		*cause = xasprintf("cannot write the HTML report: %s",
				   strerror(errno ? errno : EIO));
		return -EIO;
	}
	return 0;
}
