/* The modern virtio-pci transport of vdev.h: devices found by scanning the
 * PCI configuration space through 0xcf8 (bus 0 and the buses behind its
 * bridges, as the VMM or firmware numbered them), modern (1af4:1040+) and
 * transitional (1af4:1000-103f) functions through their modern
 * interface, their structures located through the vendor
 * capabilities in BARs the VMM or firmware assigned. Polling only: no
 * MSI-X vector is set up. */
#include "vdev.h"
#include "../rt/virtio_mmio.h"

#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_STATUS 0x14
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_ENABLE 0x1c
#define C_Q_NOFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_AVAIL 0x28
#define C_Q_USED 0x30

static inline void w16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline u32 in32(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static u32 cfg32(u8 bus, u8 devfn, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | (reg & 0xfc));
	return in32(0xcfc);
}

static u8 cfg8(u8 bus, u8 devfn, u16 reg) { return (u8)(cfg32(bus, devfn, reg) >> (8 * (reg & 3))); }

/* Identity-maps (uncached) the GiB holding `addr` when it is above what
 * the start code mapped: 64-bit BARs may sit above 4 GiB. */
extern u64 pml4[];
static u64 pds[4][512] __attribute__((aligned(4096)));
static int pds_used;

static int map_gib(u64 addr)
{
	u64 *pdpt = (u64 *)(pml4[0] & ~0xffful);
	u64 i = addr >> 30;
	if (i >= 512)
		return -1;
	if (pdpt[i] & 1)
		return 0;
	if (pds_used >= 4)
		return -1;
	u64 *pd = pds[pds_used++];
	for (u64 k = 0; k < 512; k++)
		pd[k] = (i << 30) + (k << 21) + 0x9b;
	pdpt[i] = (u64)pd + 0x03;
	u64 cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
	return 0;
}

static u64 bar_addr(u8 bus, u8 devfn, u8 bar)
{
	if (bar > 5)
		return 0;
	u32 lo = cfg32(bus, devfn, 0x10 + 4 * bar);
	if (lo & 1)
		return 0;
	u64 a = lo & ~0xfu;
	if ((lo & 6) == 4 && bar < 5)
		a |= (u64)cfg32(bus, devfn, 0x14 + 4 * bar) << 32;
	return a;
}

/* Fills `d` from the function's virtio capabilities: 0, or -1 when one is
 * missing or its BAR is unassigned. */
static int locate(u8 bus, u8 devfn, struct vdev *d)
{
	d->common = d->notify = d->dcfg = 0;
	u8 at = cfg8(bus, devfn, 0x34) & 0xfc;
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		if (cfg8(bus, devfn, at) == 0x09) {
			u64 base = bar_addr(bus, devfn, cfg8(bus, devfn, at + 4));
			u64 a = base ? base + cfg32(bus, devfn, at + 8) : 0;
			switch (cfg8(bus, devfn, at + 3)) {
			case 1: d->common = a; break;
			case 2:
				d->notify = a;
				d->notify_mult = cfg32(bus, devfn, at + 16);
				break;
			case 4: d->dcfg = a; break;
			}
		}
		at = cfg8(bus, devfn, at + 1) & 0xfc;
	}
	if (!d->common || !d->notify || !d->dcfg)
		return -1;
	if (map_gib(d->common) || map_gib(d->notify) || map_gib(d->dcfg))
		return -1;
	/* Memory space and bus mastering on. */
	u32 cmd = cfg32(bus, devfn, 4) & 0xffff;
	outl(0xcf8, 0x80000000u | (u32)bus << 16 | (u32)devfn << 8 | 4);
	outl(0xcfc, cmd | 6);
	return 0;
}

/* The virtio functions found by the first scan: bus 0 and the buses behind
 * its bridges. */
struct where {
	u8 bus, devfn;
};
static struct where found[32];
static int nfound = -1, next_found;

static void scan(u8 bus, int depth)
{
	for (u8 slot = 0; slot < 32; slot++) {
		for (u8 f = 0; f < 8; f++) {
			u8 devfn = (u8)(slot << 3 | f);
			u32 id = cfg32(bus, devfn, 0);
			if ((id & 0xffff) == 0xffff) {
				if (f == 0)
					break;
				continue;
			}
			u8 hdr = cfg8(bus, devfn, 0xe);
			u16 dev = (u16)(id >> 16);
			if ((id & 0xffff) == 0x1af4 && dev >= 0x1000 && dev < 0x1080 && nfound < 32)
				found[nfound++] = (struct where){bus, devfn};
			if ((hdr & 0x7f) == 1 && depth < 4) {
				u8 sec = cfg8(bus, devfn, 0x19);
				if (sec > bus)
					scan(sec, depth + 1);
			}
			if (f == 0 && !(hdr & 0x80))
				break;
		}
	}
}

int vdev_pci_next(struct vdev *d)
{
	if (nfound < 0) {
		nfound = 0;
		scan(0, 0);
	}
	while (next_found < nfound) {
		struct where w = found[next_found++];
		if (locate(w.bus, w.devfn, d))
			continue;
		d->pci = 1;
		d->base = d->common;
		d->irq = (u32)w.bus << 8 | w.devfn;
		/* A transitional device (QEMU's default on conventional PCI)
		 * names its type in the subsystem ID; it has the modern
		 * structures too. */
		u32 dev = cfg32(w.bus, w.devfn, 0) >> 16;
		d->device_id = dev >= 0x1040 ? dev - 0x1040u : cfg32(w.bus, w.devfn, 0x2c) >> 16;
		return 1;
	}
	return 0;
}

long vdev_pci_start(struct vdev *d, u32 want)
{
	u64 c = d->common;
	wr8(c + C_STATUS, 0);
	/* The reset completes when the status reads 0 (virtio 1.2, 4.1.4.3.2);
	 * a device that never gets there fails the driver, bounded. */
	for (u32 spins = 0; rd8(c + C_STATUS); spins++) {
		if (spins >= 1000000) {
			printf("VIRTIO_FAILED reset\n");
			return -1;
		}
		cpu_relax();
	}
	wr8(c + C_STATUS, S_ACK);
	wr8(c + C_STATUS, S_ACK | S_DRIVER);
	wr32(c + C_DFSELECT, 1);
	if (!(rd32(c + C_DF) & 1)) {
		printf("VIRTIO_FAILED no VERSION_1\n");
		return -1;
	}
	wr32(c + C_DFSELECT, 0);
	u32 low = rd32(c + C_DF) & want;
	wr32(c + C_GFSELECT, 1);
	wr32(c + C_GF, 1);
	wr32(c + C_GFSELECT, 0);
	wr32(c + C_GF, low);
	wr8(c + C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd8(c + C_STATUS) & S_FEATURES_OK)) {
		printf("VIRTIO_FAILED FEATURES_OK\n");
		return -1;
	}
	return low;
}

int vdev_pci_queue(struct vdev *d, u16 n, struct virtq *q)
{
	u64 c = d->common;
	w16(c + C_Q_SELECT, n);
	u16 max = rd16(c + C_Q_SIZE);
	if (max < q->size) {
		printf("VIRTIO_FAILED queue %u too small\n", n);
		return -1;
	}
	w16(c + C_Q_SIZE, q->size);
	wr32(c + C_Q_DESC, (u32)q->desc);
	wr32(c + C_Q_DESC + 4, (u32)(q->desc >> 32));
	wr32(c + C_Q_AVAIL, (u32)q->avail);
	wr32(c + C_Q_AVAIL + 4, (u32)(q->avail >> 32));
	wr32(c + C_Q_USED, (u32)q->used);
	wr32(c + C_Q_USED + 4, (u32)(q->used >> 32));
	w16(c + C_Q_ENABLE, 1);
	return 0;
}

int vdev_pci_go(struct vdev *d)
{
	u8 all = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
	wr8(d->common + C_STATUS, all);
	if (rd8(d->common + C_STATUS) != all) {
		printf("VIRTIO_FAILED DRIVER_OK status=0x%x\n", rd8(d->common + C_STATUS));
		return -1;
	}
	return 0;
}

void vdev_pci_notify(struct vdev *d, u16 n)
{
	w16(d->common + C_Q_SELECT, n);
	u16 off = rd16(d->common + C_Q_NOFF);
	w16(d->notify + (u64)off * d->notify_mult, n);
}

u8 vdev_pci_cfg8(struct vdev *d, u32 off) { return rd8(d->dcfg + off); }

void vdev_pci_cfg_write8(struct vdev *d, u32 off, u8 v) { wr8(d->dcfg + off, v); }

void vdev_pci_reset(struct vdev *d) { wr8(d->common + C_STATUS, 0); }
