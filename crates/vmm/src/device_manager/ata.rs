//! The ATA controllers: AHCI (q35's built-in 00:1f.2 and `-device
//! ich9-ahci`) and pc's built-in PIIX3 IDE (00:01.1) with their `ide-hd`
//! and `ide-cd` drives on the block layer,
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
use rvirt_ata::ide::Ide;
use rvirt_block::{AioMode, Disk, Stats};
use rvirt_qmp::EventBus;
use rvirt_vmm_config::{AhciConfig, AtaKind, Chipset, VmConfig};
use vmm_sys_util::eventfd::EventFd;

use super::media::{self, Removable, Slot};
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
    /// On the PIIX3 IDE (`port` is then channel * 2 + unit).
    pub(crate) ide: bool,
    pub(crate) controller: usize,
    pub(crate) port: u8,
    pub(crate) bootindex: Option<u32>,
    pub(crate) media: Removable,
}

/// What [`build`] opens: the controllers, their drives, and the drives'
/// media as the monitor reports them.
pub(crate) struct Built {
    pub(crate) controllers: Vec<AtaController>,
    /// pc's PIIX3 IDE (always there on pc, as on QEMU).
    pub(crate) ide: Option<Arc<Mutex<Ide>>>,
    pub(crate) drives: Vec<AtaDrive>,
    pub(crate) models: Vec<DiskModel>,
}

/// Opens every ATA drive and builds the controllers; `first` is the
/// first disk number free for anonymous node names; the guest's tray
/// moves are posted on `bus`.
pub(crate) fn build(cfg: &VmConfig, first: usize, bus: &EventBus) -> Result<Built, VmmError> {
    let mut ports: Vec<Vec<Option<Attachment>>> = cfg
        .ahci
        .iter()
        .map(|_| (0..rvirt_ata::ahci::PORTS).map(|_| None).collect())
        .collect();
    let mut ide_units: Vec<Option<Attachment>> = (0..4).map(|_| None).collect();
    let mut drives = Vec::new();
    let mut models = Vec::new();
    // The CD-ROMs' models, to give their live tray once the controllers
    // exist: (model, drive).
    let mut trays = Vec::new();
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
                if kind == Kind::Cdrom {
                    trays.push((models.len(), drives.len()));
                }
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
        let slot = match d.ide {
            true => ide_units.get_mut(usize::from(d.port)),
            false => ports
                .get_mut(d.controller)
                .and_then(|p| p.get_mut(usize::from(d.port))),
        };
        // The parser keeps every drive on a bus that exists.
        if let Some(slot) = slot {
            *slot = Some(Attachment { drive, disk });
        }
        let dc = d.disk.as_ref();
        drives.push(AtaDrive {
            ide: d.ide,
            controller: d.controller,
            port: d.port,
            bootindex: d.bootindex,
            media: Removable {
                cdrom: kind == Kind::Cdrom,
                id: d.id.clone(),
                device: dc.filter(|c| !c.blockdev).map(|c| c.drive.clone()),
                file: Arc::new(Mutex::new(dc.map(|c| c.path().display().to_string()))),
            },
        });
    }
    let controllers: Vec<AtaController> = ports
        .into_iter()
        .zip(&cfg.ahci)
        .map(|(p, c)| AtaController {
            ahci: Arc::new(Mutex::new(Ahci::new(p))),
            cfg: c.clone(),
        })
        .collect();
    let ide = (cfg.chipset == Chipset::I440fx).then(|| Arc::new(Mutex::new(Ide::new(ide_units))));
    // The guest's own ejects and loads, as DEVICE_TRAY_MOVED.
    if let Some(ide) = &ide {
        let moved = tray_moved(&drives, bus, |d| d.ide);
        lock(ide).on_tray_moved(moved);
    }
    for (c, controller) in controllers.iter().enumerate() {
        let moved = tray_moved(&drives, bus, |d| !d.ide && d.controller == c);
        lock(&controller.ahci).on_tray_moved(moved);
    }
    for (m, d) in trays {
        let drive: &AtaDrive = &drives[d];
        let port = usize::from(drive.port);
        let tray = match (&ide, drive.ide) {
            (Some(ide), true) => {
                let ide = ide.clone();
                media::tray_model(&drive.media, move || tray_state(&mut *lock(&ide), port))
            }
            _ => {
                let ahci = controllers[drive.controller].ahci.clone();
                media::tray_model(&drive.media, move || tray_state(&mut *lock(&ahci), port))
            }
        };
        let model = models.remove(m);
        models.insert(m, model.with_tray(tray));
    }
    Ok(Built {
        controllers,
        ide,
        drives,
        models,
    })
}

/// The tray of CD-ROM `n` of a controller: open, locked.
fn tray_state<C: Controller>(c: &mut C, n: usize) -> (bool, bool) {
    let cd = c.device(n).and_then(|x| x.drive.cdrom_state());
    cd.map_or((false, false), |c| (c.tray_open(), c.locked()))
}

/// DEVICE_TRAY_MOVED for the guest's moves of the CD-ROMs `mine` picks.
fn tray_moved(
    drives: &[AtaDrive],
    bus: &EventBus,
    mine: impl Fn(&AtaDrive) -> bool,
) -> Arc<dyn Fn(usize, bool) + Send + Sync> {
    let names: Vec<(u8, Removable)> = drives
        .iter()
        .filter(|d| mine(d) && d.media.cdrom)
        .map(|d| (d.port, d.media.clone()))
        .collect();
    let bus = bus.clone();
    Arc::new(move |port: usize, open: bool| {
        if let Some((_, m)) = names.iter().find(|n| usize::from(n.0) == port) {
            m.moved(&bus, open);
        }
    })
}

/// What the device thread and the monitor need of an ATA controller.
pub(crate) trait Controller: Send {
    fn process(&mut self);
    fn reap(&mut self);
    fn host_fds(&self) -> Vec<RawFd>;
    /// Drive `n` (an AHCI port; channel * 2 + unit on IDE).
    fn device(&mut self, n: usize) -> Option<&mut Attachment>;
    fn set_medium(&mut self, n: usize, disk: Option<rvirt_block::Disk<u8>>);
}

macro_rules! controller {
    ($t:ty) => {
        impl Controller for $t {
            fn process(&mut self) {
                <$t>::process(self)
            }
            fn reap(&mut self) {
                <$t>::reap(self)
            }
            fn host_fds(&self) -> Vec<RawFd> {
                <$t>::host_fds(self)
            }
            fn device(&mut self, n: usize) -> Option<&mut Attachment> {
                <$t>::device(self, n)
            }
            fn set_medium(&mut self, n: usize, disk: Option<rvirt_block::Disk<u8>>) {
                <$t>::set_medium(self, n, disk)
            }
        }
    };
}
controller!(Ahci);
controller!(Ide);

/// An ATA controller on the device thread: the kick its register writes
/// send (AHCI's PxCI, IDE's command and data ports; token 0) and its
/// disks' completions (the other tokens).
pub(crate) struct AtaSubscriber<C: Controller> {
    pub(crate) ctrl: Arc<Mutex<C>>,
    pub(crate) kick: EventFd,
}

fn lock<C: ?Sized>(a: &Mutex<C>) -> std::sync::MutexGuard<'_, C> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: Controller> AtaSubscriber<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, C> {
        lock(&self.ctrl)
    }
}

impl<C: Controller + 'static> Subscriber for AtaSubscriber<C> {
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

/// A drive of an AHCI or IDE controller, for [`media`]'s commands.
pub(crate) struct AtaSlot<'a, C> {
    ctrl: std::sync::MutexGuard<'a, C>,
    port: usize,
}

impl<'a, C: Controller> AtaSlot<'a, C> {
    pub(crate) fn lock(ctrl: &'a Mutex<C>, drive: &AtaDrive) -> Self {
        AtaSlot {
            ctrl: lock(ctrl),
            port: usize::from(drive.port),
        }
    }
}

impl<C: Controller> Slot for AtaSlot<'_, C> {
    type Tag = u8;

    fn cdrom(&mut self) -> Option<&mut rvirt_scsi::mmc::Cdrom> {
        self.ctrl.device(self.port)?.drive.cdrom_state()
    }

    fn set_medium(&mut self, disk: Option<Disk<u8>>) {
        self.ctrl.set_medium(self.port, disk)
    }
}
