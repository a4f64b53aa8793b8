/* The i6300esb watchdog from the bottom: find 8086:25ab on PCI (bus 0
 * and the buses behind its bridges, as on q35 where libvirt puts it
 * behind a pcie-to-pci-bridge), print its registers, program both preloads on the 1 MHz scale (each
 * stage about 96 ms) and enable it. With `wdt.keep=MS` it pings the reload
 * register every 10 ms for MS milliseconds, disables the watchdog and
 * powers off (`WDT_KEPT`); without, it stops pinging and waits up to 3 s
 * (`WDT_ARMED`, then `WDT_SURVIVED` if the VM still runs). A boot that
 * finds the previous-reboot flag set prints it, clears it and powers off.
 * With `wdt.nmi` it takes NMIs (rt/nmi.c) and prints `WDT_NMI n` for each
 * one seen while it waits (the inject-nmi action).
 * Polling only, every wait bounded. The README's "wdt" section lists the
 * output. */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/nmi.h"

#define PRELOAD 100000u /* x 32 ticks of 30 ns: 96 ms */

static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static u32 bdf; /* bus << 8 | device << 3 | function */
static u64 bar;

static void cfg_addr(u16 reg) { outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc)); }
static u32 cfg_r32(u16 reg) { cfg_addr(reg); return inl(0xcfc); }
static void cfg_w32(u16 reg, u32 v) { cfg_addr(reg); outl(0xcfc, v); }
/* The watchdog's own registers answer only to accesses of their width. */
static u16 cfg_r16(u16 reg) { cfg_addr(reg); return inw((u16)(0xcfc + (reg & 2))); }
static void cfg_w16(u16 reg, u16 v) { cfg_addr(reg); outw((u16)(0xcfc + (reg & 2)), v); }
static u8 cfg_r8(u16 reg) { cfg_addr(reg); return inb((u16)(0xcfc + (reg & 3))); }
static void cfg_w8(u16 reg, u8 v) { cfg_addr(reg); outb((u16)(0xcfc + (reg & 3)), v); }

static void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }

static void unlock(void)
{
	wr8(bar + 0xc, 0x80);
	wr8(bar + 0xc, 0x86);
}

/* Walks bus 0 and the buses behind its bridges (functions of
 * multi-function slots included) for the watchdog; leaves `bdf` on it. */
static int find(void)
{
	u8 buses[16] = {0};
	int nbuses = 1;
	for (int i = 0; i < nbuses; i++) {
		for (u32 dev = 0; dev < 32; dev++) {
			for (u32 fn = 0; fn < 8; fn++) {
				bdf = (u32)buses[i] << 8 | dev << 3 | fn;
				u32 id = cfg_r32(0);
				if ((u16)id == 0xffff) {
					if (fn == 0)
						break;
					continue;
				}
				if (id == 0x25ab8086u)
					return 1;
				u8 header = (u8)(cfg_r32(0x0c) >> 16);
				u8 secondary = (u8)(cfg_r32(0x18) >> 8);
				if ((header & 0x7f) == 1 && secondary && nbuses < 16)
					buses[nbuses++] = secondary;
				if (fn == 0 && !(header & 0x80))
					break;
			}
		}
	}
	return 0;
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	int nmi = arg_find(cmdline, "wdt.nmi") != 0;
	if (nmi)
		nmi_install(0);
	if (!find()) {
		printf("WDT none\n");
		return;
	}
	u32 bar0 = cfg_r32(0x10);
	bar = bar0 & ~0xfu;
	printf("WDT class=0x%06x bar0_type=%u pin=%u\n", cfg_r32(0x08) >> 8, bar0 & 0xf,
	       (cfg_r32(0x3c) >> 8) & 0xff);
	cfg_w32(0x04, cfg_r32(0x04) | 0x2);

	u16 prev = rd16(bar + 0xc);
	printf("WDT_PREVIOUS 0x%04x\n", prev);
	if (prev & 0x200) {
		unlock();
		wr16(bar + 0xc, 0x200);
		printf("WDT_PREVIOUS_CLEARED 0x%04x\n", rd16(bar + 0xc));
		return;
	}
	printf("WDT_CONFIG_RESET 0x%04x WDT_LOCK_RESET 0x%02x\n", cfg_r16(0x60), cfg_r8(0x68));
	/* Writes that must change nothing: a preload without the unlock. */
	wr32(bar + 0x0, 5);
	cfg_w16(0x60, 0x04); /* 1 MHz, reboot on timeout */
	unlock();
	wr32(bar + 0x0, PRELOAD);
	unlock();
	wr32(bar + 0x4, PRELOAD);
	cfg_w8(0x68, 0x02); /* enable */
	printf("WDT_CONFIG 0x%04x WDT_LOCK 0x%02x\n", cfg_r16(0x60), cfg_r8(0x68));

	u64 keep = arg_dec(arg_find(cmdline, "wdt.keep="), 0);
	if (keep) {
		for (u64 t = 0; t < keep; t += 10) {
			unlock();
			wr16(bar + 0xc, 0x100);
			pit_sleep_ms(10);
		}
		cfg_w8(0x68, 0x00);
		printf("WDT_KEPT %lu WDT_LOCK 0x%02x\n", keep, cfg_r8(0x68));
		return;
	}
	printf("WDT_ARMED\n");
	u32 seen = 0;
	for (int i = 0; i < 30; i++) {
		pit_sleep_ms(100);
		while (seen < nmi_count)
			printf("WDT_NMI %u\n", ++seen);
	}
	printf("WDT_SURVIVED WDT_LOCK 0x%02x\n", cfg_r8(0x68));
}
