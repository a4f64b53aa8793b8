/* Resets through the i8042 keyboard controller. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	printf("RESET i8042\n");
	i8042_reset();
	pit_sleep_ms(100);
	printf("RESET FAILED\n");
	halt_forever();
}
