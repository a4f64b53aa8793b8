/* A qemu-xhci from the bottom, as a driver does it, polling (no
 * interrupts; every wait bounded): find it on PCI bus 0, print its
 * capability registers, reset it, set up the command ring, the device
 * context array and one event ring segment, run it; then for each port
 * with a device: reset the port, Enable Slot, Address Device, read the
 * device, configuration, product string and HID report descriptors,
 * SET_CONFIGURATION, SET_IDLE (a keyboard also gets its Caps Lock LED),
 * configure the interrupt IN endpoint and queue a transfer on it. After
 * `READY` it prints every report as `REPORT <slot> <len> <bytes>` and
 * queues the next, until `usb.reports=N` reports (default 4) or 20 s
 * without one. The README's "usb" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"

#define WAIT_MS 20000u
#define MAX_DEV 2
#define EP0_TRBS 64
#define INTR_TRBS 16

struct trb {
	u64 p;
	u32 s;
	u32 c;
};

static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* Configuration space of bus:slot.0; `dev` is bus << 5 | slot. */
static u32 cfg_read(u16 dev, u16 reg)
{
	outl(0xcf8, 0x80000000u | (u32)dev << 11 | (reg & 0xfc));
	return inl(0xcfc);
}

static void cfg_write(u16 dev, u16 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | (u32)dev << 11 | (reg & 0xfc));
	outl(0xcfc, v);
}

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static u64 cap, op, rt, db;
static u64 dcbaa[65] __attribute__((aligned(64)));
static struct trb cmd[16] __attribute__((aligned(64)));
static struct trb evr[16] __attribute__((aligned(64)));
static u32 erst[4] __attribute__((aligned(64)));
static u32 inctx[33 * 8] __attribute__((aligned(64)));
static u32 outctx[MAX_DEV][32 * 8] __attribute__((aligned(64)));
static struct trb ep0[MAX_DEV][EP0_TRBS] __attribute__((aligned(64)));
static struct trb intr[MAX_DEV][INTR_TRBS] __attribute__((aligned(64)));
static u8 buf[256] __attribute__((aligned(64)));
static u8 reports[MAX_DEV][INTR_TRBS][8] __attribute__((aligned(64)));

static u32 cmd_idx, ev_idx = 0, ev_cycle = 1;
static u32 ep0_idx[MAX_DEV], intr_idx[MAX_DEV], intr_cycle[MAX_DEV];

static u32 rd(u64 a) { return rd32(a); }
static void wr(u64 a, u32 v) { wr32(a, v); }
static void wr64(u64 a, u64 v)
{
	wr32(a, (u32)v);
	wr32(a + 4, (u32)(v >> 32));
}

/* The next event, or a zeroed TRB after `ms` milliseconds. */
static struct trb next_event(u32 ms)
{
	struct trb t = {0, 0, 0};
	for (u32 waited = 0; waited <= ms; waited++) {
		volatile struct trb *e = &evr[ev_idx];
		if ((e->c & 1) == ev_cycle) {
			t.p = e->p;
			t.s = e->s;
			t.c = e->c;
			if (++ev_idx == 16) {
				ev_idx = 0;
				ev_cycle ^= 1;
			}
			wr64(rt + 0x38, (u64)&evr[ev_idx] | 8);
			return t;
		}
		pit_wait(PIT_HZ / 1000);
	}
	return t;
}

static u32 type_of(struct trb t) { return (t.c >> 10) & 0x3f; }
static u32 cc_of(struct trb t) { return t.s >> 24; }

/* Runs one command; its completion (type 33) or a zeroed TRB. */
static struct trb command(u64 p, u32 type, u32 flags)
{
	struct trb *t = &cmd[cmd_idx++];
	t->p = p;
	t->s = 0;
	mb();
	t->c = type << 10 | flags | 1;
	mb();
	wr(db, 0);
	for (;;) {
		struct trb e = next_event(WAIT_MS);
		if (!e.c || type_of(e) == 33)
			return e;
	}
}

static void ep0_put(int d, u64 p, u32 s, u32 c)
{
	struct trb *t = &ep0[d][ep0_idx[d]++];
	t->p = p;
	t->s = s;
	mb();
	t->c = c | 1;
}

/* A control transfer on slot `slot` (device `d`): its completion code
 * (the last event's) and the bytes moved into buf. */
static int transfer(int d, u32 slot, u8 rt_, u8 req, u16 value, u16 index, u16 len, const u8 *out,
		    u32 *moved)
{
	int in = rt_ & 0x80;
	u64 setup = (u64)rt_ | (u64)req << 8 | (u64)value << 16 | (u64)index << 32 | (u64)len << 48;
	u32 trt = len == 0 ? 0 : in ? 3 : 2;
	memset(buf, 0, sizeof buf);
	if (out)
		memcpy(buf, out, len);
	ep0_put(d, setup, 8, 2u << 10 | 1u << 6 | trt << 16);
	if (len)
		ep0_put(d, (u64)buf, len, 3u << 10 | (in ? 1u << 16 : 0) | 1u << 2);
	ep0_put(d, 0, 0, 4u << 10 | 1u << 5 | (in && len ? 0 : 1u << 16));
	mb();
	wr(db + 4 * slot, 1);
	*moved = len;
	for (;;) {
		struct trb e = next_event(WAIT_MS);
		if (!e.c)
			return -1;
		if (type_of(e) != 32)
			continue;
		u32 cc = cc_of(e);
		if (cc == 13) {
			/* A short data stage; the Status stage's event follows. */
			*moved = len - (e.s & 0xffffff);
			continue;
		}
		if (cc != 1)
			return (int)cc;
		if (e.p == (u64)&ep0[d][ep0_idx[d] - 1])
			return 1;
	}
}


/* A control transfer; after a STALL (completion code 6), the halted
 * endpoint 0 reset and its ring moved past the transfer, as drivers do. */
static int control(int d, u32 slot, u8 rt_, u8 req, u16 value, u16 index, u16 len, const u8 *out,
		   u32 *moved)
{
	int cc = transfer(d, slot, rt_, req, value, index, len, out, moved);
	if (cc == 6) {
		u32 state = outctx[d][8] & 7;
		struct trb e = command(0, 14, slot << 24 | 1u << 16);
		u32 reset = cc_of(e);
		e = command((u64)&ep0[d][ep0_idx[d]] | 1, 16, slot << 24 | 1u << 16);
		printf("STALL ep0_state=%u reset=%u set_dequeue=%u\n", state, reset, cc_of(e));
	}
	return cc;
}

static void print_hex(const char *what, const u8 *b, u32 n)
{
	printf("%s %u", what, n);
	for (u32 i = 0; i < n; i++)
		printf(" %02x", b[i]);
	printf("\n");
}

static void queue_intr(int d, u32 slot, u32 mps)
{
	u32 i = intr_idx[d];
	struct trb *t = &intr[d][i];
	t->p = (u64)reports[d][i];
	t->s = mps;
	mb();
	t->c = 1u << 10 | 1u << 5 | 1u << 2 | intr_cycle[d];
	if (++intr_idx[d] == INTR_TRBS - 1) {
		/* The Link TRB back to the start, toggling the cycle. */
		struct trb *l = &intr[d][INTR_TRBS - 1];
		l->p = (u64)intr[d];
		l->s = 0;
		mb();
		l->c = 6u << 10 | 1u << 1 | intr_cycle[d];
		intr_idx[d] = 0;
		intr_cycle[d] ^= 1;
	}
	mb();
	wr(db + 4 * slot, 3);
}

/* Enumerates the device on root port `port` as device `d`; returns its
 * slot (0: failed). */
static u32 enumerate(int d, u32 port, u32 speed, u32 *mps_out)
{
	u64 psc = op + 0x400 + 0x10 * (port - 1);
	wr(psc, 1u << 9 | 1u << 4);
	struct trb e = next_event(WAIT_MS);
	printf("PORT %u RESET event=%u port=%u portsc=%08x\n", port, type_of(e), (u32)(e.p >> 24),
	       rd(psc));
	/* Clear the change bits, keeping power (PED is write-1-to-disable). */
	wr(psc, (rd(psc) & 0x0e000200u) | 0x00fe0000u);
	e = command(0, 9, 0);
	u32 slot = e.c >> 24;
	printf("ENABLE_SLOT cc=%u slot=%u\n", cc_of(e), slot);
	if (cc_of(e) != 1)
		return 0;
	dcbaa[slot] = (u64)outctx[d];
	memset(inctx, 0, sizeof inctx);
	inctx[1] = 3;
	inctx[8] = 1u << 27 | speed << 20;
	inctx[9] = port << 16;
	u32 mps0 = speed == 3 ? 64 : 8;
	inctx[16 + 1] = 3u << 1 | 4u << 3 | mps0 << 16;
	inctx[16 + 2] = (u32)(u64)ep0[d] | 1;
	inctx[16 + 3] = (u32)((u64)ep0[d] >> 32);
	inctx[16 + 4] = 8;
	mb();
	e = command((u64)inctx, 11, slot << 24);
	printf("ADDRESS_DEVICE cc=%u state=%u address=%u\n", cc_of(e), outctx[d][3] >> 27,
	       outctx[d][3] & 0xff);
	if (cc_of(e) != 1)
		return 0;
	u32 n = 0;
	int cc = control(d, slot, 0x80, 6, 0x0100, 0, 18, 0, &n);
	printf("GET_DESCRIPTOR device cc=%d\n", cc);
	print_hex("DEVICE", buf, n);
	u8 product = buf[15], serial = buf[16];
	cc = control(d, slot, 0x80, 6, 0x0200, 0, 255, 0, &n);
	printf("GET_DESCRIPTOR config cc=%d\n", cc);
	print_hex("CONFIG", buf, n);
	u8 config[64];
	memcpy(config, buf, n < 64 ? n : 64);
	u8 protocol = config[9 + 7];
	u16 report_len = config[18 + 7] | config[18 + 8] << 8;
	u32 mps = config[27 + 4];
	u8 interval = config[27 + 6];
	for (u8 s = 0; s < 2; s++) {
		u8 index = s ? serial : product;
		cc = control(d, slot, 0x80, 6, 0x0300 | index, 0x409, 255, 0, &n);
		char text[64];
		u32 k = 0;
		for (u32 i = 2; i + 1 < n && k < 63; i += 2)
			text[k++] = (char)buf[i];
		text[k] = 0;
		printf("STRING %u cc=%d %s\n", index, cc, text);
	}
	cc = control(d, slot, 0x81, 6, 0x2200, 0, report_len, 0, &n);
	printf("GET_DESCRIPTOR report cc=%d\n", cc);
	print_hex("REPORT_DESCRIPTOR", buf, n);
	cc = control(d, slot, 0x00, 9, 1, 0, 0, 0, &n);
	printf("SET_CONFIGURATION cc=%d\n", cc);
	cc = control(d, slot, 0x21, 0x0a, 0, 0, 0, 0, &n);
	printf("SET_IDLE cc=%d\n", cc);
	cc = control(d, slot, 0xa1, 0x03, 0, 0, 1, 0, &n);
	printf("GET_PROTOCOL cc=%d value=%u\n", cc, buf[0]);
	if (protocol == 1) {
		u8 leds = 2;
		cc = control(d, slot, 0x21, 0x09, 0x0200, 0, 1, &leds, &n);
		printf("SET_REPORT leds cc=%d\n", cc);
	}
	/* A request no HID device knows: a STALL, then the endpoint reset. */
	cc = control(d, slot, 0xc0, 0x55, 0, 0, 4, 0, &n);
	printf("VENDOR_REQUEST cc=%d\n", cc);

	memset(inctx, 0, sizeof inctx);
	inctx[1] = 1 | 1u << 3;
	inctx[8] = 3u << 27 | speed << 20;
	inctx[9] = port << 16;
	u32 *ep = &inctx[8 * (1 + 3)];
	ep[0] = (u32)(interval - 1) << 16;
	ep[1] = 3u << 1 | 7u << 3 | mps << 16;
	ep[2] = (u32)(u64)intr[d] | 1;
	ep[3] = (u32)((u64)intr[d] >> 32);
	ep[4] = mps << 16 | mps;
	intr_cycle[d] = 1;
	mb();
	e = command((u64)inctx, 12, slot << 24);
	printf("CONFIGURE_ENDPOINT cc=%u state=%u ep=%u\n", cc_of(e), outctx[d][3] >> 27,
	       outctx[d][8 * 3] & 7);
	*mps_out = mps;
	return cc_of(e) == 1 ? slot : 0;
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	u32 want = (u32)arg_dec(arg_find(cmdline, "usb.reports="), 4);
	/* Buses 0-7 (behind bridges as firmware, or rvirt, numbered them). */
	int pci = -1;
	for (int dev = 0; dev < 8 * 32 && pci < 0; dev++)
		if (cfg_read((u16)dev, 0) == 0x000d1b36u)
			pci = dev;
	if (pci < 0) {
		printf("XHCI none\n");
		return;
	}
	u16 at = (u16)pci;
	u32 lo = cfg_read(at, 0x10), hi = cfg_read(at, 0x14);
	printf("XHCI bus=%u class=%06x rev=%u subsystem=%08x bar0_type=%u\n", at >> 5,
	       cfg_read(at, 8) >> 8, cfg_read(at, 8) & 0xff, cfg_read(at, 0x2c), lo & 0xf);
	if (hi) {
		printf("XHCI BAR above 4 GiB\n");
		return;
	}
	cfg_write(at, 0x04, cfg_read(at, 0x04) | 0x6);
	cap = lo & ~0xfu;
	op = cap + (rd(cap) & 0xff);
	rt = cap + (rd(cap + 0x18) & ~0x1fu);
	db = cap + (rd(cap + 0x14) & ~0x3u);
	u32 hcs1 = rd(cap + 4);
	printf("CAPS %08x %08x %08x %08x %08x %08x\n", rd(cap), hcs1, rd(cap + 8), rd(cap + 0x10),
	       rd(cap + 0x14), rd(cap + 0x18));
	printf("PROTOCOLS %08x %08x %08x %08x %08x %08x\n", rd(cap + 0x20), rd(cap + 0x24),
	       rd(cap + 0x28), rd(cap + 0x30), rd(cap + 0x34), rd(cap + 0x38));

	wr(op, 1u << 1);
	for (u32 w = 0; w < WAIT_MS && (rd(op) & 2); w++)
		pit_wait(PIT_HZ / 1000);
	printf("RESET usbcmd=%08x usbsts=%08x pagesize=%u\n", rd(op), rd(op + 4), rd(op + 8));
	wr(op + 0x38, 8);
	wr64(op + 0x30, (u64)dcbaa);
	wr64(op + 0x18, (u64)cmd | 1);
	erst[0] = (u32)(u64)evr;
	erst[1] = (u32)((u64)evr >> 32);
	erst[2] = 16;
	mb();
	wr(rt + 0x28, 1);
	wr64(rt + 0x38, (u64)evr);
	wr64(rt + 0x30, (u64)erst);
	wr(op, 1);
	printf("RUN usbsts=%08x\n", rd(op + 4));
	struct trb e = command(0, 23, 0);
	printf("NOOP cc=%u\n", cc_of(e));

	u32 slots[MAX_DEV] = {0}, mps[MAX_DEV] = {0};
	int ndev = 0;
	u32 nports = hcs1 >> 24;
	for (u32 p = 1; p <= nports && ndev < MAX_DEV; p++) {
		u32 v = rd(op + 0x400 + 0x10 * (p - 1));
		if (!(v & 1))
			continue;
		u32 speed = (v >> 10) & 0xf;
		printf("PORT %u portsc=%08x speed=%u\n", p, v, speed);
		slots[ndev] = enumerate(ndev, p, speed, &mps[ndev]);
		if (slots[ndev])
			ndev++;
	}
	for (int d = 0; d < ndev; d++)
		queue_intr(d, slots[d], mps[d]);
	printf("READY %d\n", ndev);
	u32 got = 0;
	while (got < want) {
		e = next_event(WAIT_MS);
		if (!e.c) {
			printf("TIMEOUT\n");
			break;
		}
		if (type_of(e) != 32)
			continue;
		u32 slot = e.c >> 24;
		int d = -1;
		for (int i = 0; i < ndev; i++)
			if (slots[i] == slot)
				d = i;
		if (d < 0)
			continue;
		u32 len = mps[d] - (e.s & 0xffffff);
		struct trb *t = (struct trb *)e.p;
		printf("REPORT %u cc=%u", slot, cc_of(e));
		print_hex("", (const u8 *)t->p, len);
		got++;
		queue_intr(d, slot, mps[d]);
	}
	printf("DONE %u\n", got);
}
