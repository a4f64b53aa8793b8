/* C side of the PVH entry. */
#include "rt.h"

void rt_start_pvh(u64 start_info);

void rt_start_pvh(u64 start_info)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)start_info;
	serial_init();
	if (si->magic != HVM_START_MAGIC)
		printf("START_INFO_BAD_MAGIC 0x%x\n", si->magic);
	else
		rt_rsdp_hint = si->rsdp_paddr;
	pvh_main(si);
	rt_finish();
}

/* Guests that never start APs still link the AP entry path. */
__attribute__((weak)) void ap_main(void) { halt_forever(); }
