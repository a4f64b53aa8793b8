/* Identity map of the low 4 GiB with 2 MiB pages, built at assembly time so
 * the guest spends no emulated instructions on it; and a flat GDT. */
#include "long.h"

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x03 /* present, writable */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + 0x03
	.quad pd + 0x1000 + 0x03
	.quad pd + 0x2000 + 0x03
	.quad pd + 0x3000 + 0x03
	.fill 508, 8, 0
pd:
	.set addr, 0
	.rept 1536
	.quad addr + 0x83 /* present, writable, 2 MiB page */
	.set addr, addr + 0x200000
	.endr
	/* 3-4 GiB holds the LAPIC, IOAPIC and other MMIO: cache disabled. */
	.rept 512
	.quad addr + 0x9b /* ... | PWT | PCD */
	.set addr, addr + 0x200000
	.endr

	.section .data, "aw"
	.balign 16
	.globl gdt, gdt_end, gdtr
gdt:
	.quad 0
	.quad 0x00af9a000000ffff /* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff /* 0x10: flat data */
	.quad 0x00cf9a000000ffff /* 0x18: 32-bit flat code */
gdt_end:
	.balign 8
gdtr:
	.word gdt_end - gdt - 1
	.quad gdt
