//! The i6300esb and the parallel port under a hostile driver: the input is
//! a sequence of 8-byte operations (kind, size, offset, value) on the
//! watchdog's configuration space and BAR 0 (any offset, any width, the
//! unlock bytes included), its timer running out, and the parallel port's
//! eight ports. Nothing may panic; the watchdog's timer is armed only
//! while it is enabled; it asks the machine for its action only when it
//! was enabled, and is disabled right after.
#![no_main]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_devices::i6300esb::{I6300Esb, WatchdogTimer, BAR};
use rvirt_devices::parallel::Parallel;
use rvirt_pci::PciFunction;
use rvirt_platform::{VmControl, VmRequest};

#[derive(Clone, Default)]
struct Timer(Arc<Mutex<Option<Duration>>>);

impl WatchdogTimer for Timer {
    fn arm(&mut self, after: Option<Duration>) {
        *self.0.lock().unwrap() = after;
    }
}

#[derive(Default)]
struct Requests(Mutex<u32>);

impl VmControl for Requests {
    fn request(&self, r: VmRequest) {
        assert_eq!(r, VmRequest::Watchdog);
        *self.0.lock().unwrap() += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let timer = Timer::default();
    let vm = Arc::new(Requests::default());
    let mut wdt = I6300Esb::new(
        Box::new(timer.clone()),
        vm.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    let mut lpt = Parallel::new(None, Box::new(std::io::sink()));
    for op in data.chunks_exact(8) {
        let size = usize::from(op[1] % 9);
        let offset = u16::from_le_bytes([op[2], op[3]]);
        let value = [op[4], op[5], op[6], op[7]];
        let mut buf = [0u8; 8];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = value[i % 4];
        }
        match op[0] % 7 {
            0 => wdt.write_config(offset % 256, &buf[..size.min(4)]),
            1 => {
                let mut out = [0u8; 4];
                wdt.read_config(offset % 256, &mut out[..size.min(4)]);
            }
            2 => wdt.write_bar(BAR, u64::from(offset % 32), &buf[..size]),
            3 => {
                let mut out = [0u8; 8];
                wdt.read_bar(BAR, u64::from(offset), &mut out[..size]);
            }
            4 => {
                let before = *vm.0.lock().unwrap();
                let enabled = wdt.enabled();
                wdt.expired();
                if *vm.0.lock().unwrap() != before {
                    assert!(enabled, "an action from a disabled watchdog");
                    assert!(!wdt.enabled(), "no reset after the action");
                }
            }
            5 => lpt.write(u64::from(offset % 8), &buf[..size]),
            _ => {
                let mut out = [0u8; 8];
                lpt.read(u64::from(offset % 8), &mut out[..size]);
            }
        }
        if !wdt.enabled() {
            assert!(timer.0.lock().unwrap().is_none(), "armed while disabled");
        }
    }
});
