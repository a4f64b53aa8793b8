/* Shared gas macros for the entry stubs (run through the C preprocessor). */

#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_CODE32 0x18

/* From 32-bit flat protected mode with paging off: PAE, our 4 GiB identity
 * map, EFER.LME, paging on, then a far jump into 64-bit code at \target.
 * Clobbers eax, ecx, edx; keeps esi and edi for the 64-bit side. */
.macro enter_long target
	movl %cr4, %eax
	orl $0x20, %eax /* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx /* EFER */
	rdmsr
	orl $0x100, %eax /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax /* PG | PE */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $\target
.endm

/* Loads our GDT and flat data segments, reloading CS as 32-bit code. */
.macro flat32
	lgdt gdtr
	ljmp $SEL_CODE32, $.Lflat32_\@
.Lflat32_\@:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
.endm

/* Zeroes .bss (small by design: stacks live in the NOLOAD .stack section).
 * Clobbers rax, rcx, rdi. */
.macro zero_bss
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
.endm
