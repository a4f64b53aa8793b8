/* virtio-blk benchmark guest: 4 KiB sequential and random reads and writes
 * through a polled virtio-mmio (version 2) split queue, several requests in
 * flight.
 *
 * Finds the first virtio-blk device named by virtio_mmio.device=SIZE@0xBASE:IRQ
 * on its command line (rvirt-vmm appends 4K@...; QEMU microvm with acpi=off
 * appends 512@...; transports with device id 0 are empty and skipped).
 * Negotiates VERSION_1 and, as Linux does, FLUSH if offered (a device that
 * has no FLUSH negotiated may write through: QEMU then fdatasyncs after
 * writes; no flush request is ever sent), EVENT_IDX only when asked
 * (blkbench.event_idx=1), no indirect descriptors. Sets up queue 0 with up to 256 entries, each request a 3-descriptor chain (header,
 * 4 KiB data, status) in a fixed slot. It posts QD chains, kicks once, polls
 * the used ring, refills every completed slot, publishes and kicks once per
 * batch (skipping the kick while the device sets VRING_USED_F_NO_NOTIFY, as
 * Linux does without EVENT_IDX). VRING_AVAIL_F_NO_INTERRUPT is set: the guest
 * polls and has interrupts off (blkbench.irq=1 leaves interrupts on).
 *
 * Command line (all optional):
 *   blkbench.n=N      requests per phase (default 2000)
 *   blkbench.qd=QD    requests in flight (default 16, at most queue size / 3)
 *   blkbench.irq=1    do not set VRING_AVAIL_F_NO_INTERRUPT
 *   blkbench.flush=0  do not negotiate VIRTIO_BLK_F_FLUSH
 *   blkbench.event_idx=1  negotiate VIRTIO_RING_F_EVENT_IDX if offered: kick
 *                     only when avail_event asks for it, keep used_event
 *                     half the index space ahead (no interrupts)
 *   blkbench.ring3=0  stay in ring 0 (default: drop to ring 3 with IOPL 3 for
 *                     the benchmark, where kvm_pvm runs guest code natively)
 *
 * Output:
 *   VIRTIO_DEVICE 0x<base> id=<device id> version=<mmio version> irq=<n>
 *                     each non-empty transport up to the first virtio-blk
 *                     with version 2 (QEMU needs
 *                     -global virtio-mmio.force-legacy=false for that)
 *   BLKBENCH dev=0x<base> irq=<n> capacity=<sectors> qsize=<n> qd=<n> n=<n> ring=<0|3>
 *            features=<negotiated feature bits 0-31, hex>
 *   PHASE <seqread|seqwrite|randread|randwrite> START
 *   PHASE <name> END
 *   PHASE_STATS <name> n=<done> errors=<status != 0> rekicks=<n> kicks=<n> tsc=<cycles>
 *   BLKBENCH DONE
 * or BLKBENCH_FAILED <why>. The host timestamps the START and END lines
 * (their newline); tsc is the guest's RDTSC difference over the phase.
 * Then leaves fast (isa-debug-exit, i8042 reset, triple fault). */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/leave.h"
#include "rt/ring3.h"
#include "rt/virtio_mmio.h"

#define QMAX 256
/* Queue memory and buffers, well above the guest image (1-2 MiB). */
#define DESC 0x300000ul  /* 256 * 16 */
#define AVAIL 0x301000ul /* 4 + 2 * 256 + 2 */
#define USED 0x302000ul  /* 4 + 8 * 256 + 2 */
#define HDR 0x304000ul   /* 16 per slot */
#define STAT 0x305000ul  /* 1 per slot */
#define BUF 0x400000ul   /* 4 KiB per slot */

#define F_NEXT 1
#define F_WRITE 2

#define T_IN 0
#define T_OUT 1

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void wr64(u64 a, u64 v) { *(volatile u64 *)a = v; }

static u64 base;
static u32 qsize;

/* First virtio-blk device on the command line; 0 if none. */
static u64 find_blk(const char *cmd, u32 *irq)
{
	u64 b;
	u32 i;
	while (virtio_mmio_next(&cmd, &b, &i)) {
		u32 ver = rd32(b + R_VERSION), id = rd32(b + R_DEVICE_ID);
		if (rd32(b + R_MAGIC) != 0x74726976 || id == 0)
			continue;
		printf("VIRTIO_DEVICE 0x%lx id=%u version=%u irq=%u\n", b, id, ver, i);
		if (id == 2 && ver == 2) {
			*irq = i;
			return b;
		}
	}
	return 0;
}

/* ---- device set-up ---- */

static u32 features;
static int ev; /* VIRTIO_RING_F_EVENT_IDX negotiated */

static int setup(int irq, int flush, int event_idx)
{
	wr32(base + R_STATUS, 0);
	wr32(base + R_STATUS, S_ACK);
	wr32(base + R_STATUS, S_ACK | S_DRIVER);
	wr32(base + R_DEV_FEATURES_SEL, 1);
	if (!(rd32(base + R_DEV_FEATURES) & 1)) {
		printf("BLKBENCH_FAILED no VERSION_1\n");
		return -1;
	}
	wr32(base + R_DEV_FEATURES_SEL, 0);
	u32 low = rd32(base + R_DEV_FEATURES) & ((flush ? 1u << 9 : 0) | (event_idx ? 1u << 29 : 0));
	wr32(base + R_DRV_FEATURES_SEL, 1);
	wr32(base + R_DRV_FEATURES, 1);
	wr32(base + R_DRV_FEATURES_SEL, 0);
	wr32(base + R_DRV_FEATURES, low);
	features = low;
	ev = (low >> 29) & 1;
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(base + R_STATUS) & S_FEATURES_OK)) {
		printf("BLKBENCH_FAILED FEATURES_OK\n");
		return -1;
	}
	wr32(base + R_QUEUE_SEL, 0);
	qsize = rd32(base + R_QUEUE_NUM_MAX);
	if (qsize > QMAX)
		qsize = QMAX;
	while (qsize & (qsize - 1))
		qsize &= qsize - 1; /* split rings are a power of two */
	if (qsize < 3) {
		printf("BLKBENCH_FAILED queue max %u\n", qsize);
		return -1;
	}
	memset((void *)DESC, 0, 0x6000);
	wr16(AVAIL, irq ? 0 : 1); /* VRING_AVAIL_F_NO_INTERRUPT */
	wr32(base + R_QUEUE_NUM, qsize);
	wr32(base + R_DESC_LO, (u32)DESC);
	wr32(base + R_DESC_HI, 0);
	wr32(base + R_AVAIL_LO, (u32)AVAIL);
	wr32(base + R_AVAIL_HI, 0);
	wr32(base + R_USED_LO, (u32)USED);
	wr32(base + R_USED_HI, 0);
	wr32(base + R_QUEUE_READY, 1);
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd32(base + R_STATUS) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
		printf("BLKBENCH_FAILED DRIVER_OK status=0x%x\n", rd32(base + R_STATUS));
		return -1;
	}
	return 0;
}

/* ---- the benchmark loop ---- */

static u16 avail_idx, used_seen;
static u32 kicks, rekicks, errors;

/* Slot s: descriptors 3s (header), 3s+1 (data), 3s+2 (status). */
static void prepare(u32 qd, int dev_writes)
{
	for (u32 s = 0; s < qd; s++) {
		volatile struct desc *d = (volatile struct desc *)(DESC + 48 * s);
		d[0].addr = HDR + 16 * s;
		d[0].len = 16;
		d[0].flags = F_NEXT;
		d[0].next = 3 * s + 1;
		d[1].addr = BUF + 4096 * s;
		d[1].len = 4096;
		d[1].flags = F_NEXT | (dev_writes ? F_WRITE : 0);
		d[1].next = 3 * s + 2;
		d[2].addr = STAT + s;
		d[2].len = 1;
		d[2].flags = F_WRITE;
		d[2].next = 0;
	}
}

static inline void post(u32 s, u32 type, u64 sector)
{
	u64 h = HDR + 16 * s;
	wr32(h, type);
	wr64(h + 8, sector);
	wr16(AVAIL + 4 + 2 * (avail_idx & (qsize - 1)), (u16)(3 * s));
	avail_idx++;
}

static u16 published;
static int irq_on;

/* With EVENT_IDX: interrupt on the next completion (blkbench.irq=1), or
 * never (used_event half the index space ahead). */
static inline void set_used_event(void)
{
	wr16(AVAIL + 4 + 2 * qsize, (u16)(used_seen + (irq_on ? 0 : 0x8000)));
}

static inline void publish(void)
{
	mb();
	wr16(AVAIL + 2, avail_idx);
	mb();
	int kick;
	if (ev) { /* vring_need_event(avail_event, new, old) */
		u16 avail_event = rd16(USED + 4 + 8 * qsize);
		kick = (u16)(avail_idx - avail_event - 1) < (u16)(avail_idx - published);
	} else {
		kick = !(rd16(USED) & 1); /* VRING_USED_F_NO_NOTIFY */
	}
	published = avail_idx;
	if (kick) {
		wr32(base + R_QUEUE_NOTIFY, 0);
		kicks++;
	}
}

static u64 lcg = 0x2545f4914f6cdd1dull;
static u64 nblocks; /* 4 KiB blocks on the disk */
static u64 seq;

static inline u64 next_sector(int random)
{
	if (random) {
		lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
		return ((lcg >> 33) % nblocks) * 8;
	}
	u64 b = seq++;
	if (seq == nblocks)
		seq = 0;
	return b * 8;
}

static void phase(const char *name, u32 type, int random, u32 n, u32 qd)
{
	prepare(qd, type == T_IN);
	kicks = rekicks = errors = 0;
	seq = 0;
	u32 posted = 0, done = 0;
	printf("PHASE %s START\n", name);
	if (ev)
		set_used_event();
	u64 t0 = rdtsc();
	for (; posted < qd && posted < n; posted++)
		post(posted, type, next_sector(random));
	publish();
	u64 last = 0;
	u32 spins = 0;
	while (done < n) {
		u16 used = rd16(USED + 2);
		if (used == used_seen) {
			/* A kick lost by the device would hang us: after about a
			 * second (2^31 TSC cycles) without a completion, count a
			 * rekick (expected to stay 0) and kick again. */
			if (++spins == 1)
				last = rdtsc();
			else if ((spins & 1023) == 0 && rdtsc() - last > (1ull << 31)) {
				spins = 0;
				wr32(base + R_QUEUE_NOTIFY, 0);
				rekicks++;
				if (rekicks == 10) {
					printf("BLKBENCH_FAILED %s stuck at %u of %u\n", name, done, n);
					return;
				}
			}
			cpu_relax();
			continue;
		}
		spins = 0;
		mb();
		int refill = 0;
		for (; used_seen != used; used_seen++) {
			u32 id = rd32(USED + 4 + 8 * (used_seen & (qsize - 1)));
			u32 s = id / 3;
			if (rd8(STAT + s) != 0)
				errors++;
			done++;
			if (posted < n) {
				post(s, type, next_sector(random));
				posted++;
				refill = 1;
			}
		}
		if (ev)
			set_used_event();
		if (refill)
			publish();
	}
	u64 t1 = rdtsc();
	printf("PHASE %s END\n", name);
	printf("PHASE_STATS %s n=%u errors=%u rekicks=%u kicks=%u tsc=%lu\n", name, done,
	       errors, rekicks, kicks, t1 - t0);
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmd = (const char *)si->cmdline_paddr;
	u32 irq = 0;
	base = find_blk(cmd, &irq);
	if (!base) {
		printf("BLKBENCH_FAILED no virtio-blk device\n");
		leave_fast();
	}
	u32 n = (u32)arg_dec(arg_find(cmd, "blkbench.n="), 2000);
	u32 qd = (u32)arg_dec(arg_find(cmd, "blkbench.qd="), 16);
	int want_irq = arg_dec(arg_find(cmd, "blkbench.irq="), 0) != 0;
	int ring3 = arg_dec(arg_find(cmd, "blkbench.ring3="), 1) != 0;
	int flush = arg_dec(arg_find(cmd, "blkbench.flush="), 1) != 0;
	int event_idx = arg_dec(arg_find(cmd, "blkbench.event_idx="), 0) != 0;
	irq_on = want_irq;
	if (setup(want_irq, flush, event_idx))
		leave_fast();
	u64 cap = rd32(base + R_CONFIG) | (u64)rd32(base + R_CONFIG + 4) << 32;
	nblocks = cap / 8;
	if (qd > qsize / 3)
		qd = qsize / 3;
	if (qd < 1)
		qd = 1;
	if (nblocks < qd) {
		printf("BLKBENCH_FAILED disk of %lu sectors is too small\n", cap);
		leave_fast();
	}
	printf("BLKBENCH dev=0x%lx irq=%u capacity=%lu qsize=%u qd=%u n=%u ring=%d features=0x%x\n",
	       base, irq, cap, qsize, qd, n, ring3 ? 3 : 0, features);
	if (ring3)
		to_ring3();
	phase("seqread", T_IN, 0, n, qd);
	phase("seqwrite", T_OUT, 0, n, qd);
	phase("randread", T_IN, 1, n, qd);
	phase("randwrite", T_OUT, 1, n, qd);
	printf("BLKBENCH DONE\n");
	leave_fast();
}
