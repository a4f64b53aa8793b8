/* Density benchmark guest: one line, then halted with interrupts off, so
 * the vCPU sleeps in the kernel and the VM costs no CPU (bench/density). */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	printf("IDLE\n");
	halt_forever();
}
