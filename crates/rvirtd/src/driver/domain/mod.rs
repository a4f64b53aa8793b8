//! The domain driver: the domain table, definitions on disk, one
//! rvirt-vmm process per running domain followed over QMP, consoles and
//! the serial-log readers, and domain events.
//!
//! | module | job |
//! | --- | --- |
//! | [`calls`] | the `DomainCalls` group of the procedure table |
//! | [`registry`] | the domain table |
//! | [`definitions`] | define, undefine, create, autostart |
//! | [`edit`] | attach, detach, update a device; set memory and vCPUs |
//! | [`hotplug`] | `--live` attach and detach: PCI Express hot-plug of virtio disks and NICs |
//! | [`lifecycle`] | start, destroy, shutdown, suspend, resume, reboot, reset; the per-VM follower |
//! | [`graphics`] | VNC ports from 5900, the listen address in the live XML, the password; the graphical console's fd, screenshots and events |
//! | [`vmm`] | starting a VMM: argv with its fd plan, monitor, taps |
//! | [`nics`] | the NICs' host taps (bridge port, MAC, up) through rvirt-hostnet |
//! | [`passt`] | passt for every `<interface type='user'>`, supervised and jailed beside the VMM |
//! | [`recover`] | start-up: load, re-adopt running VMs, autostart |
//! | [`runtime`] | the per-VM runtime record |
//! | [`query`], [`stats`] | lists, info, state, XML, vCPUs; domain stats |
//! | [`console`], [`serial_log`], [`ptys`] | console streams, serial output readers, ptys in the live XML |
//! | [`blockjob`] | block commit, its job's info, pivot and abort, its events |
//! | [`snapshot`] | external disk-only snapshots and their metadata |
//! | [`volumes`] | `<disk type='volume'>` resolved through the storage driver at start |

pub mod blockjob;
pub mod blockstats;
pub mod calls;
pub mod confine;
pub mod console;
pub mod dac;
pub mod definitions;
pub mod edit;
pub mod graphics;
pub mod hotplug;
pub mod lifecycle;
pub mod media;
pub mod memstats;
pub mod nics;
pub mod passt;
pub mod ptys;
pub mod query;
pub mod recover;
pub mod registry;
pub mod runtime;
pub mod serial_log;
pub mod snapshot;
pub mod stats;
pub mod vmm;
pub mod volumes;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rvirt_domain::Domain;
use rvirt_remote::event::{self, shutoff_reason, DomainState, LifecycleEvent};
use rvirt_remote::{NonnullDomain, RemoteError};

use crate::paths::Tree;
use crate::server::events::EventHub;
use crate::store::Store;
use crate::Config;
use registry::{Registry, Running};
use runtime::RuntimeRecord;

/// The domain driver. Lock order: the job lock of a domain (held across
/// a whole operation), then the registry (short lookups and updates), then
/// the console or serial-reader tables; never the other way round.
pub struct DomainDriver {
    pub tree: Tree,
    /// Persistent definitions and autostart links.
    pub store: Store<Domain>,
    /// The rvirt-vmm executable.
    pub vmm: PathBuf,
    /// How long destroy waits after SIGTERM before SIGKILL.
    pub destroy_grace: Duration,
    /// How VMMs are confined (None: as rvirtd's own user).
    pub confine: Option<confine::Confinement>,
    /// `-sandbox on,…` for every VMM.
    pub sandbox: bool,
    reg: Mutex<Registry>,
    /// Signalled on every state change, for operations that wait for the
    /// follower to see the VMM's event.
    state_cv: Condvar,
    pub events: Arc<EventHub>,
    /// The open console of each domain (one at a time, as libvirt).
    pub consoles: console::ConsoleTable,
    /// The serial0 readers of running VMs (output to the domain log).
    pub serial_readers: Arc<serial_log::ReaderTable>,
    next_id: AtomicI32,
    /// The networks `<interface type='network'>` NICs join.
    pub networks: Arc<crate::driver::network::NetworkDriver>,
    /// Itself, for the threads an operation starts (followers, autostart).
    me: Weak<DomainDriver>,
    /// The storage driver, which resolves `<disk type='volume'>` at start.
    pub storage: Arc<crate::driver::storage::StorageDriver>,
    /// The VNC ports running domains hold.
    pub vnc_ports: Arc<graphics::VncPorts>,
}

impl DomainDriver {
    pub fn new(
        cfg: &Config,
        events: Arc<EventHub>,
        storage: Arc<crate::driver::storage::StorageDriver>,
        networks: Arc<crate::driver::network::NetworkDriver>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| DomainDriver {
            me: me.clone(),
            storage,
            networks,
            store: Store::new(&cfg.tree.config_dir, &cfg.tree.autostart_dir),
            tree: cfg.tree.clone(),
            vmm: cfg.vmm.clone(),
            destroy_grace: cfg.destroy_grace,
            confine: cfg.confine.clone(),
            sandbox: cfg.sandbox,
            reg: Mutex::new(Registry::default()),
            state_cv: Condvar::new(),
            events,
            consoles: Default::default(),
            serial_readers: Default::default(),
            next_id: AtomicI32::new(1),
            vnc_ports: Default::default(),
        })
    }

    /// This driver as an `Arc`, for a thread that outlives the call.
    pub fn arc(&self) -> Arc<Self> {
        // The driver lives in an Arc from `new` until the daemon exits.
        self.me.upgrade().expect("the domain driver is alive")
    }

    pub fn reg(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running domain whose disks use the volume at `path` (by path,
    /// or as `<source pool= volume=/>`), if any.
    pub fn volume_user(&self, path: &std::path::Path, pool: &str, vol: &str) -> Option<String> {
        let reg = self.reg();
        reg.domains.values().find_map(|e| {
            let run = e.run.as_ref()?;
            run.live()
                .devices
                .disks
                .iter()
                .any(|d| {
                    let by_volume = d.disk_type == "volume"
                        && d.source.as_ref().is_some_and(|s| {
                            s.attr("pool") == Some(pool) && s.attr("volume") == Some(vol)
                        });
                    by_volume
                        || (d.disk_type != "volume"
                            && d.source_path()
                                .is_some_and(|p| std::path::Path::new(p) == path))
                })
                .then(|| e.name.clone())
        })
    }

    /// The next domain id (ids only grow, as libvirt's do).
    pub fn alloc_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes sure future ids are above `id` (after adopting a VM).
    pub fn seen_id(&self, id: i32) {
        self.next_id
            .fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }

    /// The job lock and name of the domain a call names.
    pub fn job_of(&self, dom: &NonnullDomain) -> Result<(Arc<Mutex<()>>, String), RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        Ok((e.job.clone(), e.name.clone()))
    }

    /// Moves the running domain `name` (if `run` is still its process) to
    /// `state`/`reason` and emits `event` (event, detail) if the state
    /// actually changed; returns whether it did.
    pub fn transition(
        &self,
        name: &str,
        run: &Arc<Running>,
        state: DomainState,
        reason: i32,
        event: Option<(i32, i32)>,
    ) -> bool {
        self.apply(name, run, state, reason, event, false)
    }

    /// Sets `state`/`reason` even when the state stays the same (a
    /// rebooted domain is running (booted) again); no event.
    pub fn set_state(&self, name: &str, run: &Arc<Running>, state: DomainState, reason: i32) {
        self.apply(name, run, state, reason, None, true);
    }

    fn apply(
        &self,
        name: &str,
        run: &Arc<Running>,
        state: DomainState,
        reason: i32,
        event: Option<(i32, i32)>,
        always: bool,
    ) -> bool {
        let handle = {
            let mut reg = self.reg();
            let Some(e) = reg.domains.get_mut(name) else {
                return false;
            };
            if !e.run.as_ref().is_some_and(|r| Arc::ptr_eq(r, run)) || (e.state == state && !always)
            {
                return false;
            }
            e.state = state;
            e.reason = reason;
            // Saved before anyone can see the new state: an operation that
            // returned must survive a `kill -9` right after it.
            let record = self.record_of(e, run);
            if let Err(err) = record.save(&self.tree.state_file(name)) {
                tracing::warn!(domain = name, error = %err, "cannot save runtime state");
            }
            e.handle()
        };
        self.state_cv.notify_all();
        if let Some((ev, detail)) = event {
            self.events.lifecycle(&handle, ev, detail);
        }
        true
    }

    /// Waits until `run` (still the process of `name`) is in `state`;
    /// false on timeout or when the process went away.
    pub fn wait_state(
        &self,
        name: &str,
        run: &Arc<Running>,
        state: DomainState,
        timeout: Duration,
    ) -> bool {
        let reached = |reg: &Registry| {
            reg.domains.get(name).is_some_and(|e| {
                e.run.as_ref().is_some_and(|r| Arc::ptr_eq(r, run)) && e.state == state
            })
        };
        let gone = |reg: &Registry| {
            !reg.domains
                .get(name)
                .is_some_and(|e| e.run.as_ref().is_some_and(|r| Arc::ptr_eq(r, run)))
        };
        let guard = self.reg();
        let (guard, _) = self
            .state_cv
            .wait_timeout_while(guard, timeout, |reg| !reached(reg) && !gone(reg))
            .unwrap_or_else(PoisonError::into_inner);
        reached(&guard)
    }

    /// The runtime record for running entry `e`.
    pub fn record_of(&self, e: &registry::Entry, run: &Running) -> RuntimeRecord {
        RuntimeRecord {
            name: e.name.clone(),
            uuid: e.uuid.to_string(),
            id: run.id,
            pid: run.child.pid(),
            monitor: self.tree.vmm_paths(&e.name).monitor_socket,
            state: e.state as i32,
            reason: e.reason,
            persistent: e.is_persistent(),
            live_xml: run.live().to_xml(),
            held: run.held_now(),
            passt: run.passt.iter().map(passt::PasstChild::record).collect(),
            labelled_later: run.labelled_later(),
            hotplug: run.hotplug.record(),
        }
    }

    /// Records that the process of `name` is gone: runtime state removed
    /// and the stop written to the log first, then shut off with `reason`
    /// (transient domains forgotten), the STOPPED event sent, waiters woken.
    /// In that order, so whoever sees the new state also sees the rest.
    pub fn finish_stop(&self, name: &str, run: &Arc<Running>, reason: i32) {
        let is_current = |reg: &Registry| {
            reg.domains
                .get(name)
                .is_some_and(|e| e.run.as_ref().is_some_and(|r| Arc::ptr_eq(r, run)))
        };
        // Gone with the VMM already (--one-off) or stopped here: no passt
        // outlives its domain.
        passt::stop_all(&run.passt);
        // Before the runtime record (which names the cgroup) goes.
        let cgroup_record = run.held.note_cgroup_removal(&self.tree.cgroup_dir);
        // While `run` is the domain's, nothing else starts it or touches its
        // runtime directory, so the cleanup can happen outside the lock.
        if is_current(&self.reg()) {
            // The files go back to their owners before anyone sees the
            // domain shut off.
            run.held_now().restore_labels();
            let _ = std::fs::remove_file(self.tree.state_file(name));
            let _ = std::fs::remove_dir_all(self.tree.runtime_dir(name));
            let console = self
                .consoles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            // The stream ends here whether or not the pty's reader has
            // seen the VMM go yet; whichever comes first sends the end.
            if let Some(c) = console {
                c.end_of_file();
            }
            log_line(
                &self.tree.log_file(name),
                &format!(
                    "shutting down, reason={}",
                    DomainState::Shutoff.reason_name(reason)
                ),
            );
        }
        let handle = {
            let mut reg = self.reg();
            let mut handle = None;
            let mut forget = false;
            if is_current(&reg) {
                if let Some(e) = reg.domains.get_mut(name) {
                    e.run = None;
                    e.state = DomainState::Shutoff;
                    e.reason = reason;
                    handle = Some(e.handle());
                    forget = !e.is_persistent();
                }
            }
            if forget {
                reg.domains.remove(name);
            }
            handle
        };
        self.state_cv.notify_all();
        if let Some(h) = handle {
            tracing::info!(domain = name, reason, "domain shut off");
            self.events
                .lifecycle(&h, LifecycleEvent::Stopped as i32, stopped_detail(reason));
        }
        run.mark_exited();
        // The VMM's teardown child may still hold the VM for a few ms;
        // nobody waits for it.
        if run.held.remove_cgroup() {
            if let Some(p) = cgroup_record {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Appends a stamped line to a domain log, as libvirt marks starts and
/// stops in it.
pub fn log_line(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = f {
        let _ = writeln!(f, "{}: {text}", crate::sys::timestamp());
    }
}

/// The STOPPED event detail for a shut-off reason.
pub fn stopped_detail(reason: i32) -> i32 {
    match reason {
        shutoff_reason::DESTROYED => event::stopped_detail::DESTROYED,
        shutoff_reason::CRASHED => event::stopped_detail::CRASHED,
        shutoff_reason::FAILED => event::stopped_detail::FAILED,
        _ => event::stopped_detail::SHUTDOWN,
    }
}
