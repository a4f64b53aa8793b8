/*
 * Prints `CHAT n` every ~20 ms of real (PIT) time, with the ACPI fixed power
 * button armed; a press prints `CHAT_POWERBTN` and powers off. So a console
 * always has output flowing when a test stops the VM, by any of its ways
 * (shutdown, destroy, a killed VMM).
 */
#include "rt/rt.h"

#define PWRBTN (1u << 8)

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	u64 fadt = acpi_find_table("FACP");
	u16 evt = fadt ? (u16)rd32(fadt + 56) : 0;
	if (evt)
		outw(evt + rd8(fadt + 88) / 2, PWRBTN);
	for (u64 n = 0;; n++) {
		printf("CHAT %lu\n", n);
		if (evt && (inw(evt) & PWRBTN)) {
			outw(evt, PWRBTN);
			printf("CHAT_POWERBTN\n");
			return;
		}
		if (pit_sleep_ms(20))
			printf("PIT_TIMEOUT\n");
	}
}
