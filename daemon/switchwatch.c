/* switchwatch: see switchwatch.h. */
#include "switchwatch.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xalloc.h"

struct switchwatch {
	int fd;
	struct perf_event_mmap_page *page;
	size_t len;
};

int switchwatch_open(pid_t tid, struct switchwatch **out)
{
	struct perf_event_attr attr;
	struct switchwatch *w;
	long page = sysconf(_SC_PAGESIZE);
	int fd;

	memset(&attr, 0, sizeof attr);
	attr.size = sizeof attr;
	attr.type = PERF_TYPE_SOFTWARE;
	/* Counts nothing; it exists for its side-band records. */
	attr.config = PERF_COUNT_SW_DUMMY;
	attr.context_switch = 1;
	/* User-only, as an unprivileged tracer may ask for (perf_event_paranoid 2). */
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	fd = (int)syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = xcalloc(1, sizeof *w);
	w->fd = fd;
	/*
	 * The control page and one page of ring: each record is 8 bytes, and
	 * the ring is emptied at every look, so it only fills for a thread
	 * switched hundreds of times between two looks, which then counts as
	 * moved anyway.
	 */
	w->len = 2 * (size_t)page;
	w->page = mmap(NULL, w->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w->page == MAP_FAILED) {
		int err = errno;

		close(fd);
		free(w);
		/* Over perf_event_mlock_kb: this thread only. */
		return err == EPERM ? -ENOMEM : -err;
	}
	*out = w;
	return 0;
}

bool switchwatch_moved(struct switchwatch *w)
{
	/* The kernel writes records before it publishes data_head. */
	uint64_t head = __atomic_load_n(&w->page->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = w->page->data_tail;

	if (head == tail)
		return false;
	/* Hands the space back: the records themselves are never read. */
	__atomic_store_n(&w->page->data_tail, head, __ATOMIC_RELEASE);
	return true;
}

void switchwatch_close(struct switchwatch *w)
{
	if (w == NULL)
		return;
	munmap(w->page, w->len);
	close(w->fd);
	free(w);
}

bool switchwatch_unsupported(int err)
{
	return err == -EACCES || err == -EPERM || err == -ENOSYS || err == -ENOENT ||
	       err == -EOPNOTSUPP || err == -EINVAL || err == -E2BIG;
}
