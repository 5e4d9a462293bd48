/*
 * /proc/PID/task/TID/syscall and .../schedstat, the two one-line files the
 * engine reads about a blocked thread.  The syscall parser accepts only what
 * the kernel writes: written back the way the kernel writes it, what it
 * accepted must come out byte for byte, and parse to the same.
 */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "procfs.h"

static void syscall_round_trip(const struct procfs_syscall *a, const char *text,
			       size_t size)
{
	struct procfs_syscall b;
	char line[512];
	int n = 0;

	switch (a->state) {
	case PROCFS_SYSCALL_RUNNING:
		n = snprintf(line, sizeof line, "running\n");
		break;
	case PROCFS_SYSCALL_NOT_IN_SYSCALL:
		FUZZ_CHECK(a->nr == -1);
		n = snprintf(line, sizeof line, "-1 0x%" PRIx64 " 0x%" PRIx64 "\n",
			     a->sp, a->pc);
		break;
	case PROCFS_SYSCALL_BLOCKED:
		FUZZ_CHECK(a->nr >= 0);
		n = snprintf(line, sizeof line, "%ld", a->nr);
		for (int i = 0; i < 6; i++)
			n += snprintf(line + n, sizeof line - (size_t)n, " 0x%" PRIx64,
				      a->args[i]);
		n += snprintf(line + n, sizeof line - (size_t)n,
			      " 0x%" PRIx64 " 0x%" PRIx64 "\n", a->sp, a->pc);
		break;
	default:
		FUZZ_CHECK(!"unknown state");
	}
	FUZZ_CHECK((size_t)n == size && memcmp(line, text, size) == 0);
	FUZZ_CHECK(procfs_parse_syscall(line, (size_t)n, &b) == 0);
	FUZZ_CHECK(memcmp(a, &b, sizeof b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct procfs_schedstat ss;
	struct procfs_syscall sc;

	if (procfs_parse_syscall(text, size, &sc) == 0)
		syscall_round_trip(&sc, text, size);
	procfs_parse_schedstat(text, size, &ss);
	return 0;
}
