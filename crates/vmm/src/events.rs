//! Events the VMM's main loop acts on, from devices, vCPUs, signals and
//! (later) the monitor. Everything funnels into one channel so the main
//! loop has a single place where the VM's state changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use rvirt_bus::{VmControl, VmRequest};
use rvirt_machine::VcpuEvents;

/// A monitor command that changes the VM, answered by the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorRequest {
    Stop,
    Cont,
    Reset,
    Powerdown,
}

/// Something the VMM must act on.
#[derive(Debug)]
pub enum Event {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// The guest reset the machine.
    Reset,
    /// The guest reported a panic.
    Panic,
    VcpuFailed {
        cpu: u32,
        report: String,
    },
    Signal(i32),
    /// A monitor command and where to send its result.
    Monitor(MonitorRequest, Sender<Result<(), rvirt_qmp::QmpError>>),
    /// QMP `quit`.
    Quit,
}

/// Posts events to the VMM's main loop. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct EventSender(Arc<Mutex<Sender<Event>>>);

impl EventSender {
    pub(crate) fn new(tx: Sender<Event>) -> Self {
        EventSender(Arc::new(Mutex::new(tx)))
    }

    /// Posts an event. If the main loop is gone the VM is ending anyway.
    pub fn post(&self, event: Event) {
        let _ = self.0.lock().unwrap_or_else(|p| p.into_inner()).send(event);
    }
}

impl VmControl for EventSender {
    fn request(&self, request: VmRequest) {
        self.post(match request {
            VmRequest::PowerOff => Event::PowerOff,
            VmRequest::Reset => Event::Reset,
            VmRequest::Panic => Event::Panic,
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
        // Every request a device makes ends this machine's run: a power-off,
        // a reset (a fresh machine boots) or a panic.
        self.stop.store(true, Ordering::Release);
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
