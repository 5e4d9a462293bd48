/*
 * symbolizer: see symbolizer.h.
 *
 * A lookup first probes a hash table of finished results keyed by (file,
 * vaddr, is_return), so a warm lookup costs one hash probe and never enters
 * libdw, whose symbol search is a linear scan and whose DWARF scope walks
 * cost microseconds.  Results, their frames and their strings live in an
 * arena until symbolizer_free; strings are interned, so a function name or
 * source file is stored once however many addresses it covers.
 *
 * Each ELF file gets its own Dwfl with one module at base 0, so libdwfl
 * addresses are the ELF virtual addresses the caller passes.  Those modules
 * are shared between symbolizers (module_acquire); everything else is per
 * symbolizer.
 */
#include "symbolizer.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
#include "xalloc.h"

/* From libstdc++ (the engine links it); C has no header for it. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define ARENA_BLOCK	(64 * 1024)
#define ARENA_ALIGN	8
/* Bounds on DWARF nesting, so corrupt DWARF cannot exhaust the stack. */
#define MAX_NAMESPACE_DEPTH	16
#define MAX_INLINE_CHAIN	128

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct interned {
	uint64_t hash;
	const char *s;		/* NULL: empty slot */
};

struct result {
	const struct elf_file *f;	/* NULL: empty slot */
	uint64_t vaddr;
	bool is_return;
	uint32_t n;
	const struct sym_frame *frames;
};

/*
 * The libdwfl view of one ELF file; userdata of its Dwfl_Module.  A file
 * with a build-id is one module for every symbolizer of the process (see
 * module_acquire); the module owns what it needs of the file, so it outlives
 * the elf_file of the target that first asked for it.
 */
struct module {
	char key[160];		/* build-id and size when shared, else "" */
	unsigned int refs;	/* symbolizers using a shared one (shared.lock) */
	uint64_t idle_since;	/* when refs fell to 0 */
	pthread_mutex_t lock;	/* libdw handles are not thread-safe */
	int fd;			/* own descriptor of the file, or -1 */
	unsigned char *copy;	/* writable copy of an in-memory image */
	size_t size;
	char *path;
	Dwfl *dwfl;
	Dwfl_Module *mod;	/* NULL when libdwfl cannot take the file */
	/* Symbol and section boundaries, sorted; bounds[0] is 0. */
	uint64_t *bounds;
	size_t nbounds;
	/*
	 * The symbol name at bounds[i] ([2i]) and after it ([2i + 1]),
	 * demangled, owned; NULL for none, not_asked until looked up.
	 */
	char **names;
};

/* Which module serves one elf_file of this symbolizer's target. */
struct modref {
	const struct elf_file *f;
	struct module *m;
};

/* Marks an interval whose symbol libdwfl was not asked for yet. */
static char not_asked[] = "";

struct jit_sym {
	uint64_t start, end;
	size_t seq;		/* line number: later lines win */
	const struct sym_frame *frame;
};

struct perfmap {
	int nspid;		/* 0 until read from /proc/PID/status */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	off_t parsed;		/* bytes of whole lines consumed */
	struct jit_sym *v;
	size_t n, cap;
};

struct symbolizer {
	pid_t pid;
	struct arena_block *arena;
	struct interned *strings;
	size_t nstrings, capstrings;
	struct result *results;
	size_t nresults, capresults;
	struct modref *mods;
	size_t nmods, capmods;
	struct sym_frame tmp[MAX_INLINE_CHAIN + 1];	/* the lookup in progress */
	size_t ntmp;
	struct perfmap perfmap;
	struct sym_frame unknown;
};

static void *arena_alloc(struct symbolizer *s, size_t size)
{
	struct arena_block *b = s->arena;
	void *p;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (b == NULL || b->cap - b->used < size) {
		size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;

		b = xmalloc(sizeof *b + cap);
		b->next = s->arena;
		b->used = 0;
		b->cap = cap;
		s->arena = b;
	}
	p = b->data + b->used;
	b->used += size;
	return p;
}

static uint64_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static void grow_strings(struct symbolizer *s)
{
	size_t cap = s->capstrings ? s->capstrings * 2 : 1024;
	struct interned *v = xcalloc(cap, sizeof *v);

	for (size_t i = 0; i < s->capstrings; i++) {
		size_t j = s->strings[i].hash & (cap - 1);

		if (s->strings[i].s == NULL)
			continue;
		while (v[j].s != NULL)
			j = (j + 1) & (cap - 1);
		v[j] = s->strings[i];
	}
	free(s->strings);
	s->strings = v;
	s->capstrings = cap;
}

static const char *intern_len(struct symbolizer *s, const char *p, size_t len)
{
	uint64_t h = hash_bytes(p, len);
	size_t i;
	char *copy;

	if ((s->nstrings + 1) * 2 > s->capstrings)
		grow_strings(s);
	for (i = h & (s->capstrings - 1); s->strings[i].s != NULL;
	     i = (i + 1) & (s->capstrings - 1)) {
		const char *t = s->strings[i].s;

		if (s->strings[i].hash == h && strncmp(t, p, len) == 0 &&
		    t[len] == '\0')
			return t;
	}
	copy = arena_alloc(s, len + 1);
	memcpy(copy, p, len);
	copy[len] = '\0';
	s->strings[i].hash = h;
	s->strings[i].s = copy;
	s->nstrings++;
	return copy;
}

static const char *intern(struct symbolizer *s, const char *str)
{
	return str == NULL ? NULL : intern_len(s, str, strlen(str));
}

/*
 * A symbol name as reports show it, allocated: demangled when it is a C++
 * (Itanium ABI) name and without the symbol version some .symtab entries
 * carry ("pthread_cond_wait@@GLIBC_2.3.2"): a report groups by function, and
 * one function must not show up under two names.
 */
static char *plain_symbol(const char *name)
{
	const char *at = strchr(name, '@');
	char *plain = NULL, *d;
	int status;

	if (at != NULL && at != name)
		name = plain = xstrndup(name, (size_t)(at - name));
	if (strncmp(name, "_Z", 2) != 0)
		return plain != NULL ? plain : xstrdup(name);
	d = __cxa_demangle(name, NULL, NULL, &status);
	if (d == NULL)
		return plain != NULL ? plain : xstrdup(name);
	free(plain);
	return d;
}

static const char *intern_symbol(struct symbolizer *s, const char *name)
{
	char *plain = plain_symbol(name);
	const char *r = intern(s, plain);

	free(plain);
	return r;
}

/* The finalizer of MurmurHash3: addresses differ mostly in low bits. */
static uint64_t result_hash(const struct elf_file *f, uint64_t vaddr,
			    bool is_return)
{
	uint64_t x = vaddr ^ ((uintptr_t)f << 1) ^ (uint64_t)is_return;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static struct result *result_slot(struct symbolizer *s,
				  const struct elf_file *f, uint64_t vaddr,
				  bool is_return)
{
	size_t mask = s->capresults - 1;
	size_t i = result_hash(f, vaddr, is_return) & mask;

	while (s->results[i].f != NULL &&
	       (s->results[i].f != f || s->results[i].vaddr != vaddr ||
		s->results[i].is_return != is_return))
		i = (i + 1) & mask;
	return &s->results[i];
}

static void grow_results(struct symbolizer *s)
{
	struct result *old = s->results;
	size_t oldcap = s->capresults;

	s->capresults = oldcap ? oldcap * 2 : 4096;
	s->results = xcalloc(s->capresults, sizeof *s->results);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].f != NULL)
			*result_slot(s, old[i].f, old[i].vaddr,
				     old[i].is_return) = old[i];
	free(old);
}

static void push_frame(struct symbolizer *s, const char *func,
		       const char *file, int line, bool inlined)
{
	s->tmp[s->ntmp++] = (struct sym_frame){
		.func = func, .file = file, .line = line, .inlined = inlined,
	};
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

/*
 * Hands libdwfl its own Elf handle over the file.  libelf writes into the
 * image when it decompresses a section (its headers are updated in place),
 * and the elfcache maps files read-only, so the handle gets a private
 * writable mapping of the descriptor, or a copy of an in-memory image.
 */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *modname,
		    Dwarf_Addr base, char **file_name, Elf **elfp)
{
	struct module *m = *userdata;

	(void)mod;
	(void)modname;
	(void)base;
	if (m->fd >= 0)
		*elfp = elf_begin(m->fd, ELF_C_READ_MMAP_PRIVATE, NULL);
	else if (m->copy != NULL)
		*elfp = elf_memory((char *)m->copy, m->size);
	/* On failure a file name would make libdwfl open it by path. */
	if (*elfp != NULL)
		*file_name = xstrdup(m->path);
	return -1;
}

/*
 * Separate debug files are found by build-id under /usr/lib/debug/.build-id/
 * only: dwfl_standard_find_debuginfo, which also follows .gnu_debuglink,
 * ends in elfutils 0.188 with a debuginfod download whenever
 * DEBUGINFOD_URLS is set.
 */
static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = dwfl_build_id_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/*
 * The span libdwfl itself computes for a file at base 0; reporting exactly
 * that span makes the module's bias 0.
 */
static bool load_span(const struct elf_file *f, GElf_Addr *lo, GElf_Addr *hi)
{
	size_t first = f->nphdr, last = f->nphdr;

	for (size_t i = 0; i < f->nphdr; i++) {
		if (f->phdr[i].p_type != PT_LOAD)
			continue;
		if (first == f->nphdr)
			first = i;
		last = i;
	}
	if (first == f->nphdr)
		return false;
	*lo = f->phdr[first].p_vaddr & -f->phdr[first].p_align;
	*hi = f->phdr[last].p_vaddr + f->phdr[last].p_memsz;
	return *lo < *hi;
}

static void report_module(struct module *m, const struct elf_file *f)
{
	GElf_Addr lo, hi;
	Dwfl_Module *mod;
	void **userdata;

	/* ET_REL would make libdwfl lay out sections; no process maps one. */
	if ((f->e_type != ET_EXEC && f->e_type != ET_DYN) || !load_span(f, &lo, &hi))
		return;
	m->dwfl = dwfl_begin(&dwfl_callbacks);
	if (m->dwfl == NULL)
		return;
	dwfl_report_begin(m->dwfl);
	mod = dwfl_report_module(m->dwfl, base_name(f->path), lo, hi);
	dwfl_report_end(m->dwfl, NULL, NULL);
	if (dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL,
			     NULL) == NULL)
		return;
	*userdata = m;
	m->mod = mod;
}

static struct module *module_new(const struct elf_file *f, const char *key)
{
	struct module *m = xcalloc(1, sizeof *m);

	snprintf(m->key, sizeof m->key, "%s", key);
	pthread_mutex_init(&m->lock, NULL);
	m->path = xstrdup(f->path);
	m->size = f->size;
	m->fd = f->fd >= 0 ? fcntl(f->fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (f->fd < 0 && f->image != NULL) {
		m->copy = xmalloc(f->size);
		memcpy(m->copy, f->image, f->size);
	}
	if (m->fd >= 0 || m->copy != NULL)
		report_module(m, f);
	return m;
}

static void module_free(struct module *m)
{
	if (m->names != NULL)
		for (size_t i = 0; i < 2 * m->nbounds; i++)
			if (m->names[i] != not_asked)
				free(m->names[i]);
	/* dwfl_end closes the Elf handles before their file or copy goes. */
	dwfl_end(m->dwfl);
	if (m->fd >= 0)
		close(m->fd);
	free(m->copy);
	free(m->path);
	free(m->bounds);
	free(m->names);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/*
 * Modules of files with a build-id are shared by every symbolizer of the
 * process and kept SHARED_KEEP_NS after their last user goes: loading a
 * module's DWARF is most of the cost of a new session (libdw inflates a
 * compressed libc debug file, some 50 ms, before the first source line),
 * and perchd profiles the same libraries again and again.  The key adds
 * the file size to the build-id: a stripped and an unstripped copy of a
 * file have the same build-id but not the same symbols.
 */
#ifndef SHARED_KEEP_NS
#define SHARED_KEEP_NS (10 * 60 * 1000000000ull)
#endif

static struct {
	pthread_mutex_t lock;
	struct module **v;
	size_t n, cap;
} shared = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Frees the shared modules idle for longer than keep_ns; shared.lock held. */
static void sweep_shared(uint64_t now, uint64_t keep_ns)
{
	for (size_t i = 0; i < shared.n;) {
		struct module *m = shared.v[i];

		if (m->refs == 0 && now - m->idle_since >= keep_ns) {
			shared.v[i] = shared.v[--shared.n];
			module_free(m);
		} else {
			i++;
		}
	}
}

static struct module *module_acquire(const struct elf_file *f)
{
	char key[sizeof ((struct module *)0)->key];
	struct module *m = NULL;

	if (f->build_id_hex[0] == '\0' || f->fd < 0)
		return module_new(f, "");
	snprintf(key, sizeof key, "%s:%zu", f->build_id_hex, f->size);
	pthread_mutex_lock(&shared.lock);
	sweep_shared(mono_now(), SHARED_KEEP_NS);
	for (size_t i = 0; i < shared.n && m == NULL; i++)
		if (strcmp(shared.v[i]->key, key) == 0)
			m = shared.v[i];
	if (m == NULL) {
		m = module_new(f, key);
		if (shared.n == shared.cap) {
			shared.cap = shared.cap ? shared.cap * 2 : 16;
			shared.v = xreallocarray(shared.v, shared.cap, sizeof *shared.v);
		}
		shared.v[shared.n++] = m;
	}
	m->refs++;
	pthread_mutex_unlock(&shared.lock);
	return m;
}

static void module_release(struct module *m)
{
	if (m->key[0] == '\0') {
		module_free(m);
		return;
	}
	pthread_mutex_lock(&shared.lock);
	if (--m->refs == 0)
		m->idle_since = mono_now();
	sweep_shared(mono_now(), SHARED_KEEP_NS);
	pthread_mutex_unlock(&shared.lock);
}

void symbolizer_trim(bool all)
{
	pthread_mutex_lock(&shared.lock);
	sweep_shared(mono_now(), all ? 0 : SHARED_KEEP_NS);
	pthread_mutex_unlock(&shared.lock);
}

size_t symbolizer_shared_modules(void)
{
	size_t n;

	pthread_mutex_lock(&shared.lock);
	n = shared.n;
	pthread_mutex_unlock(&shared.lock);
	return n;
}

static struct module *module_of(struct symbolizer *s, const struct elf_file *f)
{
	for (size_t i = 0; i < s->nmods; i++)
		if (s->mods[i].f == f)
			return s->mods[i].m;
	if (s->nmods == s->capmods) {
		s->capmods = s->capmods ? s->capmods * 2 : 16;
		s->mods = xreallocarray(s->mods, s->capmods, sizeof *s->mods);
	}
	s->mods[s->nmods] = (struct modref){ f, module_acquire(f) };
	return s->mods[s->nmods++].m;
}


static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void add_bound(struct module *m, size_t *cap, uint64_t v)
{
	if (m->nbounds == *cap) {
		*cap = *cap ? *cap * 2 : 1024;
		m->bounds = xreallocarray(m->bounds, *cap, sizeof *m->bounds);
	}
	m->bounds[m->nbounds++] = v;
}

/*
 * What dwfl_module_addrinfo answers depends on an address only through
 * which symbols start at, start below or extend over it and which section
 * holds it (section ends count as inside).  So the answer is the same at
 * every address strictly between consecutive boundaries of symbols and
 * sections, and libdwfl's linear scan of the symbol table is done once per
 * boundary and once per gap between two, not once per address.
 */
static void index_symbols(struct module *m)
{
	int nsyms = dwfl_module_getsymtab(m->mod);
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	GElf_Sym sym;
	GElf_Addr value, bias;
	Elf *elf = dwfl_module_getelf(m->mod, &bias);
	size_t cap = 0, n = 1;

	add_bound(m, &cap, 0);
	for (int i = 1; i < nsyms; i++) {
		if (dwfl_module_getsym_info(m->mod, i, &sym, &value, NULL, NULL,
					    NULL) == NULL)
			continue;
		add_bound(m, &cap, value);
		add_bound(m, &cap, value + sym.st_size);
	}
	while (elf != NULL && (scn = elf_nextscn(elf, scn)) != NULL) {
		if (gelf_getshdr(scn, &sh) == NULL || !(sh.sh_flags & SHF_ALLOC))
			continue;
		add_bound(m, &cap, sh.sh_addr);
		add_bound(m, &cap, sh.sh_addr + sh.sh_size);
	}
	if (m->nbounds > 1)
		qsort(m->bounds, m->nbounds, sizeof *m->bounds, u64_cmp);
	for (size_t i = 1; i < m->nbounds; i++)
		if (m->bounds[i] != m->bounds[n - 1])
			m->bounds[n++] = m->bounds[i];
	m->nbounds = n;
	m->names = xreallocarray(NULL, 2 * n, sizeof *m->names);
	for (size_t i = 0; i < 2 * n; i++)
		m->names[i] = not_asked;
}

/* The symbol holding addr (demangled), or NULL. */
static const char *symbol_at(struct symbolizer *s, struct module *m,
			     uint64_t addr)
{
	size_t lo = 0, hi, slot;
	GElf_Off off;
	GElf_Sym sym;
	const char *name;

	if (m->names == NULL)
		index_symbols(m);
	for (hi = m->nbounds; hi - lo > 1;) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->bounds[mid] <= addr)
			lo = mid;
		else
			hi = mid;
	}
	slot = 2 * lo + (addr != m->bounds[lo]);
	if (m->names[slot] == not_asked) {
		name = dwfl_module_addrinfo(m->mod, addr, &off, &sym, NULL, NULL, NULL);
		m->names[slot] = name != NULL && name[0] != '\0' ? plain_symbol(name) : NULL;
	}
	return intern(s, m->names[slot]);
}

/* The functions (concrete subprograms and inlined instances) holding pc. */
struct scope_walk {
	Dwarf_Addr pc;
	Dwarf_Die chain[MAX_INLINE_CHAIN];	/* outermost first */
	int n;
};

static bool is_code_scope(int tag)
{
	switch (tag) {
	case DW_TAG_subprogram:
	case DW_TAG_inlined_subroutine:
	case DW_TAG_lexical_block:
	case DW_TAG_try_block:
	case DW_TAG_catch_block:
	case DW_TAG_with_stmt:
		return true;
	default:
		return false;
	}
}

/* Finds the child of parent that is a code scope holding pc. */
static bool child_with_pc(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *out)
{
	if (dwarf_child(parent, out) != 0)
		return false;
	do {
		if (is_code_scope(dwarf_tag(out)) && dwarf_haspc(out, pc) > 0)
			return true;
	} while (dwarf_siblingof(out, out) == 0);
	return false;
}

/* Iterates rather than recurses: code scopes nest as deep as the DWARF says. */
static void walk_down(struct scope_walk *w, Dwarf_Die *die)
{
	do {
		int tag = dwarf_tag(die);

		if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) &&
		    w->n < MAX_INLINE_CHAIN)
			w->chain[w->n++] = *die;
	} while (child_with_pc(die, w->pc, die));
}

/*
 * One pass from the unit down through the scopes holding pc.  libdw's
 * dwarf_getscopes continues from the innermost inlined instance into the
 * scopes of its abstract definition, so the callers would need a second
 * walk (dwarf_getscopes_die); and it prunes namespaces, where clang puts
 * function definitions.  Code scopes at a level are tried before
 * descending into namespaces and classes, which GCC fills only with
 * declarations.
 */
static bool walk_unit(struct scope_walk *w, Dwarf_Die *parent, int depth)
{
	Dwarf_Die die;

	if (child_with_pc(parent, w->pc, &die)) {
		walk_down(w, &die);
		return true;
	}
	if (depth >= MAX_NAMESPACE_DEPTH || dwarf_child(parent, &die) != 0)
		return false;
	do {
		switch (dwarf_tag(&die)) {
		case DW_TAG_namespace:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			if (walk_unit(w, &die, depth + 1))
				return true;
			break;
		default:
			break;
		}
	} while (dwarf_siblingof(&die, &die) == 0);
	return false;
}

static const char *die_name(struct symbolizer *s, Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name;

	name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (name == NULL)
		name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name,
							     &attr));
	if (name != NULL)
		return intern_symbol(s, name);
	return intern(s, dwarf_diename(die));
}

/* Where the inlined instance die was called from. */
static void call_site(struct symbolizer *s, Dwarf_Die *die, const char **file,
		      int *line)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t nfiles;

	*file = NULL;
	*line = 0;
	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &v) == 0 &&
	    v <= INT32_MAX)
		*line = (int)v;
	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &v) == 0 &&
	    dwarf_diecu(die, &cu, NULL, NULL) != NULL &&
	    dwarf_getsrcfiles(&cu, &files, &nfiles) == 0 && v < nfiles)
		*file = intern(s, dwarf_filesrc(files, v, NULL, NULL));
}

/*
 * Pushes the inlined frames at addr, innermost first, each with the
 * position inside it, and leaves in *file and *line the position in the
 * real function.  A *func still NULL gets that function's DWARF name.
 */
static void expand_inlines(struct symbolizer *s, Dwfl_Module *mod,
			   Dwarf_Addr addr, const char **func,
			   const char **file, int *line)
{
	struct scope_walk w = { .n = 0 };
	const char *name;
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);

	if (cu == NULL)
		return;
	w.pc = addr - bias;
	walk_unit(&w, cu, 0);
	for (int i = w.n - 1; i >= 0; i--) {
		if (dwarf_tag(&w.chain[i]) == DW_TAG_subprogram) {
			if (*func == NULL)
				*func = die_name(s, &w.chain[i]);
			return;
		}
		name = die_name(s, &w.chain[i]);
		push_frame(s, name != NULL ? name : s->unknown.func, *file,
			   *line, true);
		call_site(s, &w.chain[i], file, line);
	}
}

/* Fills s->tmp with the frames of addr; empty when libdwfl knows nothing. */
static void symbolize(struct symbolizer *s, const struct elf_file *f,
		      uint64_t addr)
{
	struct module *m = module_of(s, f);
	const char *func, *file = NULL;
	Dwfl_Line *src;
	int line = 0;

	s->ntmp = 0;
	if (m->mod == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	func = symbol_at(s, m, addr);
	src = dwfl_module_getsrc(m->mod, addr);
	if (src != NULL)
		file = intern(s, dwfl_lineinfo(src, NULL, &line, NULL, NULL, NULL));
	expand_inlines(s, m->mod, addr, &func, &file, &line);
	pthread_mutex_unlock(&m->lock);
	if (func != NULL || file != NULL || s->ntmp > 0)
		push_frame(s, func, file, line, false);
}

void symbolizer_lookup(struct symbolizer *s, struct elf_file *f,
		       uint64_t vaddr, bool is_return, struct sym_result *out)
{
	struct result *r;
	struct sym_frame *frames;

	if ((s->nresults + 1) * 2 > s->capresults)
		grow_results(s);
	r = result_slot(s, f, vaddr, is_return);
	if (r->f == NULL) {
		symbolize(s, f, is_return ? vaddr - 1 : vaddr);
		if (s->ntmp == 0)
			push_frame(s, NULL, NULL, 0, false);
		if (s->tmp[s->ntmp - 1].func == NULL) {
			char name[PATH_MAX + 32];

			snprintf(name, sizeof name, "%s+0x%" PRIx64,
				 base_name(f->path), vaddr);
			s->tmp[s->ntmp - 1].func = intern(s, name);
		}
		frames = arena_alloc(s, s->ntmp * sizeof *frames);
		memcpy(frames, s->tmp, s->ntmp * sizeof *frames);
		*r = (struct result){
			.f = f, .vaddr = vaddr, .is_return = is_return,
			.n = (uint32_t)s->ntmp, .frames = frames,
		};
		s->nresults++;
	}
	out->frames = r->frames;
	out->n = r->n;
}

/* The NSpid of the target: its pid in its own namespace, for its map name. */
static int namespace_pid(pid_t pid)
{
	char path[64], buf[4096];
	const char *p;
	int nspid = (int)pid;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (procfs_read_path(path, buf, sizeof buf) < 0)
		return nspid;
	p = strstr(buf, "\nNSpid:");
	if (p == NULL)
		return nspid;
	for (p += 7; *p != '\n' && *p != '\0'; p++)
		if (*p >= '0' && *p <= '9' && (p[-1] == ' ' || p[-1] == '\t'))
			nspid = atoi(p);
	return nspid;
}

/* Opens the target's perf map: its own pid in /tmp, then its container's. */
static int open_perfmap(struct symbolizer *s)
{
	struct perfmap *pm = &s->perfmap;
	char path[96];
	int fd;

	snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)s->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (pm->nspid == 0)
		pm->nspid = namespace_pid(s->pid);
	snprintf(path, sizeof path, "/proc/%d/root/tmp/perf-%d.map",
		 (int)s->pid, pm->nspid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Parses one "START SIZE name" line; malformed lines are skipped. */
static void parse_perfmap_line(struct symbolizer *s, const char *p,
			       const char *end)
{
	struct perfmap *pm = &s->perfmap;
	struct sym_frame *frame;
	uint64_t start, size;
	char *q;

	start = strtoull(p, &q, 16);
	if (q == p || q >= end || (*q != ' ' && *q != '\t'))
		return;
	p = q;
	size = strtoull(p, &q, 16);
	if (q == p || q >= end || (*q != ' ' && *q != '\t') || size == 0 ||
	    start + size < start)
		return;
	for (p = q + 1; end > p && (end[-1] == '\r' || end[-1] == ' '); end--)
		;
	if (p == end)
		return;
	if (pm->n == pm->cap) {
		pm->cap = pm->cap ? pm->cap * 2 : 256;
		pm->v = xreallocarray(pm->v, pm->cap, sizeof *pm->v);
	}
	frame = arena_alloc(s, sizeof *frame);
	*frame = (struct sym_frame){ .func = intern_len(s, p, (size_t)(end - p)) };
	pm->v[pm->n] = (struct jit_sym){ start, start + size, pm->n, frame };
	pm->n++;
}

static int jit_sym_cmp(const void *a, const void *b)
{
	const struct jit_sym *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Parses the lines appended since the last read. */
static void read_perfmap(struct symbolizer *s, int fd, off_t size)
{
	struct perfmap *pm = &s->perfmap;
	size_t len = (size_t)(size - pm->parsed), got = 0;
	char *buf = xmalloc(len + 1), *p, *nl;
	ssize_t n;

	while (got < len &&
	       (n = pread(fd, buf + got, len - got, pm->parsed + (off_t)got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	/* A line still being written is parsed once it is complete. */
	for (p = buf; (nl = memchr(p, '\n', (size_t)(buf + got - p))) != NULL;
	     p = nl + 1)
		parse_perfmap_line(s, p, nl);
	pm->parsed += p - buf;
	pm->size = pm->parsed + (off_t)(buf + got - p);
	if (pm->n > 1)
		qsort(pm->v, pm->n, sizeof *pm->v, jit_sym_cmp);
	free(buf);
}

/*
 * Rereads the perf map if it changed since the last read.  JITs append to
 * it, so a file that only grew is read from where the last read stopped;
 * any other change rereads it whole.  Returns whether it was reread.
 */
static bool refresh_perfmap(struct symbolizer *s)
{
	struct perfmap *pm = &s->perfmap;
	struct stat st;
	bool same_file, changed = false;
	int fd = open_perfmap(s);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return false;
	}
	same_file = st.st_dev == pm->dev && st.st_ino == pm->ino;
	changed = !same_file || st.st_size != pm->size ||
		  st.st_mtim.tv_sec != pm->mtime.tv_sec ||
		  st.st_mtim.tv_nsec != pm->mtime.tv_nsec;
	if (changed) {
		if (!same_file || st.st_size <= pm->size) {
			pm->n = 0;
			pm->parsed = 0;
		}
		pm->dev = st.st_dev;
		pm->ino = st.st_ino;
		pm->mtime = st.st_mtim;
		read_perfmap(s, fd, st.st_size);
	}
	close(fd);
	return changed;
}

static const struct sym_frame *find_jit(const struct perfmap *pm, uint64_t addr)
{
	size_t lo = 0, hi = pm->n;

	/* The last entry starting at or below addr: the newest at its start. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pm->v[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || addr >= pm->v[lo - 1].end)
		return NULL;
	return pm->v[lo - 1].frame;
}

void symbolizer_lookup_anon(struct symbolizer *s, uint64_t addr,
			    struct sym_result *out)
{
	const struct sym_frame *frame = find_jit(&s->perfmap, addr);

	if (frame == NULL && refresh_perfmap(s))
		frame = find_jit(&s->perfmap, addr);
	out->frames = frame != NULL ? frame : &s->unknown;
	out->n = 1;
}

struct symbolizer *symbolizer_create(pid_t pid)
{
	struct symbolizer *s = xcalloc(1, sizeof *s);

	s->pid = pid;
	s->unknown.func = "[unknown]";
	return s;
}

void symbolizer_free(struct symbolizer *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nmods; i++)
		module_release(s->mods[i].m);
	while (s->arena != NULL) {
		struct arena_block *next = s->arena->next;

		free(s->arena);
		s->arena = next;
	}
	free(s->mods);
	free(s->strings);
	free(s->results);
	free(s->perfmap.v);
	free(s);
}
