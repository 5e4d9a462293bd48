/*
 * Commands that talk to the daemon: stop, status, schedule add|ls|rm.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "conn.h"
#include "paths.h"
#include "protocol.h"
#include "units.h"
#include "xalloc.h"

/*
 * Sends one request (fields consumed) to the daemon, starting one first
 * when none answers and autostart is set.  Returns the reply (caller puts)
 * or NULL after printing the error.
 */
static json_object *call(const char *op, json_object *fields, bool autostart)
{
	char *socket_path = paths_default_socket(), *db_path = paths_default_db();
	json_object *req, *reply = NULL;
	char *cause = NULL;
	struct conn *c;

	if (conn_open(socket_path, db_path, autostart, &c, &cause) == 0) {
		req = conn_request(c, op);
		if (fields != NULL) {
			json_object_object_foreach(fields, key, val)
				json_object_object_add(req, key, json_object_get(val));
		}
		conn_call(c, req, &reply, &cause);
		conn_close(c);
	}
	if (reply == NULL) {
		client_error("%s", cause);
		free(cause);
	}
	json_object_put(fields);
	free(socket_path);
	free(db_path);
	return reply;
}

static int parse_id(const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0)
		return -1;
	*id = v;
	return 0;
}

static bool want_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			return true;
	return false;
}

static void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
}

static double num(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_double(v) : 0;
}

static const char *str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : dflt;
}

int cmd_stop(int argc, char **argv)
{
	json_object *fields, *reply;
	int64_t id;

	if (argc != 2 || parse_id(argv[1], &id) < 0)
		return client_usage("stop");
	fields = json_object_new_object();
	json_object_object_add(fields, "session", json_object_new_int64(id));
	reply = call("stop", fields, false);
	if (reply == NULL)
		return 1;
	printf("session %" PRId64 " stopping\n", id);
	json_object_put(reply);
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	json_object *fields, *reply;
	int64_t id;

	if (argc != 2 || parse_id(argv[1], &id) < 0)
		return client_usage("rm");
	fields = json_object_new_object();
	json_object_object_add(fields, "session", json_object_new_int64(id));
	reply = call("delete", fields, true);
	if (reply == NULL)
		return 1;
	printf("session %" PRId64 " deleted\n", id);
	json_object_put(reply);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	bool json = want_json(argc, argv);
	json_object *reply, *arr;
	size_t n;

	if (argc > 2 || (argc == 2 && !json))
		return client_usage("status");
	reply = call("status", NULL, false);
	if (reply == NULL)
		return 1;
	json_object_object_get_ex(reply, "sessions", &arr);
	n = arr ? json_object_array_length(arr) : 0;
	if (json) {
		print_json(arr);
	} else if (n == 0) {
		printf("no session is recording\n");
	} else {
		printf("%8s %8s %10s %10s %9s %7s  %s\n", "SESSION", "PID", "ELAPSED",
		       "SAMPLES", "LATE", "THREADS", "EXECUTABLE");
		for (size_t i = 0; i < n; i++) {
			json_object *s = json_object_array_get_idx(arr, i);

			printf("%8.0f %8.0f %9.1fs %10.0f %8.1f%% %7.0f  %s\n",
			       num(s, "session"), num(s, "pid"), num(s, "elapsed_s"),
			       num(s, "samples"), num(s, "late_percent"), num(s, "threads"),
			       str(s, "exe", "?"));
		}
	}
	json_object_put(reply);
	return 0;
}

static int schedule_add(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "exe", required_argument, NULL, 'e' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "every", required_argument, NULL, 'i' },
		{ "for", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "children", no_argument, NULL, 'C' },
		{ "name", required_argument, NULL, 'n' },
		{ "keep", required_argument, NULL, 'k' },
		{ "keep-for", required_argument, NULL, 'a' },
		{ "stops", required_argument, NULL, 's' },
		{ "ptrace-only", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	json_object *f = json_object_new_object(), *reply;
	double every = 0, dur = 0, v;
	int64_t keep;
	long stops;
	int c, kinds = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
		case 'e':
		case 'c':
			kinds++;
			json_object_object_add(f, "kind", json_object_new_string(
				c == 'p' ? "pid" : c == 'e' ? "exe" : "cmdline"));
			json_object_object_add(f, "target", json_object_new_string(optarg));
			break;
		case 'i':
		case 'd':
			if (units_parse_duration(optarg, c == 'i' ? &every : &dur) < 0)
				goto bad_value;
			break;
		case 'r':
			if (units_parse_rate(optarg, PROTO_MIN_RATE, PROTO_MAX_RATE, &v) < 0)
				goto bad_value;
			json_object_object_add(f, "rate_hz", json_object_new_double(v));
			break;
		case 'C': json_object_object_add(f, "children", json_object_new_boolean(1)); break;
		case 'n': json_object_object_add(f, "name", json_object_new_string(optarg)); break;
		case 'k':
			if (parse_id(optarg, &keep) < 0)
				goto bad_value;
			json_object_object_add(f, "keep_count", json_object_new_int64(keep));
			break;
		case 'a':
			if (units_parse_duration(optarg, &v) < 0 || v <= 0)
				goto bad_value;
			json_object_object_add(f, "keep_age_s", json_object_new_double(v));
			break;
		case 's':
			if (units_parse_stops(optarg, PROTO_MAX_STOPS, &stops) < 0) {
				client_error("invalid --stops '%s' (1 to %d, or all)", optarg,
					     PROTO_MAX_STOPS);
				json_object_put(f);
				return 2;
			}
			json_object_object_add(f, "max_stops", json_object_new_int64(stops));
			break;
		case 'P':
			json_object_object_add(f, "ptrace_only", json_object_new_boolean(1));
			break;
		default:
			json_object_put(f);
			return client_usage("schedule");
		}
	}
	if (kinds != 1 || every <= 0 || dur <= 0 || optind != argc) {
		json_object_put(f);
		return client_usage("schedule");
	}
	json_object_object_add(f, "interval_s", json_object_new_double(every));
	json_object_object_add(f, "duration_s", json_object_new_double(dur));
	reply = call("schedule-add", f, true);
	if (reply == NULL)
		return 1;
	printf("schedule %.0f added\n", num(reply, "schedule"));
	json_object_put(reply);
	return 0;

bad_value:
	client_error("invalid value '%s' (durations like 30s, 5m, 1h; rates in Hz)", optarg);
	json_object_put(f);
	return 2;
}

static void print_schedule(json_object *s)
{
	time_t next = (time_t)(num(s, "next_ns") / 1e9);
	json_object *stops = NULL;
	char when[32], how[48] = "";

	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&next));
	/* Only what differs from perch record's defaults. */
	if (json_object_object_get_ex(s, "max_stops", &stops) && stops != NULL) {
		int64_t n = json_object_get_int64(stops);

		if (n < 0)
			snprintf(how, sizeof how, ", stops all");
		else
			snprintf(how, sizeof how, ", stops %" PRId64, n);
	}
	if (num(s, "ptrace_only"))
		snprintf(how + strlen(how), sizeof how - strlen(how), ", ptrace only");
	printf("%8.0f  every %gs for %gs at %g Hz%s  %s '%s'%s  next %s\n",
	       num(s, "schedule"), num(s, "interval_s"), num(s, "duration_s"),
	       num(s, "rate_hz"), how, str(s, "kind", "?"), str(s, "target", "?"),
	       num(s, "children") ? " with children" : "", when);
}

static int schedule_ls(int argc, char **argv)
{
	bool json = want_json(argc, argv);
	json_object *reply, *arr;
	size_t n;

	if (argc > 2 || (argc == 2 && !json))
		return client_usage("schedule");
	reply = call("schedule-ls", NULL, false);
	if (reply == NULL)
		return 1;
	json_object_object_get_ex(reply, "schedules", &arr);
	n = arr ? json_object_array_length(arr) : 0;
	if (json)
		print_json(arr);
	else if (n == 0)
		printf("no schedules\n");
	for (size_t i = 0; !json && i < n; i++)
		print_schedule(json_object_array_get_idx(arr, i));
	json_object_put(reply);
	return 0;
}

static int schedule_rm(int argc, char **argv)
{
	json_object *f, *reply;
	int64_t id;

	if (argc != 2 || parse_id(argv[1], &id) < 0)
		return client_usage("schedule");
	f = json_object_new_object();
	json_object_object_add(f, "schedule", json_object_new_int64(id));
	reply = call("schedule-rm", f, false);
	if (reply == NULL)
		return 1;
	printf("schedule %" PRId64 " removed\n", id);
	json_object_put(reply);
	return 0;
}

int cmd_schedule(int argc, char **argv)
{
	if (argc < 2)
		return client_usage("schedule");
	if (strcmp(argv[1], "add") == 0)
		return schedule_add(argc - 1, argv + 1);
	if (strcmp(argv[1], "ls") == 0)
		return schedule_ls(argc - 1, argv + 1);
	if (strcmp(argv[1], "rm") == 0)
		return schedule_rm(argc - 1, argv + 1);
	return client_usage("schedule");
}
