/* The NMI handler and its IDT (see nmi.h). Every other vector is absent,
 * so any exception still ends in a triple fault, as without an IDT. */
#include "nmi.h"

volatile u32 nmi_count;

/* Counts and returns: iretq restores the flags the increment changes. */
__asm__(".text\n"
	".globl nmi_entry\n"
	"nmi_entry:\n"
	"\tlock incl nmi_count(%rip)\n"
	"\tiretq\n");
extern void nmi_entry(void);

/* 64-bit interrupt gates for vectors 0-2; only 2 is present. */
static struct __attribute__((packed)) {
	u16 off_lo;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off_mid;
	u32 off_hi;
	u32 zero;
} idt[3];

#define SEL_CODE64 0x08
#define LAPIC_SVR 0xf0
#define LAPIC_LVT_LINT1 0x360

static u64 lapic_base(void) { return rdmsr(0x1b) & ~0xfffull; }

u32 nmi_lint1(int masked)
{
	u64 apic = lapic_base();
	wr32(apic + LAPIC_LVT_LINT1, masked ? 0x10400u : 0x400u);
	return rd32(apic + LAPIC_LVT_LINT1);
}

u32 nmi_install(int masked)
{
	u64 h = (u64)nmi_entry;
	idt[2].off_lo = (u16)h;
	idt[2].sel = SEL_CODE64;
	idt[2].type = 0x8e; /* present, DPL 0, interrupt gate */
	idt[2].off_mid = (u16)(h >> 16);
	idt[2].off_hi = (u32)(h >> 32);
	static struct __attribute__((packed)) {
		u16 limit;
		u64 base;
	} idtr;
	idtr.limit = sizeof(idt) - 1;
	idtr.base = (u64)idt;
	__asm__ volatile("lidt %0" : : "m"(idtr));
	/* Software-enable the local APIC: a disabled one keeps LVTs masked. */
	u64 apic = lapic_base();
	wr32(apic + LAPIC_SVR, rd32(apic + LAPIC_SVR) | 0x1ff);
	return nmi_lint1(masked);
}
