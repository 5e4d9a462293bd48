/*
 * symbolizer: instruction addresses to functions, source lines and inlined
 * frames, with libdw.
 *
 * Results are cached by (ELF file identity, ELF virtual address), so they
 * stay valid across changes of the target's maps; one symbolizer serves one
 * target and is not thread-safe.  Every string handed out is owned by the
 * symbolizer and lives until symbolizer_free.  What libdw loaded for a file
 * with a build-id (its symbol table and DWARF, inflated) is shared by all the
 * symbolizers of the process, which may run on different threads, and kept
 * for ten minutes after the last of them is freed.
 *
 * Fallbacks, in order: DWARF (the file's own or a separate debug file found
 * by build-id under /usr/lib/debug/.build-id/), the ELF symbol tables
 * (.symtab, else .dynsym), else "module+0xOFF".  Code in no ELF file is
 * looked up in /tmp/perf-PID.map (the perf JIT convention) and is otherwise
 * "[unknown]".
 */
#ifndef PERCH_SYMBOLIZER_H
#define PERCH_SYMBOLIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elfcache.h"

struct sym_frame {
	const char *func;	/* never NULL */
	const char *file;	/* source file, or NULL */
	int line;		/* 0 when unknown */
	bool inlined;		/* inlined into the frame that follows it */
};

/* Frames of one address, innermost (inlined callee) first. */
struct sym_result {
	const struct sym_frame *frames;
	size_t n;		/* at least 1 */
};

struct symbolizer;

/* pid names the target, for its perf map (/tmp/perf-PID.map). */
struct symbolizer *symbolizer_create(pid_t pid);

/* NULL-safe. */
void symbolizer_free(struct symbolizer *s);

/*
 * Symbolizes ELF virtual address vaddr of file f.  is_return says vaddr is a
 * return address, so the call instruction before it is what is looked up.
 * Never fails: at worst the single frame "module+0xOFF".
 */
void symbolizer_lookup(struct symbolizer *s, struct elf_file *f,
		       uint64_t vaddr, bool is_return, struct sym_result *out);

/* Symbolizes an address in no ELF file: perf map entry or "[unknown]". */
void symbolizer_lookup_anon(struct symbolizer *s, uint64_t addr,
			    struct sym_result *out);

/*
 * Frees the shared libdw data no symbolizer uses: all of it, or only what
 * has been unused for ten minutes.  perchd calls it when idle.
 */
void symbolizer_trim(bool all);

/* How many files' libdw data are held (in use or kept), for tests. */
size_t symbolizer_shared_modules(void);

#endif
