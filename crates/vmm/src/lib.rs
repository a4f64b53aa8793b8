//! rvirt-vmm as a library: build a VM from a [`VmConfig`] and run it.
//!
//! [`Vmm::new`] opens the host side (character devices, disks, taps) and
//! places every device (`device_manager`) before any KVM object exists;
//! [`Vmm::start`] boots the machine (`Vmm::boot`: machine, devices wired to
//! it, kernel, vCPU threads, the device event loop) and [`Vmm::run`] (which
//! boots first if `start` was not called) waits for events: a guest power-off or reset, a vCPU failure, a signal, a monitor
//! command. A reset tears the machine down and boots a fresh one, so
//! nothing of the old guest survives but what real hardware keeps (the
//! CMOS).
//!
//! Where things are: the device manager (factory, placement, wiring) in
//! `device_manager/`, the device event loop in `event_loop.rs`, KVM's side
//! of interrupts and ioeventfds in `interrupts.rs` and `ioevents.rs`, the
//! monitor's read model in `vm_state.rs` and its backend in `monitor.rs`,
//! the chardevs in `chardev.rs`, the VNC console in `display.rs`.

mod balloon;
mod block_job;
mod block_nodes;
mod chardev;
mod device_manager;
pub mod disk;
mod display;
mod event_loop;
mod events;
mod fdset;
mod input;
mod interrupts;
mod ioevents;
mod monitor;
mod passt;
pub mod sandbox;
mod teardown;
mod vm_state;

use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvirt_devices::AcpiPm;
use rvirt_machine::{
    BootConfig, ConfigPart, CpuModel, CpuSpec, Firmware, FirmwareConfig, LegacyArea, Machine,
    MachineConfig, MachineError, Topology,
};
use rvirt_qmp::{
    Event as QmpEvent, EventBus, GuestPanicAction, JobVerb, MonitorServer, QmpError, RunState,
    ShutdownCause,
};
use rvirt_vmm_config::VmConfig;

pub use chardev::{Chardev, ChardevError};
use device_manager::DeviceManager;
pub use device_manager::{FirmwareItemsError, VirtioError};
pub use events::{Event, EventSender, MonitorRequest, PassedFd};
pub use teardown::prefork as prefork_teardown;
use vm_state::VmState;

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
    #[error("{option}")]
    Virtio {
        option: &'static str,
        #[source]
        source: VirtioError,
    },
    #[error("-device")]
    Placement(#[source] rvirt_machine::AllocError),
    #[error("-device {driver}")]
    Ata {
        driver: &'static str,
        #[source]
        source: disk::DiskError,
    },
    #[error("fw_cfg")]
    Firmware {
        #[source]
        source: FirmwareItemsError,
    },
    #[error("-device")]
    Pci(#[source] rvirt_pci::segment::TopologyError),
    #[error("-mon")]
    Monitor(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("-mon: file descriptor {0} is not open")]
    MonitorFd(i32),
    #[error("-mon: a monitor cannot run on {0}")]
    MonitorBackend(String),
    #[error("-vnc")]
    Vnc(#[source] display::DisplayError),
    #[error("-device VGA: romfile")]
    Rom(#[source] rvirt_pci::rom::RomError),
    #[error("vCPU {cpu} failed:\n{report}")]
    VcpuFailed { cpu: u32, report: String },
}

/// Writes a line to stderr. Unlike `eprintln!` it never panics: a manager
/// that closed our stderr must not take the VM down with it.
pub fn say(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// Formats an error with its chain of causes, `outer: inner: innermost`.
/// Each message says only its own part (none repeats its `#[source]`), so
/// the chain is printed whole, once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How the VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The guest powered off (or reset with `-no-reboot`, or panicked).
    GuestShutdown,
    /// A signal asked the VMM to stop.
    Signal(i32),
    /// QMP `quit`.
    Quit,
}

/// The VMM for one VM.
pub struct Vmm {
    config: VmConfig,
    /// The BIOS image, read once: firmware boot when set.
    firmware: Option<Firmware>,
    running: Option<Running>,
    devices: DeviceManager,
    events: EventSender,
    receiver: Receiver<Event>,
    state: Arc<VmState>,
    bus: EventBus,
    monitors: Option<MonitorServer>,
    /// When the balloon's statistics timer next asks the driver for new
    /// numbers (`guest-stats-polling-interval`), if it is set.
    next_stats_poll: Option<Instant>,
    /// The VNC server (`-vnc`), listening from `Vmm::new` on.
    display: Option<Arc<display::Display>>,
}

/// A booted machine: dropping it stops the vCPUs and frees the VM.
struct Running {
    // Field order: the vCPU threads stop first, then the device event
    // loop, then the devices' wiring (ioeventfds), then the machine (guest
    // memory, VM fd) goes away.
    vcpus: rvirt_machine::Vcpus,
    event_loop: event_loop::EventLoop,
    wiring: device_manager::Wiring,
    machine: Machine,
    pm: Arc<Mutex<AcpiPm>>,
}

impl Running {
    /// Stops the guest and the device work it caused: the vCPUs first, so
    /// no new kick arrives while the event loop parks.
    fn pause(&self) {
        self.vcpus.pause();
        self.event_loop.pause();
    }

    /// Devices first, so the first kick after the resume is served.
    fn resume(&self) {
        self.event_loop.resume();
        self.vcpus.resume();
    }
}

type Reply = Sender<Result<(), QmpError>>;

/// Runs its argument with the device loop of `running` paused (when the
/// VM runs; otherwise the loop is paused already).
fn pauser(running: &Running, live: bool) -> impl Fn(&mut dyn FnMut()) + '_ {
    move |f: &mut dyn FnMut()| {
        if live {
            running.event_loop.pause();
        }
        f();
        if live {
            running.event_loop.resume();
        }
    }
}

impl Vmm {
    /// Opens the host-side resources named in `config`.
    pub fn new(config: VmConfig) -> Result<Self, VmmError> {
        rvirt_block::on_worker_start(sandbox::enter_block_io);
        fdset::init(&config.add_fds).map_err(|e| VmmError::Setup {
            what: "-add-fd",
            source: std::io::Error::other(e),
        })?;
        let (tx, receiver) = mpsc::channel();
        let events = EventSender::new(tx);
        let bus = EventBus::new();
        let firmware = match &config.bios {
            Some(path) => Some(Firmware::load(path).map_err(|e| VmmError::Machine {
                option: "-bios",
                source: e.into(),
            })?),
            None => None,
        };
        let devices = DeviceManager::new(&config, events.clone(), &bus)?;
        let state = Arc::new(VmState::new(
            &config,
            devices.balloon().map(|b| b.reading()),
            devices.disks(),
        ));
        let display = match &config.vnc {
            Some(vnc) => Some(
                display::Display::start(
                    vnc,
                    config.name.as_deref(),
                    devices.screen(),
                    bus.clone(),
                    devices.input_sink(),
                )
                .map_err(VmmError::Vnc)?,
            ),
            None => None,
        };
        let mut chardevs = devices.chardev_infos();
        chardevs.extend(monitor::chardev_infos(&config));
        *state.chardevs.lock().unwrap_or_else(|p| p.into_inner()) = chardevs;
        Ok(Vmm {
            config,
            firmware,
            running: None,
            devices,
            events,
            receiver,
            state,
            bus,
            monitors: None,
            next_stats_poll: None,
            display,
        })
    }

    /// A handle to post events to the VMM (signals, the monitor).
    pub fn event_sender(&self) -> EventSender {
        self.events.clone()
    }

    /// The option that set the part of the configuration an error of the
    /// machine is about.
    fn option_for(part: ConfigPart) -> &'static str {
        match part {
            ConfigPart::Accelerator => "-accel kvm",
            ConfigPart::Memory => "-m",
            ConfigPart::Cpus => "-smp",
            ConfigPart::CpuModel => "-cpu",
            ConfigPart::Kernel => "-kernel",
            ConfigPart::Initrd => "-initrd",
            ConfigPart::Cmdline => "-append",
            ConfigPart::Bios => "-bios",
        }
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
            boot_cpus: smp.cpus,
            cpu: CpuSpec {
                model: match self.config.cpu.model.as_str() {
                    "host" | "max" => CpuModel::Host {
                        migratable: self.config.cpu.migratable,
                    },
                    // The parser lets only the table's models through.
                    name => CpuModel::Named(
                        rvirt_vmm_config::caps::cpu_model(name).map_or(&[], |m| m.features),
                    ),
                },
                flags: self.config.cpu.flags.clone(),
            },
            acpi: self.config.acpi,
            firmware: self.firmware.clone().map(|firmware| FirmwareConfig {
                firmware,
                // microvm's BIOS is RAM, as QEMU maps it; on pc and q35 it
                // is a ROM whose legacy alias the host bridge's PAM
                // registers switch to RAM (SeaBIOS's shadowing).
                legacy: match self.config.chipset {
                    rvirt_vmm_config::Chipset::Microvm => LegacyArea::WritableBios,
                    _ => LegacyArea::Pam,
                },
            }),
            board: device_manager::board(self.config.chipset),
        }
    }

    fn boot_config(&self) -> BootConfig {
        let mut cmdline = self.config.append.clone().unwrap_or_default();
        // The virtio-mmio slots go on the command line too, for kernels
        // that boot without ACPI; appended as QEMU's microvm does.
        let virtio = self.devices.virtio_cmdline();
        if !virtio.is_empty() {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(&virtio);
        }
        BootConfig {
            kernel: self.config.kernel.clone().unwrap_or_default(),
            initrd: self.config.initrd.clone(),
            cmdline,
        }
    }

    /// Builds the machine, wires the devices, loads the guest and starts the
    /// vCPU threads (paused if `paused`).
    fn boot(&mut self, paused: bool) -> Result<Running, VmmError> {
        let machine_err = |source: MachineError| VmmError::Machine {
            option: Self::option_for(source.part()),
            source,
        };
        let mut machine = Machine::new(&self.machine_config()).map_err(machine_err)?;
        machine.on_vcpu_thread_start(sandbox::enter_vcpu);
        let attached = self.devices.attach(&machine, paused)?;
        if self.firmware.is_some() {
            // The vCPUs stay at the reset vector; firmware places the
            // tables it reads through fw_cfg.
            let tables = machine.firmware_tables(attached.platform);
            self.devices
                .attach_firmware(&machine, &attached.pio, &tables)?;
        } else {
            machine
                .load(&self.boot_config(), attached.platform)
                .map_err(machine_err)?;
        }
        let vcpus = machine
            .start(attached.pio, attached.mmio, attached.events.clone(), paused)
            .map_err(machine_err)?;
        self.publish_cpus(&vcpus);
        Ok(Running {
            vcpus,
            event_loop: attached.event_loop,
            wiring: attached.wiring,
            machine,
            pm: attached.pm,
        })
    }

    /// Tells the monitors about the new vCPU threads.
    fn publish_cpus(&self, vcpus: &rvirt_machine::Vcpus) {
        *self.state.cpus.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((vcpus.topology(), vcpus.thread_id_cells()));
    }

    /// Boots the VM: after this returns, the guest runs (or waits for
    /// `cont` under `-S`). Everything that can fail at start fails here.
    ///
    /// The machine is built with its vCPUs parked, then the monitors start,
    /// so the first client already sees every vCPU (and a `wait=on` monitor
    /// holds the guest until its client is there), then the vCPUs run
    /// unless `-S` was given.
    pub fn start(&mut self) -> Result<(), VmmError> {
        let running = self.boot(true)?;
        let monitors = monitor::start(
            &self.config,
            self.state.clone(),
            self.events.clone(),
            self.bus.clone(),
            self.display.clone(),
        )?;
        self.monitors = Some(monitors);
        if !self.config.start_paused {
            running.resume();
        }
        self.running = Some(running);
        Ok(())
    }

    /// Runs the VM until it ends, booting it first if [`Vmm::start`] was
    /// not called. The monitors are stopped (their replies flushed) before
    /// this returns.
    pub fn run(&mut self) -> Result<Exit, VmmError> {
        let result = self.event_loop();
        // A commit's copy stops where it is: the base holds only what the
        // overlay above it holds too.
        self.state.jobs.stop_all();
        if let Some(running) = self.running.take() {
            running.vcpus.stop();
            teardown::defer(running.machine.vm_fd().as_raw_fd());
        }
        if let Some(m) = self.monitors.take() {
            m.shutdown();
        }
        result
    }

    fn set_state(&self, s: RunState) {
        self.state.set_status(s);
    }

    /// Stops the vCPUs if they run and moves to `next`, then posts `first`
    /// and STOP. The state changes before any event is posted, so a client
    /// that queries after an event sees the state the event announced.
    fn pause(&mut self, running: &Running, next: RunState, first: Option<QmpEvent>) {
        let was_running = self.state.status() == RunState::Running;
        if was_running {
            running.pause();
        }
        self.set_state(next);
        if let Some(e) = first {
            self.bus.post(e);
        }
        if was_running {
            self.bus.post(QmpEvent::Stop);
        }
    }

    /// Waits for events until the VM ends. The booted machine stays in
    /// `self.running` throughout, so [`Vmm::run`] decides how it is torn
    /// down.
    fn event_loop(&mut self) -> Result<Exit, VmmError> {
        if self.running.is_none() {
            self.start()?;
        }
        loop {
            let event = match self.next_stats_poll {
                None => self
                    .receiver
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self
                    .receiver
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            let event = match event {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    self.poll_balloon_stats();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(Exit::GuestShutdown),
            };
            if let Some(end) = self.handle(event)? {
                return Ok(end);
            }
        }
    }

    /// The balloon's statistics timer fired: the driver gets its stats
    /// buffer back to refill, and the timer is set again.
    fn poll_balloon_stats(&mut self) {
        self.next_stats_poll = self.devices.balloon().and_then(|b| {
            b.poll_stats();
            let secs = b.interval();
            (secs > 0).then(|| Instant::now() + Duration::from_secs(u64::from(secs)))
        });
    }

    /// A shutdown for `cause`: the VM ends, or under `-no-shutdown` its
    /// vCPUs stop in state `shutdown` and the process stays for whoever
    /// manages it to decide, as in QEMU.
    fn shutdown(&mut self, running: &Running, cause: ShutdownCause) -> Option<Exit> {
        let event = QmpEvent::shutdown(cause);
        if self.config.no_shutdown {
            self.pause(running, RunState::Shutdown, Some(event));
            None
        } else {
            self.bus.post(event);
            Some(Exit::GuestShutdown)
        }
    }

    /// Acts on one event; returns how the VM ended, if it did.
    fn handle(&mut self, event: Event) -> Result<Option<Exit>, VmmError> {
        let Some(running) = self.running.take() else {
            return Ok(Some(Exit::GuestShutdown));
        };
        let mut end = None;
        let running = match event {
            Event::PowerOff => {
                end = self.shutdown(&running, ShutdownCause::GuestShutdown);
                running
            }
            Event::Panic => {
                if self.config.no_shutdown {
                    let event = QmpEvent::GuestPanicked {
                        action: GuestPanicAction::Pause,
                        info: None,
                    };
                    self.pause(&running, RunState::GuestPanicked, Some(event));
                } else {
                    self.bus.post(QmpEvent::GuestPanicked {
                        action: GuestPanicAction::Poweroff,
                        info: None,
                    });
                    self.bus.post(QmpEvent::shutdown(ShutdownCause::GuestPanic));
                    end = Some(Exit::GuestShutdown);
                }
                running
            }
            // -no-reboot makes the reset a shutdown, as in QEMU.
            Event::Reset if self.config.no_reboot => {
                end = self.shutdown(&running, ShutdownCause::GuestReset);
                running
            }
            Event::Reset => {
                tracing::info!("guest reset: rebooting");
                self.bus.post(QmpEvent::reset(ShutdownCause::GuestReset));
                self.reboot(running)?
            }
            Event::Watchdog => {
                let (next, ended) = self.watchdog_expired(running)?;
                end = ended;
                next
            }
            Event::Monitor(request, reply) => self.monitor_request(running, request, reply)?,
            Event::QueryPci(reply) => {
                let _ = reply.send(running.wiring.query_pci());
                running
            }
            Event::PciUnplugged { function, id } => {
                let events = self.devices.unplugged(
                    function,
                    id,
                    &running.wiring,
                    &running.event_loop,
                    &mut self.state.nodes(),
                );
                // Before DEVICE_DELETED: whoever waits for it finds the
                // disk gone from query-block.
                self.state.set_disks(self.devices.disks());
                for e in events {
                    self.bus.post(e);
                }
                running
            }
            Event::Quit => {
                end = Some(Exit::Quit);
                running
            }
            Event::JobCopied { id, result } => {
                let pause = pauser(&running, self.state.status() == RunState::Running);
                self.state.jobs.copied(&id, result, &pause, &self.bus);
                drop(pause);
                running
            }
            Event::VcpuFailed { cpu, report } => {
                self.set_state(RunState::InternalError);
                self.running = Some(running);
                return Err(VmmError::VcpuFailed { cpu, report });
            }
            #[cfg(any(feature = "sandbox-probe", debug_assertions))]
            Event::Probe => {
                sandbox::probe::fire();
                running
            }
            Event::Signal(sig) => {
                self.bus.post(QmpEvent::shutdown(ShutdownCause::HostSignal));
                end = Some(Exit::Signal(sig));
                running
            }
        };
        self.running = Some(running);
        Ok(end)
    }

    /// The watchdog ran out: post WATCHDOG, then take the action, as
    /// QEMU's `watchdog_perform_action`.
    fn watchdog_expired(&mut self, running: Running) -> Result<(Running, Option<Exit>), VmmError> {
        use rvirt_vmm_config::WatchdogAction as A;
        let action = self.config.watchdog_action;
        tracing::info!(action = action.as_str(), "watchdog expired");
        let event = QmpEvent::Watchdog { action };
        let mut end = None;
        let running = match action {
            A::Reset => {
                self.bus.post(event);
                // A guest reset: under -no-reboot a shutdown.
                if self.config.no_reboot {
                    end = self.shutdown(&running, ShutdownCause::GuestReset);
                    running
                } else {
                    self.bus.post(QmpEvent::reset(ShutdownCause::GuestReset));
                    self.reboot(running)?
                }
            }
            A::Shutdown => {
                self.bus.post(event);
                self.bus.post(QmpEvent::Powerdown);
                running
                    .pm
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .press_power_button();
                running
            }
            A::Poweroff => {
                // QEMU exits at once, with no SHUTDOWN event.
                self.bus.post(event);
                end = Some(Exit::GuestShutdown);
                running
            }
            A::Pause => {
                if self.state.status() == RunState::Running {
                    self.pause(&running, RunState::Watchdog, Some(event));
                } else {
                    self.bus.post(event);
                }
                running
            }
            A::Debug => {
                self.bus.post(event);
                eprintln!("watchdog: timer fired");
                running
            }
            A::InjectNmi => {
                self.bus.post(event);
                running.vcpus.inject_nmi();
                running
            }
            A::None => {
                self.bus.post(event);
                running
            }
        };
        Ok((running, end))
    }

    /// Boots a fresh machine in place of `old`. A running VM keeps running;
    /// any other reboots into `prelaunch`, as QEMU does.
    fn reboot(&mut self, old: Running) -> Result<Running, VmmError> {
        drop(old);
        let was_running = self.state.status() == RunState::Running;
        let running = self.boot(!was_running)?;
        if !was_running {
            self.set_state(RunState::Prelaunch);
        }
        Ok(running)
    }

    /// `blockdev-snapshot` of each (node, overlay): every pair is checked
    /// first, then each disk is switched to its overlay with the device
    /// loop paused (so no request runs during a switch). A switch that
    /// fails leaves that disk, and those after it, on their images; those
    /// switched before stay switched (QEMU's transactions undo them; rvirt
    /// reports which did not switch).
    fn snapshot(
        &mut self,
        running: &Running,
        actions: &[(String, String)],
    ) -> Result<(), QmpError> {
        let mut plans = Vec::new();
        {
            let nodes = self.state.nodes();
            for (i, (node, overlay)) in actions.iter().enumerate() {
                if actions[..i].iter().any(|(n, o)| n == node || o == overlay) {
                    return Err(QmpError::generic(format!(
                        "node '{node}' or overlay '{overlay}' named twice in one transaction"
                    )));
                }
                let (_, image) = nodes.snapshot_plan(node, overlay)?;
                self.state.jobs.check_idle(node)?;
                let disk = self
                    .devices
                    .disks()
                    .into_iter()
                    .find(|d| d.top_node().as_deref() == Some(node.as_str()))
                    .ok_or_else(|| {
                        QmpError::generic(format!(
                            "node '{node}' is not the active layer of a disk"
                        ))
                    })?;
                plans.push((node, overlay, image, disk));
            }
        }
        let live = self.state.status() == RunState::Running;
        if live {
            running.event_loop.pause();
        }
        let mut result = Ok(());
        for (node, overlay, image, disk) in plans {
            if let Err(e) = disk.switch_image(image.clone()) {
                result = Err(QmpError::generic(format!(
                    "cannot put overlay '{overlay}' over node '{node}': {e}"
                )));
                break;
            }
            self.state.nodes().snapshot_done(node, overlay, image);
            tracing::info!(node = %node, overlay = %overlay, "snapshot: the disk writes to the overlay");
        }
        if live {
            running.event_loop.resume();
        }
        result
    }

    fn monitor_request(
        &mut self,
        running: Running,
        request: MonitorRequest,
        reply: Reply,
    ) -> Result<Running, VmmError> {
        let mut running = running;
        let result = match request {
            MonitorRequest::Stop => {
                if self.state.status() == RunState::Running {
                    self.pause(&running, RunState::Paused, None);
                }
                Ok(())
            }
            MonitorRequest::Cont => {
                let s = self.state.status();
                if s.needs_reset() {
                    Err(QmpError::generic(
                        "Resetting the Virtual Machine is required",
                    ))
                } else {
                    if s != RunState::Running {
                        running.resume();
                        self.set_state(RunState::Running);
                        self.bus.post(QmpEvent::Resume);
                    }
                    Ok(())
                }
            }
            MonitorRequest::Reset if self.config.no_reboot => {
                // As QEMU: -no-reboot turns every reset into a shutdown,
                // including one asked for over QMP.
                if self
                    .shutdown(&running, ShutdownCause::HostQmpSystemReset)
                    .is_some()
                {
                    self.events.post(Event::Quit);
                }
                Ok(())
            }
            MonitorRequest::Reset => {
                self.bus
                    .post(QmpEvent::reset(ShutdownCause::HostQmpSystemReset));
                running = self.reboot(running)?;
                Ok(())
            }
            MonitorRequest::Powerdown => {
                self.bus.post(QmpEvent::Powerdown);
                running
                    .pm
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .press_power_button();
                Ok(())
            }
            MonitorRequest::Balloon { target } => match self.devices.balloon() {
                Some(b) => {
                    b.set_target(target);
                    Ok(())
                }
                None => Err(QmpError::no_balloon()),
            },
            // As QEMU's setter: a new timer fires at once, a changed one
            // after the new interval, 0 stops it.
            MonitorRequest::BalloonStatsInterval { secs } => match self.devices.balloon() {
                Some(b) => {
                    let before = b.interval();
                    b.set_interval(secs);
                    if secs == 0 {
                        self.next_stats_poll = None;
                    } else if before == 0 {
                        self.next_stats_poll = Some(Instant::now());
                    } else if secs != before {
                        self.next_stats_poll =
                            Some(Instant::now() + Duration::from_secs(u64::from(secs)));
                    }
                    Ok(())
                }
                None => Err(QmpError::no_balloon()),
            },
            MonitorRequest::DeviceAdd(json) => {
                let added = self.devices.device_add(
                    &json,
                    &running.wiring,
                    &running.event_loop,
                    &mut self.state.nodes(),
                );
                if added.is_ok() {
                    self.state.set_disks(self.devices.disks());
                }
                added
            }
            MonitorRequest::DeviceDel(id) => self.devices.device_del(&id, &running.wiring),
            MonitorRequest::NetdevAdd(json, fd) => self.devices.netdev_add(&json, fd.take()),
            MonitorRequest::NetdevDel(id) => self.devices.netdev_del(&id),
            MonitorRequest::SetLink { name, up } => match self.devices.nic(&name) {
                Some(nic) => {
                    nic.set_link(up);
                    Ok(())
                }
                None => Err(QmpError::device_not_found(&name)),
            },
            MonitorRequest::BlockdevAdd(args) => self.state.nodes().add(&args),
            MonitorRequest::BlockdevDel(name) => self.state.nodes().del(&name),
            MonitorRequest::BlockdevSnapshot(actions) => self.snapshot(&running, &actions),
            MonitorRequest::BlockCommit(args) => {
                let pause = pauser(&running, self.state.status() == RunState::Running);
                let nodes = self.state.nodes();
                self.state.jobs.start_commit(
                    args,
                    &self.devices.disks(),
                    &nodes,
                    &pause,
                    &self.events,
                    &self.bus,
                )
            }
            MonitorRequest::Job(verb, id) => {
                let pause = pauser(&running, self.state.status() == RunState::Running);
                let jobs = &self.state.jobs;
                match verb {
                    JobVerb::Complete => {
                        jobs.complete(&id, &pause, &self.bus).map(|(top, base, _)| {
                            self.state.nodes().commit_done(&top, &base);
                        })
                    }
                    JobVerb::Cancel { .. } => jobs.cancel(&id, &pause, &self.bus),
                    JobVerb::Finalize => jobs.finalize(&id),
                    JobVerb::Dismiss => jobs.dismiss(&id, &self.bus),
                }
            }
            MonitorRequest::Medium { target, op } => {
                let mut nodes = self.state.nodes();
                self.devices.medium(&target, op, &self.bus, &mut nodes)
            }
            MonitorRequest::WatchdogAction(action) => {
                self.config.watchdog_action = action;
                Ok(())
            }
            MonitorRequest::InjectNmi => {
                running.vcpus.inject_nmi();
                Ok(())
            }
        };
        // The monitor may have given up waiting; nothing to do then.
        let _ = reply.send(result);
        Ok(running)
    }
}
