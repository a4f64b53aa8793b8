//! The ATA controllers: AHCI (q35's built-in 00:1f.2 and `-device
//! ich9-ahci`) with their `ide-hd` and `ide-cd` drives on the block layer,
//! built once (the disks stay open across reboots; each boot re-attaches
//! the controller to its memory and interrupts, [`crate::device_manager`]'s
//! PCI plan), served on the device thread ([`AtaSubscriber`]).
//!
//! A disk runs on its configured engine (its completion descriptor is
//! fixed for the VM's life); a CD-ROM always on the inline engine, on the
//! device thread, since its medium (and so its descriptor) changes: its
//! reads are few and small.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use rvirt_ata::ahci::{Ahci, Attachment};
use rvirt_ata::drive::{Drive, Identity, Kind};
use rvirt_block::{AioMode, Stats};
use rvirt_vmm_config::{AhciConfig, AtaKind, VmConfig};
use vmm_sys_util::eventfd::EventFd;

use crate::disk::{open_image, open_options, DiskModel};
use crate::event_loop::Subscriber;
use crate::VmmError;

/// A controller and how the command line placed it.
pub(crate) struct AtaController {
    pub(crate) ahci: Arc<Mutex<Ahci>>,
    pub(crate) cfg: AhciConfig,
}

/// A drive as the monitor and firmware see it.
pub(crate) struct AtaDrive {
    pub(crate) controller: usize,
    pub(crate) port: u8,
    pub(crate) bootindex: Option<u32>,
}

/// What [`build`] opens: the controllers, their drives, and the drives'
/// media as the monitor reports them.
pub(crate) struct Built {
    pub(crate) controllers: Vec<AtaController>,
    pub(crate) drives: Vec<AtaDrive>,
    pub(crate) models: Vec<DiskModel>,
}

/// Opens every ATA drive and builds the controllers; `first` is the
/// first disk number free for anonymous node names.
pub(crate) fn build(cfg: &VmConfig, first: usize) -> Result<Built, VmmError> {
    let mut ports: Vec<Vec<Option<Attachment>>> = cfg
        .ahci
        .iter()
        .map(|_| (0..rvirt_ata::ahci::PORTS).map(|_| None).collect())
        .collect();
    let mut drives = Vec::new();
    let mut models = Vec::new();
    for (i, d) in cfg.ata_drives.iter().enumerate() {
        let (kind, driver) = match d.kind {
            AtaKind::Disk => (Kind::Disk, "ide-hd"),
            AtaKind::Cdrom => (Kind::Cdrom, "ide-cd"),
        };
        // QEMU numbers the serials by port, from 1.
        let identity = Identity::qemu(kind, u32::from(d.port) + 1);
        let (drive, disk) = match &d.disk {
            Some(dc) => {
                let mut options = open_options(dc);
                if kind == Kind::Cdrom {
                    options.read_only = true;
                    options.aio = AioMode::Sync;
                }
                let (disk, layers) = open_image::<u8>(dc, &options)
                    .map_err(|source| VmmError::Ata { driver, source })?;
                let size = disk.len().unwrap_or(0);
                let stats: Arc<Stats> = disk.stats().clone();
                models.push(DiskModel::new(
                    first + i,
                    dc,
                    &layers,
                    stats,
                    kind == Kind::Cdrom,
                ));
                let drive = match kind {
                    Kind::Disk => {
                        let identity = Identity {
                            serial: dc.serial.clone().unwrap_or(identity.serial),
                            ..identity
                        };
                        Drive::disk(identity, size, dc.read_only(), dc.write_cache)
                    }
                    Kind::Cdrom => Drive::cdrom(identity, Some(size)),
                };
                (drive, Some(disk))
            }
            None => (Drive::cdrom(identity, None), None),
        };
        ports[d.controller][usize::from(d.port)] = Some(Attachment { drive, disk });
        drives.push(AtaDrive {
            controller: d.controller,
            port: d.port,
            bootindex: d.bootindex,
        });
    }
    let controllers = ports
        .into_iter()
        .zip(&cfg.ahci)
        .map(|(p, c)| AtaController {
            ahci: Arc::new(Mutex::new(Ahci::new(p))),
            cfg: c.clone(),
        })
        .collect();
    Ok(Built {
        controllers,
        drives,
        models,
    })
}

/// An AHCI controller on the device thread: the kick its PxCI writes
/// send (token 0) and its disks' completions (the other tokens).
pub(crate) struct AtaSubscriber {
    pub(crate) ahci: Arc<Mutex<Ahci>>,
    pub(crate) kick: EventFd,
}

impl AtaSubscriber {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ahci> {
        self.ahci.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Subscriber for AtaSubscriber {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        let mut fds = vec![(self.kick.as_raw_fd(), 0)];
        fds.extend(self.lock().host_fds().into_iter().map(|fd| (fd, 1)));
        fds
    }

    fn handle(&mut self, token: u32) {
        if token == 0 {
            // Nonblocking: a spurious wakeup reads EAGAIN and changes nothing.
            if self.kick.read().is_ok() {
                self.lock().process();
            }
            return;
        }
        self.lock().reap();
    }
}
