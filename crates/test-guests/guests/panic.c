/* Reports a guest panic through the pvpanic ISA port, then halts. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	printf("PVPANIC 0x505 0x1\n");
	outb(0x505, 0x01); /* PVPANIC_PANICKED */
	halt_forever();
}
