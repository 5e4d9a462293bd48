/*
 * access: who may profile what, and which processes a schedule's target
 * names.
 *
 * A root daemon's socket would otherwise be a root shell for anyone who can
 * reach it: a non-root client may only profile a process it could ptrace
 * itself.  The rule is the kernel's own (__ptrace_may_access): the client's
 * uid equals the target's real, effective and saved uid, its gid the target's
 * three gids, and the target is dumpable (not setuid, not marked
 * non-dumpable), and Yama's ptrace_scope where it applies (the daemon, root,
 * would be let through: the question is what the client would be allowed).
 * Root may profile anything perch can trace.
 */
#ifndef PERCH_ACCESS_H
#define PERCH_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Yama's kernel.yama.ptrace_scope, read at each access_check: 0 (or no Yama)
 * the classic rule; 1 a user may trace only descendants of the tracing
 * process; 2 only root (CAP_SYS_PTRACE); 3 nobody, root included.  Tests
 * name another file in $PERCH_PTRACE_SCOPE_FILE.
 */
#define ACCESS_SCOPE_PATH "/proc/sys/kernel/yama/ptrace_scope"

/* The scope, 0 when there is no Yama, or a negative errno (unreadable). */
int access_ptrace_scope(void);

/*
 * Whether the client (uid, gid, and the pid of the process that asked, 0
 * for a schedule) could ptrace pid, with Yama's rules on top of the classic
 * one: under scope 1 pid must descend from client (the parent links of
 * /proc; PR_SET_PTRACER exceptions are not visible there and do not count);
 * under 2, or when the scope cannot be read, only root; under 3 nobody.
 * Returns 0, or -EPERM/-ESRCH with a one-line *cause (caller frees).
 */
int access_check(pid_t pid, uid_t uid, gid_t gid, pid_t client, char **cause);

/*
 * access_check again, cheaply enough for every tick (one stat): a process
 * that execs a setuid or setgid program or calls PR_SET_DUMPABLE 0 becomes
 * root's in /proc, and must not be sampled for uid any longer.  Returns 0,
 * -EPERM, or -ESRCH when it is gone.
 */
int access_recheck(pid_t pid, uid_t uid, gid_t gid);

/* Whether a client may see or stop things owned by owner_uid. */
bool access_owns(uid_t client_uid, uid_t owner_uid);

/* The effective uid of a process, or -1. */
long access_process_uid(pid_t pid);

/*
 * The processes a schedule target names, oldest first: kind "exe" matches
 * the executable's file name (or the process name), "cmdline" a substring of
 * the command line, "pid" the pid itself.  Kernel threads, zombies and the
 * daemon itself never match.  Returns the count (0: none) with *pids
 * (caller frees), or a negative errno.
 */
int access_find(const char *kind, const char *target, pid_t **pids);

#endif
