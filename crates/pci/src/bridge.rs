//! `pcie-root-port` (1b36:000c): a PCI Express root port, a type 1 bridge
//! whose bus numbers and windows the guest or firmware programs, with one
//! slot behind it. Its capabilities are QEMU's (bridge subsystem IDs,
//! MSI-X with one vector in BAR 0, PCI Express), but it has no events to
//! signal: nothing hot-plugs and no errors are reported, so its vector is
//! programmable and never fires.

use std::io;
use std::sync::Arc;

use rvirt_platform::{MsiMessage, MsiVectors};

use crate::bar::BarSpec;
use crate::caps::{self, PortType};
use crate::config::{ConfigSpace, Ids};
use crate::function::PciFunction;
use crate::msix::{Msix, MsixCapability};

/// QEMU's generic root port's identity.
pub const ROOT_PORT_IDS: Ids = Ids {
    vendor: 0x1b36,
    device: 0x000c,
    revision: 0,
    class: 0x060400,
    subsystem_vendor: 0,
    subsystem: 0,
};

/// The BAR of the port's MSI-X table (at 0) and PBA (at 0x800).
pub const MSIX_BAR: u8 = 0;
pub const MSIX_BAR_SIZE: u64 = 0x1000;
/// The bridge subsystem vendor ID capability.
pub const SSVID_CAP_ID: u8 = 0x0d;

/// Vectors that go nowhere: the port signals nothing.
struct Silent;

impl MsiVectors for Silent {
    fn count(&self) -> u16 {
        1
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> io::Result<()> {
        Ok(())
    }
}

/// A PCI Express root port.
pub struct RootPort {
    cfg: ConfigSpace,
    msix_cap: MsixCapability,
    msix: Msix,
}

impl RootPort {
    /// Port number `port` (the Link Capabilities' port number), physical
    /// slot `slot`, `occupied` if a device is behind it.
    pub fn new(port: u8, slot: u16, occupied: bool) -> Self {
        let mut cfg = ConfigSpace::bridge(&ROOT_PORT_IDS, true);
        cfg.add_bar(usize::from(MSIX_BAR), BarSpec::mem32(MSIX_BAR_SIZE));
        let ssvid = cfg.add_capability(SSVID_CAP_ID, 8);
        cfg.set_u16(ssvid + 4, ROOT_PORT_IDS.vendor);
        let msix_cap = MsixCapability::add(&mut cfg, 1, (MSIX_BAR, 0), (MSIX_BAR, 0x800));
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
        RootPort {
            cfg,
            msix_cap,
            msix: Msix::new(1, Arc::new(Silent)),
        }
    }
}

impl PciFunction for RootPort {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        if self.msix_cap.control_written(offset, data.len()) {
            let (enabled, masked) = self.msix_cap.control(&self.cfg);
            self.msix.set_control(enabled, masked);
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        if let Some(o) = self.msix_cap.in_table(bar, offset) {
            self.msix.read_table(o, data);
        } else if let Some(o) = self.msix_cap.in_pba(bar, offset) {
            self.msix.read_pba(o, data);
        } else {
            data.fill(0);
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        if let Some(o) = self.msix_cap.in_table(bar, offset) {
            self.msix.write_table(o, data);
        }
    }
}
