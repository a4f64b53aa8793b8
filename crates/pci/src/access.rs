//! The two ways a guest reaches configuration space: the PC's
//! CONFIG_ADDRESS/CONFIG_DATA ports (0xCF8/0xCFC, "configuration mechanism
//! #1") and PCI Express's memory-mapped ECAM window.
//!
//! Both hold their segment weakly: they sit on the machine's buses, which
//! the segment holds (to move BARs), and the segment holds the ECAM window
//! (through the host bridge that places it); strong references both ways
//! would keep a torn-down machine alive.

use std::sync::Weak;

use rvirt_bus::{BusDevice, SharedDevice};

use crate::segment::PciSegment;

/// The ports' base and length: CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at
/// 0xcfc-0xcff.
pub const CONFIG_IO_BASE: u16 = 0xcf8;
pub const CONFIG_IO_LEN: u16 = 8;
/// Bytes of ECAM per bus.
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// CONFIG_ADDRESS/CONFIG_DATA at 0xcf8-0xcff.
///
/// Port 0xcf9 inside the range is the PIIX/ICH reset control register for
/// byte accesses, as on the real chipsets; that device is passed in and
/// reached through this one, since both cannot sit on the bus at once.
pub struct ConfigIo {
    segment: Weak<PciSegment>,
    address: u32,
    reset_control: Option<SharedDevice>,
}

/// CONFIG_ADDRESS's enable bit.
const ENABLE: u32 = 1 << 31;

impl ConfigIo {
    pub fn new(segment: Weak<PciSegment>, reset_control: Option<SharedDevice>) -> Self {
        ConfigIo {
            segment,
            address: 0,
            reset_control,
        }
    }

    /// The bus, devfn and register CONFIG_ADDRESS selects, if enabled.
    fn target(&self, data_offset: u64) -> Option<(u8, u8, u16)> {
        if self.address & ENABLE == 0 {
            return None;
        }
        let bus = (self.address >> 16) as u8;
        let devfn = (self.address >> 8) as u8;
        let reg = (self.address & 0xfc) as u16 + data_offset as u16;
        Some((bus, devfn, reg))
    }
}

impl BusDevice for ConfigIo {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data.len()) {
            (0, 4) => data.copy_from_slice(&self.address.to_le_bytes()),
            (1, 1) if self.reset_control.is_some() => {
                if let Some(rc) = &self.reset_control {
                    rc.lock().unwrap_or_else(|p| p.into_inner()).read(0, data);
                }
            }
            (4..=7, _) => match (self.target(offset - 4), self.segment.upgrade()) {
                (Some((bus, devfn, reg)), Some(s)) => s.read_config(bus, devfn, reg, data),
                _ => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (0, 4) => {
                // Bits 1:0 are reserved and read as zero.
                self.address = u32::from_le_bytes(data.try_into().expect("4 bytes")) & !0x3;
            }
            (1, 1) => {
                if let Some(rc) = &self.reset_control {
                    rc.lock().unwrap_or_else(|p| p.into_inner()).write(0, data);
                }
            }
            (4..=7, _) => {
                if let (Some((bus, devfn, reg)), Some(s)) =
                    (self.target(offset - 4), self.segment.upgrade())
                {
                    s.write_config(bus, devfn, reg, data);
                }
            }
            _ => tracing::debug!(offset, len = data.len(), "odd access to CONFIG_ADDRESS"),
        }
    }
}

/// The ECAM window: 1 MiB per bus, 4 KiB per function.
pub struct Ecam {
    segment: Weak<PciSegment>,
}

impl Ecam {
    pub fn new(segment: Weak<PciSegment>) -> Self {
        Ecam { segment }
    }

    fn decode(offset: u64, len: usize) -> Option<(u8, u8, u16)> {
        let reg = (offset & 0xfff) as u16;
        // An access must stay inside one function's space.
        (usize::from(reg) + len <= 0x1000 && len <= 4).then_some((
            (offset >> 20) as u8,
            ((offset >> 12) & 0xff) as u8,
            reg,
        ))
    }
}

impl BusDevice for Ecam {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (Self::decode(offset, data.len()), self.segment.upgrade()) {
            (Some((bus, devfn, reg)), Some(s)) => s.read_config(bus, devfn, reg, data),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (Self::decode(offset, data.len()), self.segment.upgrade()) {
            (Some((bus, devfn, reg)), Some(s)) => s.write_config(bus, devfn, reg, data),
            _ => tracing::debug!(offset, len = data.len(), "odd ECAM access"),
        }
    }
}
