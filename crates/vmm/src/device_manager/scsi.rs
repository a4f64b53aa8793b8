//! virtio-scsi controllers: each `scsi-hd` and `scsi-cd` LUN opened on the
//! block layer and put at its target and LUN (the controller itself is a
//! virtio device, placed and wired as the others are).
//!
//! The LUNs run on the inline engine, on the device thread (see
//! rvirt-virtio's `scsi` module): a CD-ROM's medium changes and one
//! controller carries many disks, while a virtio device offers the event
//! loop one completion descriptor.

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_block::AioMode;
use rvirt_qmp::EventBus;
use rvirt_virtio::scsi::DiskInfo;
use rvirt_virtio::scsi::{Device, LunSpec, Scsi};
use rvirt_vmm_config::{AtaKind, ScsiConfig};

use super::media::{self, Removable, Slot};
use crate::disk::{open_image, open_options, DiskError, DiskModel};

/// A `scsi-cd` (or `scsi-hd`, which the monitor finds not removable) as
/// the monitor's media commands name it.
pub(crate) struct ScsiLun {
    pub(crate) ctrl: Arc<Mutex<Scsi>>,
    pub(crate) target: u8,
    pub(crate) lun: u16,
    pub(crate) media: Removable,
}

/// What [`open`] builds.
pub(crate) struct Opened {
    pub(crate) ctrl: Arc<Mutex<Scsi>>,
    /// The LUNs' disks as `query-block` reports them.
    pub(crate) models: Vec<DiskModel>,
    pub(crate) luns: Vec<ScsiLun>,
}

fn lock(s: &Mutex<Scsi>) -> MutexGuard<'_, Scsi> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A LUN of a locked controller, for [`media`]'s commands.
pub(crate) struct ScsiSlot<'a> {
    ctrl: MutexGuard<'a, Scsi>,
    target: u8,
    lun: u16,
}

impl<'a> ScsiSlot<'a> {
    pub(crate) fn lock(l: &'a ScsiLun) -> Self {
        ScsiSlot {
            ctrl: lock(&l.ctrl),
            target: l.target,
            lun: l.lun,
        }
    }
}

impl Slot for ScsiSlot<'_> {
    type Tag = ();

    fn cdrom(&mut self) -> Option<&mut rvirt_scsi::mmc::Cdrom> {
        self.ctrl.cdrom(self.target, self.lun)
    }

    fn set_medium(&mut self, disk: Option<rvirt_virtio::scsi::Disk>) {
        self.ctrl.set_medium(self.target, self.lun, disk)
    }
}

/// Anonymous node names of SCSI LUNs start here, clear of the virtio and
/// ATA disks' (which count from 0).
const NODE_BASE: usize = 4096;

/// Opens every LUN of controller `n` (its place among the virtio
/// devices) and builds it; the guest's tray moves are posted on `bus`.
pub(crate) fn open(n: usize, cfg: &ScsiConfig, bus: &EventBus) -> Result<Opened, DiskError> {
    let mut specs = Vec::new();
    let mut models = Vec::new();
    let mut luns = Vec::new();
    // The CD-ROMs' models, given their live tray once the controller
    // exists: (model, LUN).
    let mut trays = Vec::new();
    for (j, l) in cfg.luns.iter().enumerate() {
        let cdrom = l.kind == AtaKind::Cdrom;
        let device = match &l.disk {
            Some(dc) => {
                let mut options = open_options(dc);
                options.aio = AioMode::Sync;
                if cdrom {
                    options.read_only = true;
                }
                let (disk, layers) = open_image::<()>(dc, &options)?;
                if cdrom {
                    trays.push((models.len(), luns.len()));
                }
                models.push(DiskModel::new(
                    NODE_BASE + n * 256 + j,
                    dc,
                    &layers,
                    disk.stats().clone(),
                    cdrom,
                ));
                if cdrom {
                    Device::Cdrom { medium: Some(disk) }
                } else {
                    let size = disk.len().unwrap_or(0);
                    Device::Disk {
                        disk,
                        info: DiskInfo {
                            size,
                            read_only: dc.read_only(),
                            serial: dc.serial.clone(),
                            // QEMU's default: the drive's backend name
                            // (none for a -blockdev node).
                            device_id: l
                                .device_id
                                .clone()
                                .or_else(|| (!dc.blockdev).then(|| dc.drive.clone())),
                        },
                    }
                }
            }
            None => Device::Cdrom { medium: None },
        };
        specs.push(LunSpec {
            target: l.target,
            lun: l.lun,
            device,
        });
        let dc = l.disk.as_ref();
        luns.push((
            l.target,
            l.lun,
            Removable {
                cdrom,
                id: l.id.clone(),
                device: dc.filter(|c| !c.blockdev).map(|c| c.drive.clone()),
                file: Arc::new(Mutex::new(dc.map(|c| c.path().display().to_string()))),
            },
        ));
    }
    // The command line keeps num_queues within the device's range.
    let queues = u16::try_from(cfg.num_queues).unwrap_or(u16::MAX);
    let mut scsi = Scsi::new(specs, queues);
    // The guest's own ejects and loads, as DEVICE_TRAY_MOVED.
    let names: Vec<(u8, u16, Removable)> = luns.iter().filter(|l| l.2.cdrom).cloned().collect();
    let bus = bus.clone();
    scsi.on_tray_moved(Arc::new(move |target, lun, open| {
        if let Some((_, _, m)) = names.iter().find(|n| (n.0, n.1) == (target, lun)) {
            m.moved(&bus, open);
        }
    }));
    let ctrl = Arc::new(Mutex::new(scsi));
    let luns: Vec<ScsiLun> = luns
        .into_iter()
        .map(|(target, lun, media)| ScsiLun {
            ctrl: ctrl.clone(),
            target,
            lun,
            media,
        })
        .collect();
    for (m, l) in trays {
        let l = &luns[l];
        let (ctrl, target, lun) = (l.ctrl.clone(), l.target, l.lun);
        let tray = media::tray_model(&l.media, move || {
            lock(&ctrl)
                .cdrom(target, lun)
                .map_or((false, false), |c| (c.tray_open(), c.locked()))
        });
        let model = models.remove(m);
        models.insert(m, model.with_tray(tray));
    }
    Ok(Opened { ctrl, models, luns })
}
