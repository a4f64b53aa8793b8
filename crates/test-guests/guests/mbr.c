/* The boot disk's 64-bit part: entered from the boot sector (entry/mbr.S)
 * after firmware loaded it, with the BIOS drive it booted from. Prints it,
 * then powers off through ACPI from the tables the firmware installed. */
#include "rt/rt.h"

void mbr_main(u32 drive);

void mbr_main(u32 drive)
{
	serial_init();
	printf("MBR long mode, boot drive 0x%x\n", drive);
	rt_finish();
}
