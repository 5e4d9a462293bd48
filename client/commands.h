/*
 * The client's command table: one entry per subcommand, in the style of
 * tmux.  Each command parses its own options and returns the process exit
 * status (0 success, 1 failure, 2 usage error).
 */
#ifndef PERCH_COMMANDS_H
#define PERCH_COMMANDS_H

#include <stdint.h>

struct command {
	const char *name;
	const char *usage;	/* options after the name */
	const char *summary;	/* one line for `perch --help` */
	const char *help;	/* the rest of `perch CMD --help` */
	int (*run)(int argc, char **argv);
};

int cmd_dump(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_flat(int argc, char **argv);
int cmd_callers(int argc, char **argv);
int cmd_callees(int argc, char **argv);
int cmd_hot_paths(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Prints the call tree of session id, as `perch show` does. */
int report_tree(int64_t id);

/* Prints "perch: " and the message on stderr. */
void client_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the usage of the named command on stderr; returns 2. */
int client_usage(const char *name);

/* Whether argv asks for help ("-h" / "--help"). */
int client_wants_help(int argc, char **argv);

/* Prints the full help of the named command on stdout; returns 0. */
int client_help(const char *name);

#endif
