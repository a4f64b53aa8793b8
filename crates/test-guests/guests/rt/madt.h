/* Enabled Local APIC / x2APIC entries of the MADT: fills ids[] (up to max),
 * returns how many there are (-1: no MADT); *lapic = Local APIC address. */
int madt_cpus(u32 *ids, int max, u64 *lapic);
