/* virtio-scsi with several request queues: finds the first virtio-scsi
 * function on PCI (1af4:1048), prints what a driver reads of it (the
 * common configuration's num_queues, the MSI-X table size, the device
 * configuration), then enables every request queue the device has (up to
 * 8; the control and event queues stay off, as SeaBIOS leaves them),
 * sends TEST UNIT READY twice (the reset's unit attention, then none) and,
 * on request queue k (virtqueue 2 + k), a READ(10) of block k of
 * the disk at target 0, LUN 0. Then a WRITE(10) of a pattern to block 40
 * on the last queue, read back on the first. Polls; no interrupts.
 *
 * Output:
 *   SCSI_PCI <bus:slot.fn> msix=<table size> num_queues=<common cfg>
 *   SCSI_CONFIG <num_queues> <seg_max> <max_sectors> <cmd_per_lun>
 *               <event_info_size> <sense_size> <cdb_size> <max_channel>
 *               <max_target> <max_lun>
 *   SCSI_REQ vq=2 op=tur response=<n> status=<n> sense=<key>/<asc>/<ascq>
 *            (or sense_len=<n> with less than 14 bytes of sense)
 *   SCSI_REQ vq=<n> op=<read|write> lba=<n> response=<n> status=<n>
 *            resid=<n> used=<bytes> fnv=0x<FNV-1a of the 512-byte buffer>
 *   SCSIMQ DONE, or SCSIMQ_FAILED <why>.
 *
 * With scsimq.bench=N on its command line it is bench/scsi's guest
 * instead: after the unit attention, in ring 3 (where kvm_pvm runs guest
 * code natively), N 4 KiB READ(10)s at random 4 KiB-aligned places of the
 * first scsimq.blocks=B 512-byte blocks (default 2048), scsimq.qd=QD
 * (default 16, at most 64) in flight on the first request queue, polled:
 *   PHASE randread START / PHASE randread END
 *   PHASE_STATS randread n=<done> errors=<not GOOD> kicks=<n> tsc=<cycles>
 * then it leaves fast (isa-debug-exit, i8042 reset). */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/fnv.h"
#include "rt/leave.h"
#include "rt/ring3.h"
#include "net/vdev.h"

#define MAXQ 8
#define QSIZE 16
#define RINGS 0x300000ul /* 0x3000 per queue */
#define REQS 0x340000ul  /* 0x1000 per request: header, response, data */
#define HDR_LEN 51       /* lun 8, tag 8, attr, prio, crn, cdb 32 */
#define RESP_LEN 108     /* sense_len, resid, qualifier, status, response, sense 96 */

static struct virtq vqs[2 + MAXQ];

static u32 pci_cfg32(u32 bdf, u16 reg)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((u16)0xcfc));
	return v;
}

/* The MSI-X table size of the function, or 0 without the capability. */
static u32 msix_size(u32 bdf)
{
	u8 at = (u8)(pci_cfg32(bdf, 0x34) & 0xfc);
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		u32 w = pci_cfg32(bdf, at);
		if ((w & 0xff) == 0x11)
			return ((w >> 16) & 0x7ff) + 1;
		at = (u8)((w >> 8) & 0xfc);
	}
	return 0;
}

static u32 cfg32(struct vdev *d, u32 off)
{
	u32 v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | vdev_cfg8(d, off + (u32)i);
	return v;
}

static void set_desc(struct virtq *q, u16 i, u64 addr, u32 len, u16 flags, u16 next)
{
	vq_set(q, i, addr, len, flags);
	*(volatile u16 *)(q->desc + 16ul * i + 14) = next;
}

/* One command on virtqueue `vq`: `op` 0x28 (READ(10)) or 0x2a (WRITE(10))
 * of one block at `lba` through slot `slot`'s buffers. 0, or -1 if the
 * device never answers. */
static int command(struct vdev *d, u16 vq, u8 op, u32 lba, u64 slot)
{
	struct virtq *q = &vqs[vq];
	u64 hdr = slot, resp = slot + 0x100, data = slot + 0x200;
	memset((void *)hdr, 0, HDR_LEN);
	memset((void *)resp, 0xee, RESP_LEN);
	u8 *h = (u8 *)hdr;
	h[0] = 1; /* target 0, LUN 0 */
	u8 *cdb = h + 19;
	cdb[0] = op;
	cdb[2] = (u8)(lba >> 24);
	cdb[3] = (u8)(lba >> 16);
	cdb[4] = (u8)(lba >> 8);
	cdb[5] = (u8)lba;
	cdb[8] = op ? 1 : 0;
	u16 head = 0; /* one request at a time: descriptors 0-2 */
	if (op == 0x00) {
		set_desc(q, 0, hdr, HDR_LEN, VQ_F_NEXT, 1);
		set_desc(q, 1, resp, RESP_LEN, VQ_F_WRITE, 0);
	} else if (op == 0x2a) {
		set_desc(q, 0, hdr, HDR_LEN, VQ_F_NEXT, 1);
		set_desc(q, 1, data, 512, VQ_F_NEXT, 2);
		set_desc(q, 2, resp, RESP_LEN, VQ_F_WRITE, 0);
	} else {
		memset((void *)data, 0, 512);
		set_desc(q, 0, hdr, HDR_LEN, VQ_F_NEXT, 1);
		set_desc(q, 1, resp, RESP_LEN, VQ_F_WRITE | VQ_F_NEXT, 2);
		set_desc(q, 2, data, 512, VQ_F_WRITE, 0);
	}
	vq_push(q, head);
	vq_publish(q);
	vdev_notify(d, vq);
	u32 id, len;
	for (u32 spins = 0; !vq_pop(q, &id, &len); spins++) {
		if (spins >= 20000000) {
			printf("SCSIMQ_FAILED no answer on vq %u\n", vq);
			return -1;
		}
		cpu_relax();
	}
	u8 *r = (u8 *)resp;
	if (op == 0x00) {
		/* Only sense_len bytes of sense are the device's. */
		if (*(u32 *)r >= 14)
			printf("SCSI_REQ vq=%u op=tur response=%u status=%u sense=%x/%x/%x\n", vq, r[11],
			       r[10], r[12 + 2] & 0xf, r[12 + 12], r[12 + 13]);
		else
			printf("SCSI_REQ vq=%u op=tur response=%u status=%u sense_len=%u\n", vq, r[11], r[10],
			       *(u32 *)r);
		return 0;
	}
	printf("SCSI_REQ vq=%u op=%s lba=%u response=%u status=%u resid=%u used=%u fnv=0x%x\n", vq,
	       op == 0x2a ? "write" : "read", lba, r[11], r[10], *(u32 *)(r + 4), len,
	       fnv1a32(data, 512));
	return 0;
}


/* ---- bench/scsi: 4 KiB random reads, QD in flight on virtqueue 2 ---- */

#define BQ_RINGS 0x500000ul
#define BQ_SLOTS 0x510000ul /* 0x100 per slot: header, then response */
#define BQ_DATA 0x600000ul  /* 4 KiB per slot */
#define BQ_SIZE 256
#define BQ_MAXQD 64

static struct virtq bq;
static u64 lcg = 0x2545f4914f6cdd1dull;

/* Slot s (descriptors 3s..3s+2) reads 8 blocks at a random 4 KiB place. */
static void bq_fill(u32 s, u32 blocks)
{
	u8 *h = (u8 *)(BQ_SLOTS + 0x100ul * s);
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	u32 lba = (u32)((lcg >> 33) % (blocks / 8)) * 8;
	h[19 + 2] = (u8)(lba >> 24);
	h[19 + 3] = (u8)(lba >> 16);
	h[19 + 4] = (u8)(lba >> 8);
	h[19 + 5] = (u8)lba;
	vq_push(&bq, (u16)(3 * s));
}

/* Makes every user page above 4 GiB that the start code or vdev_pci
 * mapped reachable from ring 3 too (to_ring3 does the first 4 GiB). */
extern u64 pml4[];
static void user_high(void)
{
	u64 *pdpt = (u64 *)(pml4[0] & 0x000ffffffffff000ull);
	for (int i = 4; i < 512; i++) {
		if (!(pdpt[i] & 1))
			continue;
		pdpt[i] |= 4;
		u64 *pd = (u64 *)(pdpt[i] & 0x000ffffffffff000ull);
		for (int j = 0; j < 512; j++)
			pd[j] |= 4;
	}
}

static void bench(struct vdev *d, u32 n, u32 qd, u32 blocks)
{
	vq_init(&bq, BQ_RINGS, BQ_SIZE);
	if (vdev_queue(d, 2, &bq) || vdev_go(d))
		return;
	*(volatile u16 *)bq.avail = 1; /* VRING_AVAIL_F_NO_INTERRUPT: we poll */
	/* The reset's unit attention, on the first slot. */
	memset((void *)BQ_SLOTS, 0, 0x100ul * BQ_MAXQD);
	for (u32 s = 0; s < qd; s++) {
		u64 h = BQ_SLOTS + 0x100ul * s;
		u8 *cdb = (u8 *)h + 19;
		((u8 *)h)[0] = 1;
		cdb[0] = 0x28;
		cdb[8] = 8;
		set_desc(&bq, (u16)(3 * s), h, HDR_LEN, VQ_F_NEXT, (u16)(3 * s + 1));
		set_desc(&bq, (u16)(3 * s + 1), h + 0x80, RESP_LEN, VQ_F_WRITE | VQ_F_NEXT,
			 (u16)(3 * s + 2));
		set_desc(&bq, (u16)(3 * s + 2), BQ_DATA + 4096ul * s, 4096, VQ_F_WRITE, 0);
	}
	u32 id, len;
	vq_push(&bq, 0);
	vq_publish(&bq);
	vdev_notify(d, 2);
	for (u32 spins = 0; !vq_pop(&bq, &id, &len); spins++)
		if (spins >= 20000000) {
			printf("SCSIMQ_FAILED no answer\n");
			return;
		}
	u64 notify = d->notify + (u64)rd16(d->common + 0x1e) * d->notify_mult;
	user_high();
	to_ring3();
	u32 done = 0, posted = 0, errors = 0, kicks = 0;
	printf("PHASE randread START\n");
	u64 t0 = rdtsc();
	for (; posted < qd && posted < n; posted++)
		bq_fill(posted, blocks);
	vq_publish(&bq);
	*(volatile u16 *)notify = 2;
	kicks++;
	while (done < n) {
		int got = 0;
		while (vq_pop(&bq, &id, &len)) {
			u8 *r = (u8 *)(BQ_SLOTS + 0x100ul * (id / 3) + 0x80);
			if (r[10] || r[11])
				errors++;
			done++;
			got = 1;
			if (posted < n) {
				bq_fill(id / 3, blocks);
				posted++;
			}
		}
		if (got && posted > done) {
			vq_publish(&bq);
			if (!(*(volatile u16 *)bq.used & 1)) {
				*(volatile u16 *)notify = 2;
				kicks++;
			}
		}
	}
	u64 t1 = rdtsc();
	printf("PHASE randread END\n");
	printf("PHASE_STATS randread n=%u errors=%u kicks=%u tsc=%lu\n", done, errors, kicks, t1 - t0);
	leave_fast();
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *args = si->cmdline_paddr ? (const char *)si->cmdline_paddr : "";
	const char *cmd = "";
	struct vdev d;
	int found = 0;
	while (vdev_next(&cmd, &d))
		if (d.pci && d.device_id == 8) {
			found = 1;
			break;
		}
	if (!found) {
		printf("SCSIMQ_FAILED no virtio-scsi function\n");
		return;
	}
	u32 bdf = d.irq;
	printf("SCSI_PCI %x:%x.%u msix=%u num_queues=%u\n", bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7,
	       msix_size(bdf), rd16(d.common + 0x12));
	if (vdev_start(&d, 0) < 0)
		return;
	printf("SCSI_CONFIG %u %u %u %u %u %u %u %u %u %u\n", cfg32(&d, 0), cfg32(&d, 4), cfg32(&d, 8),
	       cfg32(&d, 12), cfg32(&d, 16), cfg32(&d, 20), cfg32(&d, 24),
	       vdev_cfg8(&d, 28) | vdev_cfg8(&d, 29) << 8, vdev_cfg8(&d, 30) | vdev_cfg8(&d, 31) << 8,
	       cfg32(&d, 32));
	u32 iters = (u32)arg_dec(arg_find(args, "scsimq.bench="), 0);
	if (iters) {
		u32 qd = (u32)arg_dec(arg_find(args, "scsimq.qd="), 16);
		if (qd < 1 || qd > BQ_MAXQD)
			qd = 16;
		bench(&d, iters, qd, (u32)arg_dec(arg_find(args, "scsimq.blocks="), 2048));
		return;
	}
	u32 n = cfg32(&d, 0);
	if (n == 0) {
		printf("SCSIMQ_FAILED num_queues 0\n");
		return;
	}
	if (n > MAXQ)
		n = MAXQ;
	for (u16 k = 0; k < n; k++) {
		vq_init(&vqs[2 + k], RINGS + 0x3000ul * k, QSIZE);
		if (vdev_queue(&d, (u16)(2 + k), &vqs[2 + k]))
			return;
	}
	if (vdev_go(&d))
		return;
	/* The reset's unit attention, then nothing pending. */
	if (command(&d, 2, 0x00, 0, REQS) || command(&d, 2, 0x00, 0, REQS))
		return;
	for (u16 k = 0; k < n; k++)
		if (command(&d, (u16)(2 + k), 0x28, k, REQS + 0x1000ul * k))
			return;
	/* A block written on the last queue, read back on the first. */
	u64 w = REQS + 0x1000ul * MAXQ;
	for (u32 i = 0; i < 512; i++)
		((u8 *)(w + 0x200))[i] = (u8)(i * 7 + 3);
	if (command(&d, (u16)(1 + n), 0x2a, 40, w))
		return;
	if (command(&d, 2, 0x28, 40, REQS))
		return;
	vdev_reset(&d);
	printf("SCSIMQ DONE\n");
}
