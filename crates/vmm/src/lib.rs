//! rvirt-vmm as a library: build a VM from a [`VmConfig`] and run it.
//!
//! [`Vmm::new`] opens the host side (character devices) and checks what can
//! be checked before any KVM object exists; [`Vmm::run`] boots the machine
//! ([`Vmm::boot`]: machine, devices, kernel, vCPU threads) and then waits for
//! events: a guest power-off or reset, a vCPU failure, a signal. A reset
//! tears the machine down and boots a fresh one, so nothing of the old
//! guest survives but what real hardware keeps (the CMOS).

mod chardev;
mod devices;
mod events;

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use rvirt_machine::{
    BootConfig, CpuModel, CpuSpec, Machine, MachineConfig, MachineError, Topology,
};
use rvirt_vmm_config::VmConfig;

pub use chardev::{Chardev, ChardevError};
use devices::Devices;
pub use events::{Event, EventSender};

/// Errors building or running a VM. Each names the option it concerns, so
/// the binary can print `rvirt-vmm: -kernel: …`.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{option}")]
    Chardev {
        option: &'static str,
        #[source]
        source: ChardevError,
    },
    #[error("{option}")]
    Machine {
        option: &'static str,
        #[source]
        source: MachineError,
    },
    #[error("failed to set up {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("vCPU {cpu} failed:\n{report}")]
    VcpuFailed { cpu: u32, report: String },
}

/// Which option a machine error comes from, for the message.
fn option_of(e: &MachineError, initrd: Option<&std::path::Path>) -> &'static str {
    use rvirt_machine::boot::BootError as B;
    match e {
        MachineError::Boot(B::InitrdTooLarge { .. }) => "-initrd",
        MachineError::Boot(B::Open { path, .. } | B::Read { path, .. })
            if Some(path.as_path()) == initrd =>
        {
            "-initrd"
        }
        MachineError::Boot(B::CmdlineTooLong { .. } | B::Cmdline(_)) => "-append",
        MachineError::Boot(_) => "-kernel",
        MachineError::TooManyVcpus { .. } => "-smp",
        MachineError::TooLittleMemory { .. } | MachineError::Memory { .. } => "-m",
        MachineError::Cpuid(_) => "-cpu",
        _ => "-accel kvm",
    }
}

/// Writes a line to stderr. Unlike `eprintln!` it never panics: a manager
/// that closed our stderr must not take the VM down with it.
pub fn say(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// Formats an error with its chain of causes, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some library errors already print their cause; say it once.
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// How the VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The guest powered off (or reset with `-no-reboot`).
    GuestShutdown,
    /// A signal asked the VMM to stop.
    Signal(i32),
}

/// The VMM for one VM.
pub struct Vmm {
    config: VmConfig,
    running: Option<Running>,
    devices: Devices,
    events: EventSender,
    receiver: Receiver<Event>,
}

/// A booted machine: dropping it stops the vCPUs and frees the VM.
struct Running {
    // Field order: the vCPU threads stop before the machine goes away.
    vcpus: rvirt_machine::Vcpus,
    _machine: Machine,
}

impl Vmm {
    /// Opens the host-side resources named in `config`.
    pub fn new(config: VmConfig) -> Result<Self, VmmError> {
        let (tx, receiver) = mpsc::channel();
        let events = EventSender::new(tx);
        let devices = Devices::new(&config, events.clone())?;
        Ok(Vmm {
            config,
            running: None,
            devices,
            events,
            receiver,
        })
    }

    /// A handle to post events to the VMM (signals, the monitor).
    pub fn event_sender(&self) -> EventSender {
        self.events.clone()
    }

    fn machine_config(&self) -> MachineConfig {
        let smp = &self.config.smp;
        MachineConfig {
            mem_size: self.config.mem_size,
            topology: Topology {
                sockets: smp.sockets,
                dies: smp.dies,
                cores: smp.cores,
                threads: smp.threads,
            },
            cpu: CpuSpec {
                model: match self.config.cpu.model.as_str() {
                    "host" | "max" => CpuModel::Host,
                    _ => CpuModel::Qemu64,
                },
                flags: self.config.cpu.flags.clone(),
            },
        }
    }

    fn boot_config(&self) -> BootConfig {
        BootConfig {
            kernel: self.config.kernel.clone().unwrap_or_default(),
            initrd: self.config.initrd.clone(),
            cmdline: self.config.append.clone().unwrap_or_default(),
        }
    }

    /// Builds the machine, wires the devices, loads the guest and starts the
    /// vCPU threads (paused under `-S`).
    fn boot(&mut self, paused: bool) -> Result<Running, VmmError> {
        let initrd = self.config.initrd.clone();
        let machine_err = |source: MachineError| VmmError::Machine {
            option: option_of(&source, initrd.as_deref()),
            source,
        };
        let mut machine = Machine::new(&self.machine_config()).map_err(machine_err)?;
        let (pio, mmio, platform) = self.devices.attach(&machine)?;
        machine
            .load(&self.boot_config(), platform)
            .map_err(machine_err)?;
        let vcpus = machine
            .start(
                Arc::new(pio),
                Arc::new(mmio),
                Arc::new(self.events.clone()),
                paused,
            )
            .map_err(machine_err)?;
        Ok(Running {
            vcpus,
            _machine: machine,
        })
    }

    /// Boots the VM: after this returns, the guest runs (or waits for
    /// `cont` under `-S`). Everything that can fail at start fails here.
    pub fn start(&mut self) -> Result<(), VmmError> {
        let running = self.boot(self.config.start_paused)?;
        self.running = Some(running);
        Ok(())
    }

    /// Runs the VM until it ends, booting it first if [`Vmm::start`] was
    /// not called.
    pub fn run(&mut self) -> Result<Exit, VmmError> {
        let mut running = match self.running.take() {
            Some(r) => r,
            None => self.boot(self.config.start_paused)?,
        };
        loop {
            let Ok(event) = self.receiver.recv() else {
                return Ok(Exit::GuestShutdown);
            };
            match event {
                Event::PowerOff | Event::Panic if !self.config.no_shutdown => {
                    return Ok(Exit::GuestShutdown)
                }
                Event::PowerOff | Event::Panic => {
                    // -no-shutdown: the vCPUs stop, the process stays for
                    // whoever manages it to decide.
                    running.vcpus.pause();
                }
                Event::Reset if self.config.no_reboot => return Ok(Exit::GuestShutdown),
                Event::Reset => {
                    tracing::info!("guest reset: rebooting");
                    drop(running);
                    running = self.boot(false)?;
                }
                Event::VcpuFailed { cpu, report } => {
                    return Err(VmmError::VcpuFailed { cpu, report });
                }
                Event::Signal(sig) => return Ok(Exit::Signal(sig)),
            }
        }
    }

    /// The pty names of the serial ports, for callers that report them.
    pub fn pty_names(&self) -> Vec<(String, PathBuf)> {
        self.devices.pty_names()
    }
}
