//! The monitor's read model: what QMP queries answer from without asking
//! the main loop. The main loop keeps it current (run state, vCPU thread
//! IDs, the disks at each hot-plug); the rest is fixed when the VMM is
//! built (names) or published by a device as it changes (the balloon's
//! `actual`, the disks' counters). Monitor threads only read it; every change they ask for goes to the main loop
//! as a `MonitorRequest`.

use std::sync::Mutex;

use rvirt_machine::{ThreadIds, Topology};
use rvirt_qmp::{ChardevInfo, RunState};
use rvirt_vmm_config::VmConfig;

use crate::balloon::BalloonReading;
use crate::block_nodes::BlockNodes;
use crate::disk::DiskModel;

/// What the monitors can read without asking the main loop.
pub(crate) struct VmState {
    pub(crate) status: Mutex<RunState>,
    /// The vCPUs of the current boot: their topology and thread IDs.
    pub(crate) cpus: Mutex<Option<(Topology, ThreadIds)>>,
    pub(crate) chardevs: Mutex<Vec<ChardevInfo>>,
    /// The disks: the command line's, and those hot-plugged (the main
    /// loop republishes the list at each plug and unplug). Their counters
    /// are atomics the I/O path updates.
    disks: Mutex<Vec<DiskModel>>,
    /// The balloon's size and the guest's statistics as the driver last
    /// reported them, if the VM has a balloon.
    pub(crate) balloon: Option<BalloonReading>,
    pub(crate) name: Option<String>,
    pub(crate) uuid: Option<String>,
    /// The named block nodes and who holds each. Monitor threads change
    /// it (`blockdev-add`, `blockdev-del`): it is no guest state until a
    /// device or a snapshot takes a node, which the main loop does.
    pub(crate) nodes: Mutex<BlockNodes>,
    /// The block jobs (`block-commit`).
    pub(crate) jobs: crate::block_job::Jobs,
}

impl VmState {
    pub(crate) fn new(
        cfg: &VmConfig,
        balloon: Option<BalloonReading>,
        disks: Vec<DiskModel>,
    ) -> Self {
        VmState {
            status: Mutex::new(if cfg.start_paused {
                RunState::Prelaunch
            } else {
                RunState::Running
            }),
            cpus: Mutex::new(None),
            chardevs: Mutex::new(Vec::new()),
            disks: Mutex::new(disks),
            balloon,
            name: cfg.name.clone(),
            uuid: cfg.uuid.clone(),
            nodes: Mutex::new(BlockNodes::new(cfg)),
            jobs: Default::default(),
        }
    }

    pub(crate) fn status(&self) -> RunState {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_status(&self, s: RunState) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The disks `query-block` and `query-blockstats` report.
    pub(crate) fn disks(&self) -> Vec<DiskModel> {
        self.disks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A disk was plugged or unplugged: `disks` is the list now.
    pub(crate) fn set_disks(&self, disks: Vec<DiskModel>) {
        *self.disks.lock().unwrap_or_else(|p| p.into_inner()) = disks;
    }

    /// The block node graph, locked.
    pub(crate) fn nodes(&self) -> std::sync::MutexGuard<'_, BlockNodes> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `query-balloon`'s answer in bytes, if the VM has a balloon.
    pub(crate) fn balloon_actual(&self) -> Option<u64> {
        self.balloon.as_ref().map(BalloonReading::actual)
    }
}
