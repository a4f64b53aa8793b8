/* AHCI benchmark guest (bench/ahci): finds the first AHCI function on PCI
 * bus 0 (class 01:06:01; q35's built-in 00:1f.2), takes port 0 (a disk),
 * and in ring 3 (where kvm_pvm runs guest code natively) issues
 * ahcibench.n=N (default 2000) READ DMA EXT commands of 4 KiB at random
 * 4 KiB-aligned places of the first ahcibench.blocks=B 512-byte blocks
 * (default 2048), one at a time through command slot 0 (rvirt's AHCI has
 * no NCQ, as Linux then queues), polling PxCI. Interrupts off.
 *
 * Output:
 *   AHCI <bus:slot.fn> abar=0x<addr> pi=0x<ports> sig=0x<port 0 signature>
 *   PHASE randread START / PHASE randread END
 *   PHASE_STATS randread n=<done> errors=<TFD.ERR> tsc=<cycles>
 * then it leaves fast (isa-debug-exit, i8042 reset); AHCIBENCH_FAILED <why>
 * on the way. */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/leave.h"
#include "rt/ring3.h"

#define CLB 0x300000ul  /* command list: 32 slots of 32 bytes */
#define FB 0x301000ul   /* received FISes */
#define CTBA 0x302000ul /* command table: CFIS, then the PRDT at 0x80 */
#define DATA 0x400000ul

static u32 pci32(u32 bdf, u16 reg)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((u16)0xcfc));
	return v;
}

static void pci_w32(u32 bdf, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	outl(0xcfc, v);
}

static int spin_clear(u64 a, u32 bits)
{
	for (u32 i = 0; i < 10000000; i++)
		if (!(rd32(a) & bits))
			return 0;
	return -1;
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *args = si->cmdline_paddr ? (const char *)si->cmdline_paddr : "";
	u32 n = (u32)arg_dec(arg_find(args, "ahcibench.n="), 2000);
	u32 blocks = (u32)arg_dec(arg_find(args, "ahcibench.blocks="), 2048);
	u32 bdf = 0xffffffff;
	for (u32 d = 0; d < 256 && bdf == 0xffffffff; d++)
		if ((pci32(d, 0) & 0xffff) != 0xffff && pci32(d, 8) >> 8 == 0x010601)
			bdf = d;
	if (bdf == 0xffffffff) {
		printf("AHCIBENCH_FAILED no AHCI function\n");
		return;
	}
	pci_w32(bdf, 4, (pci32(bdf, 4) & 0xffff) | 6); /* memory, bus master */
	u64 abar = pci32(bdf, 0x24) & ~0xfu;
	u64 p = abar + 0x100;
	wr32(abar + 0x04, rd32(abar + 0x04) | 1u << 31); /* GHC.AE */
	printf("AHCI %x:%x.%u abar=0x%lx pi=0x%x sig=0x%x\n", bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7,
	       abar, rd32(abar + 0x0c), rd32(p + 0x24));
	/* Stop the port, give it its memory, start it. */
	wr32(p + 0x18, rd32(p + 0x18) & ~0x11u);
	if (spin_clear(p + 0x18, 0xc000)) {
		printf("AHCIBENCH_FAILED port does not stop\n");
		return;
	}
	memset((void *)CLB, 0, 0x3000);
	wr32(p + 0x00, (u32)CLB);
	wr32(p + 0x04, 0);
	wr32(p + 0x08, (u32)FB);
	wr32(p + 0x0c, 0);
	wr32(p + 0x30, 0xffffffff); /* SERR */
	wr32(p + 0x10, 0xffffffff); /* IS */
	wr32(p + 0x14, 0);          /* no interrupts */
	wr32(p + 0x18, rd32(p + 0x18) | 0x10);
	wr32(p + 0x18, rd32(p + 0x18) | 0x01);
	/* Slot 0: a 5-dword H2D FIS, one PRD of 4 KiB. */
	volatile u32 *hdr = (volatile u32 *)CLB;
	hdr[0] = 5 | 1u << 16;
	hdr[2] = (u32)CTBA;
	hdr[3] = 0;
	volatile u8 *fis = (volatile u8 *)CTBA;
	fis[0] = 0x27;
	fis[1] = 0x80;
	fis[2] = 0x25; /* READ DMA EXT */
	fis[7] = 0x40; /* LBA mode */
	fis[12] = 8;   /* sectors */
	volatile u32 *prd = (volatile u32 *)(CTBA + 0x80);
	prd[0] = (u32)DATA;
	prd[1] = 0;
	prd[3] = 4096 - 1;
	u64 lcg = 0x2545f4914f6cdd1dull;
	to_ring3();
	u32 done = 0, errors = 0;
	printf("PHASE randread START\n");
	u64 t0 = rdtsc();
	for (; done < n; done++) {
		lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
		u32 lba = (u32)((lcg >> 33) % (blocks / 8)) * 8;
		fis[4] = (u8)lba;
		fis[5] = (u8)(lba >> 8);
		fis[6] = (u8)(lba >> 16);
		fis[8] = (u8)(lba >> 24);
		hdr[1] = 0;
		__asm__ volatile("mfence" ::: "memory");
		wr32(p + 0x38, 1);
		if (spin_clear(p + 0x38, 1)) {
			printf("AHCIBENCH_FAILED command %u never completed\n", done);
			leave_fast();
		}
		if (rd32(p + 0x20) & 1)
			errors++;
	}
	u64 t1 = rdtsc();
	printf("PHASE randread END\n");
	printf("PHASE_STATS randread n=%u errors=%u tsc=%lu\n", done, errors, t1 - t0);
	leave_fast();
}
