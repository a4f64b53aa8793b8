//! Small write-only ports: the POST code port, QEMU's pvpanic ISA port, and
//! the PIIX reset control register.

use std::sync::Arc;

use rvirt_bus::{BusDevice, VmControl, VmRequest};

/// Port 0x80 (POST codes) and other ports whose writes go nowhere. Counted so
/// that a flood of them is visible in the debug log without a line per write.
#[derive(Default)]
pub struct PortSink {
    writes: u64,
}

impl BusDevice for PortSink {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {
        self.writes += 1;
    }
}

/// QEMU's pvpanic ISA device (port 0x505): reading it returns the events it
/// supports; writing PANICKED reports a guest panic to the machine.
pub struct PvPanic {
    vm: Arc<dyn VmControl>,
}

const PVPANIC_PANICKED: u8 = 1 << 0;
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

/// The reset control register at port 0xcf9, which the FADT's RESET_REG
/// points at: writing a value with the reset bit (0x04) resets the machine.
pub struct ResetControl {
    value: u8,
    vm: Arc<dyn VmControl>,
}

/// The value the FADT tells the guest to write.
pub const RESET_VALUE: u8 = 0x06;
const RESET_CPU: u8 = 0x04;

impl ResetControl {
    /// Creates the device.
    pub fn new(vm: Arc<dyn VmControl>) -> Self {
        ResetControl { value: 0, vm }
    }
}

impl BusDevice for ResetControl {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = self.value;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        self.value = v & !RESET_CPU;
        if v & RESET_CPU != 0 {
            self.vm.request(VmRequest::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Requests(Mutex<Vec<VmRequest>>);
    impl VmControl for Requests {
        fn request(&self, r: VmRequest) {
            self.0.lock().unwrap().push(r);
        }
    }

    #[test]
    fn pvpanic_and_reset_reach_the_machine() {
        let r = Arc::new(Requests::default());
        let mut p = PvPanic::new(r.clone());
        p.write(0, &[0]);
        p.write(0, &[PVPANIC_PANICKED]);
        let mut c = ResetControl::new(r.clone());
        c.write(0, &[0x02]);
        c.write(0, &[RESET_VALUE]);
        assert_eq!(
            *r.0.lock().unwrap(),
            vec![VmRequest::Panic, VmRequest::Reset]
        );
    }
}
