//! What the VMM provides to the monitor.

use crate::error::QmpError;
use crate::types::{
    AddfdInfo, BlockCommit, BlockInfo, BlockJobInfo, BlockStats, ChardevInfo, CpuDefinitionInfo,
    CpuInfoFast, CpuModelInfo, FdsetInfo, ImageFormat, KvmInfo, PciInfo, RunState, VersionInfo,
    VncInfo,
};
use std::os::fd::OwnedFd;

/// What a job command asks of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobVerb {
    /// `block-job-complete`: pivot (an active commit).
    Complete,
    /// `block-job-cancel` (`force`: even when ready).
    Cancel { force: bool },
    /// `job-finalize`.
    Finalize,
    /// `job-dismiss`.
    Dismiss,
}

/// The VM as the monitor sees it. rvirt-vmm implements this; the monitor
/// calls it from its own threads (never a vCPU thread), possibly from
/// several monitors at once.
///
/// Events: the VMM posts every state change to the [`crate::EventBus`] it
/// gave the monitors, whoever caused it (a command, the guest, a signal).
/// For the commands below that change state, post the event *before*
/// returning, as QEMU 7.2 does: clients then see e.g. `STOP` before the
/// reply to `stop`. A method must not wait for the monitors themselves (for
/// example by shutting them down), or it deadlocks the monitor thread that
/// called it.
pub trait MonitorBackend: Send + Sync {
    /// The current run state.
    fn status(&self) -> RunState;

    /// Pauses the VM. Contract: return only once every vCPU has left
    /// `KVM_RUN` and will not re-enter it until [`MonitorBackend::cont`];
    /// post `STOP` if the VM was running. Stopping a VM that is not running
    /// (e.g. `prelaunch`) does nothing and posts nothing.
    fn stop(&self) -> Result<(), QmpError>;

    /// Resumes (or, under `-S`, starts) the vCPUs and posts `RESUME`; does
    /// nothing if they already run. Not called in states that need a reset
    /// (the monitor answers "Resetting the Virtual Machine is required").
    fn cont(&self) -> Result<(), QmpError>;

    /// Resets the VM; posts `RESET` with reason `host-qmp-system-reset`.
    /// As in QEMU, a VM that was not running is left in `prelaunch`.
    fn system_reset(&self);

    /// Presses the ACPI power button (SCI with PWRBTN_STS); posts
    /// `POWERDOWN`. What the guest does next is up to the guest.
    fn system_powerdown(&self);

    /// Asks the VMM to exit: post `SHUTDOWN` (reason `host-qmp-quit`), then
    /// let the main thread stop the monitors (which flushes this reply)
    /// and exit. Must return without waiting for the exit.
    fn quit(&self);

    /// The `-name`, if any.
    fn name(&self) -> Option<String>;

    /// The `-uuid`, if any (`None` reports the nil UUID).
    fn uuid(&self) -> Option<String>;

    /// KVM state; rvirt always runs on KVM.
    fn kvm(&self) -> KvmInfo {
        KvmInfo {
            enabled: true,
            present: true,
        }
    }

    /// The vCPUs, in index order.
    fn cpus(&self) -> Vec<CpuInfoFast>;

    /// The character devices, monitors included.
    fn chardevs(&self) -> Vec<ChardevInfo>;

    /// The block devices (`query-block`); none by default.
    fn block(&self) -> Vec<BlockInfo> {
        Vec::new()
    }

    /// `query-blockstats`: each disk's counters with its node graph below
    /// (`query_nodes`: one entry per named node instead, with node-level
    /// counters, as QEMU).
    fn block_stats(&self, query_nodes: bool) -> Vec<BlockStats> {
        let _ = query_nodes;
        Vec::new()
    }

    /// `balloon`: asks the guest to shrink to `target` bytes (clamped to
    /// the RAM size). Without a balloon device: DeviceNotActive, as QEMU.
    fn balloon(&self, target: i64) -> Result<(), QmpError> {
        let _ = target;
        Err(QmpError::no_balloon())
    }

    /// `query-balloon`: the guest's memory in bytes, RAM minus what the
    /// driver says it holds in the balloon.
    fn query_balloon(&self) -> Result<i64, QmpError> {
        Err(QmpError::no_balloon())
    }

    /// `qom-get` of `property` on the object at `path`. rvirt's object tree
    /// holds only what libvirt reads through it (the balloon's
    /// `guest-stats`); any other path: DeviceNotFound, as QEMU.
    fn qom_get(&self, path: &str, property: &str) -> Result<serde_json::Value, QmpError> {
        let _ = property;
        Err(QmpError::device_not_found(path))
    }

    /// `qom-set` of `property` on the object at `path` to `value` (the
    /// balloon's `guest-stats-polling-interval`, as libvirt sets it).
    fn qom_set(
        &self,
        path: &str,
        property: &str,
        value: &serde_json::Value,
    ) -> Result<(), QmpError> {
        let _ = (property, value);
        Err(QmpError::device_not_found(path))
    }

    /// `set_link`: takes the link of the NIC named `name` (its netdev id or
    /// its device id) up or down. Unknown names: DeviceNotFound, as QEMU.
    fn set_link(&self, name: &str, up: bool) -> Result<(), QmpError> {
        let _ = up;
        Err(QmpError::device_not_found(name))
    }

    /// `watchdog-set-action`: what the VMM does when a watchdog runs out
    /// from now on.
    fn set_watchdog_action(&self, action: crate::WatchdogAction) -> Result<(), QmpError> {
        let _ = action;
        Err(QmpError::generic("watchdog-set-action is not available"))
    }

    /// `inject-nmi`: an NMI to every vCPU (QEMU's x86 machines). Without
    /// one: QEMU's answer on a machine with no NMI.
    fn inject_nmi(&self) -> Result<(), QmpError> {
        Err(QmpError::generic(
            "this feature or command is not currently supported",
        ))
    }

    /// The removable-media commands (`eject`, `blockdev-open-tray`,
    /// `blockdev-close-tray`, `blockdev-remove-medium`,
    /// `blockdev-insert-medium`, `blockdev-change-medium`) on the drive `target` names. Unknown
    /// drives: DeviceNotFound, as QEMU.
    fn medium(&self, target: &MediumTarget, op: MediumOp) -> Result<(), QmpError> {
        let _ = op;
        Err(QmpError::device_not_found(target.name()))
    }

    /// `device_add` with its arguments as given (the driver and its
    /// properties, QEMU's `-device` in JSON).
    fn device_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), QmpError> {
        let _ = args;
        Err(QmpError::generic("Bus does not support hotplugging"))
    }

    /// `device_del` of the device with id (or QOM path) `id`: a request
    /// the guest answers; DEVICE_DELETED follows once it is gone.
    fn device_del(&self, id: &str) -> Result<(), QmpError> {
        Err(QmpError::device_not_found(id))
    }

    /// `netdev_add` with its arguments as given; `fd` is the descriptor
    /// its `fd` argument named (taken from those `getfd` named).
    fn netdev_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
        fd: Option<OwnedFd>,
    ) -> Result<(), QmpError> {
        let _ = (args, fd);
        Err(QmpError::generic("netdev_add is not supported"))
    }

    /// `netdev_del` of the back-end with id `id`.
    fn netdev_del(&self, id: &str) -> Result<(), QmpError> {
        Err(QmpError::generic(format!("Device '{id}' not found")))
    }

    /// `query-pci`: the PCI buses as the guest has programmed them (none
    /// for a machine without PCI).
    fn query_pci(&self) -> Result<Vec<PciInfo>, QmpError> {
        Ok(Vec::new())
    }

    /// `query-cpu-definitions`: the CPU models `-cpu` takes and what of
    /// each this host lacks.
    fn cpu_definitions(&self) -> Result<Vec<CpuDefinitionInfo>, QmpError> {
        Err(QmpError::generic("CPU definitions are not available"))
    }

    /// `query-cpu-model-expansion` of `model` (`full`: every property;
    /// else `static`): the features it has on this host, as booleans.
    fn cpu_model_expansion(&self, model: &str, full: bool) -> Result<CpuModelInfo, QmpError> {
        let _ = full;
        Err(QmpError::generic(format!(
            "The CPU definition '{model}' cannot be expanded"
        )))
    }

    /// `query-vnc`. Without a VNC server: not enabled.
    fn query_vnc(&self) -> VncInfo {
        VncInfo::default()
    }

    /// `set_password` for VNC. Fails without a VNC server or without
    /// `password=on` (the monitor answers QEMU's "Could not set password").
    fn set_vnc_password(&self, password: &str) -> Result<(), QmpError> {
        let _ = password;
        Err(QmpError::generic("no VNC server"))
    }

    /// `expire_password` for VNC: seconds since the epoch after which every
    /// login fails (`None`: never). Fails without a VNC server.
    fn expire_vnc_password(&self, at: Option<u64>) -> Result<(), QmpError> {
        let _ = at;
        Err(QmpError::generic("no VNC server"))
    }

    /// `add_client` for VNC: serve a client already connected on `fd`.
    /// Without a VNC server QEMU closes the descriptor and answers success.
    fn add_vnc_client(&self, fd: OwnedFd, skipauth: bool) -> Result<(), QmpError> {
        let _ = (fd, skipauth);
        Ok(())
    }

    /// `add-fd`: puts `fd` into fd set `set` (a new set when `None`), where
    /// options naming `/dev/fdset/N` find it (qapi/misc.json).
    fn add_fd(
        &self,
        fd: OwnedFd,
        set: Option<i64>,
        opaque: Option<String>,
    ) -> Result<AddfdInfo, QmpError> {
        let _ = (fd, set, opaque);
        Err(QmpError::generic("fd sets are not available"))
    }

    /// `remove-fd`: closes descriptor `fd` of set `set`, or the whole set.
    fn remove_fd(&self, set: i64, fd: Option<i64>) -> Result<(), QmpError> {
        let _ = fd;
        Err(QmpError::generic(format!(
            "File descriptor named 'fdset-id:{set}' not found"
        )))
    }

    /// `query-fdsets`.
    fn query_fdsets(&self) -> Vec<FdsetInfo> {
        Vec::new()
    }

    /// `blockdev-add` of one node, as QMP gave it (a flat union on
    /// `driver`: the VMM's configuration reads it as it reads `-blockdev`).
    fn blockdev_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), QmpError> {
        let _ = args;
        Err(QmpError::generic("blockdev-add is not available"))
    }

    /// `blockdev-del` of a node `blockdev-add` made and nothing uses.
    fn blockdev_del(&self, node_name: &str) -> Result<(), QmpError> {
        Err(QmpError::generic(format!(
            "Failed to find node with node-name='{node_name}'"
        )))
    }

    /// `blockdev-snapshot` of each (node, overlay) pair (one, or a
    /// `transaction`'s): the overlay, a format node `blockdev-add` made
    /// with no backing image, gets `node` as its backing image and takes
    /// its place under the device.
    fn blockdev_snapshot(&self, actions: Vec<(String, String)>) -> Result<(), QmpError> {
        let _ = actions;
        Err(QmpError::generic("snapshots are not available"))
    }

    /// `block-commit`: starts a commit job.
    fn block_commit(&self, args: BlockCommit) -> Result<(), QmpError> {
        Err(QmpError::generic(format!(
            "Cannot find device='{}' nor node-name='{}'",
            args.device, args.device
        )))
    }

    /// `query-block-jobs`.
    fn block_jobs(&self) -> Vec<BlockJobInfo> {
        Vec::new()
    }

    /// `block-job-complete`, `block-job-cancel`, `job-finalize`,
    /// `job-dismiss` (and `job-complete`, `job-cancel`) on job `id`.
    fn job_verb(&self, verb: JobVerb, id: &str) -> Result<(), QmpError> {
        let _ = verb;
        Err(QmpError::generic(format!("Block job '{id}' not found")))
    }

    /// `screendump`: the picture of the graphical console (`device` and
    /// `head` name another console) written to `filename`, a path or
    /// `/dev/fdset/N`. Without one, QEMU's answer.
    fn screendump(
        &self,
        filename: &str,
        device: Option<&str>,
        head: Option<i64>,
        format: ImageFormat,
    ) -> Result<(), QmpError> {
        let _ = (filename, device, head, format);
        Err(QmpError::generic(
            "There is no QemuConsole I can screendump from.",
        ))
    }

    /// The version reported in the greeting, `query-version` and
    /// `info version`.
    fn version(&self) -> VersionInfo {
        VersionInfo::rvirt()
    }
}

/// The drive a removable-media command names: by its block backend name
/// (`device`) or its guest device's id (`id`), as QEMU takes either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediumTarget {
    pub device: Option<String>,
    pub id: Option<String>,
}

impl MediumTarget {
    /// The name errors give.
    pub fn name(&self) -> &str {
        self.id
            .as_deref()
            .or(self.device.as_deref())
            .unwrap_or_default()
    }
}

/// What a removable-media command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediumOp {
    /// `blockdev-open-tray`; `eject` is this and a removal.
    OpenTray {
        force: bool,
    },
    CloseTray,
    /// `blockdev-remove-medium` (the tray must be open).
    Remove,
    /// `eject`.
    Eject {
        force: bool,
    },
    /// `blockdev-insert-medium`: the format node `node_name` (added with
    /// `blockdev-add`) into the open, empty tray.
    Insert {
        node_name: String,
    },
    /// `blockdev-change-medium`: open, remove, insert `filename` (raw),
    /// close.
    Change {
        filename: String,
        format: Option<String>,
    },
}
