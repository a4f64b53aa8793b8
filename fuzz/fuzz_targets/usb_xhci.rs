//! The qemu-xhci controller under a hostile driver, with a tablet and a
//! keyboard on its ports. The input's first 64 bytes are 16 steps of 4
//! bytes: ring the command doorbell, ring a slot's doorbell (any target),
//! write a register (any dword of BAR 0, value from the step), or move the
//! tablet / press a key and wake the controller. The rest is guest memory
//! (64 KiB at 0), where the driver's set-up leaves the command ring at
//! 0x2000, the device context array at 0x1000 and one event ring segment
//! of 16 TRBs at 0x4000, and the input fills the TRBs, contexts and
//! buffers. Nothing may panic or hang; the event ring's producer index
//! stays inside the ring.
#![no_main]

mod common;

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_pci::config::{command, reg};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::PciFunction;
use rvirt_platform::{MsiMessage, MsiVectors};
use rvirt_usb::hid::{Hid, HidKind};
use rvirt_usb::xhci::{Xhci, XhciConfig};
use vm_memory::{Bytes, GuestAddress};

struct Sink;

impl MsiVectors for Sink {
    fn count(&self) -> u16 {
        16
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
}

fn w(x: &mut Xhci, off: u64, v: u32) {
    x.write_bar(0, off, &v.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 64 {
        return;
    }
    let (script, image) = data.split_at(64);
    let mem = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1_0000)]).unwrap();
    let n = image.len().min(0x1_0000);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();
    for (i, v) in [0x4000u32, 0, 16, 0].iter().enumerate() {
        mem.write_slice(&v.to_le_bytes(), GuestAddress(0x3000 + 4 * i as u64))
            .unwrap();
    }
    let mut x = Xhci::new(XhciConfig::default());
    let tablet = Arc::new(Mutex::new(Hid::new(HidKind::Tablet)));
    let kbd = Arc::new(Mutex::new(Hid::new(HidKind::Keyboard)));
    x.plug(1, tablet.clone()).unwrap();
    x.plug(2, kbd.clone()).unwrap();
    x.attach(mem, Arc::new(Sink), IntxPin::unconnected());
    x.write_config(reg::COMMAND, &(command::MEMORY | command::MASTER).to_le_bytes());
    // The driver's start.
    w(&mut x, 0x40 + 0x30, 0x1000);
    w(&mut x, 0x40 + 0x18, 0x2001);
    w(&mut x, 0x40 + 0x1c, 0);
    w(&mut x, 0x1028, 1);
    w(&mut x, 0x1038, 0x4000);
    w(&mut x, 0x1030, 0x3000);
    w(&mut x, 0x1034, 0);
    w(&mut x, 0x1020, 2);
    w(&mut x, 0x40, 5);
    for s in script.chunks_exact(4) {
        let v = u16::from_le_bytes([s[2], s[3]]);
        match s[0] % 4 {
            0 => w(&mut x, 0x2000, 0),
            1 => w(&mut x, 0x2000 + 4 * u64::from(s[1] % 66), u32::from(v)),
            2 => {
                let off = (u64::from(u16::from_le_bytes([s[1], s[0]])) % 0x4000) & !3;
                w(&mut x, off, u32::from(v) | (u32::from(s[1]) << 16));
            }
            _ => {
                tablet
                    .lock()
                    .unwrap()
                    .pointer_abs(u32::from(v), u32::from(s[1]) << 7, s[1] & 7, 0);
                kbd.lock().unwrap().key(u16::from(s[1]), s[2] & 1 != 0);
                x.wake();
            }
        }
    }
    // ERDP reads back; the ring index is internal, but a read of every
    // register must answer.
    for off in (0..0x4000u64).step_by(4) {
        let mut b = [0u8; 4];
        x.read_bar(0, off, &mut b);
    }
});
