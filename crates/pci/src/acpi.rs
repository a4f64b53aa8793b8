//! The DSDT's description of the PCI root bridge: what Linux (and any ACPI
//! guest) learns the host bridge forwards (`_CRS`: bus numbers, the I/O
//! ranges, the 32- and 64-bit BAR windows the machine's allocator owns) and
//! how each slot's INTx pins reach the IOAPIC (`_PRT`); on q35 also the
//! ECAM window as a motherboard resource, which Linux wants reserved before
//! it uses MMCONFIG.

use std::sync::Weak;

use acpi_tables::aml::{self, AddressSpaceCacheable};
use acpi_tables::{Aml, AmlSink};

use crate::segment::PciSegment;

/// QEMU's default `pci-hole64-size` on `pc` (i440FX: 2 GiB) and `q35`
/// (32 GiB): how far past its start the 64-bit window reaches at least.
pub const PC_HOLE64_SIZE: u64 = 1 << 31;
pub const Q35_HOLE64_SIZE: u64 = 1 << 35;

/// The 64-bit window (inclusive) `_CRS` announces, as QEMU 7.2 computes it
/// (`pci_hole64_fix` on): from the lowest 64-bit BAR or prefetchable window
/// the guest placed above 4 GiB (`used`), or from `floor` (the first GiB
/// boundary above RAM) if none, to the highest such address or `size` past
/// the start rounded up to a GiB, whichever is higher.
pub fn hole64(used: Option<(u64, u64)>, floor: u64, size: u64) -> (u64, u64) {
    const GIB: u64 = 1 << 30;
    let start = used.map_or(floor, |(lo, _)| lo);
    let reach = start.saturating_add(size).next_multiple_of(GIB);
    let end = used.map_or(reach, |(_, hi)| hi.saturating_add(1).max(reach));
    (start, end - 1)
}

/// A [`RootBridge`] whose 64-bit window is read from the segment each time
/// the node is serialized ([`hole64`] over [`PciSegment::used_above_4g`]):
/// the tables firmware reads after it placed the BARs (rvirt-vmm rebuilds
/// them then, as QEMU's `acpi_build_update`) describe where it placed them.
pub struct LiveRootBridge {
    pub bridge: RootBridge,
    pub segment: Weak<PciSegment>,
    /// [`hole64`]'s `floor` and `size`.
    pub floor: u64,
    pub size: u64,
}

impl Aml for LiveRootBridge {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let used = self.segment.upgrade().and_then(|s| s.used_above_4g());
        let bridge = RootBridge {
            mem64: Some(hole64(used, self.floor, self.size)),
            ..self.bridge.clone()
        };
        bridge.to_aml_bytes(sink);
    }
}

/// One `_PRT` entry: pin `pin` (0 = INTA) of every function in root-bus
/// slot `slot` raises GSI `gsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub slot: u8,
    pub pin: u8,
    pub gsi: u32,
}

/// The root bridge `\_SB_.PCI0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootBridge {
    /// PCI Express (q35: PNP0A08, compatible with PNP0A03).
    pub express: bool,
    /// The 32-bit window (inclusive) for BARs.
    pub mem32: (u32, u32),
    /// The 64-bit window (inclusive), if any.
    pub mem64: Option<(u64, u64)>,
    pub routes: Vec<Route>,
    /// The ECAM window (base, length) to reserve.
    pub ecam: Option<(u64, u64)>,
}

impl Aml for RootBridge {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let hid = aml::EISAName::new(if self.express { "PNP0A08" } else { "PNP0A03" });
        let cid = aml::EISAName::new("PNP0A03");
        let hid = aml::Name::new("_HID".into(), &hid);
        let cid = aml::Name::new("_CID".into(), &cid);
        let adr = aml::Name::new("_ADR".into(), &aml::ZERO);
        let seg = aml::Name::new("_SEG".into(), &aml::ZERO);
        let uid = aml::Name::new("_UID".into(), &aml::ZERO);
        let bbn = aml::Name::new("_BBN".into(), &aml::ZERO);

        let buses = aml::AddressSpace::new_bus_number(0u16, 0xffu16);
        let cf8 = aml::IO::new(0xcf8, 0xcf8, 1, 8);
        let io_low = aml::AddressSpace::new_io(0u16, 0xcf7u16, None);
        let io_high = aml::AddressSpace::new_io(0xd00u16, 0xfffeu16, None);
        // The legacy VGA window, which PCI decodes on a PC.
        let vga = aml::AddressSpace::new_memory(
            AddressSpaceCacheable::Cacheable,
            true,
            0xa_0000u32,
            0xb_ffffu32,
            None,
        );
        let mem32 = aml::AddressSpace::new_memory(
            AddressSpaceCacheable::NotCacheable,
            true,
            self.mem32.0,
            self.mem32.1,
            None,
        );
        let mem64 = self.mem64.map(|(lo, hi)| {
            aml::AddressSpace::new_memory(AddressSpaceCacheable::Cacheable, true, lo, hi, None)
        });
        let mut res: Vec<&dyn Aml> = vec![&buses, &cf8, &io_low, &io_high, &vga, &mem32];
        if let Some(m) = &mem64 {
            res.push(m);
        }
        let crs = aml::ResourceTemplate::new(res);
        let crs = aml::Name::new("_CRS".into(), &crs);

        let entries: Vec<(u32, u8, u32)> = self
            .routes
            .iter()
            .map(|r| ((u32::from(r.slot) << 16) | 0xffff, r.pin, r.gsi))
            .collect();
        let packages: Vec<aml::Package> = entries
            .iter()
            .map(|(addr, pin, gsi)| aml::Package::new(vec![addr, pin, &aml::ZERO, gsi]))
            .collect();
        let prt = aml::Package::new(packages.iter().map(|p| p as &dyn Aml).collect());
        let prt = aml::Name::new("_PRT".into(), &prt);

        let mut children: Vec<&dyn Aml> = vec![&hid];
        if self.express {
            children.push(&cid);
        }
        children.extend([&adr as &dyn Aml, &seg, &uid, &bbn, &crs, &prt]);
        aml::Device::new("PCI0".into(), children).to_aml_bytes(sink);

        if let Some((base, len)) = self.ecam {
            let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0C02"));
            let uid = aml::Name::new("_UID".into(), &1u8);
            let window = aml::Memory32Fixed::new(false, base as u32, len as u32);
            let crs = aml::Name::new("_CRS".into(), &aml::ResourceTemplate::new(vec![&window]));
            aml::Device::new("DRAC".into(), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_64_bit_window_is_qemus() {
        const G: u64 = 1 << 30;
        // Nothing placed: from the floor, the hole's size on.
        assert_eq!(hole64(None, 5 * G, PC_HOLE64_SIZE), (5 * G, 7 * G - 1));
        // A BAR at 4 GiB + 16 KiB: from it, to the GiB boundary past the size.
        let bar = (4 * G + 0x4000, 4 * G + 0x7fff);
        assert_eq!(hole64(Some(bar), 5 * G, PC_HOLE64_SIZE), (bar.0, 7 * G - 1));
        assert_eq!(
            hole64(Some(bar), 5 * G, Q35_HOLE64_SIZE),
            (bar.0, 37 * G - 1)
        );
        // Something placed beyond the reach extends it.
        let far = (4 * G, 100 * G - 1);
        assert_eq!(hole64(Some(far), 5 * G, PC_HOLE64_SIZE), far);
    }

    #[test]
    fn the_root_bridge_names_its_windows_and_routes() {
        let rb = RootBridge {
            express: true,
            mem32: (0xc000_0000, 0xfebf_ffff),
            mem64: Some((0x1_0000_0000, 0x10_ffff_ffff)),
            routes: vec![Route {
                slot: 3,
                pin: 1,
                gsi: 21,
            }],
            ecam: Some((0xb000_0000, 0x1000_0000)),
        };
        let mut b = Vec::new();
        rb.to_aml_bytes(&mut b);
        let find = |n: &[u8]| b.windows(n.len()).any(|w| w == n);
        for name in [
            &b"PCI0"[..],
            b"_HID",
            b"_CID",
            b"_SEG",
            b"_BBN",
            b"_CRS",
            b"_PRT",
            b"DRAC",
        ] {
            assert!(find(name), "{}", String::from_utf8_lossy(name));
        }
        // The _PRT entry: Package(4) { 0x3ffff, 1, 0, 21 }.
        assert!(find(&[
            0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x03, 0x00, 0x01, 0x00, 0x0a, 21
        ]));
        // QWordMemory with the 64-bit window's bounds.
        assert!(find(&0x10_ffff_ffffu64.to_le_bytes()));
        // PNP0A08 compressed.
        assert!(find(&[0x0c, 0x41, 0xd0, 0x0a, 0x08]));
    }
}
