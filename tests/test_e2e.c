/*
 * End to end, as a user meets perch: the README's demo (scripts/demo.sh:
 * `perch record` on the bundled burner, starting a daemon on its own), then
 * `perch flat last --json` must name the burner's known hot function first
 * with its known share.  The burner's two workers spend 75 % of their CPU
 * in burn_alpha and 25 % in burn_beta; its main thread waits in read(2).
 * So on-CPU time is 75 % burn_alpha, and wall-clock time (three threads)
 * 50 %.  Both within 5 points.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PERCH	PERCH_BIN_DIR "/client/perch"
#define DEMO	PERCH_SOURCE_DIR "/scripts/demo.sh"

static char dir[64] = "/tmp/perch-test-e2e-XXXXXX";
static char sock[96], db[128];

/* Runs argv with stdout to a file; returns its exit status and output. */
static int run(const char *const *argv, char **out, int timeout_s)
{
	char path[192];
	int status = -1;
	pid_t pid;
	FILE *f;

	snprintf(path, sizeof path, "%s/out", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(126);
		alarm((unsigned)timeout_s);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	f = fopen(path, "r");
	assert_non_null(f);
	*out = calloc(1, 1 << 20);
	assert_non_null(*out);
	(void)fread(*out, 1, (1 << 20) - 1, f);
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Connects to the daemon's socket; -1 when nothing listens. */
static int connect_daemon(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock, sizeof sock, "%s/perch.sock", dir);
	snprintf(db, sizeof db, "%s/perch.db", dir);
	setenv("PERCH_SOCKET", sock, 1);
	setenv("PERCH_DB", db, 1);
	setenv("NO_COLOR", "1", 1);
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Shuts down the daemon the demo started, and waits until it is gone. */
static int teardown(void **state)
{
	static const char req[] = "{\"v\":1,\"id\":1,\"op\":\"shutdown\"}\n";
	int fd = connect_daemon();

	(void)state;
	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[512];

		if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
		    poll(&p, 1, 10000) == 1)
			(void)read(fd, buf, sizeof buf);
		close(fd);
		/* The daemon closes its socket last: wait for that. */
		for (int i = 0; i < 200 && (fd = connect_daemon()) >= 0; i++) {
			close(fd);
			usleep(50000);
		}
	}
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* The first row of `perch flat last --json [--cpu]`: function and percent. */
static void top_row(bool cpu, char *func, size_t size, double *percent)
{
	const char *argv[] = { PERCH, "flat", "last", "--json", cpu ? "--cpu" : NULL, NULL };
	json_object *arr, *row, *v;
	char *out;

	assert_int_equal(run(argv, &out, 30), 0);
	arr = json_tokener_parse(out);
	if (arr == NULL || !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) == 0)
		fail_msg("perch flat --json printed: %s", out);
	row = json_object_array_get_idx(arr, 0);
	assert_true(json_object_object_get_ex(row, "func", &v));
	snprintf(func, size, "%s", json_object_get_string(v));
	assert_true(json_object_object_get_ex(row, "percent", &v));
	*percent = json_object_get_double(v);
	json_object_put(arr);
	free(out);
}

static void test_demo(void **state)
{
	const char *demo[] = { "/bin/sh", DEMO, PERCH_BIN_DIR, NULL };
	char func[256], *out;
	double percent;
	int rc;

	(void)state;
	rc = run(demo, &out, 60);
	if (rc != 0)
		fail_msg("demo.sh exit %d:\n%s", rc, out);
	/* The record ended with the call tree, then flat and dump ran. */
	assert_non_null(strstr(out, "== perch record"));
	assert_non_null(strstr(out, "complete"));
	assert_non_null(strstr(out, "burn_alpha"));
	assert_non_null(strstr(out, "== perch dump"));
	free(out);

	top_row(true, func, sizeof func, &percent);
	print_message("on-CPU: %s %.1f %% (truth 75 %%)\n", func, percent);
	assert_string_equal(func, "burn_alpha");
	assert_true(fabs(percent - 75) <= 5);
	top_row(false, func, sizeof func, &percent);
	print_message("wall-clock: %s %.1f %% (truth 50 %%)\n", func, percent);
	assert_string_equal(func, "burn_alpha");
	assert_true(fabs(percent - 50) <= 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
