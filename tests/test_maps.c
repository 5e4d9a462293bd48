/*
 * Unit tests for maps: parsing a whole maps file and looking addresses up.
 * The sample is /proc/PID/maps of cat on Debian 12, Linux 6.18, with some
 * locale mappings left out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "maps.h"

static const char cat_maps[] =
	"558f505e9000-558f505eb000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
	"558f505eb000-558f505f0000 r-xp 00002000 fe:00 247134                     /usr/bin/cat\n"
	"558f505f0000-558f505f3000 r--p 00007000 fe:00 247134                     /usr/bin/cat\n"
	"558f505f3000-558f505f4000 r--p 00009000 fe:00 247134                     /usr/bin/cat\n"
	"558f505f4000-558f505f5000 rw-p 0000a000 fe:00 247134                     /usr/bin/cat\n"
	"558f85bd0000-558f85bf1000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f09acd97000-7f09ace5b000 rw-p 00000000 00:00 0 \n"
	"7f09ace5b000-7f09aceb2000 r--p 00000000 fe:00 320475                     /usr/lib/locale/C.utf8/LC_CTYPE\n"
	"7f09aceb9000-7f09acebc000 rw-p 00000000 00:00 0 \n"
	"7f09acebc000-7f09acee2000 r--p 00000000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f09acee2000-7f09ad038000 r-xp 00026000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f09ad038000-7f09ad08b000 r--p 0017c000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f09ad08b000-7f09ad08f000 r--p 001cf000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f09ad08f000-7f09ad091000 rw-p 001d3000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f09ad091000-7f09ad09e000 rw-p 00000000 00:00 0 \n"
	"7f09ad0a1000-7f09ad0a8000 r--s 00000000 fe:00 332280                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n"
	"7f09ad0a9000-7f09ad0ab000 rw-p 00000000 00:00 0 \n"
	"7f09ad0ab000-7f09ad0af000 r--p 00000000 00:00 0                          [vvar]\n"
	"7f09ad0af000-7f09ad0b1000 r--p 00000000 00:00 0                          [vvar_vclock]\n"
	"7f09ad0b1000-7f09ad0b3000 r-xp 00000000 00:00 0                          [vdso]\n"
	"7f09ad0b3000-7f09ad0b4000 r--p 00000000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7f09ad0b4000-7f09ad0da000 r-xp 00001000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7f09ad0da000-7f09ad0e4000 r--p 00027000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7f09ad0e4000-7f09ad0e6000 r--p 00031000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7f09ad0e6000-7f09ad0e8000 rw-p 00033000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7fff98630000-7fff98651000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static int parse(const char *text, struct maps *m)
{
	return maps_parse(text, strlen(text), m);
}

static void test_parse_real(void **state)
{
	struct maps m;
	struct mapping *mp;

	(void)state;
	assert_int_equal(parse(cat_maps, &m), 0);
	assert_int_equal(m.n, 27);

	mp = &m.v[1];
	assert_int_equal(mp->start, 0x558f505eb000);
	assert_int_equal(mp->end, 0x558f505f0000);
	assert_int_equal(mp->offset, 0x2000);
	assert_int_equal(mp->perms, PROCFS_MAP_READ | PROCFS_MAP_EXEC);
	assert_int_equal(mp->dev, makedev(0xfe, 0));
	assert_int_equal(mp->inode, 247134);
	assert_string_equal(mp->path, "/usr/bin/cat");
	assert_false(mp->deleted || mp->is_stack || mp->is_vdso);
	assert_null(mp->elf);
	assert_false(mp->elf_tried || mp->bias_known);

	mp = &m.v[6];
	assert_null(mp->path);
	assert_int_equal(mp->perms, PROCFS_MAP_READ | PROCFS_MAP_WRITE);
	assert_int_equal(mp->dev, makedev(0, 0));

	assert_int_equal(m.v[15].perms, PROCFS_MAP_READ | PROCFS_MAP_SHARED);
	assert_string_equal(m.v[19].path, "[vdso]");
	assert_true(m.v[19].is_vdso);
	assert_false(m.v[19].is_stack);
	assert_false(m.v[17].is_vdso);
	assert_string_equal(m.v[25].path, "[stack]");
	assert_true(m.v[25].is_stack);
	assert_false(m.v[25].is_vdso);
	assert_string_equal(m.v[26].path, "[vsyscall]");
	assert_int_equal(m.v[26].perms, PROCFS_MAP_EXEC);
	assert_int_equal(m.v[26].end, 0xffffffffff601000);

	mp = maps_find(&m, 0x7f09acee2000 + 0x1234);
	assert_ptr_equal(mp, &m.v[10]);
	assert_string_equal(mp->path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
	assert_ptr_equal(maps_find(&m, 0xffffffffff600fff), &m.v[26]);
	assert_null(maps_find(&m, 0xffffffffff601000));
	assert_null(maps_find(&m, 0x7f09aceb2000));
	maps_clear(&m);
	assert_null(m.v);
	assert_int_equal(m.n, 0);
}

static void test_parse_variants(void **state)
{
	struct maps m;

	(void)state;
	/* No final newline; a deleted file; spaces in a path. */
	assert_int_equal(parse("1000-2000 r-xp 00000000 fe:00 7   /usr/sbin/my daemon (deleted)\n"
			       "2000-3000 rw-s 00000000 00:01 2049   /memfd:perch jit (deleted)\n"
			       "3000-4000 r--p 00000000 fe:00 8   /opt/a b/c.so", &m), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.v[0].path, "/usr/sbin/my daemon");
	assert_true(m.v[0].deleted);
	assert_string_equal(m.v[1].path, "/memfd:perch jit");
	assert_true(m.v[1].deleted);
	assert_int_equal(m.v[1].dev, makedev(0, 1));
	assert_string_equal(m.v[2].path, "/opt/a b/c.so");
	assert_false(m.v[2].deleted);
	maps_clear(&m);

	/* Not exactly "[stack]" or "[vdso]". */
	assert_int_equal(parse("1000-2000 rw-p 00000000 00:00 0   [stack:1234]\n"
			       "2000-3000 r-xp 00000000 fe:00 9   /tmp/[vdso]\n", &m), 0);
	assert_false(m.v[0].is_stack);
	assert_false(m.v[1].is_vdso);
	maps_clear(&m);
}

static void test_parse_empty(void **state)
{
	struct maps m;

	(void)state;
	assert_int_equal(maps_parse("", 0, &m), 0);
	assert_int_equal(m.n, 0);
	assert_null(maps_find(&m, 0));
	assert_null(maps_find(&m, 0x1000));
	maps_clear(&m);
	maps_clear(NULL);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"garbage\n",
		"1000-2000 r-xp 00000000 fe:00 7 /a\ngarbage\n",
		"1000-2000 r-xp 00000000 fe:00 7 /a\n3000-4000 r-xp 00000000 fe:00\n",
		"1000-2000 r-xp 00000000 fe:00 7 /a\n3000-2000 r-xp 00000000 fe:00 7 /a\n",
		/* the kernel lists mappings in address order, without overlap */
		"3000-4000 r-xp 00000000 fe:00 7 /a\n1000-2000 r-xp 00000000 fe:00 7 /a\n",
		"1000-3000 r-xp 00000000 fe:00 7 /a\n2000-4000 r-xp 00000000 fe:00 7 /a\n",
		"1000-2000 r-xp 00000000 fe:00 7 /a\n1000-2000 r-xp 00000000 fe:00 7 /a\n",
		"1000-2000 r-xp 00000000 fe:00 7 /a\n5000-6000 rw-p 00000000 00:00 0\n"
		"4000-5000 rw-p 00000000 00:00 0\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct maps m = { NULL, 0 };

		if (parse(bad[i], &m) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		/* Nothing is left to free after a failure. */
		assert_null(m.v);
		assert_int_equal(m.n, 0);
	}
}

static void test_find_boundaries(void **state)
{
	struct maps m;

	(void)state;
	assert_int_equal(parse("1000-2000 r--p 00000000 fe:00 7 /a\n"
			       "2000-3000 r-xp 00001000 fe:00 7 /a\n"
			       "5000-6000 rw-p 00000000 00:00 0\n"
			       "7fff0000-80000000 rw-p 00000000 00:00 0   [stack]\n", &m), 0);
	assert_null(maps_find(&m, 0));
	assert_null(maps_find(&m, 0xfff));
	/* Start inclusive, end exclusive, adjacent mappings. */
	assert_ptr_equal(maps_find(&m, 0x1000), &m.v[0]);
	assert_ptr_equal(maps_find(&m, 0x1fff), &m.v[0]);
	assert_ptr_equal(maps_find(&m, 0x2000), &m.v[1]);
	assert_ptr_equal(maps_find(&m, 0x2fff), &m.v[1]);
	/* A gap. */
	assert_null(maps_find(&m, 0x3000));
	assert_null(maps_find(&m, 0x4fff));
	assert_ptr_equal(maps_find(&m, 0x5000), &m.v[2]);
	assert_ptr_equal(maps_find(&m, 0x5fff), &m.v[2]);
	assert_null(maps_find(&m, 0x6000));
	assert_ptr_equal(maps_find(&m, 0x7fffffff), &m.v[3]);
	assert_null(maps_find(&m, 0x80000000));
	assert_null(maps_find(&m, UINT64_MAX));
	maps_clear(&m);
}

/* Enough mappings for every branch of the binary search. */
static void test_find_many(void **state)
{
	const size_t n = 1000;
	size_t cap = n * 64, len = 0;
	char *text = malloc(cap);
	struct maps m;

	(void)state;
	assert_non_null(text);
	/* Mapping i covers [0x10000 * (i + 1), + 0x1000 * (i % 7 + 1)). */
	for (size_t i = 0; i < n; i++) {
		uint64_t start = 0x10000 * (i + 1), end = start + 0x1000 * (i % 7 + 1);

		len += (size_t)snprintf(text + len, cap - len,
					"%llx-%llx r--p 00000000 00:00 0\n",
					(unsigned long long)start,
					(unsigned long long)end);
	}
	assert_int_equal(maps_parse(text, len, &m), 0);
	assert_int_equal(m.n, n);
	for (size_t i = 0; i < n; i++) {
		const struct mapping *mp = &m.v[i];

		assert_null(maps_find(&m, mp->start - 1));
		assert_ptr_equal(maps_find(&m, mp->start), mp);
		assert_ptr_equal(maps_find(&m, mp->start + (mp->end - mp->start) / 2), mp);
		assert_ptr_equal(maps_find(&m, mp->end - 1), mp);
		assert_null(maps_find(&m, mp->end));
	}
	maps_clear(&m);
	free(text);
}

static void test_read_self(void **state)
{
	char exe[PATH_MAX];
	const struct mapping *mp;
	int local = 0, fd;
	struct maps m;
	ssize_t n;
	void *p;

	(void)state;
	fd = memfd_create("perch test map", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);

	assert_int_equal(maps_read(getpid(), &m), 0);
	assert_true(m.n > 5);

	mp = maps_find(&m, (uintptr_t)&local);
	assert_non_null(mp);
	assert_true(mp->is_stack);

	mp = maps_find(&m, getauxval(AT_SYSINFO_EHDR));
	assert_non_null(mp);
	assert_true(mp->is_vdso);

	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	mp = maps_find(&m, (uintptr_t)test_read_self);
	assert_non_null(mp);
	assert_string_equal(mp->path, exe);
	assert_true(mp->perms & PROCFS_MAP_EXEC);
	assert_false(mp->deleted);

	mp = maps_find(&m, (uintptr_t)p);
	assert_non_null(mp);
	assert_string_equal(mp->path, "/memfd:perch test map");
	assert_true(mp->deleted);
	assert_int_equal(mp->perms, PROCFS_MAP_READ | PROCFS_MAP_SHARED);
	assert_int_equal(mp->start, (uintptr_t)p);
	assert_int_equal(mp->end, (uintptr_t)p + 4096);

	maps_clear(&m);
	munmap(p, 4096);
	close(fd);
}

static void test_read_errors(void **state)
{
	struct maps m;

	(void)state;
	/* Above any pid_max. */
	assert_int_equal(maps_read(INT_MAX, &m), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_real),
		cmocka_unit_test(test_parse_variants),
		cmocka_unit_test(test_parse_empty),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_find_boundaries),
		cmocka_unit_test(test_find_many),
		cmocka_unit_test(test_read_self),
		cmocka_unit_test(test_read_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
