//! The Intel MultiProcessor Specification 1.4 table, for guests that look for
//! their CPUs and interrupt routing without ACPI (Linux with `acpi=off`,
//! older or minimal kernels). Placed in the EBDA, where the spec says to
//! search. Written by hand: there is no maintained crate for it, and it is
//! a few fixed-layout records.

use crate::layout::{self, irqs};

const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const IOAPIC_ID: u8 = 0;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
/// Family 6 signature and FPU | APIC feature bits, as firmware reports them.
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = 0x201;

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// Builds the floating pointer and configuration table for guest address
/// `base`, for CPUs with the given APIC IDs (the first is the BSP).
pub fn build(apic_ids: &[u32], base: u64) -> Vec<u8> {
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for (i, &id) in apic_ids.iter().enumerate() {
        // The MP table only holds 8-bit APIC IDs; larger machines need ACPI.
        let Ok(id) = u8::try_from(id) else { continue };
        let flags = CPU_ENABLED | if i == 0 { CPU_BOOTSTRAP } else { 0 };
        entries.extend_from_slice(&[0, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    // Bus 0: ISA.
    entries.extend_from_slice(&[1, 0]);
    entries.extend_from_slice(b"ISA   ");
    // The I/O APIC.
    entries.extend_from_slice(&[2, IOAPIC_ID, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(layout::IOAPIC_START as u32).to_le_bytes());
    count += 2;
    // I/O interrupts: ISA IRQ n on pin n, except the PIT's IRQ 0 on pin 2,
    // and the PIC's ExtINT on pin 0. The SCI is level, active high.
    let int = |kind: u8, flags: u16, irq: u8, pin: u8| {
        let mut e = vec![3, kind];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&[0, irq, IOAPIC_ID, pin]);
        e
    };
    entries.extend(int(3, 0, 0, 0));
    for irq in 0..16u8 {
        if irq == 2 {
            continue;
        }
        let pin = if irq == 0 { 2 } else { irq };
        let flags = if u32::from(irq) == irqs::SCI {
            0x000d
        } else {
            0
        };
        entries.extend(int(0, flags, irq, pin));
        count += 1;
    }
    count += 1;
    // Local interrupts: ExtINT on LINT0, NMI on LINT1, for all local APICs.
    for (kind, lint) in [(3u8, 0u8), (1, 1)] {
        entries.extend_from_slice(&[4, kind, 0, 0, 0, 0, 0xff, lint]);
        count += 1;
    }

    let table_addr = base + 16;
    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(4); // spec revision 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"RVIRT   ");
    table.extend_from_slice(b"KVM MACHINE ");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&(layout::LAPIC_START as u32).to_le_bytes());
    table.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(table_addr as u32).to_le_bytes());
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&table);
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_is_consistent() {
        let b = build(&[0, 1, 2, 3], layout::EBDA_START);
        assert!(b.len() <= 1024, "fits in the EBDA");
        assert_eq!(&b[0..4], b"_MP_");
        assert_eq!(b[0..16].iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        let ptr = u32::from_le_bytes(b[4..8].try_into().unwrap()) as u64;
        let t = &b[(ptr - layout::EBDA_START) as usize..];
        assert_eq!(&t[0..4], b"PCMP");
        let len = u16::from_le_bytes([t[4], t[5]]) as usize;
        assert_eq!(len, t.len());
        assert_eq!(t.iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        // Walk the entries: count matches, four processors, BSP first.
        let count = u16::from_le_bytes([t[34], t[35]]);
        let (mut off, mut n, mut cpus) = (44, 0, vec![]);
        while off < len {
            let size = if t[off] == 0 { 20 } else { 8 };
            if t[off] == 0 {
                cpus.push((t[off + 1], t[off + 3]));
            }
            off += size;
            n += 1;
        }
        assert_eq!(n, count);
        assert_eq!(cpus, vec![(0, 3), (1, 1), (2, 1), (3, 1)]);
    }
}
