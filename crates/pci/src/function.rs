//! What a PCI function is to the bus it sits on, and the adapters that put
//! its BARs and chipset windows on the machine's port and MMIO buses.

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_bus::{Bus, BusDevice, SharedDevice};

use crate::config::ConfigSpace;

/// One function of a PCI device (or of the chipset).
///
/// Configuration accesses arrive with the offset inside the function's
/// configuration space (already decoded from CF8/CFC or ECAM); BAR
/// accesses with the BAR's index and the offset inside it. Where the BARs
/// decode is read from [`PciFunction::config`] after every configuration
/// write, so a function only keeps its registers right.
pub trait PciFunction: Send {
    /// The configuration space.
    fn config(&self) -> &ConfigSpace;

    /// The configuration space, to set up before the guest runs (BARs
    /// placed for a direct kernel boot, COMMAND's decode bits).
    fn config_mut(&mut self) -> &mut ConfigSpace;

    /// A configuration read of `data.len()` (1, 2 or 4) bytes.
    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        self.config().read(offset, data);
    }

    /// A configuration write; functions with registers that act (MSI-X
    /// control, PIRQ routes, PCIEXBAR) hook here.
    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.config_mut().write(offset, data);
    }

    /// A read of BAR `bar` at `offset`.
    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        tracing::debug!(bar, offset, "read of a BAR with nothing behind it");
        data.fill(0xff);
    }

    /// A write to BAR `bar` at `offset`.
    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        tracing::debug!(
            bar,
            offset,
            len = data.len(),
            "write to a BAR with nothing behind it"
        );
    }

    /// Whether the guest asked (since the last call) for what is behind
    /// this function to be taken out: a hot-plug port whose slot it
    /// powered off. The segment asks after every configuration write.
    fn take_ejected(&mut self) -> bool {
        false
    }

    /// The function as a hot-plug capable root port, if it is one.
    fn hotplug_port(&mut self) -> Option<&mut crate::bridge::RootPort> {
        None
    }
}

/// A function as the bus topology and its BAR ranges share it.
pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

/// Locks a function, recovering from a poisoned mutex as the bus does: a
/// function that panicked mid-access is still the best state there is.
pub fn lock<'a>(
    f: &'a Mutex<dyn PciFunction + 'static>,
) -> MutexGuard<'a, dyn PciFunction + 'static> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// One BAR of a function, as a device on the port or MMIO bus.
pub struct BarRegion {
    function: SharedFunction,
    bar: u8,
}

impl BarRegion {
    pub fn new(function: SharedFunction, bar: u8) -> Self {
        BarRegion { function, bar }
    }
}

impl BusDevice for BarRegion {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        lock(&self.function).read_bar(self.bar, offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        lock(&self.function).write_bar(self.bar, offset, data);
    }
}

/// A device whose place on a bus a chipset register decides (the ACPI PM
/// block under PMBA, the ECAM window under PCIEXBAR): moved, removed and
/// put back as the guest writes the register.
pub struct Placement {
    bus: Arc<Bus>,
    device: SharedDevice,
    len: u64,
    at: Option<u64>,
}

impl Placement {
    /// `device` of `len` bytes, on `bus` at `at` already if `Some`.
    pub fn new(bus: Arc<Bus>, device: SharedDevice, len: u64, at: Option<u64>) -> Self {
        Placement {
            bus,
            device,
            len,
            at,
        }
    }

    /// Where the device is now.
    pub fn at(&self) -> Option<u64> {
        self.at
    }

    /// Puts the device at `to` (or nowhere). A place that overlaps another
    /// device is refused with a warning and the device is left off the
    /// bus, as overlapping decoders on hardware answer nothing useful.
    pub fn move_to(&mut self, to: Option<u64>) {
        if to == self.at {
            return;
        }
        if let Some(old) = self.at.take() {
            if let Err(error) = self.bus.remove(old) {
                tracing::warn!(%error, "chipset window already gone");
            }
        }
        if let Some(new) = to {
            match self.bus.insert(self.device.clone(), new, self.len) {
                Ok(()) => self.at = Some(new),
                Err(error) => tracing::warn!(%error, "chipset window not placed"),
            }
        }
    }
}
