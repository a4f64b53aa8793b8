/* Prints where the initrd (modlist[0]) is and the FNV-1a 32 of its bytes. */
#include "rt/rt.h"
#include "rt/fnv.h"

void pvh_main(const struct hvm_start_info *si)
{
	printf("INITRD_MODULES %u\n", si->nr_modules);
	if (!si->nr_modules || !si->modlist_paddr)
		return;
	const struct hvm_modlist_entry *m = (const struct hvm_modlist_entry *)si->modlist_paddr;
	printf("INITRD_ADDR 0x%lx\n", m->paddr);
	printf("INITRD_SIZE %lu\n", m->size);
	printf("INITRD_FNV1A32 0x%08x\n", fnv1a32(m->paddr, m->size));
}
