//! The EDID block at the start of BAR 2, which tells a driver (Linux's
//! bochs DRM driver) the display's preferred mode. Written by hand: the
//! base block is 128 fixed bytes, and no maintained crate writes EDID.
//!
//! Like QEMU's (`hw/display/edid-generate.c`): vendor "RHT", the name
//! "QEMU Monitor", 1280x800 preferred; unlike it, no DisplayID extension
//! (the second 128 bytes read zero), so the bytes are not QEMU's.

/// The bytes BAR 2 shows from offset 0.
pub const LEN: usize = 256;

/// The preferred mode.
pub const PREFERRED: (u16, u16) = (1280, 800);

/// A detailed timing descriptor for `w` by `h` at 60 Hz with CVT-like
/// blanking (reduced blanking: 160 pixels, 23 lines).
fn detailed_timing(w: u16, h: u16) -> [u8; 18] {
    let (hblank, vblank) = (160u32, 23u32);
    let (w32, h32) = (u32::from(w), u32::from(h));
    let clock = (w32 + hblank) * (h32 + vblank) * 60 / 10_000; // 10 kHz units
    let (hfront, hsync, vfront, vsync) = (48u32, 32u32, 3u32, 6u32);
    let (wmm, hmm) = (w32 * 254 / 1000, h32 * 254 / 1000); // 100 dpi
    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&(clock as u16).to_le_bytes());
    d[2] = w32 as u8;
    d[3] = hblank as u8;
    d[4] = (((w32 >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf)) as u8;
    d[5] = h32 as u8;
    d[6] = vblank as u8;
    d[7] = (((h32 >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf)) as u8;
    d[8] = hfront as u8;
    d[9] = hsync as u8;
    d[10] = ((vfront & 0xf) << 4 | (vsync & 0xf)) as u8;
    d[11] = 0;
    d[12] = wmm as u8;
    d[13] = hmm as u8;
    d[14] = (((wmm >> 8) & 0xf) << 4 | ((hmm >> 8) & 0xf)) as u8;
    d[17] = 0x18; // digital separate sync
    d
}

/// A display descriptor of `tag` with `text` (up to 13 bytes, ended by a
/// newline and padded with spaces, as EDID asks).
fn text_descriptor(tag: u8, text: &str) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = tag;
    let t = &mut d[5..];
    t.fill(b' ');
    let n = text.len().min(13);
    t[..n].copy_from_slice(&text.as_bytes()[..n]);
    if n < 13 {
        t[n] = b'\n';
    }
    d
}

/// The EDID: a base block (version 1.4) and no extension.
pub fn generate() -> [u8; LEN] {
    let mut e = [0u8; LEN];
    e[0..8].copy_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    // "RHT": three 5-bit letters, big-endian.
    let id = |c: u8| u16::from(c - b'@');
    let vendor = id(b'R') << 10 | id(b'H') << 5 | id(b'T');
    e[8..10].copy_from_slice(&vendor.to_be_bytes());
    e[10..12].copy_from_slice(&0x1234u16.to_le_bytes());
    e[16] = 1; // week
    e[17] = 24; // year: 2014 - 1990
    e[18] = 1; // version 1.4
    e[19] = 4;
    e[20] = 0xa5; // digital, 8 bits per colour, DisplayPort
    let (w, h) = PREFERRED;
    e[21] = (u32::from(w) * 254 / 100_000) as u8; // cm
    e[22] = (u32::from(h) * 254 / 100_000) as u8;
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // RGB 4:4:4, sRGB, preferred timing native
                  // sRGB chromaticity.
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    e[35] = 0x21; // 640x480@60, 800x600@60
    e[36] = 0x08; // 1024x768@60
    e[38..54].fill(0x01); // no standard timings
    e[54..72].copy_from_slice(&detailed_timing(w, h));
    e[72..90].copy_from_slice(&text_descriptor(0xfc, "QEMU Monitor"));
    // Range limits: 50-125 Hz vertical, 30-160 kHz horizontal, 200 MHz.
    let mut r = [0u8; 18];
    r[3] = 0xfd;
    r[5..10].copy_from_slice(&[50, 125, 30, 160, 20]);
    r[10] = 0x01;
    r[11..18].copy_from_slice(&[0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    e[90..108].copy_from_slice(&r);
    e[108..126].copy_from_slice(&text_descriptor(0xff, "0"));
    e[126] = 0; // extensions
    let sum = e[..127].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_and_preferred_mode() {
        let e = generate();
        assert_eq!(&e[..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(e[..128].iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
        assert_eq!(&e[8..10], &[0x49, 0x14], "RHT");
        let d = &e[54..72];
        let w = u16::from(d[2]) | u16::from(d[4] >> 4) << 8;
        let h = u16::from(d[5]) | u16::from(d[7] >> 4) << 8;
        assert_eq!((w, h), PREFERRED);
        assert_eq!(&e[77..90], b"QEMU Monitor\n");
        assert!(e[128..].iter().all(|&b| b == 0));
    }
}
