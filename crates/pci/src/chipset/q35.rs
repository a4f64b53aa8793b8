//! The Q35 host bridge (MCH, 00:00.0 of `q35`): its identity as QEMU gives
//! it, PAM, SMRAM and PCIEXBAR, which places the ECAM window.

use std::sync::Arc;

use super::pam::{Pam, PamHook};
use super::{Preset, ECAM_BASE, QEMU_SUBSYSTEM};
use crate::access::ECAM_BUS_SIZE;
use crate::config::{overlaps, ConfigSpace, Ids};
use crate::function::{PciFunction, Placement};

pub const IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x29c0,
    revision: 0,
    class: 0x060000,
    subsystem_vendor: QEMU_SUBSYSTEM.0,
    subsystem: QEMU_SUBSYSTEM.1,
};
/// PCIEXBAR (64-bit): bit 0 enable, bits 2:1 length (0: 256 buses,
/// 1: 128, 2: 64), base in bits 35:26.
pub const PCIEXBAR: u16 = 0x60;
pub const PAM: u16 = 0x90;
pub const SMRAM: u16 = 0x9d;
pub const ESMRAMC: u16 = 0x9e;

/// The Q35 memory controller hub, function 0.
pub struct HostBridge {
    cfg: ConfigSpace,
    pam: Pam,
    ecam: Placement,
}

impl HostBridge {
    /// `ecam` is the ECAM window device; with [`Preset::DirectBoot`] it is at
    /// [`ECAM_BASE`] already and PCIEXBAR says so.
    pub fn new(ecam: Placement, preset: Preset, pam_hook: Option<Arc<dyn PamHook>>) -> Self {
        let mut cfg = ConfigSpace::endpoint(&IDS, false);
        let pam = Pam::new(&mut cfg, PAM, pam_hook);
        cfg.set_wmask_u32(PCIEXBAR, 0xfc00_0007);
        cfg.set_wmask_u32(PCIEXBAR + 4, 0xf);
        cfg.set_u8(SMRAM, 0x02);
        cfg.set_wmask_u8(SMRAM, 0x78);
        cfg.set_u8(ESMRAMC, 0x38);
        cfg.set_wmask_u8(ESMRAMC, 0x01);
        if preset == Preset::DirectBoot {
            cfg.set_u32(PCIEXBAR, ECAM_BASE as u32 | 1);
        }
        let mut f = HostBridge { cfg, pam, ecam };
        f.place();
        f
    }

    /// The ECAM window PCIEXBAR selects: (base, bytes).
    pub fn ecam_window(&self) -> Option<(u64, u64)> {
        let v = u64::from(self.cfg.read_u32(PCIEXBAR))
            | (u64::from(self.cfg.read_u32(PCIEXBAR + 4)) << 32);
        if v & 1 == 0 {
            return None;
        }
        let (buses, mask) = match (v >> 1) & 3 {
            0 => (256, 0xf_f000_0000),
            1 => (128, 0xf_f800_0000),
            2 => (64, 0xf_fc00_0000),
            _ => return None,
        };
        Some((v & mask, buses * ECAM_BUS_SIZE))
    }

    fn place(&mut self) {
        // The window's length is fixed by the device on the bus (256
        // buses); a smaller PCIEXBAR length is honoured by placing nothing
        // rather than a wrong-sized window.
        let at = self
            .ecam_window()
            .filter(|&(_, len)| len == super::ECAM_SIZE)
            .map(|(base, _)| base);
        self.ecam.move_to(at);
    }

    /// The PAM registers.
    pub fn pam(&self) -> &Pam {
        &self.pam
    }
}

impl PciFunction for HostBridge {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        let before = self
            .pam
            .touches(offset, data.len())
            .then(|| self.pam.ranges(&self.cfg));
        self.cfg.write(offset, data);
        if let Some(before) = before {
            self.pam.written(&before, &self.cfg, offset, data.len());
        }
        if overlaps(offset, data.len(), PCIEXBAR, 8) {
            self.place();
        }
    }
}
