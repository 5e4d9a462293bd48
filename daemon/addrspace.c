#include "addrspace.h"

#include <errno.h>
#include <string.h>

int addrspace_init(struct addrspace *as, pid_t pid)
{
	int rc;

	memset(as, 0, sizeof *as);
	as->pid = pid;
	rc = maps_read(pid, &as->maps);
	if (rc < 0)
		return rc == -ENOENT ? -ESRCH : rc;
	as->elves = elfcache_create();
	return 0;
}

void addrspace_destroy(struct addrspace *as)
{
	if (as == NULL)
		return;
	maps_clear(&as->maps);
	elfcache_free(as->elves);
	as->elves = NULL;
	as->last = NULL;
}

static bool same_layout(const struct maps *a, const struct maps *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct mapping *x = &a->v[i], *y = &b->v[i];

		if (x->start != y->start || x->end != y->end ||
		    x->offset != y->offset || x->perms != y->perms ||
		    x->inode != y->inode || x->dev != y->dev)
			return false;
	}
	return true;
}

int addrspace_refresh(struct addrspace *as)
{
	struct maps fresh;
	int rc;

	rc = maps_read(as->pid, &fresh);
	if (rc < 0)
		return rc == -ENOENT ? -ESRCH : rc;
	if (same_layout(&as->maps, &fresh)) {
		maps_clear(&fresh);
		return 0;
	}
	maps_clear(&as->maps);
	as->maps = fresh;
	as->last = NULL;
	as->generation++;
	return 1;
}

struct mapping *addrspace_find(struct addrspace *as, uint64_t addr)
{
	struct mapping *m = as->last;

	if (m != NULL && addr >= m->start && addr < m->end)
		return m;
	m = maps_find(&as->maps, addr);
	if (m != NULL)
		as->last = m;
	return m;
}

struct mapping *addrspace_resolve(struct addrspace *as, uint64_t addr,
				  struct elf_file **elf)
{
	struct mapping *m = addrspace_find(as, addr);

	*elf = NULL;
	if (m == NULL)
		return NULL;
	if (!m->elf_tried) {
		m->elf_tried = true;
		if (elfcache_get(as->elves, as->pid, m, &m->elf) < 0)
			m->elf = NULL;
		else if (elf_file_bias(m->elf, m, &m->bias) == 0)
			m->bias_known = true;
		else
			m->elf = NULL;
	}
	*elf = m->elf;
	return m;
}
