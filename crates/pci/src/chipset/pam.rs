//! The PAM registers: for each range of the BIOS area (0xC0000-0xFFFFF),
//! whether reads and writes go to RAM or to the PCI side (the ROM). They
//! are kept here, in the host bridge; mapping the ranges (RAM, ROM,
//! read-only RAM) is the firmware's business, reached through
//! [`PamHook`], which the machine provides when it has ROM to shadow.

use std::sync::Arc;

use crate::config::{overlaps, ConfigSpace};

/// Where reads and writes of a PAM range go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamMode {
    /// Both to the PCI side (the ROM): the reset state.
    Pci,
    /// Reads from RAM, writes to the PCI side.
    ReadOnly,
    /// Reads from the PCI side, writes to RAM.
    WriteOnly,
    /// Both to RAM.
    ReadWrite,
}

impl PamMode {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => PamMode::Pci,
            1 => PamMode::ReadOnly,
            2 => PamMode::WriteOnly,
            _ => PamMode::ReadWrite,
        }
    }
}

/// One PAM range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PamRange {
    pub base: u32,
    pub len: u32,
}

/// Told when the guest changes a PAM range's mode.
pub trait PamHook: Send + Sync {
    fn pam_changed(&self, range: PamRange, mode: PamMode);
}

/// The seven PAM registers at `offset` (0x59 on the i440FX, 0x90 on Q35):
/// PAM0's high nibble is 0xF0000-0xFFFFF; PAM1-6 split 0xC0000-0xEFFFF
/// into 16 KiB ranges, low nibble first.
pub struct Pam {
    offset: u16,
    hook: Option<Arc<dyn PamHook>>,
}

impl Pam {
    /// Makes the registers writable in `cfg`.
    pub fn new(cfg: &mut ConfigSpace, offset: u16, hook: Option<Arc<dyn PamHook>>) -> Self {
        cfg.set_wmask_u8(offset, 0x30);
        for i in 1..7 {
            cfg.set_wmask_u8(offset + i, 0x33);
        }
        Pam { offset, hook }
    }

    /// Every range with its mode as the registers in `cfg` say.
    pub fn ranges(&self, cfg: &ConfigSpace) -> Vec<(PamRange, PamMode)> {
        let mut out = vec![(
            PamRange {
                base: 0xf0000,
                len: 0x10000,
            },
            PamMode::from_bits(cfg.read_u8(self.offset) >> 4),
        )];
        for i in 1..7u16 {
            let v = cfg.read_u8(self.offset + i);
            let base = 0xc0000 + u32::from(i - 1) * 0x8000;
            for (k, bits) in [(0, v), (1, v >> 4)] {
                out.push((
                    PamRange {
                        base: base + k * 0x4000,
                        len: 0x4000,
                    },
                    PamMode::from_bits(bits),
                ));
            }
        }
        out
    }

    /// Applies a configuration write: the hook hears of every range whose
    /// mode it changed (`before` is the space before the write).
    pub fn written(
        &self,
        before: &[(PamRange, PamMode)],
        cfg: &ConfigSpace,
        offset: u16,
        len: usize,
    ) {
        if !overlaps(offset, len, self.offset, 7) {
            return;
        }
        let Some(hook) = &self.hook else { return };
        for (old, new) in before.iter().zip(self.ranges(cfg)) {
            if old.1 != new.1 {
                hook.pam_changed(new.0, new.1);
            }
        }
    }

    /// Whether a write of `len` bytes at `offset` reaches the registers.
    pub fn touches(&self, offset: u16, len: usize) -> bool {
        overlaps(offset, len, self.offset, 7)
    }
}
