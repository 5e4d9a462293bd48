/*
 * Unit tests for intern: ids, prefix sharing, what counts as a distinct
 * frame or module, the definitions handed out, and a stress run checked
 * against a naive reference (linear searches, children lists).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "xalloc.h"

static struct perch_frame fr(const char *func, const char *file, int line,
			     const char *module, uint64_t off, bool inlined)
{
	return (struct perch_frame){
		.addr = 0x400000 + off, .module = module,
		.build_id = module != NULL ? "ab12" : "", .module_offset = off,
		.func = func, .file = file, .line = line, .inlined = inlined,
	};
}

static void test_empty(void **state)
{
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };

	(void)state;
	assert_int_equal(interner_stack(in, NULL, 0, &defs), 0);
	assert_int_equal(defs.nmodules + defs.nframes + defs.nnodes, 0);
	interner_free(in);
	interner_free(NULL);
	intern_defs_free(NULL);
}

static void test_same_stack(void **state)
{
	struct perch_frame s[3] = {
		fr("leaf", "a.c", 10, "/bin/x", 0x1010, false),
		fr("mid", "a.c", 20, "/bin/x", 0x1020, false),
		fr("main", "m.c", 5, "/bin/x", 0x1030, false),
	};
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };
	uint32_t id;

	(void)state;
	id = interner_stack(in, s, 3, &defs);
	assert_int_equal(id, 3);
	assert_int_equal(defs.nmodules, 1);
	assert_int_equal(defs.nframes, 3);
	assert_int_equal(defs.nnodes, 3);
	intern_defs_clear(&defs);
	assert_int_equal(interner_stack(in, s, 3, &defs), id);
	assert_int_equal(defs.nmodules + defs.nframes + defs.nnodes, 0);
	intern_defs_free(&defs);
	interner_free(in);
}

/* Creation order: outermost first; node 1 hangs off the root. */
static void test_defs_order(void **state)
{
	struct perch_frame s[2] = {
		fr("leaf", NULL, 0, NULL, 0x7f0000001234, false),
		fr("main", "m.c", 5, "/bin/x", 0x1030, false),
	};
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };

	(void)state;
	assert_int_equal(interner_stack(in, s, 2, &defs), 2);
	assert_int_equal(defs.nmodules, 1);
	assert_int_equal(defs.modules[0].id, 1);
	assert_string_equal(defs.modules[0].path, "/bin/x");
	assert_string_equal(defs.modules[0].build_id, "ab12");
	assert_int_equal(defs.nframes, 2);
	assert_int_equal(defs.frames[0].id, 1);
	assert_string_equal(defs.frames[0].func, "main");
	assert_string_equal(defs.frames[0].file, "m.c");
	assert_int_equal(defs.frames[0].line, 5);
	assert_int_equal(defs.frames[0].module_id, 1);
	assert_int_equal(defs.frames[0].address, 0x1030);
	assert_int_equal(defs.frames[1].id, 2);
	assert_string_equal(defs.frames[1].func, "leaf");
	assert_null(defs.frames[1].file);
	assert_int_equal(defs.frames[1].module_id, -1);
	assert_int_equal(defs.frames[1].address, 0x400000 + 0x7f0000001234);
	assert_int_equal(defs.nnodes, 2);
	assert_int_equal(defs.nodes[0].id, 1);
	assert_int_equal(defs.nodes[0].parent_id, 0);
	assert_int_equal(defs.nodes[0].frame_id, 1);
	assert_int_equal(defs.nodes[1].id, 2);
	assert_int_equal(defs.nodes[1].parent_id, 1);
	assert_int_equal(defs.nodes[1].frame_id, 2);
	intern_defs_free(&defs);
	interner_free(in);
}

static void test_prefix_sharing(void **state)
{
	struct perch_frame a[3] = {
		fr("leaf1", "a.c", 10, "/bin/x", 0x1010, false),
		fr("mid", "a.c", 20, "/bin/x", 0x1020, false),
		fr("main", "m.c", 5, "/bin/x", 0x1030, false),
	};
	struct perch_frame b[3] = {
		fr("leaf2", "a.c", 11, "/bin/x", 0x1014, false), a[1], a[2],
	};
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };

	(void)state;
	assert_int_equal(interner_stack(in, a, 3, &defs), 3);
	intern_defs_clear(&defs);
	assert_int_equal(interner_stack(in, b, 3, &defs), 4);
	assert_int_equal(defs.nmodules, 0);
	assert_int_equal(defs.nframes, 1);
	assert_string_equal(defs.frames[0].func, "leaf2");
	assert_int_equal(defs.nnodes, 1);
	assert_int_equal(defs.nodes[0].parent_id, 2);
	assert_int_equal(defs.nodes[0].frame_id, defs.frames[0].id);
	intern_defs_clear(&defs);
	/* A prefix of a known stack is a known node. */
	assert_int_equal(interner_stack(in, a + 1, 2, &defs), 2);
	assert_int_equal(defs.nnodes, 0);
	intern_defs_free(&defs);
	interner_free(in);
}

static uint32_t one(struct interner *in, struct perch_frame f,
		    struct intern_defs *defs)
{
	return interner_stack(in, &f, 1, defs);
}

static void test_distinctions(void **state)
{
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };
	struct perch_frame f = fr("f", "a.c", 1, "/lib/l.so", 0x10, false);
	struct perch_frame g;
	uint32_t base;

	(void)state;
	base = one(in, f, &defs);
	g = f;
	g.inlined = true;
	assert_int_not_equal(one(in, g, &defs), base);
	g = f;
	g.build_id = "cd34";
	assert_int_not_equal(one(in, g, &defs), base);
	g = f;
	g.module = "/lib/other.so";
	assert_int_not_equal(one(in, g, &defs), base);
	g = f;
	g.line = 2;
	assert_int_not_equal(one(in, g, &defs), base);
	g = f;
	g.file = NULL;
	assert_int_not_equal(one(in, g, &defs), base);
	/* The absolute address does not matter when there is a module. */
	g = f;
	g.addr += 0x1000;
	assert_int_equal(one(in, g, &defs), base);
	assert_int_equal(defs.nmodules, 3);
	assert_string_equal(defs.modules[1].build_id, "cd34");
	assert_string_equal(defs.modules[2].path, "/lib/other.so");
	assert_int_equal(defs.nframes, 6);
	assert_true(defs.frames[1].inlined);
	assert_int_equal(defs.frames[2].module_id, 2);
	intern_defs_free(&defs);
	interner_free(in);
}

/* Strings are compared by content, and forgotten pointers may be reused. */
static void test_content_not_pointers(void **state)
{
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };
	char func[16] = "alpha", mod[16] = "/bin/y";
	struct perch_frame f = fr(func, NULL, 0, mod, 0x20, false);
	struct perch_frame g = fr("alpha", NULL, 0, "/bin/y", 0x20, false);
	uint32_t a;

	(void)state;
	a = one(in, f, &defs);
	assert_int_equal(one(in, g, &defs), a);
	assert_int_equal(defs.nframes, 1);
	assert_int_equal(defs.nmodules, 1);
	interner_forget(in);
	strcpy(func, "beta");
	assert_int_not_equal(one(in, f, &defs), a);
	strcpy(func, "alpha");
	interner_forget(in);
	assert_int_equal(one(in, f, &defs), a);
	assert_int_equal(defs.nframes, 2);
	intern_defs_free(&defs);
	interner_free(in);
}

/* The stress run's frame pool: several pointer copies of each content. */
#define POOL		300
#define COPIES		2
#define STACKS		10000
#define MAX_DEPTH	40

struct pool_frame {
	struct perch_frame copy[COPIES];
	int ref;		/* index of the first pool entry with equal content */
};

struct ref_node {
	int parent, frame;	/* frame: ref frame index */
	int *kids;
	size_t nkids;
};

struct reference {
	int frame_of_pool[POOL];	/* ref frame id (from 1) or 0 */
	int nframes;
	const char *mod_path[16], *mod_bid[16];
	int nmods;
	struct ref_node *nodes;	/* [0] is the root */
	size_t nnodes;
};

static const char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void make_pool(struct pool_frame *p)
{
	static const char *mods[] = { "/bin/app", "/lib/libc.so.6", "/lib/libm.so", NULL };
	static const char *bids[] = { "aa", "bb", "" };
	static const char *files[] = { "a.c", "b.c", "c.h", NULL };
	char name[32];

	for (int i = 0; i < POOL; i++) {
		int m = rand() % 4;

		snprintf(name, sizeof name, "fn%d", rand() % 120);
		p[i].copy[0] = fr(name, files[rand() % 4], rand() % 3,
				  mods[m], (uint64_t)(rand() % 90) * 16,
				  rand() % 5 == 0);
		p[i].copy[0].build_id = m < 3 ? bids[rand() % 3] : "";
		for (int c = 0; c < COPIES; c++) {
			struct perch_frame *f = &p[i].copy[c];

			*f = p[i].copy[0];
			f->func = xstrdup(f->func);
			f->file = dup_or_null(f->file);
			f->module = dup_or_null(f->module);
			f->build_id = xstrdup(f->build_id);
		}
	}
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_content(const struct perch_frame *a, const struct perch_frame *b)
{
	uint64_t aa = a->module ? a->module_offset : a->addr;
	uint64_t ba = b->module ? b->module_offset : b->addr;

	return aa == ba && str_eq(a->func, b->func) && str_eq(a->file, b->file) &&
	       str_eq(a->module, b->module) && a->line == b->line &&
	       a->inlined == b->inlined &&
	       (a->module == NULL || str_eq(a->build_id, b->build_id));
}

static void ref_module(struct reference *r, const struct perch_frame *f)
{
	if (f->module == NULL)
		return;
	for (int m = 0; m < r->nmods; m++)
		if (str_eq(r->mod_path[m], f->module) &&
		    str_eq(r->mod_bid[m], f->build_id))
			return;
	r->mod_path[r->nmods] = f->module;
	r->mod_bid[r->nmods++] = f->build_id;
}

static int ref_frame(struct reference *r, struct pool_frame *p, int i)
{
	if (r->frame_of_pool[p[i].ref] == 0) {
		ref_module(r, &p[i].copy[0]);
		r->frame_of_pool[p[i].ref] = ++r->nframes;
	}
	return r->frame_of_pool[p[i].ref];
}

static int ref_child(struct reference *r, int parent, int frame)
{
	struct ref_node *pn = &r->nodes[parent];

	for (size_t k = 0; k < pn->nkids; k++)
		if (r->nodes[pn->kids[k]].frame == frame)
			return pn->kids[k];
	/* Grown by doubling: the sanitizer build copies on every realloc. */
	if ((r->nnodes & (r->nnodes - 1)) == 0)
		r->nodes = xreallocarray(r->nodes, r->nnodes * 2, sizeof *r->nodes);
	r->nodes[r->nnodes] = (struct ref_node){ parent, frame, NULL, 0 };
	pn = &r->nodes[parent];
	if ((pn->nkids & (pn->nkids - 1)) == 0)
		pn->kids = xreallocarray(pn->kids, pn->nkids ? pn->nkids * 2 : 1,
					 sizeof *pn->kids);
	pn->kids[pn->nkids++] = (int)r->nnodes;
	return (int)r->nnodes++;
}

/* Checks the new definitions against the reference's view of them. */
static void check_defs(struct reference *r, const struct intern_defs *d,
		       size_t *seen_nodes, int *seen_frames, int *seen_mods)
{
	for (size_t i = 0; i < d->nmodules; i++) {
		assert_int_equal(d->modules[i].id, ++*seen_mods);
		assert_string_equal(d->modules[i].path, r->mod_path[*seen_mods - 1]);
		assert_string_equal(d->modules[i].build_id, r->mod_bid[*seen_mods - 1]);
	}
	for (size_t i = 0; i < d->nframes; i++)
		assert_int_equal(d->frames[i].id, ++*seen_frames);
	for (size_t i = 0; i < d->nnodes; i++) {
		const struct ref_node *rn = &r->nodes[++*seen_nodes];

		assert_int_equal(d->nodes[i].id, *seen_nodes);
		assert_int_equal(d->nodes[i].parent_id, rn->parent);
		assert_int_equal(d->nodes[i].frame_id, rn->frame);
	}
	assert_int_equal(*seen_nodes, r->nnodes - 1);
	assert_int_equal(*seen_frames, r->nframes);
	assert_int_equal(*seen_mods, r->nmods);
}

static void stress_one(struct interner *in, struct reference *r,
		       struct pool_frame *pool, struct intern_defs *defs)
{
	struct perch_frame s[MAX_DEPTH];
	int n = rand() % (MAX_DEPTH + 1), node = 0;

	/* Few choices near the root, many near the leaf: realistic sharing. */
	for (int depth = 0; depth < n; depth++) {
		int i = rand() % (depth < 8 ? 4 : POOL);

		s[n - 1 - depth] = pool[i].copy[rand() % COPIES];
		node = ref_child(r, node, ref_frame(r, pool, i));
	}
	assert_int_equal(interner_stack(in, s, (size_t)n, defs), node);
}

static void test_stress(void **state)
{
	struct pool_frame *pool = xcalloc(POOL, sizeof *pool);
	struct reference r = { .nnodes = 1 };
	struct interner *in = interner_create();
	struct intern_defs defs = { 0 };
	size_t seen_nodes = 0;
	int seen_frames = 0, seen_mods = 0;

	(void)state;
	srand(42);
	make_pool(pool);
	for (int i = 0; i < POOL; i++)
		for (pool[i].ref = 0; !same_content(&pool[pool[i].ref].copy[0],
						    &pool[i].copy[0]);)
			pool[i].ref++;
	r.nodes = xcalloc(1, sizeof *r.nodes);
	for (int k = 0; k < STACKS; k++) {
		stress_one(in, &r, pool, &defs);
		check_defs(&r, &defs, &seen_nodes, &seen_frames, &seen_mods);
		/* Frame content of new frames, through the pool entry. */
		for (size_t i = 0; i < defs.nframes; i++) {
			int p = 0;

			while (r.frame_of_pool[pool[p].ref] != (int)defs.frames[i].id)
				p++;
			assert_string_equal(defs.frames[i].func, pool[p].copy[0].func);
			assert_int_equal(defs.frames[i].inlined, pool[p].copy[0].inlined);
		}
		intern_defs_clear(&defs);
		if (k % 1000 == 999)
			interner_forget(in);
	}
	assert_true(r.nnodes > 1000);
	for (size_t i = 0; i < r.nnodes; i++)
		free(r.nodes[i].kids);
	free(r.nodes);
	for (int i = 0; i < POOL; i++)
		for (int c = 0; c < COPIES; c++) {
			free((char *)pool[i].copy[c].func);
			free((char *)pool[i].copy[c].file);
			free((char *)pool[i].copy[c].module);
			free((char *)pool[i].copy[c].build_id);
		}
	free(pool);
	intern_defs_free(&defs);
	interner_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_same_stack),
		cmocka_unit_test(test_defs_order),
		cmocka_unit_test(test_prefix_sharing),
		cmocka_unit_test(test_distinctions),
		cmocka_unit_test(test_content_not_pointers),
		cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
