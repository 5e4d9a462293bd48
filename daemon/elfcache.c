#include "elfcache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xalloc.h"

/* One remembered lookup: a file, or the error that opening it gave. */
struct entry {
	dev_t dev;
	uint64_t inode;
	char *path;
	int error;
	struct elf_file *file;
};

struct elfcache {
	struct entry *v;
	size_t n, cap;
};

/* DWARF pointer encodings used by .eh_frame_hdr (LSB 5.0, "DWARF Extensions"). */
#define DW_EH_PE_omit    0xff
#define DW_EH_PE_udata4  0x03
#define DW_EH_PE_sdata4  0x0b
#define DW_EH_PE_udata8  0x04
#define DW_EH_PE_sdata8  0x0c
#define DW_EH_PE_datarel 0x30

struct elfcache *elfcache_create(void)
{
	static bool version_set;

	if (!version_set) {
		elf_version(EV_CURRENT);
		version_set = true;
	}
	return xcalloc(1, sizeof(struct elfcache));
}

void elfcache_free(struct elfcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		elf_file_free(c->v[i].file);
		free(c->v[i].path);
	}
	free(c->v);
	free(c);
}

void elf_file_free(struct elf_file *f)
{
	if (f == NULL)
		return;
	if (f->elf != NULL)
		elf_end(f->elf);
	if (f->image_mmapped)
		munmap(f->image, f->size);
	else
		free(f->image);
	if (f->fd >= 0)
		close(f->fd);
	free(f->phdr);
	free(f->path);
	free(f);
}

static void read_build_id(struct elf_file *f)
{
	for (size_t i = 0; i < f->nphdr; i++) {
		const GElf_Phdr *ph = &f->phdr[i];
		Elf_Data *data;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;

		if (ph->p_type != PT_NOTE || ph->p_offset > f->size ||
		    ph->p_filesz > f->size - ph->p_offset)
			continue;
		data = elf_getdata_rawchunk(f->elf, (int64_t)ph->p_offset,
					    ph->p_filesz,
					    ph->p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
		if (data == NULL)
			continue;
		while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0 &&
			    nh.n_descsz > 0 && nh.n_descsz <= sizeof f->build_id) {
				memcpy(f->build_id, (char *)data->d_buf + desc_off,
				       nh.n_descsz);
				f->build_id_len = nh.n_descsz;
				for (size_t k = 0; k < nh.n_descsz; k++)
					snprintf(f->build_id_hex + 2 * k, 3, "%02x",
						 f->build_id[k]);
				return;
			}
		}
	}
}

static int encoded_size(uint8_t enc)
{
	switch (enc & 0x0f) {
	case DW_EH_PE_udata4:
	case DW_EH_PE_sdata4:
		return 4;
	case DW_EH_PE_udata8:
	case DW_EH_PE_sdata8:
		return 8;
	default:
		return -1;
	}
}

/*
 * Reads the header of .eh_frame_hdr.  libunwind's remote table search needs
 * the binary search table in its usual form: datarel, signed 4-byte entries.
 */
static void read_eh_frame_hdr(struct elf_file *f)
{
	const GElf_Phdr *eh = NULL;
	const uint8_t *p;
	int ptr_size, count_size;
	uint64_t count = 0;

	f->text_lo = UINT64_MAX;
	f->text_hi = 0;
	for (size_t i = 0; i < f->nphdr; i++) {
		const GElf_Phdr *ph = &f->phdr[i];

		if (ph->p_type == PT_GNU_EH_FRAME)
			eh = ph;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			if (ph->p_vaddr < f->text_lo)
				f->text_lo = ph->p_vaddr;
			if (ph->p_vaddr + ph->p_memsz > f->text_hi)
				f->text_hi = ph->p_vaddr + ph->p_memsz;
		}
	}
	if (eh == NULL || f->text_lo >= f->text_hi || eh->p_offset > f->size ||
	    f->size - eh->p_offset < 4 + 8 + 8)
		return;
	p = f->image + eh->p_offset;
	if (p[0] != 1 || p[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return;
	ptr_size = encoded_size(p[1]);
	count_size = encoded_size(p[2]);
	if (ptr_size < 0 || count_size < 0 || p[2] == DW_EH_PE_omit)
		return;
	if (count_size == 4) {
		uint32_t v;

		memcpy(&v, p + 4 + ptr_size, 4);
		count = v;
	} else {
		memcpy(&count, p + 4 + ptr_size, 8);
	}
	if (count == 0 || count > (f->size - eh->p_offset) / 8)
		return;
	f->eh_hdr_vaddr = eh->p_vaddr;
	f->eh_table_vaddr = eh->p_vaddr + 4 + (uint64_t)ptr_size + (uint64_t)count_size;
	f->fde_count = count;
	f->has_eh_table = true;
}

static int load(struct elf_file *f)
{
	GElf_Ehdr ehdr;

	f->elf = elf_memory((char *)f->image, f->size);
	if (f->elf == NULL || elf_kind(f->elf) != ELF_K_ELF ||
	    gelf_getehdr(f->elf, &ehdr) == NULL ||
	    elf_getphdrnum(f->elf, &f->nphdr) != 0)
		return -ENOEXEC;
	f->e_type = ehdr.e_type;
	f->phdr = xcalloc(f->nphdr ? f->nphdr : 1, sizeof *f->phdr);
	for (size_t i = 0; i < f->nphdr; i++)
		if (gelf_getphdr(f->elf, (int)i, &f->phdr[i]) == NULL)
			return -ENOEXEC;
	read_build_id(f);
	read_eh_frame_hdr(f);
	return 0;
}

int elf_file_from_memory(unsigned char *image, size_t size, const char *path,
			 struct elf_file **out)
{
	struct elf_file *f = xcalloc(1, sizeof *f);
	int rc;

	f->fd = -1;
	f->image = image;
	f->size = size;
	f->path = xstrdup(path);
	rc = load(f);
	if (rc < 0) {
		elf_file_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* Opens the exact file behind m: map_files first, the target's root second. */
static int open_mapped_file(pid_t pid, const struct mapping *m)
{
	char path[PATH_MAX + 64];
	struct stat st;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 (int)pid, m->start, m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (m->deleted || m->path[0] != '/')
		return -ENOENT;
	snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid, m->path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A file replaced in place since it was mapped is not the mapped file. */
	if (fstat(fd, &st) < 0 || st.st_ino != m->inode) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

static int open_file(pid_t pid, const struct mapping *m, struct elf_file **out)
{
	struct elf_file *f;
	struct stat st;
	void *image;
	int fd, rc;

	fd = open_mapped_file(pid, m);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 64) {
		close(fd);
		return -ENOEXEC;
	}
	image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (image == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}
	f = xcalloc(1, sizeof *f);
	f->fd = fd;
	f->image = image;
	f->size = (size_t)st.st_size;
	f->image_mmapped = true;
	f->path = xstrdup(m->path);
	f->dev = m->dev;
	f->inode = m->inode;
	rc = load(f);
	if (rc < 0) {
		elf_file_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* The vDSO has no file: copy it out of the target once. */
static int open_vdso(pid_t pid, const struct mapping *m, struct elf_file **out)
{
	size_t size = (size_t)(m->end - m->start);
	unsigned char *image;
	struct iovec local, remote;
	ssize_t n;

	if (size == 0 || size > 1u << 20)
		return -ENOEXEC;
	image = xmalloc(size);
	local.iov_base = image;
	local.iov_len = size;
	remote.iov_base = (void *)(uintptr_t)m->start;
	remote.iov_len = size;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n != (ssize_t)size) {
		free(image);
		return n < 0 ? -errno : -EIO;
	}
	return elf_file_from_memory(image, size, "[vdso]", out);
}

static struct entry *find(struct elfcache *c, const struct mapping *m)
{
	for (size_t i = 0; i < c->n; i++) {
		struct entry *e = &c->v[i];

		if (m->is_vdso ? strcmp(e->path, "[vdso]") == 0
			       : (e->dev == m->dev && e->inode == m->inode &&
				  strcmp(e->path, m->path) == 0))
			return e;
	}
	return NULL;
}

int elfcache_get(struct elfcache *c, pid_t pid, const struct mapping *m,
		 struct elf_file **out)
{
	struct entry *e;
	struct elf_file *f = NULL;
	int rc;

	if (m->path == NULL || (!m->is_vdso && (m->inode == 0 || m->path[0] != '/')))
		return -ENOENT;
	e = find(c, m);
	if (e == NULL) {
		rc = m->is_vdso ? open_vdso(pid, m, &f) : open_file(pid, m, &f);
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 32;
			c->v = xreallocarray(c->v, c->cap, sizeof *c->v);
		}
		e = &c->v[c->n++];
		e->dev = m->dev;
		e->inode = m->inode;
		e->path = xstrdup(m->path);
		e->error = rc < 0 ? rc : 0;
		e->file = f;
	}
	if (e->file == NULL)
		return e->error;
	*out = e->file;
	return 0;
}

int elf_file_bias(const struct elf_file *f, const struct mapping *m,
		  uint64_t *bias)
{
	const uint64_t page = 4096;
	const GElf_Phdr *best = NULL;

	/*
	 * Segments not aligned to pages can share one page of the file; the
	 * segment whose permissions match the mapping's is the one mapped.
	 */
	for (size_t i = 0; i < f->nphdr; i++) {
		const GElf_Phdr *ph = &f->phdr[i];
		uint64_t off_page = ph->p_offset & ~(page - 1);

		if (ph->p_type != PT_LOAD || m->offset < off_page ||
		    m->offset >= ph->p_offset + ph->p_filesz)
			continue;
		if (best == NULL || !(ph->p_flags & PF_X) == !(m->perms & PROCFS_MAP_EXEC))
			best = ph;
	}
	if (best == NULL)
		return -ENOENT;
	*bias = m->start - m->offset + best->p_offset - best->p_vaddr;
	return 0;
}
