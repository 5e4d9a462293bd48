/* switchwatch: see switchwatch.h. */
#include "switchwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perfring.h"
#include "xalloc.h"

struct switchwatch {
	struct perfring ring;
};

int switchwatch_open(pid_t tid, struct switchwatch **out)
{
	struct perf_event_attr attr;
	struct switchwatch *w = xcalloc(1, sizeof *w);
	int rc;

	memset(&attr, 0, sizeof attr);
	attr.size = sizeof attr;
	attr.type = PERF_TYPE_SOFTWARE;
	/* Counts nothing; it exists for its side-band records. */
	attr.config = PERF_COUNT_SW_DUMMY;
	attr.context_switch = 1;
	/* User-only, as an unprivileged tracer may ask for (perf_event_paranoid 2). */
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	/*
	 * One page of ring: each record is 8 bytes, and the ring is emptied at
	 * every look, so it only fills for a thread switched hundreds of times
	 * between two looks, which then counts as moved anyway.
	 */
	rc = perfring_open(&attr, tid, 1, &w->ring);
	if (rc < 0) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

bool switchwatch_moved(struct switchwatch *w)
{
	uint64_t head = perfring_head(&w->ring);

	if (head == perfring_tail(&w->ring))
		return false;
	/* Hands the space back: the records themselves are never read. */
	perfring_release(&w->ring, head);
	return true;
}

void switchwatch_close(struct switchwatch *w)
{
	if (w == NULL)
		return;
	perfring_close(&w->ring);
	free(w);
}

bool switchwatch_unsupported(int err)
{
	return err == -EACCES || err == -EPERM || err == -ENOSYS || err == -ENOENT ||
	       err == -EOPNOTSUPP || err == -EINVAL || err == -E2BIG;
}
