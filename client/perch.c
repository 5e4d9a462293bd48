#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

#define COMMON_HELP \
	"\n" \
	"Common options:\n" \
	"  SESSION            a session id, or 'last'\n" \
	"  --thread TID|NAME  only that thread\n" \
	"  --cpu              only samples of running threads (state R: on a CPU;\n" \
	"                     without kernel samples, or ready to run on one too);\n" \
	"                     default: wall-clock time, every thread\n" \
	"  --from T, --to T   a window from the session start (10s, 1m30s)\n"

static const struct command commands[] = {
	{
		"dump", "-p PID [--json]",
		"print the call stack of every thread of a process, once",
		"Stops each running thread of PID just long enough to copy its registers\n"
		"and the top of its stack, then unwinds and symbolizes the copies. Threads\n"
		"blocked in a system call are read without being stopped. No daemon needed.\n"
		"\n"
		"  -p, --pid PID   the process to dump\n"
		"      --json      print a JSON array of threads, each\n"
		"                  {tid, name, state, frames: [{func, file, line, module,\n"
		"                  addr, inlined}]}, frames leaf first\n"
		"      --no-symbols  addresses and modules only (faster)\n",
		cmd_dump,
	},
	{
		"record", "-p PID [-d DURATION] [-r HZ] [--children] [--stops N|all] [--ptrace-only] [--name NAME] [--json] [--no-autostart]",
		"record a profiling session of a running process",
		"Asks the daemon (starting one in the background if none answers) to\n"
		"sample every thread of PID, shows the progress on a terminal, and reports\n"
		"the session when it ends.  Ctrl-C stops the recording and keeps it.\n"
		"\n"
		"  -p, --pid PID        the process to profile\n"
		"  -d, --duration D     how long (10, 30s, 5m, 1h); default: until Ctrl-C\n"
		"  -r, --rate HZ        samples per second, with jitter (default 99)\n"
		"      --children       also sample descendants, as they come and go\n"
		"      --stops N|all    stop at most N running threads of a process per\n"
		"                       tick, in turn, each sample standing for the ticks\n"
		"                       its thread was passed over (default: the number of\n"
		"                       CPUs, as perf takes one sample per CPU); all: every\n"
		"                       running thread at every tick\n"
		"      --ptrace-only    stop running threads to sample them instead of\n"
		"                       letting the kernel sample them (perf events, see\n"
		"                       perchd(8)); the only way where perf events are\n"
		"                       not allowed, taken automatically there\n"
		"      --name NAME      a label for the session\n"
		"      --json           print {session, status, samples, ...} at the end\n"
		"      --no-autostart   fail instead of starting a daemon\n",
		cmd_record,
	},
	{
		"show", "SESSION [--paths a,b] [--show-all] [--min-percent P] [common options]",
		"the call tree of a session, pyinstrument style",
		"Time and share of every call path, outermost first.  Runs of library\n"
		"frames fold into '[N frames hidden]  module, ...' lines: library means a\n"
		"system file (/usr/lib, /lib, [vdso]), or with --paths any frame whose file\n"
		"or module contains none of the given substrings.\n"
		"\n"
		"  --paths a,b        your code: frames outside it count as library\n"
		"  --show-all         hide nothing\n"
		"  --min-percent P    hide nodes under P %% of the samples (default 1)\n"
		"  --json             {session: {...}, tree: {func, file, line, module,\n"
		"                     samples, time_ms, percent, self, children: [...]}}\n"
		COMMON_HELP,
		cmd_show,
	},
	{
		"flat", "SESSION [-n N] [--paths a,b] [--by function|line] [common options]",
		"self time by function (or by line)",
		"  -n N               at most N rows (default 20)\n"
		"  --paths a,b        only functions whose file or module contains one\n"
		"  --by line          one row per source line instead of per function\n"
		"  --json             [{func, file, line, module, samples, time_ms, percent}]\n"
		COMMON_HELP,
		cmd_flat,
	},
	{
		"callers", "SESSION FUNC [-n N] [common options]",
		"who calls FUNC, and how much of FUNC's time each caller brings",
		"  --json             [{func, file, line, module, samples, time_ms, percent}]\n"
		COMMON_HELP,
		cmd_callers,
	},
	{
		"callees", "SESSION FUNC [-n N] [common options]",
		"what FUNC spends its time in ([self]: FUNC's own code)",
		"  --json             [{func, file, line, module, samples, time_ms, percent}]\n"
		COMMON_HELP,
		cmd_callees,
	},
	{
		"hot-paths", "SESSION [-n N] [--paths a,b] [--depth D] [common options]",
		"the call paths that cost most, library frames left out",
		"  -n N               at most N paths (default 10)\n"
		"  --paths a,b        keep only frames whose file or module contains one\n"
		"  --depth D          keep the D innermost of those frames\n"
		"  --json             [{samples, time_ms, percent, path: [{func, file,\n"
		"                     line, module}]}], outermost frame first\n"
		COMMON_HELP,
		cmd_hot_paths,
	},
	{
		"export", "SESSION --format FORMAT [-o FILE] [--paths a,b] [common options]",
		"write a session for other tools: HTML, JSON, flame graphs, speedscope, pprof",
		"  --format FORMAT    html: one self-contained page (call tree, flame graph,\n"
		"                       functions) to share\n"
		"                     json: {session: {...}, frames: [{id, func, file, line,\n"
		"                       module, address, inlined}], stacks: [{id, parent,\n"
		"                       frame}], samples: [{stack, samples}]}; a stack is its\n"
		"                       leaf frame and its parent stack (0: none); samples\n"
		"                       counts those whose leaf is that stack\n"
		"                     folded: 'outer;...;leaf COUNT' lines for flamegraph.pl\n"
		"                       and the tools that read Brendan Gregg's format\n"
		"                     speedscope: speedscope.app's format, a profile per thread\n"
		"                     pprof: gzipped profile.proto for 'go tool pprof' and\n"
		"                       the tools that read it (binary: needs -o)\n"
		"  -o, --output FILE  write FILE (replaced only once complete); default:\n"
		"                     standard output\n"
		"  --paths a,b        html: your code; frames outside it fold away as\n"
		"                     library frames (default: system files)\n"
		COMMON_HELP,
		cmd_export,
	},
	{
		"sessions", "[--json]",
		"list the recorded sessions",
		"Reads the database; no daemon needed.\n",
		cmd_sessions,
	},
	{
		"status", "[--json]",
		"show the sessions recording now",
		"Elapsed time, samples and late samples of each running session.\n",
		cmd_status,
	},
	{
		"stop", "SESSION",
		"stop a recording session (what was recorded is kept)",
		"",
		cmd_stop,
	},
	{
		"rm", "SESSION",
		"delete a recorded session and its samples",
		"Through the daemon, which gives the space back to the file system.\n",
		cmd_rm,
	},
	{
		"schedule", "add|ls|rm ...",
		"profile a process every so often",
		"  perch schedule add (--pid PID | --exe NAME | --cmdline TEXT) --every INTERVAL\n"
		"                     --for DURATION [-r HZ] [--children] [--name NAME]\n"
		"                     [--keep N] [--keep-for AGE] [--stops N|all] [--ptrace-only]\n"
		"  perch schedule ls [--json]\n"
		"  perch schedule rm SCHEDULE\n"
		"\n"
		"A schedule's target is looked up at each firing (servers restart and change\n"
		"pid): --exe matches the executable's file name, --cmdline a part of the\n"
		"command line; the oldest matching process is profiled.  A firing that finds\n"
		"no process is recorded as skipped.  --keep and --keep-for limit how many\n"
		"of the schedule's sessions, and how old, are kept.  --stops and\n"
		"--ptrace-only are as for perch record.\n",
		cmd_schedule,
	},
};

static const size_t ncommands = sizeof commands / sizeof commands[0];

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ncommands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

void client_error(const char *fmt, ...)
{
	va_list ap;

	fputs("perch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int client_usage(const char *name)
{
	const struct command *c = find_command(name);

	if (c != NULL)
		fprintf(stderr, "usage: perch %s %s\n", c->name, c->usage);
	return 2;
}

int client_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

int client_help(const char *name)
{
	const struct command *c = find_command(name);

	if (c == NULL)
		return 2;
	printf("usage: perch %s %s\n\n%s.\n\n%s", c->name, c->usage, c->summary,
	       c->help);
	return 0;
}

static void main_help(FILE *f)
{
	fprintf(f, "usage: perch COMMAND [OPTIONS]\n\n"
		   "perch is a sampling profiler for running programs.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ncommands; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nDurations are a decimal number and a unit: us, ms, s, m (or min), h, d;\n"
		   "several add up (500ms, 1.5s, 1h30m); a bare number is seconds.  Rates are\n"
		   "hertz: 99, 99hz, 1khz.  No other form (0x1e, 1e3, .5) is accepted.\n"
		   "\nRun 'perch COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		main_help(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc > 2 && find_command(argv[2]) != NULL)
			return client_help(argv[2]);
		main_help(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("perch %s\n", PERCH_VERSION);
		return 0;
	}
	c = find_command(argv[1]);
	if (c == NULL) {
		client_error("unknown command '%s' (see 'perch --help')", argv[1]);
		return 2;
	}
	if (client_wants_help(argc - 1, argv + 1))
		return client_help(c->name);
	return c->run(argc - 1, argv + 1);
}
