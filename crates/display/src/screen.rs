//! What the VNC server reads of a display device: the mode last set that
//! the video memory holds, and the rows the guest wrote since the
//! previous look (from the VRAM's dirty log, as QEMU's
//! `bochs_display_update` does). With a legacy VGA (the std `VGA`), what
//! its registers show while no DISPI mode is on: text mode drawn into a
//! picture kept here, its changes found by comparing pictures.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rvirt_vnc::{Damage, Framebuffer, Mode, PixelFormat, Rect};

use crate::dispi::{self, Dispi, ScanMode};
use crate::vga::{Banking, Output, Picture, Vga};
use crate::{Vram, PAGE_SIZE};

/// The text cursor's blink period, on then off (QEMU's
/// `VGA_TEXT_CURSOR_PERIOD_MS`: 16 frames of 60 Hz each way).
const CURSOR_HALF_PERIOD_MS: u128 = 1000 * 16 / 60;

/// What a guest that set no mode yet sees: a black 640x480 screen, the
/// size of QEMU's "Guest has not initialized the display" surface.
pub const BLANK: Mode = Mode {
    width: 640,
    height: 480,
    format: PixelFormat::XRGB8888,
};

/// The registers and the memory a device and its [`Screen`] share.
///
/// Lock order: the screen's own mutex, then `vga`, then `dispi` (a
/// leaf); never the other way.
pub struct DisplayState {
    dispi: Mutex<Dispi>,
    /// The legacy VGA, on the std `VGA` only.
    vga: Option<Mutex<Vga>>,
    vram: Arc<dyn Vram>,
}

/// The largest mode the std VGA's DISPI registers report under
/// `GETCAPS` (QEMU's `VBE_DISPI_MAX_*`).
pub const VBE_MAX_XRES: u16 = 16000;
pub const VBE_MAX_YRES: u16 = 12000;
pub const VBE_MAX_BPP: u16 = 32;

impl DisplayState {
    /// A device's state over `vram`, registers at reset.
    pub fn new(vram: Arc<dyn Vram>) -> Arc<Self> {
        Arc::new(DisplayState {
            dispi: Mutex::new(Dispi::default()),
            vga: None,
            vram,
        })
    }

    /// The std VGA's state: DISPI and a legacy VGA over `vram`.
    pub fn with_vga(vram: Arc<dyn Vram>) -> Arc<Self> {
        Arc::new(DisplayState {
            dispi: Mutex::new(Dispi::default()),
            vga: Some(Mutex::new(Vga::default())),
            vram,
        })
    }

    /// The DISPI registers.
    pub fn dispi(&self) -> MutexGuard<'_, Dispi> {
        self.dispi.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The legacy VGA's registers, if the device has them.
    pub fn vga(&self) -> Option<MutexGuard<'_, Vga>> {
        self.vga
            .as_ref()
            .map(|v| v.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sets both to reset (a new boot).
    pub fn reset(&self) {
        if let Some(mut v) = self.vga() {
            *v = Vga::default();
        }
        *self.dispi() = Dispi::default();
    }

    /// A DISPI register read as the device answers it: with a VGA, ID
    /// reads the version last written, and `GETCAPS` in ENABLE makes the resolution and depth registers read
    /// their largest values, as QEMU's std VGA (SeaBIOS's VGA BIOS probes
    /// them so).
    pub fn dispi_read(&self, i: usize) -> u16 {
        let d = self.dispi();
        // The std VGA keeps the interface version a guest wrote (SeaBIOS's
        // VGA BIOS writes ID0 and expects it back before it uses DISPI).
        if self.vga.is_some() && i == dispi::index::ID && d.reg(i) != 0 {
            return d.reg(i);
        }
        if self.vga.is_some() && d.reg(dispi::index::ENABLE) & dispi::GETCAPS != 0 {
            match i {
                dispi::index::XRES => return VBE_MAX_XRES,
                dispi::index::YRES => return VBE_MAX_YRES,
                dispi::index::BPP => return VBE_MAX_BPP,
                _ => {}
            }
        }
        d.read(i, self.vram.len())
    }

    /// A DISPI register write as the device takes it: with a VGA, turning
    /// a mode on resets the virtual width and offsets and clears the
    /// mode's memory unless `NOCLEARMEM` (QEMU's std VGA); an ID that is
    /// no interface version and a bank past the memory are refused.
    pub fn dispi_write(&self, i: usize, v: u16) {
        if self.vga.is_none() {
            self.dispi().write(i, v);
            return;
        }
        let mut d = self.dispi();
        match i {
            dispi::index::ENABLE => {
                let was_on = d.reg(dispi::index::ENABLE) & dispi::ENABLED != 0;
                if v & dispi::ENABLED != 0 && !was_on {
                    for r in [
                        dispi::index::VIRT_WIDTH,
                        dispi::index::X_OFFSET,
                        dispi::index::Y_OFFSET,
                    ] {
                        d.write(r, 0);
                    }
                    d.write(i, v);
                    if v & dispi::NOCLEARMEM == 0 {
                        if let Some(m) = d.mode(self.vram.len()) {
                            let zeros = vec![0u8; m.span().len()];
                            self.vram.write(m.offset, &zeros);
                        }
                    }
                } else {
                    d.write(i, v);
                }
            }
            dispi::index::ID if !(dispi::ID0..=dispi::ID5).contains(&v) => {}
            dispi::index::BANK if usize::from(v) >= self.vram.len() >> 16 => {
                tracing::debug!(bank = v, "vga: bank past the video memory refused");
            }
            _ => d.write(i, v),
        }
    }

    /// How the DISPI registers bear on the legacy window now.
    pub fn banking(&self) -> Banking {
        let d = self.dispi();
        Banking {
            vbe: d.reg(dispi::index::ENABLE) & dispi::ENABLED != 0,
            offset: usize::from(d.reg(dispi::index::BANK)) << 16,
        }
    }

    /// A byte read of the legacy window at `offset` (0 to 128 KiB).
    pub fn window_read(&self, offset: u64) -> u8 {
        let Some(mut v) = self.vga() else {
            return 0xff;
        };
        let bank = self.banking();
        v.read_mem(&*self.vram, offset, bank)
    }

    /// A byte write of the legacy window.
    pub fn window_write(&self, offset: u64, value: u8) {
        if let Some(mut v) = self.vga() {
            let bank = self.banking();
            v.write_mem(&*self.vram, offset, value, bank);
        }
    }

    /// The video memory.
    pub fn vram(&self) -> &Arc<dyn Vram> {
        &self.vram
    }

    /// The mode the registers describe now, if it can be shown.
    pub fn scan_mode(&self) -> Option<ScanMode> {
        self.dispi().mode(self.vram.len())
    }
}

/// A device's screen as `rvirt_vnc::Framebuffer`.
pub struct Screen {
    state: Arc<DisplayState>,
    shown: Mutex<Shown>,
}

struct Shown {
    /// The mode shown: the last valid one (an impossible mode leaves the
    /// display as it was); `None` before the first.
    mode: Option<ScanMode>,
    /// The mode changed and its full repaint is not reported yet.
    changed: bool,
    /// The legacy VGA's picture, while it is what is shown (instead of
    /// `mode`), as drawn at the last look.
    legacy: Option<Picture>,
    /// The legacy picture as `damage` last reported it.
    reported: Option<Picture>,
}

impl Screen {
    pub fn new(state: Arc<DisplayState>) -> Self {
        Screen {
            state,
            shown: Mutex::new(Shown {
                mode: None,
                changed: false,
                legacy: None,
                reported: None,
            }),
        }
    }

    /// The mode shown now (`None`: the blank screen before the first, or
    /// the legacy VGA's picture).
    pub fn shown(&self) -> Option<ScanMode> {
        let s = self.update();
        if s.legacy.is_some() {
            None
        } else {
            s.mode
        }
    }

    /// What the legacy VGA shows now, if a device has one and no DISPI
    /// mode is on: its picture (text mode), or black at the size shown
    /// last (blank, or a VGA graphics mode, which rvirt does not draw).
    fn legacy_picture(&self, shown: &Shown) -> Option<Picture> {
        let vga = self.state.vga()?;
        if self.state.dispi().reg(dispi::index::ENABLE) & dispi::ENABLED != 0 {
            return None;
        }
        let blank = |w: u16, h: u16| Picture {
            width: w,
            height: h,
            pixels: vec![0; usize::from(w) * usize::from(h)],
        };
        let (w, h) = match (&shown.legacy, shown.mode) {
            (Some(p), _) => (p.width, p.height),
            (None, Some(m)) => (m.width, m.height),
            (None, None) => (BLANK.width, BLANK.height),
        };
        let phase = START.get_or_init(Instant::now).elapsed().as_millis() / CURSOR_HALF_PERIOD_MS;
        Some(match vga.output() {
            Output::Text => vga
                .draw_text(&*self.state.vram, phase % 2 == 0)
                .unwrap_or_else(|| blank(w, h)),
            Output::Graphics => vga
                .draw_graphics(&*self.state.vram)
                .unwrap_or_else(|| blank(w, h)),
            Output::Blank => blank(w, h),
        })
    }

    /// The size of what the legacy VGA shows now (as
    /// [`Screen::legacy_picture`] would draw it, without drawing), if it
    /// is what is shown.
    fn legacy_size(&self, shown: &Shown) -> Option<(u16, u16)> {
        let vga = self.state.vga()?;
        if self.state.dispi().reg(dispi::index::ENABLE) & dispi::ENABLED != 0 {
            return None;
        }
        let text = match vga.output() {
            Output::Text => vga.text_geometry(),
            Output::Graphics => vga.graphics_geometry().map(|(w, h, _)| (w, h, 1, 1)),
            Output::Blank => None,
        };
        Some(match (text, &shown.legacy, shown.mode) {
            (Some((cols, rows, cw, ch)), _, _) => ((cols * cw) as u16, (rows * ch) as u16),
            (None, Some(p), _) => (p.width, p.height),
            (None, None, Some(m)) => (m.width, m.height),
            (None, None, None) => (BLANK.width, BLANK.height),
        })
    }

    /// Takes up the registers' mode if it is valid and new.
    fn update(&self) -> MutexGuard<'_, Shown> {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if self.state.vga.is_some() {
            let was_legacy = shown.legacy.is_some();
            if let Some(size) = self.legacy_size(&shown) {
                // Drawn afresh on every look, so a client's first full
                // update is never older than the guest's last write;
                // `damage` compares it with what it reported last.
                if shown.legacy.as_ref().map(|o| (o.width, o.height)) != Some(size) {
                    shown.changed = true;
                }
                let old = shown.legacy.take();
                shown.legacy = self.legacy_picture(&shown).or(old);
                return shown;
            }
            if was_legacy {
                shown.legacy = None;
                shown.reported = None;
                shown.mode = None;
            }
        }
        if let Some(m) = self.state.scan_mode() {
            if shown.mode != Some(m) {
                tracing::debug!(
                    width = m.width,
                    height = m.height,
                    bytes = m.bytes,
                    "display mode set"
                );
                shown.mode = Some(m);
                shown.changed = true;
            }
        }
        shown
    }
}

/// Whether any page of `range` is set in `bitmap`.
fn any_dirty(bitmap: &[u64], range: std::ops::Range<usize>) -> bool {
    if range.is_empty() {
        return false;
    }
    let (first, last) = (range.start / PAGE_SIZE, (range.end - 1) / PAGE_SIZE);
    (first..=last).any(|p| {
        bitmap
            .get(p / 64)
            .is_some_and(|w| w & (1u64 << (p % 64)) != 0)
    })
}

/// The rows of `m` that `bitmap`'s pages cover, as full-width rectangles
/// (runs of rows merged).
pub fn dirty_rows(m: &ScanMode, bitmap: &[u64]) -> Vec<Damage> {
    let mut out = Vec::new();
    let row = usize::from(m.width) * m.bytes;
    let mut start: Option<u16> = None;
    for y in 0..m.height {
        let at = m.offset + usize::from(y) * m.stride;
        let dirty = any_dirty(bitmap, at..at + row);
        match (dirty, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                out.push(Damage::Changed(Rect::new(0, s, m.width, y - s)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Damage::Changed(Rect::new(0, s, m.width, m.height - s)));
    }
    out
}

/// When the cursor's blinking started (one clock for every screen).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The rows in which `new` differs from `old` (same size), as full-width
/// rectangles.
fn changed_rows(old: &Picture, new: &Picture) -> Vec<Damage> {
    let w = usize::from(new.width);
    let mut out = Vec::new();
    let mut start: Option<u16> = None;
    for y in 0..new.height {
        let r = usize::from(y) * w..usize::from(y + 1) * w;
        let differs = old.pixels.get(r.clone()) != new.pixels.get(r);
        match (differs, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                out.push(Damage::Changed(Rect::new(0, s, new.width, y - s)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Damage::Changed(Rect::new(0, s, new.width, new.height - s)));
    }
    out
}

impl Framebuffer for Screen {
    fn mode(&self) -> Mode {
        let s = self.update();
        if let Some(p) = &s.legacy {
            return Mode {
                width: p.width,
                height: p.height,
                format: PixelFormat::XRGB8888,
            };
        }
        s.mode.map_or(BLANK, |m| m.mode())
    }

    fn damage(&self) -> Vec<Damage> {
        let mut shown = self.update();
        if let Some(new) = shown.legacy.clone() {
            // Just drawn (`update`), compared with what was reported last.
            let changed = std::mem::take(&mut shown.changed);
            let out = match &shown.reported {
                Some(o) if !changed && (o.width, o.height) == (new.width, new.height) => {
                    changed_rows(o, &new)
                }
                _ => vec![Damage::All],
            };
            shown.reported = Some(new);
            // The VRAM's log is read (and cleared) all the same, so a
            // DISPI mode set later starts from a clean log.
            let _ = self.state.vram.dirty();
            return out;
        }
        // The log is read (and so cleared) on every call, so the next one
        // reports only what came after.
        let dirty = self.state.vram.dirty();
        let Some(m) = shown.mode else {
            return Vec::new();
        };
        if std::mem::take(&mut shown.changed) {
            return vec![Damage::All];
        }
        match dirty {
            Some(bitmap) => dirty_rows(&m, &bitmap),
            None => vec![Damage::All],
        }
    }

    fn read_rows(&self, y: u16, out: &mut [u8]) {
        let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &shown.legacy {
            let w = usize::from(p.width);
            for (i, chunk) in out.chunks_mut(w * 4).enumerate() {
                let y = usize::from(y) + i;
                let row = p.pixels.get(y * w..(y + 1) * w).unwrap_or(&[]);
                for (px, o) in row.iter().zip(chunk.chunks_mut(4)) {
                    let b = px.to_le_bytes();
                    o.copy_from_slice(&b[..o.len()]);
                }
                let n = (row.len() * 4).min(chunk.len());
                chunk[n..].fill(0);
            }
            return;
        }
        let m = shown.mode;
        drop(shown);
        let Some(m) = m else {
            out.fill(0);
            return;
        };
        let row = usize::from(m.width) * m.bytes;
        for (i, chunk) in out.chunks_mut(row).enumerate() {
            let y = usize::from(y) + i;
            if y >= usize::from(m.height) {
                chunk.fill(0);
                continue;
            }
            let n = self.state.vram.read(m.offset + y * m.stride, chunk);
            chunk[n..].fill(0);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dispi::{index, ENABLED};

    /// Video memory on the heap with a dirty log kept by hand.
    pub(crate) struct HeapVram {
        bytes: Mutex<Vec<u8>>,
        dirty: Mutex<Option<Vec<u64>>>,
    }

    impl HeapVram {
        pub(crate) fn new(len: usize) -> Arc<Self> {
            Arc::new(HeapVram {
                bytes: Mutex::new(vec![0; len]),
                dirty: Mutex::new(None),
            })
        }

        /// A guest write: the bytes and their pages' bits.
        pub(crate) fn poke(&self, offset: usize, data: &[u8]) {
            self.write(offset, data);
            let mut d = self.dirty.lock().unwrap();
            let words = self.len().div_ceil(PAGE_SIZE * 64);
            let map = d.get_or_insert_with(|| vec![0; words]);
            for p in offset / PAGE_SIZE..=(offset + data.len() - 1) / PAGE_SIZE {
                map[p / 64] |= 1 << (p % 64);
            }
        }
    }

    impl Vram for HeapVram {
        fn len(&self) -> usize {
            self.bytes.lock().unwrap().len()
        }
        fn read(&self, offset: usize, out: &mut [u8]) -> usize {
            let b = self.bytes.lock().unwrap();
            let n = out.len().min(b.len().saturating_sub(offset));
            if n > 0 {
                out[..n].copy_from_slice(&b[offset..offset + n]);
            }
            n
        }
        fn write(&self, offset: usize, data: &[u8]) -> usize {
            let mut b = self.bytes.lock().unwrap();
            let n = data.len().min(b.len().saturating_sub(offset));
            if n > 0 {
                b[offset..offset + n].copy_from_slice(&data[..n]);
            }
            n
        }
        fn dirty(&self) -> Option<Vec<u64>> {
            let words = self.len().div_ceil(PAGE_SIZE * 64);
            Some(
                self.dirty
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap_or_else(|| vec![0; words]),
            )
        }
    }

    fn set_mode(s: &DisplayState, x: u16, y: u16, bpp: u16) {
        let mut d = s.dispi();
        d.write(index::XRES, x);
        d.write(index::YRES, y);
        d.write(index::BPP, bpp);
        d.write(index::ENABLE, ENABLED);
    }

    #[test]
    fn blank_until_a_mode_then_only_changed_rows() {
        let vram = HeapVram::new(4 << 20);
        let state = DisplayState::new(vram.clone());
        let screen = Screen::new(state.clone());
        assert_eq!(screen.mode(), BLANK);
        assert!(screen.damage().is_empty());
        let mut out = vec![1u8; 640 * 4 * 2];
        screen.read_rows(0, &mut out);
        assert!(out.iter().all(|&b| b == 0));

        set_mode(&state, 800, 600, 32);
        assert_eq!(screen.damage(), vec![Damage::All]);
        assert_eq!((screen.mode().width, screen.mode().height), (800, 600));
        assert!(screen.damage().is_empty(), "nothing written since");

        // One pixel on row 100 (stride 3200): its page spans rows 99-101
        // (page 78 holds bytes 319488-323583).
        vram.poke(100 * 3200 + 40, &[0xff, 0, 0, 0]);
        let d = screen.damage();
        assert_eq!(d.len(), 1);
        let Damage::Changed(r) = d[0] else {
            panic!("{d:?}")
        };
        assert!(r.y <= 100 && r.y + r.h > 100 && r.h <= 3, "{r:?}");
        assert_eq!((r.x, r.w), (0, 800));
        let mut row = vec![0u8; 3200];
        screen.read_rows(100, &mut row);
        assert_eq!(&row[40..44], &[0xff, 0, 0, 0]);
    }

    #[test]
    fn an_impossible_mode_keeps_the_screen() {
        let vram = HeapVram::new(4 << 20);
        let state = DisplayState::new(vram.clone());
        let screen = Screen::new(state.clone());
        set_mode(&state, 640, 480, 32);
        screen.damage();
        set_mode(&state, 4000, 4000, 32);
        assert!(screen.damage().is_empty());
        assert_eq!(screen.mode().width, 640);
        state.dispi().write(index::Y_OFFSET, 60000);
        assert_eq!(screen.mode().width, 640);
        // A short or odd buffer is filled as far as it goes, no panic.
        let mut odd = vec![7u8; 1001];
        screen.read_rows(479, &mut odd);
        screen.read_rows(u16::MAX, &mut odd);
        assert!(odd.iter().all(|&b| b == 0));
    }
}
