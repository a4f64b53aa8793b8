//! The VMM side of QMP: the [`MonitorBackend`] the monitor threads call, and
//! starting the monitors named on the command line.
//!
//! Monitor threads never touch the machine or a device. Queries read the
//! read model ([`VmState`]), which the main loop and the devices keep
//! current; every command that changes the VM (run state, reset, the power
//! button, the balloon's target, a NIC's link) is posted to the main loop
//! as [`Event::Monitor`] and the monitor thread waits for the main loop's
//! answer, so every change happens on one thread, in one order, whoever
//! asked for it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rvirt_qmp::{
    AddfdInfo, BlockInfo, BlockStats, ChardevInfo, CpuDefinitionInfo, CpuInfoFast, CpuModelInfo,
    CpuProps, Event as QmpEvent, EventBus, FdsetInfo, ImageFormat, MonitorBackend, MonitorServer,
    PciInfo, QmpError, RunState, ShutdownCause, VncInfo,
};
use rvirt_vmm_config::{ChardevBackend, VmConfig};
use std::os::fd::OwnedFd;

use crate::disk::DiskModel;
use crate::display::Display;
use crate::events::{Event, EventSender, MonitorRequest};
use crate::vm_state::VmState;
use crate::VmmError;

/// How long a monitor thread waits for the main loop. The main loop answers
/// in microseconds unless it is rebooting a large guest; a bound keeps a
/// stuck VMM from also hanging its monitors.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Backend {
    state: Arc<VmState>,
    events: EventSender,
    bus: EventBus,
    /// The VNC server: its calls are its own (locked inside rvirt-vnc) and
    /// touch no machine state, so monitor threads make them directly.
    display: Option<Arc<Display>>,
    /// `-sandbox on`: the monitor threads may open no path.
    confined: bool,
}

impl Backend {
    fn ask(&self, request: MonitorRequest) -> Result<(), QmpError> {
        let (tx, rx) = mpsc::channel();
        self.events.post(Event::Monitor(request, tx));
        rx.recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|_| Err(QmpError::generic("the VMM did not answer")))
    }
}

/// KVM's CPUID on this host, for the CPU model queries (read from
/// `/dev/kvm`, not from the VM: it answers under `-machine none` too, as
/// libvirt's capability probe runs it).
fn kvm_cpuid() -> Result<kvm_bindings::CpuId, QmpError> {
    rvirt_machine::cpuid::kvm_supported()
        .map_err(|e| QmpError::generic(format!("cannot read KVM's CPUID: {e}")))
}

impl MonitorBackend for Backend {
    fn cpu_definitions(&self) -> Result<Vec<CpuDefinitionInfo>, QmpError> {
        let kvm = kvm_cpuid()?;
        let host = CpuDefinitionInfo::x86_64("host", Vec::new());
        let max = CpuDefinitionInfo::x86_64("max", Vec::new());
        let models = rvirt_vmm_config::caps::CPU_MODELS.iter().map(|m| {
            let missing = rvirt_machine::cpuid::unavailable_features(&kvm, m.features);
            CpuDefinitionInfo::x86_64(m.name, missing)
        });
        Ok([host, max].into_iter().chain(models).collect())
    }

    fn cpu_model_expansion(&self, model: &str, full: bool) -> Result<CpuModelInfo, QmpError> {
        let _ = full;
        let kvm = kvm_cpuid()?;
        let on: Vec<&str> = match model {
            "host" | "max" => rvirt_machine::cpuid::supported_features(&kvm),
            name => match rvirt_vmm_config::caps::cpu_model(name) {
                Some(m) => m.features.to_vec(),
                None => {
                    return Err(QmpError::generic(format!(
                        "The CPU definition '{name}' is unknown."
                    )))
                }
            },
        };
        Ok(CpuModelInfo::with_features(model, on))
    }

    fn status(&self) -> RunState {
        self.state.status()
    }

    fn stop(&self) -> Result<(), QmpError> {
        self.ask(MonitorRequest::Stop)
    }

    fn cont(&self) -> Result<(), QmpError> {
        self.ask(MonitorRequest::Cont)
    }

    fn system_reset(&self) {
        if let Err(e) = self.ask(MonitorRequest::Reset) {
            tracing::warn!("system_reset: {}", e.desc);
        }
    }

    fn system_powerdown(&self) {
        if let Err(e) = self.ask(MonitorRequest::Powerdown) {
            tracing::warn!("system_powerdown: {}", e.desc);
        }
    }

    fn quit(&self) {
        self.bus
            .post(QmpEvent::shutdown(ShutdownCause::HostQmpQuit));
        self.events.post(Event::Quit);
    }

    fn block(&self) -> Vec<BlockInfo> {
        self.state.disks().iter().map(DiskModel::info).collect()
    }

    fn block_stats(&self, query_nodes: bool) -> Vec<BlockStats> {
        self.state
            .disks()
            .iter()
            .flat_map(|d| d.stats(query_nodes))
            .collect()
    }

    fn name(&self) -> Option<String> {
        self.state.name.clone()
    }

    fn balloon(&self, target: i64) -> Result<(), QmpError> {
        self.ask(MonitorRequest::Balloon {
            target: u64::try_from(target).unwrap_or(0),
        })
    }

    fn qom_get(&self, path: &str, property: &str) -> Result<serde_json::Value, QmpError> {
        match &self.state.balloon {
            Some(b) => b.qom_get(path, property),
            None => Err(QmpError::device_not_found(path)),
        }
    }

    fn qom_set(
        &self,
        path: &str,
        property: &str,
        value: &serde_json::Value,
    ) -> Result<(), QmpError> {
        let Some(b) = &self.state.balloon else {
            return Err(QmpError::device_not_found(path));
        };
        let secs = b.qom_set_interval(path, property, value)?;
        self.ask(MonitorRequest::BalloonStatsInterval { secs })
    }

    fn medium(
        &self,
        target: &rvirt_qmp::MediumTarget,
        op: rvirt_qmp::MediumOp,
    ) -> Result<(), QmpError> {
        self.ask(MonitorRequest::Medium {
            target: target.clone(),
            op,
        })
    }

    fn set_watchdog_action(&self, action: rvirt_qmp::WatchdogAction) -> Result<(), QmpError> {
        self.ask(MonitorRequest::WatchdogAction(action))
    }

    fn inject_nmi(&self) -> Result<(), QmpError> {
        self.ask(MonitorRequest::InjectNmi)
    }

    fn set_link(&self, name: &str, up: bool) -> Result<(), QmpError> {
        self.ask(MonitorRequest::SetLink {
            name: name.to_string(),
            up,
        })
    }

    fn device_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), QmpError> {
        self.ask(MonitorRequest::DeviceAdd(
            serde_json::Value::Object(args.clone()).to_string(),
        ))
    }

    fn device_del(&self, id: &str) -> Result<(), QmpError> {
        self.ask(MonitorRequest::DeviceDel(id.to_string()))
    }

    fn netdev_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
        fd: Option<OwnedFd>,
    ) -> Result<(), QmpError> {
        self.ask(MonitorRequest::NetdevAdd(
            serde_json::Value::Object(args.clone()).to_string(),
            crate::events::PassedFd::new(fd),
        ))
    }

    fn netdev_del(&self, id: &str) -> Result<(), QmpError> {
        self.ask(MonitorRequest::NetdevDel(id.to_string()))
    }

    fn query_balloon(&self) -> Result<i64, QmpError> {
        let actual = self
            .state
            .balloon_actual()
            .ok_or_else(QmpError::no_balloon)?;
        Ok(i64::try_from(actual).unwrap_or(i64::MAX))
    }

    fn uuid(&self) -> Option<String> {
        self.state.uuid.clone()
    }

    fn cpus(&self) -> Vec<CpuInfoFast> {
        let current = self
            .state
            .cpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((topo, ids)) = current else {
            return Vec::new();
        };
        // A thread that is starting has no ID yet; it has one within
        // microseconds, so wait briefly rather than report 0.
        let mut tids = ids.read();
        for _ in 0..100 {
            if tids.iter().all(|&t| t != 0) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
            tids = ids.read();
        }
        tids.iter()
            .enumerate()
            .map(|(i, &tid)| {
                let (socket, die, core, thread) = topo.position(i as u32);
                CpuInfoFast::x86_64(
                    i as i64,
                    i64::from(tid),
                    CpuProps {
                        node_id: None,
                        socket_id: i64::from(socket),
                        die_id: Some(i64::from(die)),
                        core_id: i64::from(core),
                        thread_id: i64::from(thread),
                    },
                )
            })
            .collect()
    }

    fn query_pci(&self) -> Result<Vec<PciInfo>, QmpError> {
        let (tx, rx) = mpsc::channel();
        self.events.post(Event::QueryPci(tx));
        rx.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| QmpError::generic("the VMM did not answer"))
    }

    fn query_vnc(&self) -> VncInfo {
        self.display.as_ref().map(|d| d.info()).unwrap_or_default()
    }

    fn set_vnc_password(&self, password: &str) -> Result<(), QmpError> {
        match &self.display {
            Some(d) => d.set_password(password),
            None => Err(QmpError::generic("no VNC server")),
        }
    }

    fn expire_vnc_password(&self, at: Option<u64>) -> Result<(), QmpError> {
        match &self.display {
            Some(d) => {
                d.expire_password(at);
                Ok(())
            }
            None => Err(QmpError::generic("no VNC server")),
        }
    }

    fn screendump(
        &self,
        filename: &str,
        device: Option<&str>,
        head: Option<i64>,
        format: ImageFormat,
    ) -> Result<(), QmpError> {
        let Some(display) = &self.display else {
            return Err(QmpError::generic(
                "There is no QemuConsole I can screendump from.",
            ));
        };
        // One console: the display's, head 0 (QEMU's default).
        if let Some(d) = device {
            return Err(QmpError::generic(format!("Device '{d}' not found")));
        }
        if head.is_some_and(|h| h != 0) {
            return Err(QmpError::generic("Invalid head"));
        }
        let format = match format {
            ImageFormat::Ppm => rvirt_vnc::ImageFormat::Ppm,
            ImageFormat::Png => rvirt_vnc::ImageFormat::Png,
        };
        let failed =
            |e: std::io::Error| QmpError::generic(format!("Could not write '{filename}': {e}"));
        let path = std::path::Path::new(filename);
        if let Some(file) = crate::fdset::open(path, false, true) {
            let mut file =
                file.map_err(|e| QmpError::generic(format!("Could not open '{filename}': {e}")))?;
            return display.screendump(format, &mut file).map_err(failed);
        }
        if self.confined {
            // Landlock and the monitor's seccomp filter forbid opening
            // host paths: refuse before trying.
            return Err(QmpError::generic(format!(
                "Could not open '{filename}': a confined VMM opens no path (pass the file with add-fd and name /dev/fdset/N)"
            )));
        }
        display.screendump_to(format, path).map_err(failed)
    }

    fn add_vnc_client(&self, fd: OwnedFd, skipauth: bool) -> Result<(), QmpError> {
        // Without -vnc the descriptor is closed and the answer is success,
        // as QEMU's.
        if let Some(d) = &self.display {
            d.add_client(fd, skipauth);
        }
        Ok(())
    }

    fn add_fd(
        &self,
        fd: OwnedFd,
        set: Option<i64>,
        opaque: Option<String>,
    ) -> Result<AddfdInfo, QmpError> {
        crate::fdset::add(fd, set, opaque)
    }

    fn remove_fd(&self, set: i64, fd: Option<i64>) -> Result<(), QmpError> {
        crate::fdset::remove(set, fd)
    }

    fn query_fdsets(&self) -> Vec<FdsetInfo> {
        crate::fdset::query()
    }

    fn blockdev_add(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), QmpError> {
        self.ask(MonitorRequest::BlockdevAdd(args.clone()))
    }

    fn blockdev_del(&self, node_name: &str) -> Result<(), QmpError> {
        self.ask(MonitorRequest::BlockdevDel(node_name.to_string()))
    }

    fn blockdev_snapshot(&self, actions: Vec<(String, String)>) -> Result<(), QmpError> {
        self.ask(MonitorRequest::BlockdevSnapshot(actions))
    }

    fn block_commit(&self, args: rvirt_qmp::BlockCommit) -> Result<(), QmpError> {
        self.ask(MonitorRequest::BlockCommit(args))
    }

    fn block_jobs(&self) -> Vec<rvirt_qmp::BlockJobInfo> {
        self.state.jobs.infos()
    }

    fn job_verb(&self, verb: rvirt_qmp::JobVerb, id: &str) -> Result<(), QmpError> {
        self.ask(MonitorRequest::Job(verb, id.to_string()))
    }

    fn chardevs(&self) -> Vec<ChardevInfo> {
        self.state
            .chardevs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn monitor_err(source: impl std::error::Error + Send + Sync + 'static) -> VmmError {
    VmmError::Monitor(Box::new(source))
}

/// The `query-chardev` entries of the monitors.
pub(crate) fn chardev_infos(cfg: &VmConfig) -> Vec<ChardevInfo> {
    cfg.monitors
        .iter()
        .map(|m| ChardevInfo {
            label: m.chardev.clone(),
            filename: match &m.backend {
                ChardevBackend::Socket { path, .. } => format!("unix:{},server=on", path.display()),
                ChardevBackend::Stdio => "stdio".into(),
                ChardevBackend::Fd(fd) => format!("fd:{fd}"),
                other => format!("{other:?}"),
            },
            frontend_open: true,
        })
        .collect()
}

/// Starts every monitor of `cfg`; the server is shut down at exit.
pub(crate) fn start(
    cfg: &VmConfig,
    state: Arc<VmState>,
    events: EventSender,
    bus: EventBus,
    display: Option<Arc<Display>>,
) -> Result<MonitorServer, VmmError> {
    let backend = Arc::new(Backend {
        state,
        events,
        bus: bus.clone(),
        display,
        confined: cfg.sandbox.is_some(),
    });
    let mut server = MonitorServer::new(backend, bus).map_err(monitor_err)?;
    server.on_thread_start(crate::sandbox::enter_monitor);
    for m in &cfg.monitors {
        match &m.backend {
            ChardevBackend::Socket { path, wait, .. } => {
                if *wait {
                    server
                        .listen_unix_and_wait(path, &m.id)
                        .map_err(monitor_err)?;
                } else {
                    server.listen_unix(path, &m.id).map_err(monitor_err)?;
                }
            }
            ChardevBackend::Stdio => server.serve_stdio(&m.id).map_err(monitor_err)?,
            ChardevBackend::Fd(fd) => {
                let listener =
                    crate::chardev::adopt_listener(*fd).ok_or(VmmError::MonitorFd(*fd))?;
                server
                    .serve_listener(listener, &m.id)
                    .map_err(monitor_err)?;
            }
            other => return Err(VmmError::MonitorBackend(format!("{other:?}"))),
        }
    }
    Ok(server)
}
