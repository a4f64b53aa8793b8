/* Prints a tick every ~2 s of real (PIT) time, forever. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	for (u64 n = 0;; n++) {
		printf("TICK %lu\n", n);
		if (pit_sleep_ms(2000))
			printf("PIT_TIMEOUT\n");
	}
}
