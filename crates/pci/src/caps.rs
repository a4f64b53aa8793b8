//! The capabilities besides MSI and MSI-X that functions here carry: PCI
//! Express (endpoint or root port) and power management.

use crate::config::ConfigSpace;

/// The PCI Express capability's ID.
pub const PCIE_CAP_ID: u8 = 0x10;
/// Its length (version 2).
pub const PCIE_CAP_LEN: u8 = 0x3c;
/// The power management capability's ID.
pub const PM_CAP_ID: u8 = 0x01;
pub const PM_CAP_LEN: u8 = 8;
/// The vendor-specific capability's ID (virtio-pci's structures).
pub const VENDOR_CAP_ID: u8 = 0x09;

/// What sits behind a PCI Express capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortType {
    /// An endpoint (a device behind a root port).
    Endpoint,
    /// A root port with slot `slot`; `occupied` if a device is behind it.
    RootPort { port: u8, slot: u16, occupied: bool },
    /// A PCI Express-to-PCI bridge (`pcie-pci-bridge`).
    PciBridge,
}

/// The slot registers of a hot-plug capable port (PCI Express base
/// specification 7.5.3.9-11), as QEMU's `pcie-root-port` sets them.
pub mod slot {
    /// Offsets inside the PCI Express capability.
    pub const LINK_STATUS: u16 = 0x12;
    pub const CAPABILITIES: u16 = 0x14;
    pub const CONTROL: u16 = 0x18;
    pub const STATUS: u16 = 0x1a;

    /// Link Status: data link layer link active.
    pub const DLLLA: u16 = 1 << 13;

    /// Slot Capabilities: ABP, PCP, AIP, PIP, HPS, HPC, EIP.
    pub const CAPS: u32 = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | (1 << 17);
    /// Hot-plug surprise and hot-plug capable (`hotplug=off` clears them).
    pub const HOTPLUG_CAPS: u32 = 0x20 | 0x40;

    /// Slot Control: the enables of the events this port signals.
    pub const ABPE: u16 = 1 << 0;
    pub const PDCE: u16 = 1 << 3;
    pub const CCIE: u16 = 1 << 4;
    pub const HPIE: u16 = 1 << 5;
    pub const AIC_OFF: u16 = 0x3 << 6;
    pub const PIC_ON: u16 = 0x1 << 8;
    pub const PIC_OFF: u16 = 0x3 << 8;
    pub const PIC_MASK: u16 = 0x3 << 8;
    /// Power controller control: 1 is off.
    pub const PCC: u16 = 1 << 10;
    /// Electromechanical interlock control (reads 0; a 1 toggles EIS).
    pub const EIC: u16 = 1 << 11;
    /// What a guest may write in Slot Control (QEMU's mask).
    pub const CTL_WRITABLE: u16 = ABPE | PDCE | CCIE | HPIE | 0xc0 | PIC_MASK | PCC | EIC;

    /// Slot Status: the events (same bits as their enables), W1C.
    pub const ABP: u16 = 1 << 0;
    pub const PDC: u16 = 1 << 3;
    pub const CC: u16 = 1 << 4;
    pub const EVENTS: u16 = ABP | PDC | CC;
    /// Presence detect state, electromechanical interlock status.
    pub const PDS: u16 = 1 << 6;
    pub const EIS: u16 = 1 << 7;
}

/// Adds a PCI Express capability (version 2, a x1 link at 2.5 GT/s; a
/// root port's slot hot-plug capable) and returns its offset.
pub fn add_pcie(cfg: &mut ConfigSpace, kind: PortType) -> u16 {
    let o = cfg.add_capability(PCIE_CAP_ID, PCIE_CAP_LEN);
    let (type_bits, slot_implemented) = match kind {
        PortType::Endpoint => (0x0, 0),
        PortType::RootPort { .. } => (0x4, 1 << 8),
        PortType::PciBridge => (0x7, 0),
    };
    cfg.set_u16(o + 2, 0x2 | (type_bits << 4) | slot_implemented);
    // Device Capabilities: 128-byte payloads, role-based error reporting.
    cfg.set_u32(o + 4, 1 << 15);
    // Device Control: error reporting enables, payload and read request
    // sizes, the rest of what Linux programs; Device Status: W1C.
    cfg.set_wmask_u16(o + 8, 0x7fff);
    cfg.set_w1cmask_u16(o + 0xa, 0x000f);
    let port = match kind {
        PortType::RootPort { port, .. } => u32::from(port),
        PortType::Endpoint | PortType::PciBridge => 0,
    };
    // Link Capabilities: 2.5 GT/s, x1, port number; data link layer active
    // reporting on a root port.
    let dll = if slot_implemented != 0 { 1 << 20 } else { 0 };
    cfg.set_u32(o + 0xc, 0x1 | (1 << 4) | dll | (port << 24));
    cfg.set_wmask_u16(o + 0x10, 0x0fc3);
    let active = matches!(kind, PortType::RootPort { occupied: true, .. });
    // Link Status: 2.5 GT/s, x1, and the link up if a device is there.
    cfg.set_u16(o + 0x12, 0x1 | (1 << 4) | (u16::from(active) << 13));
    if let PortType::RootPort { slot, occupied, .. } = kind {
        // Slot Capabilities as QEMU's hot-pluggable root port: attention
        // button, power controller, attention and power indicators,
        // electromechanical interlock, hot-plug surprise and capable, and
        // the physical slot number.
        cfg.set_u32(o + 0x14, slot::CAPS | (u32::from(slot) << 19));
        // Slot Control: indicators off, an empty slot's power off (as
        // QEMU's port at reset); a populated one powered, its power
        // indicator on.
        let ctl = if occupied {
            slot::AIC_OFF | slot::PIC_ON
        } else {
            slot::AIC_OFF | slot::PIC_OFF | slot::PCC
        };
        cfg.set_u16(o + 0x18, ctl);
        cfg.set_wmask_u16(o + 0x18, slot::CTL_WRITABLE);
        // Slot Status: presence detect state; the event bits are W1C.
        cfg.set_u16(o + 0x1a, u16::from(occupied) << 6);
        cfg.set_w1cmask_u16(o + 0x1a, slot::EVENTS);
        // Root Control and Root Status (PME status W1C).
        cfg.set_wmask_u16(o + 0x1c, 0x001f);
        cfg.set_w1cmask_u16(o + 0x22, 0x0001);
    }
    // Device Control 2, Link Capabilities 2 (2.5 GT/s), Link Control 2.
    cfg.set_wmask_u16(o + 0x28, 0x041f);
    cfg.set_u32(o + 0x2c, 1 << 1);
    cfg.set_u16(o + 0x30, 0x1);
    cfg.set_wmask_u16(o + 0x30, 0x000f);
    o
}

/// Adds a version 1 PCI Express endpoint capability (20 bytes: no slot,
/// root or second-generation registers) at offset `at`, as QEMU's
/// `pcie_endpoint_cap_v1_init` lays it out for e1000e (where a version 2
/// capability would not fit before 0x100).
pub fn add_pcie_v1_endpoint_at(cfg: &mut ConfigSpace, at: u16) -> u16 {
    const V1_LEN: u8 = 0x14;
    let o = cfg.add_capability_at(at, PCIE_CAP_ID, V1_LEN);
    cfg.set_u16(o + 2, 0x1);
    // Device Capabilities: role-based error reporting.
    cfg.set_u32(o + 4, 1 << 15);
    cfg.set_wmask_u16(o + 8, 0x7fff);
    cfg.set_w1cmask_u16(o + 0xa, 0x000f);
    // Link Capabilities and Status: 2.5 GT/s, x1.
    cfg.set_u32(o + 0xc, 0x1 | (1 << 4));
    cfg.set_wmask_u16(o + 0x10, 0x0fc3);
    cfg.set_u16(o + 0x12, 0x1 | (1 << 4));
    o
}

/// Adds a power management capability at offset `at` with Capabilities
/// `pmc` (PowerState, PME_En and Data_Select writable, PME_Status W1C, as
/// QEMU's e1000e) and returns its offset.
pub fn add_pm_at(cfg: &mut ConfigSpace, at: u16, pmc: u16) -> u16 {
    let o = cfg.add_capability_at(at, PM_CAP_ID, PM_CAP_LEN);
    cfg.set_u16(o + 2, pmc);
    cfg.set_wmask_u16(o + 4, 0x0003 | 0x0100 | 0x1e00);
    cfg.set_w1cmask_u16(o + 4, 0x8000);
    o
}

/// Adds a power management capability (version 3, D0 and D3hot) and
/// returns its offset.
pub fn add_pm(cfg: &mut ConfigSpace) -> u16 {
    let o = cfg.add_capability(PM_CAP_ID, PM_CAP_LEN);
    cfg.set_u16(o + 2, 0x3);
    // PMCSR: PowerState and PME_En writable, No_Soft_Reset set, PME_Status W1C.
    cfg.set_u16(o + 4, 1 << 3);
    cfg.set_wmask_u16(o + 4, 0x0103);
    cfg.set_w1cmask_u16(o + 4, 0x8000);
    o
}
