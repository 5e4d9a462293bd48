/*
 * perch record: asks the daemon to record a session, shows its progress,
 * stops it on Ctrl-C (keeping what was recorded), then reports it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "conn.h"
#include "db.h"
#include "paths.h"
#include "protocol.h"
#include "units.h"
#include "xalloc.h"

#define POLL_MS 200

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct record_opts {
	int pid;
	double duration_s, rate_hz;
	bool children, json, autostart;
	const char *name;
	long max_stops;		/* -1: the daemon's default; 0: all */
	bool ptrace_only;
};

static int parse(int argc, char **argv, struct record_opts *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "children", no_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-autostart", no_argument, NULL, 'A' },
		{ "stops", required_argument, NULL, 's' },
		{ "ptrace-only", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	o->rate_hz = PROTO_DEFAULT_RATE;
	o->autostart = true;
	o->max_stops = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:d:r:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || end == optarg || v <= 0 || v > INT_MAX) {
				client_error("invalid pid '%s'", optarg);
				return 2;
			}
			o->pid = (int)v;
			break;
		case 'd':
			if (units_parse_duration(optarg, &o->duration_s) < 0 || o->duration_s <= 0) {
				client_error("invalid duration '%s' (try 10, 30s, 5m)", optarg);
				return 2;
			}
			break;
		case 'r':
			if (units_parse_rate(optarg, PROTO_MIN_RATE, PROTO_MAX_RATE, &o->rate_hz) < 0) {
				client_error("invalid rate '%s' (1 to 10000 Hz)", optarg);
				return 2;
			}
			break;
		case 's':
			if (units_parse_stops(optarg, PROTO_MAX_STOPS, &o->max_stops) < 0) {
				client_error("invalid --stops '%s' (1 to %d, or all)", optarg,
					     PROTO_MAX_STOPS);
				return 2;
			}
			break;
		case 'c': o->children = true; break;
		case 'n': o->name = optarg; break;
		case 'j': o->json = true; break;
		case 'A': o->autostart = false; break;
		case 'P': o->ptrace_only = true; break;
		default: return client_usage("record");
		}
	}
	if (o->pid == 0 || optind != argc)
		return client_usage("record");
	return -1;
}

/* The session in the given list of a status reply, or NULL. */
static json_object *find_session(json_object *status, const char *list, int64_t id)
{
	json_object *arr, *s, *v;

	if (!json_object_object_get_ex(status, list, &arr) || arr == NULL)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		s = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(s, "session", &v) &&
		    json_object_get_int64(v) == id)
			return s;
	}
	return NULL;
}

static double num(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static void progress(json_object *s, double duration_s)
{
	char total[32] = "";

	if (duration_s > 0)
		snprintf(total, sizeof total, " / %.0f s", duration_s);
	fprintf(stderr, "\r\033[Kperch: recording %.1f s%s, %.0f samples, %.1f %% late%s",
		num(s, "elapsed_s"), total, num(s, "samples"), num(s, "late_percent"),
		interrupted ? " (stopping)" : "");
}

static void send_stop(struct conn *c, int64_t id)
{
	json_object *req = conn_request(c, "stop"), *reply;
	char *cause = NULL;

	json_object_object_add(req, "session", json_object_new_int64(id));
	if (conn_call(c, req, &reply, &cause) == 0)
		json_object_put(reply);
	free(cause);
}

/*
 * Polls the session until the daemon reports it ended, and returns what it
 * says of the end (caller puts), or NULL when the daemon went away.
 */
static json_object *follow(struct conn *c, int64_t id, double duration_s, bool tty)
{
	struct timespec ts = { 0, POLL_MS * 1000000L };
	json_object *reply, *end = NULL;
	bool stop_sent = false;
	char *cause = NULL;

	for (;;) {
		json_object *s;

		if (interrupted && !stop_sent) {
			send_stop(c, id);
			stop_sent = true;
		}
		if (conn_call(c, conn_request(c, "status"), &reply, &cause) < 0) {
			free(cause);
			break;
		}
		s = find_session(reply, "sessions", id);
		if (s != NULL && tty)
			progress(s, duration_s);
		if (s == NULL && (end = find_session(reply, "ended", id)) != NULL)
			json_object_get(end);
		json_object_put(reply);
		if (s == NULL)
			break;
		nanosleep(&ts, NULL);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	return end;
}

/* The session's final row, read from the database the daemon wrote. */
static json_object *final_row(int64_t id, char **cause)
{
	char *db_path = paths_default_db();
	json_object *o = NULL;
	sqlite3_stmt *st;
	sqlite3 *db;

	if (db_open(db_path, DB_READ_ONLY, &db, cause) < 0) {
		free(db_path);
		return NULL;
	}
	free(db_path);
	if (sqlite3_prepare_v2(db, "SELECT status, samples, thread_samples, late_samples, "
			       "error, (coalesce(ended_ns, started_ns) - started_ns) / 1e9 "
			       "FROM sessions WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
		*cause = xasprintf("cannot read the database: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		o = json_object_new_object();
		json_object_object_add(o, "session", json_object_new_int64(id));
		json_object_object_add(o, "status", json_object_new_string(
			(const char *)sqlite3_column_text(st, 0)));
		json_object_object_add(o, "samples", json_object_new_int64(sqlite3_column_int64(st, 1)));
		json_object_object_add(o, "thread_samples",
				       json_object_new_int64(sqlite3_column_int64(st, 2)));
		json_object_object_add(o, "late_samples",
				       json_object_new_int64(sqlite3_column_int64(st, 3)));
		json_object_object_add(o, "error", sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL :
			json_object_new_string((const char *)sqlite3_column_text(st, 4)));
		json_object_object_add(o, "duration_s",
				       json_object_new_double(sqlite3_column_double(st, 5)));
	} else {
		*cause = xasprintf("session %" PRId64 " is not in the database", id);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return o;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

/*
 * Reports the session from what the daemon said of its end, else (the
 * daemon went away) from the database.
 */
static int report(int64_t id, json_object *end, bool json)
{
	char *cause = NULL;
	json_object *row = end ? json_object_get(end) : final_row(id, &cause);
	double samples, late;
	int rc = 0;

	if (row == NULL) {
		client_error("lost the daemon while recording session %" PRId64 " (%s)",
			     id, cause);
		free(cause);
		return 1;
	}
	samples = num(row, "samples");
	late = num(row, "late_samples");
	if (strcmp(str(row, "status"), "recording") == 0) {
		client_error("lost the daemon while recording session %" PRId64, id);
		rc = 1;
	} else if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "session", json_object_new_int64(id));
		json_object_object_add(o, "status", json_object_new_string(str(row, "status")));
		json_object_object_add(o, "samples", json_object_new_int64((int64_t)samples));
		json_object_object_add(o, "late_samples", json_object_new_int64((int64_t)late));
		json_object_object_add(o, "error", *str(row, "error") ?
				       json_object_new_string(str(row, "error")) : NULL);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("session %" PRId64 ": %s, %.0f samples (%.1f %% late)%s%s\n\n",
		       id, str(row, "status"), samples,
		       samples + late > 0 ? 100 * late / (samples + late) : 0,
		       *str(row, "error") ? ": " : "", str(row, "error"));
		fflush(stdout);
		if (samples > 0)
			rc = report_tree(id);
	}
	json_object_put(row);
	return rc;
}

int cmd_record(int argc, char **argv)
{
	struct record_opts o = { 0 };
	struct sigaction sa = { .sa_handler = on_sigint };
	char *socket_path = paths_default_socket(), *db_path = paths_default_db();
	char *cause = NULL;
	json_object *req, *reply, *v, *end;
	struct conn *c = NULL;
	int64_t id;
	int rc;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		goto out;
	rc = 1;
	if (conn_open(socket_path, db_path, o.autostart, &c, &cause) < 0)
		goto out_error;
	req = conn_request(c, "start");
	json_object_object_add(req, "pid", json_object_new_int(o.pid));
	if (o.duration_s > 0)
		json_object_object_add(req, "duration_s", json_object_new_double(o.duration_s));
	json_object_object_add(req, "rate_hz", json_object_new_double(o.rate_hz));
	json_object_object_add(req, "children", json_object_new_boolean(o.children));
	if (o.name != NULL)
		json_object_object_add(req, "name", json_object_new_string(o.name));
	if (o.max_stops >= 0)
		json_object_object_add(req, "max_stops", json_object_new_int64(o.max_stops));
	if (o.ptrace_only)
		json_object_object_add(req, "ptrace_only", json_object_new_boolean(true));
	if (conn_call(c, req, &reply, &cause) < 0)
		goto out_error;
	id = json_object_object_get_ex(reply, "session", &v) ? json_object_get_int64(v) : 0;
	json_object_put(reply);
	/* Ctrl-C stops the recording, which is kept. */
	sigaction(SIGINT, &sa, NULL);
	end = follow(c, id, o.duration_s, isatty(STDERR_FILENO));
	rc = report(id, end, o.json);
	json_object_put(end);
	goto out;

out_error:
	client_error("%s", cause);
	free(cause);
out:
	conn_close(c);
	free(socket_path);
	free(db_path);
	return rc;
}
