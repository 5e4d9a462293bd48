#include "access.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs.h"
#include "xalloc.h"

/* The Uid: or Gid: line of a status text: real, effective, saved, fs. */
static bool ids(const char *status, const char *key, unsigned long v[4])
{
	const char *p = strstr(status, key);

	return p != NULL && sscanf(p + strlen(key), " %lu %lu %lu %lu",
				   &v[0], &v[1], &v[2], &v[3]) == 4;
}

static const char *scope_path(void)
{
	const char *path = getenv("PERCH_PTRACE_SCOPE_FILE");

	return path != NULL && path[0] != '\0' ? path : ACCESS_SCOPE_PATH;
}

int access_ptrace_scope(void)
{
	char buf[32];
	ssize_t n = procfs_read_path(scope_path(), buf, sizeof buf);

	/* No file: a kernel without Yama, where the classic rule is all. */
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return (int)n;
	if (n != 2 || buf[0] < '0' || buf[0] > '3' || buf[1] != '\n')
		return -EINVAL;
	return buf[0] - '0';
}

/*
 * Whether pid is ancestor or one of its descendants, by the parent links of
 * /proc/PID/stat: the real parent, which Yama's task_is_descendant follows
 * too.  A "parent" that started after its child is a reused pid, not the
 * parent (which has exited): the chain ends there.
 */
static bool descends(pid_t pid, pid_t ancestor)
{
	uint64_t child_start = UINT64_MAX;

	for (int depth = 0; ancestor > 0 && pid > 0 && depth < 4096; depth++) {
		struct procfs_stat st;

		if (procfs_read_stat(pid, &st) < 0 || st.starttime > child_start)
			return false;
		if (pid == ancestor)
			return true;
		child_start = st.starttime;
		pid = st.ppid;
	}
	return false;
}

/* What Yama (scope 1 to 3) says before the classic rule; 0 or -EPERM. */
static int yama_check(int scope, pid_t pid, uid_t uid, char **cause)
{
	if (scope == 3) {
		*cause = xasprintf("ptrace is disabled on this host (kernel.yama.ptrace_scope "
				   "= 3): nobody, not even root, may trace process %d", (int)pid);
		return -EPERM;
	}
	if (uid == 0 || scope == 0 || scope == 1)
		return 0;
	if (scope == 2)
		*cause = xasprintf("not permitted: only root may trace processes on this host "
				   "(kernel.yama.ptrace_scope = 2)");
	else
		*cause = xasprintf("not permitted: cannot read %s (%s), so only root may trace",
				   scope_path(), strerror(-scope));
	return -EPERM;
}

int access_check(pid_t pid, uid_t uid, gid_t gid, pid_t client, char **cause)
{
	char path[64], buf[4096];
	unsigned long u[4], g[4];
	struct stat st;
	ssize_t n;
	int scope, rc;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n < 0 || !ids(buf, "\nUid:", u) || !ids(buf, "\nGid:", g)) {
		*cause = xasprintf("no such process: %d", (int)pid);
		return -ESRCH;
	}
	/* Read at every decision: root may change it at any time. */
	scope = access_ptrace_scope();
	if ((rc = yama_check(scope, pid, uid, cause)) < 0)
		return rc;
	if (uid == 0)
		return 0;
	if (u[0] != uid || u[1] != uid || u[2] != uid ||
	    g[0] != gid || g[1] != gid || g[2] != gid) {
		*cause = xasprintf("not permitted: process %d belongs to uid %lu and you are uid %u",
				   (int)pid, u[1], (unsigned int)uid);
		return -EPERM;
	}
	/*
	 * The kernel gives the files in a non-dumpable process's /proc
	 * directory to root.  Not the directory itself: /proc/PID keeps the
	 * effective uid whatever the dumpable flag says (task_dump_owner).
	 */
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (stat(path, &st) < 0 || st.st_uid != uid) {
		*cause = xasprintf("not permitted: process %d is not dumpable "
				   "(setuid, or it asked not to be traced)", (int)pid);
		return -EPERM;
	}
	if (scope == 1 && !descends(pid, client)) {
		*cause = client > 0 ?
			xasprintf("not permitted: process %d is not a descendant of the "
				  "requesting process %d, and kernel.yama.ptrace_scope = 1 "
				  "lets users trace only their descendants", (int)pid, (int)client) :
			xasprintf("not permitted: kernel.yama.ptrace_scope = 1 lets users "
				  "trace only their descendants, and a schedule has none");
		return -EPERM;
	}
	return 0;
}

int access_recheck(pid_t pid, uid_t uid, gid_t gid)
{
	char path[64];
	struct stat st;

	if (uid == 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (stat(path, &st) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return st.st_uid == uid && st.st_gid == gid ? 0 : -EPERM;
}

bool access_owns(uid_t client_uid, uid_t owner_uid)
{
	return client_uid == 0 || client_uid == owner_uid;
}

long access_process_uid(pid_t pid)
{
	char path[64], buf[4096];
	unsigned long u[4];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n < 0 || !ids(buf, "\nUid:", u))
		return -1;
	return (long)u[1];
}

static bool matches(pid_t pid, const char *kind, const char *target)
{
	char path[64], buf[8192];
	ssize_t n;

	if (strcmp(kind, "exe") == 0) {
		const char *base;

		snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
		n = readlink(path, buf, sizeof buf - 1);
		if (n > 0) {
			buf[n] = '\0';
			base = strrchr(buf, '/');
			if (strcmp(base ? base + 1 : buf, target) == 0)
				return true;
		}
		snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
		n = procfs_read_path(path, buf, sizeof buf);
		if (n > 0 && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		return n > 0 && strcmp(buf, target) == 0;
	}
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n <= 0)
		return false;
	/* Arguments are NUL-separated: search them as one line. */
	for (ssize_t i = 0; i < n - 1; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return strstr(buf, target) != NULL;
}

/* Start time (clock ticks after boot), or 0 for what must not match. */
static unsigned long long candidate(pid_t pid)
{
	struct procfs_stat st;

	if (procfs_read_stat(pid, &st) < 0 || (st.flags & PROCFS_PF_KTHREAD) || st.state == 'Z' || st.state == 'X')
		return 0;
	return st.starttime + 1;
}

struct found {
	pid_t pid;
	unsigned long long start;
};

static int by_start(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

int access_find(const char *kind, const char *target, pid_t **pids)
{
	struct found *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (strcmp(kind, "pid") == 0) {
		char *end;
		long pid = strtol(target, &end, 10);

		*pids = NULL;
		if (*end != '\0' || pid <= 0 || pid > INT_MAX || candidate((pid_t)pid) == 0)
			return 0;
		*pids = xmalloc(sizeof **pids);
		(*pids)[0] = (pid_t)pid;
		return 1;
	}
	d = opendir("/proc");
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		unsigned long long start;

		if (pid <= 0 || pid == getpid() || (start = candidate(pid)) == 0 ||
		    !matches(pid, kind, target))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[n].pid = pid;
		v[n++].start = start;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof *v, by_start);
	*pids = xcalloc(n ? n : 1, sizeof **pids);
	for (size_t i = 0; i < n; i++)
		(*pids)[i] = v[i].pid;
	free(v);
	return (int)n;
}
