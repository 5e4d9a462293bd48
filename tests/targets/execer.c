/*
 * execer: spins for a while, then execs burner in the same process, for
 * testing that a profiler notices an exec (new maps, new binary, the other
 * threads gone).  stdin and stdout carry on into burner, which prints its
 * own "ready" line and then obeys stdin as usual.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "target_util.h"

static __attribute__((noinline, noclone)) void before_exec(long ms)
{
	TARGET_SPIN_MS(ms, true);
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: execer --exec PATH [--ms M]";
	const char *path = NULL;
	long ms = 300;
	const struct target_option options[] = {
		{ "exec", .path = &path },
		{ "ms", .long_value = &ms, .min = 0, .max = LONG_MAX },
		{ NULL },
	};

	/*
	 * A test runner that crashes must not leave us spinning.  The setting
	 * survives the exec of a binary that is not set-user-ID.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	target_options(argc, argv, options, usage);
	if (path == NULL)
		target_usage(usage);

	target_ready();
	before_exec(ms);
	execv(path, (char *[]){ (char *)path, "--threads", "1", NULL });
	perror("execer: execv");
	return 1;
}
