/*
 * store_write: writing a run of batches (see store_impl.h).
 *
 * A run is written in one transaction, each session's part in its own
 * savepoint, so a statement that fails rolls back only that session.  Disk
 * full and I/O errors mostly show at COMMIT, though (the WAL is written
 * then), where nothing says whose data did not fit: then every session of
 * the run is written again in a transaction of its own, and only those
 * whose own transaction fails are failed.  Batches are freed only once
 * written, and each thread's samples not yet in a chunk (a codec_buf) are
 * copied before a transaction first touches them, so that a rollback can
 * put them back.
 *
 * Raw samples go to sample_chunks one row per CHUNK_SAMPLES samples of a
 * thread; counts are summed in memory per session and run before their
 * upserts.
 */
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"
#include "xalloc.h"

#define CHUNK_SAMPLES	1000

/* ---- per-thread pending samples ----------------------------------------- */

static struct thread_buf *thread_buf(struct sess *s, uint32_t thread_id)
{
	if (thread_id >= s->nthreads) {
		size_t n = (size_t)thread_id + 1;

		s->threads = xreallocarray(s->threads, n, sizeof *s->threads);
		memset(s->threads + s->nthreads, 0,
		       (n - s->nthreads) * sizeof *s->threads);
		s->nthreads = n;
	}
	return &s->threads[thread_id];
}

static void copy_pending(struct pending *to, const struct pending *from)
{
	*to = *from;
	to->buf.data = NULL;
	to->buf.cap = from->buf.len;
	if (from->buf.len != 0) {
		to->buf.data = xmalloc(from->buf.len);
		memcpy(to->buf.data, from->buf.data, from->buf.len);
	}
}

/* Keeps a copy of what the open transaction is about to change. */
static void save_thread(struct sess *s, uint32_t thread_id)
{
	struct thread_buf *tb = thread_buf(s, thread_id);

	if (tb->saved)
		return;
	copy_pending(&tb->undo, &tb->cur);
	tb->saved = true;
	if (s->ntouched == s->touched_cap) {
		s->touched_cap = s->touched_cap ? s->touched_cap * 2 : 16;
		s->touched = xreallocarray(s->touched, s->touched_cap,
					   sizeof *s->touched);
	}
	s->touched[s->ntouched++] = thread_id;
}

/* After the transaction: keep what it did (committed), or undo it. */
void store_settle_threads(struct sess *s, bool committed)
{
	for (size_t i = 0; i < s->ntouched; i++) {
		struct thread_buf *tb = &s->threads[s->touched[i]];

		if (committed) {
			codec_free(&tb->undo.buf);
		} else {
			codec_free(&tb->cur.buf);
			tb->cur = tb->undo;
		}
		tb->undo = (struct pending){ 0 };
		tb->saved = false;
	}
	s->ntouched = 0;
}

void store_free_threads(struct sess *s)
{
	store_settle_threads(s, true);
	for (size_t i = 0; i < s->nthreads; i++)
		codec_free(&s->threads[i].cur.buf);
	free(s->threads);
	s->threads = NULL;
	s->nthreads = 0;
}

static int write_chunk(struct store *st, int64_t session_id,
		       uint32_t thread_id, struct pending *p)
{
	sqlite3_stmt *stmt = st->stmt[S_CHUNK];
	int rc;

	sqlite3_bind_int64(stmt, 1, session_id);
	sqlite3_bind_int64(stmt, 2, thread_id);
	sqlite3_bind_int64(stmt, 3, (int64_t)p->buf.first_ns);
	sqlite3_bind_int64(stmt, 4, (int64_t)p->buf.last_ns);
	sqlite3_bind_int64(stmt, 5, (int64_t)p->buf.count);
	sqlite3_bind_blob(stmt, 6, p->buf.data, (int)p->buf.len, SQLITE_STATIC);
	if ((rc = store_step(st, stmt)) != 0)
		return rc;
	p->floor_ns = p->buf.last_ns;
	codec_reset(&p->buf);
	return 0;
}

static int append_sample(struct store *st, struct sess *s,
			 const struct store_sample *smp)
{
	struct codec_sample cs = {
		smp->time_ns, smp->stack_id, smp->state,
	};
	struct pending *p;

	save_thread(s, smp->thread_id);
	p = &s->threads[smp->thread_id].cur;
	/* A chunk's key is its first time: keep it after the previous one's. */
	if (p->buf.count == 0 && cs.time_ns <= p->floor_ns && p->floor_ns != 0)
		cs.time_ns = p->floor_ns + 1;
	codec_append(&p->buf, &cs);
	if (p->buf.count < CHUNK_SAMPLES)
		return 0;
	return write_chunk(st, s->id, smp->thread_id, p);
}

/* Writes every thread's partial chunk (the session ends). */
int store_write_partial_chunks(struct store *st, struct sess *s)
{
	int rc;

	for (uint32_t t = 0; t < s->nthreads; t++) {
		if (s->threads[t].cur.buf.count == 0)
			continue;
		save_thread(s, t);
		if ((rc = write_chunk(st, s->id, t, &s->threads[t].cur)) != 0)
			return rc;
	}
	return 0;
}

/* ---- counts, summed in memory per session and run ---------------------- */

static size_t count_hash(uint32_t thread_id, uint32_t stack_id, char state)
{
	uint64_t h = ((uint64_t)thread_id << 32 | stack_id) * 0x9e3779b97f4a7c15ull;

	return (size_t)((h >> 32) ^ (h & 0xffffffffu) ^ (unsigned char)state);
}

static void count_grow(struct store *st)
{
	struct count *old = st->counts;
	size_t oldcap = st->counts_cap;

	st->counts_cap = oldcap ? oldcap * 2 : 1024;
	st->counts = xcalloc(st->counts_cap, sizeof *st->counts);
	st->count_used = xreallocarray(st->count_used, st->counts_cap,
				       sizeof *st->count_used);
	st->ncounts = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].state != 0) {
			size_t j = count_hash(old[i].thread_id, old[i].stack_id,
					      old[i].state);

			for (j &= st->counts_cap - 1; st->counts[j].state != 0;
			     j = (j + 1) & (st->counts_cap - 1))
				;
			st->counts[j] = old[i];
			st->count_used[st->ncounts++] = (uint32_t)j;
		}
	free(old);
}

static void count_add(struct store *st, const struct store_sample *smp)
{
	char state = smp->state != 0 ? smp->state : '?';
	size_t i;

	if ((st->ncounts + 1) * 2 > st->counts_cap)
		count_grow(st);
	for (i = count_hash(smp->thread_id, smp->stack_id, state) &
		 (st->counts_cap - 1);
	     st->counts[i].state != 0; i = (i + 1) & (st->counts_cap - 1)) {
		struct count *c = &st->counts[i];

		if (c->thread_id == smp->thread_id &&
		    c->stack_id == smp->stack_id && c->state == state) {
			c->n++;
			return;
		}
	}
	st->counts[i] = (struct count){ smp->thread_id, smp->stack_id, 1, state };
	st->count_used[st->ncounts++] = (uint32_t)i;
}

static void count_clear(struct store *st)
{
	for (size_t i = 0; i < st->ncounts; i++)
		st->counts[st->count_used[i]].state = 0;
	st->ncounts = 0;
}

/* Upserts the summed counts and empties the table, even on failure. */
static int flush_counts(struct store *st, int64_t session_id)
{
	sqlite3_stmt *stmt = st->stmt[S_COUNT];
	int rc = 0;

	for (size_t i = 0; i < st->ncounts && rc == 0; i++) {
		struct count *c = &st->counts[st->count_used[i]];

		sqlite3_bind_int64(stmt, 1, session_id);
		sqlite3_bind_int64(stmt, 2, c->thread_id);
		sqlite3_bind_int64(stmt, 3, c->stack_id);
		sqlite3_bind_text(stmt, 4, &c->state, 1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 5, c->n);
		rc = store_step(st, stmt);
	}
	count_clear(st);
	return rc;
}

/* ---- writing batches ---------------------------------------------------- */

static int insert_threads(struct store *st, const struct store_batch *b)
{
	sqlite3_stmt *stmt = st->stmt[S_THREAD];
	int rc = 0;

	for (size_t i = 0; i < b->nthreads && rc == 0; i++) {
		const struct store_thread *t = &b->threads[i];

		sqlite3_bind_int64(stmt, 1, b->session_id);
		sqlite3_bind_int64(stmt, 2, t->id);
		sqlite3_bind_int64(stmt, 3, t->pid);
		sqlite3_bind_int64(stmt, 4, t->tid);
		sqlite3_bind_text(stmt, 5, t->name, (int)strnlen(t->name, sizeof t->name),
				  SQLITE_STATIC);
		rc = store_step(st, stmt);
	}
	return rc;
}

static int insert_frame(struct store *st, int64_t session_id,
			const struct intern_frame *f)
{
	sqlite3_stmt *stmt = st->stmt[S_FRAME];

	sqlite3_bind_int64(stmt, 1, session_id);
	sqlite3_bind_int64(stmt, 2, f->id);
	if (f->module_id >= 0)
		sqlite3_bind_int64(stmt, 3, f->module_id);
	/* Addresses above 2^63 (kernel) read back negative: cast to uint64. */
	sqlite3_bind_int64(stmt, 4, (int64_t)f->address);
	sqlite3_bind_text(stmt, 5, f->func, -1, SQLITE_STATIC);
	store_bind_text(stmt, 6, f->file);
	if (f->line > 0)
		sqlite3_bind_int(stmt, 7, f->line);
	sqlite3_bind_int(stmt, 8, f->inlined);
	return store_step(st, stmt);
}

static int insert_defs(struct store *st, int64_t session_id,
		       const struct intern_defs *d)
{
	sqlite3_stmt *mod = st->stmt[S_MODULE], *node = st->stmt[S_NODE];
	int rc = 0;

	for (size_t i = 0; i < d->nmodules && rc == 0; i++) {
		sqlite3_bind_int64(mod, 1, session_id);
		sqlite3_bind_int64(mod, 2, d->modules[i].id);
		sqlite3_bind_text(mod, 3, d->modules[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_text(mod, 4, d->modules[i].build_id, -1, SQLITE_STATIC);
		rc = store_step(st, mod);
	}
	for (size_t i = 0; i < d->nframes && rc == 0; i++)
		rc = insert_frame(st, session_id, &d->frames[i]);
	for (size_t i = 0; i < d->nnodes && rc == 0; i++) {
		sqlite3_bind_int64(node, 1, session_id);
		sqlite3_bind_int64(node, 2, d->nodes[i].id);
		sqlite3_bind_int64(node, 3, d->nodes[i].parent_id);
		sqlite3_bind_int64(node, 4, d->nodes[i].frame_id);
		rc = store_step(st, node);
	}
	return rc;
}

static int write_totals(struct store *st, const struct store_batch *b)
{
	sqlite3_stmt *stmt = st->stmt[S_TOTALS];

	sqlite3_bind_int64(stmt, 1, b->session_id);
	sqlite3_bind_int64(stmt, 2, (int64_t)b->ticks);
	sqlite3_bind_int64(stmt, 3, (int64_t)b->thread_samples);
	sqlite3_bind_int64(stmt, 4, (int64_t)b->late_ticks);
	sqlite3_bind_int64(stmt, 5, (int64_t)b->eintr_caused);
	sqlite3_bind_int64(stmt, 6, (int64_t)b->kernel_samples);
	sqlite3_bind_int64(stmt, 7, (int64_t)b->stopped_samples);
	return store_step(st, stmt);
}

/* One session's batches of the run; the caller opened a (save)point. */
static int write_group(struct store *st, struct group *g)
{
	int rc = 0;

	for (size_t i = 0; i < g->n && rc == 0; i++) {
		const struct store_batch *b = g->b[i];

		if ((rc = insert_threads(st, b)) != 0 ||
		    (rc = insert_defs(st, b->session_id, &b->defs)) != 0)
			break;
		for (size_t j = 0; j < b->nsamples && rc == 0; j++) {
			count_add(st, &b->samples[j]);
			rc = append_sample(st, g->s, &b->samples[j]);
		}
	}
	if (rc != 0) {
		count_clear(st);
		return rc;
	}
	if ((rc = flush_counts(st, g->s->id)) != 0)
		return rc;
	return write_totals(st, g->b[g->n - 1]);
}

/* ---- runs of batches ---------------------------------------------------- */

void store_group_batch(struct store *st, struct store_batch *b)
{
	struct sess *s = store_find_sess(st, b->session_id);
	struct group *g = NULL;

	if (s == NULL || s->ended || store_sess_failed(st, s)) {
		store_batch_free(b);
		return;
	}
	for (size_t i = 0; i < st->ngroups && g == NULL; i++)
		if (st->groups[i].s == s)
			g = &st->groups[i];
	if (g == NULL) {
		if (st->ngroups == st->groups_cap) {
			st->groups_cap = st->groups_cap ? st->groups_cap * 2 : 8;
			st->groups = xreallocarray(st->groups, st->groups_cap,
						   sizeof *st->groups);
			memset(st->groups + st->ngroups, 0,
			       (st->groups_cap - st->ngroups) * sizeof *st->groups);
		}
		g = &st->groups[st->ngroups++];
		g->s = s;
		g->failed = false;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 8;
		g->b = xreallocarray(g->b, g->cap, sizeof *g->b);
	}
	g->b[g->n++] = b;
}

static void fail_group(struct store *st, struct group *g)
{
	store_settle_threads(g->s, false);
	g->failed = true;
	store_fail_sess(st, g->s, st->err);
}

/*
 * Every session of the run in one transaction, each in a savepoint.  Returns
 * false when the transaction as a whole failed (COMMIT, or an error after
 * which SQLite rolled everything back).
 */
static bool write_together(struct store *st)
{
	if (store_run(st, S_BEGIN) != 0)
		return false;
	for (size_t i = 0; i < st->ngroups; i++) {
		struct group *g = &st->groups[i];
		int rc = store_run(st, S_SAVEPOINT);

		if (rc == 0 && (rc = write_group(st, g)) == 0)
			rc = store_run(st, S_RELEASE);
		if (rc == 0)
			continue;
		if (sqlite3_get_autocommit(st->db))
			return false;
		if (store_run(st, S_ROLLBACK_TO) != 0 ||
		    store_run(st, S_RELEASE) != 0) {
			store_rollback(st);
			return false;
		}
		fail_group(st, g);
	}
	if (store_run(st, S_COMMIT) == 0)
		return true;
	store_rollback(st);
	return false;
}

/* Each session of the run in a transaction of its own. */
static void write_apart(struct store *st)
{
	for (size_t i = 0; i < st->ngroups; i++)
		if (!st->groups[i].failed)
			store_settle_threads(st->groups[i].s, false);
	for (size_t i = 0; i < st->ngroups; i++) {
		struct group *g = &st->groups[i];
		int rc;

		if (g->failed)
			continue;
		if ((rc = store_run(st, S_BEGIN)) == 0 &&
		    (rc = write_group(st, g)) == 0)
			rc = store_run(st, S_COMMIT);
		if (rc == 0) {
			store_settle_threads(g->s, true);
			continue;
		}
		store_rollback(st);
		fail_group(st, g);
	}
}

void store_write_run(struct store *st)
{
	if (st->ngroups == 0)
		return;
	if (write_together(st)) {
		for (size_t i = 0; i < st->ngroups; i++)
			if (!st->groups[i].failed)
				store_settle_threads(st->groups[i].s, true);
	} else {
		write_apart(st);
	}
	for (size_t i = 0; i < st->ngroups; i++) {
		struct group *g = &st->groups[i];

		if (g->failed)
			store_write_failed(st, g->s);
		for (size_t j = 0; j < g->n; j++)
			store_batch_free(g->b[j]);
		g->n = 0;
	}
	st->ngroups = 0;
}
