/* An e1000e (82574L) from the bottom: find it on PCI (buses 0-7, through
 * CF8, so also behind a root port), read its MAC from the EEPROM through
 * EERD in the 82574's layout with the checksum, its PHY's ID through MDIC,
 * turn on MSI-X with every vector masked and IVAR mapping RXQ0, TXQ0 and
 * "other" to vectors 0, 1 and 2, set up one transmit ring and one receive
 * ring of extended descriptors (RFCTL.EXTEN), send a broadcast frame and
 * wait for one addressed to this MAC. The vectors stay masked, so each
 * cause shows as its vector's pending bit in the PBA (polling only, every
 * wait bounded). With `e1000e.bench=N` on the command line it then sends
 * N more frames as fast as the ring takes them (bench/e1000). The
 * README's "e1000e" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"

#define WAIT_MS 20000u
#define NDESC 8
#define ETHERTYPE 0x88b5

#define CTRL 0x0000
#define STATUS 0x0008
#define EERD 0x0014
#define MDIC 0x0020
#define ICR 0x00c0
#define IMS 0x00d0
#define IMC 0x00d8
#define EIAC 0x00dc
#define IVAR 0x00e4
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
#define RFCTL 0x5008

#define ICR_RXQ0 (1u << 20)
#define ICR_TXQ0 (1u << 22)
#define ICR_OTHER (1u << 24)

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static u32 cfg_addr(u8 bus, u8 slot, u16 reg)
{
	return 0x80000000u | (u32)bus << 16 | (u32)slot << 11 | (reg & 0xfc);
}

static u32 cfg_read(u8 bus, u8 slot, u16 reg)
{
	outl(0xcf8, cfg_addr(bus, slot, reg));
	return inl(0xcfc);
}

static void cfg_write(u8 bus, u8 slot, u16 reg, u32 v)
{
	outl(0xcf8, cfg_addr(bus, slot, reg));
	outl(0xcfc, v);
}

static u64 regs;
static u32 rd(u32 r) { return rd32(regs + r); }
static void wr(u32 r, u32 v) { wr32(regs + r, v); }

/* Transmit: legacy descriptors. */
struct txd {
	u64 addr;
	u16 length;
	u8 cso;
	u8 cmd;
	u8 status;
	u8 css;
	u16 special;
};

/* Receive: extended descriptors (read: the buffer; write-back: status
 * and errors in the third dword, the length in the fourth). */
struct rxd {
	u64 addr_or_mrq;
	u32 status_error;
	u16 length;
	u16 vlan;
};

static struct txd txr[NDESC] __attribute__((aligned(128)));
static struct rxd rxr[NDESC] __attribute__((aligned(128)));
static u8 txbuf[2048] __attribute__((aligned(64)));
static u8 rxbufs[NDESC][2048] __attribute__((aligned(64)));

static u16 eerd_word(u8 addr)
{
	wr(EERD, 1u | (u32)addr << 2);
	for (int i = 0; i < 1000; i++) {
		u32 v = rd(EERD);
		if (v & 2)
			return (u16)(v >> 16);
	}
	return 0xffff;
}

static u16 phy_read(u8 reg)
{
	wr(MDIC, (u32)reg << 16 | 1u << 21 | 1u << 27);
	for (int i = 0; i < 1000; i++) {
		u32 v = rd(MDIC);
		if (v & (1u << 28))
			return (v & (1u << 30)) ? 0xffff : (u16)v;
	}
	return 0xffff;
}

static void print_mac(const char *key, const u8 *m)
{
	printf("%s %02x:%02x:%02x:%02x:%02x:%02x\n", key, m[0], m[1], m[2], m[3], m[4], m[5]);
}

static u64 msix;
/* The pending bits of the RXQ0 and TXQ0 vectors (QEMU completes
 * autonegotiation 500 ms after start, so "other" may or may not be
 * pending by then: left out). */
static u32 pba(void) { return rd32(msix + 0x2000) & 3; }

static u32 bench(u32 n, u32 tail)
{
	u32 sent = 0;
	u32 spins = 0;
	while (sent < n) {
		u32 next = (tail + 1) % NDESC;
		if (next == rd(TDH)) {
			if (++spins > 1000000u)
				break;
			cpu_relax();
			continue;
		}
		spins = 0;
		txr[tail].addr = (u64)txbuf;
		txr[tail].length = 60;
		txr[tail].cmd = 0x01 | 0x02;
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
	int bus = -1, slot = -1;
	for (int b = 0; b < 8 && slot < 0; b++)
		for (int s = 0; s < 32 && slot < 0; s++)
			if (cfg_read((u8)b, (u8)s, 0) == 0x10d38086u)
				bus = b, slot = s;
	if (slot < 0) {
		printf("E1000E none\n");
		return;
	}
	u8 b = (u8)bus, s = (u8)slot;
	u32 bar0 = cfg_read(b, s, 0x10);
	regs = bar0 & ~0xfu;
	msix = cfg_read(b, s, 0x1c) & ~0xfu;
	printf("E1000E subsystem=0x%08x class=0x%06x bar0_type=%u\n", cfg_read(b, s, 0x2c),
	       cfg_read(b, s, 0x08) >> 8, bar0 & 0xf);
	/* The capability list, as QEMU lays it out. */
	printf("CAPS");
	u8 at = (u8)cfg_read(b, s, 0x34);
	for (int i = 0; i < 16 && at; i++) {
		u32 h = cfg_read(b, s, at);
		printf(" %02x@%02x", h & 0xff, at);
		at = (u8)(h >> 8);
	}
	printf("\n");
	cfg_write(b, s, 0x04, cfg_read(b, s, 0x04) | 0x6);

	u8 mac[6];
	u16 sum = 0;
	for (u8 i = 0; i < 64; i++) {
		u16 w = eerd_word(i);
		sum = (u16)(sum + w);
		if (i < 3) {
			mac[2 * i] = (u8)w;
			mac[2 * i + 1] = (u8)(w >> 8);
		}
	}
	print_mac("MAC", mac);
	printf("EEPROM_SUM 0x%04x\n", sum);
	printf("PHY_ID %04x:%04x\n", phy_read(2), phy_read(3));
	printf("LINK %u\n", (rd(STATUS) >> 1) & 1);

	/* MSI-X on, every vector masked (their pending bits show the
	 * causes); RXQ0, TXQ0 and other on vectors 0, 1 and 2. */
	wr(IMC, 0xffffffffu);
	(void)rd(ICR);
	for (u32 v = 0; v < 5; v++) {
		wr32(msix + v * 16, 0xfee00000u);
		wr32(msix + v * 16 + 4, 0);
		wr32(msix + v * 16 + 8, 0x40 + v);
		wr32(msix + v * 16 + 12, 1);
	}
	cfg_write(b, s, 0xa0, cfg_read(b, s, 0xa0) | 1u << 31);
	wr(IVAR, (0x8u | 0) | (0x8u | 1) << 8 | (0x8u | 2) << 16);
	wr(EIAC, 0);
	wr(IMS, ICR_RXQ0 | ICR_TXQ0 | ICR_OTHER);
	printf("MSIX_CTRL 0x%04x PBA %x\n", cfg_read(b, s, 0xa0) >> 16, pba());

	/* Receive: extended descriptors, 2 KiB buffers, the CRC stripped,
	 * broadcasts taken. */
	wr(RFCTL, 1u << 15);
	for (int i = 0; i < NDESC; i++) {
		rxr[i].addr_or_mrq = (u64)rxbufs[i];
		rxr[i].status_error = 0;
	}
	wr(RDBAL, (u32)(u64)rxr);
	wr(RDBAH, (u32)((u64)rxr >> 32));
	wr(RDLEN, sizeof rxr);
	wr(RDH, 0);
	wr(RDT, NDESC - 1);
	wr(RCTL, 1u << 1 | 1u << 15 | 1u << 26);
	wr(TDBAL, (u32)(u64)txr);
	wr(TDBAH, (u32)((u64)txr >> 32));
	wr(TDLEN, sizeof txr);
	wr(TDH, 0);
	wr(TDT, 0);
	wr(TCTL, 1u << 1 | 1u << 3 | 0x10u << 4 | 0x40u << 12);

	static const char hello[] = "hello from the e1000e guest";
	memset(txbuf, 0, 60);
	memset(txbuf, 0xff, 6);
	memcpy(txbuf + 6, mac, 6);
	txbuf[12] = ETHERTYPE >> 8;
	txbuf[13] = ETHERTYPE & 0xff;
	memcpy(txbuf + 14, hello, sizeof hello - 1);
	txr[0].addr = (u64)txbuf;
	txr[0].length = 60;
	txr[0].cmd = 0x01 | 0x02 | 0x08;
	txr[0].status = 0;
	mb();
	wr(TDT, 1);
	int done = -1;
	for (u32 waited = 0; waited < WAIT_MS && done < 0; waited++) {
		if (*(volatile u8 *)&txr[0].status & 1)
			done = 0;
		else
			pit_wait(PIT_HZ / 1000);
	}
	/* TXQ0's vector only: the answer may already be in (RXQ0's). */
	printf("TX_DONE %d TDH=%u VEC1_PENDING %u\n", done == 0, rd(TDH), (pba() >> 1) & 1);

	int got = -1;
	for (u32 waited = 0; waited < WAIT_MS && got < 0; waited++) {
		for (int i = 0; i < NDESC - 1; i++) {
			volatile u32 *st = &rxr[i].status_error;
			if (!(*st & 1))
				continue;
			u8 *f = rxbufs[i];
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
		printf("RX_LEN %u STATUS 0x%08x\n", rxr[got].length, rxr[got].status_error);
		print_mac("RX_FROM", f + 6);
		printf("RX_PAYLOAD %s\n", text);
	}
	printf("PBA %x\n", pba());
	/* Under MSI-X a read of ICR leaves the causes; a write clears them. */
	u32 icr = rd(ICR);
	printf("ICR_TXQ0 %u ICR_RXQ0 %u\n", (icr >> 22) & 1, (icr >> 20) & 1);
	wr(ICR, 0xffffffffu);
	printf("ICR_AFTER %x\n", rd(ICR));
	u64 n = arg_dec(arg_find(cmdline, "e1000e.bench="), 0);
	if (n) {
		txbuf[14 + sizeof hello - 1] = '!';
		printf("BENCH_START %u\n", (u32)n);
		printf("BENCH_SENT %u\n", bench((u32)n, 1));
	}
}
