//! virtio-scsi controllers: each `scsi-hd` and `scsi-cd` LUN opened on the
//! block layer and put at its target and LUN (the controller itself is a
//! virtio device, placed and wired as the others are).
//!
//! The LUNs run on the inline engine, on the device thread (see
//! rvirt-virtio's `scsi` module): a CD-ROM's medium changes and one
//! controller carries many disks, while a virtio device offers the event
//! loop one completion descriptor.

use std::sync::{Arc, Mutex};

use rvirt_block::AioMode;
use rvirt_virtio::scsi::DiskInfo;
use rvirt_virtio::scsi::{Device, LunSpec, Scsi};
use rvirt_vmm_config::{AtaKind, ScsiConfig};

use crate::disk::{open_image, open_options, DiskError, DiskModel};

/// Anonymous node names of SCSI LUNs start here, clear of the virtio and
/// ATA disks' (which count from 0).
const NODE_BASE: usize = 4096;

/// Opens every LUN of controller `n` (its place among the virtio
/// devices) and builds it; with the LUNs' disks as the monitor reports
/// them.
pub(crate) fn open(
    n: usize,
    cfg: &ScsiConfig,
) -> Result<(Arc<Mutex<Scsi>>, Vec<DiskModel>), DiskError> {
    let mut specs = Vec::new();
    let mut models = Vec::new();
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
    }
    Ok((Arc::new(Mutex::new(Scsi::new(specs))), models))
}
