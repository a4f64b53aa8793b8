//! bochs-display and the std VGA from the guest's side (the first byte
//! picks one): any sequence of reads and writes of any size at any offset
//! of BAR 2 (EDID, DISPI, the VGA ports, QEMU's extended registers,
//! holes), BAR 0 (the VRAM) and the ROM BAR, and on the std VGA of the
//! legacy VGA ports, the DISPI ports and the 0xA0000 window (across and
//! past it), with the VNC server's calls (mode, damage, rows of any
//! length from any row; text mode drawn from whatever the planes hold) in
//! between. Nothing may panic; a mode shown lies inside the VRAM; damage
//! lies inside the mode.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_display::bochs::{BochsDisplay, Placement, MMIO_BAR, VRAM_BAR};
use rvirt_display::screen::{DisplayState, Screen};
use rvirt_display::stdvga::{DispiPorts, StdVga, VgaPorts, VgaWindow};
use rvirt_display::Vram;
use rvirt_pci::config::ROM_BAR;
use rvirt_pci::rom::OptionRom;
use rvirt_pci::PciFunction;
use rvirt_vnc::{Damage, Framebuffer};

const VRAM: usize = 4 << 20;

/// Video memory on the heap; every write dirties everything it touches.
struct Heap {
    bytes: Mutex<Vec<u8>>,
    dirty: Mutex<bool>,
}

impl Vram for Heap {
    fn len(&self) -> usize {
        VRAM
    }
    fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        let b = self.bytes.lock().unwrap();
        let n = out.len().min(VRAM.saturating_sub(offset));
        if n > 0 {
            out[..n].copy_from_slice(&b[offset..offset + n]);
        }
        n
    }
    fn write(&self, offset: usize, data: &[u8]) -> usize {
        *self.dirty.lock().unwrap() = true;
        let mut b = self.bytes.lock().unwrap();
        let n = data.len().min(VRAM.saturating_sub(offset));
        if n > 0 {
            b[offset..offset + n].copy_from_slice(&data[..n]);
        }
        n
    }
    fn dirty(&self) -> Option<Vec<u64>> {
        let all = std::mem::take(&mut *self.dirty.lock().unwrap());
        Some(vec![if all { u64::MAX } else { 0 }; VRAM / 4096 / 64])
    }
}

fuzz_target!(|data: &[u8]| {
    let vram = Arc::new(Heap {
        bytes: Mutex::new(vec![0; VRAM]),
        dirty: Mutex::new(false),
    });
    let Some((&kind, mut input)) = data.split_first() else {
        return;
    };
    let vga = kind & 1 != 0;
    let (state, mut dev): (_, Box<dyn PciFunction>) = if vga {
        let state = DisplayState::with_vga(vram);
        let rom = OptionRom::from_bytes(vec![0x55, 0xaa, 1, 0xcb]).unwrap();
        (state.clone(), Box::new(StdVga::new(state, Some(rom))))
    } else {
        let state = DisplayState::new(vram);
        (state.clone(), Box::new(BochsDisplay::new(state, Placement::Conventional)))
    };
    // The std VGA's legacy decoders (on bochs-display, BAR 2 instead).
    let mut ports = VgaPorts(state.clone());
    let mut dispi = DispiPorts::new(state.clone());
    let mut window = VgaWindow(state.clone());
    let screen = Screen::new(state);
    while input.len() >= 4 {
        let (op, rest) = input.split_at(4);
        input = rest;
        let raw = u64::from(u32::from_le_bytes([op[1], op[2], op[3], 0]));
        let offset = raw & 0xfff;
        let len = [1usize, 2, 4, 8][usize::from(op[0] >> 2 & 3)];
        let target = if vga { op[0] >> 4 & 7 } else { 0 };
        match op[0] & 3 {
            0 => {
                let n = len.min(input.len());
                let (v, rest) = input.split_at(n);
                input = rest;
                match target {
                    1 => ports.write(raw % 0x30, v),
                    2 => dispi.write(raw % 3, v),
                    // Across the window's end and far past it too.
                    3 => window.write(raw & 0x3_ffff, v),
                    _ => dev.write_bar(MMIO_BAR, offset, v),
                }
            }
            1 => {
                let mut buf = vec![0u8; len];
                match target {
                    1 => ports.read(raw % 0x30, &mut buf),
                    2 => dispi.read(raw % 3, &mut buf),
                    3 => window.read(raw & 0x3_ffff, &mut buf),
                    4 => dev.read_bar(ROM_BAR as u8, raw, &mut buf),
                    _ => dev.read_bar(MMIO_BAR, offset, &mut buf),
                }
            }
            2 => {
                let at = u64::from(u32::from_le_bytes([op[1], op[2], op[3], 0])) << 4;
                dev.write_bar(VRAM_BAR, at, &[op[3]; 8][..len]);
            }
            _ => {
                let m = screen.mode();
                for d in screen.damage() {
                    if let Damage::Changed(r) = d {
                        assert!(r.x as u32 + r.w as u32 <= m.width as u32);
                        assert!(r.y as u32 + r.h as u32 <= m.height as u32);
                    }
                }
                if let Some(s) = dev_mode(&screen) {
                    assert!(s <= VRAM);
                }
                let rows = usize::from(op[3]);
                let mut out = vec![0u8; (m.stride() * rows).min(1 << 20) + usize::from(op[1] & 7)];
                screen.read_rows(u16::from_le_bytes([op[1], op[2]]), &mut out);
            }
        }
    }
});

/// The end of the VRAM span of the mode shown (its stride times height,
/// from its offset), if any.
fn dev_mode(screen: &Screen) -> Option<usize> {
    screen.shown().map(|m| m.span().end)
}
