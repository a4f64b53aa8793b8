/* A minimal virtio-mmio (version 2) driver: finds the devices named by
 * virtio_mmio.device=4K@0xBASE:IRQ on its command line, negotiates
 * VERSION_1, sets up one 8-entry split queue and polls the used ring (no
 * interrupts). virtio-rng: reads 32 bytes. virtio-blk: reads sectors 0..7,
 * writes sector 9, flushes, reads the serial.
 *
 * Output, per device in command-line order:
 *   VIRTIO_DEVICE <base hex> <device id> <irq>
 *   VIRTIO_FAILED <what>                      negotiation or queue setup failed
 *   RNG_LEN <used length>  RNG_BYTES <64 hex digits>
 *   BLK_CAPACITY <sectors>  BLK_RO <0|1>
 *   BLK_READ_STATUS <s>  BLK_READ_FNV1A32 0x<8 hex>   (sectors 0..7, 4096 bytes)
 *   BLK_WRITE_STATUS <s>                      sector 9 = bytes (i * 7 + 3) & 0xff
 *   BLK_FLUSH_STATUS <s>  BLK_ID_STATUS <s>  BLK_ID <serial>
 * where s is the virtio-blk status byte (0 OK, 1 IOERR, 2 UNSUPP) or
 * "timeout" if the device never answered. */
#include "rt/rt.h"
#include "rt/fnv.h"

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_AVAIL_LO 0x090
#define R_AVAIL_HI 0x094
#define R_USED_LO 0x0a0
#define R_USED_HI 0x0a4
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define QSZ 8
/* Queue memory, well above the guest image (1-2 MiB). */
#define DESC 0x300000ul
#define AVAIL 0x300100ul
#define USED 0x301000ul
#define BUF 0x310000ul
#define HDR 0x318000ul
#define STATUS_BYTE 0x318100ul

#define F_NEXT 1
#define F_WRITE 2

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

static u16 avail_idx, used_seen;

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void wr64(u64 a, u64 v) { *(volatile u64 *)a = v; }

static void set_desc(int i, u64 addr, u32 len, u16 flags)
{
	volatile struct desc *d = (volatile struct desc *)(DESC + 16 * i);
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = i + 1;
}

/* Brings the device to DRIVER_OK with queue 0; 0 on success. */
static int setup(u64 base, u32 want_low)
{
	wr32(base + R_STATUS, 0);
	wr32(base + R_STATUS, S_ACK);
	wr32(base + R_STATUS, S_ACK | S_DRIVER);
	wr32(base + R_DEV_FEATURES_SEL, 1);
	if (!(rd32(base + R_DEV_FEATURES) & 1)) {
		printf("VIRTIO_FAILED no VERSION_1\n");
		return -1;
	}
	wr32(base + R_DEV_FEATURES_SEL, 0);
	u32 low = rd32(base + R_DEV_FEATURES) & want_low;
	wr32(base + R_DRV_FEATURES_SEL, 1);
	wr32(base + R_DRV_FEATURES, 1);
	wr32(base + R_DRV_FEATURES_SEL, 0);
	wr32(base + R_DRV_FEATURES, low);
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(base + R_STATUS) & S_FEATURES_OK)) {
		printf("VIRTIO_FAILED FEATURES_OK\n");
		return -1;
	}
	wr32(base + R_QUEUE_SEL, 0);
	if (rd32(base + R_QUEUE_NUM_MAX) < QSZ) {
		printf("VIRTIO_FAILED queue too small\n");
		return -1;
	}
	memset((void *)DESC, 0, 0x2000);
	avail_idx = used_seen = 0;
	wr32(base + R_QUEUE_NUM, QSZ);
	wr32(base + R_DESC_LO, (u32)DESC);
	wr32(base + R_DESC_HI, 0);
	wr32(base + R_AVAIL_LO, (u32)AVAIL);
	wr32(base + R_AVAIL_HI, 0);
	wr32(base + R_USED_LO, (u32)USED);
	wr32(base + R_USED_HI, 0);
	wr32(base + R_QUEUE_READY, 1);
	wr32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd32(base + R_STATUS) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
		printf("VIRTIO_FAILED DRIVER_OK status=0x%x\n", rd32(base + R_STATUS));
		return -1;
	}
	return 0;
}

/* Offers the chain starting at descriptor 0, kicks queue 0 and polls the
 * used ring. Returns the used length, or -1 on timeout. */
static long submit(u64 base)
{
	wr16(AVAIL + 4 + 2 * (avail_idx % QSZ), 0);
	mb();
	avail_idx++;
	wr16(AVAIL + 2, avail_idx);
	mb();
	wr32(base + R_QUEUE_NOTIFY, 0);
	for (u32 spin = 0; spin < 3000000; spin++) {
		if (rd16(USED + 2) != used_seen) {
			mb();
			u32 len = rd32(USED + 4 + 8 * (used_seen % QSZ) + 4);
			used_seen++;
			return len;
		}
		cpu_relax();
	}
	return -1;
}

static void rng(u64 base)
{
	if (setup(base, 0))
		return;
	memset((void *)BUF, 0, 32);
	set_desc(0, BUF, 32, F_WRITE);
	long n = submit(base);
	printf("RNG_LEN %d\n", (int)n);
	printf("RNG_BYTES ");
	for (int i = 0; i < 32; i++)
		printf("%02x", rd8(BUF + i));
	printf("\n");
}

/* One request: header, optional data, status. Returns the status byte or
 * -1 on timeout. */
static int blk_req(u64 base, u32 type, u64 sector, u64 data, u32 len, int dev_writes)
{
	wr32(HDR, type);
	wr32(HDR + 4, 0);
	wr64(HDR + 8, sector);
	wr8(STATUS_BYTE, 0xff);
	int i = 0;
	set_desc(i++, HDR, 16, F_NEXT);
	if (len)
		set_desc(i++, data, len, F_NEXT | (dev_writes ? F_WRITE : 0));
	set_desc(i, STATUS_BYTE, 1, F_WRITE);
	if (submit(base) < 0)
		return -1;
	return rd8(STATUS_BYTE);
}

static void print_status(const char *key, int s)
{
	if (s < 0)
		printf("%s timeout\n", key);
	else
		printf("%s %d\n", key, s);
}

static void blk(u64 base)
{
	/* FLUSH (bit 9) and RO (bit 5), if offered. */
	if (setup(base, 1u << 9 | 1u << 5))
		return;
	u64 cap = rd32(base + R_CONFIG) | (u64)rd32(base + R_CONFIG + 4) << 32;
	wr32(base + R_DEV_FEATURES_SEL, 0);
	printf("BLK_CAPACITY %lu\n", cap);
	printf("BLK_RO %d\n", (rd32(base + R_DEV_FEATURES) >> 5) & 1);

	memset((void *)BUF, 0, 4096);
	print_status("BLK_READ_STATUS", blk_req(base, 0, 0, BUF, 4096, 1));
	printf("BLK_READ_FNV1A32 0x%08x\n", fnv1a32(BUF, 4096));

	for (u32 i = 0; i < 512; i++)
		wr8(BUF + i, (u8)(i * 7 + 3));
	print_status("BLK_WRITE_STATUS", blk_req(base, 1, 9, BUF, 512, 0));
	print_status("BLK_FLUSH_STATUS", blk_req(base, 4, 0, 0, 0, 0));

	memset((void *)BUF, 0, 21);
	print_status("BLK_ID_STATUS", blk_req(base, 8, 0, BUF, 20, 1));
	printf("BLK_ID %s\n", (const char *)BUF);
}

static u64 hex(const char **p)
{
	u64 v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (u64)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (u64)(c - 'a' + 10);
		else
			return v;
	}
}

void pvh_main(const struct hvm_start_info *si)
{
	static const char key[] = "virtio_mmio.device=4K@0x";
	const char *c = (const char *)si->cmdline_paddr;
	int found = 0;
	while (c && *c) {
		if (memcmp(c, key, sizeof(key) - 1)) {
			c++;
			continue;
		}
		c += sizeof(key) - 1;
		u64 base = hex(&c);
		u32 irq = 0;
		if (*c == ':')
			for (c++; *c >= '0' && *c <= '9'; c++)
				irq = irq * 10 + (u32)(*c - '0');
		found++;
		u32 id = rd32(base + R_DEVICE_ID);
		printf("VIRTIO_DEVICE 0x%lx %u %u\n", base, id, irq);
		if (rd32(base + R_MAGIC) != 0x74726976 || rd32(base + R_VERSION) != 2) {
			printf("VIRTIO_FAILED magic/version\n");
			continue;
		}
		if (id == 4)
			rng(base);
		else if (id == 2)
			blk(base);
	}
	printf("VIRTIO_DEVICES %d\n", found);
}
