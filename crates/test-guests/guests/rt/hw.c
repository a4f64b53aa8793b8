/* Legacy PC hardware: i8042 reset, PIT channel 2 delays, CMOS. */
#include "rt.h"

void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void i8042_reset(void)
{
	/* Wait (bounded) for the input buffer to drain, then pulse reset. */
	for (int i = 0; i < 10000 && (inb(0x64) & 0x02); i++)
		cpu_relax();
	outb(0x64, 0xfe);
}

void triple_fault(void)
{
	/* An empty IDT turns the next exception into a triple fault. */
	static const struct __attribute__((packed)) {
		u16 limit;
		u64 base;
	} null_idt = {0, 0};
	__asm__ volatile("lidt %0; int3" : : "m"(null_idt));
	halt_forever();
}

/* Channel 0 as a free-running rate generator read through counter latches.
 * Not channel 2 and port 0x61 as Linux calibrates: KVM's in-kernel PIT only
 * decodes port 0x61 with KVM_PIT_SPEAKER_DUMMY, and QEMU microvm has no
 * port 0x61, while channel 0 is there on every PC-like machine. Interrupts
 * stay disabled, so the IRQ0 this raises is never taken. */
static int pit_programmed;

static u16 pit_read(void)
{
	outb(0x43, 0x00); /* latch channel 0 */
	u8 lo = inb(0x40);
	u8 hi = inb(0x40);
	return (u16)(lo | hi << 8);
}

int pit_wait(u32 ticks)
{
	if (!pit_programmed) {
		outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
		outb(0x40, 0);
		outb(0x40, 0); /* reload 65536 */
		pit_programmed = 1;
	}
	u16 prev = pit_read();
	u32 stuck = 0;
	for (u64 elapsed = 0; elapsed < ticks;) {
		u16 cur = pit_read();
		u16 d = (u16)(prev - cur); /* counts down, wraps at 65536 */
		if (d == 0 && ++stuck > 100000)
			return -1;
		if (d)
			stuck = 0;
		elapsed += d;
		prev = cur;
	}
	return 0;
}

int pit_sleep_ms(u32 ms) { return pit_wait(ms * (PIT_HZ / 1000)); }

u8 cmos_read(u8 reg)
{
	outb(0x70, reg); /* NMI stays enabled (bit 7 clear), as Linux's CMOS_READ */
	return inb(0x71);
}
