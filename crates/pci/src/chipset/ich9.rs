//! ICH9's LPC bridge (00:1f.0 of `q35`): PIRQA-H routing and PMBASE with
//! ACPI_CNTL, which place the ACPI PM registers.

use std::sync::Arc;

use super::{Preset, PM_BASE};
use crate::config::{overlaps, ConfigSpace, Ids};
use crate::function::{PciFunction, Placement};
use crate::intx::{PirqRouter, ROUTE_DISABLED};

pub const IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x2918,
    revision: 2,
    class: 0x060100,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};
/// PMBASE: the ACPI registers' I/O base (128 ports).
pub const PMBASE: u16 = 0x40;
/// ACPI_CNTL: bit 7 enables PMBASE; bits 2:0 select the SCI's IRQ (0: 9).
pub const ACPI_CNTL: u16 = 0x44;
pub const ACPI_ENABLE: u8 = 0x80;
/// PIRQA-D and PIRQE-H routing registers.
pub const PIRQ_A_D: u16 = 0x60;
pub const PIRQ_E_H: u16 = 0x68;
/// Root complex base address (no chipset configuration registers behind
/// it here).
pub const RCBA: u16 = 0xf0;
// SMI_EN (PMBASE + 0x30) is not emulated: rvirt has no SMM, and a read of
// an unclaimed port returns all ones, so firmware finds APMC_EN (bit 5)
// set and skips its SMM setup, as on QEMU with SMM off.

/// The LPC bridge, function 0 of slot 31.
pub struct Lpc {
    cfg: ConfigSpace,
    pirq: Arc<PirqRouter>,
    pm: Placement,
}

impl Lpc {
    /// The bridge, routing PIRQA-H through `pirq` and placing the ACPI PM
    /// block `pm` (at [`PM_BASE`] already with [`Preset::DirectBoot`]).
    pub fn new(pirq: Arc<PirqRouter>, pm: Placement, preset: Preset) -> Self {
        let mut cfg = ConfigSpace::endpoint(&IDS, false);
        // Slot 31 has more functions on the real part (and QEMU's: SATA,
        // SMBus), so function 0 says multifunction.
        cfg.set_multifunction(true);
        for base in [PIRQ_A_D, PIRQ_E_H] {
            for i in 0..4 {
                cfg.set_u8(base + i, ROUTE_DISABLED);
                cfg.set_wmask_u8(base + i, 0x8f);
            }
        }
        cfg.set_u32(PMBASE, 1);
        cfg.set_wmask_u32(PMBASE, 0xff80);
        cfg.set_wmask_u8(ACPI_CNTL, 0x87);
        cfg.set_wmask_u32(RCBA, 0xffff_c001);
        if preset == Preset::DirectBoot {
            cfg.set_u32(PMBASE, u32::from(PM_BASE) | 1);
            cfg.set_u8(ACPI_CNTL, ACPI_ENABLE);
        }
        let mut f = Lpc { cfg, pirq, pm };
        f.place();
        f
    }

    fn place(&mut self) {
        let on = self.cfg.read_u8(ACPI_CNTL) & ACPI_ENABLE != 0;
        let base = u64::from(self.cfg.read_u32(PMBASE) & 0xff80);
        self.pm.move_to((on && base != 0).then_some(base));
    }

    fn route(&self) {
        for (wire, reg) in (0..4)
            .map(|i| PIRQ_A_D + i)
            .chain((0..4).map(|i| PIRQ_E_H + i))
            .enumerate()
        {
            self.pirq.set_route(wire, self.cfg.read_u8(reg));
        }
    }
}

impl PciFunction for Lpc {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        let len = data.len();
        if overlaps(offset, len, PIRQ_A_D, 4) || overlaps(offset, len, PIRQ_E_H, 4) {
            self.route();
        }
        if overlaps(offset, len, PMBASE, 4) || overlaps(offset, len, ACPI_CNTL, 1) {
            self.place();
        }
    }
}
