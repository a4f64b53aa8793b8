//! Placement of what devices need from the machine: interrupt lines (GSIs),
//! MMIO ranges (platform devices in the 32-bit hole, 32-bit PCI BARs below
//! them, 64-bit BARs above RAM) and I/O port ranges, on rust-vmm's
//! vm-allocator.
//!
//! The legacy PC's fixed assignments are reserved up front: its ISA IRQs
//! ([`irqs::LEGACY`]; a legacy device claims its line with
//! [`SystemAllocator::legacy_irq`]) and the ports of the devices placed by
//! the PC's design ([`SystemAllocator::reserve_pio`]). What is left is
//! handed out first fit, so the same configuration always gets the same
//! layout.

use vm_allocator::{AddressAllocator, AllocPolicy, IdAllocator, RangeInclusive};

use crate::layout::{self, irqs, RamLayout};

/// The highest GSI handed out for MSI routes. KVM accepts up to 4096
/// routes; a thousand vectors are more than any machine here needs.
pub const MAX_MSI_GSI: u32 = 1023;

/// Why a resource cannot be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// Every resource of this kind is taken.
    #[error("no {0} left")]
    Exhausted(&'static str),
    /// A legacy device asked for a line that is not a legacy ISA IRQ.
    #[error("IRQ {0} is not a legacy ISA line")]
    NotLegacy(u32),
    /// The range is taken or outside the window.
    #[error("{what} {base:#x}+{len:#x} is taken or outside its window")]
    Unavailable {
        what: &'static str,
        base: u64,
        len: u64,
    },
    /// A free of something that was not allocated.
    #[error("{what} {0:#x} was not allocated", what = .1)]
    NotAllocated(u64, &'static str),
}

/// A range handed out by the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub len: u64,
}

impl From<RangeInclusive> for Range {
    fn from(r: RangeInclusive) -> Self {
        Range {
            base: r.start(),
            len: r.len(),
        }
    }
}

/// The machine's allocator of GSIs and address ranges.
pub struct SystemAllocator {
    /// IOAPIC pins not used by a legacy device.
    gsis: IdAllocator,
    /// GSIs above the IOAPIC's pins, for MSI routes.
    msi_gsis: IdAllocator,
    platform_mmio: AddressAllocator,
    pci_mmio32: AddressAllocator,
    mmio64: AddressAllocator,
    pio: AddressAllocator,
    /// The ports reserved at fixed places. vm-allocator 0.1's `ExactMatch`
    /// does not check that the range it is given is free (it splits an
    /// allocated node as if it were), so fixed reservations are checked
    /// against this list first.
    fixed_pio: Vec<Range>,
}

/// The first port PCI I/O BARs may use; below it is the ISA range.
const PCI_PIO_START: u64 = 0x1000;

fn exhausted(what: &'static str) -> impl FnOnce(vm_allocator::Error) -> AllocError {
    move |_| AllocError::Exhausted(what)
}

impl SystemAllocator {
    /// The allocator for a machine with `ram`.
    pub fn new(ram: &RamLayout) -> Self {
        // IdAllocator cannot reserve a given ID, but it hands out freed IDs
        // (smallest first) before new ones: take every pin, then give back
        // those no legacy device owns.
        let mut gsis =
            IdAllocator::new(0, irqs::IOAPIC_PINS - 1).expect("the IOAPIC pin range is valid");
        for _ in 0..irqs::IOAPIC_PINS {
            gsis.allocate_id().expect("the IOAPIC pins are all free");
        }
        for pin in (0..irqs::IOAPIC_PINS).filter(|p| !irqs::LEGACY.contains(p)) {
            gsis.free_id(pin).expect("the pin was just allocated");
        }
        let window = |start: u64, end: u64| {
            AddressAllocator::new(start, end - start).expect("the layout's windows are valid")
        };
        let mmio64 = ram.mmio64_start();
        SystemAllocator {
            gsis,
            msi_gsis: IdAllocator::new(irqs::IOAPIC_PINS, MAX_MSI_GSI)
                .expect("the MSI GSI range is valid"),
            platform_mmio: window(layout::PLATFORM_MMIO_START, layout::PLATFORM_MMIO_END),
            pci_mmio32: window(layout::PCI_MMIO32_START, layout::PCI_MMIO32_END),
            mmio64: window(mmio64, mmio64 + layout::MMIO64_SIZE),
            pio: window(0, 0x1_0000),
            fixed_pio: Vec::new(),
        }
    }

    /// Checks that `irq` is one of the PC's fixed ISA lines, which legacy
    /// devices share as on a PC (COM1 and COM3 on IRQ 4), and returns it.
    pub fn legacy_irq(&self, irq: u32) -> Result<u32, AllocError> {
        irqs::LEGACY
            .contains(&irq)
            .then_some(irq)
            .ok_or(AllocError::NotLegacy(irq))
    }

    /// An IOAPIC pin of its own for a device (edge or level).
    pub fn allocate_gsi(&mut self) -> Result<u32, AllocError> {
        self.gsis.allocate_id().map_err(exhausted("IOAPIC pin"))
    }

    /// Takes the IOAPIC pins `first..first + count` out of what
    /// [`SystemAllocator::allocate_gsi`] hands out (PCI INTx's PIRQ pins,
    /// 16-23, which the DSDT's `_PRT` names). Fails if one is taken.
    pub fn reserve_gsis(&mut self, first: u32, count: u32) -> Result<(), AllocError> {
        let wanted = first..first + count;
        // IdAllocator cannot take a given ID: take them all, give back the
        // rest.
        let mut got = Vec::new();
        while let Ok(g) = self.gsis.allocate_id() {
            got.push(g);
        }
        let missing = wanted.clone().find(|g| !got.contains(g));
        for g in got
            .into_iter()
            .filter(|g| missing.is_some() || !wanted.contains(g))
        {
            self.gsis.free_id(g).expect("the pin was just allocated");
        }
        match missing {
            Some(g) => Err(AllocError::Unavailable {
                what: "IOAPIC pin",
                base: g.into(),
                len: 1,
            }),
            None => Ok(()),
        }
    }

    /// The IOAPIC pins no one has, in order (the ISA IRQs a PIRQ may be
    /// routed to without sharing a legacy device's line are those below
    /// 16).
    pub fn free_gsis(&mut self) -> Vec<u32> {
        let mut got = Vec::new();
        while let Ok(g) = self.gsis.allocate_id() {
            got.push(g);
        }
        for &g in &got {
            self.gsis.free_id(g).expect("the pin was just allocated");
        }
        got
    }

    /// Gives an IOAPIC pin back.
    pub fn free_gsi(&mut self, gsi: u32) -> Result<(), AllocError> {
        if irqs::LEGACY.contains(&gsi) {
            return Err(AllocError::NotAllocated(gsi.into(), "GSI"));
        }
        self.gsis
            .free_id(gsi)
            .map(drop)
            .map_err(|_| AllocError::NotAllocated(gsi.into(), "GSI"))
    }

    /// A GSI for one MSI route.
    pub fn allocate_msi_gsi(&mut self) -> Result<u32, AllocError> {
        self.msi_gsis.allocate_id().map_err(exhausted("MSI GSI"))
    }

    /// Gives an MSI GSI back.
    pub fn free_msi_gsi(&mut self, gsi: u32) -> Result<(), AllocError> {
        self.msi_gsis
            .free_id(gsi)
            .map(drop)
            .map_err(|_| AllocError::NotAllocated(gsi.into(), "MSI GSI"))
    }

    /// `len` bytes of platform MMIO (a virtio-mmio slot), aligned to `align`.
    pub fn allocate_platform_mmio(&mut self, len: u64, align: u64) -> Result<Range, AllocError> {
        allocate(&mut self.platform_mmio, len, align, "platform MMIO")
    }

    /// A 32-bit PCI BAR's range.
    pub fn allocate_mmio32(&mut self, len: u64, align: u64) -> Result<Range, AllocError> {
        allocate(&mut self.pci_mmio32, len, align, "32-bit MMIO")
    }

    /// A 64-bit PCI BAR's range, above RAM.
    pub fn allocate_mmio64(&mut self, len: u64, align: u64) -> Result<Range, AllocError> {
        allocate(&mut self.mmio64, len, align, "64-bit MMIO")
    }

    /// A PCI I/O BAR's ports, above the ISA range.
    pub fn allocate_pio(&mut self, len: u64, align: u64) -> Result<Range, AllocError> {
        let r = self
            .pio
            .allocate(len, align, AllocPolicy::LastMatch)
            .map_err(exhausted("I/O ports"))?;
        if r.start() < PCI_PIO_START {
            let _ = self.pio.free(&r);
            return Err(AllocError::Exhausted("I/O ports"));
        }
        Ok(r.into())
    }

    /// Claims the ports `[base, base + len)` for a device the PC's design
    /// places there (COM1 at 0x3f8, the i8042 at 0x60...).
    pub fn reserve_pio(&mut self, base: u16, len: u16) -> Result<Range, AllocError> {
        let unavailable = AllocError::Unavailable {
            what: "ports",
            base: base.into(),
            len: len.into(),
        };
        let (start, end) = (u64::from(base), u64::from(base) + u64::from(len));
        if self
            .fixed_pio
            .iter()
            .any(|r| start < r.base + r.len && r.base < end)
        {
            return Err(unavailable);
        }
        let range = self
            .pio
            .allocate(len.into(), 1, AllocPolicy::ExactMatch(base.into()))
            .map(Range::from)
            .map_err(|_| unavailable)?;
        self.fixed_pio.push(range);
        Ok(range)
    }

    /// Gives back a range from any of the windows (a BAR that moved).
    pub fn free(&mut self, range: Range) -> Result<(), AllocError> {
        let inclusive = RangeInclusive::new(range.base, range.base + range.len.max(1) - 1)
            .map_err(|_| AllocError::NotAllocated(range.base, "range"))?;
        for window in [
            &mut self.platform_mmio,
            &mut self.pci_mmio32,
            &mut self.mmio64,
            &mut self.pio,
        ] {
            if window.base() <= range.base && range.base <= window.end() {
                return window
                    .free(&inclusive)
                    .map_err(|_| AllocError::NotAllocated(range.base, "range"));
            }
        }
        Err(AllocError::NotAllocated(range.base, "range"))
    }
}

fn allocate(
    window: &mut AddressAllocator,
    len: u64,
    align: u64,
    what: &'static str,
) -> Result<Range, AllocError> {
    window
        .allocate(len, align, AllocPolicy::FirstMatch)
        .map(Range::from)
        .map_err(exhausted(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> SystemAllocator {
        SystemAllocator::new(&RamLayout::new(5000 << 20))
    }

    #[test]
    fn gsis_skip_the_legacy_lines_in_order() {
        let mut a = alloc();
        let got: Vec<u32> = (0..16).map(|_| a.allocate_gsi().unwrap()).collect();
        assert_eq!(
            got,
            [5, 6, 7, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]
        );
        assert_eq!(a.allocate_gsi(), Err(AllocError::Exhausted("IOAPIC pin")));
        a.free_gsi(10).unwrap();
        assert_eq!(a.allocate_gsi(), Ok(10));
        assert!(a.free_gsi(4).is_err(), "a legacy line is never freed");
        assert_eq!(a.legacy_irq(4), Ok(4));
        assert_eq!(a.legacy_irq(5), Err(AllocError::NotLegacy(5)));
    }

    #[test]
    fn pirq_pins_are_reserved_whole() {
        let mut a = alloc();
        a.reserve_gsis(16, 8).unwrap();
        assert_eq!(a.free_gsis(), [5, 6, 7, 10, 11, 13, 14, 15]);
        let got: Vec<u32> = (0..8).map(|_| a.allocate_gsi().unwrap()).collect();
        assert_eq!(got, [5, 6, 7, 10, 11, 13, 14, 15]);
        assert!(a.allocate_gsi().is_err());
        let mut b = alloc();
        b.allocate_gsi().unwrap();
        assert!(b.reserve_gsis(4, 2).is_err(), "4 is a legacy line");
        assert_eq!(
            b.free_gsis().len(),
            15,
            "a failed reservation takes nothing"
        );
    }

    #[test]
    fn msi_gsis_start_above_the_ioapic() {
        let mut a = alloc();
        assert_eq!(a.allocate_msi_gsi(), Ok(24));
        assert_eq!(a.allocate_msi_gsi(), Ok(25));
        a.free_msi_gsi(24).unwrap();
        assert_eq!(a.allocate_msi_gsi(), Ok(24));
        assert!(a.free_msi_gsi(999).is_err());
    }

    #[test]
    fn windows_hand_out_disjoint_aligned_ranges() {
        let mut a = alloc();
        let slot = |a: &mut SystemAllocator| a.allocate_platform_mmio(0x1000, 0x1000).unwrap();
        assert_eq!(slot(&mut a).base, layout::VIRTIO_MMIO_START);
        assert_eq!(slot(&mut a).base, layout::VIRTIO_MMIO_START + 0x1000);
        let bar = a.allocate_mmio32(0x4000, 0x4000).unwrap();
        assert!(
            bar.base >= layout::PCI_MMIO32_START && bar.base + bar.len <= layout::PCI_MMIO32_END
        );
        assert!(bar.base.is_multiple_of(0x4000));
        let big = a.allocate_mmio64(1 << 30, 1 << 30).unwrap();
        // 5000 MiB: 3 GiB low, the rest from 4 GiB; the window starts at the
        // next GiB above.
        assert_eq!(big.base, 6 << 30);
        a.free(big).unwrap();
        assert_eq!(a.allocate_mmio64(1 << 30, 1 << 30).unwrap(), big);
        assert!(a
            .free(Range {
                base: 0x1234,
                len: 1
            })
            .is_err());
    }

    #[test]
    fn legacy_ports_are_reserved_once() {
        let mut a = alloc();
        a.reserve_pio(0x3f8, 8).unwrap();
        assert!(a.reserve_pio(0x3fc, 1).is_err(), "overlaps COM1");
        a.reserve_pio(0x60, 5).unwrap();
        let io = a.allocate_pio(0x20, 0x20).unwrap();
        assert!(io.base >= 0x1000 && io.base.is_multiple_of(0x20));
    }
}
