/* Prints the PVH memory map (hvm_start_info version >= 1). */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	printf("START_INFO_VERSION %u\n", si->version);
	if (si->version < 1) {
		printf("MEMMAP_ENTRIES 0\n");
		return;
	}
	const struct hvm_memmap_table_entry *e =
		(const struct hvm_memmap_table_entry *)si->memmap_paddr;
	u64 ram = 0, ram_end = 0;
	printf("MEMMAP_ENTRIES %u\n", si->memmap_entries);
	for (u32 i = 0; i < si->memmap_entries && i < 256; i++) {
		printf("MEMMAP 0x%lx 0x%lx %u\n", e[i].addr, e[i].size, e[i].type);
		if (e[i].type == 1) {
			ram += e[i].size;
			if (e[i].addr + e[i].size > ram_end)
				ram_end = e[i].addr + e[i].size;
		}
	}
	printf("RAM_BYTES %lu\n", ram);
	printf("RAM_END 0x%lx\n", ram_end);
}
