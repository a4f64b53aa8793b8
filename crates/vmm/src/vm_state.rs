//! The monitor's read model: what QMP queries answer from without asking
//! the main loop. The main loop keeps it current (run state, vCPU thread
//! IDs); the rest is fixed when the VMM is built (disks, names) or
//! published by a device as it changes (the balloon's `actual`). Monitor
//! threads only read it; every change they ask for goes to the main loop
//! as a `MonitorRequest`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rvirt_machine::{ThreadIds, Topology};
use rvirt_qmp::{BlockDeviceInfo, BlockInfo, ChardevInfo, RunState};
use rvirt_vmm_config::{VirtioConfig, VmConfig};

/// What the monitors can read without asking the main loop.
pub(crate) struct VmState {
    pub(crate) status: Mutex<RunState>,
    /// The vCPUs of the current boot: their topology and thread IDs.
    pub(crate) cpus: Mutex<Option<(Topology, ThreadIds)>>,
    pub(crate) chardevs: Mutex<Vec<ChardevInfo>>,
    /// The disks; fixed for the life of the VMM (no hotplug yet).
    pub(crate) blocks: Vec<BlockInfo>,
    /// The guest's memory as the balloon driver last reported it, if the
    /// VM has a balloon.
    pub(crate) balloon_actual: Option<Arc<AtomicU64>>,
    pub(crate) name: Option<String>,
    pub(crate) uuid: Option<String>,
}

impl VmState {
    pub(crate) fn new(cfg: &VmConfig, balloon_actual: Option<Arc<AtomicU64>>) -> Self {
        VmState {
            status: Mutex::new(if cfg.start_paused {
                RunState::Prelaunch
            } else {
                RunState::Running
            }),
            cpus: Mutex::new(None),
            chardevs: Mutex::new(Vec::new()),
            blocks: block_infos(cfg),
            balloon_actual,
            name: cfg.name.clone(),
            uuid: cfg.uuid.clone(),
        }
    }

    pub(crate) fn status(&self) -> RunState {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_status(&self, s: RunState) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// `query-balloon`'s answer in bytes, if the VM has a balloon.
    pub(crate) fn balloon_actual(&self) -> Option<u64> {
        self.balloon_actual
            .as_ref()
            .map(|a| a.load(Ordering::Acquire))
    }
}

/// `query-block`'s answer: the disks, named as QEMU names them.
fn block_infos(cfg: &VmConfig) -> Vec<BlockInfo> {
    cfg.virtio
        .iter()
        .enumerate()
        .filter_map(|(n, dev)| {
            let VirtioConfig::Blk(d) = dev else {
                return None;
            };
            // As QEMU: a -drive is named by its id and gets an anonymous
            // node; a -blockdev disk only by its node.
            let (device, node_name) = if d.blockdev {
                (String::new(), d.drive.clone())
            } else {
                (d.drive.clone(), format!("#block{:03}", n * 128 + 100))
            };
            Some(BlockInfo {
                device,
                qdev: d.id.clone(),
                kind: "unknown".into(),
                removable: false,
                locked: false,
                inserted: Some(BlockDeviceInfo {
                    file: d.path.display().to_string(),
                    node_name: Some(node_name),
                    ro: d.readonly,
                    drv: "raw".into(),
                    encrypted: false,
                    detect_zeroes: "off".into(),
                    bps: 0,
                    bps_rd: 0,
                    bps_wr: 0,
                    iops: 0,
                    iops_rd: 0,
                    iops_wr: 0,
                    write_threshold: 0,
                }),
            })
        })
        .collect()
}
