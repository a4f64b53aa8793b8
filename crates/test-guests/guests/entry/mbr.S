/* A boot sector: what firmware loads at 0x7C00 from the first disk and
 * enters in real mode with DL = the BIOS drive number. It prints one line
 * on COM1 at once (the first byte a benchmark waits for), reads the rest of
 * the image through the BIOS's int 13h extended read, and enters the same
 * 64-bit runtime as the other guests (long.h, paging.S). */
#include "long.h"

	.section .text.entry, "ax"
	.code16
	.globl mbr_start
mbr_start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $0x7c00, %sp
	ljmp $0, $1f /* CS:IP may be 07C0:0000 */
1:	movb %dl, boot_drive
	movw $banner, %si
2:	lodsb
	testb %al, %al
	jz 3f
	call putc16
	jmp 2b
3:	/* The rest of the image, right after this sector; from a CD-ROM
	 * (El Torito without emulation: drives 0xE0 and up) the firmware
	 * loaded it whole already (the image's boot-load-size). */
	movb boot_drive, %dl
	cmpb $0xe0, %dl
	jae 8f
	movw $dap, %si
	movb $0x42, %ah
	int $0x13
	jc read_failed
8:	lgdtl boot_gdtr
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $mbr32

read_failed:
	movw $failed, %si
4:	lodsb
	testb %al, %al
	jz 5f
	call putc16
	jmp 4b
5:	hlt
	jmp 5b

/* AL to COM1 once the transmitter holds nothing (LSR.THRE), as a driver
 * must: a UART whose host side is slow keeps the byte in THR, and writing
 * over it loses one (QEMU dropped the end of SeaBIOS's last line so).
 * Bounded, so a missing UART costs time, not a hang. */
putc16:
	movb %al, %bl
	movw $0x3fd, %dx
	movw $0xffff, %cx
6:	inb %dx, %al
	testb $0x20, %al
	jnz 7f
	loop 6b
7:	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	ret

	.code32
mbr32:
	flat32
	enter_long mbr_long

	.code64
mbr_long:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movq $mbr_stack + 16384, %rsp
	zero_bss
	movzbl boot_drive, %edi
	call mbr_main
6:	cli
	hlt
	jmp 6b

banner:
	.asciz "MBR real mode\r\n"
failed:
	.asciz "MBR READ FAILED\r\n"
boot_drive:
	.byte 0
	.balign 4
	/* int 13h AH=42h disk address packet: the sectors after this one,
	 * read to 07E0:0000 (0x7E00), which stays within one 64 KiB segment. */
dap:
	.byte 16, 0
	.word __mbr_sectors
	.word 0, 0x07e0
	.quad 1
boot_gdtr:
	.word 4 * 8 - 1 /* the four descriptors of paging.S */
	.long gdt

	.section .stack, "aw", @nobits
	.balign 4096
mbr_stack:
	.skip 16384
