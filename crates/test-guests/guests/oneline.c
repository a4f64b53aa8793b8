/* Benchmark guest: one line, then leave as fast as the machine allows. */
#include "rt/rt.h"
#include "rt/leave.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	printf("ONELINE\n");
	leave_fast();
}
