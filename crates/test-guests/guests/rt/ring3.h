/* Ring 3 for the benchmark guests (see ring3.c). */
#pragma once

/* Marks the identity map user-accessible, loads a GDT with ring-3
 * segments and returns in ring 3 with IOPL 3 (port I/O stays allowed) and
 * IF 0. There is no TSS: nothing may trap back to ring 0 afterwards. */
void to_ring3(void);
