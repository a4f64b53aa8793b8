//! The legacy VGA of QEMU's std `VGA` as a state machine: the registers
//! behind ports 0x3b0-0x3df (sequencer, graphics controller, attribute
//! controller, CRTC, DAC), the 0xA0000-0xBFFFF window onto the four
//! memory planes (chain-4, odd/even and latched planar accesses with
//! write modes 0-3 and read modes 0-1), and text mode drawn from the
//! planes as QEMU's `vga_draw_text` draws it: characters and attributes
//! in planes 0 and 1, the font the guest (its VGA BIOS) loaded into plane
//! 2, the 16-colour palette through the attribute controller and the DAC,
//! and the cursor; and the graphics modes a VGA BIOS sets (12h's four
//! planes, 13h's chain-4 bytes) as `vga_draw_graphic` draws them. Written from the VGA's register definitions and QEMU's
//! `hw/display/vga.c` behaviour; no crate implements a VGA.
//!
//! The planes live at the start of the VRAM as QEMU keeps them: byte
//! `4 * a + p` is plane `p`'s byte `a`.

use crate::Vram;

/// Register counts.
const SEQ: usize = 8;
const GFX: usize = 16;
const ATTR: usize = 21;
const CRTC: usize = 0x19;

/// The writable bits of each sequencer and graphics register (QEMU's
/// `sr_mask`, `gr_mask`).
const SR_MASK: [u8; SEQ] = [0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0xff];
const GR_MASK: [u8; GFX] = [
    0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0,
];

/// Register indexes used here.
mod seq {
    pub const CLOCK_MODE: usize = 1;
    pub const PLANE_WRITE: usize = 2;
    pub const CHARACTER_MAP: usize = 3;
    pub const MEMORY_MODE: usize = 4;
    /// MEMORY_MODE: chain 4.
    pub const CHAIN4: u8 = 0x08;
}
mod gfx {
    pub const SR_VALUE: usize = 0;
    pub const SR_ENABLE: usize = 1;
    pub const COMPARE_VALUE: usize = 2;
    pub const DATA_ROTATE: usize = 3;
    pub const PLANE_READ: usize = 4;
    pub const MODE: usize = 5;
    pub const MISC: usize = 6;
    pub const COMPARE_MASK: usize = 7;
    pub const BIT_MASK: usize = 8;
    /// MODE: host odd/even addressing.
    pub const HOST_ODD_EVEN: u8 = 0x10;
    /// MISC: a graphics (not text) mode.
    pub const GRAPHICS: u8 = 0x01;
}
mod attr {
    pub const MODE: usize = 0x10;
    pub const COLOR_PAGE: usize = 0x14;
    /// The attribute index register's "palette address source": clear
    /// while the palette is programmed, the screen is blank.
    pub const PAS: u8 = 0x20;
}
mod crtc {
    pub const H_DISP: usize = 0x01;
    pub const OVERFLOW: usize = 0x07;
    pub const MAX_SCAN: usize = 0x09;
    pub const CURSOR_START: usize = 0x0a;
    pub const CURSOR_END: usize = 0x0b;
    pub const START_HI: usize = 0x0c;
    pub const START_LO: usize = 0x0d;
    pub const CURSOR_HI: usize = 0x0e;
    pub const CURSOR_LO: usize = 0x0f;
    pub const V_DISP_END: usize = 0x12;
    pub const OFFSET: usize = 0x13;
    pub const PROTECT: usize = 0x11;
}

/// The CRTC's mode control and the attribute controller's colour plane
/// enable register.
const CRTC_MODE: usize = 0x17;
const ATTR_PLANE_ENABLE: usize = 0x12;

/// The first legacy port and how many there are (0x3b0-0x3df).
pub const PORT_BASE: u16 = 0x3b0;
pub const PORT_COUNT: u16 = 0x30;
/// The memory window.
pub const WINDOW_BASE: u64 = 0xa_0000;
pub const WINDOW_SIZE: u64 = 0x2_0000;
/// The planes' bytes at the VRAM's start: 64 KiB per plane.
pub const PLANES_SIZE: usize = 4 << 16;

/// The most character cells QEMU draws (`CH_ATTR_SIZE`).
const MAX_CELLS: usize = 160 * 100;

/// Each of four bits widened to a byte (QEMU's `mask16`): plane `p`'s
/// byte of a 32-bit latch is byte `p`.
fn expand(bits: u8) -> u32 {
    (0..4).fold(0, |v, p| {
        if bits & (1 << p) != 0 {
            v | (0xff << (8 * p))
        } else {
            v
        }
    })
}

/// A 6-bit DAC value widened to 8 bits, as QEMU's `c6_to_8`.
fn c6_to_8(v: u8) -> u32 {
    let v = u32::from(v & 0x3f);
    let b = v & 1;
    (v << 2) | (b << 1) | b
}

/// What the registers ask the screen to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The palette is being programmed (or nothing was set up): black.
    Blank,
    /// Text mode.
    Text,
    /// A graphics mode through the VGA registers ([`Vga::draw_graphics`]).
    Graphics,
}

/// A rendered picture: XRGB8888 pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Picture {
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u32>,
}

/// The legacy VGA's registers and latch.
#[derive(Debug, Clone)]
pub struct Vga {
    misc: u8,
    fcr: u8,
    st01: u8,
    seq_index: u8,
    seq: [u8; SEQ],
    gfx_index: u8,
    gfx: [u8; GFX],
    attr_index: u8,
    attr: [u8; ATTR],
    attr_flip_flop: bool,
    crtc_index: u8,
    crtc: [u8; CRTC],
    dac_read: u8,
    dac_write: u8,
    dac_sub: u8,
    dac_state: u8,
    dac_cache: [u8; 3],
    palette: [u8; 768],
    latch: u32,
}

impl Default for Vga {
    fn default() -> Self {
        Vga {
            misc: 0,
            fcr: 0,
            st01: 0,
            seq_index: 0,
            seq: [0; SEQ],
            gfx_index: 0,
            gfx: [0; GFX],
            attr_index: 0,
            attr: [0; ATTR],
            attr_flip_flop: false,
            crtc_index: 0,
            crtc: [0; CRTC],
            dac_read: 0,
            dac_write: 0,
            dac_sub: 0,
            dac_state: 0,
            dac_cache: [0; 3],
            palette: [0; 768],
            latch: 0,
        }
    }
}

/// How the DISPI registers bear on the window: a VBE mode on maps 64 KiB
/// banks of the VRAM at 0xA0000 in chain-4 (as QEMU's
/// `vbe_update_vgaregs` sets it up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Banking {
    pub vbe: bool,
    /// The bank's offset in the VRAM.
    pub offset: usize,
}

impl Vga {
    /// Whether a port is decoded: the monochrome ports (0x3b4, 0x3b5,
    /// 0x3ba) in monochrome mode only, the colour ones (0x3d4, 0x3d5,
    /// 0x3da) in colour mode only (misc bit 0).
    fn decoded(&self, port: u16) -> bool {
        let colour = self.misc & 1 != 0;
        match port {
            0x3b0..=0x3bf => !colour,
            0x3d0..=0x3df => colour,
            _ => true,
        }
    }

    /// A byte read of legacy port `port`; what no register backs reads
    /// all ones.
    pub fn read_port(&mut self, port: u16) -> u8 {
        if !self.decoded(port) {
            return 0xff;
        }
        match port {
            0x3c0 if !self.attr_flip_flop => self.attr_index,
            0x3c0 => 0,
            0x3c1 => self
                .attr
                .get(usize::from(self.attr_index & 0x1f))
                .copied()
                .unwrap_or(0),
            0x3c2 => 0, // input status 0: no switches, no retrace interrupt
            0x3c4 => self.seq_index,
            0x3c5 => self.seq[usize::from(self.seq_index & 7)],
            0x3c7 => self.dac_state,
            0x3c8 => self.dac_write,
            0x3c9 => {
                let v = self.palette[usize::from(self.dac_read) * 3 + usize::from(self.dac_sub)];
                self.dac_sub += 1;
                if self.dac_sub == 3 {
                    self.dac_sub = 0;
                    self.dac_read = self.dac_read.wrapping_add(1);
                }
                v
            }
            0x3ca => self.fcr,
            0x3cc => self.misc,
            0x3ce => self.gfx_index,
            0x3cf => self.gfx[usize::from(self.gfx_index & 0xf)],
            0x3b4 | 0x3d4 => self.crtc_index,
            0x3b5 | 0x3d5 => self
                .crtc
                .get(usize::from(self.crtc_index))
                .copied()
                .unwrap_or(0),
            0x3ba | 0x3da => {
                // Retrace and display-enable toggle on every read, so
                // polling loops end; the attribute flip-flop resets.
                self.st01 ^= 0x09;
                self.attr_flip_flop = false;
                self.st01
            }
            _ => 0xff,
        }
    }

    /// A byte write of legacy port `port`.
    pub fn write_port(&mut self, port: u16, v: u8) {
        if !self.decoded(port) {
            return;
        }
        match port {
            0x3c0 if !self.attr_flip_flop => {
                self.attr_index = v & 0x3f;
                self.attr_flip_flop = true;
            }
            0x3c0 => {
                let i = usize::from(self.attr_index & 0x1f);
                let v = match i {
                    0..=0x0f => v & 0x3f,
                    0x10 => v & !0x10,
                    0x11 => v,
                    0x12 => v & !0xc0,
                    0x13 | 0x14 => v & !0xf0,
                    _ => 0,
                };
                if let Some(r) = self.attr.get_mut(i) {
                    *r = v;
                }
                self.attr_flip_flop = false;
            }
            0x3c2 => self.misc = v & !0x10,
            0x3c4 => self.seq_index = v & 7,
            0x3c5 => {
                let i = usize::from(self.seq_index & 7);
                self.seq[i] = v & SR_MASK[i];
            }
            0x3c7 => {
                self.dac_read = v;
                self.dac_sub = 0;
                self.dac_state = 3;
            }
            0x3c8 => {
                self.dac_write = v;
                self.dac_sub = 0;
                self.dac_state = 0;
            }
            0x3c9 => {
                self.dac_cache[usize::from(self.dac_sub)] = v;
                self.dac_sub += 1;
                if self.dac_sub == 3 {
                    let at = usize::from(self.dac_write) * 3;
                    self.palette[at..at + 3].copy_from_slice(&self.dac_cache);
                    self.dac_sub = 0;
                    self.dac_write = self.dac_write.wrapping_add(1);
                }
            }
            0x3ce => self.gfx_index = v & 0xf,
            0x3cf => {
                let i = usize::from(self.gfx_index & 0xf);
                self.gfx[i] = v & GR_MASK[i];
            }
            0x3b4 | 0x3d4 => self.crtc_index = v,
            0x3b5 | 0x3d5 => {
                let i = usize::from(self.crtc_index);
                // Registers 0-7 are write-protected while CRTC 0x11 bit
                // 7 is set, but for the line-compare bit of overflow.
                if self.crtc[crtc::PROTECT] & 0x80 != 0 && i <= crtc::OVERFLOW {
                    if i == crtc::OVERFLOW {
                        self.crtc[i] = (self.crtc[i] & !0x10) | (v & 0x10);
                    }
                    return;
                }
                if let Some(r) = self.crtc.get_mut(i) {
                    *r = v;
                }
            }
            0x3ba | 0x3da => self.fcr = v & 0x10,
            _ => tracing::trace!(port, "vga: write to no register"),
        }
    }

    /// Where window offset `addr` (0 to 128 KiB) lands: a byte offset in
    /// the window's memory-map, after the graphics controller's mapping
    /// (128 KiB at 0xA0000, 64 KiB there plus the VBE bank, 32 KiB at
    /// 0xB0000 or at 0xB8000); `None` outside it.
    fn map(&self, addr: u64, bank: Banking) -> Option<usize> {
        let addr = (addr & 0x1_ffff) as usize;
        let mode = if bank.vbe {
            1
        } else {
            (self.gfx[gfx::MISC] >> 2) & 3
        };
        match mode {
            0 => Some(addr),
            1 if addr < 0x1_0000 => Some(addr + if bank.vbe { bank.offset } else { 0 }),
            2 if (0x1_0000..0x1_8000).contains(&addr) => Some(addr - 0x1_0000),
            3 if addr >= 0x1_8000 => Some(addr - 0x1_8000),
            _ => None,
        }
    }

    fn chain4(&self, bank: Banking) -> bool {
        bank.vbe || self.seq[seq::MEMORY_MODE] & seq::CHAIN4 != 0
    }

    fn plane_word(vram: &dyn Vram, a: usize) -> Option<u32> {
        let mut b = [0u8; 4];
        (a < PLANES_SIZE / 4 && vram.read(a * 4, &mut b) == 4).then(|| u32::from_le_bytes(b))
    }

    /// A byte read at window offset `addr`.
    pub fn read_mem(&mut self, vram: &dyn Vram, addr: u64, bank: Banking) -> u8 {
        let Some(a) = self.map(addr, bank) else {
            return 0xff;
        };
        let mut b = [0xffu8];
        if self.chain4(bank) {
            vram.read(a, &mut b);
            return b[0];
        }
        if self.gfx[gfx::MODE] & gfx::HOST_ODD_EVEN != 0 {
            let plane = usize::from(self.gfx[gfx::PLANE_READ] & 2) | (a & 1);
            vram.read(((a & !1) << 1) | plane, &mut b);
            return b[0];
        }
        let Some(latch) = Self::plane_word(vram, a) else {
            return 0xff;
        };
        self.latch = latch;
        if self.gfx[gfx::MODE] & 0x08 == 0 {
            (latch >> (8 * (self.gfx[gfx::PLANE_READ] & 3))) as u8
        } else {
            // Read mode 1: a bit is set where every plane the compare
            // mask selects matches the compare value.
            let mut r = (latch ^ expand(self.gfx[gfx::COMPARE_VALUE]))
                & expand(self.gfx[gfx::COMPARE_MASK]);
            r |= r >> 16;
            r |= r >> 8;
            !(r as u8)
        }
    }

    /// A byte write at window offset `addr`.
    pub fn write_mem(&mut self, vram: &dyn Vram, addr: u64, v: u8, bank: Banking) {
        let Some(a) = self.map(addr, bank) else {
            return;
        };
        let plane_mask = self.seq[seq::PLANE_WRITE];
        if self.chain4(bank) {
            if bank.vbe || plane_mask & (1 << (a & 3)) != 0 {
                vram.write(a, &[v]);
            }
            return;
        }
        if self.gfx[gfx::MODE] & gfx::HOST_ODD_EVEN != 0 {
            let plane = usize::from(self.gfx[gfx::PLANE_READ] & 2) | (a & 1);
            if plane_mask & (1 << plane) != 0 {
                let at = ((a & !1) << 1) | plane;
                if at < PLANES_SIZE {
                    vram.write(at, &[v]);
                }
            }
            return;
        }
        if a >= PLANES_SIZE / 4 {
            return;
        }
        let g = &self.gfx;
        let rotate = |v: u8| v.rotate_right(u32::from(g[gfx::DATA_ROTATE] & 7));
        let (val, bit_mask) = match g[gfx::MODE] & 3 {
            0 => {
                let v = u32::from(rotate(v)) * 0x0101_0101;
                let set = expand(g[gfx::SR_ENABLE]);
                (
                    (v & !set) | (expand(g[gfx::SR_VALUE]) & set),
                    g[gfx::BIT_MASK],
                )
            }
            1 => (self.latch, 0),
            2 => (expand(v & 0xf), g[gfx::BIT_MASK]),
            _ => (expand(g[gfx::SR_VALUE]), g[gfx::BIT_MASK] & rotate(v)),
        };
        let val = if g[gfx::MODE] & 3 == 1 {
            val
        } else {
            let val = match g[gfx::DATA_ROTATE] >> 3 {
                1 => val & self.latch,
                2 => val | self.latch,
                3 => val ^ self.latch,
                _ => val,
            };
            let m = u32::from(bit_mask) * 0x0101_0101;
            (val & m) | (self.latch & !m)
        };
        let write_mask = expand(plane_mask);
        let old = Self::plane_word(vram, a).unwrap_or(0);
        let new = (old & !write_mask) | (val & write_mask);
        vram.write(a * 4, &new.to_le_bytes());
    }

    /// What the screen shows now (a VBE mode aside, which the caller
    /// checks first).
    pub fn output(&self) -> Output {
        if self.attr_index & attr::PAS == 0 {
            Output::Blank
        } else if self.gfx[gfx::MISC] & gfx::GRAPHICS != 0 {
            Output::Graphics
        } else {
            Output::Text
        }
    }

    /// The 16 colours text mode draws with, as XRGB8888.
    fn palette16(&self) -> [u32; 16] {
        std::array::from_fn(|i| {
            let v = self.attr[i];
            let v = if self.attr[attr::MODE] & 0x80 != 0 {
                ((self.attr[attr::COLOR_PAGE] & 0xf) << 4) | (v & 0xf)
            } else {
                ((self.attr[attr::COLOR_PAGE] & 0xc) << 4) | (v & 0x3f)
            };
            let p = usize::from(v) * 3;
            (c6_to_8(self.palette[p]) << 16)
                | (c6_to_8(self.palette[p + 1]) << 8)
                | c6_to_8(self.palette[p + 2])
        })
    }

    /// The 256 DAC colours, as XRGB8888 (QEMU's `update_palette256`).
    fn palette256(&self) -> [u32; 256] {
        std::array::from_fn(|i| {
            let p = i * 3;
            (c6_to_8(self.palette[p]) << 16)
                | (c6_to_8(self.palette[p + 1]) << 8)
                | c6_to_8(self.palette[p + 2])
        })
    }

    /// A graphics mode's width, height and bits per pixel (4 or 8), if
    /// [`Vga::draw_graphics`] draws it.
    pub fn graphics_geometry(&self) -> Option<(usize, usize, u8)> {
        let shift = (self.gfx[gfx::MODE] >> 5) & 3;
        let half_clock = self.seq[seq::CLOCK_MODE] & 0x08 != 0;
        let width = (usize::from(self.crtc[crtc::H_DISP]) + 1) * 8;
        let o = self.crtc[crtc::OVERFLOW];
        let height = (usize::from(self.crtc[crtc::V_DISP_END])
            | (usize::from(o & 0x02) << 7)
            | (usize::from(o & 0x40) << 3))
            + 1;
        // CGA addressing (CRTC mode bits 0 and 1 clear) is not drawn.
        if self.crtc[CRTC_MODE] & 3 != 3 || width > 2048 || height > 2048 {
            return None;
        }
        let kind = match (shift, half_clock) {
            (0, false) => 4,
            (2 | 3, true) => 8,
            _ => return None,
        };
        Some((width, height, kind))
    }

    /// Draws a graphics mode from `vram`'s planes as QEMU's
    /// `vga_draw_graphic` does for the two kinds a VGA BIOS sets: 16
    /// colours from four planes (mode 12h and its kin: shift control 0,
    /// full dot clock) and 256 colours from chain-4 bytes, each doubled
    /// (mode 13h: shift control 2, half dot clock); with the CRTC's scan
    /// line doubling and line offset. `None` for anything else (CGA
    /// modes, 16-colour at half dot clock, sizes QEMU would not draw).
    pub fn draw_graphics(&self, vram: &dyn Vram) -> Option<Picture> {
        let (width, height, kind) = self.graphics_geometry()?;
        let double_scan = usize::from(self.crtc[crtc::MAX_SCAN] >> 7);
        let multi_scan = ((usize::from(self.crtc[crtc::MAX_SCAN] & 0x1f) + 1) << double_scan) - 1;
        let mut planes = vec![0u8; PLANES_SIZE];
        vram.read(0, &mut planes);
        let byte = |at: usize| planes[at % PLANES_SIZE];
        let start = (usize::from(self.crtc[crtc::START_LO])
            | (usize::from(self.crtc[crtc::START_HI]) << 8))
            * 4;
        let line = usize::from(self.crtc[crtc::OFFSET]) << 3;
        let p16 = self.palette16();
        let p256 = self.palette256();
        let plane_mask = expand(self.attr[ATTR_PLANE_ENABLE] & 0xf);
        let mut pixels = vec![0u32; width * height];
        let mut addr = start;
        let mut run = multi_scan;
        for y in 0..height {
            let row = &mut pixels[y * width..(y + 1) * width];
            if kind == 4 {
                for (i, out) in row.chunks_mut(8).enumerate() {
                    let at = addr + 4 * i;
                    let data =
                        u32::from_le_bytes([byte(at), byte(at + 1), byte(at + 2), byte(at + 3)])
                            & plane_mask;
                    for (x, px) in out.iter_mut().enumerate() {
                        let colour =
                            (0..4).fold(0, |c, p| c | ((((data >> (8 * p)) >> (7 - x)) & 1) << p));
                        *px = p16[colour as usize];
                    }
                }
            } else {
                for (x, px) in row.iter_mut().enumerate() {
                    *px = p256[usize::from(byte(addr + x / 2))];
                }
            }
            if run == 0 {
                addr += line;
                run = multi_scan;
            } else {
                run -= 1;
            }
        }
        Some(Picture {
            width: width as u16,
            height: height as u16,
            pixels,
        })
    }

    /// Text mode's geometry: columns, rows, character cell width and
    /// height; `None` for one QEMU would not draw either.
    pub fn text_geometry(&self) -> Option<(usize, usize, usize, usize)> {
        let cw = if self.seq[seq::CLOCK_MODE] & 0x08 != 0 {
            16
        } else if self.seq[seq::CLOCK_MODE] & 0x01 != 0 {
            8
        } else {
            9
        };
        let ch = usize::from(self.crtc[crtc::MAX_SCAN] & 0x1f) + 1;
        let cols = usize::from(self.crtc[crtc::H_DISP]) + 1;
        let o = self.crtc[crtc::OVERFLOW];
        let lines = usize::from(self.crtc[crtc::V_DISP_END])
            | (usize::from(o & 0x02) << 7)
            | (usize::from(o & 0x40) << 3);
        let rows = (lines + 1) / ch;
        if rows == 0 || rows > 100 || cols * rows > MAX_CELLS {
            return None;
        }
        Some((cols, rows, cw, ch))
    }

    /// Draws text mode from `vram`'s planes; `cursor_on` is the blink
    /// phase. `None` when the geometry is one QEMU would not draw.
    pub fn draw_text(&self, vram: &dyn Vram, cursor_on: bool) -> Option<Picture> {
        let (cols, rows, cw, ch) = self.text_geometry()?;
        let (width, height) = (cols * cw, rows * ch);
        let mut planes = vec![0u8; PLANES_SIZE];
        vram.read(0, &mut planes);
        let palette = self.palette16();
        // The font: character map A's 8 KiB block in plane 2.
        let v = self.seq[seq::CHARACTER_MAP];
        let font = (usize::from((v >> 5) & 1) | usize::from((v >> 1) & 6)) * 8192 * 4 + 2;
        let start =
            usize::from(self.crtc[crtc::START_LO]) | (usize::from(self.crtc[crtc::START_HI]) << 8);
        let line = usize::from(self.crtc[crtc::OFFSET]) << 3;
        let cursor = (usize::from(self.crtc[crtc::CURSOR_HI]) << 8)
            | usize::from(self.crtc[crtc::CURSOR_LO]);
        let cursor_lines = {
            let first = usize::from(self.crtc[crtc::CURSOR_START] & 0x1f);
            let last = usize::from(self.crtc[crtc::CURSOR_END] & 0x1f).min(ch - 1);
            let shown = cursor_on && self.crtc[crtc::CURSOR_START] & 0x20 == 0;
            (shown && first <= last && first < ch).then_some(first..=last)
        };
        let dup9 = self.attr[attr::MODE] & 0x04 != 0;
        let byte = |at: usize| planes.get(at % PLANES_SIZE).copied().unwrap_or(0);
        let mut pixels = vec![0u32; width * height];
        for row in 0..rows {
            for col in 0..cols {
                let cell = start + row * line / 4 + col;
                let at = cell * 4;
                let (c, a) = (byte(at), byte(at + 1));
                let fg = palette[usize::from(a & 0xf)];
                let bg = palette[usize::from(a >> 4)];
                let glyph = font + 32 * 4 * usize::from(c);
                for y in 0..ch {
                    let mut bits = u16::from(byte(glyph + 4 * y));
                    // The cursor's lines are solid, all nine dots too.
                    let on_cursor =
                        cursor_lines.as_ref().is_some_and(|l| l.contains(&y)) && cell == cursor;
                    if on_cursor {
                        bits = 0xff;
                    }
                    let out = (row * ch + y) * width + col * cw;
                    for x in 0..cw {
                        // A 16-dot cell doubles each dot; a 9th dot copies
                        // the 8th for the line-drawing characters (0xB0-0xDF,
                        // as QEMU draws them) and for the cursor.
                        let bit = match (cw, x) {
                            (16, x) => bits & (0x80 >> (x / 2)) != 0,
                            (9, 8) => {
                                on_cursor || (dup9 && (0xb0..=0xdf).contains(&c) && bits & 1 != 0)
                            }
                            (_, x) => bits & (0x80 >> x) != 0,
                        };
                        pixels[out + x] = if bit { fg } else { bg };
                    }
                }
            }
        }
        Some(Picture {
            width: width as u16,
            height: height as u16,
            pixels,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::screen::tests::HeapVram;

    /// Mode 3 as SeaBIOS's vgabios programs it (the registers text mode
    /// reads), a white-on-black palette entry 7 and the PAS bit.
    pub(crate) fn mode3(v: &mut Vga) {
        v.write_port(0x3c2, 0x67);
        for (i, x) in [0x03, 0x00, 0x03, 0x00, 0x02].iter().enumerate() {
            v.write_port(0x3c4, i as u8);
            v.write_port(0x3c5, *x);
        }
        let crtc = [
            0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00,
            0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff,
        ];
        for (i, x) in crtc.iter().enumerate() {
            v.write_port(0x3d4, i as u8);
            v.write_port(0x3d5, *x);
        }
        let gfx = [0, 0, 0, 0, 0, 0x10, 0x0e, 0x0f, 0xff];
        for (i, x) in gfx.iter().enumerate() {
            v.write_port(0x3ce, i as u8);
            v.write_port(0x3cf, *x);
        }
        v.read_port(0x3da);
        for i in 0..16u8 {
            v.write_port(0x3c0, i);
            v.write_port(0x3c0, i);
        }
        v.write_port(0x3c0, 0x10);
        v.write_port(0x3c0, 0x0c);
        v.write_port(0x3c8, 7);
        for c in [0x2a, 0x2a, 0x2a] {
            v.write_port(0x3c9, c);
        }
        v.write_port(0x3c0, 0x20);
    }

    /// Loads glyph `c` (rows of `bits`) into plane 2 as a VGA BIOS does:
    /// planar writes with only plane 2 enabled.
    fn load_glyph(v: &mut Vga, vram: &HeapVram, c: u8, bits: &[u8]) {
        let (seq2, seq4, gfx5, gfx6) = (v.seq[2], v.seq[4], v.gfx[5], v.gfx[6]);
        v.write_port(0x3c4, 2);
        v.write_port(0x3c5, 4);
        v.write_port(0x3c4, 4);
        v.write_port(0x3c5, 0x06);
        v.write_port(0x3ce, 5);
        v.write_port(0x3cf, 0);
        v.write_port(0x3ce, 6);
        v.write_port(0x3cf, 0x04);
        for (y, b) in bits.iter().enumerate() {
            v.write_mem(vram, u64::from(c) * 32 + y as u64, *b, Banking::default());
        }
        v.seq[2] = seq2;
        v.seq[4] = seq4;
        v.gfx[5] = gfx5;
        v.gfx[6] = gfx6;
    }

    #[test]
    fn text_mode_draws_glyphs_attributes_and_the_cursor() {
        let vram = HeapVram::new(16 << 20);
        let mut v = Vga::default();
        mode3(&mut v);
        assert_eq!(v.output(), Output::Text);
        assert_eq!(v.text_geometry(), Some((80, 25, 9, 16)));
        load_glyph(&mut v, &vram, b'A', &[0x81; 16]);
        // "A" with attribute 7 at row 1, column 2, through 0xB8000
        // (window offset 0x18000) in odd/even mode.
        let cell = 0x1_8000 + 2 * (80 + 2);
        v.write_mem(&*vram, cell, b'A', Banking::default());
        v.write_mem(&*vram, cell + 1, 0x07, Banking::default());
        assert_eq!(v.read_mem(&*vram, cell, Banking::default()), b'A');
        assert_eq!(v.read_mem(&*vram, cell + 1, Banking::default()), 0x07);
        let p = v.draw_text(&*vram, false).unwrap();
        assert_eq!((p.width, p.height), (720, 400));
        let px = |x: usize, y: usize| p.pixels[y * 720 + x];
        let grey = 0xa8a8a8;
        assert_eq!(px(18, 16), grey, "the glyph's left dot");
        assert_eq!(px(19, 16), 0);
        assert_eq!(px(25, 31), grey, "its right dot, last row");
        assert_eq!(px(26, 31), 0, "no 9th dot for a letter");
        assert_eq!(px(18, 32), 0, "the next row is blank");
        // The cursor (lines 13-14) at that cell, in its on phase.
        v.write_port(0x3d4, 0x0f);
        v.write_port(0x3d5, 82);
        let p = v.draw_text(&*vram, true).unwrap();
        assert_eq!(p.pixels[(16 + 13) * 720 + 20], grey);
        assert_eq!(p.pixels[(16 + 14) * 720 + 26], grey, "all nine dots");
        assert_eq!(p.pixels[(16 + 12) * 720 + 20], 0);
        // Blank while the palette is being programmed.
        v.read_port(0x3da);
        v.write_port(0x3c0, 0x00);
        assert_eq!(v.output(), Output::Blank);
    }

    #[test]
    fn planar_write_modes_and_read_modes() {
        let vram = HeapVram::new(1 << 20);
        let mut v = Vga::default();
        let set = |v: &mut Vga, i: u8, x: u8| {
            v.write_port(0x3ce, i);
            v.write_port(0x3cf, x);
        };
        v.write_port(0x3c4, 2);
        v.write_port(0x3c5, 0x0f);
        // Write mode 0 with set/reset on planes 0 and 2.
        set(&mut v, 1, 0x05);
        set(&mut v, 0, 0x05);
        set(&mut v, 8, 0xff);
        v.write_mem(&*vram, 10, 0x3c, Banking::default());
        let mut b = [0u8; 4];
        vram.read(40, &mut b);
        assert_eq!(b, [0xff, 0x3c, 0xff, 0x3c]);
        // Read mode 0 picks a plane and loads the latch; write mode 1
        // copies the latch.
        set(&mut v, 4, 1);
        assert_eq!(v.read_mem(&*vram, 10, Banking::default()), 0x3c);
        set(&mut v, 5, 1);
        v.write_mem(&*vram, 11, 0, Banking::default());
        vram.read(44, &mut b);
        assert_eq!(b, [0xff, 0x3c, 0xff, 0x3c]);
        // Read mode 1: colour compare against 0b0101 on all planes.
        set(&mut v, 5, 0x08);
        set(&mut v, 2, 0x05);
        set(&mut v, 7, 0x0f);
        assert_eq!(v.read_mem(&*vram, 10, Banking::default()), !0x3c);
        // Write mode 2: the colour's bits to every pixel the mask lets,
        // the latch (from the last read) elsewhere.
        set(&mut v, 5, 0x02);
        set(&mut v, 8, 0x0f);
        v.write_mem(&*vram, 12, 0x0a, Banking::default());
        vram.read(48, &mut b);
        assert_eq!(b, [0xf0, 0x3f, 0xf0, 0x3f]);
    }

    /// Mode 12h's and 13h's registers as a VGA BIOS sets them (those the
    /// drawing reads), palette entry `c` = attribute `c`.
    fn graphics_mode(v: &mut Vga, m13: bool) {
        let set = |v: &mut Vga, port: u16, i: u8, x: u8| {
            v.write_port(port, i);
            v.write_port(port + 1, x);
        };
        v.write_port(0x3c2, 0xe3);
        set(v, 0x3c4, 1, if m13 { 0x09 } else { 0x01 });
        set(v, 0x3c4, 2, 0x0f);
        set(v, 0x3c4, 4, if m13 { 0x0e } else { 0x06 });
        let crtc: &[(u8, u8)] = if m13 {
            &[
                (0x11, 0x0e),
                (1, 0x4f),
                (7, 0x1f),
                (9, 0x41),
                (0x12, 0x8f),
                (0x13, 0x28),
                (0x17, 0xa3),
            ]
        } else {
            &[
                (0x11, 0x0c),
                (1, 0x4f),
                (7, 0x3e),
                (9, 0x40),
                (0x12, 0xdf),
                (0x13, 0x28),
                (0x17, 0xe3),
            ]
        };
        for &(i, x) in crtc {
            set(v, 0x3d4, i, x);
        }
        set(v, 0x3ce, 5, if m13 { 0x40 } else { 0x00 });
        set(v, 0x3ce, 6, 0x05);
        v.read_port(0x3da);
        for i in 0..16u8 {
            v.write_port(0x3c0, i);
            v.write_port(0x3c0, i);
        }
        v.write_port(0x3c0, 0x12);
        v.write_port(0x3c0, 0x0f);
        v.write_port(0x3c0, 0x20);
        // DAC entry 5: pure red; entry 200: pure blue.
        v.write_port(0x3c8, 5);
        for c in [0x3f, 0, 0] {
            v.write_port(0x3c9, c);
        }
        v.write_port(0x3c8, 200);
        for c in [0, 0, 0x3f] {
            v.write_port(0x3c9, c);
        }
    }

    #[test]
    fn graphics_modes_12h_and_13h_are_drawn_from_the_planes() {
        let vram = HeapVram::new(1 << 20);
        let mut v = Vga::default();
        graphics_mode(&mut v, false);
        assert_eq!(v.output(), Output::Graphics);
        assert_eq!(v.graphics_geometry(), Some((640, 480, 4)));
        // Pixel (9, 2) in colour 5 (planes 0 and 2): byte 2 * 80 + 1, bit 6.
        vram.write((2 * 80 + 1) * 4, &[0x40, 0, 0x40, 0]);
        let p = v.draw_graphics(&*vram).unwrap();
        assert_eq!(p.pixels[2 * 640 + 9], 0xff0000);
        assert_eq!(p.pixels[2 * 640 + 8], 0);
        assert_eq!(p.pixels.iter().filter(|&&x| x != 0).count(), 1);
        // 13h: 320x200 bytes shown doubled each way as 640x400.
        let mut v = Vga::default();
        graphics_mode(&mut v, true);
        assert_eq!(v.graphics_geometry(), Some((640, 400, 8)));
        vram.write(0, &[0; 64]);
        vram.write(3 * 320 + 7, &[200]);
        let p = v.draw_graphics(&*vram).unwrap();
        for (x, y) in [(14, 6), (15, 6), (14, 7), (15, 7)] {
            assert_eq!(p.pixels[y * 640 + x], 0x0000ff, "({x}, {y})");
        }
        assert_eq!(p.pixels.iter().filter(|&&x| x != 0).count(), 4);
        // CGA addressing is not drawn.
        v.write_port(0x3d4, 0x17);
        v.write_port(0x3d5, 0xa0);
        assert_eq!(v.draw_graphics(&*vram), None);
    }

    #[test]
    fn accesses_across_and_outside_the_window_are_harmless() {
        let vram = HeapVram::new(1 << 20);
        let mut v = Vga::default();
        mode3(&mut v);
        // Mode 3 maps 32 KiB at 0xB8000: 0xA0000 is not there.
        v.write_mem(&*vram, 0, 0x55, Banking::default());
        assert_eq!(v.read_mem(&*vram, 0, Banking::default()), 0xff);
        for addr in [0x1_7fff, 0x1_ffff, 0x2_0000, u64::MAX] {
            v.write_mem(&*vram, addr, 0x55, Banking::default());
            v.read_mem(&*vram, addr, Banking::default());
        }
        // VBE banks past the memory read all ones, writes are dropped.
        let bank = Banking {
            vbe: true,
            offset: 16 << 20,
        };
        v.write_mem(&*vram, 5, 1, bank);
        assert_eq!(v.read_mem(&*vram, 5, bank), 0xff);
        // Impossible geometry draws nothing rather than panicking.
        v.write_port(0x3d4, 0x11);
        v.write_port(0x3d5, 0);
        v.write_port(0x3d4, crtc::MAX_SCAN as u8);
        v.write_port(0x3d5, 0);
        v.write_port(0x3d4, crtc::H_DISP as u8);
        v.write_port(0x3d5, 0xff);
        v.write_port(0x3d4, crtc::V_DISP_END as u8);
        v.write_port(0x3d5, 0xff);
        assert_eq!(v.text_geometry(), None);
        assert!(v.draw_text(&*vram, true).is_none());
        // Every register index and port, any value: no panic.
        for port in PORT_BASE..PORT_BASE + PORT_COUNT {
            for x in [0u8, 0x1f, 0x7f, 0xff] {
                v.write_port(port, x);
                v.read_port(port);
            }
        }
    }
}
