/*
 * procfs: parsers for the /proc files the engine reads about a target.
 *
 * Every parser takes the file's text and its length (not necessarily
 * NUL-terminated), so parsers can be unit-tested and fuzzed without a
 * process.  They return 0, or -EINVAL when the text is not what the kernel
 * writes.  The readers below do the I/O.
 */
#ifndef PERCH_PROCFS_H
#define PERCH_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Permission bits of a mapping. */
#define PROCFS_MAP_READ   0x1u
#define PROCFS_MAP_WRITE  0x2u
#define PROCFS_MAP_EXEC   0x4u
#define PROCFS_MAP_SHARED 0x8u

/* One line of /proc/PID/maps.  path points into the parsed text. */
struct procfs_map_line {
	uint64_t start, end, offset;
	unsigned int perms;
	unsigned int dev_major, dev_minor;
	uint64_t inode;
	const char *path;	/* not NUL-terminated; NULL when anonymous */
	size_t path_len;
	bool deleted;		/* " (deleted)" was removed from path_len */
};

int procfs_parse_maps_line(const char *line, size_t len,
			   struct procfs_map_line *out);

/* The fields of /proc/PID/task/TID/stat the engine uses. */
struct procfs_stat {
	char comm[64];		/* the kernel limits it to 15 bytes + NUL */
	char state;		/* R S D T t Z X I P ... */
	pid_t ppid;
	unsigned long flags;	/* PF_* task flags */
	uint64_t utime, stime;	/* clock ticks */
	uint64_t starttime;	/* clock ticks after boot */
	int processor;		/* CPU it last ran on, -1 if not shown */
};

/* PF_KTHREAD from include/linux/sched.h: a kernel thread. */
#define PROCFS_PF_KTHREAD 0x00200000ul

int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *out);

/* The fields of /proc/PID/status the engine uses. */
struct procfs_status {
	char name[64];
	pid_t tgid;
	pid_t tracer_pid;
	uid_t uid_real, uid_effective;
	uint64_t voluntary_ctxt_switches;
	uint64_t nonvoluntary_ctxt_switches;
	bool has_kthread;	/* the kernel printed a "Kthread:" line */
	bool kthread;
};

int procfs_parse_status(const char *buf, size_t len, struct procfs_status *out);

/* What /proc/PID/task/TID/syscall says about a thread. */
enum procfs_syscall_state {
	PROCFS_SYSCALL_RUNNING,		/* on a CPU or runnable: no registers */
	PROCFS_SYSCALL_BLOCKED,		/* blocked inside syscall nr */
	PROCFS_SYSCALL_NOT_IN_SYSCALL,	/* blocked, but not in a syscall */
};

struct procfs_syscall {
	enum procfs_syscall_state state;
	long nr;
	uint64_t args[6];
	uint64_t sp, pc;
};

int procfs_parse_syscall(const char *buf, size_t len, struct procfs_syscall *out);

/* /proc/PID/task/TID/schedstat: time on CPU, time waiting, timeslices. */
struct procfs_schedstat {
	uint64_t run_ns, wait_ns, timeslices;
};

int procfs_parse_schedstat(const char *buf, size_t len,
			   struct procfs_schedstat *out);

/*
 * Reads a small /proc file from offset 0 of an open descriptor into buf
 * (NUL-terminated).  Returns the length or a negative errno; ESRCH when the
 * task is gone.  Reading an open descriptor again from offset 0 makes the
 * kernel regenerate the text, so one descriptor serves every tick.
 */
ssize_t procfs_pread(int fd, char *buf, size_t size);

/*
 * The same for a file the kernel generates as one line (a task's stat,
 * schedstat, syscall): a read that returns a whole line shorter than asked
 * is the whole file, and is not followed by the read at the next offset
 * that procfs_pread makes to see the end.  That read is not free: at an
 * offset other than where the last read stopped, the kernel generates the
 * text again (for stat, every field formatted anew) to skip to it.
 */
ssize_t procfs_pread_line(int fd, char *buf, size_t size);

/* Same for a path: open, read, close. */
ssize_t procfs_read_path(const char *path, char *buf, size_t size);

/* Reads and parses /proc/PID/stat: 0, or a negative errno (-EINVAL: garbled). */
int procfs_read_stat(pid_t pid, struct procfs_stat *out);

#endif
