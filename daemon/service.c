#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "log.h"
#include "protocol.h"
#include "session.h"
#include "store.h"
#include "symbolizer.h"
#include "xalloc.h"

#define ENDED_KEPT 64
#define TRIM_EVERY_MS 60000

struct service {
	uv_loop_t *loop;
	struct service_opts opts;
	char *db_path, *socket_path;
	struct store *store;
	uint64_t started_ns;
	/* Sessions sampling now. */
	struct session **active;
	size_t nactive, active_cap;
	/* Sessions whose sampler ended, handed over by their threads. */
	pthread_mutex_t ended_lock;
	struct session **ended;
	size_t nended, ended_cap;
	uv_async_t ended_async;
	/* Schedules, as stored; the timer fires the earliest. */
	struct store_schedule *schedules;
	size_t nschedules;
	uv_timer_t schedule_timer;
	uv_timer_t shutdown_timer;
	uv_timer_t trim_timer;
	/* The last sessions that ended, for clients following one to its end. */
	json_object *past[ENDED_KEPT];
	size_t past_next;
	bool shutting_down;
	unsigned int open_handles;
	void (*done)(void *arg);
	void *done_arg;
};

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void add_active(struct service *sv, struct session *s)
{
	if (sv->nactive == sv->active_cap) {
		sv->active_cap = sv->active_cap ? sv->active_cap * 2 : 8;
		sv->active = xreallocarray(sv->active, sv->active_cap, sizeof *sv->active);
	}
	sv->active[sv->nactive++] = s;
}

static void remove_active(struct service *sv, struct session *s)
{
	for (size_t i = 0; i < sv->nactive; i++) {
		if (sv->active[i] == s) {
			sv->active[i] = sv->active[--sv->nactive];
			return;
		}
	}
}

static struct session *find_active(struct service *sv, int64_t id, pid_t pid)
{
	for (size_t i = 0; i < sv->nactive; i++)
		if ((id > 0 && session_id(sv->active[i]) == id) ||
		    (pid > 0 && session_pid(sv->active[i]) == pid))
			return sv->active[i];
	return NULL;
}

/* ---- sessions ending ----------------------------------------------------- */

/* On the session's sampler thread: hand the session to the loop. */
static void on_session_end(struct session *s, void *arg)
{
	struct service *sv = arg;

	pthread_mutex_lock(&sv->ended_lock);
	if (sv->nended == sv->ended_cap) {
		sv->ended_cap = sv->ended_cap ? sv->ended_cap * 2 : 8;
		sv->ended = xreallocarray(sv->ended, sv->ended_cap, sizeof *sv->ended);
	}
	sv->ended[sv->nended++] = s;
	pthread_mutex_unlock(&sv->ended_lock);
	uv_async_send(&sv->ended_async);
}

static void retention(struct service *sv, int64_t schedule_id)
{
	char *cause = NULL;
	int deleted = 0;

	for (size_t i = 0; schedule_id >= 0 && i < sv->nschedules; i++) {
		const struct store_schedule *sc = &sv->schedules[i];

		if (sc->id == schedule_id && (sc->keep_count > 0 || sc->keep_age_s > 0) &&
		    store_retention(sv->store, sc->id, sc->keep_count, sc->keep_age_s,
				    real_ns(), &deleted, &cause) < 0) {
			log_error("retention of schedule %" PRId64 ": %s", sc->id, cause);
			free(cause);
			cause = NULL;
		}
	}
	if ((sv->opts.keep_count > 0 || sv->opts.keep_age_s > 0) &&
	    store_retention(sv->store, -1, sv->opts.keep_count, sv->opts.keep_age_s,
			    real_ns(), &deleted, &cause) < 0) {
		log_error("retention: %s", cause);
		free(cause);
	}
}

static void finish_shutdown(struct service *sv);
static json_object *session_json(const struct session_info *i);

static void on_ended(uv_async_t *h)
{
	struct service *sv = h->data;

	for (;;) {
		struct session_info info;
		struct session *s = NULL;

		pthread_mutex_lock(&sv->ended_lock);
		if (sv->nended > 0)
			s = sv->ended[--sv->nended];
		pthread_mutex_unlock(&sv->ended_lock);
		if (s == NULL)
			break;
		session_info(s, &info);
		json_object_put(sv->past[sv->past_next]);
		sv->past[sv->past_next] = session_json(&info);
		sv->past_next = (sv->past_next + 1) % ENDED_KEPT;
		remove_active(sv, s);
		session_free(s);
		log_info("session %" PRId64 " (pid %d) ended", info.id, (int)info.pid);
		if (!sv->shutting_down)
			retention(sv, info.schedule_id);
	}
	if (sv->shutting_down && sv->nactive == 0)
		finish_shutdown(sv);
}

/* ---- starting sessions --------------------------------------------------- */

static const char *code_of(int rc)
{
	switch (rc) {
	case -ESRCH: return "no-such-process";
	case -EPERM:
	case -EACCES: return "not-permitted";
	case -EBUSY: return "busy";
	case -EINVAL: return "invalid-target";
	default: return "internal";
	}
}

/*
 * Starts a session for a client (uid, gid) or a schedule (requested_by -1).
 * Returns 0 with *out, or a negative errno with *code and *cause.
 */
static int start_session(struct service *sv, const struct session_params *p,
			 uid_t uid, gid_t gid, struct session **out,
			 const char **code, char **cause)
{
	struct session *other = find_active(sv, 0, p->pid);
	int rc;

	if (sv->shutting_down) {
		*code = "shutting-down";
		*cause = xstrdup("the daemon is shutting down");
		return -ESHUTDOWN;
	}
	rc = access_check(p->pid, uid, gid, p->client_pid, cause);
	if (rc == 0 && other != NULL) {
		*cause = xasprintf("process %d is already being profiled by session %" PRId64
				   " ('perch stop %" PRId64 "' ends it)", (int)p->pid,
				   session_id(other), session_id(other));
		rc = -EALREADY;
		*code = "already-profiled";
		return rc;
	}
	if (rc == 0)
		rc = session_start(sv->store, p, on_session_end, sv, out, cause);
	if (rc < 0) {
		*code = code_of(rc);
		return rc;
	}
	add_active(sv, *out);
	log_info("session %" PRId64 ": pid %d at %g Hz%s", session_id(*out),
		 (int)p->pid, p->rate_hz, p->children ? " with children" : "");
	return 0;
}

static char *reply_error(int64_t id, const char *code, char *message)
{
	char *line = proto_reply_error(id, code, message);

	free(message);
	return line;
}

/* session_params.max_stops from the protocol's max_stops (-1: default, 0: all). */
static unsigned int stop_limit(int64_t max_stops)
{
	return max_stops < 0 ? 0 : max_stops == 0 ? UINT_MAX : (unsigned int)max_stops;
}

static char *handle_start(struct service *sv, const struct proto_request *req,
			  const struct peer *peer)
{
	struct session_params p = {
		.pid = req->start.pid, .duration_s = req->start.duration_s,
		.rate_hz = req->start.rate_hz, .children = req->start.children,
		.name = req->start.name, .requested_by = peer->uid, .schedule_id = -1,
		.uid = peer->uid, .gid = peer->gid, .client_pid = peer->pid,
		.max_stops = stop_limit(req->start.max_stops),
		.ptrace_only = req->start.ptrace_only,
	};
	struct session *s;
	const char *code;
	char *cause = NULL;
	json_object *r;

	if (start_session(sv, &p, peer->uid, peer->gid, &s, &code, &cause) < 0)
		return reply_error(req->id, code, cause);
	r = json_object_new_object();
	json_object_object_add(r, "session", json_object_new_int64(session_id(s)));
	json_object_object_add(r, "pid", json_object_new_int(p.pid));
	return proto_reply_ok(req->id, r);
}

static bool may_see(const struct session_info *i, const struct peer *peer)
{
	return access_owns(peer->uid, i->owner_uid) ||
	       (i->requested_by >= 0 && (uid_t)i->requested_by == peer->uid);
}

static char *handle_stop(struct service *sv, const struct proto_request *req,
			 const struct peer *peer)
{
	struct session *s = find_active(sv, req->session, 0);
	struct session_info info;
	json_object *r;

	if (s != NULL)
		session_info(s, &info);
	if (s == NULL || !may_see(&info, peer))
		return reply_error(req->id, "no-such-session",
				   xasprintf("no recording session %" PRId64, req->session));
	session_stop(s);
	r = json_object_new_object();
	json_object_object_add(r, "session", json_object_new_int64(req->session));
	return proto_reply_ok(req->id, r);
}

static json_object *session_json(const struct session_info *i)
{
	json_object *o = json_object_new_object();
	uint64_t now = real_ns();
	uint64_t due = i->ticks + i->late_ticks;

	json_object_object_add(o, "session", json_object_new_int64(i->id));
	json_object_object_add(o, "pid", json_object_new_int(i->pid));
	json_object_object_add(o, "name", i->name ? json_object_new_string(i->name) : NULL);
	json_object_object_add(o, "exe", i->exe ? json_object_new_string(i->exe) : NULL);
	json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)i->started_ns));
	json_object_object_add(o, "elapsed_s", json_object_new_double(
		now > i->started_ns ? (double)(now - i->started_ns) / 1e9 : 0));
	json_object_object_add(o, "duration_s", i->duration_s > 0 ?
			       json_object_new_double(i->duration_s) : NULL);
	json_object_object_add(o, "rate_hz", json_object_new_double(i->rate_hz));
	json_object_object_add(o, "children", json_object_new_boolean(i->children));
	json_object_object_add(o, "samples", json_object_new_int64((int64_t)i->ticks));
	json_object_object_add(o, "thread_samples",
			       json_object_new_int64((int64_t)i->thread_samples));
	json_object_object_add(o, "late_samples", json_object_new_int64((int64_t)i->late_ticks));
	json_object_object_add(o, "late_percent", json_object_new_double(
		due ? 100.0 * (double)i->late_ticks / (double)due : 0));
	json_object_object_add(o, "processes", json_object_new_int((int)i->processes));
	json_object_object_add(o, "threads", json_object_new_int((int)i->threads));
	json_object_object_add(o, "schedule", i->schedule_id >= 0 ?
			       json_object_new_int64(i->schedule_id) : NULL);
	json_object_object_add(o, "status", json_object_new_string(i->status));
	json_object_object_add(o, "error", i->error ? json_object_new_string(i->error) : NULL);
	/* For the visibility check of ended sessions. */
	json_object_object_add(o, "owner_uid", json_object_new_int64(i->owner_uid));
	json_object_object_add(o, "requested_by", i->requested_by >= 0 ?
			       json_object_new_int64(i->requested_by) : NULL);
	return o;
}

static char *handle_status(struct service *sv, const struct proto_request *req,
			   const struct peer *peer)
{
	json_object *r = json_object_new_object(), *arr = json_object_new_array();

	for (size_t i = 0; i < sv->nactive; i++) {
		struct session_info info;

		session_info(sv->active[i], &info);
		if (may_see(&info, peer))
			json_object_array_add(arr, session_json(&info));
	}
	json_object_object_add(r, "sessions", arr);
	arr = json_object_new_array();
	for (size_t i = 0; i < ENDED_KEPT; i++) {
		json_object *e = sv->past[(sv->past_next + i) % ENDED_KEPT], *v;
		struct session_info info = { .requested_by = -1 };

		if (e == NULL)
			continue;
		info.owner_uid = json_object_object_get_ex(e, "owner_uid", &v) ?
				 (uid_t)json_object_get_int64(v) : 0;
		if (json_object_object_get_ex(e, "requested_by", &v) && v != NULL)
			info.requested_by = json_object_get_int64(v);
		if (may_see(&info, peer))
			json_object_array_add(arr, json_object_get(e));
	}
	json_object_object_add(r, "ended", arr);
	return proto_reply_ok(req->id, r);
}

static char *handle_version(struct service *sv, const struct proto_request *req)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "version", json_object_new_string(PERCH_VERSION));
	json_object_object_add(r, "protocol", json_object_new_int(PROTO_VERSION));
	json_object_object_add(r, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(r, "db", json_object_new_string(sv->db_path));
	json_object_object_add(r, "socket", json_object_new_string(sv->socket_path));
	json_object_object_add(r, "uptime_s", json_object_new_double(
		(double)(real_ns() - sv->started_ns) / 1e9));
	return proto_reply_ok(req->id, r);
}

/* ---- schedules ----------------------------------------------------------- */

static void arm_schedules(struct service *sv);

static int reload_schedules(struct service *sv, char **cause)
{
	store_schedules_free(sv->schedules, sv->nschedules);
	sv->schedules = NULL;
	sv->nschedules = 0;
	return store_schedule_list(sv->store, &sv->schedules, &sv->nschedules, cause);
}

static gid_t primary_gid(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	return pw != NULL ? pw->pw_gid : (gid_t)uid;
}

/*
 * One firing.  The target is resolved now, because servers restart and
 * change pid: the oldest matching process is profiled (a server's master,
 * not a short-lived worker).  No match is a skipped run, not an error.
 */
static void fire(struct service *sv, const struct store_schedule *sc, uint64_t now)
{
	struct session_params p = {
		.duration_s = sc->duration_s, .rate_hz = sc->rate_hz,
		.children = sc->children, .name = sc->name,
		.requested_by = -1, .schedule_id = sc->id,
		.max_stops = stop_limit(sc->max_stops), .ptrace_only = sc->ptrace_only,
	};
	const char *code = NULL, *outcome = "skipped";
	char *cause = NULL, *ignored = NULL;
	struct session *s = NULL;
	pid_t *pids = NULL;
	int n = access_find(sc->target_kind, sc->target, &pids);

	p.uid = sc->owner_uid;
	p.gid = primary_gid(sc->owner_uid);
	if (n <= 0) {
		cause = xasprintf("no process matches %s '%s'", sc->target_kind, sc->target);
	} else {
		p.pid = pids[0];
		if (start_session(sv, &p, p.uid, p.gid, &s, &code, &cause) == 0)
			outcome = "started";
		else if (strcmp(code, "already-profiled") != 0 &&
			 strcmp(code, "no-such-process") != 0)
			outcome = "failed";
	}
	if (store_schedule_run(sv->store, sc->id, now, outcome, s ? session_id(s) : -1,
			       cause, &ignored) < 0) {
		log_error("schedule %" PRId64 ": %s", sc->id, ignored);
		free(ignored);
	}
	free(cause);
	free(pids);
}

/*
 * Sessions leave the symbols they loaded to the next ones (see
 * symbolizer.h); this frees what no session has used for ten minutes, so
 * that an idle daemon gives its memory back.
 */
static void on_trim_timer(uv_timer_t *h)
{
	(void)h;
	symbolizer_trim(false);
}

static void on_schedule_timer(uv_timer_t *h)
{
	struct service *sv = h->data;
	uint64_t now = real_ns();
	char *cause = NULL;

	for (size_t i = 0; i < sv->nschedules; i++) {
		struct store_schedule *sc = &sv->schedules[i];
		uint64_t interval = (uint64_t)(sc->interval_s * 1e9);

		if (!sc->enabled || sc->next_ns > now)
			continue;
		fire(sv, sc, now);
		/* After downtime, fire once and resume the rhythm from now. */
		while (sc->next_ns <= now)
			sc->next_ns += interval;
		if (store_schedule_set_next(sv->store, sc->id, sc->next_ns, &cause) < 0) {
			log_error("schedule %" PRId64 ": %s", sc->id, cause);
			free(cause);
			cause = NULL;
		}
	}
	arm_schedules(sv);
}

static void arm_schedules(struct service *sv)
{
	uint64_t now = real_ns(), next = UINT64_MAX;

	for (size_t i = 0; i < sv->nschedules; i++)
		if (sv->schedules[i].enabled && sv->schedules[i].next_ns < next)
			next = sv->schedules[i].next_ns;
	uv_timer_stop(&sv->schedule_timer);
	if (next != UINT64_MAX)
		uv_timer_start(&sv->schedule_timer, on_schedule_timer,
			       next > now ? (next - now + 999999) / 1000000 : 0, 0);
}

static json_object *schedule_json(const struct store_schedule *sc)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "schedule", json_object_new_int64(sc->id));
	json_object_object_add(o, "name", sc->name ? json_object_new_string(sc->name) : NULL);
	json_object_object_add(o, "kind", json_object_new_string(sc->target_kind));
	json_object_object_add(o, "target", json_object_new_string(sc->target));
	json_object_object_add(o, "interval_s", json_object_new_double(sc->interval_s));
	json_object_object_add(o, "duration_s", json_object_new_double(sc->duration_s));
	json_object_object_add(o, "rate_hz", json_object_new_double(sc->rate_hz));
	json_object_object_add(o, "children", json_object_new_boolean(sc->children));
	json_object_object_add(o, "keep_count", sc->keep_count > 0 ?
			       json_object_new_int64(sc->keep_count) : NULL);
	json_object_object_add(o, "keep_age_s", sc->keep_age_s > 0 ?
			       json_object_new_double(sc->keep_age_s) : NULL);
	/* As a session's: null the daemon's default (as many as CPUs), -1 all. */
	json_object_object_add(o, "max_stops", sc->max_stops < 0 ? NULL :
			       json_object_new_int64(sc->max_stops == 0 ? -1 : sc->max_stops));
	json_object_object_add(o, "ptrace_only", json_object_new_boolean(sc->ptrace_only));
	json_object_object_add(o, "owner_uid", json_object_new_int64(sc->owner_uid));
	json_object_object_add(o, "next_ns", json_object_new_int64((int64_t)sc->next_ns));
	return o;
}

static char *handle_schedule_add(struct service *sv, const struct proto_request *req,
				 const struct peer *peer)
{
	const struct proto_schedule *ps = &req->schedule;
	struct store_schedule sc = {
		.name = ps->name, .target_kind = ps->kind, .target = ps->target,
		.interval_s = ps->interval_s, .duration_s = ps->duration_s,
		.rate_hz = ps->rate_hz, .children = ps->children,
		.keep_count = ps->keep_count, .keep_age_s = ps->keep_age_s,
		.max_stops = ps->max_stops, .ptrace_only = ps->ptrace_only,
		.owner_uid = peer->uid, .created_ns = real_ns(), .enabled = true,
	};
	char *cause = NULL;
	json_object *r;

	if (ps->duration_s >= ps->interval_s)
		return reply_error(req->id, "bad-request", xasprintf(
			"duration (%gs) must be shorter than the interval (%gs)",
			ps->duration_s, ps->interval_s));
	sc.next_ns = sc.created_ns + (uint64_t)(ps->interval_s * 1e9);
	if (store_schedule_add(sv->store, &sc, &cause) < 0 ||
	    reload_schedules(sv, &cause) < 0)
		return reply_error(req->id, "internal", cause);
	arm_schedules(sv);
	r = json_object_new_object();
	json_object_object_add(r, "schedule", json_object_new_int64(sc.id));
	json_object_object_add(r, "next_ns", json_object_new_int64((int64_t)sc.next_ns));
	return proto_reply_ok(req->id, r);
}

static char *handle_schedule_rm(struct service *sv, const struct proto_request *req,
				const struct peer *peer)
{
	char *cause = NULL;

	for (size_t i = 0; i < sv->nschedules; i++) {
		if (sv->schedules[i].id != req->schedule_id ||
		    !access_owns(peer->uid, sv->schedules[i].owner_uid))
			continue;
		if (store_schedule_remove(sv->store, req->schedule_id, &cause) < 0 ||
		    reload_schedules(sv, &cause) < 0)
			return reply_error(req->id, "internal", cause);
		arm_schedules(sv);
		return proto_reply_ok(req->id, NULL);
	}
	return reply_error(req->id, "no-such-schedule",
			   xasprintf("no schedule %" PRId64, req->schedule_id));
}

static char *handle_schedule_ls(struct service *sv, const struct proto_request *req,
				const struct peer *peer)
{
	json_object *r = json_object_new_object(), *arr = json_object_new_array();

	for (size_t i = 0; i < sv->nschedules; i++)
		if (access_owns(peer->uid, sv->schedules[i].owner_uid))
			json_object_array_add(arr, schedule_json(&sv->schedules[i]));
	json_object_object_add(r, "schedules", arr);
	return proto_reply_ok(req->id, r);
}

/* ---- requests ------------------------------------------------------------ */

/*
 * Deleting reads nothing back, so it cannot tell whose a stored session
 * is: only root or the daemon's own user may delete.
 */
static char *handle_delete(struct service *sv, const struct proto_request *req,
			   const struct peer *peer)
{
	char *cause = NULL;
	int rc;

	if (peer->uid != 0 && peer->uid != getuid())
		return reply_error(req->id, "not-permitted",
				   xstrdup("only root or the daemon's user may delete sessions"));
	rc = store_session_delete(sv->store, req->session, &cause);
	if (rc == -ENOENT)
		return reply_error(req->id, "no-such-session", cause);
	if (rc == -EBUSY)
		return reply_error(req->id, "busy", cause);
	if (rc < 0)
		return reply_error(req->id, "internal", cause);
	free(cause);
	return proto_reply_ok(req->id, NULL);
}

static void on_shutdown_timer(uv_timer_t *h)
{
	struct service *sv = h->data;

	sv->opts.on_shutdown_request(sv->opts.arg);
}

/* Only the daemon's own user (or root) may stop it. */
static char *handle_shutdown(struct service *sv, const struct proto_request *req,
			     const struct peer *peer)
{
	if (peer->uid != 0 && peer->uid != getuid())
		return reply_error(req->id, "not-permitted",
				   xstrdup("only root or the daemon's user may shut it down"));
	/* After this reply has been written: the next loop iteration. */
	uv_timer_start(&sv->shutdown_timer, on_shutdown_timer, 0, 0);
	return proto_reply_ok(req->id, NULL);
}

char *service_handle(void *service, const char *line, size_t len,
		     const struct peer *peer)
{
	struct service *sv = service;
	struct proto_request req;
	const char *code;
	char *message, *reply;

	if (proto_parse_request(line, len, &req, &code, &message) < 0)
		return reply_error(req.id, code, message);
	switch (req.op) {
	case PROTO_OP_VERSION: reply = handle_version(sv, &req); break;
	case PROTO_OP_START: reply = handle_start(sv, &req, peer); break;
	case PROTO_OP_STOP: reply = handle_stop(sv, &req, peer); break;
	case PROTO_OP_STATUS: reply = handle_status(sv, &req, peer); break;
	case PROTO_OP_SCHEDULE_ADD: reply = handle_schedule_add(sv, &req, peer); break;
	case PROTO_OP_SCHEDULE_RM: reply = handle_schedule_rm(sv, &req, peer); break;
	case PROTO_OP_SCHEDULE_LS: reply = handle_schedule_ls(sv, &req, peer); break;
	case PROTO_OP_SHUTDOWN: reply = handle_shutdown(sv, &req, peer); break;
	case PROTO_OP_DELETE: reply = handle_delete(sv, &req, peer); break;
	default: reply = proto_reply_error(req.id, "unknown-op", "unknown operation");
	}
	proto_request_clear(&req);
	return reply;
}

/* ---- life cycle ---------------------------------------------------------- */

int service_create(uv_loop_t *loop, const struct service_opts *opts,
		   struct service **out, char **cause)
{
	struct service *sv;
	int rc;

	sv = xcalloc(1, sizeof *sv);
	sv->loop = loop;
	sv->opts = *opts;
	sv->db_path = xstrdup(opts->db_path);
	sv->socket_path = xstrdup(opts->socket_path);
	sv->started_ns = real_ns();
	rc = store_open(opts->db_path, &sv->store, cause);
	if (rc == 0)
		rc = reload_schedules(sv, cause);
	if (rc < 0) {
		store_close(sv->store);
		free(sv->db_path);
		free(sv->socket_path);
		free(sv);
		return rc;
	}
	pthread_mutex_init(&sv->ended_lock, NULL);
	uv_async_init(loop, &sv->ended_async, on_ended);
	uv_timer_init(loop, &sv->schedule_timer);
	uv_timer_init(loop, &sv->shutdown_timer);
	uv_timer_init(loop, &sv->trim_timer);
	sv->ended_async.data = sv->schedule_timer.data = sv->shutdown_timer.data = sv;
	sv->trim_timer.data = sv;
	uv_timer_start(&sv->trim_timer, on_trim_timer, TRIM_EVERY_MS, TRIM_EVERY_MS);
	sv->open_handles = 4;
	retention(sv, -1);
	arm_schedules(sv);
	*out = sv;
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct service *sv = h->data;
	void (*done)(void *) = sv->done;
	void *arg = sv->done_arg;

	if (--sv->open_handles > 0)
		return;
	store_close(sv->store);
	store_schedules_free(sv->schedules, sv->nschedules);
	for (size_t i = 0; i < ENDED_KEPT; i++)
		json_object_put(sv->past[i]);
	pthread_mutex_destroy(&sv->ended_lock);
	free(sv->active);
	free(sv->ended);
	free(sv->db_path);
	free(sv->socket_path);
	free(sv);
	if (done != NULL)
		done(arg);
}

static void finish_shutdown(struct service *sv)
{
	symbolizer_trim(true);
	uv_close((uv_handle_t *)&sv->ended_async, on_handle_closed);
	uv_close((uv_handle_t *)&sv->schedule_timer, on_handle_closed);
	uv_close((uv_handle_t *)&sv->shutdown_timer, on_handle_closed);
	uv_close((uv_handle_t *)&sv->trim_timer, on_handle_closed);
}

void service_shutdown(struct service *sv, void (*done)(void *arg), void *arg)
{
	if (sv == NULL || sv->shutting_down)
		return;
	sv->shutting_down = true;
	sv->done = done;
	sv->done_arg = arg;
	uv_timer_stop(&sv->schedule_timer);
	uv_timer_stop(&sv->trim_timer);
	for (size_t i = 0; i < sv->nactive; i++)
		session_stop(sv->active[i]);
	if (sv->nactive == 0)
		finish_shutdown(sv);
}
