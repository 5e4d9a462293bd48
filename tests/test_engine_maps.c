/*
 * The sampling engine when a target's address space is not what a path
 * lookup would suggest: a library loaded mid-session, a binary deleted or
 * replaced on disk, a binary visible only in the target's mount namespace,
 * an exec mid-session, and code in no file at all (a JIT with a perf map).
 *
 * Two cases run this test binary itself as a target (see main): inside a
 * new mount namespace, and as a "JIT" spinning in anonymous memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_util.h"
#include "spawn.h"
#include "target.h"

#define BURNER PERCH_TARGETS_DIR "/burner"
#define PLUGIN PERCH_TARGETS_DIR "/libperchplugin.so"
/* Far below a PIE binary (0x55...) and the mmap area (0x7f...). */
#define JIT_ADDR 0x10000000ul

/* Files and directories to remove after each test, removed last first. */
#define TEMP_MAX 128
static char temps[8][TEMP_MAX];
static int ntemps;

static void add_temp(const char *path)
{
	assert_true(ntemps < 8);
	snprintf(temps[ntemps++], sizeof temps[0], "%s", path);
}

/* Makes a fresh directory under /tmp into dir[DIR_MAX], removed at teardown. */
#define DIR_MAX 32
static void temp_dir(char *dir)
{
	snprintf(dir, DIR_MAX, "/tmp/perch-maps-XXXXXX");
	assert_non_null(mkdtemp(dir));
	add_temp(dir);
}

/* Copies src to a new file dst with mode 0755.  Returns 0 or -1. */
static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in, out, rc = 0;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	if (n < 0)
		rc = -1;
	close(in);
	/* Closed before anyone execs it, or execve fails with ETXTBSY. */
	if (close(out) < 0)
		rc = -1;
	return rc;
}

static const struct perch_thread *thread_named(const struct perch_sample *s,
					       const char *name)
{
	for (size_t i = 0; i < s->nthreads; i++)
		if (strcmp(s->threads[i].name, name) == 0)
			return &s->threads[i];
	return NULL;
}

/* Prints a stack, to explain the failure that follows. */
static void print_stack(const struct perch_thread *th)
{
	for (size_t i = 0; i < th->nframes; i++)
		print_message("  #%zu %s %s:%d%s\n", i, th->frames[i].func,
			      th->frames[i].file ? th->frames[i].file : "?",
			      th->frames[i].line, th->frames[i].inlined ? " (inlined)" : "");
}

/* Frames from..end are start_thread, then clone3 (glibc: __clone3). */
static void assert_thread_root(const struct perch_thread *th, int from)
{
	const char *last = th->nframes ? th->frames[th->nframes - 1].func : "";

	if (!th->complete || from < 0 || (size_t)from + 2 != th->nframes ||
	    strcmp(th->frames[from].func, "start_thread") != 0 ||
	    (strcmp(last, "clone3") != 0 && strcmp(last, "__clone3") != 0)) {
		print_stack(th);
		fail_msg("%s: expected start_thread, clone3 at #%d, complete",
			 th->name, from);
	}
}

/*
 * Checks a burner worker caught in burn_alpha or burn_beta: named, with a
 * line of burner.c inside the function, under work_loop and worker_main.
 * Returns whether the thread was in one of them.
 */
static bool check_burn_frame(const struct perch_thread *th)
{
	static int lines[2][2];
	static const char *const names[2] = { "burn_alpha", "burn_beta" };

	if (lines[0][0] == 0)
		for (int i = 0; i < 2; i++)
			function_lines("burner.c", names[i], &lines[i][0], &lines[i][1]);
	for (int i = 0; i < 2; i++) {
		int k = find_func(th, names[i]);

		if (k < 0)
			continue;
		if (!ends_with(th->frames[k].file, "burner.c"))
			fail_msg("%s in file %s, module %s", names[i],
				 th->frames[k].file ? th->frames[k].file : "(none)",
				 th->frames[k].module ? th->frames[k].module : "(none)");
		assert_in_range(th->frames[k].line, lines[i][0], lines[i][1]);
		assert_string_equal(th->frames[k + 1].func, "work_loop");
		assert_string_equal(th->frames[k + 2].func, "worker_main");
		return true;
	}
	return false;
}

/* Samples burner worker burner-0 n times; most samples must name a burn_x. */
static void sample_burner(pid_t pid, int n)
{
	struct perch_sample s;
	struct target *t = open_target(pid);
	int named = 0;

	for (int i = 0; i < n; i++) {
		const struct perch_thread *th;

		assert_int_equal(target_sample(t, &s), 0);
		th = thread_named(&s, "burner-0");
		assert_non_null(th);
		named += check_burn_frame(th);
		usleep(2000);
	}
	target_close(t);
	assert_true(named > n / 2);
}

static void test_dlopen(void **state)
{
	const char *args[] = { "--plugin", PLUGIN, "--ms", "500", NULL };
	int before = 0, after = 0, first, last;
	unsigned long long deadline = mono_ns() + 10000000000ull;
	struct perch_sample s;
	struct target *t;
	struct child c;

	(void)state;
	function_lines("plugin.c", "plugin_hot", &first, &last);
	assert_int_equal(spawn_target(&c, "dlopener", args), 0);
	t = open_target(c.pid);
	while (after < 50 && mono_ns() < deadline) {
		const struct perch_thread *th;
		int k;

		assert_int_equal(target_sample(t, &s), 0);
		th = thread_named(&s, "dlopener-work");
		assert_non_null(th);
		if ((k = find_func(th, "before_load")) >= 0) {
			/* The load happens once: no before_load after a plugin_hot. */
			assert_int_equal(after, 0);
			assert_string_equal(th->frames[k + 1].func, "worker_main");
			assert_thread_root(th, k + 2);
			before++;
		} else if ((k = find_func(th, "plugin_hot")) >= 0) {
			assert_true(ends_with(th->frames[k].file, "plugin.c"));
			assert_in_range(th->frames[k].line, first, last);
			assert_true(ends_with(th->frames[k].module, "/libperchplugin.so"));
			assert_string_equal(th->frames[k + 1].func, "call_plugin");
			assert_true(ends_with(th->frames[k + 1].file, "dlopener.c"));
			assert_string_equal(th->frames[k + 2].func, "worker_main");
			assert_thread_root(th, k + 3);
			after++;
		}
		usleep(2000);
	}
	assert_true(before > 0);
	assert_int_equal(after, 50);
	assert_true(target_stats(t)->maps_refreshes > 0);
	target_close(t);
	assert_int_equal(child_quit(&c), 0);
	assert_int_equal(child_report_long(&c, "loaded"), 1);
}

static void test_deleted_binary(void **state)
{
	const char *args[] = { "--threads", "2", NULL };
	char dir[DIR_MAX], path[TEMP_MAX];
	struct child c;

	(void)state;
	temp_dir(dir);
	snprintf(path, sizeof path, "%s/burner", dir);
	add_temp(path);
	assert_int_equal(copy_file(BURNER, path), 0);
	assert_int_equal(spawn_path(&c, path, args), 0);
	/* The maps now say "(deleted)": only map_files still reaches the file. */
	assert_int_equal(unlink(path), 0);
	sample_burner(c.pid, 50);
	assert_int_equal(child_quit(&c), 0);
}

static void test_replaced_binary(void **state)
{
	const char *args[] = { "--threads", "2", NULL };
	char dir[DIR_MAX], path[TEMP_MAX], other[TEMP_MAX];
	struct child c;

	(void)state;
	temp_dir(dir);
	snprintf(path, sizeof path, "%s/burner", dir);
	snprintf(other, sizeof other, "%s/burner.new", dir);
	add_temp(path);
	add_temp(other);
	assert_int_equal(copy_file(BURNER, path), 0);
	assert_int_equal(spawn_path(&c, path, args), 0);
	/* An upgrade: the path now holds another program. */
	assert_int_equal(copy_file(PERCH_TARGETS_DIR "/threads", other), 0);
	assert_int_equal(rename(other, path), 0);
	sample_burner(c.pid, 50);
	assert_int_equal(child_quit(&c), 0);
}

/* Whether this process may make a mount namespace (it may not in some containers). */
static bool unshare_permitted(void)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unshare(CLONE_NEWNS) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The path of the executable mapping of pid's main binary, from its maps. */
static void main_binary_path(pid_t pid, char *out, size_t size)
{
	char path[64], line[PATH_MAX + 128];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	out[0] = '\0';
	while (out[0] == '\0' && fgets(line, sizeof line, f) != NULL) {
		const char *slash = strchr(line, '/');

		if (strstr(line, " r-xp ") != NULL && slash != NULL &&
		    strstr(slash, "/burner\n") != NULL)
			snprintf(out, size, "%.*s", (int)strcspn(slash, "\n"), slash);
	}
	fclose(f);
	assert_true(out[0] == '/');
}

static void test_mount_namespace(void **state)
{
	char dir[DIR_MAX], mapped[PATH_MAX];
	const char *args[4];
	struct stat st;
	struct child c;

	(void)state;
	if (!unshare_permitted()) {
		print_message("unshare(CLONE_NEWNS) not permitted here\n");
		skip();
	}
	temp_dir(dir);
	args[0] = "--mntns";
	args[1] = dir;
	args[2] = BURNER;
	args[3] = NULL;
	assert_int_equal(spawn_path(&c, "/proc/self/exe", args), 0);
	main_binary_path(c.pid, mapped, sizeof mapped);
	/* The path exists only in the target's namespace. */
	assert_true(strncmp(mapped, dir, strlen(dir)) == 0);
	assert_int_equal(stat(mapped, &st), -1);
	assert_int_equal(errno, ENOENT);
	sample_burner(c.pid, 50);
	assert_int_equal(child_quit(&c), 0);
}

static void test_exec_mid_session(void **state)
{
	const char *args[] = { "--exec", BURNER, "--ms", "500", NULL };
	unsigned long long deadline = mono_ns() + 10000000000ull;
	int before = 0, after = 0;
	struct perch_sample s;
	struct target *t;
	struct child c;

	(void)state;
	assert_int_equal(spawn_target(&c, "execer", args), 0);
	t = open_target(c.pid);
	while (after < 50 && mono_ns() < deadline) {
		const struct perch_thread *th;
		int k;

		assert_int_equal(target_sample(t, &s), 0);
		assert_true(s.nthreads >= 1);
		if ((th = thread_named(&s, "burner-0")) != NULL) {
			after += check_burn_frame(th);
		} else if ((k = find_func(&s.threads[0], "before_exec")) >= 0) {
			assert_int_equal(after, 0);
			assert_true(ends_with(s.threads[0].frames[k].module, "/execer"));
			before++;
		}
		usleep(2000);
	}
	assert_true(before > 0);
	assert_int_equal(after, 50);
	assert_true(target_stats(t)->maps_refreshes > 0);
	target_close(t);
	/* burner's own "ready" line comes first in what is left of stdout. */
	assert_int_equal(child_quit(&c), 0);
	assert_true(child_report_long(&c, "alpha_units") > 0);
}

/* Samples the "JIT" thread until it is in its anonymous code; returns it. */
static const struct perch_frame *jit_leaf(struct target *t)
{
	struct perch_sample s;

	for (int i = 0; i < 500; i++) {
		const struct perch_thread *th;

		assert_int_equal(target_sample(t, &s), 0);
		th = thread_named(&s, "perch-jit");
		assert_non_null(th);
		if (th->nframes > 0 && th->frames[0].addr == JIT_ADDR)
			return &th->frames[0];
		usleep(2000);
	}
	fail_msg("the target never ran its code at %#lx", JIT_ADDR);
	return NULL;
}

static void test_jit_perf_map(void **state)
{
	const char *args[] = { "--jit", NULL };
	const struct perch_frame *f;
	char map[64];
	struct target *t;
	struct child c;
	FILE *out;

	(void)state;
	assert_int_equal(spawn_path(&c, "/proc/self/exe", args), 0);
	t = open_target(c.pid);
	/* No perf map yet: code in no file has no name. */
	f = jit_leaf(t);
	assert_string_equal(f->func, "[unknown]");
	assert_null(f->module);
	assert_null(f->file);

	snprintf(map, sizeof map, "/tmp/perf-%d.map", (int)c.pid);
	add_temp(map);
	out = fopen(map, "wx");
	assert_non_null(out);
	fprintf(out, "%lx 40 perch_jit_spin\n", JIT_ADDR);
	assert_int_equal(fclose(out), 0);
	f = jit_leaf(t);
	assert_string_equal(f->func, "perch_jit_spin");
	assert_null(f->file);
	target_close(t);
	child_kill(&c);
}

/* Kills what a failed test left running, then removes its files. */
static int cleanup(void **state)
{
	(void)state;
	spawn_kill_all();
	while (ntemps > 0)
		remove(temps[--ntemps]);
	return 0;
}

/*
 * Target mode, in a new mount namespace: a tmpfs over dir holds a copy of
 * burner that no other namespace can see; exec it.
 */
static int mntns_main(const char *dir, const char *burner)
{
	char path[PATH_MAX];

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("perch-test", dir, "tmpfs", 0, "mode=0755") < 0) {
		perror("mntns");
		return 1;
	}
	snprintf(path, sizeof path, "%s/burner", dir);
	if (copy_file(burner, path) < 0) {
		perror("mntns: copy");
		return 1;
	}
	execv(path, (char *[]){ path, "--threads", "2", NULL });
	perror("mntns: execv");
	return 127;
}

/*
 * Target mode: code in anonymous memory at JIT_ADDR, as a JIT would
 * generate it, spinning forever (x86-64 "jmp .", like the engine itself
 * this test is x86-64 only).  Killed by the test.
 */
static int jit_main(void)
{
	static const unsigned char spin[] = { 0xeb, 0xfe };
	void (*fn)(void);
	void *p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "perch-jit");
	p = mmap((void *)JIT_ADDR, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != (void *)JIT_ADDR) {
		perror("jit: mmap");
		return 1;
	}
	memcpy(p, spin, sizeof spin);
	memcpy(&fn, &p, sizeof fn);
	printf("ready\n");
	fflush(stdout);
	fn();
	return 1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_dlopen, cleanup),
		cmocka_unit_test_teardown(test_deleted_binary, cleanup),
		cmocka_unit_test_teardown(test_replaced_binary, cleanup),
		cmocka_unit_test_teardown(test_mount_namespace, cleanup),
		cmocka_unit_test_teardown(test_exec_mid_session, cleanup),
		cmocka_unit_test_teardown(test_jit_perf_map, cleanup),
	};

	if (argc == 4 && strcmp(argv[1], "--mntns") == 0)
		return mntns_main(argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "--jit") == 0)
		return jit_main();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
