/*
 * maps: the address space of a target as /proc/PID/maps describes it.
 *
 * A maps object is a sorted array of mappings.  It is read whole and
 * replaced whole when the target's address space changes (dlopen, munmap,
 * exec); the unwinder and symbolizer hold a pointer to it only for the
 * duration of one sample.
 */
#ifndef PERCH_MAPS_H
#define PERCH_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procfs.h"

struct elf_file;

struct mapping {
	uint64_t start, end, offset;
	unsigned int perms;	/* PROCFS_MAP_* */
	dev_t dev;
	uint64_t inode;
	char *path;		/* owned; NULL when anonymous */
	bool deleted;		/* the file was deleted or replaced */
	bool is_stack;		/* "[stack]" */
	bool is_vdso;		/* "[vdso]" */
	/* Filled in by the engine when the mapping is first needed. */
	bool elf_tried;
	struct elf_file *elf;	/* borrowed from the elfcache */
	bool bias_known;
	uint64_t bias;		/* ELF vaddr = address - bias */
};

struct maps {
	struct mapping *v;
	size_t n;
};

/* Reads /proc/PID/maps.  On success *out is owned by the caller. */
int maps_read(pid_t pid, struct maps *out);

/* Parses the text of a maps file (exposed for tests and fuzzing). */
int maps_parse(const char *text, size_t len, struct maps *out);

/* The mapping holding addr, or NULL. */
struct mapping *maps_find(const struct maps *m, uint64_t addr);

/* Frees the mappings (not the struct maps itself); NULL-safe. */
void maps_clear(struct maps *m);

#endif
