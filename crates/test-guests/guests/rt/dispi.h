/* The Bochs VBE (DISPI) display of the first 1234:1111 function on bus 0
 * (QEMU's bochs-display or std VGA), through its BAR 2 registers, and
 * COM1's input as the host's "next step" signal: shared by the display
 * test guest and bench/display's guest. */
#pragma once

#include "rt.h"

static inline u32 cf8_read(u8 devfn, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)devfn << 8 | (reg & 0xfc));
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((u16)0xcfc));
	return v;
}

static inline void cf8_write(u8 devfn, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | (u32)devfn << 8 | (reg & 0xfc));
	outl(0xcfc, v);
}

/* The display's devfn on bus 0, or -1 (NO_DISPLAY printed). */
static inline int dispi_find(void)
{
	for (int d = 0; d < 256; d += 8)
		if (cf8_read((u8)d, 0) == 0x11111234u)
			return d;
	printf("NO_DISPLAY\n");
	return -1;
}

static u64 dispi_regs; /* BAR 2 */

/* Memory decoding on, whoever placed the BARs; the registers' BAR noted.
 * Returns the framebuffer's address (BAR 0). */
static inline u64 dispi_open(int devfn)
{
	u64 fb = cf8_read((u8)devfn, 0x10) & ~0xfu;
	dispi_regs = cf8_read((u8)devfn, 0x18) & ~0xfu;
	cf8_write((u8)devfn, 4, cf8_read((u8)devfn, 4) | 2);
	return fb;
}

static inline void dispi(int index, u16 v) { *(volatile u16 *)(dispi_regs + 0x500 + 2 * index) = v; }
static inline u16 dispi_read(int index) { return *(volatile u16 *)(dispi_regs + 0x500 + 2 * index); }

/* A w x h x 32 linear mode; `enable` is the ENABLE register's value
 * (0x41: ENABLED | LFB; 0x80 adds NOCLEARMEM). */
static inline void dispi_set_mode(u16 w, u16 h, u16 enable)
{
	dispi(4, 0);      /* ENABLE off */
	dispi(5, 0);      /* BANK */
	dispi(1, w);      /* XRES */
	dispi(2, h);      /* YRES */
	dispi(3, 32);     /* BPP */
	dispi(6, w);      /* VIRT_WIDTH */
	dispi(8, 0);      /* X_OFFSET */
	dispi(9, 0);      /* Y_OFFSET */
	dispi(4, enable);
}

/* `count` pixels of `colour` from `at`: one `rep stosl` (ring-0 code may
 * be emulated, slowly, so no per-pixel loop). */
static inline void fill(u64 at, u32 colour, u64 count)
{
	__asm__ volatile("rep stosl" : "+D"(at), "+c"(count) : "a"(colour) : "memory");
}

/* Waits for a byte on COM1 (polled every `step_ms`) for two minutes; 0
 * (NO_INPUT printed) if none came. */
static inline int wait_byte(u32 step_ms)
{
	for (u32 ms = 0; ms < 120000u; ms += step_ms) {
		if (inb(0x3fd) & 1) {
			(void)inb(0x3f8);
			return 1;
		}
		pit_sleep_ms(step_ms);
	}
	printf("NO_INPUT\n");
	return 0;
}
