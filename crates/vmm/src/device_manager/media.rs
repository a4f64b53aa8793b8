//! The monitor's removable-media commands (`eject`, `blockdev-open-tray`,
//! `blockdev-close-tray`, `blockdev-remove-medium`,
//! `blockdev-insert-medium`, `blockdev-change-medium`) for any CD-ROM:
//! ATAPI on AHCI or IDE ([`super::ata`]) and `scsi-cd` on virtio-scsi
//! ([`super::scsi`]). Both keep their tray in rvirt-scsi's `Cdrom`; each
//! bus gives a [`Slot`] (the CD-ROM's state and a way to swap its medium)
//! and QEMU 7.2's checks, errors and DEVICE_TRAY_MOVED are written once
//! here.

use std::sync::{Arc, Mutex};

use rvirt_block::{AioMode, Backing, Disk, ImageFormat, ImageSpec, OpenOptions};
use rvirt_qmp::{Event as QmpEvent, EventBus, MediumOp, QmpError};
use rvirt_scsi::mmc::Cdrom;

/// A drive as the monitor names it.
#[derive(Clone)]
pub(crate) struct Removable {
    /// A CD-ROM (the rest are not removable).
    pub(crate) cdrom: bool,
    /// The guest device's id.
    pub(crate) id: Option<String>,
    /// Its `-drive` id (a `-blockdev` drive has no backend name).
    pub(crate) device: Option<String>,
    /// The medium's file, for `query-block` (a CD-ROM's changes).
    pub(crate) file: Arc<Mutex<Option<String>>>,
}

impl Removable {
    /// The name errors give: the device id, else the drive's.
    pub(crate) fn name(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.device.clone())
            .unwrap_or_default()
    }

    /// Whether `target` names this drive.
    pub(crate) fn is(&self, target: &rvirt_qmp::MediumTarget) -> bool {
        match (&target.id, &target.device) {
            (Some(id), _) => self.id.as_deref() == Some(id.as_str()),
            (None, Some(dev)) => self.device.as_deref() == Some(dev.as_str()),
            (None, None) => false,
        }
    }

    /// Posts DEVICE_TRAY_MOVED for this drive (the monitor's moves and
    /// the guest's).
    pub(crate) fn moved(&self, bus: &EventBus, open: bool) {
        bus.post(QmpEvent::DeviceTrayMoved {
            device: self.device.clone().unwrap_or_default(),
            id: self.id.clone().unwrap_or_default(),
            tray_open: open,
        });
    }

    fn file(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A CD-ROM on its controller, locked for one command.
pub(crate) trait Slot {
    /// The tag the bus's disks carry.
    type Tag: Send + 'static;
    /// The CD-ROM's tray, lock and medium state (None: nothing there).
    fn cdrom(&mut self) -> Option<&mut Cdrom>;
    /// Puts `disk` (or nothing) in; the tray is open.
    fn set_medium(&mut self, disk: Option<Disk<Self::Tag>>);

    fn tray(&mut self) -> Option<(bool, bool)> {
        let c = self.cdrom()?;
        Some((c.tray_open(), c.locked()))
    }
}

/// Opens format node `node` (added with `blockdev-add`, its file perhaps
/// passed as `/dev/fdset/N`) as a CD-ROM's medium: read-only, raw, on
/// the inline engine as every CD-ROM medium.
pub(crate) fn open_node<T: Send + 'static>(
    node: &rvirt_vmm_config::FormatNode,
) -> Result<Disk<T>, QmpError> {
    let mut spec = crate::disk::image_spec(node);
    spec.read_only = true;
    if spec.format != ImageFormat::Raw {
        return Err(QmpError::generic("a CD-ROM medium must be raw".to_string()));
    }
    let passed = |path: &std::path::Path, write: bool| crate::fdset::open(path, true, write);
    let name = node.node_name.clone().unwrap_or_default();
    Disk::<T>::open_image_with(&spec, &inline_read_only(), &passed)
        .map_err(|e| QmpError::generic(format!("Could not open node '{name}': {e}")))
}

fn inline_read_only() -> OpenOptions {
    OpenOptions {
        read_only: true,
        aio: AioMode::Sync,
        ..OpenOptions::default()
    }
}

/// `blockdev-insert-medium`: `disk` (a node's image, at `filename`) into
/// `drive`'s open, empty tray, as QEMU checks it. Only a format node is
/// taken (libvirt inserts nothing else; QEMU would also take a protocol
/// node).
pub(crate) fn insert<S: Slot>(
    mut slot: S,
    drive: &Removable,
    disk: Disk<S::Tag>,
    filename: String,
) -> Result<(), QmpError> {
    if !drive.cdrom {
        return Err(not_removable(drive));
    }
    // QEMU 7.2's words (they name no device).
    if !slot.tray().is_some_and(|(open, _)| open) {
        return Err(QmpError::generic("Tray of the device is not open"));
    }
    let mut file = drive.file();
    if file.is_some() {
        return Err(QmpError::generic("There already is a medium in the device"));
    }
    slot.set_medium(Some(disk));
    *file = Some(filename);
    Ok(())
}

fn not_removable(drive: &Removable) -> QmpError {
    QmpError::generic(format!("Device '{}' is not removable", drive.name()))
}

/// Runs a removable-media command other than an insert on `drive`, in the
/// slot `lock` gives; posts DEVICE_TRAY_MOVED for each tray move.
pub(crate) fn run<S: Slot>(
    lock: impl FnOnce() -> S,
    drive: &Removable,
    op: MediumOp,
    bus: &EventBus,
) -> Result<(), QmpError> {
    let name = drive.name();
    if !drive.cdrom {
        return Err(not_removable(drive));
    }
    // A new medium is opened before the tray moves (and before the
    // controller is locked), so a file that will not open changes nothing.
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
            let disk = Disk::<S::Tag>::open_image(&spec, &inline_read_only())
                .map_err(|e| QmpError::generic(format!("Could not open '{filename}': {e}")))?;
            Some(disk)
        }
        _ => None,
    };
    let mut slot = lock();
    let open_tray = |s: &mut S, force: bool| -> bool {
        let was = s.tray().is_some_and(|(open, _)| open);
        let opened = s.cdrom().is_some_and(|c| c.open_tray(force));
        if opened && !was {
            drive.moved(bus, true);
        }
        opened
    };
    let remove = |s: &mut S| {
        s.set_medium(None);
        *drive.file() = None;
    };
    let close_tray = |s: &mut S| {
        if s.tray().is_some_and(|(open, _)| open) {
            if let Some(c) = s.cdrom() {
                c.close_tray();
            }
            drive.moved(bus, false);
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
            open_tray(&mut slot, force);
        }
        MediumOp::CloseTray => close_tray(&mut slot),
        MediumOp::Remove => {
            if !slot.tray().is_some_and(|(open, _)| open) {
                return Err(QmpError::generic(format!(
                    "Tray of device '{name}' is not open"
                )));
            }
            remove(&mut slot);
        }
        MediumOp::Eject { force } => {
            if !open_tray(&mut slot, force) {
                return Err(locked());
            }
            remove(&mut slot);
        }
        MediumOp::Insert { .. } => {}
        MediumOp::Change { filename, .. } => {
            if !open_tray(&mut slot, false) {
                return Err(locked());
            }
            remove(&mut slot);
            slot.set_medium(new_disk);
            *drive.file() = Some(filename);
            close_tray(&mut slot);
        }
    }
    Ok(())
}

/// What `query-block` shows of a CD-ROM's tray: `state` reads the open
/// and locked bits from its controller.
pub(crate) fn tray_model(
    drive: &Removable,
    state: impl Fn() -> (bool, bool) + Send + Sync + 'static,
) -> Arc<dyn Fn() -> crate::disk::Tray + Send + Sync> {
    let file = drive.file.clone();
    Arc::new(move || {
        let (open, locked) = state();
        crate::disk::Tray {
            open,
            locked,
            file: file.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    })
}
