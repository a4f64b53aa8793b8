//! The i440FX host bridge (00:00.0 of `pc`): its identity as QEMU gives
//! it, the PAM registers and SMRAM.

use std::sync::Arc;

use super::pam::{Pam, PamHook};
use super::QEMU_SUBSYSTEM;
use crate::config::{ConfigSpace, Ids};
use crate::function::PciFunction;

pub const IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x1237,
    revision: 2,
    class: 0x060000,
    subsystem_vendor: QEMU_SUBSYSTEM.0,
    subsystem: QEMU_SUBSYSTEM.1,
};
/// PAM0.
pub const PAM: u16 = 0x59;
/// SMRAM control.
pub const SMRAM: u16 = 0x72;

/// The i440FX PCI and memory controller, function 0.
pub struct HostBridge {
    cfg: ConfigSpace,
    pam: Pam,
}

impl HostBridge {
    pub fn new(pam_hook: Option<Arc<dyn PamHook>>) -> Self {
        let mut cfg = ConfigSpace::endpoint(&IDS, false);
        let pam = Pam::new(&mut cfg, PAM, pam_hook);
        // C_BASE_SEG reads 010 (SMRAM at 0xA0000); the rest the guest sets.
        cfg.set_u8(SMRAM, 0x02);
        cfg.set_wmask_u8(SMRAM, 0x78);
        HostBridge { cfg, pam }
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
    }
}
