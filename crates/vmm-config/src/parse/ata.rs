//! `-device ich9-ahci|ahci` and `-device ide-hd|ide-cd`, as libvirt 9.0
//! writes them for `<disk bus='sata'>`: a drive names its AHCI port as
//! `bus=NAME.N` (q35's built-in controller is `ide`, a `-device` one its
//! id) and its medium by `drive=` (absent for an empty CD-ROM). On pc,
//! `ide.0` and `ide.1` are the PIIX3 IDE's channels, each with units 0
//! and 1 (`unit=`), as libvirt writes them for `<disk bus='ide'>`.

use crate::config::{AhciConfig, AtaDriveConfig, AtaKind, Chipset, PciAddr, PciBus};
use crate::opts::Opts;
use crate::ConfigError;

use super::virtio::VirtioSpecs;

/// Ports per AHCI controller (ICH9's six).
const PORTS: u8 = 6;

/// A drive before its bus and medium are looked up.
struct DriveRef {
    kind: AtaKind,
    drive: Option<String>,
    bus: Option<String>,
    unit: Option<u32>,
    id: Option<String>,
    bootindex: Option<u32>,
    serial: Option<String>,
    write_cache: Option<bool>,
    /// How many `-device` controllers came before it: as in QEMU, a
    /// drive's bus must exist when the drive is created.
    controllers_before: usize,
}

/// The ATA options seen so far.
#[derive(Default)]
pub(super) struct AtaSpecs {
    /// The `-device` AHCI controllers' ids, in order.
    controllers: Vec<Option<String>>,
    drives: Vec<DriveRef>,
}

impl AtaSpecs {
    /// How many `-device` AHCI controllers so far.
    pub(super) fn controller_count(&self) -> usize {
        self.controllers.len()
    }

    /// `-device ich9-ahci|ahci` (its PCI placement is taken elsewhere).
    pub(super) fn controller(&mut self, o: &mut Opts) {
        self.controllers.push(o.get("id"));
    }

    /// The drives the board creates (`-drive if=ide`, `-cdrom`, …),
    /// before every `-device` one, as QEMU creates them.
    pub(super) fn board_drives(&mut self, board: Vec<super::legacy::BoardDrive>) {
        let refs = board.into_iter().map(|b| DriveRef {
            kind: b.kind,
            drive: b.drive,
            bus: Some(format!("ide.{}", b.bus)),
            unit: Some(u32::from(b.unit)),
            id: None,
            bootindex: None,
            serial: None,
            write_cache: None,
            controllers_before: 0,
        });
        self.drives.splice(0..0, refs);
    }

    /// `-device ide-hd|ide-cd,…`.
    pub(super) fn drive(&mut self, kind: AtaKind, o: &mut Opts) -> Result<(), ConfigError> {
        let drive = o.get("drive").filter(|d| !d.is_empty());
        if kind == AtaKind::Disk && drive.is_none() {
            return Err(o.error("Property 'ide-hd.drive' is required".into()));
        }
        let write_cache = match o.get("write-cache").as_deref() {
            None | Some("auto") => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(v) => {
                return Err(o.error(format!(
                    "Parameter 'write-cache' expects 'on', 'off' or 'auto', not '{v}'"
                )))
            }
        };
        let r = DriveRef {
            kind,
            drive,
            bus: o.get("bus"),
            unit: o.get_u32("unit")?,
            id: o.get("id"),
            bootindex: o.get_u32("bootindex")?,
            serial: o.get("serial"),
            write_cache,
            controllers_before: self.controllers.len(),
        };
        // Identity and geometry hints that change nothing rvirt's drives
        // report (they keep QEMU's defaults).
        o.ignore(&[
            "model",
            "wwn",
            "ver",
            "share-rw",
            "rerror",
            "werror",
            "logical_block_size",
            "physical_block_size",
            "discard_granularity",
            "rotation_rate",
        ]);
        self.drives.push(r);
        Ok(())
    }

    /// The controllers (q35's built-in one first, then the `-device` ones
    /// at `placed`) and the drives on them, their media taken from
    /// `block`.
    pub(super) fn finish(
        self,
        chipset: Chipset,
        placed: &[(usize, PciAddr)],
        block: &mut VirtioSpecs,
    ) -> Result<(Vec<AhciConfig>, Vec<AtaDriveConfig>), ConfigError> {
        let err = |m: String| ConfigError::new("-device", m);
        let mut ahci = Vec::new();
        if chipset == Chipset::Q35 {
            ahci.push(AhciConfig {
                id: None,
                builtin: true,
                addr: PciAddr {
                    bus: PciBus::Root,
                    slot: 31,
                    function: 2,
                    // QEMU makes every ICH9 function of slot 31 so.
                    multifunction: true,
                },
            });
        }
        let first_own = ahci.len();
        for (i, id) in self.controllers.iter().enumerate() {
            let Some((_, addr)) = placed.iter().find(|(n, _)| *n == i) else {
                return Err(err("ich9-ahci was not placed on PCI".into()));
            };
            ahci.push(AhciConfig {
                id: id.clone(),
                builtin: false,
                addr: *addr,
            });
        }
        let mut drives: Vec<AtaDriveConfig> = Vec::new();
        for d in self.drives {
            let driver = match d.kind {
                AtaKind::Disk => "ide-hd",
                AtaKind::Cdrom => "ide-cd",
            };
            let (controller, port) = match &d.bus {
                Some(bus) => {
                    let (name, n) = bus
                        .rsplit_once('.')
                        .and_then(|(name, n)| Some((name, n.parse::<u8>().ok()?)))
                        .ok_or_else(|| err(format!("Bus '{bus}' not found")))?;
                    let c = if name == "ide" && chipset == Chipset::Q35 {
                        Some(0)
                    } else {
                        self.controllers[..d.controllers_before]
                            .iter()
                            .position(|id| id.as_deref() == Some(name))
                            .map(|i| i + first_own)
                    };
                    if name == "ide" && chipset == Chipset::I440fx {
                        let unit = piix_unit(&drives, n, d.unit, bus, driver)?;
                        drives.push(d.into_config(true, 0, n * 2 + unit, block)?);
                        continue;
                    }
                    let Some(c) = c else {
                        return Err(err(format!("Bus '{bus}' not found")));
                    };
                    if n >= PORTS {
                        return Err(err(format!("Bus '{bus}' not found")));
                    }
                    (c, n)
                }
                // pc: the first PIIX3 IDE bus with a free unit, as QEMU
                // finds it (the built-in controller comes first).
                None if chipset == Chipset::I440fx
                    && drives.iter().filter(|x| x.ide).count() < 4 =>
                {
                    let n = u8::from(drives.iter().filter(|x| x.ide && x.port < 2).count() >= 2);
                    let bus = format!("ide.{n}");
                    let unit = piix_unit(&drives, n, d.unit, &bus, driver)?;
                    drives.push(d.into_config(true, 0, n * 2 + unit, block)?);
                    continue;
                }
                // QEMU's first free port of the first controller.
                None => {
                    let c = 0;
                    if ahci.is_empty() {
                        return Err(err(format!("No 'IDE' bus found for device '{driver}'")));
                    }
                    let port = (0..PORTS)
                        .find(|p| {
                            !drives
                                .iter()
                                .any(|x| !x.ide && x.controller == c && x.port == *p)
                        })
                        .ok_or_else(|| err(format!("No free bus for device '{driver}'")))?;
                    (c, port)
                }
            };
            if d.unit.is_some_and(|u| u != 0) {
                return Err(err(format!(
                    "Can't create IDE unit {}, bus supports only 1 units",
                    d.unit.unwrap_or_default()
                )));
            }
            if drives
                .iter()
                .any(|x| !x.ide && x.controller == controller && x.port == port)
            {
                return Err(err(format!(
                    "IDE unit 0 is in use on {}",
                    d.bus.as_deref().unwrap_or("the bus")
                )));
            }
            drives.push(d.into_config(false, controller, port, block)?);
        }
        Ok((ahci, drives))
    }
}

impl DriveRef {
    fn into_config(
        self,
        ide: bool,
        controller: usize,
        port: u8,
        block: &mut VirtioSpecs,
    ) -> Result<AtaDriveConfig, ConfigError> {
        let disk = match &self.drive {
            Some(drive) => Some(block.ata_disk(
                drive,
                self.id.clone(),
                self.serial.clone(),
                self.bootindex,
                self.write_cache,
            )?),
            None => None,
        };
        Ok(AtaDriveConfig {
            kind: self.kind,
            ide,
            controller,
            port,
            id: self.id,
            disk,
            bootindex: self.bootindex,
        })
    }
}

/// The unit a drive takes on PIIX3 IDE channel `n` (`ide.N`): the one it
/// names, or the first free, with QEMU's errors.
fn piix_unit(
    drives: &[AtaDriveConfig],
    n: u8,
    unit: Option<u32>,
    bus: &str,
    driver: &str,
) -> Result<u8, ConfigError> {
    let err = |m: String| ConfigError::new("-device", m);
    if n >= 2 {
        return Err(err(format!("Bus '{bus}' not found")));
    }
    let taken = |u: u8| drives.iter().any(|x| x.ide && x.port == n * 2 + u);
    match unit {
        Some(u) if u >= 2 => Err(err(format!(
            "Can't create IDE unit {u}, bus supports only 2 units"
        ))),
        Some(u) if taken(u as u8) => Err(err(format!("IDE unit {u} is in use"))),
        Some(u) => Ok(u as u8),
        None => (0..2)
            .find(|&u| !taken(u))
            .ok_or_else(|| err(format!("No free bus for device '{driver}'"))),
    }
}
