/* bzImage setup area: a boot sector with the Linux setup header (boot
 * protocol 2.12) and a small real-mode setup routine for BIOS loaders such
 * as QEMU's, which jump to offset 0x200 in real mode. The routine builds a
 * struct boot_params 4 KiB past the setup (header copy + BIOS E820 map),
 * switches to 32-bit protected mode and jumps to code32_start with ESI =
 * boot_params, as Linux's own setup code does. VMMs that use the 64-bit
 * entry never run it. build.rs fills in syssize and init_size. */

#define SETUP_SECTS 1

	.code16
	.section .text, "ax"
	.globl _start
_start:
	.org 0x1f1
setup_sects: .byte SETUP_SECTS
root_flags: .word 0
syssize: .long 0 /* patched: payload size in 16-byte units */
ram_size: .word 0
vid_mode: .word 0xffff /* "normal" */
root_dev: .word 0
boot_flag: .word 0xaa55
	.org 0x200
	jmp setup_main
	.org 0x202
header: .ascii "HdrS"
version: .word 0x020c
realmode_swtch: .long 0
start_sys_seg: .word 0x1000
kernel_version: .word 0
type_of_loader: .byte 0
loadflags: .byte 0x01 /* LOADED_HIGH */
setup_move_size: .word 0x8000
code32_start: .long 0x100000
ramdisk_image: .long 0
ramdisk_size: .long 0
bootsect_kludge: .long 0
heap_end_ptr: .word 0
ext_loader_ver: .byte 0
ext_loader_type: .byte 0
cmd_line_ptr: .long 0
initrd_addr_max: .long 0x7fffffff
kernel_alignment: .long 0x200000
relocatable_kernel: .byte 0
min_alignment: .byte 0
	.org 0x236
xloadflags: .word 0x0001 /* XLF_KERNEL_64: 64-bit entry at code32_start + 0x200 */
cmdline_size: .long 2047
hardware_subarch: .long 0
hardware_subarch_data: .quad 0
payload_offset: .long 0
payload_length: .long 0
setup_data: .quad 0
pref_address: .quad 0x100000
init_size: .long 0 /* patched: payload memory size */
handover_offset: .long 0
	.org 0x268
header_end:

setup_main:
	cli
	cld
	/* The loader set DS to the start of the setup area and CS to DS + 0x20;
	 * make CS = DS so that labels (linked at 0) are CS offsets too. */
	movw %ds, %ax
	pushw %ax
	pushw $1f
	lretw
1:	/* boot_params lives 4 KiB past the setup area: ES:0. */
	addw $0x100, %ax
	movw %ax, %es
	xorw %di, %di
	xorw %ax, %ax
	movw $2048, %cx
	rep stosw
	movw $0x1f1, %si /* copy the setup header as the loader left it */
	movw %si, %di
	movw $(header_end - setup_sects), %cx
	rep movsb
	/* E820 map into boot_params.e820_table (0x2d0), count at 0x1e8. */
	xorl %ebx, %ebx
	movw $0x2d0, %di
	xorw %si, %si
2:	movl $0xe820, %eax
	movl $0x534d4150, %edx /* "SMAP" */
	movl $20, %ecx
	int $0x15
	jc 3f
	cmpl $0x534d4150, %eax
	jne 3f
	incw %si
	addw $20, %di
	cmpw $128, %si
	jae 3f
	testl %ebx, %ebx
	jnz 2b
3:	movw %si, %ax
	movb %al, %es:0x1e8
	/* Linear addresses: setup base, boot_params, GDT, entry point. */
	xorl %eax, %eax
	movw %ds, %ax
	shll $4, %eax
	leal 0x1000(%eax), %esi
	addl %eax, gdtr + 2
	movl code32_start, %edx
	movl %edx, farptr
	lgdtl gdtr
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	movw $0x18, %ax /* __BOOT_DS */
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	ljmpl *%cs:farptr

	.balign 8
gdt:
	.quad 0
	.quad 0
	.quad 0x00cf9a000000ffff /* 0x10: __BOOT_CS, flat 32-bit code */
	.quad 0x00cf92000000ffff /* 0x18: __BOOT_DS, flat data */
gdtr:
	.word 31
	.long gdt /* patched to a linear address at run time */
farptr:
	.long 0
	.word 0x10

	.org (SETUP_SECTS + 1) * 512
