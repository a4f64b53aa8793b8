//! QEMU's `bochs-display`: a PCI function (1234:1111, class 0x0380
//! "display controller", revision 2) with no VGA in it. BAR 0 is the VRAM
//! (prefetchable, 32-bit); BAR 2 (4 KiB) holds, at QEMU's offsets, the
//! EDID (0x000), the DISPI registers (0x500, one 16-bit register every two
//! bytes) and QEMU's extended registers (0x600: the area's size, and the
//! framebuffer's byte order).

use std::sync::Arc;

use rvirt_pci::caps::{self, PortType};
use rvirt_pci::{BarKind, BarSpec, ConfigSpace, Ids, PciFunction};

use crate::dispi;
use crate::edid;
use crate::screen::DisplayState;

/// QEMU's vendor and its VGA device id (the Bochs VBE adapter's).
pub const VENDOR_ID: u16 = 0x1234;
pub const DEVICE_ID: u16 = 0x1111;
/// Red Hat/Qumranet's subsystem, QEMU's default for every device.
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
pub const SUBSYSTEM_ID: u16 = 0x1100;

/// The VRAM BAR and the register BAR.
pub const VRAM_BAR: u8 = 0;
pub const MMIO_BAR: u8 = 2;
/// The register BAR's size.
pub const MMIO_SIZE: u64 = 0x1000;

/// Offsets inside the register BAR.
pub const DISPI_OFFSET: u64 = 0x500;
pub const QEXT_OFFSET: u64 = 0x600;
/// The DISPI area: eleven registers (`PCI_VGA_BOCHS_SIZE`).
const DISPI_LEN: u64 = 0x0b * 2;
/// QEMU's extended registers: their size and the byte order.
const QEXT_LEN: u64 = 8;
const QEXT_SIZE_REG: u64 = 0;
const QEXT_BYTEORDER_REG: u64 = 4;
pub const QEXT_LITTLE_ENDIAN: u32 = 0x1e1e_1e1e;
pub const QEXT_BIG_ENDIAN: u32 = 0xbebe_bebe;

/// The video memory sizes QEMU takes (`vgamem=`): 4 to 256 MiB, rounded
/// up to a power of two.
pub const VGAMEM_DEFAULT: u64 = 16 << 20;
pub const VGAMEM_MIN: u64 = 4 << 20;
pub const VGAMEM_MAX: u64 = 256 << 20;

/// Why a `vgamem` is refused (QEMU's words).
pub fn check_vgamem(bytes: u64) -> Result<u64, &'static str> {
    if bytes < VGAMEM_MIN {
        return Err("video memory too small");
    }
    if bytes > VGAMEM_MAX {
        return Err("video memory too big");
    }
    Ok(bytes.next_power_of_two())
}

/// Where the function sits, which decides its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Conventional,
    /// Behind a PCI Express port: the Express capability, as QEMU adds it.
    Express,
}

/// The DISPI registers and the EDID as BAR 2 decodes them; shared with
/// the std VGA's BAR 2 (the same layout plus the VGA ports at 0x400,
/// which [`crate::stdvga`] decodes before it).
pub struct RegisterBar {
    state: Arc<DisplayState>,
    edid: [u8; edid::LEN],
}

impl RegisterBar {
    pub fn new(state: Arc<DisplayState>) -> Self {
        RegisterBar {
            state,
            edid: edid::generate(),
        }
    }

    /// A read of `data.len()` bytes at `offset`; what no register backs
    /// reads as all ones.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let len = data.len() as u64;
        if offset + len <= edid::LEN as u64 {
            let o = offset as usize;
            data.copy_from_slice(&self.edid[o..o + data.len()]);
        } else if offset >= DISPI_OFFSET && offset + len <= DISPI_OFFSET + DISPI_LEN {
            // 16-bit registers, wider accesses split into them and a byte
            // read taking the low byte, as QEMU's memory core adjusts.
            for (i, chunk) in data.chunks_mut(2).enumerate() {
                let index = ((offset - DISPI_OFFSET) / 2) as usize + i;
                let v = self.state.dispi_read(index).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        } else if offset >= QEXT_OFFSET && offset + len <= QEXT_OFFSET + QEXT_LEN && len == 4 {
            let v = match offset - QEXT_OFFSET {
                QEXT_SIZE_REG => QEXT_LEN as u32,
                QEXT_BYTEORDER_REG if self.state.dispi().big_endian => QEXT_BIG_ENDIAN,
                QEXT_BYTEORDER_REG => QEXT_LITTLE_ENDIAN,
                _ => 0,
            };
            data.copy_from_slice(&v.to_le_bytes());
        } else {
            data.fill(0xff);
        }
    }

    /// A write of `data` at `offset`; the EDID and holes ignore it.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let len = data.len() as u64;
        if offset >= DISPI_OFFSET && offset + len <= DISPI_OFFSET + DISPI_LEN {
            for (i, chunk) in data.chunks(2).enumerate() {
                let index = ((offset - DISPI_OFFSET) / 2) as usize + i;
                let mut v = [0u8; 2];
                v[..chunk.len()].copy_from_slice(chunk);
                self.state.dispi_write(index, u16::from_le_bytes(v));
            }
        } else if offset == QEXT_OFFSET + QEXT_BYTEORDER_REG && len == 4 {
            match u32::from_le_bytes([data[0], data[1], data[2], data[3]]) {
                QEXT_BIG_ENDIAN => self.state.dispi().big_endian = true,
                QEXT_LITTLE_ENDIAN => self.state.dispi().big_endian = false,
                _ => {}
            }
        } else {
            tracing::debug!(offset, len, "bochs-display: write to no register");
        }
    }
}

/// The PCI function.
pub struct BochsDisplay {
    config: ConfigSpace,
    state: Arc<DisplayState>,
    regs: RegisterBar,
}

impl BochsDisplay {
    /// The function over `state` (whose VRAM size, a power of two, is BAR
    /// 0's), registers at reset.
    pub fn new(state: Arc<DisplayState>, placement: Placement) -> Self {
        let ids = Ids {
            vendor: VENDOR_ID,
            device: DEVICE_ID,
            revision: 2,
            class: 0x03_80_00,
            subsystem_vendor: SUBSYSTEM_VENDOR_ID,
            subsystem: SUBSYSTEM_ID,
        };
        let express = placement == Placement::Express;
        let mut config = ConfigSpace::endpoint(&ids, express);
        if express {
            caps::add_pcie(&mut config, PortType::Endpoint);
        }
        let vram = (state.vram().len() as u64).next_power_of_two();
        config.add_bar(
            usize::from(VRAM_BAR),
            BarSpec {
                kind: BarKind::Mem32,
                size: vram,
                prefetchable: true,
            },
        );
        config.add_bar(usize::from(MMIO_BAR), BarSpec::mem32(MMIO_SIZE));
        *state.dispi() = dispi::Dispi::default();
        BochsDisplay {
            config,
            regs: RegisterBar::new(state.clone()),
            state,
        }
    }
}

impl PciFunction for BochsDisplay {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            // Only while the VRAM slot is not where the BAR is (it is
            // being moved): the memory itself answers.
            VRAM_BAR => {
                let n = usize::try_from(offset).map_or(0, |o| self.state.vram().read(o, data));
                data[n..].fill(0xff);
            }
            MMIO_BAR => self.regs.read(offset, data),
            _ => data.fill(0xff),
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        match bar {
            VRAM_BAR => {
                if let Ok(o) = usize::try_from(offset) {
                    self.state.vram().write(o, data);
                }
            }
            MMIO_BAR => self.regs.write(offset, data),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispi::index;
    use crate::screen::tests::HeapVram;
    use rvirt_pci::config::reg;

    fn device() -> (BochsDisplay, Arc<DisplayState>) {
        let state = DisplayState::new(HeapVram::new(16 << 20));
        (
            BochsDisplay::new(state.clone(), Placement::Conventional),
            state,
        )
    }

    fn r16(d: &mut BochsDisplay, off: u64) -> u16 {
        let mut b = [0u8; 2];
        d.read_bar(MMIO_BAR, off, &mut b);
        u16::from_le_bytes(b)
    }

    fn w16(d: &mut BochsDisplay, i: usize, v: u16) {
        d.write_bar(MMIO_BAR, DISPI_OFFSET + 2 * i as u64, &v.to_le_bytes());
    }

    #[test]
    fn identity_as_qemu() {
        let (d, _) = device();
        let c = d.config();
        assert_eq!(c.read_u16(reg::VENDOR_ID), 0x1234);
        assert_eq!(c.read_u16(reg::DEVICE_ID), 0x1111);
        assert_eq!(c.read_u32(reg::REVISION), 0x0380_0002);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_VENDOR_ID), 0x1af4);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_ID), 0x1100);
        assert_eq!(c.bar(0).unwrap().size, 16 << 20);
        assert!(c.bar(0).unwrap().prefetchable);
        assert_eq!(c.bar(2).unwrap().size, 0x1000);
        assert_eq!(c.interrupt_pin(), 0);
    }

    #[test]
    fn registers_at_qemus_offsets() {
        let (mut d, state) = device();
        assert_eq!(r16(&mut d, DISPI_OFFSET), 0xb0c5);
        assert_eq!(r16(&mut d, DISPI_OFFSET + 2 * 0xa), 256, "16 MiB in 64 KiB");
        w16(&mut d, index::XRES, 1024);
        w16(&mut d, index::YRES, 768);
        // A 32-bit write sets two registers.
        d.write_bar(MMIO_BAR, DISPI_OFFSET + 6, &[32, 0, 1, 0]);
        assert_eq!(r16(&mut d, DISPI_OFFSET + 2), 1024);
        let m = state.scan_mode().unwrap();
        assert_eq!((m.width, m.height, m.bytes), (1024, 768, 4));
        // Past the register file: ignored, all ones.
        w16(&mut d, 0xb, 5);
        assert_eq!(r16(&mut d, DISPI_OFFSET + 0x16), 0xffff);
        // QEMU's extended registers.
        let mut b = [0u8; 4];
        d.read_bar(MMIO_BAR, QEXT_OFFSET, &mut b);
        assert_eq!(u32::from_le_bytes(b), 8);
        d.read_bar(MMIO_BAR, QEXT_OFFSET + 4, &mut b);
        assert_eq!(u32::from_le_bytes(b), QEXT_LITTLE_ENDIAN);
        d.write_bar(MMIO_BAR, QEXT_OFFSET + 4, &QEXT_BIG_ENDIAN.to_le_bytes());
        assert!(state.scan_mode().unwrap().format.big_endian);
        // The EDID's header, read in one 8-byte access.
        let mut e = [0u8; 8];
        d.read_bar(MMIO_BAR, 0, &mut e);
        assert_eq!(e, [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        d.read_bar(MMIO_BAR, 0xff0, &mut b);
        assert_eq!(b, [0xff; 4]);
    }

    #[test]
    fn vram_through_the_bar_and_past_its_end() {
        let (mut d, state) = device();
        d.write_bar(VRAM_BAR, 8, &[1, 2, 3, 4]);
        let mut b = [0u8; 4];
        state.vram().read(8, &mut b);
        assert_eq!(b, [1, 2, 3, 4]);
        d.write_bar(VRAM_BAR, (16 << 20) - 2, &[9, 9, 9, 9]);
        d.read_bar(VRAM_BAR, (16 << 20) - 2, &mut b);
        assert_eq!(b, [9, 9, 0xff, 0xff]);
        d.read_bar(VRAM_BAR, u64::MAX, &mut b);
        assert_eq!(b, [0xff; 4]);
    }

    #[test]
    fn vgamem_as_qemu() {
        assert_eq!(check_vgamem(16 << 20), Ok(16 << 20));
        assert_eq!(check_vgamem(5 << 20), Ok(8 << 20));
        assert!(check_vgamem(1 << 20).is_err());
        assert!(check_vgamem(512 << 20).is_err());
    }
}
