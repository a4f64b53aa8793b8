//! QEMU's std `VGA`: a PCI function (1234:1111, class 0x0300 "VGA
//! controller", revision 2, subsystem 1af4:1100) with the VRAM in BAR 0,
//! BAR 2's registers as `bochs-display`'s plus the VGA ports at 0x400,
//! and an expansion ROM (the VGA BIOS); and beside the function, as on a
//! PC, the legacy VGA ports (0x3b0-0x3df), the DISPI index/data ports
//! (0x1ce, 0x1cf) and the 0xA0000-0xBFFFF window, which the VMM puts on
//! its buses at those fixed places.

use std::sync::Arc;

use rvirt_bus::BusDevice;
use rvirt_pci::config::ROM_BAR;
use rvirt_pci::rom::OptionRom;
use rvirt_pci::{BarKind, BarSpec, ConfigSpace, Ids, PciFunction};

use crate::bochs::{self, RegisterBar, MMIO_BAR, MMIO_SIZE, VRAM_BAR};
use crate::screen::DisplayState;
use crate::vga::{PORT_BASE, PORT_COUNT};

/// The VGA BIOS QEMU's `VGA` loads by default (Debian's `seabios`).
pub const DEFAULT_ROMFILE: &str = "/usr/share/seabios/vgabios-stdvga.bin";

/// Where BAR 2 shows the VGA ports 0x3c0-0x3df.
pub const VGA_PORTS_OFFSET: u64 = 0x400;
const VGA_PORTS_LEN: u64 = 0x20;
/// The DISPI ports: index at 0x1ce, data at 0x1cf (and 0x1d0).
pub const DISPI_PORT: u16 = 0x1ce;
pub const DISPI_PORT_COUNT: u16 = 3;

/// The PCI function.
pub struct StdVga {
    config: ConfigSpace,
    state: Arc<DisplayState>,
    regs: RegisterBar,
    rom: Option<OptionRom>,
}

impl StdVga {
    /// The function over `state` (made with [`DisplayState::with_vga`];
    /// its VRAM size, a power of two, is BAR 0's), with `rom` behind its
    /// ROM BAR; registers at reset.
    pub fn new(state: Arc<DisplayState>, rom: Option<OptionRom>) -> Self {
        let ids = Ids {
            vendor: bochs::VENDOR_ID,
            device: bochs::DEVICE_ID,
            revision: 2,
            class: 0x03_00_00,
            subsystem_vendor: bochs::SUBSYSTEM_VENDOR_ID,
            subsystem: bochs::SUBSYSTEM_ID,
        };
        let mut config = ConfigSpace::endpoint(&ids, false);
        let vram = (state.vram().len() as u64).next_power_of_two();
        config.add_bar(
            usize::from(VRAM_BAR),
            BarSpec {
                kind: BarKind::Mem32,
                size: vram,
                prefetchable: true,
            },
        );
        config.add_bar(usize::from(MMIO_BAR), BarSpec::mem32(MMIO_SIZE));
        if let Some(r) = &rom {
            config.add_rom(r.size());
        }
        state.reset();
        StdVga {
            config,
            regs: RegisterBar::new(state.clone()),
            state,
            rom,
        }
    }
}

impl PciFunction for StdVga {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            VRAM_BAR => {
                let n = usize::try_from(offset).map_or(0, |o| self.state.vram().read(o, data));
                data[n..].fill(0xff);
            }
            MMIO_BAR if (VGA_PORTS_OFFSET..VGA_PORTS_OFFSET + VGA_PORTS_LEN).contains(&offset) => {
                let port = 0x3c0 + (offset - VGA_PORTS_OFFSET) as u16;
                if let Some(mut v) = self.state.vga() {
                    for (i, b) in data.iter_mut().enumerate() {
                        *b = v.read_port(port.wrapping_add(i as u16));
                    }
                }
            }
            MMIO_BAR => self.regs.read(offset, data),
            b if usize::from(b) == ROM_BAR => match &self.rom {
                Some(r) => r.read(offset, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        match bar {
            VRAM_BAR => {
                if let Ok(o) = usize::try_from(offset) {
                    self.state.vram().write(o, data);
                }
            }
            MMIO_BAR if (VGA_PORTS_OFFSET..VGA_PORTS_OFFSET + VGA_PORTS_LEN).contains(&offset) => {
                let port = 0x3c0 + (offset - VGA_PORTS_OFFSET) as u16;
                if let Some(mut v) = self.state.vga() {
                    for (i, b) in data.iter().enumerate() {
                        v.write_port(port.wrapping_add(i as u16), *b);
                    }
                }
            }
            MMIO_BAR => self.regs.write(offset, data),
            // The ROM is read-only.
            _ => {}
        }
    }
}

/// The legacy VGA ports 0x3b0-0x3df as one bus device (wider accesses
/// are byte accesses in address order, as an `outw` to an index and data
/// pair is).
pub struct VgaPorts(pub Arc<DisplayState>);

impl VgaPorts {
    pub const BASE: u16 = PORT_BASE;
    pub const LEN: u16 = PORT_COUNT;
}

impl BusDevice for VgaPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let Some(mut v) = self.0.vga() else {
            data.fill(0xff);
            return;
        };
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.read_port(PORT_BASE.wrapping_add((offset as u16).wrapping_add(i as u16)));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(mut v) = self.0.vga() {
            for (i, b) in data.iter().enumerate() {
                v.write_port(
                    PORT_BASE.wrapping_add((offset as u16).wrapping_add(i as u16)),
                    *b,
                );
            }
        }
    }
}

/// The DISPI index (0x1ce) and data (0x1cf, 0x1d0) ports, 16 bits wide.
pub struct DispiPorts {
    state: Arc<DisplayState>,
    index: u16,
}

impl DispiPorts {
    pub fn new(state: Arc<DisplayState>) -> Self {
        DispiPorts { state, index: 0 }
    }
}

impl BusDevice for DispiPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = match offset {
            0 => self.index,
            _ => self.state.dispi_read(usize::from(self.index)),
        };
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.to_le_bytes().get(i).copied().unwrap_or(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut b = [0u8; 2];
        let n = data.len().min(2);
        b[..n].copy_from_slice(&data[..n]);
        let v = u16::from_le_bytes(b);
        match offset {
            0 => self.index = v,
            _ => self.state.dispi_write(usize::from(self.index), v),
        }
    }
}

/// The 0xA0000-0xBFFFF window onto the VGA's planes (or, with a DISPI
/// mode on, a 64 KiB bank of the VRAM). Byte by byte, as QEMU's
/// `vga_mem_{read,write}b`.
pub struct VgaWindow(pub Arc<DisplayState>);

impl BusDevice for VgaWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.0.window_read(offset.saturating_add(i as u64));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.0.window_write(offset.saturating_add(i as u64), *b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispi::{index, ENABLED, GETCAPS, NOCLEARMEM};
    use crate::screen::tests::HeapVram;
    use crate::screen::Screen;
    use crate::Vram;
    use rvirt_pci::config::reg;
    use rvirt_vnc::{Damage, Framebuffer};

    fn device() -> (StdVga, Arc<DisplayState>, Arc<HeapVram>) {
        let vram = HeapVram::new(16 << 20);
        let state = DisplayState::with_vga(vram.clone());
        let rom = OptionRom::from_bytes(vec![0x55, 0xaa, 76]).unwrap();
        (StdVga::new(state.clone(), Some(rom)), state, vram)
    }

    #[test]
    fn identity_bars_and_rom_as_qemu() {
        let (mut d, _, _) = device();
        let c = d.config();
        assert_eq!(c.read_u32(reg::VENDOR_ID), 0x1111_1234);
        assert_eq!(c.read_u32(reg::REVISION), 0x0300_0002);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_VENDOR_ID), 0x1af4);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_ID), 0x1100);
        assert_eq!(c.bar(0).unwrap().size, 16 << 20);
        assert!(c.bar(0).unwrap().prefetchable);
        assert_eq!(c.bar(2).unwrap().size, 0x1000);
        assert_eq!(c.rom_size(), Some(2048));
        assert_eq!(c.interrupt_pin(), 0);
        let mut b = [0u8; 4];
        d.read_bar(ROM_BAR as u8, 0, &mut b);
        assert_eq!(b, [0x55, 0xaa, 76, 0]);
        d.write_bar(ROM_BAR as u8, 0, &[0; 4]);
        d.read_bar(ROM_BAR as u8, 0, &mut b);
        assert_eq!(b, [0x55, 0xaa, 76, 0], "read-only");
        let none = StdVga::new(DisplayState::with_vga(HeapVram::new(4 << 20)), None);
        assert_eq!(none.config().rom_size(), None);
        assert_eq!(none.config().read_u32(0x30), 0);
    }

    #[test]
    fn bar2_reaches_the_vga_ports_and_dispi() {
        let (mut d, state, _) = device();
        // Sequencer index and data through BAR 2's 0x3c4/0x3c5 in one
        // 16-bit write; the legacy port reads it back.
        d.write_bar(MMIO_BAR, VGA_PORTS_OFFSET + 4, &[2, 0x0f]);
        let mut ports = VgaPorts(state.clone());
        let mut b = [0u8; 1];
        ports.read(0x3c5 - 0x3b0, &mut b);
        assert_eq!(b, [0x0f]);
        let mut w = [0u8; 2];
        d.read_bar(MMIO_BAR, bochs::DISPI_OFFSET, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0xb0c5);
    }

    #[test]
    fn dispi_ports_getcaps_bank_and_clearing() {
        let (_, state, vram) = device();
        let mut p = DispiPorts::new(state.clone());
        let rd = |p: &mut DispiPorts, i: u16| {
            p.write(0, &i.to_le_bytes());
            let mut b = [0u8; 2];
            p.read(1, &mut b);
            u16::from_le_bytes(b)
        };
        let wr = |p: &mut DispiPorts, i: u16, v: u16| {
            p.write(0, &i.to_le_bytes());
            p.write(1, &v.to_le_bytes());
        };
        assert_eq!(rd(&mut p, index::ID as u16), 0xb0c5);
        // The version written reads back (SeaBIOS's VGA BIOS's probe);
        // anything else is not taken.
        wr(&mut p, index::ID as u16, 0xb0c0);
        assert_eq!(rd(&mut p, index::ID as u16), 0xb0c0);
        wr(&mut p, index::ID as u16, 0x1234);
        assert_eq!(rd(&mut p, index::ID as u16), 0xb0c0);
        wr(&mut p, index::ID as u16, 0xb0c5);
        wr(&mut p, index::ENABLE as u16, GETCAPS);
        assert_eq!(rd(&mut p, index::XRES as u16), 16000);
        assert_eq!(rd(&mut p, index::BPP as u16), 32);
        wr(&mut p, index::ENABLE as u16, 0);
        assert_eq!(rd(&mut p, index::XRES as u16), 0);
        // A mode turned on clears its memory, unless told not to.
        vram.write(0, &[9; 16]);
        wr(&mut p, index::XRES as u16, 640);
        wr(&mut p, index::YRES as u16, 480);
        wr(&mut p, index::BPP as u16, 32);
        wr(&mut p, index::ENABLE as u16, ENABLED | NOCLEARMEM);
        let mut b = [0u8; 2];
        vram.read(0, &mut b);
        assert_eq!(b, [9, 9]);
        wr(&mut p, index::ENABLE as u16, 0);
        wr(&mut p, index::ENABLE as u16, ENABLED);
        vram.read(0, &mut b);
        assert_eq!(b, [0, 0]);
        // Banks: the window shows 64 KiB of the VRAM from the bank; a
        // bank past the memory is refused.
        wr(&mut p, index::BANK as u16, 2);
        let mut win = VgaWindow(state.clone());
        win.write(0x10, &[7, 8]);
        vram.read((2 << 16) + 0x10, &mut b);
        assert_eq!(b, [7, 8]);
        wr(&mut p, index::BANK as u16, 256);
        assert_eq!(rd(&mut p, index::BANK as u16), 2);
    }

    #[test]
    fn the_screen_follows_text_mode_dispi_and_back() {
        let (_, state, _) = device();
        let screen = Screen::new(state.clone());
        assert_eq!(screen.mode().width, 640, "blank before anything");
        crate::vga::tests::mode3(&mut state.vga().unwrap());
        assert_eq!((screen.mode().width, screen.mode().height), (720, 400));
        assert_eq!(screen.damage(), vec![Damage::All]);
        // A character written: only its rows change.
        let mut win = VgaWindow(state.clone());
        win.write(0x1_8000 + 160 * 3, &[0xdb, 0x07]);
        // No font loaded: a blank glyph. Change the attribute's
        // background instead, which fills the whole cell.
        win.write(0x1_8000 + 160 * 3 + 1, &[0x70]);
        let d = screen.damage();
        assert_eq!(d.len(), 1, "{d:?}");
        let Damage::Changed(r) = d[0] else {
            panic!("{d:?}")
        };
        assert_eq!((r.y, r.h, r.w), (48, 16, 720));
        assert!(screen.damage().is_empty());
        let mut row = vec![0u8; 720 * 4];
        screen.read_rows(50, &mut row);
        assert_eq!(&row[0..4], &[0xa8, 0xa8, 0xa8, 0]);
        // A DISPI mode takes over, and text comes back once it is off.
        state.dispi_write(index::XRES, 800);
        state.dispi_write(index::YRES, 600);
        state.dispi_write(index::BPP, 32);
        state.dispi_write(index::ENABLE, ENABLED);
        assert_eq!(screen.mode().width, 800);
        assert_eq!(screen.damage(), vec![Damage::All]);
        state.dispi_write(index::ENABLE, 0);
        assert_eq!(screen.mode().width, 720);
        assert_eq!(screen.damage(), vec![Damage::All]);
        // Odd reads never panic.
        let mut odd = vec![1u8; 1003];
        screen.read_rows(399, &mut odd);
        screen.read_rows(u16::MAX, &mut odd);
    }
}
