//! What the VNC server reads of a display device: the mode last set that
//! the video memory holds, and the rows the guest wrote since the
//! previous look (from the VRAM's dirty log, as QEMU's
//! `bochs_display_update` does).

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_vnc::{Damage, Framebuffer, Mode, PixelFormat, Rect};

use crate::dispi::{Dispi, ScanMode};
use crate::{Vram, PAGE_SIZE};

/// What a guest that set no mode yet sees: a black 640x480 screen, the
/// size of QEMU's "Guest has not initialized the display" surface.
pub const BLANK: Mode = Mode {
    width: 640,
    height: 480,
    format: PixelFormat::XRGB8888,
};

/// The registers and the memory a device and its [`Screen`] share.
///
/// Lock order: `dispi` is a leaf; the screen's own mutex is taken before
/// it, never after.
pub struct DisplayState {
    dispi: Mutex<Dispi>,
    vram: Arc<dyn Vram>,
}

impl DisplayState {
    /// A device's state over `vram`, registers at reset.
    pub fn new(vram: Arc<dyn Vram>) -> Arc<Self> {
        Arc::new(DisplayState {
            dispi: Mutex::new(Dispi::default()),
            vram,
        })
    }

    /// The DISPI registers.
    pub fn dispi(&self) -> MutexGuard<'_, Dispi> {
        self.dispi.lock().unwrap_or_else(|p| p.into_inner())
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
}

impl Screen {
    pub fn new(state: Arc<DisplayState>) -> Self {
        Screen {
            state,
            shown: Mutex::new(Shown {
                mode: None,
                changed: false,
            }),
        }
    }

    /// The mode shown now (`None`: the blank screen before the first).
    pub fn shown(&self) -> Option<ScanMode> {
        self.update().mode
    }

    /// Takes up the registers' mode if it is valid and new.
    fn update(&self) -> MutexGuard<'_, Shown> {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
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

impl Framebuffer for Screen {
    fn mode(&self) -> Mode {
        self.update().mode.map_or(BLANK, |m| m.mode())
    }

    fn damage(&self) -> Vec<Damage> {
        let mut shown = self.update();
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
        let m = self.shown.lock().unwrap_or_else(|p| p.into_inner()).mode;
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
