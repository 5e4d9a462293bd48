/*
 * /proc/PID/task/TID/stat.  The comm field may hold anything a thread names
 * itself, parentheses and spaces included, which is what makes this file
 * tricky.  What the parser accepts must mean the same once written back the
 * way the kernel writes it.
 */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "procfs.h"

static void round_trip(const struct procfs_stat *a)
{
	struct procfs_stat b;
	char line[1024];
	int n;

	n = snprintf(line, sizeof line, "1 (%s) %c %d 0 0 0 0 %lu 0 0 0 0 %" PRIu64
		     " %" PRIu64 " 0 0 0 0 0 0 %" PRIu64, a->comm, a->state,
		     (int)a->ppid, a->flags, a->utime, a->stime, a->starttime);
	if (a->processor >= 0) {
		for (int field = 23; field < 39; field++)
			n += snprintf(line + n, sizeof line - (size_t)n, " 0");
		n += snprintf(line + n, sizeof line - (size_t)n, " %d 0 0", a->processor);
	}
	n += snprintf(line + n, sizeof line - (size_t)n, "\n");
	FUZZ_CHECK(procfs_parse_stat(line, (size_t)n, &b) == 0);
	FUZZ_CHECK(strcmp(a->comm, b.comm) == 0);
	FUZZ_CHECK(a->state == b.state && a->ppid == b.ppid && a->flags == b.flags);
	FUZZ_CHECK(a->utime == b.utime && a->stime == b.stime);
	FUZZ_CHECK(a->starttime == b.starttime && a->processor == b.processor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfs_stat st;

	if (procfs_parse_stat((const char *)data, size, &st) < 0)
		return 0;
	FUZZ_CHECK(memchr(st.comm, '\0', sizeof st.comm) != NULL);
	FUZZ_CHECK(st.ppid >= 0 && st.processor >= -1);
	/* A state of NUL would end the formatted line early: not round-trippable. */
	if (st.state != '\0')
		round_trip(&st);
	return 0;
}
