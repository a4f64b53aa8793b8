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
 * On a std VGA (class 0x0300) the attribute controller's palette source
 * bit is set first (without it the VGA shows nothing, QEMU's too), and a
 * fourth step follows:
 *   4. DISPI off, VGA text mode 3 programmed register by register, a
 *      made-up font (glyph_row) loaded into plane 2, the screen cleared and
 *      TEXT_LINE written grey on black at row 1 through 0xB8000, the
 *      cursor off; prints TEXT.
 * Then DONE and power-off. Drawing is by `rep stosl` over whole rows, so
 * even emulated ring-0 code draws a frame in a few instructions. */
#include "rt/dispi.h"

#define W 800
#define H 600
#define MOVE_TO 0xe0000000u

/* ENABLED | LFB | NOCLEARMEM: the std VGA keeps its memory (step 3 draws
 * over step 1's picture); bochs-display ignores the bit. */
static void set_mode(u16 w, u16 h) { dispi_set_mode(w, h, 0xc1); }

static void box(u64 fb, u32 x, u32 y, u32 w, u32 h, u32 colour)
{
	for (u32 r = y; r < y + h; r++)
		fill(fb + ((u64)r * W + x) * 4, colour, w);
}

/* The VGA's palette source bit (attribute index bit 5): the screen shows
 * what the registers describe only while it is set. */
static void vga_show(void)
{
	(void)inb(0x3da); /* the attribute flip-flop to "index" */
	outb(0x3c0, 0x20);
}

#define TEXT_LINE "rvirt std VGA: text mode 3"

/* Row y of the test font's glyph for c: blank for the space and the top
 * and bottom two rows, else c rotated left by y. The test draws the same. */
static u8 glyph_row(u8 c, u32 y)
{
	if (c == ' ' || y < 2 || y >= 14)
		return 0;
	u32 r = y & 7;
	return (u8)((c << r) | (c >> ((8 - r) & 7)));
}

static void vga_reg(u16 index_port, u8 index, u8 v)
{
	outb(index_port, index);
	outb(index_port + 1, v);
}

/* Mode 3 (80x25, 9x16 cells), as a VGA BIOS sets it, then the font and
 * the text. */
static void vga_text(void)
{
	static const u8 seq[5] = {0x03, 0x00, 0x03, 0x00, 0x02};
	static const u8 crtc[25] = {0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00,
				    0x4f, 0x2d, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e,
				    0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff};
	static const u8 gfx[9] = {0, 0, 0, 0, 0, 0x10, 0x0e, 0x0f, 0xff};
	outb(0x3c2, 0x67);
	for (int i = 0; i < 5; i++)
		vga_reg(0x3c4, (u8)i, seq[i]);
	vga_reg(0x3d4, 0x11, 0x0e); /* CRTC 0-7 writable */
	for (int i = 0; i < 25; i++)
		vga_reg(0x3d4, (u8)i, crtc[i]);
	for (int i = 0; i < 9; i++)
		vga_reg(0x3ce, (u8)i, gfx[i]);
	(void)inb(0x3da);
	for (int i = 0; i < 16; i++) {
		outb(0x3c0, (u8)i);
		outb(0x3c0, (u8)i);
	}
	static const u8 attr[5] = {0x00, 0x00, 0x0f, 0x00, 0x00}; /* 0x10-0x14 */
	for (int i = 0; i < 5; i++) {
		outb(0x3c0, (u8)(0x10 + i));
		outb(0x3c0, attr[i]);
	}
	/* DAC: black, and grey for colour 7. */
	outb(0x3c8, 0);
	for (int i = 0; i < 3 * 8; i++)
		outb(0x3c9, i < 3 * 7 ? 0 : 0x2a);
	/* The font: plane 2 alone, sequential addressing at 0xA0000. */
	vga_reg(0x3c4, 2, 0x04);
	vga_reg(0x3c4, 4, 0x06);
	vga_reg(0x3ce, 4, 0x02);
	vga_reg(0x3ce, 5, 0x00);
	vga_reg(0x3ce, 6, 0x04);
	for (u32 c = 0; c < 256; c++)
		for (u32 y = 0; y < 16; y++)
			wr8(0xa0000 + c * 32 + y, glyph_row((u8)c, y));
	vga_reg(0x3c4, 2, 0x03);
	vga_reg(0x3c4, 4, 0x02);
	vga_reg(0x3ce, 4, 0x00);
	vga_reg(0x3ce, 5, 0x10);
	vga_reg(0x3ce, 6, 0x0e);
	/* Spaces everywhere, then the line at row 1. */
	u64 at = 0xb8000, cells = 80 * 25;
	__asm__ volatile("rep stosw" : "+D"(at), "+c"(cells) : "a"((u16)0x0720) : "memory");
	const char *t = TEXT_LINE;
	for (u32 i = 0; t[i]; i++) {
		wr8(0xb8000 + 160 + 2 * i, (u8)t[i]);
		wr8(0xb8000 + 160 + 2 * i + 1, 0x07);
	}
	vga_show();
}

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	int devfn = dispi_find();
	if (devfn < 0)
		return;
	u32 class = cf8_read((u8)devfn, 8);
	u64 fb = dispi_open(devfn);
	printf("DISPLAY slot=%d class=0x%x id=0x%x vram64k=%u\n", devfn >> 3,
	       class >> 8, dispi_read(0), dispi_read(10));
	printf("EDID %x %x\n", rd32(dispi_regs), rd32(dispi_regs + 4));

	int vga = (class >> 8) == 0x030000;
	if (vga)
		vga_show();
	set_mode(W, H);
	u64 band = (u64)W * (H / 4);
	fill(fb, 0x00ff0000, band);
	fill(fb + band * 4, 0x0000ff00, band);
	fill(fb + band * 8, 0x000000ff, band);
	fill(fb + band * 12, 0x00ffffff, band);
	box(fb, 350, 100, 100, 50, 0x00ffff00);
	printf("DRAWN\n");
	if (!wait_byte(10))
		return;

	dispi(1, 4000);
	dispi(2, 4000);
	cf8_write((u8)devfn, 0x10, MOVE_TO | (cf8_read((u8)devfn, 0x10) & 0xf));
	fb = cf8_read((u8)devfn, 0x10) & ~0xfu;
	printf("REFUSED bar0=0x%lx\n", fb);
	if (!wait_byte(10))
		return;

	set_mode(W, H);
	box(fb, 0, 300, W, 20, 0);
	printf("MOVED\n");
	if (!wait_byte(10))
		return;

	if (vga) {
		dispi(4, 0);
		vga_text();
		printf("TEXT\n");
		if (!wait_byte(10))
			return;
	}
}
