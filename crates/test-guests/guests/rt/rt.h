/* Runtime shared by every test guest: 64-bit, freestanding, polling only
 * (no interrupts, no IDT). Guests run emulated at about a million instructions
 * per second, so everything here favours few instructions over generality. */
#ifndef RT_H
#define RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/* ---- port and memory I/O ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u8 rd8(u64 a) { return *(volatile u8 *)a; }
static inline u16 rd16(u64 a) { return *(volatile u16 *)a; }
static inline u32 rd32(u64 a) { return *(volatile u32 *)a; }
static inline u64 rd64(u64 a) { return *(volatile u64 *)a; }
static inline void wr8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void wr32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (u64)hi << 32 | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}

/* ---- string helpers (gcc may also emit calls to these) ---- */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* ---- serial console on COM1 (0x3f8), polled ---- */
void serial_init(void);
void putc_raw(char c);
void puts_raw(const char *s);
/* printf subset: %s %c %d %u %x with optional 0/width and l/ll; '\n' ends a line.
 * Output is serialised by a spinlock so APs and the BSP never interleave. */
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ACPI ---- */
/* Physical address of the RSDP as the loader told us (0: unknown, scan). */
extern u64 rt_rsdp_hint;
u64 acpi_find_rsdp(void);
/* Returns the physical address of the table with this signature (via XSDT,
 * or RSDT for ACPI 1.0), or 0. Prints "ACPI_BAD_CHECKSUM SIG" once per bad table. */
u64 acpi_find_table(const char sig[4]);
/* SLP_TYPa of the \_S5_ package in the DSDT, or -1 if absent. */
int acpi_s5_slp_typ(void);

/* ---- machine control ---- */
/* Prints "POWEROFF ..." then "DONE" and powers off through the FADT;
 * if that fails prints "POWEROFF FAILED" and halts. Never returns. */
void rt_finish(void) __attribute__((noreturn));
void i8042_reset(void);
void halt_forever(void) __attribute__((noreturn));
void triple_fault(void) __attribute__((noreturn));

/* ---- time ---- */
/* Busy-waits for `ticks` ticks of the 1.193182 MHz PIT (channel 0, see
 * hw.c). Returns 0, or -1 if the counter does not move (no PIT). */
int pit_wait(u32 ticks);
#define PIT_HZ 1193182u
int pit_sleep_ms(u32 ms);
u8 cmos_read(u8 reg);

/* ---- boot structures ---- */
struct hvm_start_info {
	u32 magic; /* 0x336ec578 */
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	/* version >= 1 */
	u64 memmap_paddr;
	u32 memmap_entries;
	u32 reserved;
};
#define HVM_START_MAGIC 0x336ec578u
struct hvm_modlist_entry {
	u64 paddr;
	u64 size;
	u64 cmdline_paddr;
	u64 reserved;
};
struct hvm_memmap_table_entry {
	u64 addr;
	u64 size;
	u32 type;
	u32 reserved;
};

/* Each PVH guest defines this; returning from it ends the guest with rt_finish(). */
void pvh_main(const struct hvm_start_info *si);
/* Each 64-bit (ELF or bzImage) guest defines this; bp = struct boot_params. */
void linux_main(u64 bp);
/* Defined by guests that start APs; called on each AP in long mode on its own stack. */
void ap_main(void);

/* Values saved by the 64-bit entry before it switches to the guest's own page tables. */
extern u64 boot_cr3;
extern u64 boot_cs;
extern u64 boot_ds;
extern u64 boot_ss;
extern u64 boot_rflags;

/* Symbols from the entry assembly for starting APs. */
extern const u8 ap_tramp_start[], ap_tramp_end[];
extern volatile u32 ap_ticket;

#endif
