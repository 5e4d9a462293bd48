#include "procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * A cursor over text that is not NUL-terminated.  Each helper consumes what
 * it parsed and fails without moving when the text does not match.
 */
struct cur {
	const char *p, *end;
};

static bool parse_hex(struct cur *c, uint64_t *out)
{
	const char *p = c->p;
	uint64_t v = 0;

	while (p < c->end) {
		char ch = *p;
		unsigned int d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned int)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned int)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned int)(ch - 'A' + 10);
		else
			break;
		if (v >> 60)
			return false;
		v = v << 4 | d;
		p++;
	}
	if (p == c->p)
		return false;
	c->p = p;
	*out = v;
	return true;
}

static bool parse_u64(struct cur *c, uint64_t *out)
{
	const char *p = c->p;
	uint64_t v = 0;

	while (p < c->end && *p >= '0' && *p <= '9') {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		p++;
	}
	if (p == c->p)
		return false;
	c->p = p;
	*out = v;
	return true;
}

static bool parse_i64(struct cur *c, int64_t *out)
{
	struct cur save = *c;
	bool neg = false;
	uint64_t v;

	if (c->p < c->end && *c->p == '-') {
		neg = true;
		c->p++;
	}
	if (!parse_u64(c, &v) || v > (uint64_t)INT64_MAX) {
		*c = save;
		return false;
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

/*
 * "0x" and hex digits exactly as the kernel's "0x%llx" prints them: lower
 * case, no leading zero (0 is "0x0").
 */
static bool parse_0xhex(struct cur *c, uint64_t *out)
{
	struct cur save = *c;
	const char *digits;
	bool canonical = true;

	if (c->end - c->p < 2 || c->p[0] != '0' || c->p[1] != 'x')
		return false;
	digits = c->p += 2;
	if (!parse_hex(c, out)) {
		*c = save;
		return false;
	}
	if (digits[0] == '0' && c->p - digits > 1)
		canonical = false;
	for (const char *p = digits; p < c->p; p++)
		if (*p >= 'A' && *p <= 'F')
			canonical = false;
	if (!canonical)
		*c = save;
	return canonical;
}

/* An int exactly as the kernel's "%d" prints it: no '+', no leading zero. */
static bool parse_kernel_int(struct cur *c, int64_t *out)
{
	struct cur save = *c;
	const char *digits = c->p < c->end && *c->p == '-' ? c->p + 1 : c->p;

	if (!parse_i64(c, out) || *out < INT32_MIN || *out > INT32_MAX ||
	    (digits[0] == '0' && (digits != save.p || c->p - digits > 1))) {
		*c = save;
		return false;
	}
	return true;
}

static bool expect(struct cur *c, char ch)
{
	if (c->p >= c->end || *c->p != ch)
		return false;
	c->p++;
	return true;
}

/* At least one space or tab. */
static bool skip_blanks(struct cur *c)
{
	const char *p = c->p;

	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
	return c->p != p;
}

static bool skip_field(struct cur *c)
{
	const char *p = c->p;

	while (c->p < c->end && *c->p != ' ' && *c->p != '\n')
		c->p++;
	return c->p != p;
}

static bool at_line_end(const struct cur *c)
{
	return c->p == c->end || *c->p == '\n';
}

static bool parse_perms(struct cur *c, unsigned int *perms)
{
	static const char want[4][2] = { { 'r', '-' }, { 'w', '-' },
					 { 'x', '-' }, { 's', 'p' } };
	static const unsigned int bit[4] = { PROCFS_MAP_READ, PROCFS_MAP_WRITE,
					     PROCFS_MAP_EXEC, PROCFS_MAP_SHARED };

	if (c->end - c->p < 4)
		return false;
	*perms = 0;
	for (int i = 0; i < 4; i++) {
		if (c->p[i] == want[i][0])
			*perms |= bit[i];
		else if (c->p[i] != want[i][1])
			return false;
	}
	c->p += 4;
	return true;
}

int procfs_parse_maps_line(const char *line, size_t len,
			   struct procfs_map_line *out)
{
	static const char deleted[] = " (deleted)";
	const size_t deleted_len = sizeof deleted - 1;
	struct cur c = { line, line + len };
	uint64_t major, minor;

	memset(out, 0, sizeof *out);
	if (!parse_hex(&c, &out->start) || !expect(&c, '-') ||
	    !parse_hex(&c, &out->end) || out->end <= out->start ||
	    !skip_blanks(&c) || !parse_perms(&c, &out->perms) ||
	    !skip_blanks(&c) || !parse_hex(&c, &out->offset) ||
	    !skip_blanks(&c) || !parse_hex(&c, &major) || !expect(&c, ':') ||
	    !parse_hex(&c, &minor) || !skip_blanks(&c) ||
	    !parse_u64(&c, &out->inode))
		return -EINVAL;
	if (major > 0xfff || minor > 0xfffff)
		return -EINVAL;
	out->dev_major = (unsigned int)major;
	out->dev_minor = (unsigned int)minor;

	if (at_line_end(&c))
		return 0;
	if (!skip_blanks(&c))
		return -EINVAL;
	if (at_line_end(&c))
		return 0;
	/* The path runs to the end of the line and may contain spaces. */
	out->path = c.p;
	while (c.p < c.end && *c.p != '\n')
		c.p++;
	out->path_len = (size_t)(c.p - out->path);
	if (out->path_len > deleted_len &&
	    memcmp(out->path + out->path_len - deleted_len, deleted,
		   deleted_len) == 0) {
		out->path_len -= deleted_len;
		out->deleted = true;
	}
	return 0;
}

int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *out)
{
	const char *open, *close = NULL;
	struct cur c;
	uint64_t v;
	int64_t ppid;
	size_t n;

	memset(out, 0, sizeof *out);
	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	open = memchr(buf, '(', len);
	for (size_t i = len; i > 0; i--) {
		if (buf[i - 1] == ')') {
			close = buf + i - 1;
			break;
		}
	}
	if (open == NULL || close == NULL || close < open)
		return -EINVAL;
	n = (size_t)(close - open - 1);
	if (n >= sizeof out->comm)
		n = sizeof out->comm - 1;
	memcpy(out->comm, open + 1, n);
	out->comm[n] = '\0';

	c.p = close + 1;
	c.end = buf + len;
	/* Fields 3 (state) onwards, numbered as in proc(5). */
	if (!skip_blanks(&c) || c.p >= c.end)
		return -EINVAL;
	out->state = *c.p++;
	if (!skip_blanks(&c) || !parse_i64(&c, &ppid) || ppid < 0 || ppid > INT32_MAX)
		return -EINVAL;
	out->ppid = (pid_t)ppid;
	out->processor = -1;
	for (int field = 5; field <= 39; field++) {
		/* Fields after 22 were added over the years: stop where text ends. */
		if (field > 22 && at_line_end(&c))
			break;
		if (!skip_blanks(&c))
			return -EINVAL;
		switch (field) {
		case 9:
			if (!parse_u64(&c, &v))
				return -EINVAL;
			out->flags = (unsigned long)v;
			break;
		case 14:
			if (!parse_u64(&c, &out->utime))
				return -EINVAL;
			break;
		case 15:
			if (!parse_u64(&c, &out->stime))
				return -EINVAL;
			break;
		case 22:
			if (!parse_u64(&c, &out->starttime))
				return -EINVAL;
			break;
		case 39:
			if (!parse_u64(&c, &v) || v > INT32_MAX)
				return -EINVAL;
			out->processor = (int)v;
			break;
		default:
			if (!skip_field(&c))
				return -EINVAL;
		}
	}
	return 0;
}

/* Finds "Key:" at the start of a line; c is left after the colon. */
static bool find_key(const char *buf, size_t len, const char *key, struct cur *c)
{
	size_t klen = strlen(key);
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		if ((size_t)(eol - p) > klen && memcmp(p, key, klen) == 0 &&
		    p[klen] == ':') {
			c->p = p + klen + 1;
			c->end = eol;
			return true;
		}
		p = nl ? nl + 1 : end;
	}
	return false;
}

static bool status_u64(const char *buf, size_t len, const char *key, uint64_t *out)
{
	struct cur c;

	return find_key(buf, len, key, &c) && (skip_blanks(&c), true) &&
	       parse_u64(&c, out);
}

int procfs_parse_status(const char *buf, size_t len, struct procfs_status *out)
{
	uint64_t tgid, tracer, real, eff, v;
	struct cur c;
	size_t n;

	memset(out, 0, sizeof *out);
	if (!find_key(buf, len, "Name", &c))
		return -EINVAL;
	skip_blanks(&c);
	n = (size_t)(c.end - c.p);
	if (n >= sizeof out->name)
		n = sizeof out->name - 1;
	memcpy(out->name, c.p, n);
	out->name[n] = '\0';

	if (!status_u64(buf, len, "Tgid", &tgid) ||
	    !status_u64(buf, len, "TracerPid", &tracer) ||
	    tgid > INT32_MAX || tracer > INT32_MAX)
		return -EINVAL;
	out->tgid = (pid_t)tgid;
	out->tracer_pid = (pid_t)tracer;

	if (!find_key(buf, len, "Uid", &c) || !skip_blanks(&c) ||
	    !parse_u64(&c, &real) || !skip_blanks(&c) || !parse_u64(&c, &eff) ||
	    real > UINT32_MAX || eff > UINT32_MAX)
		return -EINVAL;
	out->uid_real = (uid_t)real;
	out->uid_effective = (uid_t)eff;

	/* Absent in kernels without context switch accounting: leave 0. */
	status_u64(buf, len, "voluntary_ctxt_switches",
		   &out->voluntary_ctxt_switches);
	status_u64(buf, len, "nonvoluntary_ctxt_switches",
		   &out->nonvoluntary_ctxt_switches);
	if (status_u64(buf, len, "Kthread", &v)) {
		out->has_kthread = true;
		out->kthread = v != 0;
	}
	return 0;
}

/*
 * Exactly what proc_pid_syscall (fs/proc/base.c) writes, newline included:
 * "running\n"; "-1 SP PC\n" for a thread blocked outside a system call;
 * "NR ARG1 ... ARG6 SP PC\n" inside one.  Anything else means the file is
 * not what the engine thinks it is, and it is refused rather than guessed.
 */
int procfs_parse_syscall(const char *buf, size_t len, struct procfs_syscall *out)
{
	struct cur c = { buf, buf + len };
	int64_t nr;

	memset(out, 0, sizeof *out);
	if (len == 8 && memcmp(buf, "running\n", 8) == 0) {
		out->state = PROCFS_SYSCALL_RUNNING;
		return 0;
	}
	if (!parse_kernel_int(&c, &nr))
		return -EINVAL;
	out->nr = (long)nr;
	if (nr == -1) {
		out->state = PROCFS_SYSCALL_NOT_IN_SYSCALL;
	} else {
		/* Outside a system call, x86-64 and arm64 say -1. */
		if (nr < 0)
			return -EINVAL;
		out->state = PROCFS_SYSCALL_BLOCKED;
		for (int i = 0; i < 6; i++)
			if (!expect(&c, ' ') || !parse_0xhex(&c, &out->args[i]))
				return -EINVAL;
	}
	if (!expect(&c, ' ') || !parse_0xhex(&c, &out->sp) ||
	    !expect(&c, ' ') || !parse_0xhex(&c, &out->pc) ||
	    !expect(&c, '\n') || c.p != c.end)
		return -EINVAL;
	return 0;
}

int procfs_parse_schedstat(const char *buf, size_t len,
			   struct procfs_schedstat *out)
{
	struct cur c = { buf, buf + len };

	memset(out, 0, sizeof *out);
	if (!parse_u64(&c, &out->run_ns) || !skip_blanks(&c) ||
	    !parse_u64(&c, &out->wait_ns) || !skip_blanks(&c) ||
	    !parse_u64(&c, &out->timeslices))
		return -EINVAL;
	return 0;
}

ssize_t procfs_pread(int fd, char *buf, size_t size)
{
	size_t got = 0;

	if (size == 0)
		return -EINVAL;
	/* seq_file hands out at most a page per read; loop until EOF. */
	while (got < size - 1) {
		ssize_t n = pread(fd, buf + got, size - 1 - got, (off_t)got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

ssize_t procfs_pread_line(int fd, char *buf, size_t size)
{
	ssize_t n;

	if (size == 0)
		return -EINVAL;
	do
		n = pread(fd, buf, size - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n > 0 && (size_t)n < size - 1 && buf[n - 1] == '\n') {
		buf[n] = '\0';
		return n;
	}
	/* Empty, cut short, or not a line: read it as any other file. */
	return procfs_pread(fd, buf, size);
}

int procfs_read_stat(pid_t pid, struct procfs_stat *out)
{
	char path[64], buf[1024];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	n = procfs_read_path(path, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	return procfs_parse_stat(buf, (size_t)n, out) < 0 ? -EINVAL : 0;
}

ssize_t procfs_read_path(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = procfs_pread(fd, buf, size);
	close(fd);
	return n;
}
