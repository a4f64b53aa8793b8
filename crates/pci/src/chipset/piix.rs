//! PIIX3's ISA bridge (00:01.0 of `pc`) with its PIRQ routing registers,
//! and PIIX4's power management function (00:01.3), whose PMBA places the
//! ACPI PM registers rvirt emulates (`rvirt_devices::AcpiPm`).

use std::sync::Arc;

use super::{Preset, PM_BASE};
use crate::config::{overlaps, ConfigSpace, Ids};
use crate::function::{PciFunction, Placement};
use crate::intx::{PirqRouter, ROUTE_DISABLED};

pub const ISA_IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x7000,
    revision: 0,
    class: 0x060100,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};
pub const PM_IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x7113,
    revision: 3,
    class: 0x068000,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};
/// PIRQA-D routing registers.
pub const PIRQ_ROUTE: u16 = 0x60;
/// PMBA: the PM registers' I/O base (64 ports).
pub const PMBA: u16 = 0x40;
/// PMREGMISC: bit 0 enables PMBA.
pub const PMREGMISC: u16 = 0x80;
/// SMBus base (no SMBus controller behind it).
pub const SMBBA: u16 = 0x90;
/// DEVACTB (device activity B); bit 25 enables SMIs from the APM control
/// port (0xb2).
pub const DEVACTB: u16 = 0x58;
pub const DEVACTB_APMC_EN: u32 = 1 << 25;

/// The PIIX3 PCI-to-ISA bridge.
pub struct IsaBridge {
    cfg: ConfigSpace,
    pirq: Arc<PirqRouter>,
}

impl IsaBridge {
    /// The bridge, routing PIRQA-D through `pirq`.
    pub fn new(pirq: Arc<PirqRouter>) -> Self {
        let mut cfg = ConfigSpace::endpoint(&ISA_IDS, false);
        // Functions 1-3 exist on the real part (and QEMU's): multifunction.
        cfg.set_multifunction(true);
        for i in 0..4 {
            cfg.set_u8(PIRQ_ROUTE + i, ROUTE_DISABLED);
            cfg.set_wmask_u8(PIRQ_ROUTE + i, 0x8f);
        }
        IsaBridge { cfg, pirq }
    }
}

impl PciFunction for IsaBridge {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        if overlaps(offset, data.len(), PIRQ_ROUTE, 4) {
            for i in 0..4u16 {
                self.pirq
                    .set_route(usize::from(i), self.cfg.read_u8(PIRQ_ROUTE + i));
            }
        }
    }
}

/// The PIIX4 power management function.
pub struct PowerManagement {
    cfg: ConfigSpace,
    pm: Placement,
}

impl PowerManagement {
    /// `pm` is the ACPI PM block; with [`Preset::DirectBoot`] it is already at
    /// [`PM_BASE`] and PMBA says so.
    pub fn new(pm: Placement, preset: Preset) -> Self {
        let mut cfg = ConfigSpace::endpoint(&PM_IDS, false);
        cfg.set_interrupt_pin(1);
        cfg.set_u32(PMBA, 1);
        cfg.set_wmask_u32(PMBA, 0xffc0);
        cfg.set_wmask_u8(PMREGMISC, 0x01);
        cfg.set_u32(SMBBA, 1);
        cfg.set_wmask_u32(SMBBA, 0xfff0);
        cfg.set_wmask_u8(0xd2, 0x0f);
        // rvirt has no SMM: APMC_EN reads as set and read-only, which tells
        // firmware SMM is set up already (SeaBIOS would otherwise raise an
        // SMI and wait for it forever), as QEMU does with SMM off.
        cfg.set_u32(DEVACTB, DEVACTB_APMC_EN);
        if preset == Preset::DirectBoot {
            cfg.set_u32(PMBA, u32::from(PM_BASE) | 1);
            cfg.set_u8(PMREGMISC, 1);
        }
        let mut f = PowerManagement { cfg, pm };
        f.place();
        f
    }

    fn place(&mut self) {
        let on = self.cfg.read_u8(PMREGMISC) & 1 != 0;
        let base = u64::from(self.cfg.read_u32(PMBA) & 0xffc0);
        self.pm.move_to((on && base != 0).then_some(base));
    }
}

impl PciFunction for PowerManagement {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        if overlaps(offset, data.len(), PMBA, 4) || overlaps(offset, data.len(), PMREGMISC, 1) {
            self.place();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rvirt_bus::{Bus, BusDevice};

    use super::*;

    struct Nothing;

    impl BusDevice for Nothing {
        fn read(&mut self, _: u64, _: &mut [u8]) {}
        fn write(&mut self, _: u64, _: &[u8]) {}
    }

    /// Firmware reads APMC_EN as "SMM set up" and cannot clear it.
    #[test]
    fn apmc_enable_reads_set_and_stays() {
        let pm = Placement::new(
            Arc::new(Bus::new("pio")),
            Arc::new(Mutex::new(Nothing)),
            12,
            None,
        );
        let mut f = PowerManagement::new(pm, Preset::Reset);
        assert_eq!(f.config().read_u32(DEVACTB), DEVACTB_APMC_EN);
        f.write_config(DEVACTB, &[0; 4]);
        assert_eq!(f.config().read_u32(DEVACTB), DEVACTB_APMC_EN);
    }
}
