/* perfring: see perfring.h. */
#include "perfring.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int perfring_open(struct perf_event_attr *attr, pid_t tid, size_t data_pages,
		  struct perfring *r)
{
	return perfring_open_cpu(attr, tid, -1, data_pages, r);
}

int perfring_open_cpu(struct perf_event_attr *attr, pid_t tid, int cpu,
		      size_t data_pages, struct perfring *r)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int fd;

	fd = (int)syscall(SYS_perf_event_open, attr, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r->len = (data_pages + 1) * page;
	r->page = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->page == MAP_FAILED) {
		int err = errno;

		close(fd);
		/* Over perf_event_mlock_kb: this thread only. */
		return err == EPERM ? -ENOMEM : -err;
	}
	r->fd = fd;
	r->data = (uint8_t *)r->page + page;
	r->mask = data_pages * page - 1;
	return 0;
}

void perfring_close(struct perfring *r)
{
	munmap(r->page, r->len);
	close(r->fd);
}
