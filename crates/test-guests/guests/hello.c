/* The demo guest: a greeting, then ACPI power-off. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	printf("Hello from the rvirt demo guest!\n");
}
