//! Arbitrary guest memory under virtio-scsi's request and control queues,
//! with a disk at 0:0, a CD-ROM at 0:1 and an empty CD-ROM at 2:0, all on
//! RAM media: headers, LUN addresses, CDBs and buffers are the input. The
//! leading byte picks queue sizes, EVENT_IDX and the sense/CDB sizes the
//! driver sets. Nothing may panic or hang, and the media keep their size.
#![no_main]

mod common;
mod ram_disk;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use ram_disk::ram;
use rvirt_virtio::scsi::{Device, DiskInfo, LunSpec, Scsi};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

const DISK_SIZE: usize = 64 * 512;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let mem = common::memory(image);
    let (hd_ram, hd) = ram(DISK_SIZE);
    let (cd_ram, cd) = ram(4 * 2048);
    let mut scsi = Scsi::new(vec![
        LunSpec {
            target: 0,
            lun: 0,
            device: Device::Disk {
                disk: hd,
                info: DiskInfo {
                    size: DISK_SIZE as u64,
                    read_only: mode & 0x80 != 0,
                    serial: Some("fuzz".into()),
                    device_id: None,
                },
            },
        },
        LunSpec {
            target: 0,
            lun: 1,
            device: Device::Cdrom { medium: Some(cd) },
        },
        LunSpec {
            target: 2,
            lun: 0,
            device: Device::Cdrom { medium: None },
        },
    ], 1);
    // The driver may shrink the sense and CDB fields.
    if mode & 0x40 != 0 {
        scsi.write_config(20, &u32::from(mode & 0x1f).to_le_bytes());
        scsi.write_config(24, &u32::from(mode >> 3 & 0x1f).to_le_bytes());
    }
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    // Slot 0: the request queue (the one a short input reaches), slot 1
    // the control queue, slot 2 the event queue.
    scsi.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![
            common::queue(1, mode),
            common::queue(2, mode),
            common::queue(0, mode),
        ],
        interrupt,
        acked_features: common::VERSION_1,
    })
    .unwrap();
    for q in [2, 0, 1, 2] {
        scsi.process_queue(q);
    }
    assert_eq!(hd_ram.0.lock().unwrap().len(), DISK_SIZE);
    assert_eq!(cd_ram.0.lock().unwrap().len(), 4 * 2048);
    assert!(cd_ram.0.lock().unwrap().iter().all(|&b| b == 0x5a), "a CD-ROM was written");
});
