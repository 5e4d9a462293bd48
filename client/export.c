/*
 * The text exports: perch's JSON, folded stacks and speedscope.  pprof is
 * in export_pprof.c, HTML in export_html.c.
 */
#include "export.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "xalloc.h"

/*
 * The stack nodes the samples use: those with samples of their own and
 * their ancestors.  Children have larger ids than their parents, so one
 * backward pass marks whole paths.  Caller frees.
 */
static bool *used_nodes(const struct profile *p)
{
	bool *used = xcalloc(p->nnodes ? p->nnodes : 1, sizeof *used);

	for (size_t n = p->nnodes; n-- > 1;) {
		if (p->self[n] > 0)
			used[n] = true;
		if (used[n])
			used[p->nodes[n].parent] = true;
	}
	return used;
}

/* Writes doc and a newline, and drops doc. */
static int write_json(FILE *out, json_object *doc, char **cause)
{
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE);
	int rc = 0;

	if (text == NULL) {
		*cause = xstrdup("cannot format the JSON output");
		rc = -ENOMEM;
	} else if (fputs(text, out) == EOF || fputc('\n', out) == EOF) {
		*cause = xasprintf("cannot write: %s", strerror(errno));
		rc = -EIO;
	}
	json_object_put(doc);
	return rc;
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* ---- perch's JSON ---------------------------------------------------- */

static json_object *frame_json(const struct profile *p, size_t id)
{
	const struct pframe *f = &p->frames[id];
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64((int64_t)id));
	json_object_object_add(o, "func", json_object_new_string(f->func));
	json_object_object_add(o, "file", str_or_null(f->file));
	json_object_object_add(o, "line", f->line > 0 ? json_object_new_int(f->line) : NULL);
	json_object_object_add(o, "module", str_or_null(f->module));
	json_object_object_add(o, "address", json_object_new_int64((int64_t)f->address));
	json_object_object_add(o, "inlined", json_object_new_boolean(f->inlined));
	return o;
}

static json_object *pair_json(const char *k1, uint64_t v1, const char *k2, uint64_t v2)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, k1, json_object_new_int64((int64_t)v1));
	json_object_object_add(o, k2, json_object_new_int64((int64_t)v2));
	return o;
}

int export_json(FILE *out, const struct profile *p, bool cpu_only, char **cause)
{
	json_object *doc = json_object_new_object(), *frames = json_object_new_array();
	json_object *stacks = json_object_new_array(), *samples = json_object_new_array();
	bool *used = used_nodes(p), *used_frame = xcalloc(p->nframes ? p->nframes : 1, 1);

	for (size_t n = 1; n < p->nnodes; n++) {
		json_object *s;

		if (!used[n])
			continue;
		used_frame[p->nodes[n].frame] = true;
		s = pair_json("id", n, "parent", p->nodes[n].parent);
		json_object_object_add(s, "frame", json_object_new_int64(p->nodes[n].frame));
		json_object_array_add(stacks, s);
		if (p->self[n] > 0)
			json_object_array_add(samples, pair_json("stack", n, "samples", p->self[n]));
	}
	for (size_t f = 1; f < p->nframes; f++)
		if (used_frame[f])
			json_object_array_add(frames, frame_json(p, f));
	free(used);
	free(used_frame);
	json_object_object_add(doc, "session", render_header_json(p, cpu_only));
	json_object_object_add(doc, "frames", frames);
	json_object_object_add(doc, "stacks", stacks);
	json_object_object_add(doc, "samples", samples);
	return write_json(out, doc, cause);
}

/* ---- folded stacks --------------------------------------------------- */

struct folded_line {
	char *text;
	uint64_t samples;
};

/* A character of a function name as the folded format can carry it. */
static char folded_char(char c)
{
	if (c == ';')
		return ':';
	return (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
}

/* The frames of stack leaf, outermost first, as "a;b;c" (caller frees). */
static char *folded_stack(const struct profile *p, uint32_t leaf)
{
	size_t len = 0;
	char *text, *end;

	for (uint32_t n = leaf; n != 0; n = p->nodes[n].parent)
		len += strlen(p->frames[p->nodes[n].frame].func) + 1;
	text = xmalloc(len);
	end = text + len - 1;
	*end = '\0';
	/* Filled from the leaf backwards. */
	for (uint32_t n = leaf; n != 0; n = p->nodes[n].parent) {
		const char *func = p->frames[p->nodes[n].frame].func;
		size_t flen = strlen(func);

		end -= flen;
		for (size_t i = 0; i < flen; i++)
			end[i] = folded_char(func[i]);
		if (end > text)
			*--end = ';';
	}
	return text;
}

static int by_text(const void *a, const void *b)
{
	return strcmp(((const struct folded_line *)a)->text, ((const struct folded_line *)b)->text);
}

int export_folded(FILE *out, const struct profile *p, char **cause)
{
	struct folded_line *lines = xcalloc(p->nnodes ? p->nnodes : 1, sizeof *lines);
	size_t n = 0;
	int rc = 0;

	for (uint32_t id = 1; id < p->nnodes; id++)
		if (p->self[id] > 0)
			lines[n++] = (struct folded_line){ folded_stack(p, id), p->self[id] };
	/* Stacks that differ only in lines or addresses print alike: merge them. */
	if (n > 1)
		qsort(lines, n, sizeof *lines, by_text);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(lines[i].text, lines[i + 1].text) == 0) {
			lines[i + 1].samples += lines[i].samples;
		} else if (rc == 0 && fprintf(out, "%s %" PRIu64 "\n", lines[i].text,
					      lines[i].samples) < 0) {
			*cause = xasprintf("cannot write: %s", strerror(errno));
			rc = -EIO;
		}
		free(lines[i].text);
	}
	free(lines);
	return rc;
}

/* ---- speedscope ------------------------------------------------------ */

/* What makes a speedscope frame: a function, as `perch show` merges them. */
static int key_cmp(const struct pframe *a, const struct pframe *b)
{
	int c = strcmp(a->func, b->func);

	if (c == 0)
		c = strcmp(a->file ? a->file : "", b->file ? b->file : "");
	if (c == 0)
		c = strcmp(a->module ? a->module : "", b->module ? b->module : "");
	return c;
}

struct shared {
	const struct profile *p;
	uint32_t *index;	/* speedscope frame of each perch frame */
	json_object *frames;
};

static int by_key(const void *a, const void *b, void *frames)
{
	const struct pframe *f = frames;

	return key_cmp(&f[*(const uint32_t *)a], &f[*(const uint32_t *)b]);
}

static json_object *shared_frame(const struct pframe *f)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(f->func));
	if (f->file != NULL)
		json_object_object_add(o, "file", json_object_new_string(f->file));
	return o;
}

/*
 * Numbers the functions the samples use, in name order so that sorted
 * stacks read like a flame graph.  A frame's line is left out: one
 * function has many.
 */
static void share_frames(struct shared *s, const struct profile *p)
{
	bool *used = used_nodes(p), *seen = xcalloc(p->nframes ? p->nframes : 1, 1);
	uint32_t *ids = xcalloc(p->nframes ? p->nframes : 1, sizeof *ids), n = 0, next = 0;

	for (size_t i = 1; i < p->nnodes; i++) {
		uint32_t f = p->nodes[i].frame;

		if (used[i] && !seen[f]) {
			seen[f] = true;
			ids[n++] = f;
		}
	}
	if (n > 1)
		qsort_r(ids, n, sizeof *ids, by_key, p->frames);
	s->p = p;
	s->index = xcalloc(p->nframes ? p->nframes : 1, sizeof *s->index);
	s->frames = json_object_new_array();
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0 && key_cmp(&p->frames[ids[i - 1]], &p->frames[ids[i]]) == 0) {
			s->index[ids[i]] = next - 1;
			continue;
		}
		json_object_array_add(s->frames, shared_frame(&p->frames[ids[i]]));
		s->index[ids[i]] = next++;
	}
	free(used);
	free(seen);
	free(ids);
}

struct sampled {
	uint32_t *stack;	/* speedscope frames, root first */
	uint32_t depth;
	uint64_t samples;
};

static int by_stack(const void *a, const void *b)
{
	const struct sampled *x = a, *y = b;

	for (uint32_t i = 0; i < x->depth && i < y->depth; i++)
		if (x->stack[i] != y->stack[i])
			return x->stack[i] < y->stack[i] ? -1 : 1;
	return (x->depth > y->depth) - (x->depth < y->depth);
}

/*
 * The samples of t, sorted by stack (aggregated, they have no time order),
 * stacks that differ only in lines or addresses merged.
 */
static json_object *thread_samples(const struct shared *s, const struct profile *t,
				   json_object **weights)
{
	struct sampled *v = xcalloc(t->nnodes ? t->nnodes : 1, sizeof *v);
	json_object *samples = json_object_new_array();
	size_t n = 0;

	for (uint32_t id = 1; id < t->nnodes; id++) {
		struct sampled *x = &v[n];

		if (t->self[id] == 0)
			continue;
		x->depth = t->nodes[id].depth;
		x->samples = t->self[id];
		x->stack = xcalloc(x->depth, sizeof *x->stack);
		for (uint32_t k = id, i = x->depth; k != 0 && i > 0; k = t->nodes[k].parent)
			x->stack[--i] = s->index[t->nodes[k].frame];
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof *v, by_stack);
	*weights = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *stack;

		if (i + 1 < n && by_stack(&v[i], &v[i + 1]) == 0) {
			v[i + 1].samples += v[i].samples;
			free(v[i].stack);
			continue;
		}
		stack = json_object_new_array();
		for (uint32_t k = 0; k < v[i].depth; k++)
			json_object_array_add(stack, json_object_new_int64(v[i].stack[k]));
		json_object_array_add(samples, stack);
		json_object_array_add(*weights, json_object_new_double(
			profile_seconds(t, v[i].samples)));
		free(v[i].stack);
	}
	free(v);
	return samples;
}

/* The time window in seconds from the session start. */
static void window(const struct profile *p, const struct profile_filter *f,
		   double *start, double *end)
{
	double length = p->ended_ns > p->started_ns ?
			(double)(p->ended_ns - p->started_ns) / 1e9 :
			profile_seconds(p, p->total);

	*start = f->from_s > 0 ? f->from_s : 0;
	*end = f->to_s >= 0 && f->to_s < length ? f->to_s : length;
	if (*end < *start)
		*end = *start;
}

static json_object *sampled_profile(const struct shared *s, const struct export_thread *t,
				    double start, double end)
{
	json_object *o = json_object_new_object(), *weights, *samples;

	samples = thread_samples(s, t->p, &weights);
	json_object_object_add(o, "type", json_object_new_string("sampled"));
	json_object_object_add(o, "name", json_object_new_string(t->name));
	json_object_object_add(o, "unit", json_object_new_string("seconds"));
	json_object_object_add(o, "startValue", json_object_new_double(start));
	json_object_object_add(o, "endValue", json_object_new_double(end));
	json_object_object_add(o, "samples", samples);
	json_object_object_add(o, "weights", weights);
	return o;
}

int export_speedscope(FILE *out, const struct profile *p, const struct profile_filter *f,
		      const struct export_thread *threads, size_t nthreads, char **cause)
{
	json_object *doc = json_object_new_object(), *profiles = json_object_new_array();
	const char *exe = p->exe ? strrchr(p->exe, '/') : NULL;
	struct shared s;
	double start, end;
	char *name;

	share_frames(&s, p);
	window(p, f, &start, &end);
	for (size_t i = 0; i < nthreads; i++)
		json_object_array_add(profiles, sampled_profile(&s, &threads[i], start, end));
	name = xasprintf("%s (perch session %" PRId64 ")",
			 p->name ? p->name : exe ? exe + 1 : p->exe ? p->exe : "?", p->id);
	json_object_object_add(doc, "$schema", json_object_new_string(
		"https://www.speedscope.app/file-format-schema.json"));
	json_object_object_add(doc, "shared", json_object_new_object());
	json_object_object_add(json_object_object_get(doc, "shared"), "frames", s.frames);
	json_object_object_add(doc, "profiles", profiles);
	json_object_object_add(doc, "name", json_object_new_string(name));
	json_object_object_add(doc, "activeProfileIndex", json_object_new_int(0));
	json_object_object_add(doc, "exporter", json_object_new_string("perch " PERCH_VERSION));
	free(name);
	free(s.index);
	return write_json(out, doc, cause);
}
