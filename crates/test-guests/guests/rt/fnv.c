#include "rt.h"
#include "fnv.h"

u32 fnv1a32(u64 addr, u64 len)
{
	u32 h = 0x811c9dc5u; /* FNV-1a 32-bit offset basis */
	for (u64 i = 0; i < len; i++) {
		h ^= rd8(addr + i);
		h *= 0x01000193u; /* FNV prime */
	}
	return h;
}
