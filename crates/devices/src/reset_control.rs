//! The PIIX reset control register at port 0xcf9, which the FADT's
//! RESET_REG points at.

use std::sync::Arc;

use rvirt_bus::BusDevice;
use rvirt_platform::{VmControl, VmRequest};

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
    use crate::pvpanic::{PvPanic, PVPANIC_PANICKED};
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
