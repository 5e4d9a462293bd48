/*
 * elfcache: the ELF files a target has mapped, each opened and mapped into
 * perch once and shared by the unwinder (unwind tables, read-only code and
 * data) and the symbolizer (symbols, lines, inlines).
 *
 * Files are found through /proc/PID/map_files/ first, so that a binary
 * deleted or replaced since the target started, or living in another mount
 * namespace (a container), is the very file the target runs; the path under
 * /proc/PID/root/ is the fallback when map_files is not accessible.
 *
 * Entries are keyed by the device and inode the target's maps show, and live
 * until the cache is freed: mappings hold borrowed pointers to them.
 */
#ifndef PERCH_ELFCACHE_H
#define PERCH_ELFCACHE_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "maps.h"

struct elf_file {
	char *path;		/* the path the target uses (for display) */
	dev_t dev;		/* key: as /proc/PID/maps shows it */
	uint64_t inode;
	int fd;			/* -1 for an in-memory image (the vDSO) */
	unsigned char *image;	/* the whole file, read-only */
	size_t size;
	bool image_mmapped;
	Elf *elf;		/* libelf handle over image */
	GElf_Half e_type;
	GElf_Phdr *phdr;
	size_t nphdr;
	unsigned char build_id[64];
	size_t build_id_len;
	char build_id_hex[129];	/* "" when the file has none */
	/* From PT_GNU_EH_FRAME, in ELF virtual addresses. */
	bool has_eh_table;
	uint64_t eh_hdr_vaddr;	/* the .eh_frame_hdr section */
	uint64_t eh_table_vaddr;	/* its binary search table */
	uint64_t fde_count;
	uint64_t text_lo, text_hi;	/* span of the executable PT_LOADs */
};

struct elfcache;

struct elfcache *elfcache_create(void);

/* Frees every elf_file; NULL-safe. */
void elfcache_free(struct elfcache *c);

/*
 * The ELF file behind mapping m of process pid, opened on first use.
 * Returns 0 and a borrowed *out, -ENOENT when the mapping has no file or the
 * file cannot be opened, -ENOEXEC when it is not an ELF file.  A failure is
 * remembered, so an unreadable file costs one attempt.
 */
int elfcache_get(struct elfcache *c, pid_t pid, const struct mapping *m,
		 struct elf_file **out);

/*
 * The load bias of mapping m over file f: ELF vaddr = address - bias.
 * Returns -ENOENT when no PT_LOAD segment covers the mapping's offset.
 */
int elf_file_bias(const struct elf_file *f, const struct mapping *m,
		  uint64_t *bias);

/* Builds an elf_file over a memory image (the vDSO, tests).  Takes image. */
int elf_file_from_memory(unsigned char *image, size_t size, const char *path,
			 struct elf_file **out);

void elf_file_free(struct elf_file *f);

#endif
