/* Benchmark guest: 100,000 port writes to an unused port, then leave. */
#include "rt/rt.h"
#include "rt/leave.h"

/* EXIT_PORT and EXIT_COUNT come from build.rs (src/abi.rs). */

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	for (u32 i = 0; i < EXIT_COUNT; i++)
		outb(EXIT_PORT, 0);
	printf("EXITS DONE\n");
	leave_fast();
}
