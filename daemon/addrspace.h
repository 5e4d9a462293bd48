/*
 * addrspace: what perch knows of a target's memory layout — its current
 * mappings, and for each code mapping the ELF file and load bias behind it.
 *
 * The unwinder and the symbolizer both ask it "what is at this address".
 * ELF files are cached by file identity (elfcache), so a change of the maps
 * (dlopen, dlclose, exec) replaces only the mapping list: addrspace_refresh
 * reports the change so that address-keyed caches (libunwind's) are flushed.
 */
#ifndef PERCH_ADDRSPACE_H
#define PERCH_ADDRSPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "elfcache.h"
#include "maps.h"

struct addrspace {
	pid_t pid;
	struct maps maps;
	struct elfcache *elves;
	unsigned int generation;	/* bumped whenever maps change */
	struct mapping *last;		/* lookup hint */
};

/* Reads the target's maps.  Returns 0 or a negative errno (-ESRCH: gone). */
int addrspace_init(struct addrspace *as, pid_t pid);

/* Frees what addrspace_init allocated; NULL-safe. */
void addrspace_destroy(struct addrspace *as);

/*
 * Re-reads the maps.  Returns 1 when they changed, 0 when not, or a
 * negative errno.  Pointers to the old mappings are invalid after a change.
 */
int addrspace_refresh(struct addrspace *as);

/* The mapping holding addr, or NULL. */
struct mapping *addrspace_find(struct addrspace *as, uint64_t addr);

/*
 * The mapping holding addr with its ELF file and bias resolved, or NULL
 * when addr is in no mapping.  *elf is NULL when the mapping has no usable
 * ELF file (anonymous memory, JIT code, unreadable file).
 */
struct mapping *addrspace_resolve(struct addrspace *as, uint64_t addr,
				  struct elf_file **elf);

#endif
