/*
 * Unit tests for the /proc parsers.  The sample texts were read from a
 * Debian 12 machine running Linux 6.18; the malformed ones are what a
 * truncated read, a different kernel or a bug could hand the parsers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"

static int parse_map(const char *line, struct procfs_map_line *ml)
{
	return procfs_parse_maps_line(line, strlen(line), ml);
}

static void assert_path(const struct procfs_map_line *ml, const char *path)
{
	assert_non_null(ml->path);
	assert_int_equal(ml->path_len, strlen(path));
	assert_memory_equal(ml->path, path, strlen(path));
}

static void test_maps_line_file(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("558f505eb000-558f505f0000 r-xp 00002000 fe:00 247134"
				   "                     /usr/bin/cat", &ml), 0);
	assert_int_equal(ml.start, 0x558f505eb000);
	assert_int_equal(ml.end, 0x558f505f0000);
	assert_int_equal(ml.offset, 0x2000);
	assert_int_equal(ml.perms, PROCFS_MAP_READ | PROCFS_MAP_EXEC);
	assert_int_equal(ml.dev_major, 0xfe);
	assert_int_equal(ml.dev_minor, 0);
	assert_int_equal(ml.inode, 247134);
	assert_path(&ml, "/usr/bin/cat");
	assert_false(ml.deleted);
}

static void test_maps_line_newline(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	/* The newline, and anything after it, is not part of the path. */
	assert_int_equal(parse_map("7f09ad08f000-7f09ad091000 rw-p 001d3000 fe:00 332835"
				   "                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
				   "7f09ad091000-7f09ad09e000 rw-p 00000000 00:00 0 \n",
				   &ml), 0);
	assert_int_equal(ml.perms, PROCFS_MAP_READ | PROCFS_MAP_WRITE);
	assert_int_equal(ml.offset, 0x1d3000);
	assert_path(&ml, "/usr/lib/x86_64-linux-gnu/libc.so.6");
}

static void test_maps_line_anonymous(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	/* Linux prints a blank after the inode of an anonymous mapping. */
	assert_int_equal(parse_map("7f09acd97000-7f09ace5b000 rw-p 00000000 00:00 0 ",
				   &ml), 0);
	assert_int_equal(ml.start, 0x7f09acd97000);
	assert_int_equal(ml.end, 0x7f09ace5b000);
	assert_int_equal(ml.inode, 0);
	assert_null(ml.path);
	assert_int_equal(ml.path_len, 0);
	assert_false(ml.deleted);

	assert_int_equal(parse_map("7f09acd97000-7f09ace5b000 rw-p 00000000 00:00 0\n",
				   &ml), 0);
	assert_null(ml.path);
	assert_int_equal(parse_map("7f09acd97000-7f09ace5b000 ---p 00000000 00:00 0",
				   &ml), 0);
	assert_int_equal(ml.perms, 0);
	assert_null(ml.path);
}

static void test_maps_line_special(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("7fff98630000-7fff98651000 rw-p 00000000 00:00 0"
				   "                          [stack]", &ml), 0);
	assert_path(&ml, "[stack]");
	assert_int_equal(parse_map("7f09ad0b1000-7f09ad0b3000 r-xp 00000000 00:00 0"
				   "                          [vdso]\n", &ml), 0);
	assert_path(&ml, "[vdso]");
	assert_int_equal(ml.perms, PROCFS_MAP_READ | PROCFS_MAP_EXEC);
	assert_int_equal(parse_map("558f85bd0000-558f85bf1000 rw-p 00000000 00:00 0"
				   "                          [heap]", &ml), 0);
	assert_path(&ml, "[heap]");
	assert_int_equal(parse_map("7f09ad0ab000-7f09ad0af000 r--p 00000000 00:00 0"
				   "                          [vvar]", &ml), 0);
	assert_path(&ml, "[vvar]");
	assert_int_equal(parse_map("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
				   "                  [vsyscall]", &ml), 0);
	assert_int_equal(ml.start, 0xffffffffff600000);
	assert_int_equal(ml.perms, PROCFS_MAP_EXEC);
	assert_path(&ml, "[vsyscall]");
	assert_int_equal(parse_map("7f2c3a400000-7f2c3a600000 rw-p 00000000 00:00 0"
				   "                          [anon:glibc malloc]", &ml), 0);
	assert_path(&ml, "[anon:glibc malloc]");
}

static void test_maps_line_shared(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("7f09ad0a1000-7f09ad0a8000 r--s 00000000 fe:00 332280"
				   "                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
				   &ml), 0);
	assert_int_equal(ml.perms, PROCFS_MAP_READ | PROCFS_MAP_SHARED);
	assert_int_equal(ml.inode, 332280);
	assert_int_equal(parse_map("7f0000000000-7f0000001000 rwxs 00000000 00:01 5"
				   "  /dev/zero", &ml), 0);
	assert_int_equal(ml.perms, PROCFS_MAP_READ | PROCFS_MAP_WRITE |
				   PROCFS_MAP_EXEC | PROCFS_MAP_SHARED);
}

static void test_maps_line_spaces(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("7f0000000000-7f0000001000 r-xp 00001000 103:05 42"
				   "    /opt/my app/lib with  spaces.so ", &ml), 0);
	assert_int_equal(ml.dev_major, 0x103);
	assert_int_equal(ml.dev_minor, 5);
	assert_path(&ml, "/opt/my app/lib with  spaces.so ");
	assert_false(ml.deleted);
}

static void test_maps_line_deleted(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("55d0c0a00000-55d0c0a20000 r-xp 00000000 fe:00 1234"
				   "   /usr/sbin/nginx (deleted)\n", &ml), 0);
	assert_path(&ml, "/usr/sbin/nginx");
	assert_true(ml.deleted);
	assert_int_equal(parse_map("7f0000000000-7f0000001000 rw-s 00000000 00:01 2049"
				   "   /memfd:perch test (deleted)", &ml), 0);
	assert_path(&ml, "/memfd:perch test");
	assert_true(ml.deleted);
	/* Only a suffix means deleted. */
	assert_int_equal(parse_map("7f0000000000-7f0000001000 r--p 00000000 fe:00 7"
				   "   /tmp/a (deleted)/b", &ml), 0);
	assert_path(&ml, "/tmp/a (deleted)/b");
	assert_false(ml.deleted);
}

static void test_maps_line_limits(void **state)
{
	struct procfs_map_line ml;

	(void)state;
	assert_int_equal(parse_map("0000000000000000-ffffffffffffffff rw-p ffffffffffffffff"
				   " fff:fffff 18446744073709551615", &ml), 0);
	assert_int_equal(ml.start, 0);
	assert_int_equal(ml.end, UINT64_MAX);
	assert_int_equal(ml.offset, UINT64_MAX);
	assert_int_equal(ml.dev_major, 0xfff);
	assert_int_equal(ml.dev_minor, 0xfffff);
	assert_int_equal(ml.inode, UINT64_MAX);
	assert_null(ml.path);
	/* Leading zeros do not count towards 64 bits. */
	assert_int_equal(parse_map("00000000000000001000-00000000000000002000 r--p 0 00:00 0",
				   &ml), 0);
	assert_int_equal(ml.start, 0x1000);
	assert_int_equal(ml.end, 0x2000);
}

static void test_maps_line_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		" ",
		"558f505e9000",
		"558f505e9000-",
		"558f505e9000-558f505eb000",
		"558f505e9000-558f505eb000 ",
		"-558f505eb000 r--p 00000000 fe:00 247134 /usr/bin/cat",
		"xyz-558f505eb000 r--p 00000000 fe:00 247134 /usr/bin/cat",
		"558f505e9000 558f505eb000 r--p 00000000 fe:00 247134 /usr/bin/cat",
		"558f505e9000-558f505eb000r--p 00000000 fe:00 247134 /usr/bin/cat",
		/* end before start */
		"558f505eb000-558f505e9000 r--p 00000000 fe:00 247134 /usr/bin/cat",
		/* more than 64 bits */
		"10000000000000000-10000000000000001 r--p 00000000 fe:00 1 /x",
		"1000-10000000000000000 r--p 00000000 fe:00 1 /x",
		"1000-2000 r--p 10000000000000000 fe:00 1 /x",
		"1000-2000 r--p 00000000 fe:00 18446744073709551616 /x",
		/* permissions */
		"1000-2000 r-- 00000000 fe:00 1 /x",
		"1000-2000 rw 00000000 fe:00 1 /x",
		"1000-2000 rwxq 00000000 fe:00 1 /x",
		"1000-2000 xwrp 00000000 fe:00 1 /x",
		"1000-2000 r--p",
		"1000-2000 r--p ",
		/* offset, device, inode */
		"1000-2000 r--p 0000000g fe:00 1 /x",
		"1000-2000 r--p fe:00 1 /x",
		"1000-2000 r--p 00000000 fe00 1 /x",
		"1000-2000 r--p 00000000 fe: 1 /x",
		"1000-2000 r--p 00000000 :00 1 /x",
		"1000-2000 r--p 00000000 1000:00 1 /x",
		"1000-2000 r--p 00000000 00:100000 1 /x",
		"1000-2000 r--p 00000000 fe:00",
		"1000-2000 r--p 00000000 fe:00 ",
		"1000-2000 r--p 00000000 fe:00 /x",
		"1000-2000 r--p 00000000 fe:00 -1 /x",
	};
	struct procfs_map_line ml;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse_map(bad[i], &ml) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_maps_line_length(void **state)
{
	const char *line = "7f0000000000-7f0000001000 r-xp 00000000 fe:00 42 /lib/x.so";
	struct procfs_map_line ml;

	(void)state;
	/* Only len bytes count: the text need not be NUL-terminated. */
	assert_int_equal(procfs_parse_maps_line(line, strlen(line) - 5, &ml), 0);
	assert_path(&ml, "/lib");
	assert_int_equal(procfs_parse_maps_line(line, 20, &ml), -EINVAL);
	assert_int_equal(procfs_parse_maps_line(line, 0, &ml), -EINVAL);
}

static int parse_stat(const char *text, struct procfs_stat *st)
{
	return procfs_parse_stat(text, strlen(text), st);
}

static void test_stat_real(void **state)
{
	struct procfs_stat st;

	(void)state;
	assert_int_equal(parse_stat("3787 (cat) R 3783 3783 2832 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 176519 "
				    "3133440 362 18446744073709551615 94091115282432 94091115302313 "
				    "140733044862784 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94091115318320 "
				    "94091115319936 94091570847744 140733044865673 140733044865693 "
				    "140733044865693 140733044867051 0\n", &st), 0);
	assert_string_equal(st.comm, "cat");
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, 3783);
	assert_int_equal(st.flags, 4194304);
	assert_int_equal(st.utime, 0);
	assert_int_equal(st.stime, 0);
	assert_int_equal(st.starttime, 176519);
	assert_false(st.flags & PROCFS_PF_KTHREAD);

	/* Negative nice and priority; pid 1 has ppid 0. */
	assert_int_equal(parse_stat("1 (process_api) S 0 0 0 0 -1 4194560 28571 351436 0 200 101 349 905 506 "
				    "10 -10 13 0 24 41230336 2765 18446744073709551615 1 1 0 0 0 0 0 4096 "
				    "1256 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", &st), 0);
	assert_string_equal(st.comm, "process_api");
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.ppid, 0);
	assert_int_equal(st.utime, 101);
	assert_int_equal(st.stime, 349);
	assert_int_equal(st.starttime, 24);

	assert_int_equal(parse_stat("3819 (sh) T 3814 3814 2832 0 -1 4194304 119 0 1 0 30 0 0 0 20 0 1 0 176842 "
				    "2654208 403 18446744073709551615 93897090125824 93897090202553 "
				    "140735575729824 0 0 0 0 6 65536 1 0 0 17 0 0 0 0 0 0 93897090231856 "
				    "93897090236992 93897539313664 140735575730821 140735575730847 "
				    "140735575730847 140735575732204 19\n", &st), 0);
	assert_int_equal(st.state, 'T');
	assert_int_equal(st.utime, 30);
	assert_int_equal(st.starttime, 176842);
}

static void test_stat_kthread(void **state)
{
	struct procfs_stat st;

	(void)state;
	assert_int_equal(parse_stat("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 "
				    "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 "
				    "0 0 0 0 0 0\n", &st), 0);
	assert_string_equal(st.comm, "kthreadd");
	assert_true(st.flags & PROCFS_PF_KTHREAD);
	/* Kernel threads may show names longer than TASK_COMM_LEN. */
	assert_int_equal(parse_stat("6 (kworker/R-kvfree_rcu_reclaim) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 "
				    "0 -20 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 "
				    "17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", &st), 0);
	assert_string_equal(st.comm, "kworker/R-kvfree_rcu_reclaim");
	assert_int_equal(st.state, 'I');
	assert_int_equal(st.ppid, 2);
}

#define STAT_TAIL " S 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99 0 0\n"

static void test_stat_comm(void **state)
{
	static const struct {
		const char *text, *comm;
	} cases[] = {
		{ "42 ((a b) c))" STAT_TAIL, "(a b) c)" },
		{ "42 ())" STAT_TAIL, ")" },
		{ "42 (()" STAT_TAIL, "(" },
		{ "42 ()" STAT_TAIL, "" },
		{ "42 (  )" STAT_TAIL, "  " },
		{ "42 (x) S 1 y)" STAT_TAIL, "x) S 1 y" },
		{ "42 (123456789012345)" STAT_TAIL, "123456789012345" },
	};
	struct procfs_stat st;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(parse_stat(cases[i].text, &st), 0);
		assert_string_equal(st.comm, cases[i].comm);
		assert_int_equal(st.state, 'S');
		assert_int_equal(st.ppid, 1);
		assert_int_equal(st.utime, 7);
		assert_int_equal(st.stime, 8);
		assert_int_equal(st.starttime, 99);
	}
}

static void test_stat_long_comm(void **state)
{
	char text[256], comm[101];
	struct procfs_stat st;

	(void)state;
	memset(comm, 'c', sizeof comm - 1);
	comm[sizeof comm - 1] = '\0';
	snprintf(text, sizeof text, "42 (%s)" STAT_TAIL, comm);
	assert_int_equal(parse_stat(text, &st), 0);
	assert_int_equal(strlen(st.comm), sizeof st.comm - 1);
	assert_memory_equal(st.comm, comm, sizeof st.comm - 1);
	assert_int_equal(st.starttime, 99);
}

static void test_stat_limits(void **state)
{
	struct procfs_stat st;

	(void)state;
	assert_int_equal(parse_stat("42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 18446744073709551615 "
				    "18446744073709551614 0 0 20 0 1 0 18446744073709551613", &st), 0);
	assert_int_equal(st.utime, UINT64_MAX);
	assert_int_equal(st.stime, UINT64_MAX - 1);
	assert_int_equal(st.starttime, UINT64_MAX - 2);
}

static void test_stat_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"42",
		"42 (x",
		"42 x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 )x( R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 (x)",
		"42 (x) ",
		"42 (x)R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 (x) RS 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 (x) R",
		"42 (x) R ",
		"42 (x) R y 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 (x) R 1 1 1 0 -1 flags 0 0 0 0 7 8 0 0 20 0 1 0 99",
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 -7 8 0 0 20 0 1 0 99",
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 x",
		/* truncated before or inside field 22 */
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8",
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0",
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 ",
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0\n99",
		/* overflow */
		"42 (x) R 1 1 1 0 -1 4194304 0 0 0 0 18446744073709551616 8 0 0 20 0 1 0 99",
		"42 (x) R 99999999999999999999 1 1 0 -1 4194304 0 0 0 0 7 8 0 0 20 0 1 0 99",
	};
	struct procfs_stat st;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse_stat(bad[i], &st) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static int parse_status(const char *text, struct procfs_status *st)
{
	return procfs_parse_status(text, strlen(text), st);
}

static const char cat_status[] =
	"Name:\tcat\n"
	"Umask:\t0022\n"
	"State:\tR (running)\n"
	"Tgid:\t3788\n"
	"Ngid:\t0\n"
	"Pid:\t3788\n"
	"PPid:\t3783\n"
	"TracerPid:\t0\n"
	"Uid:\t0\t0\t0\t0\n"
	"Gid:\t0\t0\t0\t0\n"
	"FDSize:\t256\n"
	"Groups:\t \n"
	"NStgid:\t3788\n"
	"NSpid:\t3788\n"
	"NSpgid:\t3783\n"
	"NSsid:\t2832\n"
	"Kthread:\t0\n"
	"VmPeak:\t    3060 kB\n"
	"VmSize:\t    3060 kB\n"
	"VmLck:\t       0 kB\n"
	"VmPin:\t       0 kB\n"
	"VmHWM:\t    1744 kB\n"
	"VmRSS:\t    1744 kB\n"
	"RssAnon:\t     112 kB\n"
	"RssFile:\t    1632 kB\n"
	"RssShmem:\t       0 kB\n"
	"VmData:\t     360 kB\n"
	"VmStk:\t     132 kB\n"
	"VmExe:\t      20 kB\n"
	"VmLib:\t    1528 kB\n"
	"VmPTE:\t      48 kB\n"
	"VmSwap:\t       0 kB\n"
	"HugetlbPages:\t       0 kB\n"
	"CoreDumping:\t0\n"
	"THP_enabled:\t1\n"
	"untag_mask:\t0xffffffffffffffff\n"
	"Threads:\t1\n"
	"SigQ:\t0/96365\n"
	"SigPnd:\t0000000000000000\n"
	"ShdPnd:\t0000000000000000\n"
	"SigBlk:\t0000000000000000\n"
	"SigIgn:\t0000000000000000\n"
	"SigCgt:\t0000000000000000\n"
	"CapInh:\t0000000000000000\n"
	"CapPrm:\t000001fffeffffff\n"
	"CapEff:\t000001fffeffffff\n"
	"CapBnd:\t000001fffeffffff\n"
	"CapAmb:\t0000000000000000\n"
	"NoNewPrivs:\t0\n"
	"Seccomp:\t0\n"
	"Seccomp_filters:\t0\n"
	"Speculation_Store_Bypass:\tvulnerable\n"
	"SpeculationIndirectBranch:\talways enabled\n"
	"Cpus_allowed:\t3\n"
	"Cpus_allowed_list:\t0-1\n"
	"Mems_allowed:\t00000000,00000001\n"
	"Mems_allowed_list:\t0\n"
	"voluntary_ctxt_switches:\t12\n"
	"nonvoluntary_ctxt_switches:\t3\n";

static void test_status_real(void **state)
{
	struct procfs_status st;

	(void)state;
	assert_int_equal(parse_status(cat_status, &st), 0);
	assert_string_equal(st.name, "cat");
	assert_int_equal(st.tgid, 3788);
	assert_int_equal(st.tracer_pid, 0);
	assert_int_equal(st.uid_real, 0);
	assert_int_equal(st.uid_effective, 0);
	assert_int_equal(st.voluntary_ctxt_switches, 12);
	assert_int_equal(st.nonvoluntary_ctxt_switches, 3);
	assert_true(st.has_kthread);
	assert_false(st.kthread);
}

static void test_status_kthread(void **state)
{
	struct procfs_status st;

	(void)state;
	assert_int_equal(parse_status("Name:\tkthreadd\n"
				      "Umask:\t0022\n"
				      "State:\tS (sleeping)\n"
				      "Tgid:\t2\n"
				      "Ngid:\t0\n"
				      "Pid:\t2\n"
				      "PPid:\t0\n"
				      "TracerPid:\t0\n"
				      "Uid:\t0\t0\t0\t0\n"
				      "Gid:\t0\t0\t0\t0\n"
				      "FDSize:\t64\n"
				      "Groups:\t \n"
				      "NStgid:\t2\n"
				      "NSpid:\t2\n"
				      "NSpgid:\t0\n"
				      "NSsid:\t0\n"
				      "Kthread:\t1\n"
				      "Threads:\t1\n"
				      "voluntary_ctxt_switches:\t60\n"
				      "nonvoluntary_ctxt_switches:\t0\n", &st), 0);
	assert_string_equal(st.name, "kthreadd");
	assert_int_equal(st.tgid, 2);
	assert_true(st.has_kthread);
	assert_true(st.kthread);
	assert_int_equal(st.voluntary_ctxt_switches, 60);
}

static void test_status_variants(void **state)
{
	struct procfs_status st;

	(void)state;
	/* Older kernels: no Kthread line; traced; setuid; odd name. */
	assert_int_equal(parse_status("Name:\t(a b) c)\n"
				      "NStgid:\t99\n"
				      "Tgid:\t4321\n"
				      "TracerPid:\t777\n"
				      "Uid:\t1000\t0\t0\t0\n"
				      "Gid:\t1000\t1000\t1000\t1000\n", &st), 0);
	assert_string_equal(st.name, "(a b) c)");
	assert_int_equal(st.tgid, 4321);
	assert_int_equal(st.tracer_pid, 777);
	assert_int_equal(st.uid_real, 1000);
	assert_int_equal(st.uid_effective, 0);
	assert_false(st.has_kthread);
	assert_false(st.kthread);
	assert_int_equal(st.voluntary_ctxt_switches, 0);
	assert_int_equal(st.nonvoluntary_ctxt_switches, 0);

	/* No final newline; an empty name. */
	assert_int_equal(parse_status("Name:\t\nTgid:\t1\nTracerPid:\t0\n"
				      "Uid:\t0\t0\t0\t0\nnonvoluntary_ctxt_switches:\t5", &st), 0);
	assert_string_equal(st.name, "");
	assert_int_equal(st.voluntary_ctxt_switches, 0);
	assert_int_equal(st.nonvoluntary_ctxt_switches, 5);
}

static void test_status_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"Tgid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgid:\t1\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgid:\t1\nTracerPid:\t0\n",
		"Name:\tx\nTgid:\t1\nTracerPid:\t0\nUid:\t0\n",
		"Name:\tx\nTgid:\t1\nTracerPid:\t0\nUid:\t\n",
		"Name:\tx\nTgid:\tone\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgid:\t\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgid:\t1\nTracerPid:\t-1\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgid:\t18446744073709551616\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		/* keys match whole words at the start of a line only */
		"Name:\tx\nNStgid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\nTgidx:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name:\tx\n Tgid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
		"Name\tx\nTgid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n",
	};
	struct procfs_status st;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse_status(bad[i], &st) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static int parse_syscall(const char *text, struct procfs_syscall *sc)
{
	return procfs_parse_syscall(text, strlen(text), sc);
}

static void test_syscall_running(void **state)
{
	struct procfs_syscall sc;

	(void)state;
	assert_int_equal(parse_syscall("running\n", &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_RUNNING);
}

static void test_syscall_blocked(void **state)
{
	static const uint64_t args[6] = { 0x3, 0x7f31cbfb4000, 0x20000,
					  0x7f31cc045b60, 0xffffffff, 0x0 };
	struct procfs_syscall sc;

	(void)state;
	assert_int_equal(parse_syscall("0 0x3 0x7f31cbfb4000 0x20000 0x7f31cc045b60 0xffffffff "
				       "0x0 0x7ffe49765378 0x7f31cc12e2ad\n", &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_BLOCKED);
	assert_int_equal(sc.nr, 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(sc.args[i], args[i]);
	assert_int_equal(sc.sp, 0x7ffe49765378);
	assert_int_equal(sc.pc, 0x7f31cc12e2ad);

	assert_int_equal(parse_syscall("230 0x0 0x0 0x7fff20be9c10 0x7fff20be9c50 0x0 0x0 "
				       "0x7fff20be9bf8 0x7f60200a4503\n", &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_BLOCKED);
	assert_int_equal(sc.nr, 230);
	assert_int_equal(sc.args[2], 0x7fff20be9c10);
	assert_int_equal(sc.args[3], 0x7fff20be9c50);
	assert_int_equal(sc.sp, 0x7fff20be9bf8);
	assert_int_equal(sc.pc, 0x7f60200a4503);

	assert_int_equal(parse_syscall("202 0xffffffffffffffff 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n", &sc), 0);
	assert_int_equal(sc.args[0], UINT64_MAX);
	assert_int_equal(sc.pc, 2);

	/* The largest number "%d" prints. */
	assert_int_equal(parse_syscall("2147483647 0x0 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n", &sc), 0);
	assert_int_equal(sc.nr, 2147483647);
}

static void test_syscall_not_in_syscall(void **state)
{
	struct procfs_syscall sc;

	(void)state;
	assert_int_equal(parse_syscall("-1 0x7fff8dffa300 0x55661eb43ecb\n", &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_NOT_IN_SYSCALL);
	assert_int_equal(sc.nr, -1);
	assert_int_equal(sc.sp, 0x7fff8dffa300);
	assert_int_equal(sc.pc, 0x55661eb43ecb);
}

static void test_syscall_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"runnin",
		"Running\n",
		"blocked\n",
		"x 0x0 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n",
		"0\n",
		"0 0x1 0x2 0x3 0x4 0x5\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 \n",
		"0 1 2 3 4 5 6 7 8\n",
		"0 0x 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0xg\n",
		"0 0x10000000000000000 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x10000000000000000\n",
		"0,0x1,0x2,0x3,0x4,0x5,0x6,0x7,0x8\n",
		"-1\n",
		"-1 0x7fff8dffa300\n",
		"-1 0x7fff8dffa300 \n",
		"-1 7fff8dffa300 55661eb43ecb\n",
		"-2 0x7fff8dffa300 0x55661eb43ecb\n",
		"- 0x7fff8dffa300 0x55661eb43ecb\n",
		"99999999999999999999 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		/* Only what the kernel writes: "running\n" and nothing else. */
		"running",
		"running\n\n",
		"running\nx",
		"running now\n",
		"runningX",
		/* The newline ends the line and the file. */
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 \n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n0",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 0x9\n",
		"-1 0x7fff8dffa300 0x55661eb43ecb",
		"-1 0x7fff8dffa300 0x55661eb43ecb 0x1\n",
		/* One space between fields, no other blank. */
		"0  0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0\t0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		" 0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"-1  0x7fff8dffa300 0x55661eb43ecb\n",
		/* Numbers as "%d" and "0x%llx" print them. */
		"+0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"00 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"07 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"-0 0x1 0x2\n",
		"-01 0x1 0x2\n",
		"2147483648 0x0 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n",
		"0 0x01 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0 0x00 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0 0X1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n",
		"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0xA\n",
		"-1 0x7FFF8DFFA300 0x55661eb43ecb\n",
	};
	struct procfs_syscall sc;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse_syscall(bad[i], &sc) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_schedstat(void **state)
{
	static const char *const bad[] = {
		"", "\n", "1", "1 2", "1 2\n", "a b c", "1 2 c", "-1 2 3",
		"18446744073709551616 0 1",
	};
	struct procfs_schedstat ss;

	(void)state;
	assert_int_equal(procfs_parse_schedstat("20373572 1526111 57\n", 20, &ss), 0);
	assert_int_equal(ss.run_ns, 20373572);
	assert_int_equal(ss.wait_ns, 1526111);
	assert_int_equal(ss.timeslices, 57);
	assert_int_equal(procfs_parse_schedstat("0 0 1\n", 6, &ss), 0);
	assert_int_equal(ss.run_ns, 0);
	assert_int_equal(ss.timeslices, 1);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (procfs_parse_schedstat(bad[i], strlen(bad[i]), &ss) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_pread(void **state)
{
	static const char text[] = "hello world\n";
	int fd = memfd_create("perch-test", MFD_CLOEXEC);
	char buf[64];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	/* Always from offset 0, whatever the file position. */
	assert_int_equal(procfs_pread(fd, buf, sizeof buf), strlen(text));
	assert_string_equal(buf, text);
	assert_int_equal(procfs_pread(fd, buf, sizeof buf), strlen(text));
	assert_string_equal(buf, text);
	/* Truncated to the buffer, and still NUL-terminated. */
	assert_int_equal(procfs_pread(fd, buf, 6), 5);
	assert_string_equal(buf, "hello");
	assert_int_equal(procfs_pread(fd, buf, 1), 0);
	assert_string_equal(buf, "");
	assert_int_equal(procfs_pread(fd, buf, 0), -EINVAL);
	close(fd);
	assert_int_equal(procfs_pread(fd, buf, sizeof buf), -EBADF);
}

/*
 * procfs_pread_line: one read for a whole line (a task's stat), the same
 * text as procfs_pread; anything else (no newline, cut short by the
 * buffer, empty) read as procfs_pread reads it.
 */
static void test_pread_line(void **state)
{
	static const char text[] = "hello world\n", two[] = "one\ntwo";
	int fd = memfd_create("perch-test", MFD_CLOEXEC);
	char buf[64], path[64], line[1024];
	struct procfs_stat st;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(procfs_pread_line(fd, buf, sizeof buf), 0);
	assert_string_equal(buf, "");
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(procfs_pread_line(fd, buf, sizeof buf), strlen(text));
	assert_string_equal(buf, text);
	assert_int_equal(procfs_pread_line(fd, buf, 6), 5);
	assert_string_equal(buf, "hello");
	assert_int_equal(procfs_pread_line(fd, buf, 0), -EINVAL);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, two, strlen(two), 0), (ssize_t)strlen(two));
	assert_int_equal(procfs_pread_line(fd, buf, sizeof buf), strlen(two));
	assert_string_equal(buf, two);
	close(fd);
	assert_int_equal(procfs_pread_line(fd, buf, sizeof buf), -EBADF);

	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)gettid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* Read while this thread runs: a whole line, and it says so. */
	n = procfs_pread_line(fd, line, sizeof line);
	assert_true(n > 0 && line[n - 1] == '\n');
	assert_int_equal(procfs_parse_stat(line, (size_t)n, &st), 0);
	assert_int_equal(st.state, 'R');
	close(fd);
}

static void test_read_path_errors(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(procfs_read_path("/proc/self/no-such-file", buf, sizeof buf),
			 -ENOENT);
	/* Above any pid_max. */
	assert_int_equal(procfs_read_path("/proc/2147483647/stat", buf, sizeof buf),
			 -ENOENT);
}

static void test_read_large(void **state)
{
	static char buf[1 << 20];
	ssize_t n;

	(void)state;
	/* seq_file hands out a page per read: the reader must loop. */
	n = procfs_read_path("/proc/self/smaps", buf, sizeof buf);
	assert_true(n > 4096);
	assert_int_equal(strlen(buf), (size_t)n);
	assert_int_equal(buf[n - 1], '\n');
}

/* An open /proc file of a task that has gone reads as ESRCH. */
static void test_pread_gone(void **state)
{
	char path[64], buf[1024];
	struct procfs_stat st;
	ssize_t alive, gone;
	int fd, status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	/* No assertion until the child is reaped: it must not outlive us. */
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	alive = procfs_pread(fd, buf, sizeof buf);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	gone = procfs_pread(fd, buf + 512, sizeof buf - 512);

	assert_true(fd >= 0);
	assert_true(alive > 0 && alive < 512);
	assert_int_equal(procfs_parse_stat(buf, (size_t)alive, &st), 0);
	assert_int_equal(st.ppid, getpid());
	assert_int_equal(gone, -ESRCH);
	close(fd);
}

static void test_live_self(void **state)
{
	struct procfs_status status;
	struct procfs_stat st;
	char buf[4096], comm[16];
	ssize_t n;

	(void)state;
	/* The kernel keeps the first 15 bytes of the executable's name. */
	snprintf(comm, sizeof comm, "%s", program_invocation_short_name);
	n = procfs_read_path("/proc/self/stat", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_stat(buf, (size_t)n, &st), 0);
	assert_string_equal(st.comm, comm);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, getppid());
	assert_false(st.flags & PROCFS_PF_KTHREAD);
	assert_true(st.starttime > 0);

	n = procfs_read_path("/proc/self/status", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_status(buf, (size_t)n, &status), 0);
	assert_string_equal(status.name, comm);
	assert_int_equal(status.tgid, getpid());
	assert_int_equal(status.uid_real, getuid());
	assert_int_equal(status.uid_effective, geteuid());
	assert_false(status.kthread);
}

static int pipe_fds[2];
static atomic_int helper_tid;
static atomic_bool spinning;

static void *reader_main(void *arg)
{
	char c;

	(void)arg;
	atomic_store(&helper_tid, gettid());
	return (void *)(long)read(pipe_fds[0], &c, 1);
}

static void *spinner_main(void *arg)
{
	(void)arg;
	atomic_store(&helper_tid, gettid());
	while (atomic_load(&spinning))
		;
	return NULL;
}

static pid_t start_helper(pthread_t *t, void *(*fn)(void *))
{
	const struct timespec ms = { 0, 1000000 };

	atomic_store(&helper_tid, 0);
	assert_int_equal(pthread_create(t, NULL, fn, NULL), 0);
	while (atomic_load(&helper_tid) == 0)
		nanosleep(&ms, NULL);
	return atomic_load(&helper_tid);
}

static int read_task(pid_t tid, const char *file, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/task/%d/%s", (int)tid, file);
	return (int)procfs_read_path(path, buf, size);
}

/* Waits until the thread is asleep (in its read, as nothing else blocks). */
static void wait_sleeping(pid_t tid)
{
	const struct timespec ms = { 0, 1000000 };
	struct procfs_stat st;
	char buf[1024];

	for (int i = 0; i < 5000; i++) {
		int n = read_task(tid, "stat", buf, sizeof buf);

		assert_true(n > 0);
		assert_int_equal(procfs_parse_stat(buf, (size_t)n, &st), 0);
		if (st.state == 'S')
			return;
		nanosleep(&ms, NULL);
	}
	fail_msg("thread %d never blocked", (int)tid);
}

static void test_live_syscall(void **state)
{
	struct procfs_schedstat ss;
	struct procfs_syscall sc;
	pthread_t reader, spinner;
	char buf[1024];
	pid_t tid;
	void *ret;
	int n;

	(void)state;
	/* Reading our own file: we are inside the pread that reads it. */
	n = read_task(gettid(), "syscall", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_syscall(buf, (size_t)n, &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_BLOCKED);
	assert_int_equal(sc.nr, SYS_pread64);
	assert_int_equal(sc.args[2], sizeof buf - 1);
	assert_true(sc.sp != 0 && sc.pc != 0);

	n = read_task(gettid(), "schedstat", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_schedstat(buf, (size_t)n, &ss), 0);
	assert_true(ss.run_ns > 0);
	assert_true(ss.timeslices > 0);

	assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
	tid = start_helper(&reader, reader_main);
	wait_sleeping(tid);
	n = read_task(tid, "syscall", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_syscall(buf, (size_t)n, &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_BLOCKED);
	assert_int_equal(sc.nr, SYS_read);
	assert_int_equal(sc.args[0], pipe_fds[0]);
	assert_int_equal(sc.args[2], 1);
	assert_true(sc.sp != 0 && sc.pc != 0);
	assert_int_equal(write(pipe_fds[1], "x", 1), 1);
	assert_int_equal(pthread_join(reader, &ret), 0);
	assert_int_equal((long)ret, 1);
	close(pipe_fds[0]);
	close(pipe_fds[1]);

	/* A runnable thread has no registers to show. */
	atomic_store(&spinning, true);
	tid = start_helper(&spinner, spinner_main);
	n = read_task(tid, "syscall", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(procfs_parse_syscall(buf, (size_t)n, &sc), 0);
	assert_int_equal(sc.state, PROCFS_SYSCALL_RUNNING);
	atomic_store(&spinning, false);
	assert_int_equal(pthread_join(spinner, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_line_file),
		cmocka_unit_test(test_maps_line_newline),
		cmocka_unit_test(test_maps_line_anonymous),
		cmocka_unit_test(test_maps_line_special),
		cmocka_unit_test(test_maps_line_shared),
		cmocka_unit_test(test_maps_line_spaces),
		cmocka_unit_test(test_maps_line_deleted),
		cmocka_unit_test(test_maps_line_limits),
		cmocka_unit_test(test_maps_line_malformed),
		cmocka_unit_test(test_maps_line_length),
		cmocka_unit_test(test_stat_real),
		cmocka_unit_test(test_stat_kthread),
		cmocka_unit_test(test_stat_comm),
		cmocka_unit_test(test_stat_long_comm),
		cmocka_unit_test(test_stat_limits),
		cmocka_unit_test(test_stat_malformed),
		cmocka_unit_test(test_status_real),
		cmocka_unit_test(test_status_kthread),
		cmocka_unit_test(test_status_variants),
		cmocka_unit_test(test_status_malformed),
		cmocka_unit_test(test_syscall_running),
		cmocka_unit_test(test_syscall_blocked),
		cmocka_unit_test(test_syscall_not_in_syscall),
		cmocka_unit_test(test_syscall_malformed),
		cmocka_unit_test(test_schedstat),
		cmocka_unit_test(test_pread),
		cmocka_unit_test(test_pread_line),
		cmocka_unit_test(test_read_path_errors),
		cmocka_unit_test(test_read_large),
		cmocka_unit_test(test_pread_gone),
		cmocka_unit_test(test_live_self),
		cmocka_unit_test(test_live_syscall),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
