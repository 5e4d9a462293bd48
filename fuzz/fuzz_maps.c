/*
 * /proc/PID/maps: the whole file through maps_parse, as the engine reads
 * it.  An accepted file must give sorted, disjoint mappings that maps_find
 * locates, and each accepted line must mean the same once written back the
 * way the kernel writes it.
 */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "maps.h"

static void line_round_trip(const char *line, size_t len)
{
	struct procfs_map_line a, b;
	char buf[256], *text;
	size_t n;

	FUZZ_CHECK(procfs_parse_maps_line(line, len, &a) == 0);
	n = (size_t)snprintf(buf, sizeof buf,
			     "%" PRIx64 "-%" PRIx64 " %c%c%c%c %08" PRIx64 " %02x:%02x %" PRIu64,
			     a.start, a.end, a.perms & PROCFS_MAP_READ ? 'r' : '-',
			     a.perms & PROCFS_MAP_WRITE ? 'w' : '-',
			     a.perms & PROCFS_MAP_EXEC ? 'x' : '-',
			     a.perms & PROCFS_MAP_SHARED ? 's' : 'p', a.offset,
			     a.dev_major, a.dev_minor, a.inode);
	/* The path is raw bytes (it may hold NUL): copy, do not format. */
	text = malloc(n + a.path_len + 32);
	memcpy(text, buf, n);
	if (a.path != NULL) {
		memcpy(text + n, "    ", 4);
		memcpy(text + n + 4, a.path, a.path_len);
		n += 4 + a.path_len;
		if (a.deleted) {
			memcpy(text + n, " (deleted)", 10);
			n += 10;
		}
	}
	FUZZ_CHECK(procfs_parse_maps_line(text, n, &b) == 0);
	FUZZ_CHECK(a.start == b.start && a.end == b.end && a.offset == b.offset);
	FUZZ_CHECK(a.perms == b.perms && a.dev_major == b.dev_major &&
		   a.dev_minor == b.dev_minor && a.inode == b.inode);
	FUZZ_CHECK((a.path == NULL) == (b.path == NULL) && a.deleted == b.deleted);
	FUZZ_CHECK(a.path_len == b.path_len &&
		   (a.path == NULL || memcmp(a.path, b.path, a.path_len) == 0));
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *p = text, *end = text + size;
	struct maps m;

	if (maps_parse(text, size, &m) < 0) {
		FUZZ_CHECK(m.v == NULL && m.n == 0);
		return 0;
	}
	for (size_t i = 0; i < m.n; i++) {
		const struct mapping *mp = &m.v[i];

		FUZZ_CHECK(mp->start < mp->end);
		FUZZ_CHECK(i == 0 || m.v[i - 1].end <= mp->start);
		FUZZ_CHECK(maps_find(&m, mp->start) == mp);
		FUZZ_CHECK(maps_find(&m, mp->end - 1) == mp);
		FUZZ_CHECK(mp->start == 0 || maps_find(&m, mp->start - 1) == NULL ||
			   maps_find(&m, mp->start - 1) == mp - 1);
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n > 0)
			line_round_trip(p, n);
		p = nl ? nl + 1 : end;
	}
	maps_clear(&m);
	return 0;
}
