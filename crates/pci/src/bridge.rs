//! `pcie-root-port` (1b36:000c): a PCI Express root port, a type 1 bridge
//! whose bus numbers and windows the guest or firmware programs, with one
//! hot-plug capable slot behind it. Its capabilities are QEMU's (bridge
//! subsystem IDs, MSI-X with one vector in BAR 0, PCI Express with the
//! slot registers of native hot-plug).
//!
//! The slot follows PCI Express native hot-plug as QEMU's port does it:
//! a device plugged ([`RootPort::plug`]) sets Presence Detect State and
//! Data Link Layer Link Active and signals Presence Detect Changed with an
//! Attention Button Pressed; an unplug request presses the attention
//! button ([`RootPort::push_attention_button`]); the guest answers by
//! turning the slot's power and power indicator off, and only then is the
//! device taken out ([`RootPort::take_ejected`] tells the segment). Every
//! Slot Control write completes at once (Command Completed). Events reach
//! the guest as the port's MSI-X vector when MSI-X is on, else as INTA, as
//! QEMU's `hotplug_event_notify`: edge on the MSI-X side, a level held
//! while an enabled event is pending on INTx.

use std::io;
use std::sync::Arc;

use rvirt_platform::{InterruptLine, MsiMessage, MsiVectors};

use crate::bar::BarSpec;
use crate::caps::{self, slot, PortType};
use crate::config::{command, overlaps, reg, status, ConfigSpace, Ids};
use crate::function::PciFunction;
use crate::intx::IntxPin;
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

/// Vectors that go nowhere: a port the machine did not wire (tests,
/// fuzzing).
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
    intx: Arc<IntxPin>,
    /// The PCI Express capability's offset.
    exp: u16,
    /// An enabled hot-plug event is pending (QEMU's `hpev_notified`).
    notified: bool,
    /// The guest powered the occupied slot off: what is behind it goes.
    ejected: bool,
}

impl RootPort {
    /// Port number `port` (the Link Capabilities' port number), physical
    /// slot `slot`, `occupied` if a device is behind it at start. Its
    /// vector and pin go nowhere until [`RootPort::wire`].
    pub fn new(port: u8, slot: u16, occupied: bool) -> Self {
        let mut cfg = ConfigSpace::bridge(&ROOT_PORT_IDS, true);
        cfg.add_bar(usize::from(MSIX_BAR), BarSpec::mem32(MSIX_BAR_SIZE));
        let ssvid = cfg.add_capability(SSVID_CAP_ID, 8);
        cfg.set_u16(ssvid + 4, ROOT_PORT_IDS.vendor);
        let msix_cap = MsixCapability::add(&mut cfg, 1, (MSIX_BAR, 0), (MSIX_BAR, 0x800));
        let exp = caps::add_pcie(
            &mut cfg,
            PortType::RootPort {
                port,
                slot,
                occupied,
            },
        );
        // INTA, as QEMU's: hot-plug events without MSI-X use it.
        cfg.set_interrupt_pin(1);
        RootPort {
            cfg,
            msix_cap,
            msix: Msix::new(1, Arc::new(Silent)),
            intx: IntxPin::unconnected(),
            exp,
            notified: false,
            ejected: false,
        }
    }

    /// Sends the port's events through `msi` (its one MSI-X vector) and
    /// `intx` (INTA).
    pub fn wire(mut self, msi: Arc<dyn MsiVectors>, intx: Arc<IntxPin>) -> Self {
        self.msix = Msix::new(1, msi);
        self.intx = intx;
        self
    }

    /// `hotplug=off`: the slot is not hot-plug capable (QEMU's property).
    pub fn set_hotplug(&mut self, on: bool) {
        let at = self.exp + slot::CAPABILITIES;
        let caps = self.cfg.read_u32(at);
        let caps = if on {
            caps | slot::HOTPLUG_CAPS
        } else {
            caps & !slot::HOTPLUG_CAPS
        };
        self.cfg.set_u32(at, caps);
    }

    /// Whether the slot takes devices while the guest runs.
    pub fn hotplug_capable(&self) -> bool {
        self.cfg.read_u32(self.exp + slot::CAPABILITIES) & slot::HOTPLUG_CAPS != 0
    }

    fn slot_control(&self) -> u16 {
        self.cfg.read_u16(self.exp + slot::CONTROL)
    }

    fn slot_status(&self) -> u16 {
        self.cfg.read_u16(self.exp + slot::STATUS)
    }

    fn set_slot_status(&mut self, v: u16) {
        self.cfg.set_u16(self.exp + slot::STATUS, v);
    }

    fn set_link_active(&mut self, on: bool) {
        let at = self.exp + slot::LINK_STATUS;
        let v = self.cfg.read_u16(at);
        let v = if on {
            v | slot::DLLLA
        } else {
            v & !slot::DLLLA
        };
        self.cfg.set_u16(at, v);
    }

    /// Whether a device is present behind the port.
    pub fn occupied(&self) -> bool {
        self.slot_status() & slot::PDS != 0
    }

    /// A device was plugged in behind the port while the guest runs:
    /// presence and link up, and the events QEMU signals for it.
    pub fn plug(&mut self) {
        let st = self.slot_status() | slot::PDS;
        self.set_slot_status(st);
        self.set_link_active(true);
        self.event(slot::PDC | slot::ABP);
    }

    /// An unplug request: the attention button is pressed, and the
    /// guest decides.
    pub fn push_attention_button(&mut self) {
        self.event(slot::ABP);
    }

    /// Whether the guest powered the slot off since the last call, so
    /// that whatever is behind it must be taken out (once).
    pub fn take_ejected(&mut self) -> bool {
        std::mem::take(&mut self.ejected)
    }

    /// Sets event bits in Slot Status and notifies.
    fn event(&mut self, events: u16) {
        let st = self.slot_status();
        if st & events == events {
            return;
        }
        self.set_slot_status(st | events);
        self.notify();
    }

    /// Sends the interrupt when the pending-and-enabled state turns on
    /// (and, on INTx, lowers it when it turns off).
    fn notify(&mut self) {
        let ctl = self.slot_control();
        let now = ctl & slot::HPIE != 0 && self.slot_status() & ctl & slot::EVENTS != 0;
        if now == self.notified {
            return;
        }
        self.notified = now;
        let result = if self.msix.enabled() {
            if now {
                self.msix.trigger(0)
            } else {
                Ok(())
            }
        } else if now {
            self.intx.raise()
        } else {
            self.intx.lower()
        };
        if let Err(error) = result {
            tracing::warn!(%error, "root port: cannot signal a hot-plug event");
        }
    }

    /// A write touched Slot Control or Slot Status: QEMU's
    /// `pcie_cap_slot_write_config`.
    fn slot_written(&mut self, offset: u16, data: &[u8], old_ctl: u16, old_st: u16) {
        let len = data.len();
        let at = self.exp + slot::STATUS;
        if overlaps(offset, len, at, 2) {
            // Guests clear every bit at init, racing with events that
            // came meanwhile: a write of 1 to an event that was not
            // pending clears no event (QEMU's workaround, so no event is
            // lost).
            let mut written = 0u16;
            for (i, b) in data.iter().enumerate() {
                let o = offset + i as u16;
                if o == at || o == at + 1 {
                    written |= u16::from(*b) << (8 * (o - at));
                }
            }
            if written & !old_st & slot::EVENTS != 0 {
                let st = (self.slot_status() & !slot::EVENTS) | (old_st & slot::EVENTS);
                self.set_slot_status(st);
            }
            self.notify();
        }
        if !overlaps(offset, len, self.exp + slot::CONTROL, 2) {
            return;
        }
        let ctl = self.slot_control();
        let mut st = self.slot_status();
        if ctl & slot::EIC != 0 {
            self.cfg.set_u16(self.exp + slot::CONTROL, ctl & !slot::EIC);
            st ^= slot::EIS;
        }
        let off = |c: u16| c & slot::PCC != 0 && c & slot::PIC_MASK == slot::PIC_OFF;
        if st & slot::PDS != 0 && off(ctl) && !off(old_ctl) {
            st = (st & !slot::PDS) | slot::PDC;
            self.set_link_active(false);
            self.ejected = true;
        }
        self.set_slot_status(st);
        self.notify();
        // The command completes at once.
        self.event(slot::CC);
    }
}

impl PciFunction for RootPort {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        self.cfg.read(offset, data);
        if overlaps(offset, data.len(), reg::STATUS, 1) && self.intx.level() {
            data[usize::from(reg::STATUS - offset)] |= status::INTERRUPT as u8;
        }
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        let old_ctl = self.slot_control();
        let old_st = self.slot_status();
        self.cfg.write(offset, data);
        let len = data.len();
        if overlaps(offset, len, reg::COMMAND, 2) {
            let cmd = self.cfg.read_u16(reg::COMMAND);
            self.intx.set_disabled(cmd & command::INTX_DISABLE != 0);
        }
        if self.msix_cap.control_written(offset, len) {
            let (enabled, masked) = self.msix_cap.control(&self.cfg);
            let was = self.msix.enabled();
            self.msix.set_control(enabled, masked);
            if enabled && !was {
                let _ = self.intx.lower();
            }
        }
        if overlaps(offset, len, self.exp + slot::CONTROL, 4) {
            self.slot_written(offset, data, old_ctl, old_st);
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

    fn take_ejected(&mut self) -> bool {
        RootPort::take_ejected(self)
    }

    fn hotplug_port(&mut self) -> Option<&mut RootPort> {
        Some(self)
    }
}

#[cfg(test)]
#[path = "bridge_tests.rs"]
mod tests;
