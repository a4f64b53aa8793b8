//! The std VGA: `-device VGA` and `-vga`.

use std::path::PathBuf;

use super::Builder;
use crate::config::{DisplayConfig, DisplayModel, PciAddr, PciBus};
use crate::opts::Opts;
use crate::ConfigError;

/// The VGA BIOS QEMU's `VGA` loads when `romfile=` is not given (Debian's
/// `seabios` package).
pub const VGA_ROMFILE: &str = "/usr/share/seabios/vgabios-stdvga.bin";

/// The largest video memory rvirt places: its 32-bit PCI window is
/// 256 MiB (QEMU takes up to 512).
const VGAMEM_MB_MAX: u64 = 256;

impl Builder {
    /// `-device VGA[,vgamem_mb=N,romfile=PATH,edid=,id=,bus=,addr=]`.
    pub(super) fn std_vga(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let mb = match o.get("vgamem_mb") {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| o.error(format!("vgamem_mb: '{v}' is not a number of MiB")))?,
            None => 16,
        };
        // As QEMU's vga_common_init: clamped to 1-512, then a power of two.
        let mb = mb.clamp(1, 512).next_power_of_two();
        if mb > VGAMEM_MB_MAX {
            return Err(o.error(format!(
                "vgamem_mb: {mb} MiB does not fit the {VGAMEM_MB_MAX} MiB 32-bit PCI window"
            )));
        }
        let romfile = match o.get("romfile") {
            Some(r) if r.is_empty() => None,
            Some(r) => Some(PathBuf::from(r)),
            None => Some(PathBuf::from(VGA_ROMFILE)),
        };
        // The EDID is always there (QEMU's default); the extended and
        // MMIO registers are always on (QEMU's defaults since 2.x).
        o.get_bool("edid")?;
        o.get_bool("qemu-extended-regs")?;
        o.get_bool("mmio")?;
        o.ignore(&["xres", "yres", "global-vmstate"]);
        self.add_vga(o, romfile, mb << 20)
    }

    fn add_vga(
        &mut self,
        o: &mut Opts,
        romfile: Option<PathBuf>,
        vgamem: u64,
    ) -> Result<(), ConfigError> {
        if self.cfg.display.is_some() {
            return Err(
                o.error("only one display device is supported (the VNC console shows one)".into())
            );
        }
        let id = self.pci.display("VGA", o)?;
        self.cfg.display = Some(DisplayConfig {
            model: DisplayModel::Vga,
            id,
            vgamem,
            addr: PciAddr {
                bus: PciBus::Root,
                slot: 0,
                function: 0,
                multifunction: false,
            },
            romfile,
        });
        Ok(())
    }

    /// `-vga std|none`: `std` is a `VGA` on the root bus, placed before
    /// every `-device` (QEMU makes it with the machine: 00:02.0 on pc,
    /// 00:01.0 on q35).
    pub(super) fn vga(&mut self, v: &str) -> Result<(), ConfigError> {
        let mut o = Opts::parse("-vga", v, Some("type"))?;
        match o.require("type")?.as_str() {
            "none" => {}
            "std" => {
                self.add_vga(&mut o, Some(PathBuf::from(VGA_ROMFILE)), 16 << 20)?;
                self.pci.first_is_last();
            }
            t => {
                return Err(o.error(format!(
                    "'{t}': only 'std' (QEMU's std VGA) and 'none' are supported"
                )))
            }
        }
        o.finish()
    }
}
