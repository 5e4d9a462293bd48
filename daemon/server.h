/*
 * server: the daemon's UNIX socket.  Reads one request per line, hands it to
 * the handler with the peer's credentials (SO_PEERCRED), writes back the
 * reply line.  Lines longer than PROTO_MAX_LINE are refused and the
 * connection closed; at most SERVER_MAX_CONNS clients at once.
 *
 * The socket is created with mode 0600, or 0660 and the given group, and
 * never replaces anything but a stale socket of a dead daemon.
 */
#ifndef PERCH_SERVER_H
#define PERCH_SERVER_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#define SERVER_MAX_CONNS 64

struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

/* Returns the reply line (malloc'ed, newline included). */
typedef char *(*server_handler)(void *arg, const char *line, size_t len,
				const struct peer *peer);

struct server;

/*
 * Listens on path.  group is the socket's group for mode 0660, or -1 for
 * 0600.  Returns 0 or a negative errno with a one-line *cause.
 */
int server_open(uv_loop_t *loop, const char *path, gid_t group,
		server_handler handler, void *arg, struct server **out,
		char **cause);

/*
 * Stops listening, closes every connection and removes the socket file;
 * the server is freed once libuv has closed every handle (run the loop).
 */
void server_close(struct server *s);

#endif
