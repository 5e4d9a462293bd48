#include "unwinder.h"

#include <dlfcn.h>
#include <errno.h>
#include <libunwind.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/*
 * Exported by libunwind (every 1.x release) but missing from its installed
 * headers: the binary search of an .eh_frame_hdr table through the address
 * space's accessors.
 */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as,
					      unw_word_t ip,
					      unw_dyn_info_t *di,
					      unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

#define PAGE 4096u

struct unwinder {
	struct addrspace *aspace;
	unw_addr_space_t as;
	bool keep_signal_masking;
	/* The snapshot being unwound. */
	const struct thread_snapshot *snap;
	uint64_t stack_end;
	uint64_t stack_high;
	unsigned int late_reads;
	/* One page of stack read after the resume, beyond the copy. */
	bool late_valid;
	uint64_t late_addr;
	uint8_t late_page[PAGE];
};

/*
 * libunwind (Debian builds it with CONFIG_BLOCK_SIGNALS) calls sigprocmask
 * around every lock of its caches, so that a signal handler unwinding its own
 * process cannot deadlock on them.  perch never unwinds from a signal handler,
 * so on a thread that is unwinding the masking protects nothing and costs two
 * system calls per frame; this definition, found by the dynamic linker before
 * libc's, skips it there and forwards every other call unchanged.
 */
static _Thread_local bool skip_sigprocmask;

typedef int (*sigprocmask_fn)(int, const sigset_t *, sigset_t *);

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	static sigprocmask_fn real;
	sigprocmask_fn fn = __atomic_load_n(&real, __ATOMIC_RELAXED);

	if (skip_sigprocmask) {
		if (old != NULL)
			sigemptyset(old);
		return 0;
	}
	if (fn == NULL) {
		fn = (sigprocmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
		if (fn == NULL)
			abort();
		__atomic_store_n(&real, fn, __ATOMIC_RELAXED);
	}
	return fn(how, set, old);
}

static bool read_snapshot(const struct thread_snapshot *s, uint64_t addr,
			  void *out, size_t len)
{
	if (addr < s->stack_addr || addr - s->stack_addr > s->stack_len ||
	    s->stack_len - (addr - s->stack_addr) < len)
		return false;
	memcpy(out, s->stack + (addr - s->stack_addr), len);
	return true;
}

/* Stack beyond the copy: read the page now, after the thread resumed. */
static int read_late(struct unwinder *u, uint64_t addr, unw_word_t *val)
{
	uint64_t page = addr & ~(uint64_t)(PAGE - 1);
	uint64_t off = addr - page;

	if (off + sizeof *val > PAGE)
		return -UNW_EINVAL;
	if (!u->late_valid || u->late_addr != page) {
		if (tracer_read(u->aspace->pid, page, u->late_page, PAGE) != PAGE)
			return -UNW_EINVAL;
		u->late_valid = true;
		u->late_addr = page;
	}
	u->late_reads++;
	memcpy(val, u->late_page + off, sizeof *val);
	return 0;
}

/*
 * Outside the stack copy: read-only file mappings (unwind tables, code) come
 * from the file as perch mapped it.  Writable data of an ELF file is read
 * from the live process: the only such words an unwind needs are relocated
 * pointers (a CIE's personality routine through the GOT), set once at load.
 */
static int read_mapped(struct unwinder *u, uint64_t addr, unw_word_t *val)
{
	struct elf_file *elf;
	struct mapping *m = addrspace_resolve(u->aspace, addr, &elf);
	uint64_t off;

	if (m == NULL || elf == NULL || !(m->perms & PROCFS_MAP_READ))
		return -UNW_EINVAL;
	if (m->perms & PROCFS_MAP_WRITE)
		return tracer_read(u->aspace->pid, addr, val, sizeof *val) ==
		       sizeof *val ? 0 : -UNW_EINVAL;
	off = addr - m->start + (m->is_vdso ? 0 : m->offset);
	if (off > elf->size || elf->size - off < sizeof *val)
		return -UNW_EINVAL;
	memcpy(val, elf->image + off, sizeof *val);
	return 0;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
		      int write, void *arg)
{
	struct unwinder *u = arg;
	const struct thread_snapshot *s = u->snap;

	(void)as;
	if (write)
		return -UNW_EINVAL;
	if (read_snapshot(s, addr, val, sizeof *val)) {
		if (addr + sizeof *val > u->stack_high)
			u->stack_high = addr + sizeof *val;
		return 0;
	}
	if (addr >= s->stack_addr && u->stack_end != 0 && addr < u->stack_end) {
		if (addr + sizeof *val > u->stack_high)
			u->stack_high = addr + sizeof *val;
		return read_late(u, addr, val);
	}
	return read_mapped(u, addr, val);
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
		      int write, void *arg)
{
	const struct thread_snapshot *s = ((struct unwinder *)arg)->snap;
	const struct user_regs_struct *r = &s->regs;

	(void)as;
	if (write)
		return -UNW_EINVAL;
	if (!s->regs_full && reg != UNW_X86_64_RIP && reg != UNW_X86_64_RSP)
		return -UNW_EBADREG;
	switch (reg) {
	case UNW_X86_64_RAX: *val = r->rax; break;
	case UNW_X86_64_RDX: *val = r->rdx; break;
	case UNW_X86_64_RCX: *val = r->rcx; break;
	case UNW_X86_64_RBX: *val = r->rbx; break;
	case UNW_X86_64_RSI: *val = r->rsi; break;
	case UNW_X86_64_RDI: *val = r->rdi; break;
	case UNW_X86_64_RBP: *val = r->rbp; break;
	case UNW_X86_64_RSP: *val = r->rsp; break;
	case UNW_X86_64_R8: *val = r->r8; break;
	case UNW_X86_64_R9: *val = r->r9; break;
	case UNW_X86_64_R10: *val = r->r10; break;
	case UNW_X86_64_R11: *val = r->r11; break;
	case UNW_X86_64_R12: *val = r->r12; break;
	case UNW_X86_64_R13: *val = r->r13; break;
	case UNW_X86_64_R14: *val = r->r14; break;
	case UNW_X86_64_R15: *val = r->r15; break;
	case UNW_X86_64_RIP: *val = r->rip; break;
	default: return -UNW_EBADREG;
	}
	return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg,
			unw_fpreg_t *val, int write, void *arg)
{
	(void)as; (void)reg; (void)val; (void)write; (void)arg;
	return -UNW_EBADREG;
}

static int find_proc_info(unw_addr_space_t as, unw_word_t ip,
			  unw_proc_info_t *pi, int need_unwind_info, void *arg)
{
	struct unwinder *u = arg;
	struct elf_file *elf;
	struct mapping *m = addrspace_resolve(u->aspace, ip, &elf);
	unw_dyn_info_t di;

	if (m == NULL || elf == NULL || !elf->has_eh_table || !m->bias_known)
		return -UNW_ENOINFO;
	memset(&di, 0, sizeof di);
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = m->bias + elf->text_lo;
	di.end_ip = m->bias + elf->text_hi;
	if (ip < di.start_ip || ip >= di.end_ip)
		return -UNW_ENOINFO;
	di.u.rti.segbase = m->bias + elf->eh_hdr_vaddr;
	di.u.rti.table_data = m->bias + elf->eh_table_vaddr;
	di.u.rti.table_len = elf->fde_count * 8 / sizeof(unw_word_t);
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi,
						  need_unwind_info, arg);
}

/* libunwind frees table-format unwind info itself; nothing else is made. */
static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	(void)as; (void)pi; (void)arg;
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr,
				  void *arg)
{
	(void)as; (void)addr; (void)arg;
	return -UNW_ENOINFO;
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	(void)as; (void)c; (void)arg;
	return -UNW_EINVAL;
}

/* Names come from the symbolizer, never from libunwind. */
static int get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
			 size_t len, unw_word_t *off, void *arg)
{
	(void)as; (void)addr; (void)buf; (void)len; (void)off; (void)arg;
	return -UNW_ENOINFO;
}

static unw_accessors_t accessors = {
	.find_proc_info = find_proc_info,
	.put_unwind_info = put_unwind_info,
	.get_dyn_info_list_addr = get_dyn_info_list_addr,
	.access_mem = access_mem,
	.access_reg = access_reg,
	.access_fpreg = access_fpreg,
	.resume = resume,
	.get_proc_name = get_proc_name,
};

struct unwinder *unwinder_create(struct addrspace *aspace,
				 const struct unwinder_opts *opts)
{
	struct unwinder *u = xcalloc(1, sizeof *u);

	u->aspace = aspace;
	u->keep_signal_masking = opts != NULL && opts->keep_signal_masking;
	u->as = unw_create_addr_space(&accessors, 0);
	if (u->as == NULL)
		abort();
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	/* 2^12 cached frame states: a server's hot paths fit. */
	unw_set_cache_size(u->as, 4096, 0);
	return u;
}

void unwinder_free(struct unwinder *u)
{
	if (u == NULL)
		return;
	unw_destroy_addr_space(u->as);
	free(u);
}

void unwinder_flush(struct unwinder *u)
{
	skip_sigprocmask = !u->keep_signal_masking;
	unw_flush_cache(u->as, 0, 0);
	skip_sigprocmask = false;
}

int unwinder_unwind(struct unwinder *u, const struct thread_snapshot *snap,
		    uint64_t stack_end, struct unwind_frame *frames, size_t max,
		    struct unwind_result *res)
{
	unw_cursor_t cursor;
	bool next_is_return = false;
	int rc;

	memset(res, 0, sizeof *res);
	u->snap = snap;
	u->stack_end = stack_end;
	u->stack_high = 0;
	u->late_reads = 0;
	u->late_valid = false;
	skip_sigprocmask = !u->keep_signal_masking;

	rc = unw_init_remote(&cursor, u->as, u);
	while (rc >= 0 && res->n < max) {
		unw_word_t ip;

		if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		frames[res->n].ip = ip;
		frames[res->n].is_return = next_is_return;
		res->n++;
		/* After a signal frame the next ip was interrupted, not called. */
		next_is_return = unw_is_signal_frame(&cursor) <= 0;
		rc = unw_step(&cursor);
		if (rc == 0)
			res->complete = true;
		if (rc <= 0)
			break;
	}
	skip_sigprocmask = false;
	if (rc < 0)
		res->error = rc;
	res->stack_high = u->stack_high;
	res->late_reads = u->late_reads;
	u->snap = NULL;
	return 0;
}
