/*
 * perch sessions: the recorded sessions, read from the database (no daemon
 * needed).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "db.h"
#include "paths.h"

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p ? p : "?";
}

static json_object *row_json(sqlite3_stmt *st)
{
	json_object *o = json_object_new_object();
	static const char *const keys[] = { "session", "pid", "exe", "name", "started_ns",
					    "duration_s", "samples", "late_samples", "status",
					    "error", "schedule" };

	for (int i = 0; i < 11; i++) {
		json_object *v = NULL;

		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER: v = json_object_new_int64(sqlite3_column_int64(st, i)); break;
		case SQLITE_FLOAT: v = json_object_new_double(sqlite3_column_double(st, i)); break;
		case SQLITE_TEXT:
			v = json_object_new_string((const char *)sqlite3_column_text(st, i));
			break;
		default: break;
		}
		json_object_object_add(o, keys[i], v);
	}
	return o;
}

/* A text column, or "?" where a damaged file has none. */
static const char *text_or_unknown(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "?";
}

static void print_row(sqlite3_stmt *st)
{
	time_t t = (time_t)(sqlite3_column_int64(st, 4) / 1000000000);
	struct tm *tm = localtime(&t);
	char when[32] = "?", sched[24] = "-";

	if (tm != NULL)
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", tm);
	if (sqlite3_column_type(st, 10) != SQLITE_NULL)
		snprintf(sched, sizeof sched, "%lld", (long long)sqlite3_column_int64(st, 10));
	printf("%7lld %8lld  %-20.20s %s %8.1fs %9lld  %-13s %s\n",
	       (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
	       base_name(text_or_unknown(st, 2)), when,
	       sqlite3_column_double(st, 5), (long long)sqlite3_column_int64(st, 6),
	       text_or_unknown(st, 8), sched);
}

int cmd_sessions(int argc, char **argv)
{
	bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
	char *path = paths_default_db(), *cause = NULL;
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int rc = 1, n = 0;

	if (argc > 2 || (argc == 2 && !json)) {
		rc = client_usage("sessions");
		goto out;
	}
	if (db_open(path, DB_READ_ONLY, &db, &cause) < 0) {
		client_error("%s", cause);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT id, pid, exe, name, started_ns, "
			       "(coalesce(ended_ns, started_ns) - started_ns) / 1e9, samples, "
			       "late_samples, status, error, schedule_id FROM sessions ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		client_error("cannot read %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (!json)
		printf("%7s %8s  %-20s %-19s %9s %9s  %-13s %s\n", "SESSION", "PID", "EXECUTABLE",
		       "STARTED", "DURATION", "SAMPLES", "STATUS", "SCHEDULE");
	while (sqlite3_step(st) == SQLITE_ROW) {
		n++;
		if (json)
			json_object_array_add(arr, row_json(st));
		else
			print_row(st);
	}
	if (json)
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (n == 0)
		printf("no sessions recorded yet\n");
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	json_object_put(arr);
	free(cause);
	free(path);
	return rc;
}
