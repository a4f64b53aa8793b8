/* 64-bit Linux boot protocol entry (ELF64 without the PVH note, and the
 * bzImage payload): long mode, RSI = physical address of struct boot_params.
 * The bzImage payload also starts with a 32-bit entry (ESI = boot_params)
 * that the real-mode setup code uses when a BIOS loader (QEMU) runs it. */
#include "long.h"

	.section .text.entry, "ax"
	.code32
	.globl startup_32
startup_32:
	cli
	cld
	flat32
	enter_long startup_64

	/* Linux: the 64-bit entry is 0x200 bytes into the protected-mode payload. */
	.org 0x200
	.code64
	.globl startup_64
startup_64:
	cli
	cld
	/* Keep what the loader handed us, for the guest to report. */
	movq %cr3, %rax
	movq %rax, boot_cr3(%rip)
	movw %cs, %ax
	movw %ax, boot_cs(%rip)
	movw %ds, %ax
	movw %ax, boot_ds(%rip)
	movw %ss, %ax
	movw %ax, boot_ss(%rip)
	movq %rsi, %r12
	/* Our own GDT, and our own page tables: the loader's map may cover
	 * only the first GiB, and ACPI/LAPIC registers live near 4 GiB. */
	lgdt gdtr(%rip)
	movl $pml4, %eax
	movq %rax, %cr3
	movq $stack + 16384, %rsp
	pushfq
	popq boot_rflags(%rip)
	pushq $SEL_CODE64
	leaq 1f(%rip), %rax
	pushq %rax
	lretq
1:	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	zero_bss
	movq %r12, %rdi
	call rt_start_linux
2:	cli
	hlt
	jmp 2b

	.section .data, "aw"
	.balign 8
	.globl boot_cr3, boot_cs, boot_ds, boot_ss, boot_rflags
boot_cr3: .quad 0
boot_cs: .quad 0
boot_ds: .quad 0
boot_ss: .quad 0
boot_rflags: .quad 0

	.section .stack, "aw", @nobits
	.balign 4096
stack:
	.skip 16384
