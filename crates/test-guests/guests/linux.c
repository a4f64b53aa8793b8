/* 64-bit boot protocol guest (ELF64 and, built with -DBZIMAGE, bzImage):
 * reports the CPU state it was entered with and the boot_params fields. */
#include "rt/rt.h"
#include "rt/fnv.h"

/* Offsets in struct boot_params (Documentation/arch/x86/zero-page.rst). */
#define BP_ACPI_RSDP 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_XLOADFLAGS 0x236
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_TABLE 0x2d0

void linux_main(u64 bp)
{
	u64 efer = rdmsr(0xc0000080), cr0, cr4;
	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	printf("LONG_MODE %u\n", (u32)((efer >> 10) & 1)); /* EFER.LMA */
	printf("PAGING %u\n", (u32)(cr0 >> 31));
	printf("PAE %u\n", (u32)((cr4 >> 5) & 1));
	printf("BOOT_CS 0x%lx\n", boot_cs);
	printf("BOOT_DS 0x%lx\n", boot_ds);
	printf("BOOT_SS 0x%lx\n", boot_ss);
	printf("BOOT_IF %u\n", (u32)((boot_rflags >> 9) & 1));
	printf("BOOT_CR3 0x%lx\n", boot_cr3);
	printf("BOOT_PARAMS 0x%lx\n", bp);
	printf("BOOT_FLAG 0x%x\n", rd16(bp + BP_BOOT_FLAG));
	u32 magic = rd32(bp + BP_HEADER);
	printf("HDR_MAGIC 0x%x\n", magic); /* "HdrS" = 0x53726448 */
	printf("HDR_VERSION 0x%x\n", rd16(bp + BP_VERSION));
	printf("TYPE_OF_LOADER 0x%x\n", rd8(bp + BP_TYPE_OF_LOADER));
	printf("LOADFLAGS 0x%x\n", rd8(bp + BP_LOADFLAGS));

	u32 n = rd8(bp + BP_E820_ENTRIES);
	u64 ram = 0;
	printf("E820_ENTRIES %u\n", n);
	for (u32 i = 0; i < n && i < 128; i++) {
		u64 e = bp + BP_E820_TABLE + 20 * i;
		u64 addr = rd64(e), size = rd64(e + 8);
		u32 type = rd32(e + 16);
		printf("E820 0x%lx 0x%lx %u\n", addr, size, type);
		if (type == 1)
			ram += size;
	}
	printf("RAM_BYTES %lu\n", ram);

	u64 cmd = rd32(bp + BP_CMD_LINE_PTR) | (u64)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	printf("CMDLINE_PTR 0x%lx\n", cmd);
	printf("CMDLINE ");
	for (u32 i = 0; cmd && i < 65536 && rd8(cmd + i); i++)
		printf("%c", rd8(cmd + i));
	printf("\n");

	u64 rd = rd32(bp + BP_RAMDISK_IMAGE) | (u64)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	u64 rs = rd32(bp + BP_RAMDISK_SIZE) | (u64)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	printf("RAMDISK_IMAGE 0x%lx\n", rd);
	printf("RAMDISK_SIZE %lu\n", rs);
	if (rd && rs)
		printf("RAMDISK_FNV1A32 0x%08x\n", fnv1a32(rd, rs));
	printf("ACPI_RSDP_ADDR 0x%lx\n", rd64(bp + BP_ACPI_RSDP));
	printf("ACPI_RSDP_FOUND 0x%lx\n", acpi_find_rsdp());

#ifdef BZIMAGE
	/* The loader copies the image's setup header into boot_params: the
	 * image's own fields must survive (values from entry/setup.S). */
	u8 sects = rd8(bp + BP_HDR);
	u16 ver = rd16(bp + BP_VERSION);
	u16 xlf = rd16(bp + BP_XLOADFLAGS);
	printf("HDR_SETUP_SECTS %u\n", sects);
	printf("HDR_XLOADFLAGS 0x%x\n", xlf);
	printf("HDR_CODE32_START 0x%x\n", rd32(bp + BP_CODE32_START));
	int ok = sects == 1 && ver == 0x020c && (xlf & 1) && magic == 0x53726448 &&
		 rd16(bp + BP_BOOT_FLAG) == 0xaa55;
	printf("HDR_CHECK %s\n", ok ? "ok" : "mismatch");
#endif
}
