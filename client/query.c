#include "query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

/* ---- the call tree ---------------------------------------------------- */

struct links {
	uint64_t *total;	/* inclusive samples per stack node */
	uint32_t *first, *next;	/* children of a node, as a list */
};

static void link_nodes(const struct profile *p, struct links *l)
{
	l->total = xcalloc(p->nnodes, sizeof *l->total);
	l->first = xcalloc(p->nnodes, sizeof *l->first);
	l->next = xcalloc(p->nnodes, sizeof *l->next);
	if (p->nnodes > 0)
		memcpy(l->total, p->self, p->nnodes * sizeof *l->total);
	/* Children have larger ids than their parents: one backward pass. */
	for (size_t n = p->nnodes; n-- > 1;) {
		uint32_t parent = p->nodes[n].parent;

		if (p->nodes[n].frame == 0)
			continue;
		l->total[parent] += l->total[n];
		l->next[n] = l->first[parent];
		l->first[parent] = (uint32_t)n;
	}
}

static void unlink_nodes(struct links *l)
{
	free(l->total);
	free(l->first);
	free(l->next);
}

static bool same_name(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void add_module(struct qtree *g, const char *module);

/*
 * Counts frame's function in group g once: a function seen at two
 * addresses or call sites is still one hidden frame to the reader.
 */
static void add_hidden(struct qtree *g, const struct pframe *f)
{
	for (unsigned int i = 0; i < g->hidden; i++)
		if (same_name(g->fns[i]->func, f->func) && same_name(g->fns[i]->module, f->module))
			return;
	if ((g->hidden & (g->hidden - 1)) == 0)
		g->fns = xreallocarray(g->fns, g->hidden ? g->hidden * 2 : 1, sizeof *g->fns);
	g->fns[g->hidden++] = f;
}

/*
 * Adds kid under t, merged with a kid of the same function (or with the
 * hidden group): the stack tree has one node per call site and address,
 * a report one per function.
 */
static void add_kid(struct qtree *t, struct qtree *kid)
{
	for (size_t i = 0; i < t->nkids; i++) {
		struct qtree *k = t->kids[i];

		if ((k->frame == NULL) != (kid->frame == NULL) ||
		    (k->frame != NULL && (!same_name(k->frame->func, kid->frame->func) ||
					  !same_name(k->frame->module, kid->frame->module))))
			continue;
		k->total += kid->total;
		k->self += kid->self;
		for (unsigned int h = 0; h < kid->hidden; h++)
			add_hidden(k, kid->fns[h]);
		for (const char *m = kid->modules; m != NULL && *m != '\0';) {
			const char *comma = strstr(m, ", ");
			char *one = xstrndup(m, comma ? (size_t)(comma - m) : strlen(m));

			add_module(k, one);
			free(one);
			m = comma ? comma + 2 : "";
		}
		for (size_t j = 0; j < kid->nkids; j++)
			add_kid(k, kid->kids[j]);
		free(kid->kids);
		free(kid->fns);
		free(kid->modules);
		free(kid);
		return;
	}
	if ((t->nkids & (t->nkids - 1)) == 0)
		t->kids = xreallocarray(t->kids, t->nkids ? t->nkids * 2 : 1, sizeof *t->kids);
	t->kids[t->nkids++] = kid;
}

static int by_total(const void *a, const void *b)
{
	const struct qtree *x = *(struct qtree *const *)a, *y = *(struct qtree *const *)b;

	return (x->total < y->total) - (x->total > y->total);
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

/* Adds a module's file name to a group's list, once. */
static void add_module(struct qtree *g, const char *module)
{
	const char *name = base_name(module);
	size_t len;

	/* An empty name (a damaged file's "" or "dir/") would match forever. */
	if (name == NULL || name[0] == '\0')
		return;
	len = strlen(name);
	for (const char *p = g->modules; p && (p = strstr(p, name)) != NULL; p += len)
		if ((p == g->modules || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
			return;
	if (g->modules == NULL) {
		g->modules = xstrdup(name);
	} else {
		char *m = xasprintf("%s, %s", g->modules, name);

		free(g->modules);
		g->modules = m;
	}
}

struct tree_ctx {
	const struct profile *p;
	struct links l;
	bool show_all;
};

static struct qtree *build(struct tree_ctx *c, uint32_t n);

/* Folds hidden node n (and its hidden descendants) into group g. */
static void absorb(struct tree_ctx *c, struct qtree *g, uint32_t n)
{
	const struct pframe *f = &c->p->frames[c->p->nodes[n].frame];

	g->self += c->p->self[n];
	add_hidden(g, f);
	add_module(g, f->module);
	for (uint32_t k = c->l.first[n]; k != 0; k = c->l.next[k]) {
		if (c->l.total[k] == 0)
			continue;
		if (c->show_all || !c->p->frames[c->p->nodes[k].frame].library)
			add_kid(g, build(c, k));
		else
			absorb(c, g, k);
	}
}

static struct qtree *build(struct tree_ctx *c, uint32_t n)
{
	struct qtree *t = xcalloc(1, sizeof *t), *group = NULL;

	t->frame = n ? &c->p->frames[c->p->nodes[n].frame] : NULL;
	t->total = c->l.total[n];
	t->self = c->p->self[n];
	for (uint32_t k = c->l.first[n]; k != 0; k = c->l.next[k]) {
		if (c->l.total[k] == 0)
			continue;
		if (c->show_all || !c->p->frames[c->p->nodes[k].frame].library) {
			add_kid(t, build(c, k));
			continue;
		}
		if (group == NULL) {
			group = xcalloc(1, sizeof *group);
			add_kid(t, group);
		}
		group->total += c->l.total[k];
		absorb(c, group, k);
	}
	return t;
}

/* Merging changed totals below the nodes already sorted: sort again. */
static void sort_tree(struct qtree *t)
{
	if (t->nkids > 1)
		qsort(t->kids, t->nkids, sizeof *t->kids, by_total);
	for (size_t i = 0; i < t->nkids; i++)
		sort_tree(t->kids[i]);
}

struct qtree *query_tree(const struct profile *p, bool show_all)
{
	struct tree_ctx c = { .p = p, .show_all = show_all };
	struct qtree *t;

	link_nodes(p, &c.l);
	t = build(&c, 0);
	unlink_nodes(&c.l);
	sort_tree(t);
	return t;
}

void query_tree_free(struct qtree *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nkids; i++)
		query_tree_free(t->kids[i]);
	free(t->kids);
	free(t->fns);
	free(t->modules);
	free(t);
}

/* ---- functions -------------------------------------------------------- */

/*
 * Frames grouped into functions: one function per (name, module), or per
 * (name, module, file, line) for by-line views.
 */
struct fnmap {
	uint32_t *of_frame;		/* frame id -> function index */
	const struct pframe **rep;	/* function index -> a frame of it */
	size_t n;
};

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static uint64_t str_hash(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h * 0x100000001b3ull;
}

static bool same_function(const struct pframe *a, const struct pframe *b, bool by_line)
{
	return str_eq(a->func, b->func) && str_eq(a->module, b->module) &&
	       (!by_line || (str_eq(a->file, b->file) && a->line == b->line));
}

static void map_functions(const struct profile *p, bool by_line, struct fnmap *m)
{
	size_t cap = 64;
	uint32_t *slots;

	while (cap < p->nframes * 2)
		cap *= 2;
	slots = xcalloc(cap, sizeof *slots);
	m->of_frame = xcalloc(p->nframes, sizeof *m->of_frame);
	m->rep = xcalloc(p->nframes, sizeof *m->rep);
	m->n = 0;
	for (size_t f = 1; f < p->nframes; f++) {
		const struct pframe *fr = &p->frames[f];
		uint64_t h = str_hash(str_hash(0xcbf29ce484222325ull, fr->func), fr->module);
		size_t i;

		if (by_line)
			h = str_hash(h, fr->file) ^ (uint64_t)fr->line;
		i = (size_t)(h % cap);
		while (slots[i] != 0 && !same_function(m->rep[slots[i] - 1], fr, by_line))
			i = (i + 1) % cap;
		if (slots[i] == 0) {
			m->rep[m->n] = fr;
			slots[i] = (uint32_t)++m->n;
		}
		m->of_frame[f] = slots[i] - 1;
	}
	free(slots);
}

static void unmap_functions(struct fnmap *m)
{
	free(m->of_frame);
	free(m->rep);
}

static int by_samples(const void *a, const void *b)
{
	const struct qrow *x = a, *y = b;

	return (x->samples < y->samples) - (x->samples > y->samples);
}

/* Rows with samples from per-function sums, largest first. */
static size_t collect_rows(const struct fnmap *m, const uint64_t *sum,
			   uint64_t special, const char *special_name, struct qrow **rows)
{
	size_t n = 0;

	*rows = xcalloc(m->n + 1, sizeof **rows);
	for (size_t i = 0; i < m->n; i++) {
		if (sum[i] > 0) {
			(*rows)[n].frame = m->rep[i];
			(*rows)[n++].samples = sum[i];
		}
	}
	if (special > 0) {
		(*rows)[n].special = special_name;
		(*rows)[n++].samples = special;
	}
	if (n > 1)
		qsort(*rows, n, sizeof **rows, by_samples);
	return n;
}

size_t query_flat(const struct profile *p, const char *paths, bool by_line,
		  struct qrow **rows)
{
	struct fnmap m;
	uint64_t *sum;
	size_t n;

	map_functions(p, by_line, &m);
	sum = xcalloc(m.n + 1, sizeof *sum);
	for (size_t s = 1; s < p->nnodes; s++) {
		const struct pframe *f = &p->frames[p->nodes[s].frame];

		if (p->self[s] == 0 || (paths && !profile_path_match(f->file, paths) &&
					!profile_path_match(f->module, paths)))
			continue;
		sum[m.of_frame[p->nodes[s].frame]] += p->self[s];
	}
	n = collect_rows(&m, sum, 0, NULL, rows);
	free(sum);
	unmap_functions(&m);
	return n;
}

/* ---- callers and callees ---------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), *row, best;

	if (la > 64 || lb > 64)
		return 99;
	row = xcalloc(lb + 1, sizeof *row);
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], v = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			diag = up;
			row[j] = v;
		}
	}
	best = row[lb];
	free(row);
	return best;
}

/*
 * Up to five function names close to name, for the error message: names
 * containing it, or a few typos away: a third of its length, at most 3
 * (any two names of four letters are at most 4 edits apart).
 */
static char *suggest_names(const struct fnmap *m, const char *name)
{
	size_t typos = (strlen(name) + 2) / 3;
	char *out = NULL;
	int found = 0;

	if (typos > 3)
		typos = 3;
	for (size_t i = 0; i < m->n && found < 5; i++) {
		const char *f = m->rep[i]->func;
		char *next;

		if (strcasestr(f, name) == NULL && edit_distance(f, name) > typos)
			continue;
		if (out != NULL && strstr(out, f) != NULL)
			continue;
		next = out ? xasprintf("%s, %s", out, f) : xstrdup(f);
		free(out);
		out = next;
		found++;
	}
	return out;
}

long query_callers(const struct profile *p, const char *func, bool callees,
		   struct qrow **rows, uint64_t *func_total, char **suggest)
{
	struct fnmap m;
	uint64_t *sum, special = 0;
	bool known = false;
	size_t n;

	map_functions(p, false, &m);
	for (size_t i = 0; i < m.n && !known; i++)
		known = strcmp(m.rep[i]->func, func) == 0;
	if (!known) {
		*suggest = suggest_names(&m, func);
		unmap_functions(&m);
		return -ENOENT;
	}
	sum = xcalloc(m.n + 1, sizeof *sum);
	*func_total = 0;
	for (size_t s = 1; s < p->nnodes; s++) {
		uint32_t at = 0, below = 0;

		if (p->self[s] == 0)
			continue;
		/* The outermost occurrence: a recursive function counts once. */
		for (uint32_t n2 = (uint32_t)s, prev = 0; n2 != 0; prev = n2, n2 = p->nodes[n2].parent) {
			if (strcmp(p->frames[p->nodes[n2].frame].func, func) == 0) {
				at = n2;
				below = prev;
			}
		}
		if (at == 0)
			continue;
		*func_total += p->self[s];
		if (callees && below == 0)
			special += p->self[s];	/* [self] */
		else if (!callees && p->nodes[at].parent == 0)
			special += p->self[s];	/* [root]: a thread's outermost frame */
		else
			sum[m.of_frame[p->nodes[callees ? below : p->nodes[at].parent].frame]] +=
				p->self[s];
	}
	n = collect_rows(&m, sum, special, callees ? "[self]" : "[root]", rows);
	free(sum);
	unmap_functions(&m);
	return (long)n;
}

/* ---- hot paths --------------------------------------------------------- */

struct path_slot {
	uint64_t hash;
	size_t index;		/* into the paths array, + 1; 0: empty */
};

static bool same_path(const uint32_t *a, size_t na, const struct qpath *q,
		      const struct fnmap *m)
{
	if (na != q->n)
		return false;
	for (size_t i = 0; i < na; i++)
		if (m->rep[a[i]] != q->frames[i])
			return false;
	return true;
}

static int by_path_samples(const void *a, const void *b)
{
	const struct qpath *x = a, *y = b;

	return (x->samples < y->samples) - (x->samples > y->samples);
}

size_t query_hot_paths(const struct profile *p, size_t depth, struct qpath **out)
{
	size_t cap = 64, n = 0, maxdepth = 1;
	struct path_slot *slots;
	struct qpath *paths = NULL;
	uint32_t *fns;
	struct fnmap m;

	map_functions(p, false, &m);
	for (size_t s = 1; s < p->nnodes; s++)
		if (p->nodes[s].depth > maxdepth)
			maxdepth = p->nodes[s].depth;
	fns = xcalloc(maxdepth + 1, sizeof *fns);
	while (cap < p->nnodes * 2)
		cap *= 2;
	slots = xcalloc(cap, sizeof *slots);
	for (size_t s = 1; s < p->nnodes; s++) {
		size_t k = 0, first, i;
		uint64_t h = 0xcbf29ce484222325ull;

		if (p->self[s] == 0)
			continue;
		/* Shown frames of the stack, leaf first. */
		for (uint32_t n2 = (uint32_t)s; n2 != 0; n2 = p->nodes[n2].parent)
			if (!p->frames[p->nodes[n2].frame].library)
				fns[k++] = m.of_frame[p->nodes[n2].frame];
		if (depth > 0 && k > depth)
			k = depth;
		/* Outermost first from here on. */
		for (i = 0; i < k / 2; i++) {
			uint32_t tmp = fns[i];

			fns[i] = fns[k - 1 - i];
			fns[k - 1 - i] = tmp;
		}
		for (i = 0; i < k; i++)
			h = (h ^ fns[i]) * 0x100000001b3ull;
		first = (size_t)(h % cap);
		for (i = first; slots[i].index != 0 &&
		     !(slots[i].hash == h && same_path(fns, k, &paths[slots[i].index - 1], &m));
		     i = (i + 1) % cap)
			;
		if (slots[i].index == 0) {
			if ((n & (n - 1)) == 0)
				paths = xreallocarray(paths, n ? n * 2 : 1, sizeof *paths);
			paths[n].samples = 0;
			paths[n].n = k;
			paths[n].frames = xcalloc(k ? k : 1, sizeof *paths[n].frames);
			for (size_t j = 0; j < k; j++)
				paths[n].frames[j] = m.rep[fns[j]];
			slots[i].hash = h;
			slots[i].index = ++n;
		}
		paths[slots[i].index - 1].samples += p->self[s];
	}
	if (n > 1)
		qsort(paths, n, sizeof *paths, by_path_samples);
	free(slots);
	free(fns);
	unmap_functions(&m);
	*out = paths;
	return n;
}

void query_paths_free(struct qpath *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].frames);
	free(v);
}
