//! The Bochs VBE display interface ("DISPI"): eleven 16-bit registers
//! that set a linear framebuffer mode, as Bochs defines them and QEMU's
//! `bochs-display` implements them (`hw/display/bochs-vbe.h`,
//! `bochs-display.c`): plain stores, and a mode that is shown only when it
//! fits the video memory.

use rvirt_vnc::{Mode, PixelFormat};

/// Register indexes.
pub mod index {
    pub const ID: usize = 0x0;
    pub const XRES: usize = 0x1;
    pub const YRES: usize = 0x2;
    pub const BPP: usize = 0x3;
    pub const ENABLE: usize = 0x4;
    pub const BANK: usize = 0x5;
    pub const VIRT_WIDTH: usize = 0x6;
    pub const VIRT_HEIGHT: usize = 0x7;
    pub const X_OFFSET: usize = 0x8;
    pub const Y_OFFSET: usize = 0x9;
    pub const VIDEO_MEMORY_64K: usize = 0xa;
}

/// How many registers are stored (ID to Y_OFFSET; VIDEO_MEMORY_64K is
/// computed).
pub const REGISTERS: usize = 10;

/// `ENABLE`: the mode is on.
pub const ENABLED: u16 = 0x01;
/// `ENABLE`: the resolution registers read their maxima (std VGA).
pub const GETCAPS: u16 = 0x02;
/// `ENABLE`: turning a mode on keeps the memory (std VGA).
pub const NOCLEARMEM: u16 = 0x80;

/// What `ID` reads: the newest interface version (`VBE_DISPI_ID5`).
pub const ID5: u16 = 0xb0c5;
/// The oldest interface version (`VBE_DISPI_ID0`).
pub const ID0: u16 = 0xb0c0;

/// The smallest mode QEMU shows (either side).
pub const MIN_SIDE: u16 = 64;

/// A mode the registers describe and the video memory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanMode {
    pub width: u16,
    pub height: u16,
    /// Bytes per pixel.
    pub bytes: usize,
    /// Bytes from one row to the next (VIRT_WIDTH's).
    pub stride: usize,
    /// Where the first visible pixel is in video memory.
    pub offset: usize,
    pub format: PixelFormat,
}

impl ScanMode {
    /// The mode as the VNC server takes it.
    pub fn mode(&self) -> Mode {
        Mode {
            width: self.width,
            height: self.height,
            format: self.format,
        }
    }

    /// The video memory the visible rows span.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.stride * usize::from(self.height)
    }
}

/// The register file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispi {
    regs: [u16; REGISTERS],
    /// QEMU's extended register: a big-endian framebuffer.
    pub big_endian: bool,
}

impl Dispi {
    /// A register read; `vram` is the video memory's size. Indexes past
    /// the register file read all ones, as QEMU's.
    pub fn read(&self, i: usize, vram: usize) -> u16 {
        match i {
            index::ID => ID5,
            index::VIDEO_MEMORY_64K => (vram / (64 << 10)).min(usize::from(u16::MAX)) as u16,
            _ => self.regs.get(i).copied().unwrap_or(0xffff),
        }
    }

    /// A register write: stored as is (a mode is checked when shown);
    /// indexes past the register file are ignored.
    pub fn write(&mut self, i: usize, v: u16) {
        if let Some(r) = self.regs.get_mut(i) {
            *r = v;
        }
    }

    /// A stored register.
    pub fn reg(&self, i: usize) -> u16 {
        self.regs.get(i).copied().unwrap_or(0)
    }

    /// The mode the registers describe, if it is on, in a depth the
    /// device shows, at least [`MIN_SIDE`] each way, and wholly inside
    /// `vram` bytes; `None` otherwise (the display keeps what it showed).
    pub fn mode(&self, vram: usize) -> Option<ScanMode> {
        if self.regs[index::ENABLE] & ENABLED == 0 {
            return None;
        }
        let format = match self.regs[index::BPP] {
            16 => PixelFormat::RGB565,
            32 => PixelFormat {
                big_endian: self.big_endian,
                ..PixelFormat::XRGB8888
            },
            _ => return None,
        };
        let bytes = format.bytes_per_pixel();
        let width = self.regs[index::XRES];
        let height = self.regs[index::YRES];
        if width < MIN_SIDE || height < MIN_SIDE {
            return None;
        }
        let virt = self.regs[index::VIRT_WIDTH].max(width);
        // All in usize from 16-bit values: at most 2^16 * 4 * 2^16, which
        // fits 64 bits.
        let stride = usize::from(virt) * bytes;
        let offset = usize::from(self.regs[index::X_OFFSET]) * bytes
            + usize::from(self.regs[index::Y_OFFSET]) * stride;
        let size = stride * usize::from(height);
        if offset + size > vram {
            return None;
        }
        Some(ScanMode {
            width,
            height,
            bytes,
            stride,
            offset,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VRAM: usize = 16 << 20;

    fn set(d: &mut Dispi, x: u16, y: u16, bpp: u16) {
        d.write(index::XRES, x);
        d.write(index::YRES, y);
        d.write(index::BPP, bpp);
        d.write(index::ENABLE, ENABLED);
    }

    #[test]
    fn identity_and_memory_size() {
        let d = Dispi::default();
        assert_eq!(d.read(index::ID, VRAM), 0xb0c5);
        assert_eq!(d.read(index::VIDEO_MEMORY_64K, VRAM), 256);
        assert_eq!(d.read(0x0b, VRAM), 0xffff);
        assert_eq!(d.read(usize::MAX, VRAM), 0xffff);
    }

    #[test]
    fn a_mode_and_its_span() {
        let mut d = Dispi::default();
        assert_eq!(d.mode(VRAM), None, "off");
        set(&mut d, 800, 600, 32);
        let m = d.mode(VRAM).unwrap();
        assert_eq!((m.width, m.height, m.stride, m.offset), (800, 600, 3200, 0));
        assert_eq!(m.format, PixelFormat::XRGB8888);
        d.write(index::VIRT_WIDTH, 1024);
        d.write(index::X_OFFSET, 8);
        d.write(index::Y_OFFSET, 2);
        let m = d.mode(VRAM).unwrap();
        assert_eq!((m.stride, m.offset), (4096, 2 * 4096 + 32));
        assert_eq!(m.span(), 8224..8224 + 600 * 4096);
        set(&mut d, 640, 480, 16);
        assert_eq!(d.mode(VRAM).unwrap().format, PixelFormat::RGB565);
    }

    #[test]
    fn impossible_modes_are_refused() {
        let mut d = Dispi::default();
        for (x, y, bpp) in [(800, 600, 8), (800, 600, 24), (63, 600, 32), (800, 0, 32)] {
            set(&mut d, x, y, bpp);
            assert_eq!(d.mode(VRAM), None, "{x}x{y}x{bpp}");
        }
        // Larger than the memory, directly or through the offsets.
        set(&mut d, 4096, 4096, 32);
        assert_eq!(d.mode(VRAM), None);
        set(&mut d, 800, 600, 32);
        d.write(index::Y_OFFSET, 0xffff);
        assert_eq!(d.mode(VRAM), None);
        d.write(index::Y_OFFSET, 0);
        d.write(index::VIRT_WIDTH, 0xffff);
        assert_eq!(d.mode(VRAM), None);
        d.write(index::VIRT_WIDTH, 0);
        assert!(d.mode(VRAM).is_some());
    }

    proptest::proptest! {
        /// Whatever the registers hold, a mode shown lies inside the memory.
        #[test]
        fn any_mode_shown_fits(regs in proptest::array::uniform10(proptest::num::u16::ANY), vram in 0usize..(64 << 20)) {
            let mut d = Dispi::default();
            for (i, v) in regs.iter().enumerate() {
                d.write(i, *v);
            }
            if let Some(m) = d.mode(vram) {
                proptest::prop_assert!(m.span().end <= vram);
                proptest::prop_assert!(m.stride >= usize::from(m.width) * m.bytes);
            }
        }
    }
}
