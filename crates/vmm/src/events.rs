//! Events the VMM's main loop acts on, from devices, vCPUs, signals and
//! the monitor. Everything funnels into one channel so the main loop has a
//! single place where the VM's state changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use rvirt_machine::VcpuEvents;
use rvirt_platform::{VmControl, VmRequest};

/// A monitor command that changes the VM, answered by the main loop. Every
/// change a monitor makes is one of these: monitor threads never lock a
/// device or touch the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorRequest {
    Stop,
    Cont,
    Reset,
    Powerdown,
    /// QMP `balloon`: the guest should have `target` bytes.
    Balloon {
        target: u64,
    },
    /// QMP `qom-set` of the balloon's `guest-stats-polling-interval`:
    /// ask the driver for statistics every `secs` seconds (0: stop).
    BalloonStatsInterval {
        secs: u32,
    },
    /// QMP `set_link`: the NIC named `name` (netdev or device id).
    SetLink {
        name: String,
        up: bool,
    },
    /// QMP `blockdev-add`: opens files, which only the main thread may.
    BlockdevAdd(serde_json::Map<String, serde_json::Value>),
    /// QMP `blockdev-del`.
    BlockdevDel(String),
    /// QMP `blockdev-snapshot` (one) or `transaction` (several):
    /// (node, overlay) pairs.
    BlockdevSnapshot(Vec<(String, String)>),
    /// QMP `block-commit`.
    BlockCommit(rvirt_qmp::BlockCommit),
    /// QMP `block-job-complete`, `block-job-cancel`, `job-*` of a job.
    Job(rvirt_qmp::JobVerb, String),
    /// The removable-media commands on a CD-ROM.
    Medium {
        target: rvirt_qmp::MediumTarget,
        op: rvirt_qmp::MediumOp,
    },
    /// QMP `device_add`, its arguments as JSON.
    DeviceAdd(String),
    /// QMP `device_del` of the device with this id.
    DeviceDel(String),
    /// QMP `netdev_add`, its arguments as JSON, with the descriptor its
    /// `fd` named.
    NetdevAdd(String, PassedFd),
    /// QMP `netdev_del`.
    NetdevDel(String),
    /// QMP `watchdog-set-action`.
    WatchdogAction(rvirt_vmm_config::WatchdogAction),
    /// QMP `inject-nmi`: an NMI to every vCPU.
    InjectNmi,
}

/// A descriptor a monitor client passed, on its way to the main loop,
/// which takes it (once).
#[derive(Debug, Clone, Default)]
pub struct PassedFd(std::sync::Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>);

impl PassedFd {
    pub(crate) fn new(fd: Option<std::os::fd::OwnedFd>) -> Self {
        PassedFd(std::sync::Arc::new(std::sync::Mutex::new(fd)))
    }

    /// The descriptor, if not taken yet.
    pub(crate) fn take(&self) -> Option<std::os::fd::OwnedFd> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl PartialEq for PassedFd {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PassedFd {}

/// Something the VMM must act on.
#[derive(Debug)]
pub enum Event {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// The guest reset the machine.
    Reset,
    /// The guest reported a panic.
    Panic,
    /// The watchdog ran out: the main loop takes the watchdog action.
    Watchdog,
    VcpuFailed {
        cpu: u32,
        report: String,
    },
    Signal(i32),
    /// A monitor command and where to send its result.
    Monitor(MonitorRequest, Sender<Result<(), rvirt_qmp::QmpError>>),
    /// QMP `query-pci`: the configuration space is the devices', so the
    /// main loop reads it, as it does for the other device state.
    QueryPci(Sender<Vec<rvirt_qmp::PciInfo>>),
    /// QMP `quit`.
    Quit,
    /// A block job's copy thread ended.
    JobCopied {
        id: String,
        result: Result<(), String>,
    },
    /// The guest let a hot-plugged (or any hot-unpluggable) PCI function
    /// go: the segment took it out (its BARs and ioeventfds are gone); the
    /// main loop releases the rest and posts DEVICE_DELETED.
    PciUnplugged {
        function: rvirt_pci::FunctionId,
        id: Option<String>,
    },
    /// Test builds: fire the armed sandbox probe (SIGUSR1).
    #[cfg(any(feature = "sandbox-probe", debug_assertions))]
    Probe,
}

/// Posts events to the VMM's main loop. Cheap to clone; never blocks; a
/// plain `Sender`, which is `Sync`, so threads share it without a lock.
#[derive(Clone)]
pub struct EventSender(Sender<Event>);

impl EventSender {
    pub(crate) fn new(tx: Sender<Event>) -> Self {
        EventSender(tx)
    }

    /// Posts an event. If the main loop is gone the VM is ending anyway.
    pub fn post(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

impl VmControl for EventSender {
    fn request(&self, request: VmRequest) {
        self.post(match request {
            VmRequest::PowerOff => Event::PowerOff,
            VmRequest::Reset => Event::Reset,
            VmRequest::Panic => Event::Panic,
            VmRequest::Watchdog => Event::Watchdog,
        });
    }
}

/// The events of one boot of the machine: what its devices and vCPUs post,
/// plus whether the guest has asked this machine to stop, so its vCPUs stop
/// at once instead of running on until the main loop tears it down.
pub(crate) struct BootEvents {
    sender: EventSender,
    stop: AtomicBool,
}

impl BootEvents {
    pub(crate) fn new(sender: EventSender) -> Self {
        BootEvents {
            sender,
            stop: AtomicBool::new(false),
        }
    }
}

impl VmControl for BootEvents {
    fn request(&self, request: VmRequest) {
        // Every request a device makes ends this machine's run (a power-off,
        // a reset: a fresh machine boots, a panic) except the watchdog's,
        // whose action the main loop picks and may be to run on.
        if request != VmRequest::Watchdog {
            self.stop.store(true, Ordering::Release);
        }
        self.sender.request(request);
    }
}

impl VcpuEvents for BootEvents {
    fn vcpu_failed(&self, cpu: u32, report: String) {
        self.sender.vcpu_failed(cpu, report);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl VcpuEvents for EventSender {
    fn vcpu_failed(&self, cpu: u32, report: String) {
        self.post(Event::VcpuFailed { cpu, report });
    }
}
