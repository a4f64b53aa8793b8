/* A minimal virtio-mmio (version 2) driver: finds the devices named by
 * virtio_mmio.device=4K@0xBASE:IRQ on its command line, negotiates
 * VERSION_1, sets up 8-entry split queues and polls the used rings (no
 * interrupts). Every wait is bounded by the PIT and ends in a "timeout"
 * line instead of hanging.
 *   virtio-rng (4): reads 32 bytes.
 *   virtio-blk (2): reports its write cache (wce), reads sectors 0..7,
 *     writes sector 9, flushes, reads the serial.
 *   virtio-net (1): prints its MAC, sends one broadcast frame (ethertype
 *     0x88b5), then receives one frame of that ethertype (others are
 *     counted and their buffers re-posted).
 *   virtio-console (3): writes a line on port 0, then reads a line from it
 *     and echoes it back on port 0 and on COM1 (not with
 *     virtio.console_input=0 on the command line).
 *   virtio-balloon (5): waits for a target, inflates that many pages of a
 *     patterned buffer, reports `actual`, checks the pages read back as
 *     zero, then waits for the target to drop and deflates. With
 *     virtio.balloon_stats=1 it also sends statistics on the statsq and
 *     sends them again whenever the device gives the buffer back.
 * With virtio.hold=1 on the command line it waits after the last device
 * for the ACPI power button (halts, without ACPI) instead of powering off,
 * so the host can look at the VM while it runs and then shut it down.
 * The README's "virtio" section lists the exact output. */
#include "rt/rt.h"
#include "rt/fnv.h"
#include "rt/virtio_mmio.h"

#define PWRBTN (1u << 8)

#define QSZ 8
#define NQ 3
/* Memory, well above the guest image (1-2 MiB). Each device found gets its
 * own rings (NQ queues of 0x2000 bytes from RINGS + n * RINGS_PER_DEV) and
 * its own 64 KiB of buffers (BUFS + n * 0x10000), so a device left running
 * (a net device with posted rx buffers) never writes where another works. */
#define RINGS 0x300000ul
#define RINGS_PER_DEV 0x8000ul
#define BUFS 0x400000ul
#define MAX_DEVS 16
/* The balloon's pages: BAL_MAX pages and one neighbour page after them. */
#define BAL_BUF 0x800000ul
#define BAL_MAX 64u

#define WAIT_MS 20000u

#define F_NEXT 1
#define F_WRITE 2

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vq {
	u64 desc, avail, used;
	u16 avail_idx, used_seen;
};

static struct vq vqs[NQ];
static u64 dev_base; /* the device being driven */
static u64 buf;      /* its 64 KiB of buffers */
static u32 dev_features;

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void wr64(u64 a, u64 v) { *(volatile u64 *)a = v; }

static void set_desc(int q, int i, u64 addr, u32 len, u16 flags)
{
	volatile struct desc *d = (volatile struct desc *)(vqs[q].desc + 16 * i);
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = (i + 1) % QSZ;
}

/* Brings the device to DRIVER_OK with queues 0..nq-1; 0 on success. */
static int setup(u64 base, u64 rings, u32 want_low, int nq)
{
	dev_base = base;
	wr32(base + R_STATUS, 0);
	wr32(base + R_STATUS, S_ACK);
	wr32(base + R_STATUS, S_ACK | S_DRIVER);
	wr32(base + R_DEV_FEATURES_SEL, 1);
	if (!(rd32(base + R_DEV_FEATURES) & 1)) {
		printf("VIRTIO_FAILED no VERSION_1\n");
		return -1;
	}
	wr32(base + R_DEV_FEATURES_SEL, 0);
	dev_features = rd32(base + R_DEV_FEATURES);
	wr32(base + R_DRV_FEATURES_SEL, 1);
	wr32(base + R_DRV_FEATURES, 1);
	wr32(base + R_DRV_FEATURES_SEL, 0);
	wr32(base + R_DRV_FEATURES, dev_features & want_low);
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(base + R_STATUS) & S_FEATURES_OK)) {
		printf("VIRTIO_FAILED FEATURES_OK\n");
		return -1;
	}
	memset((void *)rings, 0, RINGS_PER_DEV);
	for (int q = 0; q < nq; q++) {
		struct vq *v = &vqs[q];
		v->desc = rings + 0x2000ul * q;
		v->avail = v->desc + 0x100;
		v->used = v->desc + 0x1000;
		v->avail_idx = v->used_seen = 0;
		wr32(base + R_QUEUE_SEL, q);
		if (rd32(base + R_QUEUE_NUM_MAX) < QSZ) {
			printf("VIRTIO_FAILED queue %d too small\n", q);
			return -1;
		}
		wr32(base + R_QUEUE_NUM, QSZ);
		wr32(base + R_DESC_LO, (u32)v->desc);
		wr32(base + R_DESC_HI, 0);
		wr32(base + R_AVAIL_LO, (u32)v->avail);
		wr32(base + R_AVAIL_HI, 0);
		wr32(base + R_USED_LO, (u32)v->used);
		wr32(base + R_USED_HI, 0);
		wr32(base + R_QUEUE_READY, 1);
	}
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd32(base + R_STATUS) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
		printf("VIRTIO_FAILED DRIVER_OK status=0x%x\n", rd32(base + R_STATUS));
		return -1;
	}
	return 0;
}

/* Makes the chain at descriptor `head` of queue q available and kicks. */
static void post(int q, u16 head)
{
	struct vq *v = &vqs[q];
	wr16(v->avail + 4 + 2 * (v->avail_idx % QSZ), head);
	mb();
	v->avail_idx++;
	wr16(v->avail + 2, v->avail_idx);
	mb();
	wr32(dev_base + R_QUEUE_NOTIFY, q);
}

/* The next used element of queue q: its length, *id = its head; -1 if none
 * arrives within `ms` milliseconds. */
static long wait_used(int q, u32 ms, u32 *id)
{
	struct vq *v = &vqs[q];
	for (u32 waited = 0;; waited++) {
		if (rd16(v->used + 2) != v->used_seen) {
			mb();
			u64 e = v->used + 4 + 8 * (v->used_seen % QSZ);
			v->used_seen++;
			if (id)
				*id = rd32(e);
			return rd32(e + 4);
		}
		if (waited >= ms)
			return -1;
		if (waited < 4) {
			/* The device answers most requests within a few hundred
			 * instructions: look again before sleeping. */
			for (int i = 0; i < 200; i++)
				cpu_relax();
			continue;
		}
		pit_wait(PIT_HZ / 1000);
	}
}

/* Offers the chain starting at descriptor 0 of queue 0 and waits for it.
 * Returns the used length, or -1 on timeout. */
static long submit(void)
{
	post(0, 0);
	return wait_used(0, WAIT_MS, 0);
}

static void rng(u64 base, u64 rings)
{
	if (setup(base, rings, 0, 1))
		return;
	memset((void *)buf, 0, 32);
	set_desc(0, 0, buf, 32, F_WRITE);
	long n = submit();
	printf("RNG_LEN %d\n", (int)n);
	printf("RNG_BYTES ");
	for (int i = 0; i < 32; i++)
		printf("%02x", rd8(buf + i));
	printf("\n");
}

/* One request: header, optional data, status. Returns the status byte or
 * -1 on timeout. */
static int blk_req(u32 type, u64 sector, u64 data, u32 len, int dev_writes)
{
	u64 hdr = buf + 0x8000, status = buf + 0x8100;
	wr32(hdr, type);
	wr32(hdr + 4, 0);
	wr64(hdr + 8, sector);
	wr8(status, 0xff);
	int i = 0;
	set_desc(0, i++, hdr, 16, F_NEXT);
	if (len)
		set_desc(0, i++, data, len, F_NEXT | (dev_writes ? F_WRITE : 0));
	set_desc(0, i, status, 1, F_WRITE);
	if (submit() < 0)
		return -1;
	return rd8(status);
}

static void print_status(const char *key, int s)
{
	if (s < 0)
		printf("%s timeout\n", key);
	else
		printf("%s %d\n", key, s);
}

#define BLK_F_RO 5
#define BLK_F_FLUSH 9
#define BLK_F_CONFIG_WCE 11
#define BLK_CONFIG_WCE 32 /* offset of the wce byte */

static void blk(u64 base, u64 rings)
{
	/* FLUSH, RO and CONFIG_WCE, if offered (Linux negotiates all three). */
	if (setup(base, rings, 1u << BLK_F_FLUSH | 1u << BLK_F_RO | 1u << BLK_F_CONFIG_WCE, 1))
		return;
	u64 cap = rd32(base + R_CONFIG) | (u64)rd32(base + R_CONFIG + 4) << 32;
	printf("BLK_CAPACITY %lu\n", cap);
	printf("BLK_RO %d\n", (dev_features >> BLK_F_RO) & 1);
	/* Whether the disk has a volatile write cache, as Linux decides it:
	 * the wce byte with CONFIG_WCE, else whether FLUSH is there. */
	if (dev_features & 1u << BLK_F_CONFIG_WCE)
		printf("BLK_WCE %d\n", rd8(base + R_CONFIG + BLK_CONFIG_WCE));
	else
		printf("BLK_WCE none flush=%d\n", (dev_features >> BLK_F_FLUSH) & 1);

	memset((void *)buf, 0, 4096);
	print_status("BLK_READ_STATUS", blk_req(0, 0, buf, 4096, 1));
	printf("BLK_READ_FNV1A32 0x%08x\n", fnv1a32(buf, 4096));

	for (u32 i = 0; i < 512; i++)
		wr8(buf + i, (u8)(i * 7 + 3));
	print_status("BLK_WRITE_STATUS", blk_req(1, 9, buf, 512, 0));
	print_status("BLK_FLUSH_STATUS", blk_req(4, 0, 0, 0, 0));

	memset((void *)buf, 0, 21);
	print_status("BLK_ID_STATUS", blk_req(8, 0, buf, 20, 1));
	printf("BLK_ID %s\n", (const char *)buf);
}

/* ---- virtio-net ---- */

#define NET_HDR 12 /* virtio_net_hdr_v1, no MRG_RXBUF: num_buffers unused */
#define NET_F_MAC 5
#define NET_F_STATUS 16
#define NET_RX_BUFS 4
#define NET_RX_SIZE 2048u
#define ETHERTYPE_HI 0x88
#define ETHERTYPE_LO 0xb5

static void print_mac(const char *key, u64 a)
{
	printf("%s %02x:%02x:%02x:%02x:%02x:%02x\n", key, rd8(a), rd8(a + 1), rd8(a + 2),
	       rd8(a + 3), rd8(a + 4), rd8(a + 5));
}

/* Prints up to `max` bytes at a as text, stopping at the first byte that is
 * not printable ASCII. */
static void print_text(u64 a, u32 len, u32 max)
{
	for (u32 i = 0; i < len && i < max; i++) {
		u8 c = rd8(a + i);
		if (c < 0x20 || c > 0x7e)
			break;
		printf("%c", c);
	}
}

static void net(u64 base, u64 rings)
{
	/* MAC and STATUS only: no offloads, no MRG_RXBUF, so every frame is
	 * the 12-byte header and the Ethernet frame in one buffer. */
	if (setup(base, rings, 1u << NET_F_MAC | 1u << NET_F_STATUS, 2))
		return;
	printf("NET_FEATURES 0x%x\n", dev_features);
	u64 mac = buf; /* our MAC, as the config space has it */
	for (int i = 0; i < 6; i++)
		wr8(mac + i, rd8(base + R_CONFIG + i));
	print_mac("NET_MAC", mac);
	if (dev_features & 1u << NET_F_STATUS)
		printf("NET_STATUS %u\n", rd16(base + R_CONFIG + 6));

	/* Transmit (queue 1): broadcast, from our MAC, ethertype 0x88b5. */
	static const char tx_payload[] = "rvirt virtio-net guest-to-host frame";
	u64 tx = buf + 0x100;
	memset((void *)tx, 0, NET_HDR);
	u64 eth = tx + NET_HDR;
	memset((void *)eth, 0xff, 6);
	memcpy((void *)(eth + 6), (void *)mac, 6);
	wr8(eth + 12, ETHERTYPE_HI);
	wr8(eth + 13, ETHERTYPE_LO);
	memcpy((void *)(eth + 14), tx_payload, sizeof(tx_payload) - 1);
	set_desc(1, 0, tx, NET_HDR + 14 + sizeof(tx_payload) - 1, 0);
	post(1, 0);
	print_status("NET_TX", wait_used(1, WAIT_MS, 0) < 0 ? -1 : 0);

	/* Receive (queue 0): NET_RX_BUFS buffers, one descriptor each. */
	u64 rx = buf + 0x1000;
	for (int i = 0; i < NET_RX_BUFS; i++) {
		set_desc(0, i, rx + i * NET_RX_SIZE, NET_RX_SIZE, F_WRITE);
		post(0, i);
	}
	printf("NET_READY\n");
	u32 skipped = 0;
	for (u32 tries = 0;; tries++) {
		u32 id = 0;
		long len = wait_used(0, WAIT_MS, &id);
		if (len < 0 || tries > 64) {
			printf("NET_RX timeout\n");
			break;
		}
		u64 f = rx + (id % NET_RX_BUFS) * NET_RX_SIZE;
		if (len >= NET_HDR + 14 && rd8(f + NET_HDR + 12) == ETHERTYPE_HI &&
		    rd8(f + NET_HDR + 13) == ETHERTYPE_LO) {
			u32 n = (u32)len - NET_HDR;
			printf("NET_RX_LEN %u\n", n);
			printf("NET_RX_FNV1A32 0x%08x\n", fnv1a32(f + NET_HDR, n));
			print_mac("NET_RX_DST", f + NET_HDR);
			print_mac("NET_RX_SRC", f + NET_HDR + 6);
			printf("NET_RX_TEXT ");
			print_text(f + NET_HDR + 14, n - 14, 80);
			printf("\n");
			break;
		}
		/* Someone else's frame (IPv6 chatter on the tap): reuse the buffer. */
		skipped++;
		set_desc(0, id % NET_RX_BUFS, f, NET_RX_SIZE, F_WRITE);
		post(0, id % NET_RX_BUFS);
	}
	printf("NET_RX_SKIPPED %u\n", skipped);
	/* Stop the device so that it writes no more frames into our buffers. */
	wr32(base + R_STATUS, 0);
}

/* ---- virtio-console ---- */

#define CON_RX_BUFS 4
#define CON_RX_SIZE 64u
#define CON_LINE_MAX 200u

/* Sends `len` bytes at `a` on port 0 (transmitq, queue 1). 0 or -1. */
static int con_write(u64 a, u32 len)
{
	set_desc(1, 0, a, len, 0);
	post(1, 0);
	return wait_used(1, WAIT_MS, 0) < 0 ? -1 : 0;
}

/* `virtio.console_input=0` on the command line: the console's chardev has
 * no input (a file), so do not wait for any. */
static int console_input = 1;

static void console(u64 base, u64 rings)
{
	if (setup(base, rings, 0, 2))
		return;
	static const char hello[] = "CONSOLE_OUT hello from the virtio console\n";
	u64 out = buf;
	memcpy((void *)out, hello, sizeof(hello) - 1);
	print_status("CONSOLE_TX", con_write(out, sizeof(hello) - 1));
	if (!console_input) {
		printf("CONSOLE_RX skipped\n");
		wr32(base + R_STATUS, 0);
		return;
	}

	/* Receive (queue 0) until a newline, re-posting each buffer. */
	u64 rx = buf + 0x1000;
	for (int i = 0; i < CON_RX_BUFS; i++) {
		set_desc(0, i, rx + i * CON_RX_SIZE, CON_RX_SIZE, F_WRITE);
		post(0, i);
	}
	printf("CONSOLE_READY\n");
	u64 line = buf + 0x2000;
	u32 got = 0, chunks = 0;
	int nl = 0;
	while (!nl && got < CON_LINE_MAX) {
		u32 id = 0;
		long len = wait_used(0, WAIT_MS, &id);
		if (len < 0)
			break;
		chunks++;
		u64 b = rx + (id % CON_RX_BUFS) * CON_RX_SIZE;
		for (u32 i = 0; i < (u32)len && i < CON_RX_SIZE && got < CON_LINE_MAX; i++) {
			u8 c = rd8(b + i);
			if (c == '\n') {
				nl = 1;
				break;
			}
			wr8(line + got++, c);
		}
		set_desc(0, id % CON_RX_BUFS, b, CON_RX_SIZE, F_WRITE);
		post(0, id % CON_RX_BUFS);
	}
	printf("CONSOLE_RX_CHUNKS %u\n", chunks);
	if (!nl) {
		printf("CONSOLE_RX timeout after %u bytes\n", got);
	} else {
		printf("CONSOLE_RX ");
		print_text(line, got, CON_LINE_MAX);
		printf("\n");
		/* Echo it back on port 0 as "CONSOLE_ECHO <line>\n". */
		static const char echo[] = "CONSOLE_ECHO ";
		u64 e = buf + 0x3000;
		memcpy((void *)e, echo, sizeof(echo) - 1);
		memcpy((void *)(e + sizeof(echo) - 1), (void *)line, got);
		wr8(e + sizeof(echo) - 1 + got, '\n');
		print_status("CONSOLE_ECHO_TX", con_write(e, sizeof(echo) + got));
	}
	wr32(base + R_STATUS, 0);
}

/* ---- virtio-balloon ---- */

static u64 pattern(u64 a) { return a * 0x9e3779b97f4a7c15ul | 1; }

static void bal_serve_stats(void);

/* Reads and acknowledges InterruptStatus; 1 if it had the configuration
 * change bit. */
static int bal_config_irq(void)
{
	u32 isr = rd32(dev_base + R_INTERRUPT_STATUS);
	if (isr)
		wr32(dev_base + R_INTERRUPT_ACK, isr);
	return (isr >> 1) & 1;
}

/* Waits (bounded) until num_pages differs from `from`; returns it, or -1.
 * *irq = whether InterruptStatus showed a configuration change, which the
 * device may set just after it changed num_pages: looked for up to 1 s
 * more once the change is seen. */
static long bal_wait_target(u32 from, int *irq)
{
	for (u32 ms = 0; ms < WAIT_MS; ms++) {
		bal_serve_stats();
		*irq |= bal_config_irq();
		u32 n = rd32(dev_base + R_CONFIG);
		if (n != from) {
			for (u32 more = 0; !*irq && more < 1000; more++) {
				pit_wait(PIT_HZ / 1000);
				*irq |= bal_config_irq();
			}
			return n;
		}
		pit_wait(PIT_HZ / 1000);
	}
	return -1;
}

/* Sends `count` PFNs from `first` on queue q (0 inflate, 1 deflate). */
static int bal_send(int q, u32 first, u32 count)
{
	for (u32 i = 0; i < count; i++)
		wr32(buf + 4 * i, first + i);
	set_desc(q, 0, buf, 4 * count, 0);
	post(q, 0);
	return wait_used(q, WAIT_MS, 0) < 0 ? -1 : 0;
}

/* With virtio.balloon_stats=1: STATS_VQ negotiated, and the statistics
 * buffer (struct virtio_balloon_stat: le16 tag, le64 val, packed) sent
 * on the statsq with fixed numbers and the minor-fault count set to the
 * round, so the host can tell a fresh buffer from the first. */
#define BAL_F_STATS_VQ 1
#define BAL_STATS_Q 2
static int bal_stats;
static u32 bal_round;

static void bal_put_stat(u64 a, u16 tag, u64 val)
{
	wr16(a, tag);
	for (int i = 0; i < 8; i++)
		*(volatile u8 *)(a + 2 + i) = (u8)(val >> (8 * i));
}

static void bal_send_stats(void)
{
	static const u64 fixed[][2] = {
		{ 2, 7 },                /* major faults */
		{ 4, 32ul << 20 },       /* free memory */
		{ 5, 64ul << 20 },       /* total memory */
		{ 6, 48ul << 20 },       /* available memory */
		{ 7, 1ul << 20 },        /* disk caches */
	};
	u64 a = buf + 0x1000;
	u32 n = 0;
	bal_round++;
	bal_put_stat(a, 3, bal_round); /* minor faults: the round */
	n++;
	for (u32 i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++, n++)
		bal_put_stat(a + 10 * n, (u16)fixed[i][0], fixed[i][1]);
	set_desc(BAL_STATS_Q, 0, a, 10 * n, 0);
	post(BAL_STATS_Q, 0);
	printf("BALLOON_STATS %u\n", bal_round);
}

/* The device gives the statistics buffer back when it wants new numbers:
 * refill and send it again. */
static void bal_serve_stats(void)
{
	if (bal_stats && rd16(vqs[BAL_STATS_Q].used + 2) != vqs[BAL_STATS_Q].used_seen) {
		vqs[BAL_STATS_Q].used_seen++;
		bal_send_stats();
	}
}

static void balloon(u64 base, u64 rings)
{
	/* No DEFLATE_ON_OOM; STATS_VQ only when asked for. */
	if (setup(base, rings, bal_stats ? 1u << BAL_F_STATS_VQ : 0, bal_stats ? 3 : 2))
		return;
	printf("BALLOON_FEATURES 0x%x\n", dev_features);
	if (bal_stats)
		bal_send_stats();
	printf("BALLOON_NUM_PAGES %u\n", rd32(base + R_CONFIG));
	printf("BALLOON_ACTUAL %u\n", rd32(base + R_CONFIG + 4));
	for (u64 a = BAL_BUF; a < BAL_BUF + (BAL_MAX + 1) * 4096; a += 8)
		wr64(a, pattern(a));
	printf("BALLOON_READY\n");

	int irq = 0;
	long target = bal_wait_target(0, &irq);
	if (target < 0) {
		printf("BALLOON_TARGET timeout\n");
		return;
	}
	printf("BALLOON_CONFIG_IRQ %d\n", irq);
	printf("BALLOON_TARGET %u\n", (u32)target);
	u32 n = target > BAL_MAX ? BAL_MAX : (u32)target;
	print_status("BALLOON_INFLATE", bal_send(0, BAL_BUF >> 12, n));
	wr32(base + R_CONFIG + 4, n);
	printf("BALLOON_INFLATED %u\n", n);

	/* The host dropped the pages: they read back as zero now. */
	u32 zero = 0, kept = 0;
	for (u32 p = 0; p <= n; p++) {
		u64 a = BAL_BUF + p * 4096ul;
		u32 z = 1, k = 1;
		for (u64 o = 0; o < 4096; o += 8) {
			u64 v = rd64(a + o);
			z &= v == 0;
			k &= v == pattern(a + o);
		}
		if (p == n) {
			printf("BALLOON_NEIGHBOUR_INTACT %u\n", k);
			break;
		}
		zero += z;
		kept += k;
	}
	printf("BALLOON_ZERO_PAGES %u\n", zero);
	printf("BALLOON_KEPT_PAGES %u\n", kept);

	/* Give back what the host no longer wants. */
	irq = 0;
	long back = bal_wait_target((u32)target, &irq);
	if (back < 0) {
		printf("BALLOON_DEFLATE timeout\n");
		return;
	}
	u32 keep = back > n ? n : (u32)back;
	printf("BALLOON_CONFIG_IRQ %d\n", irq);
	printf("BALLOON_TARGET %u\n", (u32)back);
	print_status("BALLOON_DEFLATE", bal_send(1, (BAL_BUF >> 12) + keep, n - keep));
	wr32(base + R_CONFIG + 4, keep);
	printf("BALLOON_DEFLATED %u\n", n - keep);
	/* The device stays up: `actual` is what query-balloon reports. */
}

void pvh_main(const struct hvm_start_info *si)
{
	static const char no_input[] = "virtio.console_input=0";
	static const char hold_opt[] = "virtio.hold=1";
	static const char stats_opt[] = "virtio.balloon_stats=1";
	int hold = 0;
	const char *c = (const char *)si->cmdline_paddr;
	for (const char *p = c; p && *p; p++) {
		if (!memcmp(p, no_input, sizeof(no_input) - 1))
			console_input = 0;
		if (!memcmp(p, hold_opt, sizeof(hold_opt) - 1))
			hold = 1;
		if (!memcmp(p, stats_opt, sizeof(stats_opt) - 1))
			bal_stats = 1;
	}
	int found = 0;
	u64 base;
	u32 irq;
	while (virtio_mmio_next(&c, &base, &irq)) {
		u64 rings = RINGS + (found % MAX_DEVS) * RINGS_PER_DEV;
		buf = BUFS + (found % MAX_DEVS) * 0x10000ul;
		found++;
		u32 id = rd32(base + R_DEVICE_ID);
		printf("VIRTIO_DEVICE 0x%lx %u %u\n", base, id, irq);
		if (rd32(base + R_MAGIC) != 0x74726976 || rd32(base + R_VERSION) != 2) {
			printf("VIRTIO_FAILED magic/version\n");
			continue;
		}
		if (id == 4)
			rng(base, rings);
		else if (id == 2)
			blk(base, rings);
		else if (id == 1)
			net(base, rings);
		else if (id == 3)
			console(base, rings);
		else if (id == 5)
			balloon(base, rings);
	}
	printf("VIRTIO_DEVICES %d\n", found);
	if (hold) {
		printf("VIRTIO_HOLD\n");
		/* Until the ACPI power button (a host's clean shutdown), then
		 * power off; without ACPI, for ever. */
		u64 fadt = acpi_find_table("FACP");
		u16 evt = fadt ? (u16)rd32(fadt + 56) : 0;
		if (!evt)
			halt_forever();
		outw(evt + rd8(fadt + 88) / 2, PWRBTN);
		while (!(inw(evt) & PWRBTN))
			pit_sleep_ms(20);
		outw(evt, PWRBTN);
		printf("VIRTIO_POWERBTN\n");
	}
}
