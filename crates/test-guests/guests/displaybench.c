/* bench/display's guest: 1024x768x32 through the Bochs DISPI registers of
 * the first 1234:1111 function on bus 0 (bochs-display or std VGA), the
 * whole screen drawn (a gradient, so no encoding finds it uniform), then
 * DRAWN on COM1. After that, for each byte on COM1's input, a 64x64 box
 * at the next place along a diagonal in the next colour, then BOX n; no
 * byte for two minutes ends it (NO_INPUT) and the guest powers off. */
#include "rt/rt.h"

#define W 1024
#define H 768
#define BOX 64
#define WAIT_MS 120000u

static u32 cf8_read(u8 devfn, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)devfn << 8 | (reg & 0xfc));
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((u16)0xcfc));
	return v;
}

static void cf8_write(u8 devfn, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | (u32)devfn << 8 | (reg & 0xfc));
	outl(0xcfc, v);
}

static u64 regs; /* BAR 2 */

static void dispi(int index, u16 v) { *(volatile u16 *)(regs + 0x500 + 2 * index) = v; }

static void fill(u64 at, u32 colour, u64 count)
{
	__asm__ volatile("rep stosl" : "+D"(at), "+c"(count) : "a"(colour) : "memory");
}

static int wait_byte(void)
{
	for (u32 ms = 0; ms < WAIT_MS; ms += 1) {
		if (inb(0x3fd) & 1) {
			(void)inb(0x3f8);
			return 1;
		}
		pit_sleep_ms(1);
	}
	printf("NO_INPUT\n");
	return 0;
}

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	int devfn = -1;
	for (int d = 0; d < 256; d += 8) {
		if (cf8_read((u8)d, 0) == 0x11111234u) {
			devfn = d;
			break;
		}
	}
	if (devfn < 0) {
		printf("NO_DISPLAY\n");
		return;
	}
	u64 fb = cf8_read((u8)devfn, 0x10) & ~0xfu;
	regs = cf8_read((u8)devfn, 0x18) & ~0xfu;
	cf8_write((u8)devfn, 4, cf8_read((u8)devfn, 4) | 2);

	dispi(4, 0);   /* ENABLE off */
	dispi(5, 0);   /* BANK */
	dispi(1, W);   /* XRES */
	dispi(2, H);   /* YRES */
	dispi(3, 32);  /* BPP */
	dispi(6, W);   /* VIRT_WIDTH */
	dispi(8, 0);   /* X_OFFSET */
	dispi(9, 0);   /* Y_OFFSET */
	dispi(4, 0x41); /* ENABLED | LFB */

	/* 16-pixel runs, each its own colour (one `rep stosl` each: ring-0
	 * code may be emulated, slowly, so no per-pixel loop). */
	for (u32 y = 0; y < H; y++)
		for (u32 x = 0; x < W; x += 16)
			fill(fb + ((u64)y * W + x) * 4,
			     (x & 0xff) << 16 | (y & 0xff) << 8 | ((x / 16 + y) & 0xff), 16);
	printf("DRAWN\n");

	for (u32 n = 0;; n++) {
		if (!wait_byte())
			return;
		u32 at = (n * 48) % (H - BOX);
		u32 colour = 0x00ffffff ^ (n * 0x00250f3b);
		for (u32 r = at; r < at + BOX; r++)
			fill(fb + ((u64)r * W + at) * 4, colour, BOX);
		printf("BOX %u\n", n);
	}
}
