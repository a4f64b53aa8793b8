/* Dropping to ring 3, where kvm_pvm runs guest code natively (ring 0 is
 * emulated at about a million instructions per second): the benchmark
 * guests do their loops there. */
#include "rt.h"
#include "ring3.h"

/* 0x08 code64, 0x10 data (ring 0, as the entry's GDT), 0x18 code32,
 * 0x20 data DPL 3, 0x28 code64 DPL 3. */
static u64 gdt3[6] __attribute__((aligned(16))) = {
	0,
	0x00af9a000000ffffull,
	0x00cf92000000ffffull,
	0x00cf9a000000ffffull,
	0x00cff2000000ffffull,
	0x00affa000000ffffull,
};

/* Marks the identity map user-accessible (the entry's tables are
 * supervisor-only), loads a GDT with ring-3 segments and returns in ring 3
 * with IOPL 3 (port I/O for the serial line and leave_fast) and IF 0. No
 * TSS: nothing may trap back to ring 0 from here on. */
void to_ring3(void)
{
	u64 cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	u64 *pml4 = (u64 *)(cr3 & ~0xfffull);
	pml4[0] |= 4;
	u64 *pdpt = (u64 *)(pml4[0] & 0x000ffffffffff000ull);
	for (int i = 0; i < 4; i++) {
		pdpt[i] |= 4;
		u64 *pd = (u64 *)(pdpt[i] & 0x000ffffffffff000ull);
		for (int j = 0; j < 512; j++)
			pd[j] |= 4;
	}
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	struct __attribute__((packed)) {
		u16 limit;
		u64 base;
	} gdtr = {sizeof(gdt3) - 1, (u64)gdt3};
	__asm__ volatile("lgdt %0" : : "m"(gdtr));
	__asm__ volatile("mov %%rsp, %%rax\n\t"
			 "pushq $0x23\n\t"
			 "pushq %%rax\n\t"
			 "pushq $0x3002\n\t" /* IOPL 3, IF 0 */
			 "pushq $0x2b\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "iretq\n"
			 "1:\n\t"
			 "mov $0x23, %%ax\n\t"
			 "mov %%ax, %%ds\n\t"
			 "mov %%ax, %%es\n\t"
			 : : : "rax", "memory");
}
