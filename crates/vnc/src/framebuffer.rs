//! What a display device offers the server: its mode, what changed, and
//! its rows of pixels.

/// A rectangle in framebuffer pixels (RFB coordinates are 16-bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left column.
    pub x: u16,
    /// Top row.
    pub y: u16,
    /// Width in pixels.
    pub w: u16,
    /// Height in pixels.
    pub h: u16,
}

impl Rect {
    /// A rectangle at (`x`, `y`) of `w` by `h` pixels.
    pub const fn new(x: u16, y: u16, w: u16, h: u16) -> Self {
        Self { x, y, w, h }
    }

    /// The whole of a `w` by `h` framebuffer.
    pub const fn screen(w: u16, h: u16) -> Self {
        Self::new(0, 0, w, h)
    }

    /// Whether it covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    fn right(&self) -> u32 {
        u32::from(self.x) + u32::from(self.w)
    }

    fn bottom(&self) -> u32 {
        u32::from(self.y) + u32::from(self.h)
    }

    /// The pixels in both, if any.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = self.right().min(other.right());
        let bottom = self.bottom().min(other.bottom());
        if right <= u32::from(x) || bottom <= u32::from(y) {
            return None;
        }
        // Both ends are within one of the inputs, so the sizes fit in u16.
        Some(Rect::new(
            x,
            y,
            (right - u32::from(x)) as u16,
            (bottom - u32::from(y)) as u16,
        ))
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = self.right().max(other.right());
        let bottom = self.bottom().max(other.bottom());
        // Each end is one input's end, and an input ends at most at
        // 2 * u16::MAX; clamp rather than wrap.
        Rect::new(
            x,
            y,
            (right - u32::from(x)).min(u32::from(u16::MAX)) as u16,
            (bottom - u32::from(y)).min(u32::from(u16::MAX)) as u16,
        )
    }

    /// Whether every pixel of `other` is in `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// The part inside a `w` by `h` framebuffer, if any.
    pub fn clip(&self, w: u16, h: u16) -> Option<Rect> {
        self.intersect(&Rect::screen(w, h))
    }
}

/// RFB's pixel format (RFC 6143 §7.4): how a pixel value packs red, green
/// and blue. Only true colour is produced by framebuffers; clients may ask
/// for a colour map, which the server fills with a fixed 3-3-2 palette.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// 8, 16 or 32 for clients; sources may also use 24.
    pub bits_per_pixel: u8,
    /// Significant bits.
    pub depth: u8,
    /// Multi-byte pixels are big-endian.
    pub big_endian: bool,
    /// Pixels hold colours (not colour-map indices).
    pub true_colour: bool,
    /// Largest red value (2^n - 1).
    pub red_max: u16,
    /// Largest green value.
    pub green_max: u16,
    /// Largest blue value.
    pub blue_max: u16,
    /// Bit position of red.
    pub red_shift: u8,
    /// Bit position of green.
    pub green_shift: u8,
    /// Bit position of blue.
    pub blue_shift: u8,
}

impl PixelFormat {
    /// 32-bit little-endian x8r8g8b8: what the server announces, and what
    /// VGA and bochs-display produce in their 32-bit modes.
    pub const XRGB8888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// 16-bit little-endian r5g6b5.
    pub const RGB565: PixelFormat = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: false,
        true_colour: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };

    /// The 3-3-2 palette clients asking for a colour map get (as QEMU's).
    pub(crate) const PALETTE_332: PixelFormat = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: true,
        red_max: 7,
        green_max: 7,
        blue_max: 3,
        red_shift: 0,
        green_shift: 3,
        blue_shift: 6,
    };

    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel).div_ceil(8)
    }

    /// The 16 bytes of the RFB structure.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = u8::from(self.true_colour);
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    /// Reads the RFB structure (not validated).
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    /// Checks a true-colour format: its size, and each channel inside the
    /// pixel. `source` allows 24 bits per pixel (a framebuffer, not a
    /// client).
    pub fn validate(&self, source: bool) -> Result<(), &'static str> {
        match self.bits_per_pixel {
            8 | 16 | 32 => {}
            24 if source => {}
            _ => return Err("bits per pixel not 8, 16 or 32"),
        }
        if !self.true_colour {
            return Ok(());
        }
        for (max, shift) in [
            (self.red_max, self.red_shift),
            (self.green_max, self.green_shift),
            (self.blue_max, self.blue_shift),
        ] {
            let bits = (16 - max.leading_zeros()).max(1);
            if u32::from(shift) + bits > u32::from(self.bits_per_pixel) {
                return Err("colour channel outside the pixel");
            }
        }
        Ok(())
    }
}

/// A display mode: what [`Framebuffer::read_rows`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The pixels' format (true colour, 8, 16, 24 or 32 bits).
    pub format: PixelFormat,
}

impl Mode {
    /// Bytes in one row.
    pub fn stride(&self) -> usize {
        usize::from(self.width) * self.format.bytes_per_pixel()
    }
}

/// One change since the previous [`Framebuffer::damage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// These pixels changed.
    Changed(Rect),
    /// The pixels at `dst` are now those that were at (`src_x`, `src_y`)
    /// (a scroll or a window move): clients that know CopyRect get it
    /// without the pixels.
    Copied {
        /// Left column of the source.
        src_x: u16,
        /// Top row of the source.
        src_y: u16,
        /// Where they are now.
        dst: Rect,
    },
    /// Everything changed (a mode set, a palette change).
    All,
}

/// A display device's framebuffer as the VNC server reads it. The device
/// implements it (std VGA, bochs-display); the server calls it from its
/// own threads, never a vCPU's.
pub trait Framebuffer: Send + Sync {
    /// The current mode. A change of size reaches clients as a
    /// DesktopSize update.
    fn mode(&self) -> Mode;

    /// What changed since the previous call. One caller (the server's
    /// refresh thread) calls it every refresh interval while clients are
    /// connected, so a device may poll its dirty log here.
    fn damage(&self) -> Vec<Damage>;

    /// Copies whole rows from row `y` on into `out` in the current mode's
    /// format, `out.len() / stride` rows. The mode may have changed since
    /// the caller read it: then fill what fits and leave the rest (the
    /// change is reported by [`Framebuffer::mode`] and repainted); never
    /// panic on a length that does not fit.
    fn read_rows(&self, y: u16, out: &mut [u8]);
}

/// A framebuffer of one colour that never changes: what rvirt-vmm serves
/// while no display device exists (QEMU's "Guest has not initialized the
/// display" screen, without the text).
#[derive(Debug)]
pub struct BlankFramebuffer {
    mode: Mode,
}

impl BlankFramebuffer {
    /// A black `width` by `height` screen in [`PixelFormat::XRGB8888`].
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            mode: Mode {
                width,
                height,
                format: PixelFormat::XRGB8888,
            },
        }
    }
}

impl Framebuffer for BlankFramebuffer {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn damage(&self) -> Vec<Damage> {
        Vec::new()
    }

    fn read_rows(&self, _y: u16, out: &mut [u8]) {
        out.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_algebra() {
        let a = Rect::new(10, 10, 20, 20);
        let b = Rect::new(25, 0, 10, 15);
        assert_eq!(a.intersect(&b), Some(Rect::new(25, 10, 5, 5)));
        assert_eq!(a.union(&b), Rect::new(10, 0, 25, 30));
        assert_eq!(a.intersect(&Rect::new(30, 30, 5, 5)), None);
        assert!(a.contains(&Rect::new(10, 10, 20, 20)));
        assert!(!a.contains(&b));
        assert_eq!(
            Rect::new(600, 400, 100, 100).clip(640, 480),
            Some(Rect::new(600, 400, 40, 80))
        );
        assert_eq!(
            Rect::new(u16::MAX, u16::MAX, u16::MAX, u16::MAX).clip(640, 480),
            None
        );
        let far = Rect::new(u16::MAX, 0, u16::MAX, 1);
        assert_eq!(Rect::new(0, 0, 1, 1).union(&far).w, u16::MAX);
    }

    #[test]
    fn pixel_formats() {
        assert_eq!(
            PixelFormat::from_bytes(&PixelFormat::XRGB8888.to_bytes()),
            PixelFormat::XRGB8888
        );
        assert!(PixelFormat::RGB565.validate(false).is_ok());
        let mut f = PixelFormat::XRGB8888;
        f.red_shift = 30;
        assert!(f.validate(false).is_err());
        // Found by fuzzing: a channel of no bits shifted past the pixel.
        f = PixelFormat::XRGB8888;
        f.blue_max = 0;
        f.blue_shift = 32;
        assert!(f.validate(false).is_err());
        f = PixelFormat::XRGB8888;
        f.bits_per_pixel = 24;
        assert!(f.validate(false).is_err());
        assert!(f.validate(true).is_ok());
    }
}
