#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Targets started and not yet reaped, for spawn_kill_all. */
static pid_t live[64];

static void track(pid_t pid, bool add)
{
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
		if (add ? live[i] == 0 : live[i] == pid) {
			live[i] = add ? pid : 0;
			return;
		}
	}
}

void spawn_kill_all(void)
{
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
	}
}

unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Reads one line from the target's stdout, waiting at most timeout_ms. */
static int read_line(struct child *c, char *line, size_t size, int timeout_ms)
{
	unsigned long long deadline = mono_ns() + (unsigned long long)timeout_ms * 1000000ull;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->blen);
		struct pollfd pfd = { c->out_fd, POLLIN, 0 };
		long long left;
		ssize_t n;

		if (nl != NULL) {
			size_t len = (size_t)(nl - c->buf) + 1;

			snprintf(line, size, "%.*s", (int)len, c->buf);
			memmove(c->buf, nl + 1, c->blen - len);
			c->blen -= len;
			return 0;
		}
		left = (long long)(deadline - mono_ns()) / 1000000;
		if (c->blen == sizeof c->buf || left <= 0 ||
		    poll(&pfd, 1, (int)left) <= 0)
			return -1;
		n = read(c->out_fd, c->buf + c->blen, sizeof c->buf - c->blen);
		if (n <= 0)
			return -1;
		c->blen += (size_t)n;
	}
}

int spawn_path(struct child *c, const char *path, const char *const *args)
{
	const char *argv[32];
	int in[2], out[2];
	char line[256];
	int n = 0;

	memset(c, 0, sizeof *c);
	argv[n++] = path;
	for (; args != NULL && args[n - 1] != NULL && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -1;
	c->pid = fork();
	if (c->pid < 0)
		return -1;
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	track(c->pid, true);
	close(in[0]);
	close(out[1]);
	c->in_fd = in[1];
	c->out_fd = out[0];
	if (read_line(c, line, sizeof line, 10000) < 0 ||
	    strcmp(line, "ready\n") != 0) {
		child_kill(c);
		return -1;
	}
	return 0;
}

int spawn_target(struct child *c, const char *name, const char *const *args)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", PERCH_TARGETS_DIR, name);
	return spawn_path(c, path, args);
}

static void collect(struct child *c)
{
	size_t len = strlen(c->report);
	char line[256];

	while (len + 1 < sizeof c->report &&
	       read_line(c, line, sizeof line, 20000) == 0) {
		snprintf(c->report + len, sizeof c->report - len, "%s", line);
		len = strlen(c->report);
	}
}

static void reap(struct child *c)
{
	if (c->pid > 0 && !c->reaped && waitpid(c->pid, &c->status, 0) == c->pid) {
		c->reaped = true;
		track(c->pid, false);
	}
	if (c->out_fd > 0) {
		close(c->out_fd);
		c->out_fd = -1;
	}
	if (c->in_fd > 0) {
		close(c->in_fd);
		c->in_fd = -1;
	}
}

int child_quit(struct child *c)
{
	if (write(c->in_fd, "q\n", 2) != 2)
		return -1;
	close(c->in_fd);
	c->in_fd = -1;
	collect(c);
	reap(c);
	return c->reaped && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 ? 0 : -1;
}

int child_wait(struct child *c)
{
	collect(c);
	reap(c);
	return c->reaped ? 0 : -1;
}

void child_kill(struct child *c)
{
	if (c->pid > 0 && !c->reaped)
		kill(c->pid, SIGKILL);
	reap(c);
}

long child_report_long(const struct child *c, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = c->report; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return strtol(p + klen + 1, NULL, 10);
	return -1;
}

char proc_state(pid_t pid, pid_t tid)
{
	char path[96], buf[1024];
	const char *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

unsigned long long proc_utime(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut = 0;
	const char *p;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	/* Field 14, counted from the state (field 3) after the ')'. */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu",
				&ut) != 1)
		return 0;
	return ut;
}

int proc_tracer(pid_t pid)
{
	char path[64], buf[4096];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "TracerPid:");
	return p ? atoi(p + 10) : -1;
}

int proc_threads(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max)
		if (de->d_name[0] != '.')
			tids[n++] = (pid_t)atoi(de->d_name);
	closedir(d);
	return n;
}
