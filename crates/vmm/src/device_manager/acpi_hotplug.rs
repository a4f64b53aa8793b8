//! pc's ACPI PCI hot-plug (`rvirt_pci::pcihp`, QEMU 7.2's PIIX4 way) on a
//! booted machine: the register block at 0xae00 and the GPE0 block at
//! 0xafe0 on the port bus, GPE0 in the FADT, and the DSDT's slot devices
//! after the root bridge's node.
//!
//! A hot-plug event sets GPE0 bit 1 in the ACPI PM device (whose SCI the
//! power button shares). The guest's ejection of a slot (`_EJ0`, a write
//! of `PCI_EJ`) is logged: taking the slot's functions out is QMP
//! `device_del`'s path (PCI Express hot-plug's), not wired to pc yet.

use std::sync::{Arc, Mutex, Weak};

use rvirt_bus::Bus;
use rvirt_devices::acpi_pm::{Gpe0, GPE0_BASE, GPE0_LEN};
use rvirt_devices::AcpiPm;
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::SystemAllocator;
use rvirt_pci::pcihp::{self, HotplugAml, HotplugSignal, PciHotplug};
use rvirt_vmm_config::{Chipset, PciAddr, PciBus, VmConfig};

use crate::VmmError;

/// The slots of pc's chipset functions (host bridge, PIIX3 and its PM),
/// which never hot-plug.
const CHIPSET_SLOTS: u32 = 0b11;

/// The root-bus slots that do not hot-plug, as QEMU 7.2's
/// `acpi_pcihp_pc_no_hotplug` finds them: the chipset's, and those of the
/// bridges and AHCI controllers given on the command line.
fn fixed_slots(cfg: &VmConfig) -> u32 {
    let root = |a: &PciAddr| (a.bus == PciBus::Root).then_some(1u32 << a.slot);
    let bridges = cfg.root_ports.iter().filter_map(|p| root(&p.addr));
    let ahci = cfg.ahci.iter().filter_map(|c| root(&c.addr));
    bridges.chain(ahci).fold(CHIPSET_SLOTS, |m, b| m | b)
}

/// Whether `cfg`'s machine has it: pc with ACPI.
pub(crate) fn wanted(cfg: &VmConfig) -> bool {
    cfg.chipset == Chipset::I440fx && cfg.acpi
}

/// Takes both blocks' ports from `alloc`, so no I/O BAR lands there.
pub(crate) fn reserve(alloc: &mut SystemAllocator) -> Result<(), VmmError> {
    for (base, len) in [(pcihp::BASE, pcihp::LEN), (GPE0_BASE, GPE0_LEN)] {
        alloc.reserve_pio(base, len).map_err(VmmError::Placement)?;
    }
    Ok(())
}

/// Where the block's news goes on this boot.
struct Signal {
    pm: Weak<Mutex<AcpiPm>>,
}

impl HotplugSignal for Signal {
    fn raise_gpe(&self) {
        if let Some(pm) = self.pm.upgrade() {
            pm.lock()
                .unwrap_or_else(|p| p.into_inner())
                .raise_gpe(pcihp::GPE_BIT);
        }
    }

    fn eject(&self, slot: u8) {
        tracing::warn!(
            slot,
            "the guest ejected a PCI slot: pc hot-unplug is not wired yet"
        );
    }
}

/// Puts the blocks on `pio` and their ACPI description in `platform` (after
/// the root bridge's node); returns the register block, for plugging.
pub(crate) fn attach(
    cfg: &VmConfig,
    pio: &Bus,
    pm: &Arc<Mutex<AcpiPm>>,
    platform: &mut AcpiConfig,
) -> Arc<Mutex<PciHotplug>> {
    let signal = Arc::new(Signal {
        pm: Arc::downgrade(pm),
    });
    let fixed = fixed_slots(cfg);
    let block = Arc::new(Mutex::new(PciHotplug::new(fixed, signal)));
    // Both ranges were reserved in the allocator: an overlap is a bug in
    // the layout.
    pio.insert(block.clone(), u64::from(pcihp::BASE), u64::from(pcihp::LEN))
        .expect("the ACPI PCI hot-plug ports overlap");
    pio.insert(
        Arc::new(Mutex::new(Gpe0(pm.clone()))),
        u64::from(GPE0_BASE),
        u64::from(GPE0_LEN),
    )
    .expect("the GPE0 ports overlap");
    platform.gpe0 = Some((GPE0_BASE, GPE0_LEN as u8));
    platform.devices.push(Box::new(HotplugAml {
        removable: !fixed,
        fixed,
    }));
    block
}
