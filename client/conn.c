#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"
#include "xalloc.h"

/* How long a full listen queue is waited on: 2 s. */
#define CONNECT_TRIES 200
#define CONNECT_RETRY_MS 10
/* Long enough for a daemon that is flushing a session to the disk. */
#define REPLY_TIMEOUT_MS 30000

extern char **environ;

struct conn {
	int fd;
	int64_t next_id;
	char *buf;
	size_t len, cap;
};

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	/*
	 * The connect does not block: whatever listens there may never accept
	 * (a daemon that hangs, or another user's socket), and once its queue
	 * is full a blocking connect waits for ever.  A full queue is tried
	 * again for a while (a daemon may be busy for a moment), then -EAGAIN.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (int tries = 0;; tries++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if (errno != EAGAIN || tries == CONNECT_TRIES) {
			int err = errno;

			close(fd);
			return -err;
		}
		usleep(CONNECT_RETRY_MS * 1000);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/*
 * Whoever listens on the socket reads every request and writes the replies
 * perch prints: a socket another user put at the path first (a shared
 * directory, a daemon that is not running) must not get them.  The peer's
 * credentials are the kernel's, taken when it called listen(2).  Only root's
 * daemon or one of the user's own is accepted: another user's perchd, even
 * one whose --group lets us in, runs without root and could not trace our
 * processes anyway.
 */
static int check_peer(int fd, const char *path, char **cause)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		int err = errno;

		*cause = xasprintf("cannot tell who listens on %s: %s", path, strerror(err));
		return -err;
	}
	if (cred.uid == 0 || cred.uid == geteuid())
		return 0;
	*cause = xasprintf("refusing the daemon at %s: it runs as uid %u, neither root nor "
			   "you (uid %u); someone else may have put a socket there",
			   path, (unsigned int)cred.uid, (unsigned int)geteuid());
	return -EPERM;
}

/*
 * $PERCH_DAEMON, else perchd next to this perch: the build tree
 * (client/perch, daemon/perchd) or an installation (bin/perch,
 * sbin/perchd), else perchd on the PATH.
 */
static char *find_daemon(void)
{
	static const char *const rel[] = { "perchd", "../daemon/perchd", "../sbin/perchd" };
	const char *env = getenv("PERCH_DAEMON");
	char exe[PATH_MAX];
	ssize_t n;

	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
		for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
			char *p = xasprintf("%s/%s", exe, rel[i]);

			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return xstrdup("perchd");
}

static int start_daemon(const char *socket_path, const char *db_path, char **cause)
{
	char *daemon = find_daemon();
	char *argv[] = { daemon, "--socket", (char *)socket_path, "--db",
			 (char *)db_path, NULL };
	int status, rc;
	pid_t pid;

	/* perchd detaches itself and exits once it listens, or with why not. */
	rc = posix_spawnp(&pid, daemon, NULL, NULL, argv, environ);
	if (rc != 0) {
		*cause = xasprintf("cannot start %s: %s", daemon, strerror(rc));
		free(daemon);
		return -rc;
	}
	free(daemon);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		*cause = xstrdup("the daemon failed to start (see its message above)");
		return -EIO;
	}
	return 0;
}

int conn_open(const char *socket_path, const char *db_path, bool autostart,
	      struct conn **out, char **cause)
{
	struct conn *c;
	int fd = connect_to(socket_path), rc;

	*cause = NULL;
	if (fd < 0 && autostart && (fd == -ENOENT || fd == -ECONNREFUSED)) {
		rc = start_daemon(socket_path, db_path, cause);
		if (rc < 0)
			return rc;
		fd = connect_to(socket_path);
	}
	if (fd < 0) {
		*cause = xasprintf("cannot reach the daemon at %s: %s%s", socket_path,
				   strerror(-fd), fd == -ENOENT || fd == -ECONNREFUSED ?
				   " (is perchd running?)" : fd == -EAGAIN ?
				   " (something listens there but accepts no connections)" : "");
		return fd;
	}
	rc = check_peer(fd, socket_path, cause);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->next_id = 1;
	*out = c;
	return 0;
}

json_object *conn_request(struct conn *c, const char *op)
{
	return proto_request_new(c->next_id++, op);
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until a whole line is buffered; returns its length. */
static ssize_t read_line(struct conn *c)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		ssize_t n;

		if (nl != NULL)
			return nl - c->buf;
		if (c->len > PROTO_MAX_LINE * 16)
			return -EPROTO;
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 65536;
			c->buf = xrealloc(c->buf, c->cap);
		}
		n = poll(&pfd, 1, REPLY_TIMEOUT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ETIMEDOUT;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		c->len += (size_t)n;
	}
}

int conn_call(struct conn *c, json_object *request, json_object **reply,
	      char **cause)
{
	char *line = proto_line(request);
	const char *code;
	ssize_t n;
	int rc;

	json_object_put(request);
	*reply = NULL;
	rc = send_all(c->fd, line, strlen(line));
	free(line);
	if (rc == 0 && (n = read_line(c)) >= 0) {
		rc = proto_parse_reply(c->buf, (size_t)n, reply, &code, cause);
		c->len -= (size_t)n + 1;
		memmove(c->buf, c->buf + n + 1, c->len);
		if (rc == -EREMOTE) {
			json_object_put(*reply);
			*reply = NULL;
		}
		return rc;
	}
	if (rc == 0)
		rc = (int)n;
	*cause = xasprintf("lost the daemon: %s", strerror(-rc));
	return rc;
}

void conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}
