/*
 * /proc/PID/task/TID/status: "Key:\tvalue" lines, of which the engine reads
 * a few.  What the parser accepts must mean the same once written back the
 * way the kernel writes it.
 */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "procfs.h"

static void round_trip(const struct procfs_status *a)
{
	struct procfs_status b;
	char text[1024];
	int n;

	n = snprintf(text, sizeof text,
		     "Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\n"
		     "Pid:\t%d\nTracerPid:\t%d\nUid:\t%u\t%u\t%u\t%u\n",
		     a->name, (int)a->tgid, (int)a->tgid, (int)a->tracer_pid,
		     (unsigned)a->uid_real, (unsigned)a->uid_effective,
		     (unsigned)a->uid_effective, (unsigned)a->uid_effective);
	if (a->has_kthread)
		n += snprintf(text + n, sizeof text - (size_t)n, "Kthread:\t%d\n",
			      a->kthread);
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "voluntary_ctxt_switches:\t%" PRIu64
		      "\nnonvoluntary_ctxt_switches:\t%" PRIu64 "\n",
		      a->voluntary_ctxt_switches, a->nonvoluntary_ctxt_switches);
	FUZZ_CHECK(procfs_parse_status(text, (size_t)n, &b) == 0);
	FUZZ_CHECK(memcmp(a, &b, sizeof b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfs_status st;
	size_t len;

	if (procfs_parse_status((const char *)data, size, &st) < 0)
		return 0;
	len = strnlen(st.name, sizeof st.name);
	FUZZ_CHECK(len < sizeof st.name);
	FUZZ_CHECK(st.tgid >= 0 && st.tracer_pid >= 0);
	/* A name holding NUL is cut there when written back: compare that. */
	memset(st.name + len, 0, sizeof st.name - len);
	round_trip(&st);
	return 0;
}
