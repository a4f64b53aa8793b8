/* Prints FLOOD_KIB KiB of output as fast as the UART takes it, then
 * `FLOOD_DONE` and powers off: proves that output nobody reads cannot
 * stall the guest. */
#include "rt/rt.h"

#define FLOOD_KIB 320

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	/* 63 characters and a newline: one line per 64 bytes. */
	static const char line[] =
		"flood-flood-flood-flood-flood-flood-flood-flood-flood-flood-fl\n";
	for (u32 i = 0; i < FLOOD_KIB * 1024 / 64; i++)
		puts_raw(line);
	printf("FLOOD_DONE\n");
}
