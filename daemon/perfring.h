/*
 * perfring: a perf event opened on one thread of a target, with its ring
 * mapped — what switchwatch.c and ksample.c share.  The engine never polls
 * the descriptor: it reads the ring at its own ticks and hands the space
 * back itself.
 */
#ifndef PERCH_PERFRING_H
#define PERCH_PERFRING_H

#include <linux/perf_event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct perfring {
	int fd;
	struct perf_event_mmap_page *page;	/* the control page */
	size_t len;				/* of the whole mapping */
	uint8_t *data;				/* the ring, after the control page */
	uint64_t mask;				/* ring size - 1 */
};

/*
 * Opens attr on thread tid and maps the control page and data_pages pages
 * of ring (a power of two).  Returns 0 or a negative errno; a mapping over
 * perf_event_mlock_kb (EPERM from mmap) is -ENOMEM: a limit of this one
 * thread's, not a refusal of perf events.
 */
int perfring_open(struct perf_event_attr *attr, pid_t tid, size_t data_pages,
		  struct perfring *r);

/* As perfring_open, counting only on one CPU (-1: any). */
int perfring_open_cpu(struct perf_event_attr *attr, pid_t tid, int cpu,
		      size_t data_pages, struct perfring *r);

void perfring_close(struct perfring *r);

/* Where the kernel has written up to: records before it are complete. */
static inline uint64_t perfring_head(const struct perfring *r)
{
	return __atomic_load_n(&r->page->data_head, __ATOMIC_ACQUIRE);
}

/* Where the reader left off. */
static inline uint64_t perfring_tail(const struct perfring *r)
{
	return r->page->data_tail;
}

/* Hands the space up to head back to the kernel. */
static inline void perfring_release(struct perfring *r, uint64_t head)
{
	__atomic_store_n(&r->page->data_tail, head, __ATOMIC_RELEASE);
}

#endif
