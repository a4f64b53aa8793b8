/* C side of the 64-bit Linux boot protocol entry. */
#include "rt.h"

void rt_start_linux(u64 boot_params);

void rt_start_linux(u64 boot_params)
{
	serial_init();
	rt_rsdp_hint = rd64(boot_params + 0x070); /* acpi_rsdp_addr */
	linux_main(boot_params);
	rt_finish();
}
