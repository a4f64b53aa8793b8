/* A display through the Bochs VBE (DISPI) registers of the first
 * 1234:1111 function on bus 0 (QEMU's bochs-display or std VGA), in three
 * steps, each ended by a line on COM1 and a wait for one byte on COM1's
 * input (so a test can capture the screen between them):
 *   1. 800x600x32 through BAR 2's registers; four bands (red, green, blue,
 *      white, 150 rows each) and a yellow 100x50 box at (350, 100);
 *      prints DRAWN.
 *   2. an impossible mode (4000x4000x32 does not fit 16 MiB) and BAR 0
 *      moved to MOVE_TO; prints REFUSED (the screen must still be step 1).
 *   3. the 800x600x32 mode again, and a black stripe over rows 300-319
 *      drawn through the moved BAR; prints MOVED.
 * Then DONE and power-off. Drawing is by `rep stosl` over whole rows, so
 * even emulated ring-0 code draws a frame in a few instructions. */
#include "rt/rt.h"

#define W 800
#define H 600
#define MOVE_TO 0xe0000000u
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
static u16 dispi_read(int index) { return *(volatile u16 *)(regs + 0x500 + 2 * index); }

static void set_mode(u16 w, u16 h)
{
	dispi(4, 0);      /* ENABLE off */
	dispi(5, 0);      /* BANK */
	dispi(1, w);      /* XRES */
	dispi(2, h);      /* YRES */
	dispi(3, 32);     /* BPP */
	dispi(6, w);      /* VIRT_WIDTH */
	dispi(8, 0);      /* X_OFFSET */
	dispi(9, 0);      /* Y_OFFSET */
	dispi(4, 0x41);   /* ENABLED | LFB */
}

static void fill(u64 at, u32 colour, u64 count)
{
	__asm__ volatile("rep stosl" : "+D"(at), "+c"(count) : "a"(colour) : "memory");
}

static void box(u64 fb, u32 x, u32 y, u32 w, u32 h, u32 colour)
{
	for (u32 r = y; r < y + h; r++)
		fill(fb + ((u64)r * W + x) * 4, colour, w);
}

/* Waits for a byte on COM1 (polled); 0 if none came in time. */
static int wait_byte(void)
{
	for (u32 ms = 0; ms < WAIT_MS; ms += 10) {
		if (inb(0x3fd) & 1) {
			(void)inb(0x3f8);
			return 1;
		}
		pit_sleep_ms(10);
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
	u32 class = cf8_read((u8)devfn, 8);
	u64 fb = cf8_read((u8)devfn, 0x10) & ~0xfu;
	regs = cf8_read((u8)devfn, 0x18) & ~0xfu;
	/* Memory decoding on, whoever placed the BARs. */
	cf8_write((u8)devfn, 4, cf8_read((u8)devfn, 4) | 2);
	printf("DISPLAY slot=%d class=0x%x id=0x%x vram64k=%u\n", devfn >> 3,
	       class >> 8, dispi_read(0), dispi_read(10));
	printf("EDID %x %x\n", rd32(regs), rd32(regs + 4));

	set_mode(W, H);
	u64 band = (u64)W * (H / 4);
	fill(fb, 0x00ff0000, band);
	fill(fb + band * 4, 0x0000ff00, band);
	fill(fb + band * 8, 0x000000ff, band);
	fill(fb + band * 12, 0x00ffffff, band);
	box(fb, 350, 100, 100, 50, 0x00ffff00);
	printf("DRAWN\n");
	if (!wait_byte())
		return;

	dispi(1, 4000);
	dispi(2, 4000);
	cf8_write((u8)devfn, 0x10, MOVE_TO | (cf8_read((u8)devfn, 0x10) & 0xf));
	fb = cf8_read((u8)devfn, 0x10) & ~0xfu;
	printf("REFUSED bar0=0x%lx\n", fb);
	if (!wait_byte())
		return;

	set_mode(W, H);
	box(fb, 0, 300, W, 20, 0);
	printf("MOVED\n");
	if (!wait_byte())
		return;
}
