/*
 * protocol: the client <-> daemon wire protocol, version PROTO_VERSION.
 *
 * One JSON object per line, at most PROTO_MAX_LINE bytes, over the daemon's
 * UNIX socket.  Every request carries the protocol version, an id echoed in
 * the reply, and an operation:
 *
 *   {"v":1,"id":7,"op":"start","pid":123,"duration_s":30,"rate_hz":99,
 *    "children":false,"name":"before-fix"}
 *
 * and gets exactly one reply, {"v":1,"id":7,"ok":true,...} or
 * {"v":1,"id":7,"ok":false,"error":"no-such-process","message":"..."}.
 * The operations, their fields and the error codes are listed in
 * schema/README.md.  Parsing is strict: unknown operations, missing or
 * mistyped fields and out-of-range values are refused with "bad-request" and
 * a message naming the field.
 */
#ifndef PERCH_PROTOCOL_H
#define PERCH_PROTOCOL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAX_LINE (64 * 1024)
#define PROTO_DEFAULT_RATE 99.0
#define PROTO_MIN_RATE 1.0
#define PROTO_MAX_RATE 10000.0
#define PROTO_MAX_STOPS 4096

enum proto_op {
	PROTO_OP_VERSION,
	PROTO_OP_START,
	PROTO_OP_STOP,
	PROTO_OP_STATUS,
	PROTO_OP_SCHEDULE_ADD,
	PROTO_OP_SCHEDULE_RM,
	PROTO_OP_SCHEDULE_LS,
	PROTO_OP_SHUTDOWN,
	PROTO_OP_DELETE,
};

struct proto_start {
	int pid;
	double duration_s;	/* 0: until stopped */
	double rate_hz;
	bool children;
	char *name;		/* or NULL */
	/*
	 * Threads stopped per process and tick at most: -1 (absent) = the
	 * daemon's default, 0 = every running thread.
	 */
	int64_t max_stops;
	/*
	 * Stop running threads to sample them, as blocked ones, instead of
	 * letting the kernel sample them (target_opts.kernel_period_ns).
	 */
	bool ptrace_only;
};

struct proto_schedule {
	char *kind;		/* "pid", "exe" or "cmdline" */
	char *target;
	double interval_s, duration_s, rate_hz;
	bool children;
	char *name;		/* or NULL */
	int64_t keep_count;	/* -1: no limit */
	double keep_age_s;	/* < 0: no limit */
	int64_t max_stops;	/* as in proto_start */
	bool ptrace_only;	/* as in proto_start */
};

struct proto_request {
	int64_t id;
	enum proto_op op;
	struct proto_start start;	/* PROTO_OP_START */
	int64_t session;		/* PROTO_OP_STOP, PROTO_OP_DELETE */
	struct proto_schedule schedule;	/* PROTO_OP_SCHEDULE_ADD */
	int64_t schedule_id;		/* PROTO_OP_SCHEDULE_RM */
};

/*
 * Parses one request line (without its newline).  Returns 0, or -EINVAL with
 * *code set to a static error code and *message (caller frees) explaining;
 * *id is then the request's id when it could be read, else 0.
 */
int proto_parse_request(const char *line, size_t len, struct proto_request *req,
			const char **code, char **message);

/* Frees the strings of a parsed request. */
void proto_request_clear(struct proto_request *req);

/* A reply line, newline included (caller frees).  result is consumed. */
char *proto_reply_ok(int64_t id, json_object *result);
char *proto_reply_error(int64_t id, const char *code, const char *message);

/* A request object {"v","id","op"} to add fields to. */
json_object *proto_request_new(int64_t id, const char *op);

/* Serializes o as one line, newline included (caller frees). */
char *proto_line(json_object *o);

/*
 * Parses a reply line.  Returns 0 and *out (caller puts) when ok is true;
 * -EPROTO with *message for an unreadable reply; -EREMOTE with *code
 * (static or from the reply: valid as long as *out) and *message for an
 * error reply, *out set.
 */
int proto_parse_reply(const char *line, size_t len, json_object **out,
		      const char **code, char **message);

#endif
