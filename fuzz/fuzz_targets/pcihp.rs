//! pc's ACPI PCI hot-plug from the guest's side: the register block at
//! 0xae00 and the GPE0 block at 0xafe0 driven with reads and writes of any
//! size at any offset, interleaved with the host's plug and unplug
//! requests on any slot. Nothing may panic; only a slot that hot-plugs is
//! ever ejected, and one per PCI_EJ write at most; the SCI is asserted
//! exactly while an enabled GPE0 status bit is set.
#![no_main]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_devices::acpi_pm::{AcpiPm, Gpe0};
use rvirt_pci::pcihp::{HotplugSignal, PciHotplug, GPE_BIT};
use rvirt_platform::{InterruptLine, TriggerMode, VmControl, VmRequest};

const FIXED: u32 = 0b11;

#[derive(Default)]
struct Sci(AtomicBool);

impl InterruptLine for Sci {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> std::io::Result<()> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn lower(&self) -> std::io::Result<()> {
        self.0.store(false, Ordering::SeqCst);
        Ok(())
    }
}

struct NoVm;

impl VmControl for NoVm {
    fn request(&self, _: VmRequest) {}
}

struct Signal {
    pm: Arc<Mutex<AcpiPm>>,
    ejected: Mutex<Vec<u8>>,
}

impl HotplugSignal for Signal {
    fn raise_gpe(&self) {
        self.pm.lock().unwrap().raise_gpe(GPE_BIT);
    }
    fn eject(&self, slot: u8) {
        assert!(
            slot < 32 && FIXED & (1 << slot) == 0,
            "ejected fixed slot {slot}"
        );
        self.ejected.lock().unwrap().push(slot);
    }
}

fuzz_target!(|data: &[u8]| {
    let sci = Arc::new(Sci::default());
    let pm = Arc::new(Mutex::new(AcpiPm::new(sci.clone(), Arc::new(NoVm))));
    let signal = Arc::new(Signal {
        pm: pm.clone(),
        ejected: Mutex::new(Vec::new()),
    });
    let mut hp = PciHotplug::new(FIXED, signal.clone());
    let mut gpe = Gpe0(pm.clone());
    for op in data.chunks(7) {
        let [kind, offset, size, v @ ..] = op else {
            break;
        };
        let size = usize::from(size % 9);
        let offset = u64::from(*offset);
        let before = signal.ejected.lock().unwrap().len();
        match kind % 6 {
            0 => {
                let mut buf = vec![0u8; size];
                hp.read(offset % 0x20, &mut buf);
            }
            1 => hp.write(offset % 0x20, &v[..size.min(v.len())]),
            2 => {
                let mut buf = vec![0u8; size];
                gpe.read(offset % 8, &mut buf);
            }
            3 => gpe.write(offset % 8, &v[..size.min(v.len())]),
            4 => {
                let _ = hp.plug(offset as u8 % 40);
            }
            _ => {
                let _ = hp.request_unplug(offset as u8 % 40);
            }
        }
        assert!(signal.ejected.lock().unwrap().len() <= before + 1);
        // The SCI follows GPE0: status & enable (the power button is
        // never pressed here).
        let mut regs = [0u8; 4];
        gpe.read(0, &mut regs);
        let (sts, en) = (
            u16::from_le_bytes([regs[0], regs[1]]),
            u16::from_le_bytes([regs[2], regs[3]]),
        );
        assert_eq!(sci.0.load(Ordering::SeqCst), sts & en != 0);
    }
});
