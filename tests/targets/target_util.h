/*
 * target_util.h: what the test targets (README.md) have in common: their
 * options, the "ready" line, quitting on "q" or EOF, starting a thread, and
 * the busy loops.  Header-only, so that each target stays one source file
 * and CMakeLists.txt builds it as before.
 *
 * The busy loops are macros, not inline functions: an inlined frame under
 * the function a test expects at the leaf would be a surprise to the tests
 * (see BURN in burner.c).
 */
#ifndef PERCH_TARGET_UTIL_H
#define PERCH_TARGET_UTIL_H

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One step of a generator that the compiler can neither fold nor drop. */
#define TARGET_MIX(x)							\
	do {								\
		(x) = (x) * 6364136223846793005ul + 1442695040888963407ul; \
		__asm__ volatile("" : "+r"(x));				\
	} while (0)

/* Spins in the calling function for ms milliseconds, or until go_on is false. */
#define TARGET_SPIN_MS(ms, go_on)					\
	do {								\
		struct timespec start_, now_;				\
		unsigned long x_ = 1;					\
									\
		clock_gettime(CLOCK_MONOTONIC, &start_);		\
		do {							\
			for (int i_ = 0; i_ < 1000; i_++)		\
				TARGET_MIX(x_);				\
			clock_gettime(CLOCK_MONOTONIC, &now_);		\
		} while ((go_on) &&					\
			 (now_.tv_sec - start_.tv_sec) * 1000 +		\
			 (now_.tv_nsec - start_.tv_nsec) / 1000000 < (ms)); \
	} while (0)

/*
 * A long option of a target: exactly one of the pointers is set, and says
 * what the option takes.  Numbers must be whole decimal numbers in
 * [min, max] once converted to the pointer's type.
 */
struct target_option {
	const char *name;
	int *int_value;
	long *long_value;
	unsigned int *uint_value;
	double *seconds;	/* a number of seconds, >= 0 */
	const char **path;
	bool *flag;		/* no argument: set to true */
	long min, max;
};

#define TARGET_OPTIONS_MAX 8

/* Prints the usage line and exits 2, as every target does on bad arguments. */
static inline _Noreturn void target_usage(const char *usage)
{
	fprintf(stderr, "%s\n", usage);
	exit(2);
}

/* Stores arg in o's variable, or returns false when arg is not fit for it. */
static inline bool target_option_set(const struct target_option *o, const char *arg)
{
	char *end = NULL;

	if (o->flag != NULL) {
		*o->flag = true;
		return true;
	}
	if (o->path != NULL) {
		*o->path = arg;
		return true;
	}
	if (o->int_value != NULL) {
		*o->int_value = (int)strtol(arg, &end, 10);
		return *end == '\0' && *o->int_value >= o->min && *o->int_value <= o->max;
	}
	if (o->long_value != NULL) {
		*o->long_value = strtol(arg, &end, 10);
		return *end == '\0' && *o->long_value >= o->min && *o->long_value <= o->max;
	}
	if (o->uint_value != NULL) {
		*o->uint_value = (unsigned int)strtoul(arg, &end, 10);
		return *end == '\0' && *o->uint_value >= (unsigned long)o->min &&
		       *o->uint_value <= (unsigned long)o->max;
	}
	*o->seconds = strtod(arg, &end);
	return *end == '\0' && *o->seconds >= 0;
}

/*
 * Parses the long options in opts (ended by an entry with a NULL name) and
 * takes no other argument; prints usage and exits 2 on anything else.
 */
static inline void target_options(int argc, char **argv, const struct target_option *opts,
				  const char *usage)
{
	struct option options[TARGET_OPTIONS_MAX + 1] = { { NULL, 0, NULL, 0 } };
	int n = 0, opt;

	for (; opts[n].name != NULL; n++) {
		if (n == TARGET_OPTIONS_MAX)
			abort();
		options[n] = (struct option){ opts[n].name,
					      opts[n].flag ? no_argument : required_argument,
					      NULL, n + 1 };
	}
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
		if (opt < 1 || opt > n || !target_option_set(&opts[opt - 1], optarg))
			target_usage(usage);
	if (optind != argc)
		target_usage(usage);
}

/* Starts fn(arg) in a new thread, or exits 1: a target needs all its threads. */
static inline pthread_t target_thread(const char *prog, void *(*fn)(void *), void *arg)
{
	pthread_t thread;

	if (pthread_create(&thread, NULL, fn, arg) != 0) {
		fprintf(stderr, "%s: pthread_create failed\n", prog);
		exit(1);
	}
	return thread;
}

/* The line the tests wait for: the target is set up. */
static inline void target_ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

/* Returns at EOF or on a line "q": the test closes or writes to our stdin. */
static inline void target_wait_for_quit(void)
{
	char line[64];

	while (fgets(line, sizeof line, stdin) != NULL)
		if (strcmp(line, "q\n") == 0 || strcmp(line, "q") == 0)
			return;
}

#endif
