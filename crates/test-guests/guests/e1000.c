/* An e1000 (82540EM) from the bottom: find it on PCI bus 0, read its MAC
 * from the EEPROM both ways (EERD, and bit-banged through EECD as old
 * drivers do) with the EEPROM checksum, set up one transmit and one
 * receive ring of legacy descriptors, send a broadcast frame and wait for
 * one addressed to this MAC. Interrupts stay masked (polling only, every
 * wait bounded); ICR shows the causes. With `e1000.bench=N` on the
 * command line it then sends N more frames as fast as the ring takes them
 * (bench/e1000). The README's "e1000" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"

#define WAIT_MS 20000u
#define NDESC 8
#define ETHERTYPE 0x88b5

#define CTRL 0x0000
#define STATUS 0x0008
#define EECD 0x0010
#define EERD 0x0014
#define ICR 0x00c0
#define IMC 0x00d8
#define RCTL 0x0100
#define TCTL 0x0400
#define RDBAL 0x2800
#define RDBAH 0x2804
#define RDLEN 0x2808
#define RDH 0x2810
#define RDT 0x2818
#define TDBAL 0x3800
#define TDBAH 0x3804
#define TDLEN 0x3808
#define TDH 0x3810
#define TDT 0x3818

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static u32 cfg_read(u8 slot, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)slot << 11 | (reg & 0xfc));
	return inl(0xcfc);
}

static void cfg_write(u8 slot, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | (u32)slot << 11 | (reg & 0xfc));
	outl(0xcfc, v);
}

static u64 regs;
static u32 rd(u32 r) { return rd32(regs + r); }
static void wr(u32 r, u32 v) { wr32(regs + r, v); }

struct desc {
	u64 addr;
	u16 length;
	u8 cso_or_csum_lo;
	u8 cmd_or_csum_hi;
	u8 status;
	u8 css_or_errors;
	u16 special;
};

static struct desc txr[NDESC] __attribute__((aligned(128)));
static struct desc rxr[NDESC] __attribute__((aligned(128)));
static u8 txbuf[2048] __attribute__((aligned(64)));
static u8 rxbufs[NDESC][2048] __attribute__((aligned(64)));

static int wait_bit(volatile u8 *p, u8 bit)
{
	for (u32 waited = 0; waited < WAIT_MS; waited++) {
		if (*p & bit)
			return 0;
		pit_wait(PIT_HZ / 1000);
	}
	return -1;
}

/* One EEPROM word through the Microwire protocol on EECD (Linux's
 * e1000_shift_out_ee_bits / e1000_shift_in_ee_bits). */
static u16 eecd_word(u8 addr)
{
	const u32 SK = 1, CS = 2, DI = 4, DO = 8;
	u32 cmd = 0x6u << 6 | addr;
	wr(EECD, 0);
	wr(EECD, CS);
	for (int bit = 8; bit >= 0; bit--) {
		u32 di = (cmd >> bit) & 1 ? DI : 0;
		wr(EECD, CS | di);
		wr(EECD, CS | di | SK);
		wr(EECD, CS | di);
	}
	u16 w = 0;
	for (int i = 0; i < 16; i++) {
		wr(EECD, CS | SK);
		w = (u16)(w << 1 | ((rd(EECD) & DO) ? 1 : 0));
		wr(EECD, CS);
	}
	wr(EECD, 0);
	return w;
}

static u16 eerd_word(u8 addr)
{
	wr(EERD, 1u | (u32)addr << 8);
	for (int i = 0; i < 1000; i++) {
		u32 v = rd(EERD);
		if (v & 0x10)
			return (u16)(v >> 16);
	}
	return 0xffff;
}

static void print_mac(const char *key, const u8 *m)
{
	printf("%s %02x:%02x:%02x:%02x:%02x:%02x\n", key, m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Sends `n` copies of the frame in txbuf through the ring, reusing each
 * descriptor as soon as TDH has passed it; returns how many went. */
static u32 bench(u32 n, u32 tail)
{
	u32 sent = 0;
	u32 spins = 0;
	while (sent < n) {
		u32 next = (tail + 1) % NDESC;
		if (next == rd(TDH)) {
			/* The ring is full: bounded wait for the card. */
			if (++spins > 1000000u)
				break;
			cpu_relax();
			continue;
		}
		spins = 0;
		txr[tail].addr = (u64)txbuf;
		txr[tail].length = 60;
		txr[tail].cmd_or_csum_hi = 0x01 | 0x02;
		txr[tail].status = 0;
		mb();
		tail = next;
		wr(TDT, tail);
		sent++;
	}
	for (u32 waited = 0; waited < WAIT_MS && rd(TDH) != tail; waited++)
		pit_wait(PIT_HZ / 1000);
	return sent;
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	int slot = -1;
	for (int s = 0; s < 32 && slot < 0; s++)
		if (cfg_read((u8)s, 0) == 0x100e8086u)
			slot = s;
	if (slot < 0) {
		printf("E1000 none\n");
		return;
	}
	u32 bar0 = cfg_read((u8)slot, 0x10);
	regs = bar0 & ~0xfu;
	printf("E1000 slot=%d subsystem=0x%08x bar0_type=%u\n", slot, cfg_read((u8)slot, 0x2c),
	       bar0 & 0xf);
	/* Memory decode and bus mastering (firmware, or rvirt's direct boot,
	 * placed the BARs). */
	cfg_write((u8)slot, 0x04, cfg_read((u8)slot, 0x04) | 0x6);

	u8 mac[6], mac2[6];
	u16 sum = 0;
	for (u8 i = 0; i < 64; i++) {
		u16 w = eerd_word(i);
		sum = (u16)(sum + w);
		if (i < 3) {
			mac[2 * i] = (u8)w;
			mac[2 * i + 1] = (u8)(w >> 8);
		}
	}
	for (u8 i = 0; i < 3; i++) {
		u16 w = eecd_word(i);
		mac2[2 * i] = (u8)w;
		mac2[2 * i + 1] = (u8)(w >> 8);
	}
	print_mac("MAC", mac);
	print_mac("MAC_EECD", mac2);
	printf("EEPROM_SUM 0x%04x\n", sum);
	printf("LINK %u\n", (rd(STATUS) >> 1) & 1);

	wr(IMC, 0xffffffffu);
	(void)rd(ICR);
	/* Receive: all buffers but one given to the card, 2 KiB each, the
	 * CRC stripped, broadcasts taken. */
	for (int i = 0; i < NDESC; i++) {
		rxr[i].addr = (u64)rxbufs[i];
		rxr[i].status = 0;
	}
	wr(RDBAL, (u32)(u64)rxr);
	wr(RDBAH, (u32)((u64)rxr >> 32));
	wr(RDLEN, sizeof rxr);
	wr(RDH, 0);
	wr(RDT, NDESC - 1);
	wr(RCTL, 1u << 1 | 1u << 15 | 1u << 26);
	/* Transmit. */
	wr(TDBAL, (u32)(u64)txr);
	wr(TDBAH, (u32)((u64)txr >> 32));
	wr(TDLEN, sizeof txr);
	wr(TDH, 0);
	wr(TDT, 0);
	wr(TCTL, 1u << 1 | 1u << 3 | 0x10u << 4 | 0x40u << 12);

	static const char hello[] = "hello from the e1000 guest";
	memset(txbuf, 0, 60);
	memset(txbuf, 0xff, 6);
	memcpy(txbuf + 6, mac, 6);
	txbuf[12] = ETHERTYPE >> 8;
	txbuf[13] = ETHERTYPE & 0xff;
	memcpy(txbuf + 14, hello, sizeof hello - 1);
	txr[0].addr = (u64)txbuf;
	txr[0].length = 60;
	/* EOP, IFCS, RS. */
	txr[0].cmd_or_csum_hi = 0x01 | 0x02 | 0x08;
	txr[0].status = 0;
	mb();
	wr(TDT, 1);
	int sent = wait_bit(&txr[0].status, 1);
	printf("TX_DONE %d TDH=%u\n", sent == 0, rd(TDH));

	int got = -1;
	for (u32 waited = 0; waited < WAIT_MS && got < 0; waited++) {
		for (int i = 0; i < NDESC - 1; i++) {
			volatile u8 *st = &rxr[i].status;
			if (!(*st & 1))
				continue;
			u8 *f = rxbufs[i];
			/* Skip anything else the host's stack sends (IPv6
			 * router solicitations...): only our ethertype. */
			if (f[12] == (ETHERTYPE >> 8) && f[13] == (ETHERTYPE & 0xff) &&
			    !memcmp(f, mac, 6))
				got = i;
			else
				*st = 0;
		}
		if (got < 0)
			pit_wait(PIT_HZ / 1000);
	}
	if (got < 0) {
		printf("RX none\n");
	} else {
		u8 *f = rxbufs[got];
		char text[64];
		int n = 0;
		while (n < 63 && f[14 + n] >= 0x20 && f[14 + n] < 0x7f)
			text[n] = (char)f[14 + n], n++;
		text[n] = 0;
		printf("RX_LEN %u EOP %u\n", rxr[got].length, (rxr[got].status >> 1) & 1);
		print_mac("RX_FROM", f + 6);
		printf("RX_PAYLOAD %s\n", text);
	}
	u32 icr = rd(ICR);
	printf("ICR_TXDW %u ICR_RXT0 %u\n", icr & 1, (icr >> 7) & 1);
	printf("ICR_AFTER %x\n", rd(ICR));
	u64 n = arg_dec(arg_find(cmdline, "e1000.bench="), 0);
	if (n) {
		txbuf[14 + sizeof hello - 1] = '!';
		printf("BENCH_START %u\n", (u32)n);
		printf("BENCH_SENT %u\n", bench((u32)n, 1));
	}
}
