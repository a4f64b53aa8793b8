/* Prints the fw_cfg files `etc/smbios/smbios-anchor` and
 * `etc/smbios/smbios-tables` as `FILE name size` and then `HEX` lines of 32
 * bytes, read through the legacy selector/data ports, so the same guest
 * dumps what QEMU and rvirt serve for a byte-for-byte comparison. Built as a
 * PVH guest and (-DMBR) as the 64-bit part of fwcfg-disk.img, for a VMM
 * that serves fw_cfg only to firmware boots. */
#include "rt/rt.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_FILE_DIR 0x19

static u32 be32(const u8 *b) { return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3]; }

static void read_bytes(u8 *out, u32 n)
{
	for (u32 i = 0; i < n; i++)
		out[i] = inb(FW_CFG_DATA);
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static void dump(const char *want)
{
	u8 e[64];
	/* No fw_cfg (the data port reads 0xff): nothing to walk. */
	outw(FW_CFG_SEL, 0);
	read_bytes(e, 4);
	if (!(e[0] == 'Q' && e[1] == 'E' && e[2] == 'M' && e[3] == 'U')) {
		printf("FILE %s no fw_cfg\n", want);
		return;
	}
	outw(FW_CFG_SEL, FW_CFG_FILE_DIR);
	read_bytes(e, 4);
	u32 count = be32(e);
	for (u32 i = 0; i < count; i++) {
		read_bytes(e, 64);
		if (!same((const char *)e + 8, want))
			continue;
		u32 size = be32(e);
		u16 sel = (u16)(e[4] << 8 | e[5]);
		printf("FILE %s %u\n", want, size);
		outw(FW_CFG_SEL, sel);
		for (u32 off = 0; off < size; off += 32) {
			printf("HEX");
			for (u32 j = off; j < size && j < off + 32; j++)
				printf(" %02x", inb(FW_CFG_DATA));
			printf("\n");
		}
		return;
	}
	printf("FILE %s absent\n", want);
}

static void dump_all(void)
{
	dump("etc/smbios/smbios-anchor");
	dump("etc/smbios/smbios-tables");
	printf("FWCFG DONE\n");
}

#ifdef MBR
void mbr_main(u32 drive);

void mbr_main(u32 drive)
{
	(void)drive;
	serial_init();
	dump_all();
	rt_finish();
}
#else
void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	dump_all();
}
#endif
