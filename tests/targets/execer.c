/*
 * execer: spins for a while, then execs burner in the same process, for
 * testing that a profiler notices an exec (new maps, new binary, the other
 * threads gone).  stdin and stdout carry on into burner, which prints its
 * own "ready" line and then obeys stdin as usual.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static __attribute__((noinline, noclone)) void before_exec(long ms)
{
	struct timespec start, now;
	unsigned long x = 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++) {
			x = x * 6364136223846793005ul + 1442695040888963407ul;
			__asm__ volatile("" : "+r"(x));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 +
		 (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

static void usage(void)
{
	fprintf(stderr, "usage: execer --exec PATH [--ms M]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "exec", required_argument, NULL, 'e' },
		{ "ms", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	long ms = 300;
	char *end;
	int opt;

	/*
	 * A test runner that crashes must not leave us spinning.  The setting
	 * survives the exec of a binary that is not set-user-ID.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'e':
			path = optarg;
			break;
		case 'm':
			ms = strtol(optarg, &end, 10);
			if (*end != '\0' || ms < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc || path == NULL)
		usage();

	printf("ready\n");
	fflush(stdout);
	before_exec(ms);
	execv(path, (char *[]){ (char *)path, "--threads", "1", NULL });
	perror("execer: execv");
	return 1;
}
