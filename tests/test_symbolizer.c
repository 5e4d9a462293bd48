/*
 * Unit tests for the symbolizer.  The test symbolizes itself: the fixture
 * (symbolizer_fixture.c) records return addresses inside known functions,
 * and the addresses are turned into ELF virtual addresses through the
 * engine's own maps and elfcache, as perchd does for a target.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elfcache.h"
#include "maps.h"
#include "symbolizer.h"
#include "xalloc.h"

#ifndef PERCH_OBJCOPY
#define PERCH_OBJCOPY "objcopy"
#endif

/* From symbolizer_fixture.c. */
extern uintptr_t fixture_ra;
extern int fixture_ra_line, fixture_call_line;
extern const int fixture_leaf_first_line, fixture_leaf_last_line;
int fixture_leaf(int x);
int fixture_outer(int x);
int fixture_mangled(int x) __asm__("_ZN5perch7mangledEi");

/* This test's binary (for objcopy: /proc/self/exe would be the shell). */
static char self_exe[PATH_MAX];

struct env {
	struct maps maps;
	struct elfcache *cache;
	struct symbolizer *s;
};

static int setup(void **state)
{
	struct env *e = xcalloc(1, sizeof *e);

	if (maps_read(getpid(), &e->maps) != 0 ||
	    realpath("/proc/self/exe", self_exe) == NULL)
		return -1;
	e->cache = elfcache_create();
	e->s = symbolizer_create(getpid());
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	symbolizer_free(e->s);
	elfcache_free(e->cache);
	maps_clear(&e->maps);
	free(e);
	return 0;
}

/* The file and ELF virtual address of an address of this process. */
static struct elf_file *self_file(struct env *e, uintptr_t addr, uint64_t *vaddr)
{
	struct mapping *m = maps_find(&e->maps, addr);
	struct elf_file *f = NULL;
	uint64_t bias;

	assert_non_null(m);
	assert_int_equal(elfcache_get(e->cache, getpid(), m, &f), 0);
	assert_int_equal(elf_file_bias(f, m, &bias), 0);
	*vaddr = addr - bias;
	return f;
}

static void lookup_self(struct env *e, uintptr_t addr, bool is_return,
			struct sym_result *res)
{
	uint64_t vaddr;
	struct elf_file *f = self_file(e, addr, &vaddr);

	symbolizer_lookup(e->s, f, vaddr, is_return, res);
	assert_true(res->n >= 1);
	for (size_t i = 0; i < res->n; i++)
		assert_non_null(res->frames[i].func);
}

static void assert_basename(const char *path, const char *want)
{
	const char *slash;

	assert_non_null(path);
	slash = strrchr(path, '/');
	assert_string_equal(slash != NULL ? slash + 1 : path, want);
}

static void test_function_entry(void **state)
{
	struct sym_result res;

	lookup_self(*state, (uintptr_t)fixture_leaf, false, &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.frames[0].func, "fixture_leaf");
	assert_basename(res.frames[0].file, "symbolizer_fixture.c");
	assert_in_range(res.frames[0].line, fixture_leaf_first_line,
			fixture_leaf_last_line);
	assert_false(res.frames[0].inlined);
}

static void test_return_address_line(void **state)
{
	struct sym_result res;

	fixture_leaf(1);
	lookup_self(*state, fixture_ra, true, &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.frames[0].func, "fixture_leaf");
	assert_int_equal(res.frames[0].line, fixture_ra_line);
}

/* A return address is looked up as the call instruction before it. */
static void test_return_is_address_minus_one(void **state)
{
	struct sym_result ret, call;

	fixture_outer(2);
	lookup_self(*state, fixture_ra, true, &ret);
	lookup_self(*state, fixture_ra - 1, false, &call);
	assert_int_equal(ret.n, call.n);
	for (size_t i = 0; i < ret.n; i++) {
		assert_ptr_equal(ret.frames[i].func, call.frames[i].func);
		assert_ptr_equal(ret.frames[i].file, call.frames[i].file);
		assert_int_equal(ret.frames[i].line, call.frames[i].line);
		assert_int_equal(ret.frames[i].inlined, call.frames[i].inlined);
	}
}

static void test_inlined_frames(void **state)
{
	struct sym_result res;

	fixture_outer(3);
	lookup_self(*state, fixture_ra, true, &res);
	assert_int_equal(res.n, 2);
	assert_string_equal(res.frames[0].func, "inlined_step");
	assert_true(res.frames[0].inlined);
	assert_basename(res.frames[0].file, "symbolizer_fixture.c");
	assert_int_equal(res.frames[0].line, fixture_ra_line);
	assert_string_equal(res.frames[1].func, "fixture_outer");
	assert_false(res.frames[1].inlined);
	assert_basename(res.frames[1].file, "symbolizer_fixture.c");
	assert_int_equal(res.frames[1].line, fixture_call_line);
}

static void test_demangled(void **state)
{
	struct sym_result res;

	fixture_mangled(4);
	lookup_self(*state, fixture_ra, true, &res);
	assert_string_equal(res.frames[res.n - 1].func, "perch::mangled(int)");
}

/* Warm lookups hit the cache; names and files are stored once. */
static void test_cache_and_interning(void **state)
{
	struct sym_result a, b, c;

	lookup_self(*state, (uintptr_t)fixture_leaf, false, &a);
	lookup_self(*state, (uintptr_t)fixture_leaf, false, &b);
	assert_ptr_equal(a.frames, b.frames);
	assert_ptr_equal(a.frames[0].func, b.frames[0].func);
	fixture_leaf(5);
	lookup_self(*state, fixture_ra, true, &c);
	assert_ptr_not_equal(a.frames, c.frames);
	assert_ptr_equal(a.frames[0].func, c.frames[0].func);
	assert_ptr_equal(a.frames[0].file, c.frames[0].file);
}

/* The address of a function of libc itself, not of a PLT entry. */
static uintptr_t libc_function(const char *name)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *sym;

	assert_non_null(libc);
	sym = dlsym(libc, name);
	dlclose(libc);
	assert_non_null(sym);
	return (uintptr_t)sym;
}

static bool has_debug_file(const struct elf_file *f)
{
	char path[256];

	snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%.2s/%s.debug",
		 f->build_id_hex, f->build_id_hex + 2);
	return f->build_id_hex[0] != '\0' && access(path, R_OK) == 0;
}

static void test_libc(void **state)
{
	struct env *e = *state;
	struct sym_result res;
	uint64_t vaddr;
	struct elf_file *f = self_file(e, libc_function("qsort"), &vaddr);

	symbolizer_lookup(e->s, f, vaddr, false, &res);
	assert_string_equal(res.frames[res.n - 1].func, "qsort");
	/* libc6-dbg installs libc's DWARF under /usr/lib/debug/.build-id/. */
	if (has_debug_file(f)) {
		assert_non_null(res.frames[0].file);
		assert_true(res.frames[0].line > 0);
	}
	lookup_self(e, libc_function("getpid"), false, &res);
	assert_non_null(strstr(res.frames[res.n - 1].func, "getpid"));
}

/*
 * Two symbolizers (two targets, each with its own elfcache) looking up the
 * same library share what libdw loaded for it; it is kept when both are
 * gone, until trimmed.
 */
static void test_shared_modules(void **state)
{
	struct env *e = *state;
	struct elfcache *cache2 = elfcache_create();
	struct symbolizer *s2 = symbolizer_create(getpid());
	struct mapping *m = maps_find(&e->maps, libc_function("qsort"));
	struct sym_result r1, r2;
	struct elf_file *f1, *f2;
	uint64_t vaddr;

	/* The group's symbolizer holds what the tests before looked up. */
	symbolizer_free(e->s);
	e->s = symbolizer_create(getpid());
	symbolizer_trim(true);
	assert_int_equal(symbolizer_shared_modules(), 0);
	f1 = self_file(e, libc_function("qsort"), &vaddr);
	assert_true(f1->build_id_hex[0] != '\0');
	symbolizer_lookup(e->s, f1, vaddr, false, &r1);
	assert_int_equal(symbolizer_shared_modules(), 1);
	assert_non_null(m);
	assert_int_equal(elfcache_get(cache2, getpid(), m, &f2), 0);
	assert_ptr_not_equal(f1, f2);
	symbolizer_lookup(s2, f2, vaddr, false, &r2);
	assert_int_equal(symbolizer_shared_modules(), 1);
	assert_int_equal(r1.n, r2.n);
	for (size_t i = 0; i < r1.n; i++) {
		assert_string_equal(r1.frames[i].func, r2.frames[i].func);
		assert_int_equal(r1.frames[i].line, r2.frames[i].line);
		/* Strings belong to each symbolizer, not to the shared module. */
		assert_ptr_not_equal(r1.frames[i].func, r2.frames[i].func);
	}
	symbolizer_free(s2);
	elfcache_free(cache2);
	symbolizer_free(e->s);
	e->s = symbolizer_create(getpid());
	symbolizer_trim(false);
	assert_int_equal(symbolizer_shared_modules(), 1);
	/* Kept: a new symbolizer finds the same answer without loading it again. */
	symbolizer_lookup(e->s, f1, vaddr, false, &r2);
	assert_string_equal(r2.frames[r2.n - 1].func, "qsort");
	assert_int_equal(symbolizer_shared_modules(), 1);
	symbolizer_free(e->s);
	e->s = symbolizer_create(getpid());
	symbolizer_trim(true);
	assert_int_equal(symbolizer_shared_modules(), 0);
}

static char *read_file(const char *path, size_t *size)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	char *buf;

	assert_non_null(fp);
	assert_int_equal(fstat(fileno(fp), &st), 0);
	buf = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
	fclose(fp);
	*size = (size_t)st.st_size;
	return buf;
}

/* Copies path to copy (a name under /tmp) with objcopy and flags. */
static bool objcopy(const char *flags, const char *path, char *copy,
		    size_t copy_size)
{
	char *cmd;
	int rc;

	snprintf(copy, copy_size, "/tmp/perch-symtest-%d", (int)getpid());
	cmd = xasprintf("%s %s %s %s 2>/dev/null", PERCH_OBJCOPY, flags, path, copy);
	rc = system(cmd);
	free(cmd);
	return rc == 0;
}

/* An elf_file over an in-memory copy of path made by objcopy with flags. */
static struct elf_file *objcopy_file(const char *flags, const char *path,
				     char *copy, size_t copy_size)
{
	struct elf_file *f;
	char *image;
	size_t size;

	if (!objcopy(flags, path, copy, copy_size))
		return NULL;
	image = read_file(copy, &size);
	unlink(copy);
	assert_int_equal(elf_file_from_memory((unsigned char *)image, size, copy, &f), 0);
	return f;
}

static bool maps_mention(const char *word)
{
	struct maps now;
	bool found = false;

	assert_int_equal(maps_read(getpid(), &now), 0);
	for (size_t i = 0; i < now.n; i++)
		if (now.v[i].path != NULL && strstr(now.v[i].path, word) != NULL)
			found = true;
	maps_clear(&now);
	return found;
}

/* A stripped executable exports nothing: only "module+0xOFF" is left. */
static void test_stripped_executable(void **state)
{
	struct env *e = *state;
	struct sym_result res;
	struct elf_file *f;
	uint64_t vaddr;
	char copy[64], want[128];

	self_file(e, (uintptr_t)fixture_leaf, &vaddr);
	f = objcopy_file("--strip-all", self_exe, copy, sizeof copy);
	if (f == NULL)
		skip();
	/* Would load libdebuginfod if debuginfod were consulted. */
	setenv("DEBUGINFOD_URLS", "http://127.0.0.1:9/", 1);
	symbolizer_lookup(e->s, f, vaddr, false, &res);
	unsetenv("DEBUGINFOD_URLS");
	snprintf(want, sizeof want, "%s+0x%" PRIx64, copy + 5, vaddr);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.frames[0].func, want);
	assert_null(res.frames[0].file);
	assert_int_equal(res.frames[0].line, 0);
	assert_false(maps_mention("libdebuginfod"));
	/* The elf_file must outlive the symbolizer that looked it up. */
	symbolizer_free(e->s);
	e->s = symbolizer_create(getpid());
	elf_file_free(f);
}

/* A stripped library with no way to its debug file still has .dynsym. */
static void test_stripped_library(void **state)
{
	struct env *e = *state;
	struct sym_result res;
	struct elf_file *libc, *f;
	uint64_t vaddr;
	char copy[64];

	libc = self_file(e, libc_function("qsort"), &vaddr);
	f = objcopy_file("--strip-all -R .note.gnu.build-id -R .gnu_debuglink",
			 libc->path, copy, sizeof copy);
	if (f == NULL)
		skip();
	symbolizer_lookup(e->s, f, vaddr, false, &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.frames[0].func, "qsort");
	assert_null(res.frames[0].file);
	symbolizer_free(e->s);
	e->s = symbolizer_create(getpid());
	elf_file_free(f);
}

/*
 * Compressed DWARF: libelf writes section headers when it decompresses,
 * which the read-only image the elfcache maps would not survive.
 */
static void test_compressed_debug_info(void **state)
{
	struct env *e = *state;
	struct elfcache *cache = elfcache_create();
	struct symbolizer *s = symbolizer_create(getpid());
	struct mapping m = { .start = 0x1000, .end = 0x2000 };
	struct sym_result res;
	struct elf_file *f;
	struct stat st;
	uint64_t vaddr;
	char copy[64];
	int rc;

	self_file(e, (uintptr_t)fixture_leaf, &vaddr);
	if (!objcopy("--compress-debug-sections=zlib", self_exe, copy, sizeof copy))
		skip();
	assert_int_equal(stat(copy, &st), 0);
	m.path = copy;
	m.dev = st.st_dev;
	m.inode = st.st_ino;
	rc = elfcache_get(cache, getpid(), &m, &f);
	unlink(copy);
	assert_int_equal(rc, 0);
	symbolizer_lookup(s, f, vaddr, false, &res);
	assert_string_equal(res.frames[0].func, "fixture_leaf");
	assert_basename(res.frames[0].file, "symbolizer_fixture.c");
	symbolizer_free(s);
	elfcache_free(cache);
}

/* Overwrites the named sections of an ELF image with noise. */
static void garble(unsigned char *image, size_t size, const char *prefix,
		   uint32_t seed)
{
	Elf *elf = elf_memory((char *)image, size);
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	assert_non_null(elf);
	assert_int_equal(elf_getshdrstrndx(elf, &shstrndx), 0);
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;

		if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (name == NULL || strncmp(name, prefix, strlen(prefix)) != 0 ||
		    sh.sh_offset > size || sh.sh_size > size - sh.sh_offset)
			continue;
		for (size_t i = 0; i < sh.sh_size; i++) {
			seed = seed * 1103515245u + 12345u;
			/* Keep some bytes, so parsers get past the headers. */
			if (seed >> 28 == 0)
				image[sh.sh_offset + i] = (unsigned char)(seed >> 16);
		}
	}
	elf_end(elf);
}

/* Broken debug info or a truncated file means fewer details, not a crash. */
static void test_corrupt_files(void **state)
{
	struct env *e = *state;
	const char *sections[] = { ".debug_info", ".debug_abbrev", ".debug_line",
				   ".debug_str", ".debug_rnglists", ".debug_", ".symtab",
				   ".strtab", ".dynsym" };
	uintptr_t addrs[3];
	uint64_t vaddrs[3];
	size_t size;
	char *orig = read_file("/proc/self/exe", &size);

	fixture_outer(1);
	addrs[0] = fixture_ra;
	addrs[1] = (uintptr_t)fixture_leaf;
	addrs[2] = (uintptr_t)fixture_outer;
	for (size_t i = 0; i < 3; i++)
		self_file(e, addrs[i], &vaddrs[i]);
	for (size_t round = 0; round < 2 * sizeof sections / sizeof sections[0]; round++) {
		struct symbolizer *s = symbolizer_create(getpid());
		size_t n = round % 2 ? size / 2 : size;
		unsigned char *image = xmalloc(size);
		struct elf_file *f;
		struct sym_result res;

		memcpy(image, orig, size);
		garble(image, size, sections[round / 2], (uint32_t)round);
		if (elf_file_from_memory(image, n, "corrupt", &f) != 0) {
			symbolizer_free(s);
			continue;
		}
		for (size_t i = 0; i < 3; i++) {
			symbolizer_lookup(s, f, vaddrs[i], i == 0, &res);
			assert_true(res.n >= 1);
			for (size_t j = 0; j < res.n; j++)
				assert_non_null(res.frames[j].func);
		}
		symbolizer_free(s);
		elf_file_free(f);
	}
	free(orig);
}

static const char *perfmap_path(void)
{
	static char path[64];

	snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
	return path;
}

static int remove_perfmap(void **state)
{
	(void)state;
	unlink(perfmap_path());
	return 0;
}

static void write_perfmap(const char *text, const char *mode)
{
	FILE *fp = fopen(perfmap_path(), mode);

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void test_perfmap(void **state)
{
	struct env *e = *state;
	struct sym_result res;

	symbolizer_lookup_anon(e->s, 0x7f0000001080, &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.frames[0].func, "[unknown]");

	write_perfmap("7f0000001000 100 LazyCompile:~run app.js:1\n"
		      "bad line\n"
		      "0x7f0000002000 20 Interpreter\n", "w");
	symbolizer_lookup_anon(e->s, 0x7f0000001080, &res);
	assert_string_equal(res.frames[0].func, "LazyCompile:~run app.js:1");
	assert_null(res.frames[0].file);
	symbolizer_lookup_anon(e->s, 0x7f000000201f, &res);
	assert_string_equal(res.frames[0].func, "Interpreter");
	symbolizer_lookup_anon(e->s, 0x7f0000001100, &res);
	assert_string_equal(res.frames[0].func, "[unknown]");

	/*
	 * JITs append.  The map is reread when an address is missing from
	 * it; a later entry at the same start replaces the older one, and a
	 * line still being written is read once it is complete.
	 */
	write_perfmap("7f0000003000 10 added\n7f0000001000 80 recompiled", "a");
	symbolizer_lookup_anon(e->s, 0x7f0000003008, &res);
	assert_string_equal(res.frames[0].func, "added");
	symbolizer_lookup_anon(e->s, 0x7f0000001010, &res);
	assert_string_equal(res.frames[0].func, "LazyCompile:~run app.js:1");
	write_perfmap("\n", "a");
	symbolizer_lookup_anon(e->s, 0x7f0000005000, &res);
	assert_string_equal(res.frames[0].func, "[unknown]");
	symbolizer_lookup_anon(e->s, 0x7f0000001010, &res);
	assert_string_equal(res.frames[0].func, "recompiled");

	/* Rewritten from scratch: the old entries are gone. */
	write_perfmap("7f0000004000 10 fresh\n", "w");
	symbolizer_lookup_anon(e->s, 0x7f0000004000, &res);
	assert_string_equal(res.frames[0].func, "fresh");
	symbolizer_lookup_anon(e->s, 0x7f0000003008, &res);
	assert_string_equal(res.frames[0].func, "[unknown]");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints the cost of cold and warm lookups over libc's code; no assert. */
static void test_timing(void **state)
{
	struct env *e = *state;
	enum { N = 20000 };
	struct mapping *m = maps_find(&e->maps, libc_function("qsort"));
	struct symbolizer *s = symbolizer_create(getpid());
	struct elf_file *f;
	struct sym_result res;
	uint64_t bias, step, t0, t1, t2;

	assert_int_equal(elfcache_get(e->cache, getpid(), m, &f), 0);
	assert_int_equal(elf_file_bias(f, m, &bias), 0);
	step = (m->end - m->start) / N;
	symbolizer_lookup(s, f, m->start - bias, false, &res);
	t0 = now_ns();
	for (uint64_t i = 0; i < N; i++)
		symbolizer_lookup(s, f, m->start + i * step + 1 - bias, false, &res);
	t1 = now_ns();
	for (uint64_t i = 0; i < N; i++)
		symbolizer_lookup(s, f, m->start + i * step + 1 - bias, false, &res);
	t2 = now_ns();
	print_message("libc, %d addresses: cold %.0f ns/lookup, warm %.1f ns/lookup\n",
		      N, (double)(t1 - t0) / N, (double)(t2 - t1) / N);
	symbolizer_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_function_entry),
		cmocka_unit_test(test_return_address_line),
		cmocka_unit_test(test_return_is_address_minus_one),
		cmocka_unit_test(test_inlined_frames),
		cmocka_unit_test(test_demangled),
		cmocka_unit_test(test_cache_and_interning),
		cmocka_unit_test(test_libc),
		cmocka_unit_test(test_shared_modules),
		cmocka_unit_test(test_stripped_executable),
		cmocka_unit_test(test_stripped_library),
		cmocka_unit_test(test_compressed_debug_info),
		cmocka_unit_test(test_corrupt_files),
		cmocka_unit_test_teardown(test_perfmap, remove_perfmap),
		cmocka_unit_test(test_timing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
