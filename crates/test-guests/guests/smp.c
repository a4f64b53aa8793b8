/* Starts every AP in the MADT with INIT-SIPI-SIPI; each AP says hello. */
#include "rt/rt.h"
#include "rt/madt.h"

/* Below 1 MiB, page aligned (SIPI vector 0x08), clear of the areas loaders
 * use for boot data (0x6000-0x7fff) and the EBDA/MP table near 0x9fc00. */
#define TRAMPOLINE TRAMPOLINE_ADDR

#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_PENDING (1u << 12)

static volatile u32 aps_up;

static u32 my_apic_id(void)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	return b >> 24;
}

void ap_main(void)
{
	printf("AP %u up\n", my_apic_id());
	__atomic_add_fetch(&aps_up, 1, __ATOMIC_SEQ_CST);
	halt_forever();
}

static void send_ipi(u64 lapic, u32 apic_id, u32 low)
{
	wr32(lapic + LAPIC_ICR_HI, apic_id << 24);
	wr32(lapic + LAPIC_ICR_LO, low);
	for (int i = 0; i < 100000 && (rd32(lapic + LAPIC_ICR_LO) & ICR_PENDING); i++)
		cpu_relax();
}

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	u32 ids[64];
	u64 lapic = 0;
	int n = madt_cpus(ids, 64, &lapic);
	printf("SMP_CPUS_EXPECTED %d\n", n);
	if (n < 1)
		return;
	if (n > 64)
		n = 64;
	if (!lapic)
		lapic = 0xfee00000;
	u32 bsp = my_apic_id();
	printf("BSP %u\n", bsp);
	memcpy((void *)(u64)TRAMPOLINE, ap_tramp_start, (size_t)(ap_tramp_end - ap_tramp_start));
	wr32(lapic + LAPIC_SVR, rd32(lapic + LAPIC_SVR) | 0x100); /* APIC software enable */
	int started = 0;
	for (int i = 0; i < n; i++) {
		if (ids[i] == bsp)
			continue;
		started++;
		send_ipi(lapic, ids[i], 0x4500); /* INIT, level assert */
		pit_sleep_ms(10);
		for (int s = 0; s < 2; s++) { /* two STARTUPs, as the MP spec says */
			send_ipi(lapic, ids[i], 0x4600 | (TRAMPOLINE >> 12));
			pit_wait(239); /* 200 us */
		}
	}
	/* Wait up to ~2 s for every AP to check in. */
	for (int t = 0; t < 200 && aps_up < (u32)started; t++)
		pit_sleep_ms(10);
	printf("SMP_CPUS_UP %u\n", aps_up + 1);
}
