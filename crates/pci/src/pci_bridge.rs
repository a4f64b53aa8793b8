//! QEMU's conventional PCI bridges: `pci-bridge` (1b36:0001), a PCI-to-PCI
//! bridge for either machine, and `pcie-pci-bridge` (1b36:000e), the PCI
//! Express-to-PCI bridge q35 puts behind a root port. Both are type 1
//! bridges whose bus numbers and windows the guest or firmware programs,
//! with 32 slots behind them (unlike a root port's one), and INTx from
//! behind them swizzled onto the bridge's own pins ([`crate::intx::swizzle`]).
//!
//! What is left off: the Standard Hot-Plug Controller (QEMU's `shpc`
//! capability and its BAR 0). Without it QEMU's `pci-bridge` (`shpc=off`)
//! has the slot ID capability only: no MSI ("MSI is not applicable without
//! SHPC"), no BAR, no interrupt pin, which is exactly what this model has.
//! QEMU's `pcie-pci-bridge` always has SHPC (and AER); here it has its
//! PCI Express (PCI Express-to-PCI bridge), power management and MSI
//! capabilities in QEMU's order, no BAR and no AER. Nothing hot-plugs
//! behind either, so the MSI capability is registers only: it never fires.

use crate::caps::{self, PortType};
use crate::config::{ConfigSpace, Ids};
use crate::function::PciFunction;
use crate::msi::MsiCapability;

/// `pci-bridge`'s identity.
pub const PCI_BRIDGE_IDS: Ids = Ids {
    vendor: 0x1b36,
    device: 0x0001,
    revision: 0,
    class: 0x060400,
    subsystem_vendor: 0,
    subsystem: 0,
};

/// `pcie-pci-bridge`'s identity.
pub const PCIE_PCI_BRIDGE_IDS: Ids = Ids {
    vendor: 0x1b36,
    device: 0x000e,
    revision: 0,
    class: 0x060400,
    subsystem_vendor: 0,
    subsystem: 0,
};

/// The slot identification capability (PCI-to-PCI Bridge Architecture
/// 1.2, 13.4): expansion slots and the chassis number.
pub const SLOTID_CAP_ID: u8 = 0x04;
const SLOTID_CAP_LEN: u8 = 4;
/// Expansion Slot register's First In Chassis bit.
const SLOTID_FIRST_IN_CHASSIS: u8 = 1 << 5;

/// Which of QEMU's two bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeModel {
    /// `pci-bridge,chassis_nr=N`.
    PciBridge { chassis: u8 },
    /// `pcie-pci-bridge`.
    PcieToPci,
}

/// A conventional PCI bridge.
pub struct PciBridge {
    cfg: ConfigSpace,
}

impl PciBridge {
    pub fn new(model: BridgeModel) -> Self {
        let cfg = match model {
            BridgeModel::PciBridge { chassis } => {
                let mut cfg = ConfigSpace::bridge(&PCI_BRIDGE_IDS, false);
                // As QEMU's slotid_cap_init(chassis_nr, offset 0): no
                // expansion slots counted, first in its chassis; the
                // chassis number is writable (the spec makes it so).
                let o = cfg.add_capability(SLOTID_CAP_ID, SLOTID_CAP_LEN);
                cfg.set_u8(o + 2, SLOTID_FIRST_IN_CHASSIS);
                cfg.set_u8(o + 3, chassis);
                cfg.set_wmask_u8(o + 3, 0xff);
                cfg
            }
            BridgeModel::PcieToPci => {
                let mut cfg = ConfigSpace::bridge(&PCIE_PCI_BRIDGE_IDS, true);
                caps::add_pcie(&mut cfg, PortType::PciBridge);
                caps::add_pm(&mut cfg);
                MsiCapability::add(&mut cfg, 1, true);
                // INTA, as QEMU's (for its SHPC): nothing here asserts it.
                cfg.set_interrupt_pin(1);
                cfg
            }
        };
        PciBridge { cfg }
    }
}

impl PciFunction for PciBridge {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeaderType;

    /// The capability list as (offset, ID), head first.
    fn caps(cfg: &ConfigSpace) -> Vec<(u16, u8)> {
        let mut out = Vec::new();
        let mut at = u16::from(cfg.read_u8(0x34));
        while at != 0 && out.len() < 48 {
            out.push((at, cfg.read_u8(at)));
            at = u16::from(cfg.read_u8(at + 1));
        }
        out
    }

    #[test]
    fn pci_bridge_is_qemus_without_shpc() {
        let b = PciBridge::new(BridgeModel::PciBridge { chassis: 3 });
        let c = b.config();
        assert_eq!(c.header(), HeaderType::Bridge);
        assert_eq!((c.read_u16(0), c.read_u16(2)), (0x1b36, 0x0001));
        assert_eq!(c.read_u32(8) >> 8, 0x060400);
        assert_eq!(c.size(), 256, "conventional");
        let list = caps(c);
        assert_eq!(
            list.iter().map(|c| c.1).collect::<Vec<_>>(),
            [SLOTID_CAP_ID]
        );
        let o = list[0].0;
        assert_eq!((c.read_u8(o + 2), c.read_u8(o + 3)), (0x20, 3));
        assert_eq!(c.interrupt_pin(), 0, "no SHPC, no pin");
        assert_eq!(c.bar_count(), 2);
        assert!(c.bar(0).is_none() && c.bar(1).is_none(), "no SHPC BAR");
    }

    #[test]
    fn pcie_pci_bridge_has_express_pm_and_msi() {
        let b = PciBridge::new(BridgeModel::PcieToPci);
        let c = b.config();
        assert_eq!((c.read_u16(0), c.read_u16(2)), (0x1b36, 0x000e));
        assert_eq!(c.size(), 4096);
        let ids: Vec<u8> = caps(c).iter().map(|c| c.1).collect();
        assert_eq!(ids, [0x05, caps::PM_CAP_ID, caps::PCIE_CAP_ID]);
        let pcie = caps(c)[2].0;
        // Device/port type 7: PCI Express to PCI/PCI-X bridge.
        assert_eq!((c.read_u16(pcie + 2) >> 4) & 0xf, 0x7);
        assert_eq!(c.interrupt_pin(), 1, "QEMU's INTA");
    }

    #[test]
    fn the_guest_programs_bus_numbers_and_windows() {
        let mut b = PciBridge::new(BridgeModel::PciBridge { chassis: 1 });
        b.write_config(0x18, &[0, 2, 4, 0]);
        assert_eq!(b.config().bus_numbers(), (2, 4));
        // Memory window 0xc000_0000-0xc00f_ffff, decode on.
        b.write_config(0x20, &0xc000_c000u32.to_le_bytes());
        b.write_config(0x04, &2u16.to_le_bytes());
        assert_eq!(
            b.config().bridge_windows().memory,
            Some((0xc000_0000, 0xc00f_ffff))
        );
        // IDs stay put.
        b.write_config(0, &[0xff; 4]);
        assert_eq!(b.config().read_u16(2), 0x0001);
    }
}
