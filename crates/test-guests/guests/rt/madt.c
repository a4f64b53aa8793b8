#include "rt.h"
#include "madt.h"

int madt_cpus(u32 *ids, int max, u64 *lapic)
{
	u64 madt = acpi_find_table("APIC");
	if (!madt)
		return -1;
	if (lapic)
		*lapic = rd32(madt + 36);
	u32 len = rd32(madt + 4);
	int n = 0;
	for (u32 off = 44; off + 2 <= len;) {
		u64 e = madt + off;
		u8 type = rd8(e), elen = rd8(e + 1);
		if (elen < 2)
			break; /* malformed: stop rather than loop */
		u32 id = 0, flags = 0;
		int cpu = 0;
		if (type == 0 && elen >= 8) { /* Processor Local APIC */
			id = rd8(e + 3);
			flags = rd32(e + 4);
			cpu = 1;
		} else if (type == 9 && elen >= 16) { /* Processor Local x2APIC */
			id = rd32(e + 4);
			flags = rd32(e + 8);
			cpu = 1;
		}
		if (cpu && (flags & 1)) { /* Enabled */
			if (n < max)
				ids[n] = id;
			n++;
		}
		off += elen;
	}
	return n;
}
