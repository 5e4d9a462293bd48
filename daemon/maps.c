#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "xalloc.h"

static int add_line(struct maps *m, size_t *cap, const char *line, size_t len)
{
	struct procfs_map_line ml;
	struct mapping *mp;
	int rc;

	rc = procfs_parse_maps_line(line, len, &ml);
	if (rc < 0)
		return rc;
	/* The kernel prints mappings in address order; the lookup relies on it. */
	if (m->n > 0 && ml.start < m->v[m->n - 1].end)
		return -EINVAL;
	if (m->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		m->v = xreallocarray(m->v, *cap, sizeof *m->v);
	}
	mp = &m->v[m->n++];
	memset(mp, 0, sizeof *mp);
	mp->start = ml.start;
	mp->end = ml.end;
	mp->offset = ml.offset;
	mp->perms = ml.perms;
	mp->dev = makedev(ml.dev_major, ml.dev_minor);
	mp->inode = ml.inode;
	mp->deleted = ml.deleted;
	if (ml.path != NULL) {
		mp->path = xstrndup(ml.path, ml.path_len);
		mp->is_stack = strcmp(mp->path, "[stack]") == 0;
		mp->is_vdso = strcmp(mp->path, "[vdso]") == 0;
	}
	return 0;
}

int maps_parse(const char *text, size_t len, struct maps *out)
{
	const char *p = text, *end = text + len;
	size_t cap = 0;

	out->v = NULL;
	out->n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		int rc;

		if (n > 0 && (rc = add_line(out, &cap, p, n)) < 0) {
			maps_clear(out);
			return rc;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int maps_read(pid_t pid, struct maps *out)
{
	char path[64];
	size_t cap = 64 * 1024, len = 0;
	char *buf;
	int fd, rc;

	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = maps_parse(buf, len, out);
out_free:
	free(buf);
	close(fd);
	return rc;
}

struct mapping *maps_find(const struct maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct mapping *mp = &m->v[mid];

		if (addr < mp->start)
			hi = mid;
		else if (addr >= mp->end)
			lo = mid + 1;
		else
			return mp;
	}
	return NULL;
}

void maps_clear(struct maps *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}
