/*
 * perchd: the perch daemon.  Serves the client on a UNIX socket, runs
 * profiling sessions on sampler threads, fires schedules, stores everything
 * in one SQLite database.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "access.h"
#include "log.h"
#include "paths.h"
#include "server.h"
#include "service.h"
#include "units.h"
#include "xalloc.h"

struct daemon {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;
	struct server *server;
	struct service *service;
	bool signals;			/* sigterm and sigint are initialized */
	bool stopping;
};

static const char usage[] =
	"usage: perchd [--socket PATH] [--db PATH] [--foreground] [--group GROUP]\n"
	"              [--keep-sessions N] [--keep-age AGE]\n"
	"\n"
	"The perch daemon: records profiling sessions requested by `perch` and by\n"
	"schedules into a SQLite database.\n"
	"\n"
	"  --socket PATH       listen here (default: $PERCH_SOCKET, else\n"
	"                      /run/perch/perch.sock as root, else\n"
	"                      $XDG_RUNTIME_DIR/perch.sock)\n"
	"  --db PATH           database (default: $PERCH_DB, else\n"
	"                      /var/lib/perch/perch.db as root, else\n"
	"                      $XDG_DATA_HOME/perch/perch.db)\n"
	"  --foreground        do not detach; log to stderr\n"
	"  --group GROUP       socket mode 0660 with this group (default 0600)\n"
	"  --keep-sessions N   keep at most N sessions in all (oldest deleted)\n"
	"  --keep-age AGE      delete sessions older than AGE (e.g. 30d)\n"
	"  --version, --help\n";

static void on_stopped(void *arg)
{
	struct daemon *d = arg;

	d->service = NULL;
	if (d->signals) {
		uv_close((uv_handle_t *)&d->sigterm, NULL);
		uv_close((uv_handle_t *)&d->sigint, NULL);
	}
}

/* SIGTERM, SIGINT or a shutdown request: stop sampling, flush, leave. */
static void stop_daemon(void *arg)
{
	struct daemon *d = arg;

	if (d->stopping)
		return;
	d->stopping = true;
	log_info("shutting down");
	server_close(d->server);
	d->server = NULL;
	service_shutdown(d->service, on_stopped, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	stop_daemon(h->data);
}

struct options {
	char *socket, *db;
	bool foreground;
	gid_t group;
	int64_t keep_count;
	double keep_age_s;
};

static int parse_group(const char *name, gid_t *gid)
{
	struct group *gr = getgrnam(name);
	char *end;
	long v;

	if (gr != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	v = strtol(name, &end, 10);
	if (*end != '\0' || v < 0)
		return -1;
	*gid = (gid_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "group", required_argument, NULL, 'g' },
		{ "keep-sessions", required_argument, NULL, 'k' },
		{ "keep-age", required_argument, NULL, 'a' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	o->group = (gid_t)-1;
	o->keep_count = -1;
	o->keep_age_s = -1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': free(o->socket); o->socket = xstrdup(optarg); break;
		case 'd': free(o->db); o->db = xstrdup(optarg); break;
		case 'f': o->foreground = true; break;
		case 'g':
			if (parse_group(optarg, &o->group) < 0) {
				fprintf(stderr, "perchd: no such group: %s\n", optarg);
				return 2;
			}
			break;
		case 'k':
			o->keep_count = strtol(optarg, &end, 10);
			if (*end != '\0' || o->keep_count < 1) {
				fprintf(stderr, "perchd: --keep-sessions wants a count >= 1\n");
				return 2;
			}
			break;
		case 'a':
			if (units_parse_duration(optarg, &o->keep_age_s) < 0 || o->keep_age_s <= 0) {
				fprintf(stderr, "perchd: invalid --keep-age '%s'\n", optarg);
				return 2;
			}
			break;
		case 'V': printf("perchd %s\n", PERCH_VERSION); return 0;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (o->socket == NULL)
		o->socket = paths_default_socket();
	if (o->db == NULL)
		o->db = paths_default_db();
	return -1;
}

/*
 * Detaches from the terminal.  The parent stays until the child reports on
 * the pipe that it listens (or why it could not), so that whoever started
 * perchd can connect as soon as it returns.  Returns the fd to report on.
 */
static int detach(void)
{
	int fds[2], devnull;
	char buf[512];
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		perror("perchd: cannot detach");
		exit(1);
	}
	if (pid > 0) {
		close(fds[1]);
		n = read(fds[0], buf, sizeof buf - 1);
		if (n == 1 && buf[0] == '\n')
			exit(0);
		buf[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "%s", n > 0 ? buf : "perchd: failed to start\n");
		exit(1);
	}
	close(fds[0]);
	setsid();
	if (fork() > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	/*
	 * Whatever else the starter left open (a pipe its shell waits on, a
	 * fifo a demo program reads until EOF) must not stay open for as long
	 * as the daemon lives.
	 */
	if (fds[1] > 3)
		close_range(3, (unsigned int)fds[1] - 1, 0);
	close_range((unsigned int)fds[1] + 1, ~0U, 0);
	return fds[1];
}

/*
 * Whether one directory on the way to a file of ours could be changed by
 * another user: it must belong to root or to us, and be writable by no one
 * else unless it is sticky (then no one else may rename or remove what we
 * put in it) and sticky_ok.
 */
static int check_one_dir(const char *dir, bool sticky_ok, char **cause)
{
	struct stat st;
	int err;

	if (stat(dir, &st) < 0) {
		err = errno;
		*cause = xasprintf("%s: %s", dir, strerror(err));
		return -err;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		*cause = xasprintf("%s belongs to uid %u, who could replace perchd's files in it; "
				   "use a directory of root's or perchd's own",
				   dir, (unsigned int)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & 022) && !(sticky_ok && (st.st_mode & S_ISVTX))) {
		*cause = xasprintf("%s is writable by other users, who could put links or files "
				   "of theirs where perchd creates its own; use a private directory",
				   dir);
		return -EPERM;
	}
	return 0;
}

/* Checks real (a path without symbolic links) and every directory above it. */
static int check_tree(const char *real, bool sticky_ok, char **cause)
{
	char *up = xstrdup(real), *slash;
	int rc = check_one_dir(up, sticky_ok, cause);

	while (rc == 0 && strcmp(up, "/") != 0) {
		slash = strrchr(up, '/');
		slash[slash == up] = '\0';
		rc = check_one_dir(up, true, cause);
	}
	free(up);
	return rc;
}

/*
 * Before the missing directories of path are made: the deepest one that
 * exists, and those above it, must be safe too, or mkdir(2) would make
 * root's directories wherever another user's link points.
 */
static int check_before_mkdir(const char *path, char **cause)
{
	char *dir = xstrdup(path), *slash, *real = NULL;
	int rc = 0;

	while (real == NULL && (slash = strrchr(dir, '/')) != NULL) {
		bool top = slash == dir;

		slash[top] = '\0';
		real = realpath(dir, NULL);
		if (top)
			break;
	}
	if (real == NULL)
		real = realpath(".", NULL);
	if (real != NULL)
		rc = check_tree(real, true, cause);
	free(real);
	free(dir);
	return rc;
}

/*
 * Checks the directories that lead to *path and replaces *path with the
 * same file through no symbolic link, so that what was checked is what is
 * used.  perchd creates files there by name: the socket (bind(2) never
 * follows or reuses what is there, so the socket may be in a sticky
 * directory such as /tmp); the database, and SQLite's -wal, -shm and
 * -journal beside it, which SQLite opens following symbolic links (so the
 * database's own directory must be private).  Every directory above may be
 * sticky: no one else may rename what root or we own in it.
 */
static int check_dirs(char **path, bool sticky_ok, char **cause)
{
	char *copy = xstrdup(*path), *slash = strrchr(copy, '/'), *real, *up;
	const char *base = slash != NULL ? slash + 1 : copy;
	const char *dir = slash == NULL ? "." : slash == copy ? "/" : copy;
	int rc;

	if (slash != NULL && slash != copy)
		*slash = '\0';
	real = realpath(dir, NULL);
	if (real == NULL) {
		rc = -errno;
		*cause = xasprintf("%s: %s", dir, strerror(errno));
		free(copy);
		return rc;
	}
	rc = check_tree(real, sticky_ok, cause);
	if (rc == 0) {
		up = xasprintf("%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
		free(*path);
		*path = up;
	}
	free(real);
	free(copy);
	return rc;
}

/* Tells the process that started a detaching perchd how it went. */
static void report(int fd, const char *message)
{
	if (fd < 0)
		return;
	if (write(fd, message, strlen(message)) < 0)
		log_error("cannot report to the starting process");
	close(fd);
}

/* Makes the directories of the socket and the database, and checks them. */
static int prepare_paths(struct options *o, char **cause)
{
	int rc;

	if ((rc = check_before_mkdir(o->socket, cause)) < 0 ||
	    (rc = check_before_mkdir(o->db, cause)) < 0)
		return rc;
	if ((rc = paths_make_parent(o->socket)) < 0 || (rc = paths_make_parent(o->db)) < 0) {
		*cause = xasprintf("cannot create directories for %s and %s: %s",
				   o->socket, o->db, strerror(-rc));
		return rc;
	}
	rc = check_dirs(&o->socket, true, cause);
	return rc < 0 ? rc : check_dirs(&o->db, false, cause);
}

/*
 * Yama's scope 3 forbids every PTRACE_ATTACH and PTRACE_SEIZE until the next
 * boot, root's too: perchd starts (sessions can be listed, schedules kept)
 * but every start is refused.
 */
#define PTRACE_DISABLED "ptrace is disabled on this host (kernel.yama.ptrace_scope = 3): " \
	"perchd can sample nothing until the next boot, and refuses every session"

static int start(struct daemon *d, struct options *o, int ready_fd)
{
	struct service_opts so = {
		.keep_count = o->keep_count, .keep_age_s = o->keep_age_s,
		.on_shutdown_request = stop_daemon, .arg = d,
	};
	char *cause = NULL, *msg;
	int rc;

	rc = prepare_paths(o, &cause);
	so.db_path = o->db;
	so.socket_path = o->socket;
	if (rc == 0 && (rc = service_create(&d->loop, &so, &d->service, &cause)) == 0 &&
	    (rc = server_open(&d->loop, o->socket, o->group, service_handle,
			      d->service, &d->server, &cause)) < 0)
		service_shutdown(d->service, on_stopped, d);
	if (rc < 0) {
		/* In the foreground the log is stderr already. */
		log_error("%s", cause);
		if (ready_fd >= 0) {
			msg = xasprintf("perchd: %s\n", cause);
			report(ready_fd, msg);
			free(msg);
		}
		free(cause);
		return rc;
	}
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	d->signals = true;
	d->sigterm.data = d->sigint.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	log_info("listening on %s, database %s", o->socket, o->db);
	if (access_ptrace_scope() == 3)
		log_error("%s", PTRACE_DISABLED);
	report(ready_fd, "\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct daemon d = { 0 };
	int rc, ready_fd = -1;

	rc = parse_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	/* Said where the user who started perchd sees it, before detaching. */
	if (!o.foreground && access_ptrace_scope() == 3)
		fprintf(stderr, "perchd: %s\n", PTRACE_DISABLED);
	if (!o.foreground)
		ready_fd = detach();
	log_init(!o.foreground);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&d.loop);
	rc = start(&d, &o, ready_fd);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d.loop) != 0)
		log_error("handles left open at exit");
	free(o.socket);
	free(o.db);
	return rc < 0 ? 1 : 0;
}
