/*
 * switchwatch: knowing that a thread has not been switched in or out since
 * the last look, without a system call.
 *
 * The engine must know, at every tick, whether each blocked thread has run
 * since its last sample: if not, its stack still stands.  Reading its
 * /proc/.../schedstat answers that for ~2.5 µs a thread, so a process with
 * many idle threads costs the sampler in proportion to them.  A watch is a
 * perf "dummy" event on the thread with context-switch records: the kernel
 * appends a record to a small mapped ring at every switch in or out of the
 * thread, and the sampler only compares the ring's head with where it left
 * it, a memory read.  Nothing is delivered to the thread; the price is one
 * short record per switch of a watched thread, which is why the engine
 * watches only threads that stay blocked (target.c).
 *
 * Opening fails where perf events are not allowed (perf_event_paranoid, a
 * seccomp filter, a locked-memory limit); the engine then reads schedstat as
 * before.
 */
#ifndef PERCH_SWITCHWATCH_H
#define PERCH_SWITCHWATCH_H

#include <stdbool.h>
#include <sys/types.h>

struct switchwatch;

/*
 * Starts watching thread tid.  Returns 0 with *out, or a negative errno:
 * -ESRCH when the thread is gone; -EACCES, -EPERM, -ENOSYS, -ENOENT,
 * -EOPNOTSUPP when watches cannot work here at all; -EMFILE, -ENFILE,
 * -ENOMEM, -EAGAIN for this one thread (resources).
 */
int switchwatch_open(pid_t tid, struct switchwatch **out);

/*
 * Whether the thread was switched in or out since the last call (or since
 * switchwatch_open), and forgets those switches.  Also true when records
 * were lost, which only happens when the ring filled: many switches.
 */
bool switchwatch_moved(struct switchwatch *w);

void switchwatch_close(struct switchwatch *w);

/* Whether an error from switchwatch_open means no watch can work here. */
bool switchwatch_unsupported(int err);

#endif
