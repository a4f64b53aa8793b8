//! QEMU's legacy drive options, as QEMU 7.2 reads them on pc and q35:
//! `-drive file=…[,if=ide][,index=N|bus=B,unit=U][,media=disk|cdrom]`
//! (`if=ide` is `-drive`'s default there), `-cdrom FILE` (`-drive
//! file=FILE,index=2,media=cdrom`) and `-hda`/`-hdb`/`-hdc`/`-hdd FILE`
//! (indexes 0-3). Each is an `ide-hd` or `ide-cd` the board creates
//! before any `-device`: on pc's PIIX3 IDE two units per bus (`index` =
//! bus * 2 + unit), on q35's ICH9 AHCI one per port (`index` = port).
//! Their drives are named as QEMU names them (`ide0-hd0`, `ide2-cd0`)
//! unless given an `id=`. A CD-ROM is read-only; `-cdrom ""` is an empty
//! one. Other interfaces are refused: `if=scsi`, `sd`, `mtd`, `xen` with
//! QEMU's own words (it has no such bus on these machines either),
//! `if=floppy` (no floppy controller), `if=pflash` (no flash firmware)
//! and `if=virtio` (use `-device virtio-blk-pci`).

use crate::config::{AtaKind, Chipset};
use crate::disk::FormatNode;
use crate::opts::Opts;
use crate::ConfigError;

use super::block::{drive_image, BlockSpecs};

/// One legacy drive as given, placed once the machine is known.
pub(super) struct LegacyDrive {
    /// The option it came from, for errors (`-drive`, `-cdrom`, `-hda`).
    opt: &'static str,
    /// The option's text, as QEMU's errors quote it.
    text: String,
    index: Option<u32>,
    bus: Option<u32>,
    unit: Option<u32>,
    cdrom: bool,
    id: Option<String>,
    /// The medium and its `cache.writeback`; None: an empty CD-ROM.
    image: Option<(FormatNode, bool)>,
}

/// A drive the board creates: what `-device ide-hd|ide-cd,bus=ide.BUS,
/// unit=UNIT,drive=DRIVE` would ask for.
pub(super) struct BoardDrive {
    pub(super) kind: AtaKind,
    pub(super) drive: Option<String>,
    pub(super) bus: u8,
    pub(super) unit: u8,
}

/// `-drive …,if=ide` (or no `if=`); `v` is the option's text.
pub(super) fn drive(mut o: Opts, v: &str) -> Result<LegacyDrive, ConfigError> {
    let mut d = parse(&mut o, "-drive")?;
    o.finish()?;
    d.text = v.to_string();
    Ok(d)
}

/// `-cdrom FILE`, `-hda FILE` … `-hdd FILE`.
pub(super) fn shorthand(opt: &'static str, file: &str) -> Result<LegacyDrive, ConfigError> {
    let (index, media) = match opt {
        "-hda" => (0, "disk"),
        "-hdb" => (1, "disk"),
        "-hdc" => (2, "disk"),
        "-hdd" => (3, "disk"),
        _ => (2, "cdrom"),
    };
    // QEMU's own expansion; a comma in the file name is doubled.
    let file = file.replace(',', ",,");
    let v = if file.is_empty() && media == "cdrom" {
        format!("index={index},media={media}")
    } else {
        format!("file={file},index={index},media={media}")
    };
    let mut o = Opts::parse(opt, &v, None)?;
    let mut d = parse(&mut o, opt)?;
    o.finish()?;
    d.text = file;
    Ok(d)
}

fn parse(o: &mut Opts, opt: &'static str) -> Result<LegacyDrive, ConfigError> {
    let cdrom = match o.get("media").as_deref() {
        None | Some("disk") => false,
        Some("cdrom") => true,
        Some(m) => return Err(o.error(format!("'{m}' invalid media"))),
    };
    let index = o.get_u32("index")?;
    let bus = o.get_u32("bus")?;
    let unit = o.get_u32("unit")?;
    // QEMU takes bus=0 with an index (it cannot tell it from no bus).
    if index.is_some() && (bus.is_some_and(|b| b != 0) || unit.is_some()) {
        return Err(o.error("index cannot be used with bus and unit".into()));
    }
    let id = o.get("id");
    let image = if cdrom && o.get("file").is_none_or(|f| f.is_empty()) {
        o.ignore(&["file", "format", "readonly", "cache", "aio"]);
        None
    } else {
        Some(drive_image(o, cdrom)?)
    };
    o.ignore(&["if"]);
    Ok(LegacyDrive {
        opt,
        text: String::new(),
        index,
        bus,
        unit,
        cdrom,
        id,
        image,
    })
}

/// The refusal of an interface rvirt's machines do not have.
pub(super) fn refused_if(o: &Opts, iface: &str) -> ConfigError {
    o.error(match iface {
        "floppy" => "if=floppy: there is no floppy controller".into(),
        "pflash" => "if=pflash: flash firmware is not emulated (SeaBIOS is the firmware)".into(),
        "virtio" => {
            "if=virtio is not supported: use if=none with -device virtio-blk-pci,drive=ID".into()
        }
        "scsi" | "sd" | "mtd" | "xen" => {
            format!("machine type does not support if={iface},bus=0,unit=0")
        }
        other => format!("invalid if option '{other}'"),
    })
}

/// The legacy drives so far, in command-line order.
#[derive(Default)]
pub(super) struct LegacySpecs {
    drives: Vec<LegacyDrive>,
}

impl LegacySpecs {
    pub(super) fn push(&mut self, d: LegacyDrive) {
        self.drives.push(d);
    }

    /// Places every drive as QEMU's drive_new does, in order (an index,
    /// a bus and unit, or the first free place), and registers each
    /// medium in `block` under its name; the drives the board creates,
    /// in the order it creates them.
    pub(super) fn finish(
        self,
        chipset: Chipset,
        block: &mut BlockSpecs,
    ) -> Result<Vec<BoardDrive>, ConfigError> {
        // Units per bus and buses: PIIX3's two channels of two, ICH9
        // AHCI's six ports of one; microvm has neither.
        let (per_bus, buses) = match chipset {
            Chipset::I440fx => (2u32, 2u32),
            Chipset::Q35 => (1, 6),
            Chipset::Microvm => (2, 0),
        };
        let mut placed: Vec<(u32, u32)> = Vec::new();
        let mut out = Vec::new();
        for d in self.drives {
            let err = |m: String| ConfigError::new(d.opt, format!("{}: {m}", d.text));
            let (bus, unit) = match (d.index, d.bus, d.unit) {
                (Some(i), _, _) => (i / per_bus, i % per_bus),
                (None, bus, Some(u)) => {
                    if u >= per_bus {
                        return Err(err(format!("unit {u} too big (max is {})", per_bus - 1)));
                    }
                    (bus.unwrap_or(0), u)
                }
                // The first free unit from the bus given (or 0) on.
                (None, bus, None) => {
                    let (mut b, mut u) = (bus.unwrap_or(0), 0);
                    while placed.contains(&(b, u)) {
                        u += 1;
                        if u >= per_bus {
                            u = 0;
                            b += 1;
                        }
                    }
                    (b, u)
                }
            };
            if placed.contains(&(bus, unit)) {
                return Err(err(format!(
                    "drive with bus={bus}, unit={unit} (index={}) exists",
                    bus * per_bus + unit
                )));
            }
            if bus >= buses {
                return Err(err(format!(
                    "machine type does not support if=ide,bus={bus},unit={unit}"
                )));
            }
            placed.push((bus, unit));
            let kind = if d.cdrom {
                AtaKind::Cdrom
            } else {
                AtaKind::Disk
            };
            let name = d
                .id
                .clone()
                .unwrap_or_else(|| format!("ide{bus}-{}{unit}", if d.cdrom { "cd" } else { "hd" }));
            let drive = match d.image {
                Some((image, writeback)) => {
                    block.add_drive(d.opt, name.clone(), image, writeback)?;
                    Some(name)
                }
                None => None,
            };
            // Both fit in u8: bus < 6, unit < 2.
            out.push(BoardDrive {
                kind,
                drive,
                bus: bus as u8,
                unit: unit as u8,
            });
        }
        // The board creates them bus by bus, unit by unit.
        out.sort_by_key(|d| (d.bus, d.unit));
        Ok(out)
    }
}
