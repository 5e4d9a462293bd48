/*
 * conn: the client's connection to perchd.  One request at a time: send a
 * line, read the reply line.  When nothing listens on the socket and the
 * caller allows it, a daemon is started in the background first (perchd
 * returns once it listens).
 */
#ifndef PERCH_CONN_H
#define PERCH_CONN_H

#include <json-c/json.h>
#include <stdbool.h>

struct conn;

/*
 * Connects to socket_path, starting `perchd --socket socket_path --db
 * db_path` if nobody listens and autostart is set.  Whoever listens must be
 * root or the user (SO_PEERCRED), else -EPERM before anything is sent.
 * Returns 0 or a negative errno with a one-line *cause (caller frees).
 */
int conn_open(const char *socket_path, const char *db_path, bool autostart,
	      struct conn **out, char **cause);

/*
 * Sends request (consumed) and waits for the reply.  Returns 0 with *reply
 * (caller puts), or a negative errno with *cause: -EREMOTE when the daemon
 * refused (the cause is its message), else a transport error.
 */
int conn_call(struct conn *c, json_object *request, json_object **reply,
	      char **cause);

/* A request {"v","id","op"} with the next id of this connection. */
json_object *conn_request(struct conn *c, const char *op);

/* NULL-safe. */
void conn_close(struct conn *c);

#endif
