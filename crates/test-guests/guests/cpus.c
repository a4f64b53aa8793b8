/* CPU count from the MADT, and topology from CPUID as Linux reads it. */
#include "rt/rt.h"
#include "rt/madt.h"

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	u32 ids[64];
	u64 lapic = 0;
	int n = madt_cpus(ids, 64, &lapic);
	printf("MADT_LAPIC_ADDR 0x%lx\n", lapic);
	for (int i = 0; i < n && i < 64; i++)
		printf("MADT_APIC_ID %u\n", ids[i]);
	printf("MADT_CPUS %d\n", n);

	u32 a, b, c, d;
	cpuid(0, 0, &a, &b, &c, &d);
	u32 max_leaf = a;
	char vendor[13];
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	vendor[12] = 0;
	printf("CPUID_VENDOR %s\n", vendor);
	printf("CPUID_MAX_LEAF 0x%x\n", max_leaf);
	cpuid(1, 0, &a, &b, &c, &d);
	printf("CPUID_1_APIC_ID %u\n", b >> 24);
	printf("CPUID_1_HTT %u\n", (d >> 28) & 1);
	printf("CPUID_1_LOGICAL %u\n", (b >> 16) & 0xff);
	printf("CPUID_HYPERVISOR %u\n", (c >> 31) & 1);
	if (max_leaf >= 4) {
		u32 a4, b4, c4, d4;
		cpuid(4, 0, &a4, &b4, &c4, &d4);
		printf("CPUID_4_CORES %u\n", (a4 >> 26) + 1); /* EAX[31:26] + 1 */
	}
	if (max_leaf >= 0xb) {
		for (u32 sub = 0; sub < 2; sub++) {
			cpuid(0xb, sub, &a, &b, &c, &d);
			printf("CPUID_B%u_TYPE %u\n", sub, (c >> 8) & 0xff);
			printf("CPUID_B%u_SHIFT %u\n", sub, a & 0x1f);
			printf("CPUID_B%u_COUNT %u\n", sub, b & 0xffff);
		}
		printf("CPUID_B_X2APIC_ID %u\n", d);
	}
	cpuid(0x80000000, 0, &a, &b, &c, &d);
	if (a >= 0x80000008) {
		cpuid(0x80000008, 0, &a, &b, &c, &d);
		printf("CPUID_80000008_CORES %u\n", (c & 0xff) + 1); /* AMD: ECX[7:0] + 1 */
	}
	cpuid(1, 0, &a, &b, &c, &d);
	if (c >> 31) {
		char sig[13];
		cpuid(0x40000000, 0, &a, &b, &c, &d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		sig[12] = 0;
		for (int i = 0; i < 12; i++)
			if (sig[i] && (sig[i] < 0x21 || sig[i] > 0x7e))
				sig[i] = '.'; /* keep the line parseable */
		printf("CPUID_HV_SIGNATURE %s\n", sig);
		printf("CPUID_HV_MAX_LEAF 0x%x\n", a);
	}
}
