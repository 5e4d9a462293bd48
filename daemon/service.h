/*
 * service: what the daemon does for its clients — start, stop and list
 * profiling sessions, keep schedules and fire them, apply retention.  It owns
 * the store and the sessions; requests come from the server (one line each,
 * with the peer's credentials) and get one reply line.
 *
 * Everything here runs on the daemon's libuv loop thread; sessions sample on
 * their own threads and report their end through a uv_async.
 */
#ifndef PERCH_SERVICE_H
#define PERCH_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "server.h"

struct service;

struct service_opts {
	const char *db_path;
	const char *socket_path;	/* reported by status */
	int64_t keep_count;		/* global retention, -1: none */
	double keep_age_s;		/* global retention, < 0: none */
	/* Called on the loop when a client asks the daemon to shut down. */
	void (*on_shutdown_request)(void *arg);
	void *arg;
};

/* Opens the store and loads the schedules.  *cause on failure. */
int service_create(uv_loop_t *loop, const struct service_opts *opts,
		   struct service **out, char **cause);

/* A server_handler: answers one request line. */
char *service_handle(void *service, const char *line, size_t len,
		     const struct peer *peer);

/*
 * Stops every session (status "stopped"), waits for their samplers on the
 * loop, closes the store, frees the service and calls done(arg).
 */
void service_shutdown(struct service *s, void (*done)(void *arg), void *arg);

#endif
