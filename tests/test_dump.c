/*
 * `perch dump` as a user runs it: the real binary, its stdout, stderr and
 * exit status.  One burner, started before the first test, is dumped by all
 * of them; the last test checks that it never noticed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "spawn.h"

#define PERCH PERCH_BIN_DIR "/client/perch"
#define NOBODY 65534
/* Exit status of a child that could not run perch as nobody. */
#define EXIT_NOT_EXECUTABLE 77
#define PF_KTHREAD 0x00200000u

struct run {
	int status;
	char out[256 * 1024];
	size_t out_len;
	char err[16 * 1024];
	size_t err_len;
};

/* The shared target, and what a failed test may leave running. */
static struct child burner;
static pid_t running_cmd;
static pid_t debugger;
static struct run r;

/* Appends what fd has to buf; returns false at EOF. */
static bool drain(int fd, char *buf, size_t size, size_t *len)
{
	ssize_t n = read(fd, buf + *len, size - 1 - *len);

	if (n <= 0)
		return false;
	*len += (size_t)n;
	buf[*len] = '\0';
	assert_true(*len < size - 1);
	return true;
}

/*
 * Runs argv (argv[0] a path) with stdout and stderr captured and waits for
 * it.  as_nobody drops to uid and gid 65534 in the child first.
 */
static void run_argv(struct run *res, const char *const *argv, bool as_nobody)
{
	int out[2], err[2];
	bool out_open = true, err_open = true;

	memset(res, 0, sizeof *res);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	running_cmd = fork();
	assert_true(running_cmd >= 0);
	if (running_cmd == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (as_nobody && (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
				  setuid(NOBODY) < 0))
			_exit(126);
		if (as_nobody && access(argv[0], X_OK) < 0)
			_exit(EXIT_NOT_EXECUTABLE);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	while (out_open || err_open) {
		struct pollfd pfd[2] = {
			{ out_open ? out[0] : -1, POLLIN, 0 },
			{ err_open ? err[0] : -1, POLLIN, 0 },
		};

		/* A dump takes well under a second; 30 s means it hangs. */
		assert_true(poll(pfd, 2, 30000) > 0);
		if (pfd[0].revents)
			out_open = drain(out[0], res->out, sizeof res->out, &res->out_len);
		if (pfd[1].revents)
			err_open = drain(err[0], res->err, sizeof res->err, &res->err_len);
	}
	close(out[0]);
	close(err[0]);
	assert_int_equal(waitpid(running_cmd, &res->status, 0), running_cmd);
	running_cmd = 0;
	assert_true(WIFEXITED(res->status));
}

/* Runs perch with the NULL-terminated arguments after "perch". */
static void run_perch(struct run *res, bool as_nobody, ...)
{
	const char *argv[16] = { PERCH };
	size_t n = 1;
	va_list ap;

	va_start(ap, as_nobody);
	while ((argv[n] = va_arg(ap, const char *)) != NULL && n < 15)
		n++;
	va_end(ap);
	run_argv(res, argv, as_nobody);
}

static int exit_code(const struct run *res)
{
	return WEXITSTATUS(res->status);
}

/* Whether the decimal number n appears in s, not as part of a longer one. */
static bool mentions_number(const char *s, long n)
{
	char num[32];
	size_t len = (size_t)snprintf(num, sizeof num, "%ld", n);

	for (const char *p = strstr(s, num); p != NULL; p = strstr(p + 1, num))
		if ((p == s || !isdigit((unsigned char)p[-1])) &&
		    !isdigit((unsigned char)p[len]))
			return true;
	return false;
}

/* A refusal: non-zero status, nothing on stdout, one "perch: " line on stderr. */
static void assert_one_error(const struct run *res)
{
	if (exit_code(res) == 0 || res->out_len != 0 ||
	    strncmp(res->err, "perch: ", 7) != 0 || res->err_len == 0 ||
	    strchr(res->err, '\n') != res->err + res->err_len - 1)
		fail_msg("expected one error line, got status %d, stdout '%s', stderr '%s'",
			 exit_code(res), res->out, res->err);
}

static void refused(const char *pid_arg)
{
	run_perch(&r, false, "dump", "-p", pid_arg, NULL);
	assert_one_error(&r);
}

/* The thread's name as the kernel has it. */
static void thread_comm(pid_t pid, pid_t tid, char *name, size_t size)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(name, (int)size, f));
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
}

static bool is_state_word(const char *w)
{
	static const char *const words[] = {
		"running", "sleeping", "disk-wait", "stopped", "traced",
		"zombie", "dead", "idle", "parked",
	};

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcmp(w, words[i]) == 0)
			return true;
	return false;
}

static void test_text(void **state)
{
	char pid_arg[24], name[64];
	pid_t tids[8];
	int n, headers = 0;
	bool burn_line = false;

	(void)state;
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)burner.pid);
	run_perch(&r, false, "dump", "-p", pid_arg, NULL);
	assert_int_equal(exit_code(&r), 0);
	n = proc_threads(burner.pid, tids, 8);
	assert_int_equal(n, 3);
	for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
		char *end, *q;
		long tid;

		if ((strstr(line, "burn_alpha") || strstr(line, "burn_beta")) &&
		    strstr(line, "burner.c:"))
			burn_line = true;
		if (strncmp(line, "Thread ", 7) != 0)
			continue;
		/* Thread TID "NAME" STATE[ (how it was read)] */
		headers++;
		tid = strtol(line + 7, &end, 10);
		assert_true(strncmp(end, " \"", 2) == 0);
		q = strchr(end + 2, '"');
		assert_non_null(q);
		*q = '\0';
		thread_comm(burner.pid, (pid_t)tid, name, sizeof name);
		assert_string_equal(end + 2, name);
		assert_true(q[1] == ' ');
		q[2 + strcspn(q + 2, " ")] = '\0';
		if (!is_state_word(q + 2))
			fail_msg("thread %ld: state '%s'", tid, q + 2);
		for (int i = 0; i < n; i++)
			if (tids[i] == (pid_t)tid)
				tids[i] = 0;
	}
	assert_int_equal(headers, 3);
	for (int i = 0; i < n; i++)
		if (tids[i] != 0)
			fail_msg("thread %d missing from the dump", (int)tids[i]);
	assert_true(burn_line);
}

static json_object *field(json_object *o, const char *key, json_type type,
			  bool nullable)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	if (json_object_get_type(v) != type &&
	    !(nullable && json_object_get_type(v) == json_type_null))
		fail_msg("\"%s\" has type %s in %s", key,
			 json_type_to_name(json_object_get_type(v)),
			 json_object_to_json_string(o));
	return v;
}

static void check_json_frame(json_object *f)
{
	const char *addr;
	char *end;

	field(f, "func", json_type_string, false);
	field(f, "file", json_type_string, true);
	field(f, "line", json_type_int, true);
	field(f, "module", json_type_string, true);
	field(f, "inlined", json_type_boolean, false);
	addr = json_object_get_string(field(f, "addr", json_type_string, false));
	assert_true(strncmp(addr, "0x", 2) == 0);
	assert_true(strtoull(addr + 2, &end, 16) > 0 && *end == '\0');
}

static const char *frame_func(json_object *frames, size_t i)
{
	return json_object_get_string(json_object_object_get(
		json_object_array_get_idx(frames, i), "func"));
}

/* Worker frames, leaf first: burn_x, work_loop, worker_main, ..., clone3. */
static void check_worker_frames(json_object *frames)
{
	size_t n = json_object_array_length(frames);
	const char *leaf = n ? frame_func(frames, 0) : "";
	size_t w;

	for (w = 0; w < n && strcmp(frame_func(frames, w), "work_loop") != 0; w++)
		;
	assert_true(w + 1 < n);
	assert_string_equal(frame_func(frames, w + 1), "worker_main");
	if (strcmp(leaf, "burn_alpha") != 0 && strcmp(leaf, "burn_beta") != 0 &&
	    w != 0)
		fail_msg("leaf frame %s", leaf);
	assert_true(strstr(frame_func(frames, n - 1), "clone") != NULL);
}

static void test_json(void **state)
{
	char pid_arg[24], name[64];
	json_object *arr;
	int workers = 0;

	(void)state;
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)burner.pid);
	run_perch(&r, false, "dump", "-p", pid_arg, "--json", NULL);
	assert_int_equal(exit_code(&r), 0);
	assert_int_equal(r.err_len, 0);
	arr = json_tokener_parse(r.out);
	assert_non_null(arr);
	assert_true(json_object_is_type(arr, json_type_array));
	assert_int_equal(json_object_array_length(arr), 3);
	for (size_t i = 0; i < 3; i++) {
		json_object *th = json_object_array_get_idx(arr, i), *frames;
		int tid = json_object_get_int(field(th, "tid", json_type_int, false));
		const char *tname = json_object_get_string(
			field(th, "name", json_type_string, false));

		assert_true(is_state_word(json_object_get_string(
			field(th, "state", json_type_string, false))));
		thread_comm(burner.pid, tid, name, sizeof name);
		assert_string_equal(tname, name);
		frames = field(th, "frames", json_type_array, false);
		assert_true(json_object_array_length(frames) > 0);
		for (size_t k = 0; k < json_object_array_length(frames); k++)
			check_json_frame(json_object_array_get_idx(frames, k));
		if (strncmp(tname, "burner-", 7) == 0) {
			check_worker_frames(frames);
			workers++;
		}
	}
	json_object_put(arr);
	assert_int_equal(workers, 2);
}

static void test_no_such_pid(void **state)
{
	char pid_arg[24];
	long pid_max = 0;
	pid_t gone;
	FILE *f;

	(void)state;
	f = fopen("/proc/sys/kernel/pid_max", "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &pid_max), 1);
	fclose(f);
	snprintf(pid_arg, sizeof pid_arg, "%ld", pid_max + 1);
	refused(pid_arg);
	assert_true(mentions_number(r.err, pid_max + 1));

	/* A child that has been reaped: its pid is free (and not yet reused). */
	gone = fork();
	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)gone);
	refused(pid_arg);
	assert_true(mentions_number(r.err, gone));
}

static void test_malformed_pid(void **state)
{
	(void)state;
	refused("abc");
	refused("0");
	refused("-5");
	refused("12x");
}

/* A kernel thread, found from the flags in /proc/PID/stat, or 0. */
static pid_t find_kthread(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	assert_non_null(d);
	while (found == 0 && (de = readdir(d)) != NULL) {
		char path[300], buf[1024];
		unsigned int flags;
		const char *p;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		/* Field 9, the flags, is the 7th after the ')'. */
		if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %u", &flags) == 1 &&
		    (flags & PF_KTHREAD))
			found = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return found;
}

static void test_kernel_thread(void **state)
{
	pid_t k = find_kthread();
	char pid_arg[24];

	(void)state;
	if (k == 0) {
		print_message("no kernel thread visible in /proc\n");
		skip();
	}
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)k);
	refused(pid_arg);
	assert_true(mentions_number(r.err, k));
}

static void test_perch_itself(void **state)
{
	const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" dump -p $$", PERCH, NULL };

	(void)state;
	run_argv(&r, argv, false);
	assert_one_error(&r);
}

static void test_thread_not_process(void **state)
{
	char pid_arg[24];
	pid_t tids[8], worker = 0;
	int n = proc_threads(burner.pid, tids, 8);

	(void)state;
	for (int i = 0; i < n; i++)
		if (tids[i] != burner.pid)
			worker = tids[i];
	assert_true(worker > 0);
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)worker);
	refused(pid_arg);
	/* Points at the process to give instead. */
	assert_true(mentions_number(r.err, burner.pid));
}

/* The debugger leaves the tracee as it found it: interrupt, wait, detach. */
static void detach_from(pid_t pid)
{
	int status;

	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0)
		_exit(1);
	for (;;) {
		if (waitpid(pid, &status, __WALL) != pid || !WIFSTOPPED(status))
			_exit(1);
		if (status >> 16 == PTRACE_EVENT_STOP)
			_exit(ptrace(PTRACE_DETACH, pid, 0, 0) < 0);
		/* A real signal: hand it on and wait for our interrupt. */
		ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status));
	}
}

/*
 * Forks a "debugger" that seizes pid and holds it until *release is closed.
 * Its pid is in the static debugger, for the teardown.
 */
static void start_debugger(pid_t pid, int *release)
{
	int ready[2], rel[2];
	char ok = 0;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rel, O_CLOEXEC), 0);
	debugger = fork();
	assert_true(debugger >= 0);
	if (debugger == 0) {
		char c;

		close(ready[0]);
		close(rel[1]);
		ok = ptrace(PTRACE_SEIZE, pid, 0, 0) == 0;
		if (write(ready[1], &ok, 1) != 1 || !ok)
			_exit(1);
		while (read(rel[0], &c, 1) > 0)
			;
		detach_from(pid);
	}
	close(ready[1]);
	close(rel[0]);
	assert_int_equal(read(ready[0], &ok, 1), 1);
	close(ready[0]);
	assert_true(ok);
	*release = rel[1];
}

static void test_already_traced(void **state)
{
	char pid_arg[24];
	int release, status;

	(void)state;
	start_debugger(burner.pid, &release);
	assert_int_equal(proc_tracer(burner.pid), debugger);
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)burner.pid);
	refused(pid_arg);
	if (!mentions_number(r.err, debugger))
		fail_msg("tracer %d not named in '%s'", (int)debugger, r.err);
	close(release);
	assert_int_equal(waitpid(debugger, &status, 0), debugger);
	debugger = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(proc_tracer(burner.pid), 0);
}

static void test_not_permitted(void **state)
{
	char pid_arg[24];

	(void)state;
	snprintf(pid_arg, sizeof pid_arg, "%d", (int)burner.pid);
	run_perch(&r, true, "dump", "-p", pid_arg, NULL);
	if (exit_code(&r) == EXIT_NOT_EXECUTABLE && r.err_len == 0) {
		print_message("%s is not executable by uid %d\n", PERCH, NOBODY);
		skip();
	}
	assert_one_error(&r);
	assert_non_null(strstr(r.err, "not permitted"));
}

static void test_usage(void **state)
{
	(void)state;
	run_perch(&r, false, "dump", NULL);
	assert_int_equal(exit_code(&r), 2);
	assert_int_equal(r.out_len, 0);
	assert_non_null(strstr(r.err, "usage: perch dump"));

	run_perch(&r, false, "dump", "-p", "1", "extra", NULL);
	assert_int_equal(exit_code(&r), 2);
	assert_int_equal(r.out_len, 0);
	assert_non_null(strstr(r.err, "usage: perch dump"));

	run_perch(&r, false, "--help", NULL);
	assert_int_equal(exit_code(&r), 0);
	assert_int_equal(r.err_len, 0);
	assert_true(strncmp(r.out, "usage: perch ", 13) == 0);
	assert_non_null(strstr(r.out, "dump"));

	run_perch(&r, false, "dump", "--help", NULL);
	assert_int_equal(exit_code(&r), 0);
	assert_int_equal(r.err_len, 0);
	assert_true(strncmp(r.out, "usage: perch dump ", 18) == 0);
	assert_non_null(strstr(r.out, "--json"));

	run_perch(&r, false, "nosuchcmd", NULL);
	assert_int_equal(exit_code(&r), 2);
	assert_one_error(&r);
}

/* Runs last: after every dump above, the target must not have noticed. */
static void test_target_unaffected(void **state)
{
	pid_t tids[8];
	int n = proc_threads(burner.pid, tids, 8);

	(void)state;
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		char path[96], buf[4096];
		const char *p;
		ssize_t len;
		int fd;

		assert_non_null(strchr("RS", proc_state(burner.pid, tids[i])));
		snprintf(path, sizeof path, "/proc/%d/task/%d/status",
			 (int)burner.pid, (int)tids[i]);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		len = read(fd, buf, sizeof buf - 1);
		close(fd);
		assert_true(len > 0);
		buf[len] = '\0';
		p = strstr(buf, "TracerPid:");
		assert_non_null(p);
		assert_int_equal(atoi(p + 10), 0);
	}
	assert_int_equal(child_quit(&burner), 0);
	assert_true(child_report_long(&burner, "alpha_units") > 0);
	assert_true(child_report_long(&burner, "beta_units") > 0);
}

static int start_burner(void **state)
{
	const char *args[] = { "--threads", "2", NULL };

	(void)state;
	return spawn_target(&burner, "burner", args);
}

/* What a test that failed half-way may have left running. */
static int kill_leftovers(void **state)
{
	(void)state;
	if (running_cmd > 0) {
		kill(running_cmd, SIGKILL);
		waitpid(running_cmd, NULL, 0);
		running_cmd = 0;
	}
	if (debugger > 0) {
		/* The kernel detaches the tracees of a tracer that dies. */
		kill(debugger, SIGKILL);
		waitpid(debugger, NULL, 0);
		debugger = 0;
	}
	return 0;
}

static int kill_burner(void **state)
{
	(void)state;
	spawn_kill_all();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_text, kill_leftovers),
		cmocka_unit_test_teardown(test_json, kill_leftovers),
		cmocka_unit_test_teardown(test_no_such_pid, kill_leftovers),
		cmocka_unit_test_teardown(test_malformed_pid, kill_leftovers),
		cmocka_unit_test_teardown(test_kernel_thread, kill_leftovers),
		cmocka_unit_test_teardown(test_perch_itself, kill_leftovers),
		cmocka_unit_test_teardown(test_thread_not_process, kill_leftovers),
		cmocka_unit_test_teardown(test_already_traced, kill_leftovers),
		cmocka_unit_test_teardown(test_not_permitted, kill_leftovers),
		cmocka_unit_test_teardown(test_usage, kill_leftovers),
		cmocka_unit_test_teardown(test_target_unaffected, kill_leftovers),
	};

	return cmocka_run_group_tests(tests, start_burner, kill_burner);
}
