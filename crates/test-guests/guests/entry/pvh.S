/* PVH entry (Xen's hvm_start_info ABI): 32-bit protected mode, paging off,
 * EBX = physical address of struct hvm_start_info. Also the AP start-up path
 * (real-mode trampoline -> 32-bit -> 64-bit) used by the smp guest. */
#include "long.h"

#define MAX_APS 63
#define AP_STACK_SIZE 4096
#define BSP_STACK_SIZE 16384

	/* XEN_ELFNOTE_PHYS32_ENTRY: the loader enters at this 32-bit address. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4  /* namesz: "Xen\0" */
	.long 4  /* descsz */
	.long 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start
	.balign 4

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, %esi /* start_info, handed to C */
	xorl %edi, %edi /* 0: bootstrap processor */
	flat32
	enter_long pvh_long

	/* APs arrive here from the trampoline, already in flat 32-bit mode. */
ap_start32:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $1, %edi
	enter_long pvh_long

	.code64
pvh_long:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	testl %edi, %edi
	jnz 1f
	movq $bsp_stack + BSP_STACK_SIZE, %rsp
	movl %esi, %r12d
	zero_bss
	movl %r12d, %edi
	call rt_start_pvh
	jmp 2f
1:	/* AP: take a ticket, which selects its stack. */
	movl $1, %eax
	lock xaddl %eax, ap_ticket
	cmpl $MAX_APS, %eax
	jae 2f
	incl %eax
	shll $12, %eax
	addq $ap_stacks, %rax
	movq %rax, %rsp
	call ap_main
2:	cli
	hlt
	jmp 2b

	/* Real-mode AP start-up code, copied below 1 MiB by the BSP. Position
	 * independent: it only uses offsets from its own CS. */
	.section .rodata.tramp, "a"
	.code16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl ap_tramp_gdtr - ap_tramp_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ap_start32
	.balign 8
ap_tramp_gdtr:
	.word 4 * 8 - 1 /* the four descriptors of paging.S */
	.long gdt
ap_tramp_end:

	.section .data, "aw"
	.globl ap_ticket
	.balign 4
ap_ticket:
	.long 0

	.section .stack, "aw", @nobits
	.balign 4096
bsp_stack:
	.skip BSP_STACK_SIZE
ap_stacks:
	.skip AP_STACK_SIZE * (MAX_APS + 1)
