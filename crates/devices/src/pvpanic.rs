//! QEMU's pvpanic ISA device (port 0x505).

use std::sync::Arc;

use rvirt_bus::BusDevice;
use rvirt_platform::{VmControl, VmRequest};

/// Reading the port returns the events it supports; writing PANICKED
/// reports a guest panic to the machine.
pub struct PvPanic {
    vm: Arc<dyn VmControl>,
}

pub(crate) const PVPANIC_PANICKED: u8 = 1 << 0;
const PVPANIC_CRASH_LOADED: u8 = 1 << 1;

impl PvPanic {
    /// Creates the device.
    pub fn new(vm: Arc<dyn VmControl>) -> Self {
        PvPanic { vm }
    }
}

impl BusDevice for PvPanic {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.first().is_some_and(|b| b & PVPANIC_PANICKED != 0) {
            self.vm.request(VmRequest::Panic);
        }
    }
}
