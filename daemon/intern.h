/*
 * intern: turns the frames of one session's samples into small integers —
 * module ids, frame ids and stack ids — so that each distinct frame and each
 * distinct stack is stored once.
 *
 * A stack is a node of a prefix tree: (parent node, frame), the outermost
 * frame hanging off the root node 0.  Interning a sample's stack walks it
 * from the outermost frame in and returns the node of its leaf.  Whatever an
 * interning call creates for the first time is appended to the caller's
 * definitions (struct intern_defs) so that it can be written to the
 * database with the samples that use it.
 *
 * One interner per session, used by that session's sampler thread only.
 */
#ifndef PERCH_INTERN_H
#define PERCH_INTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

struct intern_module {
	uint32_t id;
	char *path;		/* owned */
	char *build_id;		/* owned, hex or "" */
};

struct intern_frame {
	uint32_t id;
	int64_t module_id;	/* -1: no module */
	uint64_t address;	/* module offset, or absolute without module */
	char *func;		/* owned */
	char *file;		/* owned, or NULL */
	int line;
	bool inlined;
};

struct intern_node {
	uint32_t id, parent_id, frame_id;
};

/* Definitions created by interning calls, not yet stored.  Owned by caller. */
struct intern_defs {
	struct intern_module *modules;
	size_t nmodules, modules_cap;
	struct intern_frame *frames;
	size_t nframes, frames_cap;
	struct intern_node *nodes;
	size_t nnodes, nodes_cap;
};

struct interner;

struct interner *interner_create(void);

/* NULL-safe. */
void interner_free(struct interner *in);

/*
 * The stack id of frames[0..n) (leaf first, as the engine gives them).
 * New modules, frames and nodes are appended to defs.  n == 0 gives 0.
 * The frames' strings must stay valid and unchanged until interner_forget
 * (the engine's do, until target_close).
 */
uint32_t interner_stack(struct interner *in, const struct perch_frame *frames,
			size_t n, struct intern_defs *defs);

/*
 * Forgets the engine's string pointers the interner has seen (ids and
 * definitions are by content and stay).  Call it after closing a target
 * whose frames went through this interner: the next target may reuse that
 * memory for other strings.  The next stacks cost a content lookup.
 */
void interner_forget(struct interner *in);

/* Empties defs (keeps its arrays for reuse). */
void intern_defs_clear(struct intern_defs *defs);

/* Frees what defs owns; NULL-safe. */
void intern_defs_free(struct intern_defs *defs);

#endif
