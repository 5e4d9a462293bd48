#include "profile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "samplecodec.h"
#include "xalloc.h"

/* Ids are dense and small: a larger one means a damaged file. */
#define MAX_ID 100000000

/* Copies s into the profile's string storage (NULL stays NULL). */
static const char *keep(struct profile *p, const unsigned char *s)
{
	size_t len;
	char *dst;

	if (s == NULL)
		return NULL;
	len = strlen((const char *)s) + 1;
	if (p->strings_cap - p->strings_len < len) {
		/* Blocks are chained: earlier pointers must stay valid. */
		size_t cap = len > 65536 ? len + sizeof(char *) : 65536;
		char *block = xmalloc(cap);

		memcpy(block, &p->strings, sizeof(char *));
		p->strings = block;
		p->strings_len = sizeof(char *);
		p->strings_cap = cap;
	}
	dst = p->strings + p->strings_len;
	memcpy(dst, s, len);
	p->strings_len += len;
	return dst;
}

static int fail(sqlite3 *db, char **cause)
{
	*cause = xasprintf("cannot read the database: %s", sqlite3_errmsg(db));
	return -EIO;
}

int profile_resolve(sqlite3 *db, const char *spec, int64_t *id, char **cause)
{
	sqlite3_stmt *st;
	char *end;
	int rc;

	if (strcmp(spec, "last") == 0) {
		if (sqlite3_prepare_v2(db, "SELECT max(id) FROM sessions", -1, &st, NULL) != SQLITE_OK)
			return fail(db, cause);
		rc = sqlite3_step(st);
		*id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_finalize(st);
		if (*id > 0)
			return 0;
		*cause = xstrdup("no sessions recorded yet");
		return -ENOENT;
	}
	errno = 0;
	*id = strtoll(spec, &end, 10);
	if (errno != 0 || end == spec || *end != '\0' || *id <= 0) {
		*cause = xasprintf("'%s' is not a session (a number, or 'last')", spec);
		return -EINVAL;
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sessions WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, *id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	*cause = xasprintf("no session %" PRId64 " (see 'perch sessions')", *id);
	return -ENOENT;
}

static int load_session(sqlite3 *db, struct profile *p, char **cause)
{
	sqlite3_stmt *st;
	int rc;

	/* A version-1 file (read as it is) has no sampling columns. */
	bool v2 = db_schema_version(db) >= 2;

	if (sqlite3_prepare_v2(db, v2 ?
			       "SELECT pid, name, exe, cmdline, status, error, mode, "
			       "started_ns, ended_ns, rate_hz, duration_s, samples, "
			       "thread_samples, late_samples, target_cpu_ns, eintr_caused, "
			       "schedule_id, sampling, max_stops, kernel_samples, stopped_samples "
			       "FROM sessions WHERE id = ?" :
			       "SELECT pid, name, exe, cmdline, status, error, mode, "
			       "started_ns, ended_ns, rate_hz, duration_s, samples, "
			       "thread_samples, late_samples, target_cpu_ns, eintr_caused, "
			       "schedule_id, NULL, -2, 0, 0 FROM sessions WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, p->id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		*cause = xasprintf("no session %" PRId64, p->id);
		return -ENOENT;
	}
	p->pid = sqlite3_column_int(st, 0);
	p->name = keep(p, sqlite3_column_text(st, 1));
	p->exe = keep(p, sqlite3_column_text(st, 2));
	p->cmdline = keep(p, sqlite3_column_text(st, 3));
	p->status = keep(p, sqlite3_column_text(st, 4));
	p->error = keep(p, sqlite3_column_text(st, 5));
	p->mode = keep(p, sqlite3_column_text(st, 6));
	p->started_ns = (uint64_t)sqlite3_column_int64(st, 7);
	p->ended_ns = (uint64_t)sqlite3_column_int64(st, 8);
	p->rate_hz = sqlite3_column_double(st, 9);
	p->duration_s = sqlite3_column_double(st, 10);
	p->ticks = sqlite3_column_int64(st, 11);
	p->thread_samples = sqlite3_column_int64(st, 12);
	p->late_ticks = sqlite3_column_int64(st, 13);
	p->target_cpu_ns = sqlite3_column_type(st, 14) == SQLITE_NULL ? -1 :
			   sqlite3_column_int64(st, 14);
	p->eintr_caused = sqlite3_column_int64(st, 15);
	p->schedule_id = sqlite3_column_type(st, 16) == SQLITE_NULL ? -1 :
			 sqlite3_column_int64(st, 16);
	p->sampling = keep(p, sqlite3_column_text(st, 17));
	p->max_stops = sqlite3_column_type(st, 18) == SQLITE_NULL ? -2 :
		       sqlite3_column_int64(st, 18);
	p->kernel_samples = sqlite3_column_int64(st, 19);
	p->stopped_samples = sqlite3_column_int64(st, 20);
	sqlite3_finalize(st);
	if (p->rate_hz <= 0)
		p->rate_hz = 99;
	return 0;
}

/*
 * The largest id of a per-session table, to size an array indexed by id.
 * perchd numbers each session's rows from 0 (one interner per session), so
 * the largest id of a sound file is below the row count; an id far above it
 * is damage, and must not make a 16 KiB file ask for gigabytes.
 */
static int max_id(sqlite3 *db, const char *table, int64_t session, size_t *out,
		  char **cause)
{
	char *sql = xasprintf("SELECT coalesce(max(id), 0), count(*) FROM %s WHERE session_id = ?",
			      table);
	sqlite3_stmt *st;
	int64_t v, rows = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		free(sql);
		return fail(db, cause);
	}
	free(sql);
	sqlite3_bind_int64(st, 1, session);
	v = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		rows = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (v < 0 || v > MAX_ID || v > 2 * rows + 1024) {
		*cause = xasprintf("the database is damaged (%s id %" PRId64 ")", table, v);
		return -EIO;
	}
	*out = (size_t)v + 1;
	return 0;
}

/*
 * Whether a row's id indexes an array that max_id sized.  In a damaged file
 * the index max_id read may disagree with the rows, or an id may be text.
 */
static bool id_fits(int64_t id, size_t n)
{
	return id >= 0 && (uint64_t)id < n;
}

static int load_frames(sqlite3 *db, struct profile *p, char **cause)
{
	const char **modules = NULL;
	size_t nmodules = 0;
	sqlite3_stmt *st;
	int rc;

	if ((rc = max_id(db, "modules", p->id, &nmodules, cause)) < 0 ||
	    (rc = max_id(db, "frames", p->id, &p->nframes, cause)) < 0)
		return rc;
	modules = xcalloc(nmodules, sizeof *modules);
	if (sqlite3_prepare_v2(db, "SELECT id, path FROM modules WHERE session_id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, p->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		if (!id_fits(id, nmodules))
			goto damaged;
		modules[id] = keep(p, sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	p->frames = xcalloc(p->nframes, sizeof *p->frames);
	if (sqlite3_prepare_v2(db, "SELECT id, module_id, address, func, file, line, inlined "
			       "FROM frames WHERE session_id = ?", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, p->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t m = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 :
			    sqlite3_column_int64(st, 1);
		struct pframe *f;

		if (!id_fits(id, p->nframes))
			goto damaged;
		f = &p->frames[id];
		f->module = m >= 0 && (size_t)m < nmodules ? modules[m] : NULL;
		f->address = (uint64_t)sqlite3_column_int64(st, 2);
		f->func = keep(p, sqlite3_column_text(st, 3));
		f->file = keep(p, sqlite3_column_text(st, 4));
		f->line = sqlite3_column_int(st, 5);
		f->inlined = sqlite3_column_int(st, 6) != 0;
	}
	sqlite3_finalize(st);
	free(modules);
	for (size_t i = 0; i < p->nframes; i++)
		if (p->frames[i].func == NULL)
			p->frames[i].func = "[unknown]";
	return 0;
fail:
	free(modules);
	return fail(db, cause);
damaged:
	sqlite3_finalize(st);
	free(modules);
	*cause = xasprintf("the database is damaged (frames of session %" PRId64 ")", p->id);
	return -EIO;
}

static int load_nodes(sqlite3 *db, struct profile *p, char **cause)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = max_id(db, "stack_nodes", p->id, &p->nnodes, cause)) < 0)
		return rc;
	p->nodes = xcalloc(p->nnodes, sizeof *p->nodes);
	if (sqlite3_prepare_v2(db, "SELECT id, parent_id, frame_id FROM stack_nodes "
			       "WHERE session_id = ? ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, p->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t parent = sqlite3_column_int64(st, 1);
		int64_t frame = sqlite3_column_int64(st, 2);
		struct pnode *n;

		/* A parent is always created before its children: ids grow. */
		if (!id_fits(id, p->nnodes) || parent < 0 || parent >= id || frame <= 0 ||
		    (size_t)frame >= p->nframes ||
		    (parent > 0 && p->nodes[parent].frame == 0)) {
			sqlite3_finalize(st);
			*cause = xasprintf("the database is damaged (stack node %" PRId64 ")", id);
			return -EIO;
		}
		n = &p->nodes[id];
		n->parent = (uint32_t)parent;
		n->frame = (uint32_t)frame;
		n->depth = parent == 0 ? 1 : p->nodes[parent].depth + 1;
	}
	sqlite3_finalize(st);
	return 0;
}

static int load_threads(sqlite3 *db, struct profile *p, char **cause)
{
	sqlite3_stmt *st;
	size_t cap = 0;

	if (sqlite3_prepare_v2(db, "SELECT id, pid, tid, name FROM threads "
			       "WHERE session_id = ? ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, p->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		struct pthread_info *t;

		/* select_threads sizes an array by the largest id. */
		if (id < 0 || id > MAX_ID) {
			sqlite3_finalize(st);
			*cause = xasprintf("the database is damaged (thread %" PRId64 ")", id);
			return -EIO;
		}
		if (p->nthreads == cap) {
			cap = cap ? cap * 2 : 16;
			p->threads = xreallocarray(p->threads, cap, sizeof *p->threads);
		}
		t = &p->threads[p->nthreads++];
		t->id = (uint32_t)id;
		t->pid = sqlite3_column_int(st, 1);
		t->tid = sqlite3_column_int(st, 2);
		t->name = keep(p, sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	return 0;
}

/* Which threads the filter keeps: a flag per thread id. */
static int select_threads(struct profile *p, const char *spec, bool **keep_out,
			  size_t *n_out, char **cause)
{
	size_t n = 0;
	bool *keep_thread, any = false;
	char *end;
	long tid = spec ? strtol(spec, &end, 10) : 0;
	bool numeric = spec && end != spec && *end == '\0';

	for (size_t i = 0; i < p->nthreads; i++)
		if (p->threads[i].id >= n)
			n = p->threads[i].id + 1;
	keep_thread = xcalloc(n ? n : 1, sizeof *keep_thread);
	for (size_t i = 0; i < p->nthreads; i++) {
		const struct pthread_info *t = &p->threads[i];
		bool match = spec == NULL || (numeric ? t->tid == tid :
					      t->name && strcmp(t->name, spec) == 0);

		keep_thread[t->id] = match;
		any |= match;
	}
	if (!any && spec != NULL) {
		free(keep_thread);
		*cause = xasprintf("no thread '%s' in session %" PRId64
				   " (give a thread id or name; see 'perch show')", spec, p->id);
		return -ENOENT;
	}
	*keep_out = keep_thread;
	*n_out = n;
	return 0;
}

/*
 * Samples of a stack with no node (frame 0; only the root has none) come
 * from a damaged file: the queries walk every counted stack to the root.
 */
static void count(struct profile *p, uint64_t stack, uint64_t samples)
{
	if (stack < p->nnodes && (stack == 0 || p->nodes[stack].frame != 0)) {
		p->self[stack] += samples;
		p->total += samples;
	}
}

static int load_counts(sqlite3 *db, struct profile *p, const bool *keep_thread,
		       size_t nkeep, bool cpu_only, char **cause)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "SELECT thread_id, stack_id, state, samples FROM counts "
			       "WHERE session_id = ?", -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, p->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t thread = sqlite3_column_int64(st, 0);
		const unsigned char *state = sqlite3_column_text(st, 2);

		if (thread < 0 || (size_t)thread >= nkeep || !keep_thread[thread] ||
		    (cpu_only && (state == NULL || state[0] != 'R')))
			continue;
		count(p, (uint64_t)sqlite3_column_int64(st, 1),
		      (uint64_t)sqlite3_column_int64(st, 3));
	}
	sqlite3_finalize(st);
	return 0;
}

struct window {
	struct profile *p;
	uint64_t from, to;
	bool cpu_only;
};

static int in_window(void *arg, const struct codec_sample *s)
{
	struct window *w = arg;

	if (s->time_ns >= w->from && s->time_ns <= w->to &&
	    (!w->cpu_only || s->state == 'R'))
		count(w->p, s->stack_id, 1);
	return 0;
}

static int load_window(sqlite3 *db, struct profile *p, const bool *keep_thread,
		       size_t nkeep, const struct profile_filter *f, char **cause)
{
	struct window w = { p, p->started_ns, UINT64_MAX, f->cpu_only };
	sqlite3_stmt *st;

	if (f->from_s > 0)
		w.from = p->started_ns + (uint64_t)(f->from_s * 1e9);
	if (f->to_s >= 0)
		w.to = p->started_ns + (uint64_t)(f->to_s * 1e9);
	if (sqlite3_prepare_v2(db, "SELECT thread_id, first_ns, data FROM sample_chunks "
			       "WHERE session_id = ? AND last_ns >= ? AND first_ns <= ?",
			       -1, &st, NULL) != SQLITE_OK)
		return fail(db, cause);
	sqlite3_bind_int64(st, 1, p->id);
	sqlite3_bind_int64(st, 2, (int64_t)w.from);
	sqlite3_bind_int64(st, 3, w.to > INT64_MAX ? INT64_MAX : (int64_t)w.to);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t thread = sqlite3_column_int64(st, 0);

		if (thread < 0 || (size_t)thread >= nkeep || !keep_thread[thread])
			continue;
		if (codec_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
				 (uint64_t)sqlite3_column_int64(st, 1), in_window, &w) < 0) {
			sqlite3_finalize(st);
			*cause = xasprintf("the database is damaged (samples of session %" PRId64 ")",
					   p->id);
			return -EIO;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

static int load(sqlite3 *db, int64_t id, const struct profile_filter *f,
		struct profile **out, char **cause)
{
	struct profile *p = xcalloc(1, sizeof *p);
	bool *keep_thread = NULL;
	size_t nkeep = 0;
	int rc;

	p->id = id;
	*cause = NULL;
	if ((rc = load_session(db, p, cause)) < 0 || (rc = load_frames(db, p, cause)) < 0 ||
	    (rc = load_nodes(db, p, cause)) < 0 || (rc = load_threads(db, p, cause)) < 0 ||
	    (rc = select_threads(p, f->thread, &keep_thread, &nkeep, cause)) < 0)
		goto out_free;
	p->self = xcalloc(p->nnodes, sizeof *p->self);
	if (f->from_s > 0 || f->to_s >= 0)
		rc = load_window(db, p, keep_thread, nkeep, f, cause);
	else
		rc = load_counts(db, p, keep_thread, nkeep, f->cpu_only, cause);
	free(keep_thread);
	if (rc < 0)
		goto out_free;
	*out = p;
	return 0;
out_free:
	profile_free(p);
	return rc;
}

/*
 * In one read transaction: outside one, every query sees the commits made
 * since the last, and a session being recorded gets frames and stack nodes
 * between max_id and the rows, which would look like a damaged file.
 */
int profile_load(sqlite3 *db, int64_t id, const struct profile_filter *f,
		 struct profile **out, char **cause)
{
	bool txn = sqlite3_get_autocommit(db) &&
		   sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	int rc = load(db, id, f, out, cause);

	if (txn)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

void profile_free(struct profile *p)
{
	if (p == NULL)
		return;
	while (p->strings != NULL) {
		char *next;

		memcpy(&next, p->strings, sizeof next);
		free(p->strings);
		p->strings = next;
	}
	free(p->frames);
	free(p->nodes);
	free(p->threads);
	free(p->self);
	free(p);
}

static bool system_module(const char *m)
{
	static const char *const dirs[] = { "/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/",
					    "/usr/libexec/" };

	if (m == NULL)
		return false;
	if (m[0] == '[')
		return true;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (strncmp(m, dirs[i], strlen(dirs[i])) == 0)
			return true;
	return false;
}

bool profile_path_match(const char *s, const char *paths)
{
	const char *p = paths;

	while (s != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len > 0 && memmem(s, strlen(s), p, len) != NULL)
			return true;
		p += len + (comma != NULL);
	}
	return false;
}

void profile_mark_libraries(struct profile *p, const char *paths)
{
	for (size_t i = 1; i < p->nframes; i++) {
		struct pframe *f = &p->frames[i];

		f->library = paths ? !profile_path_match(f->file, paths) &&
				     !profile_path_match(f->module, paths)
				   : system_module(f->module);
	}
}

double profile_seconds(const struct profile *p, uint64_t samples)
{
	return (double)samples / p->rate_hz;
}
