#include "protocol.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define MAX_NAME 256
#define MAX_TARGET 4096
#define MAX_DURATION (366.0 * 86400)
/* Requests are flat objects: anything nested deeper is not ours. */
#define MAX_DEPTH 4

static const struct {
	const char *name;
	enum proto_op op;
} ops[] = {
	{ "version", PROTO_OP_VERSION },
	{ "start", PROTO_OP_START },
	{ "stop", PROTO_OP_STOP },
	{ "status", PROTO_OP_STATUS },
	{ "schedule-add", PROTO_OP_SCHEDULE_ADD },
	{ "schedule-rm", PROTO_OP_SCHEDULE_RM },
	{ "schedule-ls", PROTO_OP_SCHEDULE_LS },
	{ "shutdown", PROTO_OP_SHUTDOWN },
	{ "delete", PROTO_OP_DELETE },
};

/* A failed field check: the message names the field. */
struct check {
	const char *code;
	char *message;
};

static bool fail(struct check *c, const char *code, char *message)
{
	if (c->message == NULL) {
		c->code = code;
		c->message = message;
	} else {
		free(message);
	}
	return false;
}

static json_object *field(json_object *o, const char *key, json_type type,
			  bool required, struct check *c)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
		if (required)
			fail(c, "bad-request", xasprintf("missing field \"%s\"", key));
		return NULL;
	}
	if (json_object_get_type(v) != type &&
	    !(type == json_type_double && json_object_get_type(v) == json_type_int)) {
		fail(c, "bad-request", xasprintf("field \"%s\" must be %s", key,
						json_type_to_name(type)));
		return NULL;
	}
	return v;
}

static bool get_int(json_object *o, const char *key, bool required, int64_t min,
		    int64_t max, int64_t *out, struct check *c)
{
	json_object *v = field(o, key, json_type_int, required, c);

	if (v == NULL)
		return !required && c->message == NULL;
	errno = 0;
	*out = json_object_get_int64(v);
	if (errno != 0 || *out < min || *out > max)
		return fail(c, "bad-request",
			    xasprintf("field \"%s\" must be between %lld and %lld", key,
				      (long long)min, (long long)max));
	return true;
}

static bool get_num(json_object *o, const char *key, bool required, double min,
		    double max, double *out, struct check *c)
{
	json_object *v = field(o, key, json_type_double, required, c);

	if (v == NULL)
		return !required && c->message == NULL;
	*out = json_object_get_double(v);
	if (!isfinite(*out) || *out < min || *out > max)
		return fail(c, "bad-request",
			    xasprintf("field \"%s\" must be between %g and %g", key, min, max));
	return true;
}

static bool get_bool(json_object *o, const char *key, bool *out, struct check *c)
{
	json_object *v = field(o, key, json_type_boolean, false, c);

	if (v != NULL)
		*out = json_object_get_boolean(v);
	return c->message == NULL;
}

static bool get_str(json_object *o, const char *key, bool required, size_t max,
		    char **out, struct check *c)
{
	json_object *v = field(o, key, json_type_string, required, c);
	const char *s;
	size_t len;

	if (v == NULL)
		return !required && c->message == NULL;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len == 0 || len > max || strlen(s) != len)
		return fail(c, "bad-request",
			    xasprintf("field \"%s\" must be a string of 1 to %zu bytes",
				      key, max));
	*out = xstrdup(s);
	return true;
}

static bool parse_start(json_object *o, struct proto_start *s, struct check *c)
{
	int64_t pid = 0;

	s->rate_hz = PROTO_DEFAULT_RATE;
	s->max_stops = -1;
	if (!get_int(o, "pid", true, 1, INT_MAX, &pid, c))
		return false;
	s->pid = (int)pid;
	return get_num(o, "duration_s", false, 0, MAX_DURATION, &s->duration_s, c) &&
	       get_num(o, "rate_hz", false, PROTO_MIN_RATE, PROTO_MAX_RATE, &s->rate_hz, c) &&
	       get_bool(o, "children", &s->children, c) &&
	       get_str(o, "name", false, MAX_NAME, &s->name, c) &&
	       get_int(o, "max_stops", false, 0, PROTO_MAX_STOPS, &s->max_stops, c) &&
	       get_bool(o, "ptrace_only", &s->ptrace_only, c);
}

static bool parse_schedule(json_object *o, struct proto_schedule *s, struct check *c)
{
	s->rate_hz = PROTO_DEFAULT_RATE;
	s->keep_count = -1;
	s->keep_age_s = -1;
	s->max_stops = -1;
	if (!get_str(o, "kind", true, 16, &s->kind, c) ||
	    !get_str(o, "target", true, MAX_TARGET, &s->target, c) ||
	    !get_num(o, "interval_s", true, 1, MAX_DURATION, &s->interval_s, c) ||
	    !get_num(o, "duration_s", true, 0.01, MAX_DURATION, &s->duration_s, c) ||
	    !get_num(o, "rate_hz", false, PROTO_MIN_RATE, PROTO_MAX_RATE, &s->rate_hz, c) ||
	    !get_bool(o, "children", &s->children, c) ||
	    !get_str(o, "name", false, MAX_NAME, &s->name, c) ||
	    !get_int(o, "keep_count", false, 1, INT_MAX, &s->keep_count, c) ||
	    !get_num(o, "keep_age_s", false, 1, 100 * MAX_DURATION, &s->keep_age_s, c) ||
	    !get_int(o, "max_stops", false, 0, PROTO_MAX_STOPS, &s->max_stops, c) ||
	    !get_bool(o, "ptrace_only", &s->ptrace_only, c))
		return false;
	if (strcmp(s->kind, "pid") != 0 && strcmp(s->kind, "exe") != 0 &&
	    strcmp(s->kind, "cmdline") != 0)
		return fail(c, "bad-request",
			    xstrdup("field \"kind\" must be \"pid\", \"exe\" or \"cmdline\""));
	return true;
}

static bool parse_op(json_object *o, struct proto_request *req, struct check *c)
{
	char *name = NULL;
	bool found = false;

	if (!get_str(o, "op", true, 32, &name, c))
		return false;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		if (strcmp(ops[i].name, name) == 0) {
			req->op = ops[i].op;
			found = true;
		}
	}
	if (!found)
		fail(c, "unknown-op", xasprintf("unknown operation \"%s\"", name));
	free(name);
	return found;
}

static bool parse_body(json_object *o, struct proto_request *req, struct check *c)
{
	switch (req->op) {
	case PROTO_OP_START:
		return parse_start(o, &req->start, c);
	case PROTO_OP_STOP:
	case PROTO_OP_DELETE:
		return get_int(o, "session", true, 1, INT64_MAX, &req->session, c);
	case PROTO_OP_SCHEDULE_ADD:
		return parse_schedule(o, &req->schedule, c);
	case PROTO_OP_SCHEDULE_RM:
		return get_int(o, "schedule", true, 1, INT64_MAX, &req->schedule_id, c);
	default:
		return true;
	}
}

static json_object *parse_json(const char *line, size_t len, struct check *c)
{
	struct json_tokener *tok;
	json_object *o;

	if (len > PROTO_MAX_LINE) {
		fail(c, "too-large", xasprintf("request of %zu bytes exceeds %d",
					       len, PROTO_MAX_LINE));
		return NULL;
	}
	tok = json_tokener_new_ex(MAX_DEPTH);
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o == NULL || tok->char_offset != (int)len) {
		fail(c, "bad-request", xstrdup("request is not one JSON object"));
		json_object_put(o);
		o = NULL;
	} else if (!json_object_is_type(o, json_type_object)) {
		fail(c, "bad-request", xstrdup("request is not a JSON object"));
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int proto_parse_request(const char *line, size_t len, struct proto_request *req,
			const char **code, char **message)
{
	struct check c = { NULL, NULL };
	int64_t v = 0;
	json_object *o;

	memset(req, 0, sizeof *req);
	o = parse_json(line, len, &c);
	if (o != NULL && get_int(o, "id", true, 0, INT64_MAX, &req->id, &c) &&
	    get_int(o, "v", true, 0, INT_MAX, &v, &c)) {
		if (v != PROTO_VERSION)
			fail(&c, "unsupported-version",
			     xasprintf("protocol version %lld, this daemon speaks %d",
				       (long long)v, PROTO_VERSION));
		else if (parse_op(o, req, &c))
			parse_body(o, req, &c);
	}
	json_object_put(o);
	if (c.message == NULL)
		return 0;
	proto_request_clear(req);
	*code = c.code;
	*message = c.message;
	return -EINVAL;
}

void proto_request_clear(struct proto_request *req)
{
	free(req->start.name);
	free(req->schedule.kind);
	free(req->schedule.target);
	free(req->schedule.name);
	req->start.name = NULL;
	req->schedule.kind = req->schedule.target = req->schedule.name = NULL;
}

char *proto_line(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);

	return xasprintf("%s\n", s);
}

static json_object *envelope(int64_t id, bool ok)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "v", json_object_new_int(PROTO_VERSION));
	json_object_object_add(o, "id", json_object_new_int64(id));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	return o;
}

char *proto_reply_ok(int64_t id, json_object *result)
{
	json_object *o = envelope(id, true);
	char *line;

	if (result != NULL) {
		json_object_object_foreach(result, key, val)
			json_object_object_add(o, key, json_object_get(val));
		json_object_put(result);
	}
	line = proto_line(o);
	json_object_put(o);
	return line;
}

char *proto_reply_error(int64_t id, const char *code, const char *message)
{
	json_object *o = envelope(id, false);
	char *line;

	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	line = proto_line(o);
	json_object_put(o);
	return line;
}

json_object *proto_request_new(int64_t id, const char *op)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "v", json_object_new_int(PROTO_VERSION));
	json_object_object_add(o, "id", json_object_new_int64(id));
	json_object_object_add(o, "op", json_object_new_string(op));
	return o;
}

int proto_parse_reply(const char *line, size_t len, json_object **out,
		      const char **code, char **message)
{
	struct check c = { NULL, NULL };
	json_object *o = parse_json(line, len, &c), *ok, *err, *msg;

	*out = NULL;
	if (o == NULL || !json_object_object_get_ex(o, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean)) {
		free(c.message);
		json_object_put(o);
		*message = xstrdup("the daemon sent an unreadable reply");
		return -EPROTO;
	}
	*out = o;
	if (json_object_get_boolean(ok))
		return 0;
	/* A null or a number where a string belongs reads as the default. */
	*code = json_object_object_get_ex(o, "error", &err) &&
		json_object_is_type(err, json_type_string) ?
		json_object_get_string(err) : "internal";
	*message = xstrdup(json_object_object_get_ex(o, "message", &msg) &&
			   json_object_is_type(msg, json_type_string) ?
			   json_object_get_string(msg) : "the daemon refused");
	return -EREMOTE;
}
