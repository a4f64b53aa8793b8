/* Prints the command line exactly as handed over in hvm_start_info. */
#include "rt/rt.h"

void pvh_main(const struct hvm_start_info *si)
{
	const char *c = (const char *)si->cmdline_paddr;
	u64 n = 0;
	if (c)
		while (n < 65536 && c[n])
			n++;
	printf("CMDLINE_ADDR 0x%lx\n", si->cmdline_paddr);
	printf("CMDLINE_LEN %lu\n", n);
	printf("CMDLINE ");
	for (u64 i = 0; i < n; i++)
		printf("%c", c[i]);
	printf("\n");
}
