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
use rvirt_block::{AioMode, Backing, Disk, ImageFormat, ImageSpec, OpenOptions, Stats};
use rvirt_qmp::{Event as QmpEvent, EventBus, MediumOp, QmpError};
use rvirt_vmm_config::{AhciConfig, AtaKind, Chipset, VmConfig};
use vmm_sys_util::eventfd::EventFd;

use crate::disk::{open_image, open_options, DiskModel, Tray};
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
    pub(crate) cdrom: bool,
    /// The guest device's id.
    pub(crate) id: Option<String>,
    /// Its `-drive` id (a `-blockdev` drive has no backend name).
    pub(crate) device: Option<String>,
    /// The medium's file, for `query-block` (a CD-ROM's changes).
    pub(crate) file: Arc<Mutex<Option<String>>>,
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
            cdrom: kind == Kind::Cdrom,
            id: d.id.clone(),
            device: dc.filter(|c| !c.blockdev).map(|c| c.drive.clone()),
            file: Arc::new(Mutex::new(dc.map(|c| c.path().display().to_string()))),
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
        let file = drive.file.clone();
        let state: Arc<dyn Fn() -> (bool, bool) + Send + Sync> = match (&ide, drive.ide) {
            (Some(ide), true) => {
                let ide = ide.clone();
                Arc::new(move || tray_state(&mut *lock(&ide), port))
            }
            _ => {
                let ahci = controllers[drive.controller].ahci.clone();
                Arc::new(move || tray_state(&mut *lock(&ahci), port))
            }
        };
        let tray = move || {
            let (open, locked) = state();
            Tray {
                open,
                locked,
                file: file.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            }
        };
        let model = models.remove(m);
        models.insert(m, model.with_tray(Arc::new(tray)));
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
    let names: Vec<(u8, String, String)> = drives
        .iter()
        .filter(|d| mine(d) && d.cdrom)
        .map(|d| {
            (
                d.port,
                d.device.clone().unwrap_or_default(),
                d.id.clone().unwrap_or_default(),
            )
        })
        .collect();
    let bus = bus.clone();
    Arc::new(move |port: usize, open: bool| {
        if let Some((_, device, id)) = names.iter().find(|n| usize::from(n.0) == port) {
            bus.post(QmpEvent::DeviceTrayMoved {
                device: device.clone(),
                id: id.clone(),
                tray_open: open,
            });
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

/// Opens format node `node` (added with `blockdev-add`, its file perhaps
/// passed as `/dev/fdset/N`) as a CD-ROM's medium: read-only, raw, on
/// the inline engine as every CD-ROM medium.
pub(crate) fn open_medium(node: &rvirt_vmm_config::FormatNode) -> Result<Disk<u8>, QmpError> {
    let mut spec = crate::disk::image_spec(node);
    spec.read_only = true;
    if spec.format != ImageFormat::Raw {
        return Err(QmpError::generic("a CD-ROM medium must be raw".to_string()));
    }
    let options = OpenOptions {
        read_only: true,
        aio: AioMode::Sync,
        ..OpenOptions::default()
    };
    let passed = |path: &std::path::Path, write: bool| crate::fdset::open(path, true, write);
    let name = node.node_name.clone().unwrap_or_default();
    Disk::<u8>::open_image_with(&spec, &options, &passed)
        .map_err(|e| QmpError::generic(format!("Could not open node '{name}': {e}")))
}

/// `blockdev-insert-medium`: `disk` (node `node_name`'s image, at
/// `filename`) into `drive`'s open, empty tray (on an AHCI or IDE
/// controller), as QEMU checks it. Only a
/// format node is taken (libvirt inserts nothing else; QEMU would also
/// take a protocol node).
pub(crate) fn insert<C: Controller>(
    ahci: &Mutex<C>,
    drive: &AtaDrive,
    disk: Disk<u8>,
    filename: String,
) -> Result<(), QmpError> {
    let name = drive
        .id
        .clone()
        .or_else(|| drive.device.clone())
        .unwrap_or_default();
    if !drive.cdrom {
        return Err(QmpError::generic(format!(
            "Device '{name}' is not removable"
        )));
    }
    let port = usize::from(drive.port);
    let mut a = ahci.lock().unwrap_or_else(|p| p.into_inner());
    let open = a
        .device(port)
        .and_then(|x| x.drive.cdrom_state())
        .is_some_and(|c| c.tray_open());
    // QEMU 7.2's words (they name no device).
    if !open {
        return Err(QmpError::generic("Tray of the device is not open"));
    }
    let mut file = drive.file.lock().unwrap_or_else(|p| p.into_inner());
    if file.is_some() {
        return Err(QmpError::generic("There already is a medium in the device"));
    }
    a.set_medium(port, Some(disk));
    *file = Some(filename);
    Ok(())
}

/// Runs a removable-media command on `drive` of `ahci` (an AHCI or IDE
/// controller); posts DEVICE_TRAY_MOVED for each tray move.
pub(crate) fn medium<C: Controller>(
    ahci: &Mutex<C>,
    drive: &AtaDrive,
    op: MediumOp,
    bus: &EventBus,
) -> Result<(), QmpError> {
    let name = drive
        .id
        .clone()
        .or_else(|| drive.device.clone())
        .unwrap_or_default();
    if !drive.cdrom {
        return Err(QmpError::generic(format!(
            "Device '{name}' is not removable"
        )));
    }
    // A new medium is opened before the tray moves, so a file that will
    // not open changes nothing.
    let new_disk = match &op {
        // Needs the block graph: the device manager's medium().
        MediumOp::Insert { .. } => {
            return Err(QmpError::generic("blockdev-insert-medium needs a node"));
        }
        MediumOp::Change { filename, format } => {
            if format.as_deref().is_some_and(|f| f != "raw") {
                return Err(QmpError::generic(format!(
                    "format '{}' is not supported for a CD-ROM medium (raw only)",
                    format.as_deref().unwrap_or_default()
                )));
            }
            let spec = ImageSpec {
                path: filename.into(),
                format: ImageFormat::Raw,
                read_only: true,
                backing: Backing::None,
            };
            let options = OpenOptions {
                read_only: true,
                aio: AioMode::Sync,
                ..OpenOptions::default()
            };
            let disk = rvirt_block::Disk::<u8>::open_image(&spec, &options)
                .map_err(|e| QmpError::generic(format!("Could not open '{filename}': {e}")))?;
            Some(disk)
        }
        _ => None,
    };
    let moved = |open: bool| {
        bus.post(QmpEvent::DeviceTrayMoved {
            device: drive.device.clone().unwrap_or_default(),
            id: drive.id.clone().unwrap_or_default(),
            tray_open: open,
        })
    };
    let port = usize::from(drive.port);
    let mut a = ahci.lock().unwrap_or_else(|p| p.into_inner());
    let cd = |a: &mut C| -> Option<(bool, bool)> {
        let c = a.device(port)?.drive.cdrom_state()?;
        Some((c.tray_open(), c.locked()))
    };
    let open_tray = |a: &mut C, force: bool| -> bool {
        let was = cd(a).is_some_and(|(open, _)| open);
        let opened = a
            .device(port)
            .and_then(|x| x.drive.cdrom_state())
            .is_some_and(|c| c.open_tray(force));
        if opened && !was {
            moved(true);
        }
        opened
    };
    let remove = |a: &mut C| {
        a.set_medium(port, None);
        *drive.file.lock().unwrap_or_else(|p| p.into_inner()) = None;
    };
    let close_tray = |a: &mut C| {
        if cd(a).is_some_and(|(open, _)| open) {
            if let Some(c) = a.device(port).and_then(|x| x.drive.cdrom_state()) {
                c.close_tray();
            }
            moved(false);
        }
    };
    let locked = || {
        QmpError::generic(format!(
            "Device '{name}' is locked and force was not specified, wait for tray to open and try again"
        ))
    };
    match op {
        // A locked tray stays shut: the guest was asked to open it.
        MediumOp::OpenTray { force } => {
            open_tray(&mut a, force);
        }
        MediumOp::CloseTray => close_tray(&mut a),
        MediumOp::Remove => {
            if !cd(&mut a).is_some_and(|(open, _)| open) {
                return Err(QmpError::generic(format!(
                    "Tray of device '{name}' is not open"
                )));
            }
            remove(&mut a);
        }
        MediumOp::Eject { force } => {
            if !open_tray(&mut a, force) {
                return Err(locked());
            }
            remove(&mut a);
        }
        MediumOp::Insert { .. } => {}
        MediumOp::Change { filename, .. } => {
            if !open_tray(&mut a, false) {
                return Err(locked());
            }
            remove(&mut a);
            a.set_medium(port, new_disk);
            *drive.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(filename);
            close_tray(&mut a);
        }
    }
    Ok(())
}
