/*
 * The ACPI fixed power button, as an ACPI OS drives it: enable PWRBTN_EN in
 * the PM1a enable register the FADT names, wait for PWRBTN_STS, check that
 * the SCI line reached the interrupt controller, acknowledge, power off.
 */
#include "rt/rt.h"

#define PWRBTN (1u << 8)

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	u64 fadt = acpi_find_table("FACP");
	if (!fadt) {
		printf("PWRBTN NO_FADT\n");
		return;
	}
	u16 evt = (u16)rd32(fadt + 56);
	u8 len = rd8(fadt + 88);
	u16 sci = (u16)(rd32(fadt + 46) & 0xffff);
	u16 en = evt + len / 2;
	outw(en, PWRBTN);
	printf("PWRBTN_ARMED evt=0x%x sci=%u\n", evt, sci);
	while (!(inw(evt) & PWRBTN))
		pit_sleep_ms(5);
	/* The SCI is ISA IRQ 9: slave PIC input 1. Read the slave's IRR. */
	outb(0xa0, 0x0a);
	u8 irr = inb(0xa0);
	printf("PWRBTN_PRESSED sci_irr=%u\n", (irr >> 1) & 1);
	outw(evt, PWRBTN);
	printf("PWRBTN_STS_AFTER_ACK %u\n", (inw(evt) & PWRBTN) ? 1 : 0);
}
