#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "protocol.h"
#include "xalloc.h"

/* A client that says nothing for this long is disconnected. */
#define IDLE_MS 60000

struct conn {
	uv_pipe_t pipe;			/* first: handles are cast back */
	uv_timer_t idle;
	int open_handles;
	struct server *server;
	struct conn *next, **pprev;
	struct peer peer;
	char *buf;
	size_t len, cap;
	bool closing;
};

struct server {
	uv_pipe_t listener;
	char *path;
	server_handler handler;
	void *arg;
	struct conn *conns;
	unsigned int nconns;
	bool bound;			/* the socket file is ours to remove */
	bool closing;
};

struct write_req {
	uv_write_t req;
	char *line;
};

static void free_server_if_done(struct server *s)
{
	if (s->closing && s->conns == NULL && s->listener.data == NULL) {
		free(s->path);
		free(s);
	}
}

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct server *s = c->server;

	if (--c->open_handles > 0)
		return;
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	s->nconns--;
	free(c->buf);
	free(c);
	free_server_if_done(s);
}

static void close_conn(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
	uv_close((uv_handle_t *)&c->idle, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
	close_conn(t->data);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;

	(void)status;
	free(w->line);
	free(w);
}

static void send_line(struct conn *c, char *line)
{
	struct write_req *w = xmalloc(sizeof *w);
	uv_buf_t buf = uv_buf_init(line, (unsigned int)strlen(line));

	w->line = line;
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
		free(line);
		free(w);
		close_conn(c);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = (struct conn *)h;

	(void)suggested;
	if (c->cap - c->len < 4096) {
		c->cap = c->cap ? c->cap * 2 : 8192;
		c->buf = xrealloc(c->buf, c->cap);
	}
	*buf = uv_buf_init(c->buf + c->len, (unsigned int)(c->cap - c->len));
}

/* Answers every complete line in the buffer. */
static void handle_lines(struct conn *c)
{
	char *start = c->buf, *nl;

	while (!c->closing && (nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
		send_line(c, c->server->handler(c->server->arg, start,
						 (size_t)(nl - start), &c->peer));
		start = nl + 1;
	}
	c->len -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->len);
	if (c->len > PROTO_MAX_LINE) {
		send_line(c, proto_reply_error(0, "too-large",
					       "request line too long"));
		close_conn(c);
	}
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)stream;

	(void)buf;
	if (n < 0) {
		close_conn(c);
		return;
	}
	uv_timer_again(&c->idle);
	c->len += (size_t)n;
	handle_lines(c);
}

/* Refuses one client too many, in words, before closing on it. */
static void say_busy(struct conn *c)
{
	char *line = proto_reply_error(0, "busy", "too many clients connected; try again");
	uv_buf_t buf = uv_buf_init(line, (unsigned int)strlen(line));

	uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
	free(line);
}

static int peer_credentials(struct conn *c)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	c->peer.uid = cred.uid;
	c->peer.gid = cred.gid;
	c->peer.pid = cred.pid;
	return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct server *s = (struct server *)listener;
	struct conn *c;

	if (status < 0)
		return;
	c = xcalloc(1, sizeof *c);
	c->server = s;
	uv_pipe_init(listener->loop, &c->pipe, 0);
	uv_timer_init(listener->loop, &c->idle);
	c->pipe.data = c->idle.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	c->pprev = &s->conns;
	if (s->conns != NULL)
		s->conns->pprev = &c->next;
	s->conns = c;
	s->nconns++;
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0 ||
	    peer_credentials(c) < 0) {
		close_conn(c);
		return;
	}
	if (s->nconns > SERVER_MAX_CONNS) {
		say_busy(c);
		close_conn(c);
		return;
	}
	uv_timer_start(&c->idle, on_idle, IDLE_MS, IDLE_MS);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/*
 * Whether something answers on path.  A socket nobody listens on is the
 * leftover of a daemon that died: it may be removed, nothing else may.
 */
static int check_existing(const char *path, char **cause)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		*cause = xasprintf("%s exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	/*
	 * Not blocking: a listener that never accepts fills its queue, and a
	 * blocking connect would then wait for ever instead of refusing.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	if (rc < 0 && errno == EAGAIN) {
		close(fd);
		*cause = xasprintf("%s is in use: something already listens on it (and accepts "
				   "no connections)", path);
		return -EADDRINUSE;
	}
	if (rc == 0) {
		struct ucred cred = { .pid = 0 };
		socklen_t len = sizeof cred;

		/* Say who: in a shared directory it may be another user's. */
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
		close(fd);
		*cause = xasprintf("%s is in use: process %d (uid %u) already listens on it",
				   path, (int)cred.pid, (unsigned int)cred.uid);
		return -EADDRINUSE;
	}
	close(fd);
	return unlink(path) < 0 ? -errno : 0;
}

/* Binds with the final mode set by the umask: no window with a wider mode. */
static int bind_socket(struct server *s, const char *path, gid_t group)
{
	mode_t old = umask(group == (gid_t)-1 ? 0177 : 0117);
	int rc = uv_pipe_bind(&s->listener, path);

	umask(old);
	if (rc < 0)
		return rc;
	s->bound = true;
	if (group != (gid_t)-1 && fchownat(AT_FDCWD, path, (uid_t)-1, group,
					   AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

int server_open(uv_loop_t *loop, const char *path, gid_t group,
		server_handler handler, void *arg, struct server **out,
		char **cause)
{
	struct server *s;
	int rc;

	*cause = NULL;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*cause = xasprintf("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	rc = check_existing(path, cause);
	if (rc < 0) {
		if (*cause == NULL)
			*cause = xasprintf("%s: %s", path, strerror(-rc));
		return rc;
	}
	s = xcalloc(1, sizeof *s);
	s->handler = handler;
	s->arg = arg;
	s->path = xstrdup(path);
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	rc = bind_socket(s, path, group);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, 16, on_connection);
	if (rc < 0) {
		*cause = xasprintf("cannot listen on %s: %s", path, uv_strerror(rc));
		s->closing = true;
		server_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct server *s = (struct server *)h;

	s->listener.data = NULL;
	free_server_if_done(s);
}

void server_close(struct server *s)
{
	struct stat st;

	if (s == NULL)
		return;
	s->closing = true;
	/* Remove our socket, not whatever may have replaced it. */
	if (s->bound && lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->path);
	for (struct conn *c = s->conns; c != NULL; c = c->next)
		close_conn(c);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
