/*
 * perch dump: one stack sample of every thread of a process, like eu-stack
 * or py-spy dump, through the same engine the daemon samples with.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "target.h"
#include "tracer.h"

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT_MAX)
		return -1;
	*out = (pid_t)v;
	return 0;
}

static const char *capture_name(enum perch_capture c)
{
	switch (c) {
	case PERCH_CAPTURE_STOPPED: return "stopped";
	case PERCH_CAPTURE_BLOCKED: return "blocked";
	case PERCH_CAPTURE_REUSED: return "reused";
	case PERCH_CAPTURE_KERNEL: return "kernel";
	case PERCH_CAPTURE_LAST_BLOCKED: return "last-blocked";
	default: return "none";
	}
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void print_frame(const struct perch_frame *f)
{
	char where[PATH_MAX + 64];

	if (f->file != NULL && f->line > 0)
		snprintf(where, sizeof where, "%s:%d", f->file, f->line);
	else if (f->module != NULL)
		snprintf(where, sizeof where, "%s+0x%" PRIx64, base_name(f->module),
			 f->module_offset);
	else
		snprintf(where, sizeof where, "0x%" PRIx64, f->addr);
	printf("    %-40s %s%s\n", f->func, where, f->inlined ? "  (inlined)" : "");
}

static void print_text(pid_t pid, const struct perch_sample *s)
{
	printf("Process %d: %zu thread%s\n", (int)pid, s->nthreads,
	       s->nthreads == 1 ? "" : "s");
	for (size_t i = 0; i < s->nthreads; i++) {
		const struct perch_thread *th = &s->threads[i];

		printf("\nThread %d \"%s\" %s", (int)th->tid, th->name,
		       target_state_name(th->state));
		if (th->capture == PERCH_CAPTURE_STOPPED)
			printf(" (paused %.1f us)\n", (double)th->pause_ns / 1000.0);
		else if (th->capture == PERCH_CAPTURE_BLOCKED)
			printf(" (read without stopping)\n");
		else
			printf("\n");
		if (th->capture == PERCH_CAPTURE_NONE) {
			printf("    [no stack: %s]\n", strerror(-th->error));
			continue;
		}
		for (size_t k = 0; k < th->nframes; k++)
			print_frame(&th->frames[k]);
		if (!th->complete)
			printf("    [unwinding stopped here]\n");
	}
}

static json_object *frame_json(const struct perch_frame *f)
{
	json_object *o = json_object_new_object();
	char addr[32];

	snprintf(addr, sizeof addr, "0x%" PRIx64, f->addr);
	json_object_object_add(o, "func", json_object_new_string(f->func));
	json_object_object_add(o, "file", f->file ? json_object_new_string(f->file) : NULL);
	json_object_object_add(o, "line", f->line > 0 ? json_object_new_int(f->line) : NULL);
	json_object_object_add(o, "module",
			       f->module ? json_object_new_string(f->module) : NULL);
	json_object_object_add(o, "addr", json_object_new_string(addr));
	json_object_object_add(o, "inlined", json_object_new_boolean(f->inlined));
	return o;
}

static void print_json(const struct perch_sample *s)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->nthreads; i++) {
		const struct perch_thread *th = &s->threads[i];
		json_object *o = json_object_new_object();
		json_object *frames = json_object_new_array();

		for (size_t k = 0; k < th->nframes; k++)
			json_object_array_add(frames, frame_json(&th->frames[k]));
		json_object_object_add(o, "tid", json_object_new_int(th->tid));
		json_object_object_add(o, "name", json_object_new_string(th->name));
		json_object_object_add(o, "state",
				       json_object_new_string(target_state_name(th->state)));
		json_object_object_add(o, "capture",
				       json_object_new_string(capture_name(th->capture)));
		json_object_object_add(o, "complete", json_object_new_boolean(th->complete));
		json_object_object_add(o, "frames", frames);
		json_object_array_add(arr, o);
	}
	puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-symbols", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct target_opts opts = { 0 };
	struct perch_sample sample;
	struct target *t;
	bool json = false;
	pid_t pid = 0;
	char *cause;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &pid) < 0) {
				client_error("invalid pid '%s'", optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			opts.no_symbols = true;
			break;
		default:
			return client_usage("dump");
		}
	}
	if (pid == 0 || optind != argc)
		return client_usage("dump");
	tracer_prioritize();
	rc = target_open(pid, &opts, &t, &cause);
	if (rc < 0) {
		client_error("%s", cause);
		free(cause);
		return 1;
	}
	rc = target_sample(t, &sample);
	if (rc < 0) {
		client_error(rc == -ESRCH ? "process %d exited" : "cannot sample %d: %s",
			     (int)pid, strerror(-rc));
		target_close(t);
		return 1;
	}
	if (json)
		print_json(&sample);
	else
		print_text(pid, &sample);
	target_close(t);
	return 0;
}
