/* Just enough ACPI to find tables and power off: RSDP -> XSDT/RSDT -> FADT,
 * MADT, DSDT, and the \_S5_ package. Offsets are those of ACPI 6.x. */
#include "rt.h"

u64 rt_rsdp_hint;

static int sum_ok(u64 p, u32 len)
{
	u8 s = 0;
	for (u32 i = 0; i < len; i++)
		s += rd8(p + i);
	return s == 0;
}

static u64 scan_rsdp(u64 from, u64 to)
{
	for (u64 p = from; p + 20 <= to; p += 16)
		if (rd32(p) == 0x20445352 && rd32(p + 4) == 0x20525450 && sum_ok(p, 20))
			return p; /* "RSD PTR " */
	return 0;
}

u64 acpi_find_rsdp(void)
{
	if (rt_rsdp_hint)
		return rt_rsdp_hint;
	/* As Linux does: the first KiB of the EBDA, then the BIOS area. */
	u64 ebda = (u64)rd16(0x40e) << 4;
	u64 p = 0;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		p = scan_rsdp(ebda, ebda + 1024);
	if (!p)
		p = scan_rsdp(0xe0000, 0x100000);
	return p;
}

static int checked(u64 t)
{
	static u32 reported[8];
	static int nreported;
	if (sum_ok(t, rd32(t + 4)))
		return 1;
	u32 sig = rd32(t);
	for (int i = 0; i < nreported; i++)
		if (reported[i] == sig)
			return 0;
	if (nreported < 8)
		reported[nreported++] = sig;
	printf("ACPI_BAD_CHECKSUM %c%c%c%c\n", (char)sig, (char)(sig >> 8), (char)(sig >> 16),
	       (char)(sig >> 24));
	return 0;
}

u64 acpi_find_table(const char sig[4])
{
	u64 rsdp = acpi_find_rsdp();
	if (!rsdp)
		return 0;
	u64 root;
	int wide;
	if (rd8(rsdp + 15) >= 2 && rd64(rsdp + 24)) {
		root = rd64(rsdp + 24);
		wide = 1;
	} else {
		root = rd32(rsdp + 16);
		wide = 0;
	}
	if (!root)
		return 0;
	checked(root);
	u32 len = rd32(root + 4);
	for (u32 off = 36; off + (wide ? 8 : 4) <= len; off += wide ? 8 : 4) {
		u64 t = wide ? rd64(root + off) : rd32(root + off);
		if (t && memcmp((const void *)t, sig, 4) == 0) {
			checked(t);
			return t;
		}
	}
	return 0;
}

/* Reads an AML integer constant at p (ZeroOp, OneOp, OnesOp, Byte/Word/DWordPrefix). */
static int aml_int(u64 p, u32 *v)
{
	switch (rd8(p)) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0xff: *v = 0xffffffff; return 1;
	case 0x0a: *v = rd8(p + 1); return 1;
	case 0x0b: *v = rd16(p + 1); return 1;
	case 0x0c: *v = rd32(p + 1); return 1;
	}
	return 0;
}

int acpi_s5_slp_typ(void)
{
	u64 fadt = acpi_find_table("FACP");
	if (!fadt)
		return -1;
	u64 dsdt = 0;
	if (rd32(fadt + 4) >= 148)
		dsdt = rd64(fadt + 140); /* X_DSDT */
	if (!dsdt)
		dsdt = rd32(fadt + 40);
	if (!dsdt)
		return -1;
	checked(dsdt);
	u32 len = rd32(dsdt + 4);
	for (u32 i = 37; i + 4 + 4 < len; i++) {
		u64 p = dsdt + i;
		if (rd32(p) != 0x5f35535f) /* "_S5_" */
			continue;
		/* NameOp, optionally with a root prefix, then PackageOp. */
		if (!(rd8(p - 1) == 0x08 || (rd8(p - 1) == '\\' && rd8(p - 2) == 0x08)))
			continue;
		p += 4;
		if (rd8(p) != 0x12)
			continue;
		p += 1 + (rd8(p + 1) >> 6) + 1; /* PkgLength: lead byte + extra bytes */
		p += 1;                          /* NumElements */
		u32 v;
		if (aml_int(p, &v))
			return (int)(v & 7);
	}
	return -1;
}

/* Writes a Generic Address Structure register (system memory or I/O space). */
static void gas_write(u64 gas, u32 value)
{
	u8 space = rd8(gas), width = rd8(gas + 1);
	u64 addr = rd64(gas + 4);
	if (space == 1) {
		if (width == 8)
			outb((u16)addr, (u8)value);
		else if (width == 32)
			outl((u16)addr, value);
		else
			outw((u16)addr, (u16)value);
	} else if (space == 0) {
		if (width == 32)
			wr32(addr, value);
		else
			wr8(addr, (u8)value);
	}
}

void rt_finish(void)
{
	u64 fadt = acpi_find_table("FACP");
	int typ = acpi_s5_slp_typ();
	if (!fadt || typ < 0) {
		printf("DONE\nPOWEROFF FAILED no FADT or \\_S5_ (fadt=0x%lx s5=%d)\n", fadt, typ);
		halt_forever();
	}
	u32 flen = rd32(fadt + 4);
	u32 flags = rd32(fadt + 112);
	if ((flags & (1u << 20)) && flen >= 256) {
		/* Hardware-reduced ACPI: SLP_TYP at bits 4:2, SLP_EN is bit 5. */
		u64 gas = fadt + 244;
		u32 value = (u32)(typ << 2) | (1u << 5);
		printf("POWEROFF SLEEP_CONTROL_REG space=%u addr=0x%lx value=0x%x\n", rd8(gas),
		       rd64(gas + 4), value);
		printf("DONE\n");
		if (rd64(gas + 4) && rd8(gas) <= 1)
			gas_write(gas, value);
	} else {
		u32 value = (u32)(typ << 10) | (1u << 13); /* SLP_TYPx | SLP_EN */
		u64 port = 0;
		if (flen >= 184 && rd8(fadt + 172) == 1)
			port = rd64(fadt + 176); /* X_PM1a_CNT_BLK in I/O space */
		if (!port)
			port = rd32(fadt + 64); /* PM1a_CNT_BLK */
		if (!port) {
			printf("DONE\nPOWEROFF FAILED no PM1a_CNT_BLK\n");
			halt_forever();
		}
		printf("POWEROFF PM1A_CNT port=0x%lx value=0x%x\n", port, value);
		printf("DONE\n");
		outw((u16)port, (u16)value);
	}
	/* Give the VMM a moment: the write may complete asynchronously. */
	pit_sleep_ms(100);
	printf("POWEROFF FAILED\n");
	halt_forever();
}
