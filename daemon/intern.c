/*
 * intern: see intern.h.
 *
 * The canonical tables are keyed by content: modules by (path, build id),
 * frames by (module, address, function, file, line, inlined), nodes by
 * (parent, frame).  Strings are copied once into an arena and, from then
 * on, compared by pointer.  An id is its entry's index + 1, so ids are dense
 * from 1 in creation order.
 *
 * Hashing a frame's strings costs more than everything else: a 30-frame
 * stack seen before costs about 4 µs by content alone.  So in front of the
 * frame table sits a cache keyed by the engine's own pointers, which are
 * stable for as long as the target that gave them is open (another target
 * may reuse that memory once the first is closed, hence interner_forget),
 * and each of its entries remembers what the last stack through it did
 * next.  A stack seen before then costs 0.25-0.35 µs in a server-like
 * stream, 0.65 µs when its 20 innermost frames vary at random (bench_store
 * and its variants, 2 vCPU VM).
 *
 * Tables are open addressing with linear probing.  Their slots hold a
 * 32-bit hash and an entry index + 1, so growing never rehashes a string;
 * the node table, probed for nearly every frame, holds key and id in the
 * slot itself.
 */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define ARENA_BLOCK	(64 * 1024)
#define TABLE_MIN	64

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char data[];
};

/* Slots: (hash << 32) | (index + 1), 0 when empty. */
struct table {
	uint64_t *slots;
	size_t cap, n;
};

struct module_key {
	const char *path, *build_id;	/* arena strings */
};

struct frame_key {
	uint64_t address;
	const char *func, *file;	/* arena strings; file may be NULL */
	uint32_t module_id;		/* 0: none */
	int line;
	bool inlined;
};

/*
 * A frame as the engine gave it, for the pointer cache, with what the last
 * stack through it did next: its node under which parent, and the entry of
 * the next frame in.  A stack seen before then costs a compare per frame.
 */
struct raw_key {
	const char *module, *build_id, *func, *file;
	uint64_t address;
	uint64_t line_inlined;	/* line << 1 | inlined: one compare */
	uint32_t frame_id;
	uint32_t last_parent, last_node;	/* last_node 0: none yet */
	uint32_t last_next;	/* entry index + 1, 0: none */
};

/* Nodes are looked up on every frame: key and id in the slot, one miss. */
struct node_slot {
	uint64_t key;	/* parent << 32 | frame; 0: empty (frames are >= 1) */
	uint32_t id;
};

struct interner {
	struct arena_block *arena;
	struct table strings, modules, frames, raw;
	struct node_slot *nodes;
	size_t nodes_cap, nnodes;
	const char **strv;
	size_t nstrv, strv_cap;
	struct module_key *modv;
	size_t nmodv, modv_cap;
	struct frame_key *framev;
	size_t nframev, framev_cap;
	struct raw_key *rawv;
	size_t nrawv, rawv_cap;
	uint32_t first;		/* entry + 1 of the last stack's outermost frame */
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

static uint32_t fold(uint64_t h)
{
	h *= 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(h ^ (h >> 32));
}

/*
 * Keys of several words: one multiply per word, all independent, so the
 * hash costs a few cycles instead of a chain of dependent mixes.  The high
 * half of each product depends on every bit of its word.
 */
static uint32_t hash_words(const uint64_t *w, size_t n)
{
	static const uint64_t k[6] = {
		0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
		0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull,
		0xff51afd7ed558ccdull, 0xc4ceb9fe1a85ec53ull,
	};
	uint64_t h = 0;

	for (size_t i = 0; i < n; i++)
		h ^= w[i] * k[i];
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* Eight bytes at a time: strings are the long part of every key. */
static uint32_t hash_string(const char *s, size_t len)
{
	uint64_t h = len, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		h = mix(h, w);
	}
	w = 0;
	memcpy(&w, s + i, len - i);
	return fold(mix(h, w));
}

static void *grow(void *v, size_t *cap, size_t size)
{
	*cap = *cap ? *cap * 2 : 64;
	return xreallocarray(v, *cap, size);
}

static void table_reserve(struct table *t)
{
	uint64_t *old = t->slots;
	size_t oldcap = t->cap;

	if ((t->n + 1) * 2 <= t->cap)
		return;
	t->cap = t->cap ? t->cap * 2 : TABLE_MIN;
	t->slots = xcalloc(t->cap, sizeof *t->slots);
	for (size_t i = 0; i < oldcap; i++) {
		size_t j = (old[i] >> 32) & (t->cap - 1);

		if (old[i] == 0)
			continue;
		while (t->slots[j] != 0)
			j = (j + 1) & (t->cap - 1);
		t->slots[j] = old[i];
	}
	free(old);
}

static void table_put(struct table *t, size_t slot, uint32_t h, size_t index)
{
	t->slots[slot] = (uint64_t)h << 32 | (uint64_t)(index + 1);
	t->n++;
}

static void table_clear(struct table *t)
{
	if (t->n != 0)
		memset(t->slots, 0, t->cap * sizeof *t->slots);
	t->n = 0;
}

static char *arena_strdup(struct interner *in, const char *s, size_t len)
{
	struct arena_block *b = in->arena;
	char *p;

	if (b == NULL || b->cap - b->used < len + 1) {
		size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;

		b = xmalloc(sizeof *b + cap);
		b->next = in->arena;
		b->used = 0;
		b->cap = cap;
		in->arena = b;
	}
	p = b->data + b->used;
	memcpy(p, s, len);
	p[len] = '\0';
	b->used += len + 1;
	return p;
}

/* The arena copy of s: equal strings give equal pointers.  NULL stays NULL. */
static const char *intern_string(struct interner *in, const char *s)
{
	size_t len, i;
	uint32_t h;
	uint64_t slot;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	h = hash_string(s, len);
	table_reserve(&in->strings);
	for (i = h & (in->strings.cap - 1); (slot = in->strings.slots[i]) != 0;
	     i = (i + 1) & (in->strings.cap - 1)) {
		const char *t = in->strv[(uint32_t)slot - 1];

		if ((uint32_t)(slot >> 32) == h && memcmp(t, s, len + 1) == 0)
			return t;
	}
	if (in->nstrv == in->strv_cap)
		in->strv = grow(in->strv, &in->strv_cap, sizeof *in->strv);
	in->strv[in->nstrv] = arena_strdup(in, s, len);
	table_put(&in->strings, i, h, in->nstrv);
	return in->strv[in->nstrv++];
}

static void def_module(struct intern_defs *defs, uint32_t id,
		       const struct module_key *k)
{
	struct intern_module *m;

	if (defs->nmodules == defs->modules_cap)
		defs->modules = grow(defs->modules, &defs->modules_cap,
				     sizeof *defs->modules);
	m = &defs->modules[defs->nmodules++];
	m->id = id;
	m->path = xstrdup(k->path);
	m->build_id = xstrdup(k->build_id);
}

/* 0 for a frame without module. */
static uint32_t module_id(struct interner *in, const struct perch_frame *f,
			  struct intern_defs *defs)
{
	struct module_key k;
	uint32_t h;
	uint64_t slot;
	size_t i;

	if (f->module == NULL)
		return 0;
	k.path = intern_string(in, f->module);
	k.build_id = intern_string(in, f->build_id != NULL ? f->build_id : "");
	h = hash_words((const uint64_t[]){ (uintptr_t)k.path,
					   (uintptr_t)k.build_id }, 2);
	table_reserve(&in->modules);
	for (i = h & (in->modules.cap - 1); (slot = in->modules.slots[i]) != 0;
	     i = (i + 1) & (in->modules.cap - 1)) {
		const struct module_key *e = &in->modv[(uint32_t)slot - 1];

		if (e->path == k.path && e->build_id == k.build_id)
			return (uint32_t)slot;
	}
	if (in->nmodv == in->modv_cap)
		in->modv = grow(in->modv, &in->modv_cap, sizeof *in->modv);
	in->modv[in->nmodv] = k;
	table_put(&in->modules, i, h, in->nmodv++);
	def_module(defs, (uint32_t)in->nmodv, &k);
	return (uint32_t)in->nmodv;
}

static uint32_t hash_frame(const struct frame_key *k)
{
	return hash_words((const uint64_t[]){
		k->address, (uintptr_t)k->func, (uintptr_t)k->file,
		(uint64_t)k->module_id << 32 | (uint32_t)k->line, k->inlined,
	}, 5);
}

static bool frame_equal(const struct frame_key *a, const struct frame_key *b)
{
	return a->address == b->address && a->func == b->func &&
	       a->file == b->file && a->module_id == b->module_id &&
	       a->line == b->line && a->inlined == b->inlined;
}

static void def_frame(struct intern_defs *defs, uint32_t id,
		      const struct frame_key *k)
{
	struct intern_frame *f;

	if (defs->nframes == defs->frames_cap)
		defs->frames = grow(defs->frames, &defs->frames_cap,
				    sizeof *defs->frames);
	f = &defs->frames[defs->nframes++];
	f->id = id;
	f->module_id = k->module_id != 0 ? (int64_t)k->module_id : -1;
	f->address = k->address;
	f->func = xstrdup(k->func);
	f->file = k->file != NULL ? xstrdup(k->file) : NULL;
	f->line = k->line;
	f->inlined = k->inlined;
}

/* The frame id by content. */
static uint32_t frame_id(struct interner *in, const struct perch_frame *f,
			 struct intern_defs *defs)
{
	struct frame_key k;
	uint32_t h;
	uint64_t slot;
	size_t i;

	k.module_id = module_id(in, f, defs);
	k.address = f->module != NULL ? f->module_offset : f->addr;
	k.func = intern_string(in, f->func);
	k.file = intern_string(in, f->file);
	k.line = f->line;
	k.inlined = f->inlined;
	h = hash_frame(&k);
	table_reserve(&in->frames);
	for (i = h & (in->frames.cap - 1); (slot = in->frames.slots[i]) != 0;
	     i = (i + 1) & (in->frames.cap - 1))
		if ((uint32_t)(slot >> 32) == h &&
		    frame_equal(&in->framev[(uint32_t)slot - 1], &k))
			return (uint32_t)slot;
	if (in->nframev == in->framev_cap)
		in->framev = grow(in->framev, &in->framev_cap, sizeof *in->framev);
	in->framev[in->nframev] = k;
	table_put(&in->frames, i, h, in->nframev++);
	def_frame(defs, (uint32_t)in->nframev, &k);
	return (uint32_t)in->nframev;
}

static bool raw_matches(const struct raw_key *k, const struct perch_frame *f)
{
	return k->func == f->func && k->file == f->file &&
	       k->module == f->module && k->build_id == f->build_id &&
	       k->address == (f->module != NULL ? f->module_offset : f->addr) &&
	       k->line_inlined == ((uint64_t)(uint32_t)f->line << 1 | f->inlined);
}

static uint32_t hash_raw(const struct perch_frame *f)
{
	return hash_words((const uint64_t[]){
		f->module != NULL ? f->module_offset : f->addr,
		(uintptr_t)f->module, (uintptr_t)f->build_id,
		(uintptr_t)f->func, (uintptr_t)f->file,
		(uint64_t)(uint32_t)f->line << 1 | f->inlined,
	}, 6);
}

/* The index of f's pointer-cache entry, made (by content) on a miss. */
static uint32_t raw_entry(struct interner *in, const struct perch_frame *f,
			  struct intern_defs *defs)
{
	uint32_t h = hash_raw(f);
	uint64_t slot;
	size_t i;

	table_reserve(&in->raw);
	for (i = h & (in->raw.cap - 1); (slot = in->raw.slots[i]) != 0;
	     i = (i + 1) & (in->raw.cap - 1))
		if ((uint32_t)(slot >> 32) == h &&
		    raw_matches(&in->rawv[(uint32_t)slot - 1], f))
			return (uint32_t)slot - 1;
	if (in->nrawv == in->rawv_cap)
		in->rawv = grow(in->rawv, &in->rawv_cap, sizeof *in->rawv);
	in->rawv[in->nrawv] = (struct raw_key){
		.module = f->module, .build_id = f->build_id,
		.func = f->func, .file = f->file,
		.address = f->module != NULL ? f->module_offset : f->addr,
		.line_inlined = (uint64_t)(uint32_t)f->line << 1 | f->inlined,
		.frame_id = frame_id(in, f, defs),
	};
	table_put(&in->raw, i, h, in->nrawv);
	return (uint32_t)in->nrawv++;
}

static void def_node(struct intern_defs *defs, uint32_t id, uint32_t parent,
		     uint32_t frame)
{
	if (defs->nnodes == defs->nodes_cap)
		defs->nodes = grow(defs->nodes, &defs->nodes_cap,
				   sizeof *defs->nodes);
	defs->nodes[defs->nnodes++] = (struct intern_node){
		.id = id, .parent_id = parent, .frame_id = frame,
	};
}

static size_t node_slot(uint64_t key, size_t cap)
{
	return hash_words(&key, 1) & (cap - 1);
}

static void nodes_reserve(struct interner *in)
{
	struct node_slot *old = in->nodes;
	size_t oldcap = in->nodes_cap;

	if ((in->nnodes + 1) * 2 <= in->nodes_cap)
		return;
	in->nodes_cap = in->nodes_cap ? in->nodes_cap * 2 : TABLE_MIN;
	in->nodes = xcalloc(in->nodes_cap, sizeof *in->nodes);
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (old[i].key == 0)
			continue;
		for (j = node_slot(old[i].key, in->nodes_cap); in->nodes[j].key != 0;
		     j = (j + 1) & (in->nodes_cap - 1))
			;
		in->nodes[j] = old[i];
	}
	free(old);
}

static uint32_t node_id(struct interner *in, uint32_t parent, uint32_t frame,
			struct intern_defs *defs)
{
	uint64_t key = (uint64_t)parent << 32 | frame;
	size_t i;

	nodes_reserve(in);
	for (i = node_slot(key, in->nodes_cap); in->nodes[i].key != 0;
	     i = (i + 1) & (in->nodes_cap - 1))
		if (in->nodes[i].key == key)
			return in->nodes[i].id;
	in->nodes[i].key = key;
	in->nodes[i].id = (uint32_t)++in->nnodes;
	def_node(defs, in->nodes[i].id, parent, frame);
	return in->nodes[i].id;
}

struct interner *interner_create(void)
{
	return xcalloc(1, sizeof(struct interner));
}

void interner_free(struct interner *in)
{
	if (in == NULL)
		return;
	while (in->arena != NULL) {
		struct arena_block *next = in->arena->next;

		free(in->arena);
		in->arena = next;
	}
	free(in->strings.slots);
	free(in->modules.slots);
	free(in->frames.slots);
	free(in->nodes);
	free(in->raw.slots);
	free(in->strv);
	free(in->modv);
	free(in->framev);
	free(in->rawv);
	free(in);
}

void interner_forget(struct interner *in)
{
	table_clear(&in->raw);
	in->nrawv = 0;
	in->first = 0;
}

/* The node of frame entry e under parent. */
static uint32_t child(struct interner *in, uint32_t e, uint32_t parent,
		      struct intern_defs *defs)
{
	struct raw_key *k = &in->rawv[e];

	if (k->last_node == 0 || k->last_parent != parent) {
		uint32_t node = node_id(in, parent, k->frame_id, defs);

		k = &in->rawv[e];
		k->last_parent = parent;
		k->last_node = node;
	}
	return k->last_node;
}

/*
 * Each frame is first checked against the entry that followed the previous
 * frame's entry last time; only a mismatch costs a hash lookup.
 */
uint32_t interner_stack(struct interner *in, const struct perch_frame *frames,
			size_t n, struct intern_defs *defs)
{
	uint32_t node = 0, prev = 0;	/* entry + 1; 0: the root */

	while (n-- > 0) {
		uint32_t *next = prev ? &in->rawv[prev - 1].last_next : &in->first;
		uint32_t e = *next;

		if (e == 0 || !raw_matches(&in->rawv[e - 1], &frames[n])) {
			e = raw_entry(in, &frames[n], defs) + 1;
			/* raw_entry may have moved rawv. */
			*(prev ? &in->rawv[prev - 1].last_next : &in->first) = e;
		}
		node = child(in, e - 1, node, defs);
		prev = e;
	}
	return node;
}

void intern_defs_clear(struct intern_defs *defs)
{
	for (size_t i = 0; i < defs->nmodules; i++) {
		free(defs->modules[i].path);
		free(defs->modules[i].build_id);
	}
	for (size_t i = 0; i < defs->nframes; i++) {
		free(defs->frames[i].func);
		free(defs->frames[i].file);
	}
	defs->nmodules = defs->nframes = defs->nnodes = 0;
}

void intern_defs_free(struct intern_defs *defs)
{
	if (defs == NULL)
		return;
	intern_defs_clear(defs);
	free(defs->modules);
	free(defs->frames);
	free(defs->nodes);
	*defs = (struct intern_defs){ 0 };
}
