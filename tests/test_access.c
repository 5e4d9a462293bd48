/*
 * access: Yama's ptrace_scope on top of the classic rule, decided as the
 * kernel would decide for the client (not for perchd, which is root).  The
 * scope is read from a file of the test's (PERCH_PTRACE_SCOPE_FILE), never
 * the real sysctl.  The processes checked are the test's own: a client A
 * with a child B and a grandchild C, and S, a sibling of A; as root the
 * test makes them nobody's, otherwise they are the test user's.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "access.h"

#define NOBODY 65534

struct tree {
	char dir[64], scope[96];
	uid_t uid;
	gid_t gid;
	pid_t a, b, c, s;
	int life[2];	/* the processes wait on life[0]; EOF ends them */
};

/* In a forked child: stays until the test closes life[1] (or exits). */
static void wait_for_end(const struct tree *t)
{
	char c;

	while (read(t->life[0], &c, 1) < 0)
		;
	_exit(0);
}

/* In a forked child: become the tree's user, still dumpable. */
static void become(const struct tree *t)
{
	close(t->life[1]);
	if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(t->gid, t->gid, t->gid) < 0 ||
			       setresuid(t->uid, t->uid, t->uid) < 0))
		_exit(126);
	/* Changing credentials made it non-dumpable. */
	if (prctl(PR_SET_DUMPABLE, 1) < 0)
		_exit(125);
}

/* Reports the calling process's pid on fd. */
static void report_self(int fd)
{
	pid_t self = getpid();

	if (write(fd, &self, sizeof self) != sizeof self)
		_exit(1);
}

/* A, which forks B, which forks C; their pids come back in order. */
static void make_tree(struct tree *t)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		become(t);
		report_self(fds[1]);
		if (fork() == 0) {
			/* B, then C. */
			report_self(fds[1]);
			if (fork() == 0)
				report_self(fds[1]);
		}
		wait_for_end(t);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &t->a, sizeof t->a), sizeof t->a);
	assert_int_equal(read(fds[0], &t->b, sizeof t->b), sizeof t->b);
	assert_int_equal(read(fds[0], &t->c, sizeof t->c), sizeof t->c);
	close(fds[0]);
	assert_int_equal(pid, t->a);

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		become(t);
		report_self(fds[1]);
		wait_for_end(t);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &t->s, sizeof t->s), sizeof t->s);
	close(fds[0]);
}

static void set_scope(const struct tree *t, const char *text)
{
	FILE *f = fopen(t->scope, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* access_check for the tree's user asking from client; *cause checked. */
static int check(const struct tree *t, pid_t pid, uid_t uid, pid_t client, const char *want)
{
	char *cause = NULL;
	int rc = access_check(pid, uid, uid == 0 ? 0 : t->gid, client, &cause);

	if (rc == 0 && cause != NULL)
		fail_msg("allowed, with a cause: %s", cause);
	if (rc < 0 && want == NULL)
		fail_msg("refused: %s", cause ? cause : "(no cause)");
	if (rc < 0 && (cause == NULL || strstr(cause, want) == NULL))
		fail_msg("refused without saying '%s': %s", want, cause ? cause : "(none)");
	if (rc < 0)
		print_message("  %s\n", cause);
	free(cause);
	return rc;
}

static int setup(void **state)
{
	struct tree *t = calloc(1, sizeof *t);

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof t->dir, "/tmp/perch-test-access-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->scope, sizeof t->scope, "%s/ptrace_scope", t->dir);
	if (pipe2(t->life, O_CLOEXEC) < 0)
		return -1;
	setenv("PERCH_PTRACE_SCOPE_FILE", t->scope, 1);
	t->uid = geteuid() == 0 ? NOBODY : geteuid();
	t->gid = geteuid() == 0 ? NOBODY : getegid();
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tree *t = *state;
	const pid_t all[] = { t->c, t->b, t->a, t->s };

	close(t->life[1]);
	close(t->life[0]);
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i] > 0)
			kill(all[i], SIGKILL);
	/* A subreaper, the test gets B and C too when their parents die. */
	while (waitpid(-1, NULL, 0) > 0)
		;
	unlink(t->scope);
	rmdir(t->dir);
	unsetenv("PERCH_PTRACE_SCOPE_FILE");
	free(t);
	return 0;
}

static void test_scope_file(void **state)
{
	struct tree *t = *state;

	/* No file: no Yama in the kernel. */
	assert_int_equal(access_ptrace_scope(), 0);
	for (int v = 0; v <= 3; v++) {
		char text[4] = { (char)('0' + v), '\n', '\0' };

		set_scope(t, text);
		assert_int_equal(access_ptrace_scope(), v);
	}
	set_scope(t, "4\n");
	assert_int_equal(access_ptrace_scope(), -EINVAL);
	set_scope(t, "1");
	assert_int_equal(access_ptrace_scope(), -EINVAL);
	set_scope(t, "");
	assert_int_equal(access_ptrace_scope(), -EINVAL);
	set_scope(t, "01\n");
	assert_int_equal(access_ptrace_scope(), -EINVAL);
}

static void test_scope_0(void **state)
{
	struct tree *t = *state;

	make_tree(t);
	set_scope(t, "0\n");
	/* The classic rule only: any dumpable process of the user's. */
	assert_int_equal(check(t, t->c, t->uid, t->a, NULL), 0);
	assert_int_equal(check(t, t->s, t->uid, t->a, NULL), 0);
	assert_int_equal(check(t, t->c, t->uid, 0, NULL), 0);
	/* Which still refuses another user's process. */
	assert_int_equal(check(t, getpid(), t->uid == 1 ? 2 : 1, t->a, "not permitted"), -EPERM);
	/* And no file at all is the same. */
	unlink(t->scope);
	assert_int_equal(check(t, t->s, t->uid, t->a, NULL), 0);
}

static void test_scope_1(void **state)
{
	struct tree *t = *state;

	make_tree(t);
	set_scope(t, "1\n");
	/* Descendants of the client, at any depth, and itself (as Yama). */
	assert_int_equal(check(t, t->b, t->uid, t->a, NULL), 0);
	assert_int_equal(check(t, t->c, t->uid, t->a, NULL), 0);
	assert_int_equal(check(t, t->c, t->uid, t->b, NULL), 0);
	assert_int_equal(check(t, t->a, t->uid, t->a, NULL), 0);
	/* Not a sibling, not an ancestor, not for a schedule (no process). */
	assert_int_equal(check(t, t->s, t->uid, t->a, "not a descendant"), -EPERM);
	assert_int_equal(check(t, t->c, t->uid, t->s, "not a descendant"), -EPERM);
	assert_int_equal(check(t, t->a, t->uid, t->c, "not a descendant"), -EPERM);
	assert_int_equal(check(t, t->c, t->uid, 0, "a schedule has none"), -EPERM);
	/* Root may (CAP_SYS_PTRACE). */
	assert_int_equal(check(t, t->s, 0, t->a, NULL), 0);
	assert_int_equal(check(t, t->s, 0, 0, NULL), 0);

	/* Read at each decision: lowered, the sibling is allowed again. */
	set_scope(t, "0\n");
	assert_int_equal(check(t, t->s, t->uid, t->a, NULL), 0);
	set_scope(t, "1\n");
	assert_int_equal(check(t, t->s, t->uid, t->a, "not a descendant"), -EPERM);

	/* B gone, C is reparented away from A: no longer A's descendant. */
	assert_int_equal(kill(t->b, SIGKILL), 0);
	for (int i = 0; i < 500 && check(t, t->c, t->uid, t->a, "descendant") == 0; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	assert_int_equal(check(t, t->c, t->uid, t->a, "not a descendant"), -EPERM);
}

static void test_scope_2_3(void **state)
{
	struct tree *t = *state;

	make_tree(t);
	set_scope(t, "2\n");
	assert_int_equal(check(t, t->c, t->uid, t->a, "only root"), -EPERM);
	assert_int_equal(check(t, t->c, 0, t->a, NULL), 0);
	set_scope(t, "3\n");
	assert_int_equal(check(t, t->c, t->uid, t->a, "ptrace is disabled"), -EPERM);
	assert_int_equal(check(t, t->c, 0, t->a, "ptrace is disabled"), -EPERM);
	assert_int_equal(check(t, t->c, 0, 0, "ptrace is disabled"), -EPERM);
	/* A process that does not exist is still named as such. */
	assert_int_equal(check(t, 0x3fffffff, 0, 0, "no such process"), -ESRCH);
}

/* A file that says nothing sensible: only root, who the kernel decides for. */
static void test_scope_unreadable(void **state)
{
	struct tree *t = *state;

	make_tree(t);
	set_scope(t, "9\n");
	assert_int_equal(check(t, t->c, t->uid, t->a, "cannot read"), -EPERM);
	assert_int_equal(check(t, t->c, 0, t->a, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scope_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_2_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_unreadable, setup, teardown),
	};

	/* Orphans come to the test, which reaps them, not to init. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
