//! A still picture of a framebuffer: what QMP's `screendump` writes, as
//! QEMU 7.2 writes it (binary PPM `P6` with a maximum of 255, or PNG with
//! 8-bit RGB).

use std::io::{self, Write};

use crate::framebuffer::{Framebuffer, PixelFormat};
use crate::pixel::Converter;

/// `screendump`'s `format` (QAPI `ImageFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// Binary portable pixmap.
    Ppm,
    /// Portable network graphics.
    Png,
}

/// A framebuffer's picture in 8-bit RGB, row after row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screenshot {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// `width * height` pixels of three bytes, red first.
    pub rgb: Vec<u8>,
}

/// 8-bit RGB as a 24-bit big-endian true-colour format, so the VNC
/// server's converter produces it.
const RGB888: PixelFormat = PixelFormat {
    bits_per_pixel: 24,
    depth: 24,
    big_endian: true,
    true_colour: true,
    red_max: 255,
    green_max: 255,
    blue_max: 255,
    red_shift: 16,
    green_shift: 8,
    blue_shift: 0,
};

impl Screenshot {
    /// Reads the whole screen in its current mode.
    pub fn capture(fb: &dyn Framebuffer) -> Self {
        let mode = fb.mode();
        let stride = mode.stride();
        let mut src = vec![0u8; stride * usize::from(mode.height)];
        if !src.is_empty() {
            fb.read_rows(0, &mut src);
        }
        let mut rgb = Vec::with_capacity(usize::from(mode.width) * usize::from(mode.height) * 3);
        Converter::new(mode.format, RGB888).convert(&src, &mut rgb);
        Self {
            width: mode.width,
            height: mode.height,
            rgb,
        }
    }

    /// Writes the picture in `format`.
    pub fn write(&self, format: ImageFormat, out: &mut impl Write) -> io::Result<()> {
        match format {
            ImageFormat::Ppm => {
                write!(out, "P6\n{} {}\n255\n", self.width, self.height)?;
                out.write_all(&self.rgb)
            }
            ImageFormat::Png => {
                let mut enc = png::Encoder::new(out, self.width.into(), self.height.into());
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                let mut w = enc.write_header().map_err(io::Error::other)?;
                w.write_image_data(&self.rgb).map_err(io::Error::other)?;
                w.finish().map_err(io::Error::other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framebuffer::{Damage, Mode};

    /// 3x2 pixels of x8r8g8b8: red, green, blue / white, black, grey.
    struct Tiny;

    impl Framebuffer for Tiny {
        fn mode(&self) -> Mode {
            Mode {
                width: 3,
                height: 2,
                format: PixelFormat::XRGB8888,
            }
        }
        fn damage(&self) -> Vec<Damage> {
            Vec::new()
        }
        fn read_rows(&self, y: u16, out: &mut [u8]) {
            let px: [u32; 6] = [0xff0000, 0x00ff00, 0x0000ff, 0xffffff, 0x000000, 0x808080];
            let from = usize::from(y) * 3;
            for (o, p) in out.chunks_exact_mut(4).zip(&px[from..]) {
                o.copy_from_slice(&p.to_le_bytes());
            }
        }
    }

    const RGB: [u8; 18] = [
        255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 128, 128,
    ];

    #[test]
    fn ppm_as_qemu_writes_it() {
        let shot = Screenshot::capture(&Tiny);
        assert_eq!(shot.rgb, RGB);
        let mut out = Vec::new();
        shot.write(ImageFormat::Ppm, &mut out).unwrap();
        assert_eq!(&out[..11], b"P6\n3 2\n255\n");
        assert_eq!(&out[11..], RGB);
    }

    #[test]
    fn png_decodes_to_the_same_pixels() {
        let shot = Screenshot::capture(&Tiny);
        let mut out = Vec::new();
        shot.write(ImageFormat::Png, &mut out).unwrap();
        let mut reader = png::Decoder::new(io::Cursor::new(out)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], RGB);
    }
}
