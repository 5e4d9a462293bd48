/*
 * switchwatch: a watch on a blocked thread stays still until the thread is
 * woken, then says so once.  Runs on threads of the test itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "switchwatch.h"

struct reader {
	int fd;
	atomic_int tid;
	atomic_int reads;
};

/* Blocks in read(2) on a pipe; counts the bytes it gets. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char c;

	atomic_store(&r->tid, (int)syscall(SYS_gettid));
	while (read(r->fd, &c, 1) == 1)
		atomic_fetch_add(&r->reads, 1);
	return NULL;
}

/* The thread's state letter from /proc, or '?'. */
static char thread_state(int tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

/* Waits (at most 2 s) until the reader has read `reads` bytes and sleeps. */
static void wait_blocked(struct reader *r, int reads)
{
	for (int i = 0; i < 2000; i++) {
		if (atomic_load(&r->tid) != 0 && atomic_load(&r->reads) >= reads &&
		    thread_state(atomic_load(&r->tid)) == 'S')
			return;
		usleep(1000);
	}
	fail_msg("reader never blocked");
}

static void test_blocked_thread(void **state)
{
	struct switchwatch *w;
	struct reader r = { 0 };
	pthread_t th;
	int fds[2], rc;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	r.fd = fds[0];
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	wait_blocked(&r, 0);
	rc = switchwatch_open(atomic_load(&r.tid), &w);
	if (switchwatch_unsupported(rc)) {
		print_message("perf events not allowed here: %s\n", strerror(-rc));
		close(fds[1]);
		pthread_join(th, NULL);
		close(fds[0]);
		skip();
	}
	assert_int_equal(rc, 0);
	/* Blocked all along: no switch in or out. */
	usleep(50000);
	assert_false(switchwatch_moved(w));
	assert_false(switchwatch_moved(w));
	/* Woken: it runs, reads, and blocks again. */
	assert_int_equal(write(fds[1], "x", 1), 1);
	wait_blocked(&r, 1);
	assert_true(switchwatch_moved(w));
	/* Said once: blocked again since. */
	usleep(20000);
	assert_false(switchwatch_moved(w));
	/* Many wake-ups between two looks, more than the ring holds. */
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(write(fds[1], "y", 1), 1);
		if (i % 100 == 0)
			usleep(1000);
	}
	wait_blocked(&r, 2001);
	assert_true(switchwatch_moved(w));
	usleep(20000);
	assert_false(switchwatch_moved(w));
	switchwatch_close(w);
	close(fds[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(fds[0]);
}

static void test_gone_thread(void **state)
{
	struct switchwatch *w = NULL;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(switchwatch_open(pid, &w), -ESRCH);
	assert_null(w);
	switchwatch_close(NULL);
}

static void test_errors(void **state)
{
	(void)state;
	/* Nothing can work: the engine stops trying. */
	assert_true(switchwatch_unsupported(-EACCES));
	assert_true(switchwatch_unsupported(-ENOSYS));
	/* This thread only, or for now: the engine tries the others. */
	assert_false(switchwatch_unsupported(-EMFILE));
	assert_false(switchwatch_unsupported(-ENOMEM));
	assert_false(switchwatch_unsupported(-ESRCH));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocked_thread),
		cmocka_unit_test(test_gone_thread),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
