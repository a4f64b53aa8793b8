//! Pixel conversion from a framebuffer's format to a client's.

use crate::framebuffer::PixelFormat;

/// Converts rows of pixels from one true-colour format to another.
#[derive(Clone, Copy, Debug)]
pub struct Converter {
    src: PixelFormat,
    dst: PixelFormat,
}

fn load(format: &PixelFormat, b: &[u8]) -> u32 {
    match (b.len(), format.big_endian) {
        (1, _) => u32::from(b[0]),
        (2, false) => u32::from(u16::from_le_bytes([b[0], b[1]])),
        (2, true) => u32::from(u16::from_be_bytes([b[0], b[1]])),
        (3, false) => u32::from_le_bytes([b[0], b[1], b[2], 0]),
        (3, true) => u32::from_be_bytes([0, b[0], b[1], b[2]]),
        (_, false) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        (_, true) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
    }
}

fn store(format: &PixelFormat, v: u32, out: &mut Vec<u8>) {
    match (format.bytes_per_pixel(), format.big_endian) {
        (1, _) => out.push(v as u8),
        (2, false) => out.extend_from_slice(&(v as u16).to_le_bytes()),
        (2, true) => out.extend_from_slice(&(v as u16).to_be_bytes()),
        (3, false) => out.extend_from_slice(&v.to_le_bytes()[..3]),
        (3, true) => out.extend_from_slice(&v.to_be_bytes()[1..]),
        (_, false) => out.extend_from_slice(&v.to_le_bytes()),
        (_, true) => out.extend_from_slice(&v.to_be_bytes()),
    }
}

fn scale(v: u32, from: u16, to: u16) -> u32 {
    if from == to {
        v
    } else if from == 0 {
        0
    } else {
        // Rounded, so full intensity stays full.
        (v * u32::from(to) + u32::from(from) / 2) / u32::from(from)
    }
}

impl Converter {
    /// From `src` (a framebuffer's format) to `dst` (a client's; both
    /// validated).
    pub fn new(src: PixelFormat, dst: PixelFormat) -> Self {
        Self { src, dst }
    }

    fn same(&self) -> bool {
        let (s, d) = (&self.src, &self.dst);
        // Endianness does not matter for one byte; colour maps are
        // written as 3-3-2 true colour.
        s.bits_per_pixel == d.bits_per_pixel
            && (s.big_endian == d.big_endian || s.bits_per_pixel == 8)
            && (s.red_max, s.green_max, s.blue_max) == (d.red_max, d.green_max, d.blue_max)
            && (s.red_shift, s.green_shift, s.blue_shift)
                == (d.red_shift, d.green_shift, d.blue_shift)
    }

    /// Appends the pixels of `src` (whole source pixels) converted.
    pub fn convert(&self, src: &[u8], out: &mut Vec<u8>) {
        if self.same() {
            out.extend_from_slice(src);
            return;
        }
        let (s, d) = (&self.src, &self.dst);
        // Validated formats keep every shift inside the pixel; checked
        // shifts keep an unvalidated one from panicking all the same.
        let mask = |max: u16, shift: u8, v: u32| {
            v.checked_shr(u32::from(shift)).unwrap_or(0) & u32::from(max)
        };
        let place = |c: u32, shift: u8| c.checked_shl(u32::from(shift)).unwrap_or(0);
        for px in src.chunks_exact(s.bytes_per_pixel()) {
            let v = load(s, px);
            let r = scale(mask(s.red_max, s.red_shift, v), s.red_max, d.red_max);
            let g = scale(
                mask(s.green_max, s.green_shift, v),
                s.green_max,
                d.green_max,
            );
            let b = scale(mask(s.blue_max, s.blue_shift, v), s.blue_max, d.blue_max);
            let w = place(r, d.red_shift) | place(g, d.green_shift) | place(b, d.blue_shift);
            store(d, w, out);
        }
    }
}

/// ZRLE's compressed pixel (RFC 6143 §7.7.6): 32-bit true colour whose
/// channels fit in three of the bytes is sent in those three. Returns the
/// byte range of a client pixel to keep.
pub fn cpixel_range(format: &PixelFormat) -> std::ops::Range<usize> {
    let bpp = format.bytes_per_pixel();
    if format.bits_per_pixel != 32 || format.depth > 24 || !format.true_colour {
        return 0..bpp;
    }
    let used = (u32::from(format.red_max) << format.red_shift)
        | (u32::from(format.green_max) << format.green_shift)
        | (u32::from(format.blue_max) << format.blue_shift);
    let low = used & 0xff00_0000 == 0;
    let high = used & 0xff == 0;
    match (low, high, format.big_endian) {
        (true, _, false) => 0..3,
        (true, _, true) => 1..4,
        (_, true, false) => 1..4,
        (_, true, true) => 0..3,
        _ => 0..4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrgb_to_others() {
        let px = 0x00ff_8000u32.to_le_bytes(); // r=255 g=128 b=0
        let mut out = Vec::new();
        Converter::new(PixelFormat::XRGB8888, PixelFormat::RGB565).convert(&px, &mut out);
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), (31 << 11) | (32 << 5));
        let mut be = PixelFormat::XRGB8888;
        be.big_endian = true;
        out.clear();
        Converter::new(PixelFormat::XRGB8888, be).convert(&px, &mut out);
        assert_eq!(out, [0x00, 0xff, 0x80, 0x00]);
        out.clear();
        Converter::new(PixelFormat::XRGB8888, PixelFormat::PALETTE_332).convert(&px, &mut out);
        assert_eq!(out, [7 | (4 << 3)]);
        out.clear();
        Converter::new(PixelFormat::XRGB8888, PixelFormat::XRGB8888).convert(&px, &mut out);
        assert_eq!(out, px);
    }

    #[test]
    fn cpixels() {
        assert_eq!(cpixel_range(&PixelFormat::XRGB8888), 0..3);
        assert_eq!(cpixel_range(&PixelFormat::RGB565), 0..2);
        let shifted = PixelFormat {
            red_shift: 24,
            green_shift: 16,
            blue_shift: 8,
            ..PixelFormat::XRGB8888
        };
        assert_eq!(cpixel_range(&shifted), 1..4);
    }
}
