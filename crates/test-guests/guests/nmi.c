/* Takes NMIs and says so: IDT vector 2 counts them (rt/nmi.c), LINT1 of
 * the local APIC delivers NMI (`nmi.masked`: masked). Prints NMI_READY,
 * then `NMI n` for each NMI as it sees the count move, polling every
 * 10 ms, until `nmi.count=N` (1) were taken or `nmi.wait=MS` (20000)
 * passed; with `nmi.masked`, once `nmi.wait` passed it unmasks LINT1,
 * prints NMI_UNMASKED and waits as long again. The README's "nmi" section
 * lists the output. */
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

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	int masked = arg_find(cmdline, "nmi.masked") != 0;
	u32 want = (u32)arg_dec(arg_find(cmdline, "nmi.count="), 1);
	u64 wait = arg_dec(arg_find(cmdline, "nmi.wait="), 20000);
	printf("NMI_READY lint1=0x%05x\n", nmi_install(masked));
	watch(wait, want);
	if (masked) {
		printf("NMI_UNMASKED lint1=0x%05x count=%u\n", nmi_lint1(0), nmi_count);
		watch(wait, want);
	}
	printf("NMI_END count=%u\n", nmi_count);
}
