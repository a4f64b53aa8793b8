/* Taking NMIs: an IDT whose vector 2 counts them, LINT1 of the local APIC
 * delivering NMI (as firmware and Linux set it; QEMU injects an external
 * NMI only through an unmasked LINT1 in NMI mode). */
#pragma once

#include "rt.h"

/* NMIs taken so far; the handler only counts (it must not take the
 * console's lock, which the code it interrupted may hold). */
extern volatile u32 nmi_count;

/* Loads the IDT and sets LINT1 to NMI, masked if `masked`. Returns LINT1
 * as the local APIC reads it back. */
u32 nmi_install(int masked);

/* Sets LINT1 to NMI, masked or not; returns it as read back. */
u32 nmi_lint1(int masked);
