/*
 * pprof's profile format: a gzipped profile.proto message (field numbers
 * from pprof's documentation of the format), written with protobuf.h.
 *
 * Mappings are the modules, main executable first as pprof expects.
 * perch keeps each frame's ELF virtual address within its module, not where
 * the module was loaded, so a mapping covers [0, highest address + 1) of
 * its file and mappings overlap; frames are already symbolized (functions,
 * files, lines and inlines), and the mappings say so, so pprof never needs
 * to read the binaries.  A location is one address of one module: an
 * inlined function and the functions it was inlined into are the lines of
 * one location, innermost first.
 */
#include "export.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "protobuf.h"
#include "xalloc.h"

/* Field numbers of profile.proto. */
enum {
	PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE, PROFILE_MAPPING, PROFILE_LOCATION,
	PROFILE_FUNCTION, PROFILE_STRING_TABLE, PROFILE_TIME_NANOS = 9,
	PROFILE_DURATION_NANOS, PROFILE_PERIOD_TYPE, PROFILE_PERIOD, PROFILE_COMMENT,
	PROFILE_DEFAULT_SAMPLE_TYPE,
	VALUE_TYPE_TYPE = 1, VALUE_TYPE_UNIT,
	SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE,
	MAPPING_ID = 1, MAPPING_MEMORY_START, MAPPING_MEMORY_LIMIT, MAPPING_FILE_OFFSET,
	MAPPING_FILENAME, MAPPING_BUILD_ID, MAPPING_HAS_FUNCTIONS, MAPPING_HAS_FILENAMES,
	MAPPING_HAS_LINE_NUMBERS, MAPPING_HAS_INLINE_FRAMES,
	LOCATION_ID = 1, LOCATION_MAPPING_ID, LOCATION_ADDRESS, LOCATION_LINE,
	LINE_FUNCTION_ID = 1, LINE_LINE,
	FUNCTION_ID = 1, FUNCTION_NAME, FUNCTION_SYSTEM_NAME, FUNCTION_FILENAME,
};

/* ---- tables: strings by content, ids by a 64-bit key ----------------- */

/* The string table: pprof refers to every string by its index. */
struct strtab {
	const char **v;		/* not owned: the profile's strings and literals */
	size_t n, cap;
	uint32_t *slots;	/* index + 1 of the string hashed there; 0: empty */
	size_t nslots;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;	/* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return h;
}

static uint32_t *str_slot(uint32_t *slots, size_t nslots, const char **v, const char *s)
{
	size_t i = hash(s) & (nslots - 1);

	while (slots[i] != 0 && strcmp(v[slots[i] - 1], s) != 0)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

static int64_t str_index(struct strtab *t, const char *s)
{
	uint32_t *slot;

	if ((t->n + 1) * 2 > t->nslots) {
		size_t nslots = t->nslots ? t->nslots * 2 : 1024;
		uint32_t *slots = xcalloc(nslots, sizeof *slots);

		for (size_t i = 0; i < t->n; i++)
			*str_slot(slots, nslots, t->v, t->v[i]) = (uint32_t)i + 1;
		free(t->slots);
		t->slots = slots;
		t->nslots = nslots;
	}
	slot = str_slot(t->slots, t->nslots, t->v, s);
	if (*slot == 0) {
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 256;
			t->v = xreallocarray(t->v, t->cap, sizeof *t->v);
		}
		t->v[t->n++] = s;
		*slot = (uint32_t)t->n;
	}
	return *slot - 1;
}

/* Ids (> 0) by a 64-bit key. */
struct idmap {
	uint64_t *keys;
	uint32_t *ids;		/* 0: empty slot */
	size_t n, cap;
};

static uint32_t *id_slot(uint64_t *keys, uint32_t *ids, size_t cap, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15u) >> 20) & (cap - 1);

	while (ids[i] != 0 && keys[i] != key)
		i = (i + 1) & (cap - 1);
	return &ids[i];
}

/* The slot of key, to read (0: absent) or to fill with a new id. */
static uint32_t *id_find(struct idmap *m, uint64_t key)
{
	uint32_t *slot;

	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		uint64_t *keys = xcalloc(cap, sizeof *keys);
		uint32_t *ids = xcalloc(cap, sizeof *ids);

		for (size_t i = 0; i < m->cap; i++) {
			if (m->ids[i] == 0)
				continue;
			slot = id_slot(keys, ids, cap, m->keys[i]);
			*slot = m->ids[i];
			keys[slot - ids] = m->keys[i];
		}
		free(m->keys);
		free(m->ids);
		m->keys = keys;
		m->ids = ids;
		m->cap = cap;
	}
	slot = id_slot(m->keys, m->ids, m->cap, key);
	if (*slot == 0) {
		m->keys[slot - m->ids] = key;
		m->n++;
	}
	return slot;
}

/* ---- building the tables ----------------------------------------------- */

struct pfunc {
	int64_t name, file;
};

struct pmapping {
	int64_t file, build_id;
	uint64_t limit;
};

struct plocation {
	uint32_t node;		/* the innermost frame's node, for the lines */
	uint32_t mapping;	/* 0: none */
	uint64_t address;
};

struct builder {
	const struct profile *p;
	const struct export_pprof_opts *o;
	struct strtab strings;
	struct idmap func_ids, mapping_ids;
	uint32_t *func_of_frame, *loc_of_frame;	/* 0: not made yet */
	struct pfunc *funcs;
	struct pmapping *mappings;
	struct plocation *locs;
	size_t nfuncs, nmappings, nlocs;
};

/* v with room for element n, growing by doubling. */
static void *grow(void *v, size_t n, size_t size)
{
	return (n & (n - 1)) == 0 ? xreallocarray(v, n ? n * 2 : 1, size) : v;
}

static const char *build_id(const struct export_pprof_opts *o, const char *module)
{
	for (size_t i = 0; i < o->nmodules; i++)
		if (strcmp(o->modules[i].path, module) == 0)
			return o->modules[i].build_id;
	return "";
}

static uint32_t mapping_of(struct builder *b, const char *module)
{
	int64_t file;
	uint32_t *id;

	if (module == NULL)
		return 0;
	file = str_index(&b->strings, module);
	id = id_find(&b->mapping_ids, (uint64_t)file);
	if (*id == 0) {
		b->mappings = grow(b->mappings, b->nmappings, sizeof *b->mappings);
		b->mappings[b->nmappings++] = (struct pmapping){
			file, str_index(&b->strings, build_id(b->o, module)), 0 };
		*id = (uint32_t)b->nmappings;
	}
	return *id;
}

static uint32_t function_of(struct builder *b, uint32_t frame)
{
	const struct pframe *f = &b->p->frames[frame];
	int64_t name, file;
	uint32_t *id;

	if (b->func_of_frame[frame] != 0)
		return b->func_of_frame[frame];
	name = str_index(&b->strings, f->func);
	file = str_index(&b->strings, f->file ? f->file : "");
	id = id_find(&b->func_ids, (uint64_t)name << 32 | (uint64_t)file);
	if (*id == 0) {
		b->funcs = grow(b->funcs, b->nfuncs, sizeof *b->funcs);
		b->funcs[b->nfuncs++] = (struct pfunc){ name, file };
		*id = (uint32_t)b->nfuncs;
	}
	return b->func_of_frame[frame] = *id;
}

/* The outermost node of the location whose innermost frame is node n. */
static uint32_t location_top(const struct profile *p, uint32_t n)
{
	while (p->frames[p->nodes[n].frame].inlined && p->nodes[n].parent != 0)
		n = p->nodes[n].parent;
	return n;
}

/*
 * The location whose innermost frame is node n's.  The symbolizer turns
 * an address into one chain of inlined frames, so that frame identifies
 * the location.
 */
static uint32_t location_of(struct builder *b, uint32_t n)
{
	const struct profile *p = b->p;
	uint32_t frame = p->nodes[n].frame, top = location_top(p, n);
	struct plocation l = { n, 0, p->frames[frame].address };

	if (b->loc_of_frame[frame] != 0)
		return b->loc_of_frame[frame];
	l.mapping = mapping_of(b, p->frames[frame].module);
	if (l.mapping != 0 && b->mappings[l.mapping - 1].limit <= l.address)
		b->mappings[l.mapping - 1].limit = l.address + 1;
	for (uint32_t k = n;; k = p->nodes[k].parent) {
		function_of(b, p->nodes[k].frame);
		if (k == top)
			break;
	}
	b->locs = grow(b->locs, b->nlocs, sizeof *b->locs);
	b->locs[b->nlocs++] = l;
	return b->loc_of_frame[frame] = (uint32_t)b->nlocs;
}

/* pprof takes the first mapping for the main binary. */
static void main_mapping_first(struct builder *b)
{
	const struct profile *p = b->p;

	for (size_t i = 1; p->exe != NULL && i < p->nframes; i++) {
		if (p->frames[i].module != NULL && strcmp(p->frames[i].module, p->exe) == 0) {
			mapping_of(b, p->frames[i].module);
			return;
		}
	}
}

/* ---- encoding ------------------------------------------------------------ */

static void value_type(struct builder *b, struct protobuf *out, uint32_t field,
		       const char *type, const char *unit)
{
	struct protobuf m = { 0 };

	protobuf_uint(&m, VALUE_TYPE_TYPE, (uint64_t)str_index(&b->strings, type));
	protobuf_uint(&m, VALUE_TYPE_UNIT, (uint64_t)str_index(&b->strings, unit));
	protobuf_message(out, field, &m);
	protobuf_free(&m);
}

static const char *time_kind(const struct builder *b)
{
	return b->o->filter->cpu_only ? "cpu" : "wall";
}

/* One Sample per stack with samples: its locations leaf first. */
static void encode_samples(struct builder *b, struct protobuf *out)
{
	const struct profile *p = b->p;
	uint64_t *locs = xcalloc(p->nnodes ? p->nnodes : 1, sizeof *locs), values[2];
	struct protobuf m = { 0 };

	for (uint32_t leaf = 1; leaf < p->nnodes; leaf++) {
		size_t n = 0;

		if (p->self[leaf] == 0)
			continue;
		for (uint32_t k = leaf; k != 0; k = p->nodes[location_top(p, k)].parent)
			locs[n++] = location_of(b, k);
		values[0] = p->self[leaf];
		values[1] = (uint64_t)llround((double)p->self[leaf] * 1e9 / p->rate_hz);
		protobuf_reset(&m);
		protobuf_packed(&m, SAMPLE_LOCATION_ID, locs, n);
		protobuf_packed(&m, SAMPLE_VALUE, values, 2);
		protobuf_message(out, PROFILE_SAMPLE, &m);
	}
	protobuf_free(&m);
	free(locs);
}

static void encode_mappings(const struct builder *b, struct protobuf *out)
{
	struct protobuf m = { 0 };

	for (size_t i = 0; i < b->nmappings; i++) {
		protobuf_reset(&m);
		protobuf_uint(&m, MAPPING_ID, i + 1);
		protobuf_uint(&m, MAPPING_MEMORY_LIMIT, b->mappings[i].limit);
		protobuf_uint(&m, MAPPING_FILENAME, (uint64_t)b->mappings[i].file);
		protobuf_uint(&m, MAPPING_BUILD_ID, (uint64_t)b->mappings[i].build_id);
		protobuf_uint(&m, MAPPING_HAS_FUNCTIONS, 1);
		protobuf_uint(&m, MAPPING_HAS_FILENAMES, 1);
		protobuf_uint(&m, MAPPING_HAS_LINE_NUMBERS, 1);
		protobuf_uint(&m, MAPPING_HAS_INLINE_FRAMES, 1);
		protobuf_message(out, PROFILE_MAPPING, &m);
	}
	protobuf_free(&m);
}

static void encode_locations(const struct builder *b, struct protobuf *out)
{
	const struct profile *p = b->p;
	struct protobuf m = { 0 }, line = { 0 };

	for (size_t i = 0; i < b->nlocs; i++) {
		const struct plocation *l = &b->locs[i];
		uint32_t top = location_top(p, l->node);

		protobuf_reset(&m);
		protobuf_uint(&m, LOCATION_ID, i + 1);
		if (l->mapping != 0)
			protobuf_uint(&m, LOCATION_MAPPING_ID, l->mapping);
		protobuf_uint(&m, LOCATION_ADDRESS, l->address);
		for (uint32_t k = l->node;; k = p->nodes[k].parent) {
			const struct pframe *f = &p->frames[p->nodes[k].frame];

			protobuf_reset(&line);
			protobuf_uint(&line, LINE_FUNCTION_ID, b->func_of_frame[p->nodes[k].frame]);
			protobuf_uint(&line, LINE_LINE, (uint64_t)f->line);
			protobuf_message(&m, LOCATION_LINE, &line);
			if (k == top)
				break;
		}
		protobuf_message(out, PROFILE_LOCATION, &m);
	}
	protobuf_free(&line);
	protobuf_free(&m);
}

static void encode_functions(const struct builder *b, struct protobuf *out)
{
	struct protobuf m = { 0 };

	for (size_t i = 0; i < b->nfuncs; i++) {
		protobuf_reset(&m);
		protobuf_uint(&m, FUNCTION_ID, i + 1);
		protobuf_uint(&m, FUNCTION_NAME, (uint64_t)b->funcs[i].name);
		protobuf_uint(&m, FUNCTION_SYSTEM_NAME, (uint64_t)b->funcs[i].name);
		protobuf_uint(&m, FUNCTION_FILENAME, (uint64_t)b->funcs[i].file);
		protobuf_message(out, PROFILE_FUNCTION, &m);
	}
	protobuf_free(&m);
}

/* When the samples start and how long they span, in ns (the time window). */
static void time_span(const struct builder *b, uint64_t *start, uint64_t *duration)
{
	const struct profile *p = b->p;
	const struct profile_filter *f = b->o->filter;
	uint64_t end = p->ended_ns;

	*start = p->started_ns + (f->from_s > 0 ? (uint64_t)(f->from_s * 1e9) : 0);
	if (f->to_s >= 0 && p->started_ns + (uint64_t)(f->to_s * 1e9) < end)
		end = p->started_ns + (uint64_t)(f->to_s * 1e9);
	*duration = end > *start ? end - *start : 0;
}

/* The header fields; the comment says what the samples are. */
static void encode_header(struct builder *b, struct protobuf *out)
{
	const struct profile *p = b->p;
	uint64_t start, duration, comment[2];
	char *what = xasprintf("perch session %" PRId64 ": %s (pid %d), %g Hz", p->id,
			       p->exe ? p->exe : "?", p->pid, p->rate_hz);

	time_span(b, &start, &duration);
	protobuf_uint(out, PROFILE_TIME_NANOS, start);
	protobuf_uint(out, PROFILE_DURATION_NANOS, duration);
	value_type(b, out, PROFILE_PERIOD_TYPE, time_kind(b), "nanoseconds");
	protobuf_uint(out, PROFILE_PERIOD, (uint64_t)llround(1e9 / p->rate_hz));
	comment[0] = (uint64_t)str_index(&b->strings, what);
	comment[1] = (uint64_t)str_index(&b->strings, b->o->filter->cpu_only ?
		"CPU time: samples of running threads only" :
		"wall-clock time: every thread, running or waiting");
	protobuf_packed(out, PROFILE_COMMENT, comment, 2);
	protobuf_uint(out, PROFILE_DEFAULT_SAMPLE_TYPE,
		      (uint64_t)str_index(&b->strings, time_kind(b)));
	/* The table last: every field above adds to it. */
	for (size_t i = 0; i < b->strings.n; i++)
		protobuf_string(out, PROFILE_STRING_TABLE, b->strings.v[i]);
	free(what);
}

static void encode(struct builder *b, struct protobuf *out)
{
	str_index(&b->strings, "");	/* index 0, as the format requires */
	main_mapping_first(b);
	value_type(b, out, PROFILE_SAMPLE_TYPE, "samples", "count");
	value_type(b, out, PROFILE_SAMPLE_TYPE, time_kind(b), "nanoseconds");
	encode_samples(b, out);
	encode_mappings(b, out);
	encode_locations(b, out);
	encode_functions(b, out);
	encode_header(b, out);
}

static void builder_free(struct builder *b)
{
	free(b->strings.v);
	free(b->strings.slots);
	free(b->func_ids.keys);
	free(b->func_ids.ids);
	free(b->mapping_ids.keys);
	free(b->mapping_ids.ids);
	free(b->func_of_frame);
	free(b->loc_of_frame);
	free(b->funcs);
	free(b->mappings);
	free(b->locs);
}

/* ---- gzip ---------------------------------------------------------------- */

static int write_chunk(FILE *out, const unsigned char *buf, size_t n, char **cause)
{
	if (n > 0 && fwrite(buf, 1, n, out) != n) {
		*cause = xasprintf("cannot write: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

static int gzip_write(FILE *out, const struct protobuf *b, char **cause)
{
	unsigned char chunk[65536];
	z_stream z = { 0 };
	size_t left = b->len;
	int zrc = Z_OK, rc = 0, flush;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16 /* gzip */, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		*cause = xstrdup("cannot start compressing (zlib)");
		return -ENOMEM;
	}
	z.next_in = b->data;
	/* avail_in is an unsigned int: feed a large buffer in parts. */
	while (rc == 0 && zrc != Z_STREAM_END) {
		if (z.avail_in == 0 && left > 0) {
			z.avail_in = left > UINT_MAX ? UINT_MAX : (unsigned int)left;
			left -= z.avail_in;
		}
		flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		zrc = deflate(&z, flush);
		if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
			*cause = xasprintf("cannot compress: %s", z.msg ? z.msg : "zlib error");
			rc = -EIO;
		} else {
			rc = write_chunk(out, chunk, sizeof chunk - z.avail_out, cause);
		}
	}
	deflateEnd(&z);
	return rc;
}

int export_pprof(FILE *out, const struct profile *p, const struct export_pprof_opts *o,
		 char **cause)
{
	struct builder b = { .p = p, .o = o };
	struct protobuf msg = { 0 };
	int rc;

	b.func_of_frame = xcalloc(p->nframes ? p->nframes : 1, sizeof *b.func_of_frame);
	b.loc_of_frame = xcalloc(p->nframes ? p->nframes : 1, sizeof *b.loc_of_frame);
	encode(&b, &msg);
	rc = gzip_write(out, &msg, cause);
	protobuf_free(&msg);
	builder_free(&b);
	return rc;
}
