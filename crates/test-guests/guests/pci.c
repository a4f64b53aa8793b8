/* PCI from the bottom: enumerate through CONFIG_ADDRESS/CONFIG_DATA (0xcf8)
 * and through ECAM (the MCFG's window, if there is one), walk every
 * function's capabilities, size every BAR (assigning those left at 0),
 * then drive the first virtio-blk through the modern virtio-pci interface
 * (read a sector, write one, flush) with MSI-X vectors aimed at this CPU's
 * local APIC: interrupts stay off and the APIC's IRR shows each message
 * arrive. A masked vector must latch its PBA bit and fire on unmask. Last
 * the virtio BAR is moved and the disk read again through the new place.
 * Polling only, every wait bounded. The README's "pci" section lists the
 * output. */
#include "rt/rt.h"
#include "rt/fnv.h"
#include "rt/leave.h"

#define WAIT_MS 20000u
#define QSZ 8
#define RINGS 0x300000ul
#define BUFS 0x400000ul
/* Where BARs left at 0 go: above anything firmware or the VMM uses. */
#define ASSIGN_BASE 0xe0000000ul

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void wr64(u64 a, u64 v) { *(volatile u64 *)a = v; }
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---- page tables: map 1 GiB regions above 4 GiB on demand ---- */
extern u64 pml4[];
static u64 pds[8][512] __attribute__((aligned(4096)));
static int pds_used;

/* Identity-maps the GiB holding `addr` (uncached) if it is not yet. */
static int map_gib(u64 addr)
{
	u64 *pdpt = (u64 *)(pml4[0] & ~0xffful);
	u64 i = addr >> 30;
	if (i >= 512)
		return -1;
	if (pdpt[i] & 1)
		return 0;
	if (pds_used >= 8)
		return -1;
	u64 *pd = pds[pds_used++];
	for (u64 k = 0; k < 512; k++)
		pd[k] = (i << 30) + (k << 21) + 0x9b;
	pdpt[i] = (u64)pd + 0x03;
	u64 cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
	return 0;
}

/* ---- configuration access ---- */
static u64 ecam; /* 0: none */

static u32 cf8_read(u8 bus, u8 devfn, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | (reg & 0xfc));
	return inl(0xcfc);
}

static void cf8_write(u8 bus, u8 devfn, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | (reg & 0xfc));
	outl(0xcfc, v);
}

static u32 ecam_read(u8 bus, u8 devfn, u16 reg)
{
	return rd32(ecam + ((u64)bus << 20) + ((u64)devfn << 12) + (reg & 0xffc));
}

/* Everything after enumeration goes through CF8, which both machines have. */
static u32 cfg_r32(u8 bus, u8 devfn, u16 reg) { return cf8_read(bus, devfn, reg); }
static u8 cfg_r8(u8 bus, u8 devfn, u16 reg) { return (u8)(cf8_read(bus, devfn, reg) >> (8 * (reg & 3))); }
static u16 cfg_r16(u8 bus, u8 devfn, u16 reg) { return (u16)(cf8_read(bus, devfn, reg) >> (8 * (reg & 2))); }
static void cfg_w32(u8 bus, u8 devfn, u16 reg, u32 v) { cf8_write(bus, devfn, reg, v); }
static void cfg_w16(u8 bus, u8 devfn, u16 reg, u16 v)
{
	u32 old = cf8_read(bus, devfn, reg);
	u32 sh = 8 * (reg & 2);
	cf8_write(bus, devfn, reg, (old & ~(0xffffu << sh)) | (u32)v << sh);
}

/* ---- enumeration ---- */
struct fn {
	u8 bus, devfn;
	u32 id;
	u8 hdr;
};
static struct fn fns[64];
static int nfns;

static void bdf(u8 bus, u8 devfn, char *out)
{
	static const char hex[] = "0123456789abcdef";
	out[0] = hex[bus >> 4];
	out[1] = hex[bus & 15];
	out[2] = ':';
	out[3] = hex[(devfn >> 3) >> 4];
	out[4] = hex[(devfn >> 3) & 15];
	out[5] = '.';
	out[6] = hex[devfn & 7];
	out[7] = 0;
}

/* Scans `bus` (and the buses behind its bridges) through `rd`; records the
 * functions if `record`, returns how many answered. */
static int scan(u8 bus, u32 (*rd)(u8, u8, u16), int record, int depth)
{
	int n = 0;
	for (u8 slot = 0; slot < 32; slot++) {
		for (u8 f = 0; f < 8; f++) {
			u8 devfn = slot << 3 | f;
			u32 id = rd(bus, devfn, 0);
			if ((id & 0xffff) == 0xffff) {
				if (f == 0)
					break;
				continue;
			}
			u8 hdr = (u8)(rd(bus, devfn, 0xc) >> 16);
			n++;
			if (record && nfns < 64)
				fns[nfns++] = (struct fn){bus, devfn, id, hdr};
			if ((hdr & 0x7f) == 1 && depth < 4) {
				u8 sec = (u8)(rd(bus, devfn, 0x18) >> 8);
				if (sec > bus)
					n += scan(sec, rd, record, depth + 1);
			}
			if (f == 0 && !(hdr & 0x80))
				break;
		}
	}
	return n;
}

static void list(void)
{
	char b[8];
	for (int i = 0; i < nfns; i++) {
		struct fn *f = &fns[i];
		bdf(f->bus, f->devfn, b);
		u32 class = cfg_r32(f->bus, f->devfn, 8);
		printf("PCI %s %04x:%04x class=%06x rev=%02x hdr=%02x", b, f->id & 0xffff, f->id >> 16,
		       class >> 8, class & 0xff, f->hdr);
		if ((f->hdr & 0x7f) == 0) {
			u32 ss = cfg_r32(f->bus, f->devfn, 0x2c);
			printf(" ssid=%04x:%04x pin=%u", ss & 0xffff, ss >> 16,
			       cfg_r8(f->bus, f->devfn, 0x3d));
		} else {
			u32 b18 = cfg_r32(f->bus, f->devfn, 0x18);
			printf(" bus=%u-%u", (b18 >> 8) & 0xff, (b18 >> 16) & 0xff);
		}
		printf("\n");
	}
}

/* Walks the capability list; a loop or a pointer into the header ends it. */
static void caps(struct fn *f)
{
	char b[8];
	bdf(f->bus, f->devfn, b);
	if (!(cfg_r16(f->bus, f->devfn, 6) & 0x10))
		return;
	u8 at = cfg_r8(f->bus, f->devfn, 0x34) & 0xfc;
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		u8 id = cfg_r8(f->bus, f->devfn, at);
		printf("CAP %s 0x%02x 0x%02x", b, at, id);
		if (id == 0x09 && (f->id & 0xffff) == 0x1af4) {
			printf(" virtio type=%u bar=%u off=0x%x len=0x%x", cfg_r8(f->bus, f->devfn, at + 3),
			       cfg_r8(f->bus, f->devfn, at + 4), cfg_r32(f->bus, f->devfn, at + 8),
			       cfg_r32(f->bus, f->devfn, at + 12));
		} else if (id == 0x11) {
			u32 t = cfg_r32(f->bus, f->devfn, at + 4), p = cfg_r32(f->bus, f->devfn, at + 8);
			printf(" msix vectors=%u table=%u/0x%x pba=%u/0x%x",
			       (cfg_r16(f->bus, f->devfn, at + 2) & 0x7ff) + 1, t & 7, t & ~7u, p & 7, p & ~7u);
		} else if (id == 0x10) {
			printf(" pcie type=%u", (cfg_r16(f->bus, f->devfn, at + 2) >> 4) & 0xf);
		}
		printf("\n");
		at = cfg_r8(f->bus, f->devfn, at + 1) & 0xfc;
	}
}

static u64 assign_next = ASSIGN_BASE;

/* Sizes every BAR with decode off, assigns those at 0, prints them. */
static void bars(struct fn *f)
{
	char b[8];
	bdf(f->bus, f->devfn, b);
	int n = (f->hdr & 0x7f) == 0 ? 6 : 2;
	u16 cmd = cfg_r16(f->bus, f->devfn, 4);
	cfg_w16(f->bus, f->devfn, 4, cmd & ~3);
	for (int i = 0; i < n; i++) {
		u16 reg = 0x10 + 4 * i;
		u32 lo = cfg_r32(f->bus, f->devfn, reg);
		cfg_w32(f->bus, f->devfn, reg, 0xffffffff);
		u32 mask_lo = cfg_r32(f->bus, f->devfn, reg);
		cfg_w32(f->bus, f->devfn, reg, lo);
		if (!mask_lo)
			continue;
		int io = lo & 1, is64 = !io && (lo & 6) == 4;
		u64 mask = io ? (mask_lo & ~3u) | 0xffff0000u : mask_lo & ~0xfu;
		u64 addr = io ? lo & ~3u : lo & ~0xfu;
		if (is64) {
			u32 hi = cfg_r32(f->bus, f->devfn, reg + 4);
			cfg_w32(f->bus, f->devfn, reg + 4, 0xffffffff);
			mask |= (u64)cfg_r32(f->bus, f->devfn, reg + 4) << 32;
			cfg_w32(f->bus, f->devfn, reg + 4, hi);
			addr |= (u64)hi << 32;
		} else {
			mask |= 0xffffffff00000000ul;
		}
		u64 size = ~mask + 1;
		if (io)
			size &= 0xffff;
		printf("BAR %s %d %s pref=%u size=0x%lx\n", b, i, io ? "io" : is64 ? "mem64" : "mem32",
		       !io && (lo & 8) ? 1 : 0, size);
		if (!addr && !io) {
			assign_next = (assign_next + size - 1) & ~(size - 1);
			addr = assign_next;
			assign_next += size;
			cfg_w32(f->bus, f->devfn, reg, (u32)addr);
			if (is64)
				cfg_w32(f->bus, f->devfn, reg + 4, (u32)(addr >> 32));
			printf("BAR_ASSIGNED %s %d\n", b, i);
		}
		printf("BAR_AT %s %d 0x%lx\n", b, i, addr);
		if (is64)
			i++;
	}
	cfg_w16(f->bus, f->devfn, 4, cmd);
}

/* ---- virtio-pci ---- */
static u64 common, isr, notify_base, device_cfg;
static u32 notify_mult;
static u64 msix_table, msix_pba;
static u8 msix_cap;
static struct fn *blkfn;
static u64 lapic = 0xfee00000;
static u16 avail_idx, used_seen;
static u16 notify_off;

/* A BAR's address as the guest sees it now. */
static u64 bar_addr(struct fn *f, int i)
{
	u32 lo = cfg_r32(f->bus, f->devfn, 0x10 + 4 * i);
	u64 a = lo & ~0xfu;
	if ((lo & 7) == 4)
		a |= (u64)cfg_r32(f->bus, f->devfn, 0x14 + 4 * i) << 32;
	return a;
}

/* Finds the virtio structures through the vendor capabilities. */
static int virtio_caps(struct fn *f)
{
	common = isr = notify_base = device_cfg = 0;
	msix_cap = 0;
	u8 at = cfg_r8(f->bus, f->devfn, 0x34) & 0xfc;
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		u8 id = cfg_r8(f->bus, f->devfn, at);
		if (id == 0x11)
			msix_cap = at;
		if (id == 0x09) {
			u8 type = cfg_r8(f->bus, f->devfn, at + 3), bar = cfg_r8(f->bus, f->devfn, at + 4);
			u64 a = bar < 6 ? bar_addr(f, bar) + cfg_r32(f->bus, f->devfn, at + 8) : 0;
			if (type == 1)
				common = a;
			else if (type == 2) {
				notify_base = a;
				notify_mult = cfg_r32(f->bus, f->devfn, at + 16);
			} else if (type == 3)
				isr = a;
			else if (type == 4)
				device_cfg = a;
		}
		at = cfg_r8(f->bus, f->devfn, at + 1) & 0xfc;
	}
	if (msix_cap) {
		u32 t = cfg_r32(f->bus, f->devfn, msix_cap + 4), p = cfg_r32(f->bus, f->devfn, msix_cap + 8);
		msix_table = bar_addr(f, t & 7) + (t & ~7u);
		msix_pba = bar_addr(f, p & 7) + (p & ~7u);
	}
	u64 all[] = {common, isr, notify_base, device_cfg, msix_table};
	for (int i = 0; i < 5; i++)
		if (!all[i] || map_gib(all[i]))
			return -1;
	return 0;
}

/* Points MSI-X entry `v` at this CPU with `vector`, masked or not. */
static void msix_entry(int v, u8 vector, int masked)
{
	u64 e = msix_table + 16 * v;
	wr32(e + 12, 1);
	wr32(e, (u32)lapic); /* destination APIC ID 0 */
	wr32(e + 4, 0);
	wr32(e + 8, vector); /* fixed, edge */
	wr32(e + 12, masked ? 1 : 0);
}

static int irr_now(u8 vector) { return (rd32(lapic + 0x200 + 0x10 * (vector / 32)) >> (vector % 32)) & 1; }

/* Whether `vector` is in the IRR, waiting up to a second for it: a
 * message or an INTx assertion may reach the APIC a little after the
 * used ring shows the completion (the VMM writes the ring, then signals). */
static int irr(u8 vector)
{
	for (int ms = 0; ms < 1000; ms++) {
		if (irr_now(vector))
			return 1;
		pit_wait(PIT_HZ / 1000);
	}
	return 0;
}

static void set_desc(int i, u64 addr, u32 len, u16 flags)
{
	u64 d = RINGS + 16 * i;
	wr64(d, addr);
	wr32(d + 8, len);
	wr16(d + 12, flags);
	wr16(d + 14, (u16)(i + 1));
}

/* Posts the chain at descriptor 0, kicks, waits for it: 0, or -1. */
static int submit(void)
{
	u64 avail = RINGS + 0x100, used = RINGS + 0x1000;
	wr16(avail + 4 + 2 * (avail_idx % QSZ), 0);
	mb();
	avail_idx++;
	wr16(avail + 2, avail_idx);
	mb();
	wr16(notify_base + (u64)notify_off * notify_mult, 0);
	for (u32 waited = 0; waited < WAIT_MS; waited++) {
		if (rd16(used + 2) != used_seen) {
			used_seen++;
			return 0;
		}
		if (waited >= 4)
			pit_wait(PIT_HZ / 1000);
	}
	return -1;
}

/* One request; the status byte, or -1 on timeout. */
static int blk_req(u32 type, u64 sector, u64 data, u32 len, int dev_writes)
{
	u64 hdr = BUFS + 0x8000, status = BUFS + 0x8100;
	wr32(hdr, type);
	wr32(hdr + 4, 0);
	wr64(hdr + 8, sector);
	wr8(status, 0xff);
	int i = 0;
	set_desc(i++, hdr, 16, 1);
	if (len)
		set_desc(i++, data, len, 1 | (dev_writes ? 2 : 0));
	set_desc(i, status, 1, 2);
	if (submit())
		return -1;
	return rd8(status);
}

static void pstatus(const char *what, int s)
{
	if (s < 0)
		printf("%s timeout\n", what);
	else
		printf("%s %d\n", what, s);
}

static u16 qmax;

/* Resets the device and brings it to DRIVER_OK with queue 0; with MSI-X
 * on, entry 0 (vector 0x40) for queue 0. Returns the device's feature
 * bits 0-31, or -1. */
static long bringup(struct fn *f, int msix)
{
	wr8(common + 0x14, 0);
	wr8(common + 0x14, 1);
	wr8(common + 0x14, 3);
	wr32(common + 0x00, 1);
	u32 hi = rd32(common + 0x04);
	wr32(common + 0x00, 0);
	u32 lo = rd32(common + 0x04);
	/* VERSION_1, and FLUSH (bit 9) if offered. */
	wr32(common + 0x08, 1);
	wr32(common + 0x0c, hi & 1);
	wr32(common + 0x08, 0);
	wr32(common + 0x0c, lo & (1u << 9));
	wr8(common + 0x14, 3 | 8);
	if (!(rd8(common + 0x14) & 8)) {
		printf("BLK_FAILED FEATURES_OK\n");
		return -1;
	}
	u16 ctl = cfg_r16(f->bus, f->devfn, msix_cap + 2);
	if (msix) {
		cfg_w16(f->bus, f->devfn, msix_cap + 2, (ctl | 0x8000) & ~0x4000);
		msix_entry(0, 0x40, 0);
	} else {
		cfg_w16(f->bus, f->devfn, msix_cap + 2, ctl & ~0x8000);
	}
	wr16(common + 0x10, 0xffff);
	wr16(common + 0x16, 0);
	qmax = rd16(common + 0x18);
	wr16(common + 0x18, QSZ);
	wr16(common + 0x1a, msix ? 0 : 0xffff);
	memset((void *)RINGS, 0, 0x2000);
	avail_idx = used_seen = 0;
	wr64(common + 0x20, RINGS);
	wr64(common + 0x28, RINGS + 0x100);
	wr64(common + 0x30, RINGS + 0x1000);
	notify_off = rd16(common + 0x1e);
	wr16(common + 0x1c, 1);
	wr8(common + 0x14, 3 | 8 | 4);
	if (rd8(common + 0x14) != 15) {
		printf("BLK_FAILED DRIVER_OK status=0x%x\n", rd8(common + 0x14));
		return -1;
	}
	return lo;
}

/* INTx, for drivers without MSI-X: the IOAPIC pin firmware wrote in the
 * Interrupt Line register programmed level-triggered to vector 0x50; a
 * read's completion must assert it (the IRR) and show in STATUS, and
 * reading the ISR must drop it. */
static void intx(struct fn *f)
{
	u8 pin = cfg_r8(f->bus, f->devfn, 0x3c);
	printf("INTX_LINE_AT %u\n", pin);
	if (pin == 0 || pin >= 24) {
		printf("INTX_FAILED no interrupt line\n");
		return;
	}
	u64 ioapic = 0xfec00000;
	wr32(ioapic, 0x10 + 2 * pin + 1);
	wr32(ioapic + 0x10, 0); /* destination APIC ID 0 */
	wr32(ioapic, 0x10 + 2 * pin);
	wr32(ioapic + 0x10, 0x50 | 1u << 15); /* fixed, physical, level, unmasked */
	if (bringup(f, 0) < 0)
		return;
	int before = irr_now(0x50);
	pstatus("INTX_READ_STATUS", blk_req(0, 0, BUFS, 512, 1));
	printf("INTX_IRR %d%d\n", before, irr(0x50));
	printf("INTX_STATUS_BIT %u\n", (cfg_r16(f->bus, f->devfn, 6) >> 3) & 1);
	printf("INTX_ISR 0x%x\n", rd8(isr));
	printf("INTX_STATUS_BIT_AFTER_ISR %u\n", (cfg_r16(f->bus, f->devfn, 6) >> 3) & 1);
	wr32(ioapic, 0x10 + 2 * pin);
	wr32(ioapic + 0x10, 0x50 | 1u << 15 | 1u << 16); /* masked again */
}

static void blk(struct fn *f)
{
	char b[8];
	bdf(f->bus, f->devfn, b);
	printf("BLK %s\n", b);
	if (virtio_caps(f)) {
		printf("BLK_FAILED structures not found or not mappable\n");
		return;
	}
	if (!msix_cap) {
		printf("BLK_FAILED no MSI-X\n");
		return;
	}
	/* The local APIC accepts fixed interrupts only while software-enabled
	 * (SVR bit 8); with IF clear they wait in its IRR. */
	wr32(lapic + 0xf0, rd32(lapic + 0xf0) | 0x1ff);
	/* Bus mastering, memory decode. */
	cfg_w16(f->bus, f->devfn, 4, cfg_r16(f->bus, f->devfn, 4) | 6);
	intx(f);
	long lo = bringup(f, 1);
	if (lo < 0)
		return;
	printf("BLK_FEATURES_FLUSH %lu\n", (lo >> 9) & 1);
	printf("BLK_NUM_QUEUES %u\n", rd16(common + 0x12));
	printf("BLK_QUEUE_SIZE_MAX %u\n", qmax);
	printf("BLK_QUEUE_VECTOR %u\n", rd16(common + 0x1a));
	printf("BLK_CAPACITY %lu\n", rd64(device_cfg));

	/* Read sectors 0..7: the completion's message lands in the IRR. */
	int before = irr_now(0x40);
	pstatus("BLK_READ_STATUS", blk_req(0, 0, BUFS, 4096, 1));
	printf("BLK_READ_FNV1A32 0x%08x\n", fnv1a32(BUFS, 4096));
	printf("MSIX_IRR %d%d\n", before, irr(0x40));

	/* Entry 0 masked, now to vector 0x41: the write's interrupt must wait
	 * in the PBA, then arrive on unmask. */
	msix_entry(0, 0x41, 1);
	for (int i = 0; i < 512; i++)
		wr8(BUFS + 0x1000 + i, (u8)(i * 7 + 3));
	pstatus("BLK_WRITE_STATUS", blk_req(1, 9, BUFS + 0x1000, 512, 0));
	printf("MSIX_MASKED_IRR %d\n", irr_now(0x41));
	printf("MSIX_MASKED_PBA %u\n", rd32(msix_pba) & 1);
	wr32(msix_table + 12, 0);
	printf("MSIX_UNMASKED_IRR %d\n", irr(0x41));
	printf("MSIX_UNMASKED_PBA %u\n", rd32(msix_pba) & 1);

	msix_entry(0, 0x42, 0);
	if ((lo >> 9) & 1) {
		pstatus("BLK_FLUSH_STATUS", blk_req(4, 0, 0, 0, 0));
		printf("MSIX_FLUSH_IRR %d\n", irr(0x42));
	}
}

/* Moves the virtio BAR and reads sector 9 back through its new place. */
static void move(struct fn *f)
{
	int vbar = -1;
	for (int i = 0; i < 6; i++)
		if (bar_addr(f, i) && bar_addr(f, i) <= common && common < bar_addr(f, i) + 0x4000)
			vbar = i;
	if (vbar < 0) {
		printf("MOVE_FAILED no virtio BAR\n");
		return;
	}
	u64 old = bar_addr(f, vbar);
	/* Behind a root port, stay inside its 1 MiB window; on the root bus go
	 * above anything firmware or the VMM placed. */
	u64 to = f->bus ? old ^ 0x80000ul : 0x1000000000ul + (old & 0xfffff);
	if (map_gib(to)) {
		printf("MOVE_FAILED cannot map 0x%lx\n", to);
		return;
	}
	u16 cmd = cfg_r16(f->bus, f->devfn, 4);
	cfg_w16(f->bus, f->devfn, 4, cmd & ~2);
	cfg_w32(f->bus, f->devfn, 0x10 + 4 * vbar, (u32)to | (cfg_r32(f->bus, f->devfn, 0x10 + 4 * vbar) & 0xf));
	cfg_w32(f->bus, f->devfn, 0x14 + 4 * vbar, (u32)(to >> 32));
	cfg_w16(f->bus, f->devfn, 4, cmd);
	printf("MOVE %d 0x%lx 0x%lx\n", vbar, old, to);
	printf("MOVED_BAR_READS_BACK %d\n", bar_addr(f, vbar) == to);
	common += to - old;
	notify_base += to - old;
	device_cfg += to - old;
	isr += to - old;
	printf("MOVED_STATUS 0x%x\n", rd8(common + 0x14));
	msix_entry(0, 0x43, 0);
	memset((void *)(BUFS + 0x2000), 0, 512);
	pstatus("MOVED_READ_STATUS", blk_req(0, 9, BUFS + 0x2000, 512, 1));
	printf("MOVED_READ_MATCH %d\n", !memcmp((void *)(BUFS + 0x2000), (void *)(BUFS + 0x1000), 512));
	printf("MSIX_MOVED_IRR %d\n", irr(0x43));
	/* Quiet the device before powering off. */
	wr8(common + 0x14, 0);
}


/* ---- pci.hotplug=1|2|3: native PCI Express hot-plug, the OS's side ----
 * Finds the first empty hot-plug capable root port, aims its MSI-X vector
 * at this CPU (vector 0x60, then 0x61 for the button) and enables its
 * hot-plug interrupts, says
 * HP_READY and waits for a device to appear (the host's device_add);
 * powers the slot on, assigns the new function's BARs inside the port's
 * windows and reads the virtio device's configuration through them
 * (a NIC's MAC, a disk's capacity and its first sector). Then HP_ARMED and
 * waits for the attention button (the host's device_del): with 1 it
 * answers as Linux's pciehp does, powering the slot and its indicator
 * off, and watches the device go; with 2 it never answers and checks the
 * device is still there; with 3 it answers as 1 after 12 s. Every wait
 * bounded. */
#define HP_WAIT_MS 60000u
#define SLTCTL 0x18
#define SLTSTA 0x1a

static u8 find_cap(u8 bus, u8 devfn, u8 want)
{
	u8 at = cfg_r8(bus, devfn, 0x34) & 0xfc;
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		if (cfg_r8(bus, devfn, at) == want)
			return at;
		at = cfg_r8(bus, devfn, at + 1) & 0xfc;
	}
	return 0;
}

/* Waits until (slot status & mask) != 0 (or == 0 with `clear`). */
static u16 wait_status(u8 bus, u8 devfn, u8 exp, u16 mask, int clear)
{
	for (u32 ms = 0; ms < HP_WAIT_MS; ms++) {
		u16 st = cfg_r16(bus, devfn, exp + SLTSTA);
		if (clear ? !(st & mask) : (st & mask))
			return st;
		pit_wait(PIT_HZ / 1000);
	}
	return 0xffff;
}

static void hotplug(int answer)
{
	struct fn *port = 0;
	u8 exp = 0;
	for (int i = 0; i < nfns && !port; i++) {
		if (fns[i].id != 0x000c1b36)
			continue;
		u8 e = find_cap(fns[i].bus, fns[i].devfn, 0x10);
		u32 caps = cfg_r32(fns[i].bus, fns[i].devfn, e + 0x14);
		if (e && (caps & 0x40) && !(cfg_r16(fns[i].bus, fns[i].devfn, e + SLTSTA) & 0x40)) {
			port = &fns[i];
			exp = e;
		}
	}
	if (!port) {
		printf("HP_FAILED no empty hot-plug port\n");
		return;
	}
	u8 b = port->bus, d = port->devfn;
	char name[8];
	bdf(b, d, name);
	u8 sec = (u8)(cfg_r32(b, d, 0x18) >> 8);
	printf("HP_PORT %s\n", name);
	printf("HP_SLOT_CAPS 0x%x\n", cfg_r32(b, d, exp + 0x14) & 0x7ffff);
	printf("HP_SLOT_CTL 0x%x\n", cfg_r16(b, d, exp + SLTCTL));
	/* The port's MSI-X vector 0 to vector 0x60 on this CPU. */
	u8 mx = find_cap(b, d, 0x11);
	u64 table = bar_addr(port, cfg_r32(b, d, mx + 4) & 7) + (cfg_r32(b, d, mx + 4) & ~7u);
	if (!mx || !table || map_gib(table)) {
		printf("HP_FAILED no MSI-X table\n");
		return;
	}
	wr32(lapic + 0xf0, rd32(lapic + 0xf0) | 0x1ff);
	cfg_w16(b, d, 4, cfg_r16(b, d, 4) | 6);
	wr32(table + 12, 1);
	wr32(table, (u32)lapic);
	wr32(table + 4, 0);
	wr32(table + 8, 0x60);
	wr32(table + 12, 0);
	cfg_w16(b, d, mx + 2, (cfg_r16(b, d, mx + 2) | 0x8000) & ~0x4000);
	/* Events cleared, then presence and button interrupts on (not
	 * command completed: with interrupts off nothing acknowledges a
	 * vector, so each event gets its own). */
	cfg_w16(b, d, exp + SLTSTA, 0x1f);
	u16 ctl = cfg_r16(b, d, exp + SLTCTL);
	cfg_w16(b, d, exp + SLTCTL, ctl | 0x20 | 0x08 | 0x01);
	cfg_w16(b, d, exp + SLTSTA, 0x1f);
	int before = irr_now(0x60);
	printf("HP_READY\n");

	u16 st = wait_status(b, d, exp, 0x40, 0);
	printf("HP_PRESENT %u\n", st != 0xffff);
	if (st == 0xffff)
		return;
	printf("HP_PDC %u\n", (st >> 3) & 1);
	printf("HP_IRR %d%d\n", before, irr(0x60));
	printf("HP_LINK_ACTIVE %u\n", (cfg_r16(b, d, exp + 0x12) >> 13) & 1);
	/* Power on, power indicator on (as pciehp does), events cleared. */
	cfg_w16(b, d, exp + SLTSTA, st & 0x1f);
	ctl = cfg_r16(b, d, exp + SLTCTL);
	cfg_w16(b, d, exp + SLTCTL, (ctl & ~0x0700) | 0x0100);
	cfg_w16(b, d, exp + SLTSTA, 0x1f);
	u32 id = cfg_r32(sec, 0, 0);
	printf("HP_DEVICE %04x:%04x\n", id & 0xffff, id >> 16);
	if ((id & 0xffff) != 0x1af4)
		return;
	struct fn dev = {sec, 0, id, cfg_r8(sec, 0, 0xe)};
	/* BARs inside the port's windows: prefetchable 64-bit ones in the
	 * prefetchable window, the rest in the memory window. */
	u64 mem = (u64)(cfg_r16(b, d, 0x20) & 0xfff0) << 16;
	u64 pref = ((u64)(cfg_r16(b, d, 0x24) & 0xfff0) << 16) | (u64)cfg_r32(b, d, 0x28) << 32;
	for (int i = 0; i < 6; i++) {
		u16 reg = 0x10 + 4 * i;
		u32 lo = cfg_r32(sec, 0, reg);
		cfg_w32(sec, 0, reg, 0xffffffff);
		u32 mlo = cfg_r32(sec, 0, reg);
		cfg_w32(sec, 0, reg, lo);
		if (!mlo || (lo & 1))
			continue;
		int is64 = (lo & 6) == 4;
		u64 size = (u64)(~(mlo & ~0xfu)) + 1;
		size &= 0xffffffff;
		u64 *cur = is64 && (lo & 8) ? &pref : &mem;
		*cur = (*cur + size - 1) & ~(size - 1);
		cfg_w32(sec, 0, reg, (u32)*cur);
		if (is64)
			cfg_w32(sec, 0, reg + 4, (u32)(*cur >> 32));
		*cur += size;
		if (is64)
			i++;
	}
	cfg_w16(sec, 0, 4, 6);
	if (virtio_caps(&dev)) {
		printf("HP_FAILED virtio structures not reachable\n");
		return;
	}
	wr8(common + 0x14, 0);
	wr8(common + 0x14, 3);
	printf("HP_VIRTIO_STATUS %u\n", rd8(common + 0x14));
	if ((id >> 16) == 0x1041) {
		printf("HP_MAC %02x:%02x:%02x:%02x:%02x:%02x\n", rd8(device_cfg), rd8(device_cfg + 1),
		       rd8(device_cfg + 2), rd8(device_cfg + 3), rd8(device_cfg + 4), rd8(device_cfg + 5));
	} else if ((id >> 16) == 0x1042) {
		printf("HP_CAPACITY %lu\n", rd64(device_cfg));
		if (bringup(&dev, 1) >= 0) {
			pstatus("HP_READ_STATUS", blk_req(0, 0, BUFS, 512, 1));
			printf("HP_READ_FNV1A32 0x%08x\n", fnv1a32(BUFS, 512));
		}
	}
	wr8(common + 0x14, 0);

	wr32(table + 12, 1);
	wr32(table + 8, 0x61);
	wr32(table + 12, 0);
	before = irr_now(0x61);
	printf("HP_ARMED\n");
	st = wait_status(b, d, exp, 0x01, 0);
	printf("HP_BUTTON %u\n", st != 0xffff);
	if (st == 0xffff)
		return;
	printf("HP_BUTTON_IRR %d%d\n", before, irr(0x61));
	cfg_w16(b, d, exp + SLTSTA, st & 0x1f);
	if (answer == 3) {
		/* Answers late: past the 5 s libvirt waits in a detach. */
		printf("HP_LATE\n");
		pit_sleep_ms(12000);
	}
	if (answer == 2) {
		/* Never answered: the device stays. */
		pit_wait(PIT_HZ);
		printf("HP_STILL_THERE %u\n", (cfg_r32(sec, 0, 0) & 0xffff) == 0x1af4);
		return;
	}
	/* As pciehp: power indicator off, power off. */
	ctl = cfg_r16(b, d, exp + SLTCTL);
	cfg_w16(b, d, exp + SLTCTL, (ctl & ~0x0300) | 0x0300 | 0x0400);
	st = wait_status(b, d, exp, 0x40, 1);
	printf("HP_GONE %u\n", st != 0xffff);
	printf("HP_GONE_PDC %u\n", st != 0xffff ? (st >> 3) & 1 : 0);
	printf("HP_AFTER 0x%08x\n", cfg_r32(sec, 0, 0));
	printf("HP_LINK_AFTER %u\n", (cfg_r16(b, d, exp + 0x12) >> 13) & 1);
}

/* pci.bench=N: the cost of a configuration access, for bench/pci: N reads
 * of 00:00.0's IDs through CF8/CFC (two exits each), then through ECAM
 * (one), each between markers the host times. Then leaves fast. */
static void bench(u32 n)
{
	volatile u32 sink = 0;
	printf("PCIBENCH cf8 START\n");
	for (u32 i = 0; i < n; i++)
		sink += cf8_read(0, 0, 0);
	printf("PCIBENCH cf8 END\n");
	if (ecam) {
		printf("PCIBENCH ecam START\n");
		for (u32 i = 0; i < n; i++)
			sink += ecam_read(0, 0, 0);
		printf("PCIBENCH ecam END\n");
	}
	printf("PCIBENCH DONE n=%u\n", n);
	(void)sink;
	leave_fast();
}

static u32 cmdline_u32(const char *c, const char *key)
{
	size_t k = strlen(key);
	for (; c && *c; c++) {
		if (memcmp(c, key, k))
			continue;
		u32 v = 0;
		for (c += k; *c >= '0' && *c <= '9'; c++)
			v = v * 10 + (u32)(*c - '0');
		return v;
	}
	return 0;
}

void pvh_main(const struct hvm_start_info *si)
{
	u64 mcfg = acpi_find_table("MCFG");
	if (mcfg && rd32(mcfg + 4) >= 60) {
		ecam = rd64(mcfg + 44);
		printf("ECAM_BUSES %u-%u\n", rd8(mcfg + 54), rd8(mcfg + 55));
		map_gib(ecam);
	} else {
		printf("ECAM none\n");
	}
	if (!ecam) {
		/* pc's ACPI PCI hot-plug (PIIX4): the FADT's GPE0 block, and the
		 * register block at 0xae00 for bus 0: removable slots, nothing
		 * plugged or asked to leave, no GPE pending or enabled. */
		u64 fadt = acpi_find_table("FACP");
		if (fadt)
			printf("FADT_GPE0 0x%x %u\n", rd32(fadt + 80), rd8(fadt + 92));
		outl(0xae10, 0);
		printf("PCIHP_RMV 0x%x\n", inl(0xae0c));
		printf("PCIHP_UP 0x%x PCIHP_DOWN 0x%x\n", inl(0xae00), inl(0xae04));
		printf("GPE0 0x%x\n", inl(0xafe0));
	}
	u32 iterations = cmdline_u32((const char *)si->cmdline_paddr, "pci.bench=");
	if (iterations)
		bench(iterations);
	int n = scan(0, cf8_read, 1, 0);
	printf("CF8_FUNCTIONS %d\n", n);
	if (ecam) {
		int m = scan(0, ecam_read, 0, 0);
		int agree = m == n;
		for (int i = 0; i < nfns; i++)
			agree &= ecam_read(fns[i].bus, fns[i].devfn, 0) == fns[i].id &&
				 ecam_read(fns[i].bus, fns[i].devfn, 8) == cf8_read(fns[i].bus, fns[i].devfn, 8);
		printf("ECAM_FUNCTIONS %d\n", m);
		printf("ECAM_AGREES %d\n", agree);
	}
	list();
	u32 hp = cmdline_u32((const char *)si->cmdline_paddr, "pci.hotplug=");
	if (hp) {
		hotplug((int)hp);
		return;
	}
	for (int i = 0; i < nfns; i++)
		caps(&fns[i]);
	for (int i = 0; i < nfns; i++)
		bars(&fns[i]);
	for (int i = 0; i < nfns && !blkfn; i++) {
		u32 id = fns[i].id;
		if ((id & 0xffff) == 0x1af4 && ((id >> 16) == 0x1042 || (id >> 16) == 0x1001))
			blkfn = &fns[i];
	}
	if (!blkfn) {
		printf("BLK none\n");
		return;
	}
	blk(blkfn);
	move(blkfn);
}
