/*
 * The wire protocol: one line as the daemon reads it from a client (any
 * local user may connect), and the same line as the client reads a reply.
 *
 * A refused request must carry a code and a message and keep no strings.
 * An accepted one must be within the ranges the daemon relies on, and mean
 * the same once written back as the client writes requests.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "protocol.h"

static const char *const op_names[] = {
	[PROTO_OP_VERSION] = "version",
	[PROTO_OP_START] = "start",
	[PROTO_OP_STOP] = "stop",
	[PROTO_OP_STATUS] = "status",
	[PROTO_OP_SCHEDULE_ADD] = "schedule-add",
	[PROTO_OP_SCHEDULE_RM] = "schedule-rm",
	[PROTO_OP_SCHEDULE_LS] = "schedule-ls",
	[PROTO_OP_SHUTDOWN] = "shutdown",
	[PROTO_OP_DELETE] = "delete",
};

static void add_str(json_object *o, const char *key, const char *s)
{
	if (s != NULL)
		json_object_object_add(o, key, json_object_new_string(s));
}

static void add_num(json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static json_object *write_back(const struct proto_request *r)
{
	json_object *o = proto_request_new(r->id, op_names[r->op]);
	const struct proto_start *st = &r->start;
	const struct proto_schedule *sc = &r->schedule;

	switch (r->op) {
	case PROTO_OP_START:
		json_object_object_add(o, "pid", json_object_new_int(st->pid));
		add_num(o, "duration_s", st->duration_s);
		add_num(o, "rate_hz", st->rate_hz);
		json_object_object_add(o, "children", json_object_new_boolean(st->children));
		add_str(o, "name", st->name);
		if (st->max_stops >= 0)
			json_object_object_add(o, "max_stops",
					       json_object_new_int64(st->max_stops));
		json_object_object_add(o, "ptrace_only",
				       json_object_new_boolean(st->ptrace_only));
		break;
	case PROTO_OP_STOP:
	case PROTO_OP_DELETE:
		json_object_object_add(o, "session", json_object_new_int64(r->session));
		break;
	case PROTO_OP_SCHEDULE_RM:
		json_object_object_add(o, "schedule", json_object_new_int64(r->schedule_id));
		break;
	case PROTO_OP_SCHEDULE_ADD:
		add_str(o, "kind", sc->kind);
		add_str(o, "target", sc->target);
		add_num(o, "interval_s", sc->interval_s);
		add_num(o, "duration_s", sc->duration_s);
		add_num(o, "rate_hz", sc->rate_hz);
		json_object_object_add(o, "children", json_object_new_boolean(sc->children));
		add_str(o, "name", sc->name);
		if (sc->keep_count >= 0)
			json_object_object_add(o, "keep_count",
					       json_object_new_int64(sc->keep_count));
		if (sc->keep_age_s >= 0)
			add_num(o, "keep_age_s", sc->keep_age_s);
		break;
	default:
		break;
	}
	return o;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_ranges(const struct proto_request *r)
{
	const struct proto_schedule *sc = &r->schedule;

	FUZZ_CHECK(r->id >= 0);
	FUZZ_CHECK((size_t)r->op < sizeof op_names / sizeof op_names[0]);
	if (r->op == PROTO_OP_START) {
		FUZZ_CHECK(r->start.pid >= 1);
		FUZZ_CHECK(isfinite(r->start.duration_s) && r->start.duration_s >= 0);
		FUZZ_CHECK(r->start.rate_hz >= PROTO_MIN_RATE &&
			   r->start.rate_hz <= PROTO_MAX_RATE);
		FUZZ_CHECK(r->start.max_stops >= -1 && r->start.max_stops <= PROTO_MAX_STOPS);
	}
	if (r->op == PROTO_OP_STOP || r->op == PROTO_OP_DELETE)
		FUZZ_CHECK(r->session >= 1);
	if (r->op == PROTO_OP_SCHEDULE_RM)
		FUZZ_CHECK(r->schedule_id >= 1);
	if (r->op == PROTO_OP_SCHEDULE_ADD) {
		FUZZ_CHECK(sc->kind != NULL && sc->target != NULL);
		FUZZ_CHECK(strcmp(sc->kind, "pid") == 0 || strcmp(sc->kind, "exe") == 0 ||
			   strcmp(sc->kind, "cmdline") == 0);
		FUZZ_CHECK(sc->interval_s >= 1 && sc->duration_s > 0);
		FUZZ_CHECK(sc->rate_hz >= PROTO_MIN_RATE && sc->rate_hz <= PROTO_MAX_RATE);
		FUZZ_CHECK(sc->keep_count == -1 || sc->keep_count >= 1);
	}
}

static void round_trip(const struct proto_request *a)
{
	json_object *o = write_back(a);
	char *line = proto_line(o), *message = NULL;
	const char *code = NULL;
	struct proto_request b;
	int rc;

	/* Without its newline, as the daemon's reader hands it over. */
	rc = proto_parse_request(line, strlen(line) - 1, &b, &code, &message);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", line, message);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(a->id == b.id && a->op == b.op && a->session == b.session &&
		   a->schedule_id == b.schedule_id);
	FUZZ_CHECK(a->start.pid == b.start.pid && a->start.children == b.start.children &&
		   a->start.duration_s == b.start.duration_s &&
		   a->start.rate_hz == b.start.rate_hz && same_str(a->start.name, b.start.name) &&
		   a->start.max_stops == b.start.max_stops &&
		   a->start.ptrace_only == b.start.ptrace_only);
	FUZZ_CHECK(same_str(a->schedule.kind, b.schedule.kind) &&
		   same_str(a->schedule.target, b.schedule.target) &&
		   same_str(a->schedule.name, b.schedule.name));
	FUZZ_CHECK(a->schedule.interval_s == b.schedule.interval_s &&
		   a->schedule.duration_s == b.schedule.duration_s &&
		   a->schedule.rate_hz == b.schedule.rate_hz &&
		   a->schedule.children == b.schedule.children &&
		   a->schedule.keep_count == b.schedule.keep_count &&
		   a->schedule.keep_age_s == b.schedule.keep_age_s);
	proto_request_clear(&b);
	free(line);
	json_object_put(o);
}

static void reply(const char *line, size_t len)
{
	const char *code = NULL;
	char *message = NULL;
	json_object *o;
	int rc = proto_parse_reply(line, len, &o, &code, &message);

	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EREMOTE);
	FUZZ_CHECK(rc == 0 || message != NULL);
	FUZZ_CHECK(rc != -EREMOTE || code != NULL);
	FUZZ_CHECK(rc == -EPROTO ? o == NULL : o != NULL);
	free(message);
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data, *code = NULL;
	struct proto_request r;
	char *message = NULL;

	if (proto_parse_request(line, size, &r, &code, &message) == 0) {
		FUZZ_CHECK(message == NULL);
		check_ranges(&r);
		round_trip(&r);
		proto_request_clear(&r);
	} else {
		FUZZ_CHECK(code != NULL && message != NULL);
		FUZZ_CHECK(r.start.name == NULL && r.schedule.kind == NULL &&
			   r.schedule.target == NULL && r.schedule.name == NULL);
		free(message);
	}
	reply(line, size);
	return 0;
}
