//! `pcie-root-port` (1b36:000c): a PCI Express root port, a type 1 bridge
//! whose bus numbers and windows the guest or firmware programs, with one
//! slot behind it.

use crate::caps::{self, PortType};
use crate::config::{ConfigSpace, Ids};
use crate::function::PciFunction;

/// QEMU's generic root port's identity.
pub const ROOT_PORT_IDS: Ids = Ids {
    vendor: 0x1b36,
    device: 0x000c,
    revision: 0,
    class: 0x060400,
    subsystem_vendor: 0,
    subsystem: 0,
};

/// A PCI Express root port.
pub struct RootPort {
    cfg: ConfigSpace,
}

impl RootPort {
    /// Port number `port` (the Link Capabilities' port number), physical
    /// slot `slot` (libvirt's chassis), `occupied` if a device is behind
    /// it.
    pub fn new(port: u8, slot: u16, occupied: bool) -> Self {
        let mut cfg = ConfigSpace::bridge(&ROOT_PORT_IDS, true);
        caps::add_pcie(
            &mut cfg,
            PortType::RootPort {
                port,
                slot,
                occupied,
            },
        );
        // INTA, as QEMU's: the port's own events (PME, AER) would use it.
        cfg.set_interrupt_pin(1);
        RootPort { cfg }
    }
}

impl PciFunction for RootPort {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}
