/* bench/display's guest: 1024x768x32 through the Bochs DISPI registers of
 * the first 1234:1111 function on bus 0 (bochs-display or std VGA), the
 * whole screen drawn (a gradient, so no encoding finds it uniform), then
 * DRAWN on COM1. After that, for each byte on COM1's input, a 64x64 box
 * at the next place along a diagonal in the next colour, then BOX n; no
 * byte for two minutes ends it (NO_INPUT) and the guest powers off. */
#include "rt/dispi.h"

#define W 1024
#define H 768
#define BOX 64

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	int devfn = dispi_find();
	if (devfn < 0)
		return;
	u64 fb = dispi_open(devfn);
	dispi_set_mode(W, H, 0x41);

	/* 16-pixel runs, each its own colour. */
	for (u32 y = 0; y < H; y++)
		for (u32 x = 0; x < W; x += 16)
			fill(fb + ((u64)y * W + x) * 4,
			     (x & 0xff) << 16 | (y & 0xff) << 8 | ((x / 16 + y) & 0xff), 16);
	printf("DRAWN\n");

	for (u32 n = 0;; n++) {
		if (!wait_byte(1))
			return;
		u32 at = (n * 48) % (H - BOX);
		u32 colour = 0x00ffffff ^ (n * 0x00250f3b);
		for (u32 r = at; r < at + BOX; r++)
			fill(fb + ((u64)r * W + at) * 4, colour, BOX);
		printf("BOX %u\n", n);
	}
}
