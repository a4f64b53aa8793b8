/* Takes NMIs and says so: IDT vector 2 counts them (rt/nmi.c), LINT1 of
 * the local APIC delivers NMI (`nmi.masked`: masked). Prints NMI_READY,
 * then `NMI n` for each NMI as it sees the count move, polling every
 * 10 ms, until `nmi.count=N` (1) were taken or `nmi.wait=MS` (20000)
 * passed; with `nmi.masked` it unmasks LINT1 once a byte arrives on COM2
 * (the test's go: no race with a time window) or `nmi.wait` passed,
 * prints NMI_UNMASKED naming which, and waits as long again. The README's
 * "nmi" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/nmi.h"

static u32 seen;

/* Polls for `ms` ms or until `want` NMIs were taken. */
static void watch(u64 ms, u32 want)
{
	for (u64 t = 0; t < ms && seen < want; t += 10) {
		pit_sleep_ms(10);
		u32 c = nmi_count;
		while (seen < c)
			printf("NMI %u\n", ++seen);
	}
}

#define COM2 0x2f8

/* Polls for `ms` ms or until a byte arrives on COM2, printing NMIs as
 * they come; says whether the byte came. */
static int go(u64 ms, u32 want)
{
	for (u64 t = 0; t < ms; t += 10) {
		if (inb(COM2 + 5) & 1) {
			inb(COM2);
			return 1;
		}
		watch(10, want);
	}
	return 0;
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	int masked = arg_find(cmdline, "nmi.masked") != 0;
	u32 want = (u32)arg_dec(arg_find(cmdline, "nmi.count="), 1);
	u64 wait = arg_dec(arg_find(cmdline, "nmi.wait="), 20000);
	printf("NMI_READY lint1=0x%05x\n", nmi_install(masked));
	if (masked) {
		const char *by = go(wait, want) ? "com2" : "time";
		printf("NMI_UNMASKED lint1=0x%05x count=%u by=%s\n", nmi_lint1(0), nmi_count, by);
		watch(wait, want);
	} else {
		watch(wait, want);
	}
	printf("NMI_END count=%u\n", nmi_count);
}
