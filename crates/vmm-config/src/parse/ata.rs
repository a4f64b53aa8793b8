//! `-device ich9-ahci|ahci` and `-device ide-hd|ide-cd`, as libvirt 9.0
//! writes them for `<disk bus='sata'>`: a drive names its AHCI port as
//! `bus=NAME.N` (q35's built-in controller is `ide`, a `-device` one its
//! id) and its medium by `drive=` (absent for an empty CD-ROM).

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
                    let Some(c) = c else {
                        if name == "ide" && chipset == Chipset::I440fx {
                            return Err(err(format!(
                                "{driver} on '{bus}': the PIIX3 IDE controller of pc is not emulated yet (use q35's SATA, or -device ich9-ahci)"
                            )));
                        }
                        return Err(err(format!("Bus '{bus}' not found")));
                    };
                    if n >= PORTS {
                        return Err(err(format!("Bus '{bus}' not found")));
                    }
                    (c, n)
                }
                // QEMU's first free port of the first controller.
                None => {
                    let c = 0;
                    if ahci.is_empty() {
                        return Err(err(format!("No 'IDE' bus found for device '{driver}'")));
                    }
                    let port = (0..PORTS)
                        .find(|p| !drives.iter().any(|x| x.controller == c && x.port == *p))
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
                .any(|x| x.controller == controller && x.port == port)
            {
                return Err(err(format!(
                    "IDE unit 0 is in use on {}",
                    d.bus.as_deref().unwrap_or("the bus")
                )));
            }
            let disk = match &d.drive {
                Some(drive) => Some(block.ata_disk(
                    drive,
                    d.id.clone(),
                    d.serial.clone(),
                    d.bootindex,
                    d.write_cache,
                )?),
                None => None,
            };
            drives.push(AtaDriveConfig {
                kind: d.kind,
                controller,
                port,
                id: d.id,
                disk,
                bootindex: d.bootindex,
            });
        }
        Ok((ahci, drives))
    }
}
