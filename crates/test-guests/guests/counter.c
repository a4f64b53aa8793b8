/* Counts forever, one line per ~50 ms of real (PIT) time. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	for (u64 n = 0;; n++) {
		printf("COUNT %lu\n", n);
		if (pit_sleep_ms(50))
			printf("PIT_TIMEOUT\n");
	}
}
