#include "report_opts.h"

#include <stdlib.h>

#include "commands.h"
#include "db.h"
#include "paths.h"
#include "units.h"

void report_opts_init(struct profile_filter *f)
{
	*f = (struct profile_filter){ .from_s = -1, .to_s = -1 };
}

static int bad(const char *what, const char *value)
{
	client_error("invalid %s '%s'", what, value);
	return 2;
}

int report_opts_parse(struct profile_filter *f, int opt, const char *value)
{
	switch (opt) {
	case REPORT_OPT_THREAD: f->thread = value; break;
	case REPORT_OPT_CPU: f->cpu_only = true; break;
	case REPORT_OPT_FROM:
		if (units_parse_duration(value, &f->from_s) < 0)
			return bad("--from (a time from the session start, like 10s)", value);
		break;
	case REPORT_OPT_TO:
		if (units_parse_duration(value, &f->to_s) < 0)
			return bad("--to (a time from the session start, like 20s)", value);
		break;
	default:
		return -1;
	}
	return 0;
}

int report_opts_check(const struct profile_filter *f)
{
	if (f->to_s >= 0 && f->from_s > f->to_s) {
		client_error("--from is after --to");
		return 2;
	}
	return 0;
}

int report_opts_load(const char *session, const struct profile_filter *f,
		     sqlite3 **db, struct profile **p)
{
	char *path = paths_default_db(), *cause = NULL;
	int64_t id;
	int rc = 0;

	*db = NULL;
	*p = NULL;
	if (db_open(path, DB_READ_ONLY, db, &cause) < 0 ||
	    profile_resolve(*db, session, &id, &cause) < 0 ||
	    profile_load(*db, id, f, p, &cause) < 0) {
		client_error("%s", cause);
		rc = 1;
	}
	free(cause);
	free(path);
	return rc;
}
