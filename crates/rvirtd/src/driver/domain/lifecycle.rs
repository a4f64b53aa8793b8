//! Starting and stopping domains: one rvirt-vmm process per running
//! domain, driven over QMP, and a follower thread per process that turns
//! its QMP events (and its exit) into libvirt states and events.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustix::process::Signal;
use rvirt_domain::model::LifecycleAction;
use rvirt_domain::Domain;
use rvirt_qmp::{ReceivedEvent, ShutdownCause};
use rvirt_remote::event::{
    paused_reason, resumed_detail, running_reason, shutdown_detail, shutoff_reason, started_detail,
    suspended_detail, DomainState, LifecycleEvent,
};
use rvirt_remote::{NonnullDomain, RemoteError};

use super::registry::Running;
use super::vmm::{self, QMP_TIMEOUT};
use super::DomainDriver;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DomainDriver {
    /// DOMAIN_CREATE(_WITH_FLAGS): starts a defined domain.
    pub fn start(self: &Arc<Self>, dom: &NonnullDomain, paused: bool) -> Result<(), RemoteError> {
        let (job, name) = self.job_of(dom)?;
        let _job = lock(&job);
        let def = {
            let reg = self.reg();
            let e = reg.by_name(&name)?;
            if e.is_active() {
                return Err(RemoteError::operation_invalid("domain is already running"));
            }
            e.config
                .as_ref()
                .ok_or_else(|| {
                    RemoteError::operation_invalid(
                        "cannot start a transient domain that is not running",
                    )
                })?
                .domain()?
        };
        self.launch(&name, def, paused)
    }

    /// Runs the VMM for `name` with definition `def`. The caller holds
    /// the domain's job lock and has checked that it is not running.
    pub fn launch(
        self: &Arc<Self>,
        name: &str,
        def: Arc<Domain>,
        paused: bool,
    ) -> Result<(), RemoteError> {
        let rundir = self.tree.runtime_dir(name);
        std::fs::create_dir_all(&rundir).map_err(|e| {
            RemoteError::operation_failed(&format!("cannot create {}: {e}", rundir.display()))
        })?;
        let paths = self.tree.vmm_paths(name);
        // In a directory of its own, which a jailed VMM may write.
        let vnc_socket = rundir.join("vnc").join("vnc.sock");
        let (def, vnc) = match self.vnc_ports.assign(&def, &vnc_socket) {
            Ok((d, lease)) => (Arc::new(d), lease),
            Err(e) => {
                self.start_failed(name);
                let _ = std::fs::remove_dir_all(&rundir);
                return Err(e);
            }
        };
        let options = vmm::Options {
            vmm: &self.vmm,
            confine: self.confine.as_ref(),
            sandbox: self.sandbox,
            name,
            networks: &*self.networks,
        };
        let started = match self
            .resolve_volumes(&def)
            .and_then(|for_vmm| vmm::start(&options, &for_vmm, &paths))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(domain = name, error = %e, "domain did not start");
                self.start_failed(name);
                let _ = std::fs::remove_dir_all(&rundir);
                return Err(e);
            }
        };
        let (child, qmp, held) = (started.child, started.qmp, started.held);
        let pid = child.pid();
        let events = qmp.take_events();
        // As libvirt, before the vCPUs run: a failure is logged, not fatal
        // (the guest runs; dommemstat then shows the first numbers only).
        if let Some(secs) = super::memstats::period(&def) {
            if let Err(e) = super::memstats::set_period(&qmp, secs) {
                tracing::warn!(domain = name, error = %crate::error_chain(&e), "cannot set the balloon's statistics period");
            }
        }
        let resumed = super::graphics::set_passwords(&def, &qmp).and_then(|()| match paused {
            true => Ok(()),
            false => qmp.execute("cont", None).map(drop).map_err(|e| {
                RemoteError::operation_failed(&format!(
                    "cannot resume the new VM: {}",
                    crate::error_chain(&e)
                ))
            }),
        });
        if let Err(e) = resumed {
            child.signal(Signal::KILL);
            child.wait(Some(Duration::from_secs(10)));
            super::passt::stop_all(&started.passt);
            held.release();
            self.start_failed(name);
            let _ = std::fs::remove_dir_all(&rundir);
            return Err(e);
        }
        let mut live = rvirt_domain::argv::support::live_view(&def);
        super::ptys::annotate(&mut live, &qmp);
        super::nics::annotate(&mut live, &started.taps);
        if let Some(label) = held.label {
            super::confine::annotate(&mut live, label);
        }
        let run = Arc::new(
            Running::new(self.alloc_id(), child, Arc::new(live), qmp, held)
                .with_passt(started.passt)
                .with_vnc(vnc),
        );
        let (state, reason) = if paused {
            (DomainState::Paused, paused_reason::USER)
        } else {
            (DomainState::Running, running_reason::BOOTED)
        };
        if let Some(pty) = super::serial_log::serial0_pty(&run.live()) {
            super::serial_log::start(&self.serial_readers, name, &pty, &paths.log_file);
        }
        let handle = self.attach(name, &run, state, reason);
        tracing::info!(domain = name, pid, id = run.id, "domain started");
        if let Some(events) = events {
            self.follow(name.to_string(), run, events);
        }
        if let Some(h) = handle {
            self.events
                .lifecycle(&h, LifecycleEvent::Started as i32, started_detail::BOOTED);
            if paused {
                self.events.lifecycle(
                    &h,
                    LifecycleEvent::Suspended as i32,
                    suspended_detail::PAUSED,
                );
            }
        }
        Ok(())
    }

    /// Makes `run` the process of `name` and writes its runtime record.
    pub fn attach(
        &self,
        name: &str,
        run: &Arc<Running>,
        state: DomainState,
        reason: i32,
    ) -> Option<NonnullDomain> {
        let (handle, record) = {
            let mut reg = self.reg();
            let e = reg.domains.get_mut(name)?;
            e.run = Some(run.clone());
            e.state = state;
            e.reason = reason;
            (e.handle(), self.record_of(e, run))
        };
        if let Err(err) = record.save(&self.tree.state_file(name)) {
            tracing::warn!(domain = name, error = %err, "cannot save runtime state");
        }
        Some(handle)
    }

    fn start_failed(&self, name: &str) {
        let mut reg = self.reg();
        let forget = match reg.domains.get_mut(name) {
            Some(e) => {
                e.state = DomainState::Shutoff;
                e.reason = shutoff_reason::FAILED;
                !e.is_persistent()
            }
            None => false,
        };
        if forget {
            reg.domains.remove(name);
        }
    }

    /// The running process of the domain a call names, or libvirt's
    /// "domain is not running".
    pub fn running(&self, dom: &NonnullDomain) -> Result<(String, Arc<Running>), RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        let run = e
            .run
            .clone()
            .ok_or_else(|| RemoteError::operation_invalid("domain is not running"))?;
        Ok((e.name.clone(), run))
    }

    /// DOMAIN_DESTROY: SIGTERM, then SIGKILL after the grace period;
    /// returns once the domain is shut off.
    pub fn destroy(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        self.destroy_with(dom, false)
    }

    /// DOMAIN_DESTROY_FLAGS: `graceful` (VIR_DOMAIN_DESTROY_GRACEFUL)
    /// sends SIGTERM only and fails, as libvirt does, when the process
    /// outlives the grace period.
    pub fn destroy_with(&self, dom: &NonnullDomain, graceful: bool) -> Result<(), RemoteError> {
        let (job, _) = self.job_of(dom)?;
        let _job = lock(&job);
        let (name, run) = self.running(dom)?;
        run.set_stop_reason(shutoff_reason::DESTROYED);
        if graceful {
            run.child.signal(Signal::TERM);
            if !run.child.wait(Some(self.destroy_grace)) {
                return Err(RemoteError::new(
                    rvirt_remote::error::code::SYSTEM_ERROR,
                    rvirt_remote::error::from::QEMU,
                    Some(&format!(
                        "Failed to terminate process {} with SIGTERM: Device or resource busy",
                        run.pid()
                    )),
                ));
            }
        }
        // The process first, then the follower's bookkeeping: destroy
        // returns once the domain is shut off.
        let gone = run.child.stop(self.destroy_grace);
        if !gone || !run.wait_exit(Duration::from_secs(10)) {
            tracing::warn!(domain = %name, pid = run.pid(), "VMM did not go away");
            return Err(RemoteError::operation_failed(&format!(
                "failed to kill process {}",
                run.pid()
            )));
        }
        Ok(())
    }

    /// Destroys the domains a closing connection started with
    /// VIR_DOMAIN_START_AUTODESTROY, each only if it still runs the run
    /// that connection started (the same id), as libvirt's autodestroy.
    pub fn autodestroy(&self, doms: Vec<NonnullDomain>) {
        for dom in doms {
            let same_run = self
                .reg()
                .resolve(&dom)
                .is_ok_and(|e| e.is_active() && e.id() == dom.id);
            if !same_run {
                continue;
            }
            tracing::info!(domain = %dom.name, "autodestroy: its connection closed");
            if let Err(e) = self.destroy(&dom) {
                tracing::warn!(domain = %dom.name, error = %e, "autodestroy failed");
            }
        }
    }

    /// DOMAIN_SHUTDOWN: presses the ACPI power button; the domain shuts
    /// off when the guest powers off.
    pub fn shutdown(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        let (_, run) = self.running(dom)?;
        qmp(&run, "system_powerdown")
    }

    /// DOMAIN_REBOOT, as libvirt's QEMU driver does it without a guest
    /// agent: the ACPI power button, and when the guest has powered off,
    /// a reset and `cont` instead of the end of the process ("fake
    /// reboot"). A guest that ignores the button does not reboot.
    pub fn reboot(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        let (_, run) = self.running(dom)?;
        run.fake_reboot.store(true, Ordering::SeqCst);
        qmp(&run, "system_powerdown").inspect_err(|_| {
            run.fake_reboot.store(false, Ordering::SeqCst);
        })
    }

    /// DOMAIN_RESET (`virsh reset`): resets the machine at once.
    pub fn reset(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        let (_, run) = self.running(dom)?;
        qmp(&run, "system_reset")
    }

    /// DOMAIN_INJECT_NMI: QMP `inject-nmi` (an NMI to every vCPU), in
    /// the domain's job as libvirt's qemuDomainInjectNMI.
    pub fn inject_nmi(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        let (job, _) = self.job_of(dom)?;
        let _job = lock(&job);
        let (_, run) = self.running(dom)?;
        qmp(&run, "inject-nmi")
    }

    /// DOMAIN_SUSPEND: QMP `stop`; the state changes when the follower
    /// sees the VMM's STOP event, in order with the events before it.
    pub fn suspend(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        self.pause_or_resume(dom, "stop", DomainState::Paused)
    }

    /// DOMAIN_RESUME: QMP `cont`, then the RESUME event.
    pub fn resume(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        self.pause_or_resume(dom, "cont", DomainState::Running)
    }

    fn pause_or_resume(
        &self,
        dom: &NonnullDomain,
        command: &str,
        target: DomainState,
    ) -> Result<(), RemoteError> {
        let (job, _) = self.job_of(dom)?;
        let _job = lock(&job);
        let (name, run) = self.running(dom)?;
        if self.reg().by_name(&name)?.state == target {
            return Ok(());
        }
        qmp(&run, command)?;
        if !self.wait_state(&name, &run, target, QMP_TIMEOUT) {
            return Err(RemoteError::operation_failed(&format!(
                "the VM did not confirm '{command}'"
            )));
        }
        Ok(())
    }

    /// Follows `run` on its own thread until its process is gone.
    pub fn follow(
        self: &Arc<Self>,
        name: String,
        run: Arc<Running>,
        events: Receiver<ReceivedEvent>,
    ) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("follow-{name}"))
            .spawn(move || me.follow_loop(&name, &run, events));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a follower thread");
        }
    }

    fn follow_loop(&self, name: &str, run: &Arc<Running>, events: Receiver<ReceivedEvent>) {
        // Between a fake reboot's power-off and its `cont`, the VMM's
        // STOP and RESUME are part of the reboot, not a pause.
        let mut rebooting = false;
        for ev in events {
            tracing::debug!(domain = name, event = %ev.event, "QMP event");
            // Once the VMM is on its way out (guest power-off, destroy),
            // its STOP is part of exiting, not a pause.
            let exiting = run.stop_reason().is_some();
            match ev.event.as_str() {
                "STOP" | "RESUME" if exiting => {}
                "STOP" if rebooting => {}
                "RESUME" if rebooting => {
                    rebooting = false;
                    self.set_state(name, run, DomainState::Running, running_reason::BOOTED);
                }
                "STOP" => {
                    self.transition(
                        name,
                        run,
                        DomainState::Paused,
                        paused_reason::USER,
                        Some((LifecycleEvent::Suspended as i32, suspended_detail::PAUSED)),
                    );
                }
                "RESUME" => {
                    self.transition(
                        name,
                        run,
                        DomainState::Running,
                        running_reason::UNPAUSED,
                        Some((LifecycleEvent::Resumed as i32, resumed_detail::UNPAUSED)),
                    );
                }
                "SHUTDOWN" => rebooting |= self.on_shutdown(name, run, ev.data.as_ref()),
                "RESET" => {
                    let handle = self.reg().domains.get(name).map(|e| e.handle());
                    if let Some(h) = handle {
                        self.events.reboot(&h);
                    }
                }
                "GUEST_PANICKED" => self.on_crash(run),
                "WATCHDOG" => self.on_watchdog(name, run, ev.data.as_ref()),
                "BLOCK_JOB_READY" | "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED" => {
                    self.on_block_job_event(name, run, &ev)
                }
                "DEVICE_TRAY_MOVED" => self.on_tray_moved(name, run, ev.data.as_ref()),
                "DEVICE_DELETED" => {
                    // QEMU reports the virtio back-end (no `device`) too.
                    let alias = ev.data.as_ref().and_then(|d| d["device"].as_str());
                    if let Some(alias) = alias {
                        self.on_device_deleted(name, run, alias);
                    }
                }
                "VNC_CONNECTED" | "VNC_INITIALIZED" | "VNC_DISCONNECTED" => {
                    let handle = self.reg().domains.get(name).map(|e| e.handle());
                    if let (Some(h), Some(data)) = (handle, ev.data.as_ref()) {
                        super::graphics::event(&self.events, &h, &ev.event, data);
                    }
                }
                "BALLOON_CHANGE" => {
                    let actual = ev.data.as_ref().and_then(|d| d["actual"].as_u64());
                    if let Some(bytes) = actual {
                        run.balloon_kib.store(bytes / 1024, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        // The monitor closed: the VMM is exiting.
        if !run.child.wait(Some(Duration::from_secs(30))) {
            run.child.signal(Signal::KILL);
            run.child.wait(Some(Duration::from_secs(10)));
        }
        let reason = run.stop_reason().unwrap_or(shutoff_reason::CRASHED);
        self.finish_stop(name, run, reason);
    }

    /// The guest powered off (or reset with `-no-reboot`): the SHUTDOWN
    /// event, then `on_poweroff`.
    /// Returns true when it turned the power-off into a (fake) reboot.
    fn on_shutdown(
        &self,
        name: &str,
        run: &Arc<Running>,
        data: Option<&serde_json::Value>,
    ) -> bool {
        let ShutdownData {
            guest,
            reason: cause,
        } = data
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or(ShutdownData {
                guest: false,
                reason: ShutdownCause::None,
            });
        if matches!(
            cause,
            ShutdownCause::HostSignal | ShutdownCause::HostQmpQuit
        ) {
            // Our own SIGTERM or quit: destroy is already in charge.
            return false;
        }
        if cause == ShutdownCause::GuestShutdown && run.fake_reboot.swap(false, Ordering::SeqCst) {
            tracing::info!(
                domain = name,
                "guest powered off for a reboot; restarting it"
            );
            let _ = run.qmp.execute("system_reset", None);
            let _ = run.qmp.execute("cont", None);
            return true;
        }
        // With -no-reboot (on_reboot=destroy) a reset, the guest's or
        // `virsh reboot`'s, arrives as a shutdown with a reset cause.
        let reset = matches!(
            cause,
            ShutdownCause::GuestReset | ShutdownCause::HostQmpSystemReset
        );
        let handle = self.reg().domains.get(name).map(|e| e.handle());
        if let Some(h) = &handle {
            let detail = if guest {
                shutdown_detail::GUEST
            } else {
                shutdown_detail::HOST
            };
            self.events
                .lifecycle(h, LifecycleEvent::Shutdown as i32, detail);
        }
        if matches!(cause, ShutdownCause::GuestPanic | ShutdownCause::HostError) {
            run.set_stop_reason(shutoff_reason::CRASHED);
        }
        let action = if reset {
            run.live().on_reboot.unwrap_or(LifecycleAction::Destroy)
        } else {
            run.live().on_poweroff.unwrap_or(LifecycleAction::Destroy)
        };
        match action {
            LifecycleAction::Restart if !reset => {
                let _ = run.qmp.execute("system_reset", None);
                let _ = run.qmp.execute("cont", None);
                return true;
            }
            _ => {
                if run.stop_reason().is_none() {
                    run.set_stop_reason(shutoff_reason::SHUTDOWN);
                }
                run.child.signal(Signal::TERM);
            }
        }
        false
    }

    /// The VMM's watchdog ran out and took `data.action`: libvirt's
    /// watchdog event, and for `pause` the domain paused with reason
    /// watchdog (the STOP that follows then changes nothing), as
    /// qemuProcessHandleWatchdog. The other actions' effects arrive as
    /// their own events (RESET, POWERDOWN, SHUTDOWN, or the VMM's exit).
    fn on_watchdog(&self, name: &str, run: &Arc<Running>, data: Option<&serde_json::Value>) {
        use rvirt_remote::event::watchdog_action;
        let qemu = data.and_then(|d| d["action"].as_str()).unwrap_or_default();
        let Some(action) = watchdog_action::from_qemu(qemu) else {
            tracing::warn!(
                domain = name,
                action = qemu,
                "WATCHDOG event with an unknown action"
            );
            return;
        };
        tracing::info!(domain = name, action = qemu, "watchdog expired");
        let handle = self.reg().domains.get(name).map(|e| e.handle());
        if let Some(h) = &handle {
            self.events.watchdog(h, action);
        }
        if action == watchdog_action::PAUSE && run.stop_reason().is_none() {
            self.transition(
                name,
                run,
                DomainState::Paused,
                paused_reason::WATCHDOG,
                Some((LifecycleEvent::Suspended as i32, suspended_detail::WATCHDOG)),
            );
        }
    }

    fn on_crash(&self, run: &Arc<Running>) {
        match run.live().on_crash.unwrap_or(LifecycleAction::Destroy) {
            LifecycleAction::Restart => {
                let _ = run.qmp.execute("system_reset", None);
                let _ = run.qmp.execute("cont", None);
            }
            LifecycleAction::Preserve => {}
            _ => {
                run.set_stop_reason(shutoff_reason::CRASHED);
                run.child.signal(Signal::TERM);
            }
        }
    }
}

fn qmp(run: &Running, command: &str) -> Result<(), RemoteError> {
    run.qmp.execute(command, None).map(|_| ()).map_err(|e| {
        RemoteError::operation_failed(&format!("{command}: {}", crate::error_chain(&e)))
    })
}

/// The SHUTDOWN event's data.
#[derive(serde::Deserialize)]
struct ShutdownData {
    guest: bool,
    reason: ShutdownCause,
}
