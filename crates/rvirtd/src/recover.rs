//! Daemon start: definitions from disk, VMs that survived a previous
//! daemon (re-adopted over their monitor, or marked crashed when they
//! died meanwhile), then autostart.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};

use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;
use rvirt_remote::event::{paused_reason, running_reason, shutoff_reason, DomainState};

use crate::daemon::Daemon;
use crate::process;
use crate::registry::{wire_uuid, Entry, Running, StoredDef};
use crate::runtime::{self, RuntimeRecord};
use crate::store;

impl Daemon {
    /// Loads everything; call once before serving.
    pub fn load(self: &Arc<Self>) {
        for l in store::load_all(&self.tree) {
            let Some(u) = l.def.uuid else { continue };
            let name = l.def.name.clone();
            let mut e = Entry::new(name.clone(), wire_uuid(&u), Some(StoredDef::new(&l.def)));
            e.autostart = l.autostart;
            self.reg().domains.insert(name, e);
        }
        for path in runtime::list(&self.tree.state_dir) {
            match RuntimeRecord::load(&path) {
                Ok(rec) => self.adopt(rec),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable runtime state skipped")
                }
            }
        }
        let count = self.reg().domains.len();
        tracing::info!(domains = count, "definitions loaded");
    }

    /// Takes over the VM of a runtime record, or records its death.
    fn adopt(self: &Arc<Self>, rec: RuntimeRecord) {
        let live = match Domain::from_xml(&rec.live_xml) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::error!(domain = %rec.name, error = %e, "live definition unreadable; VM left alone");
                return;
            }
        };
        let Some(uuid) = live.uuid.map(|u| wire_uuid(&u)) else {
            return;
        };
        {
            let mut reg = self.reg();
            reg.domains
                .entry(rec.name.clone())
                .or_insert_with(|| Entry::new(rec.name.clone(), uuid, None));
        }
        // Ids of VMs that died while rvirtd was away are not reused either.
        self.seen_id(rec.id);
        let marker = rec.monitor.to_string_lossy().into_owned();
        let qmp = if process::is_our_vmm(rec.pid, &marker) {
            match QmpClient::connect(&rec.monitor, process::QMP_TIMEOUT) {
                Ok(q) => Some(q),
                Err(e) => {
                    tracing::error!(domain = %rec.name, error = %e, "cannot reconnect to the monitor");
                    None
                }
            }
        } else {
            None
        };
        let Some(qmp) = qmp else {
            tracing::warn!(domain = %rec.name, pid = rec.pid, "VM died while rvirtd was away: shut off (crashed)");
            self.mark_crashed(&rec.name);
            return;
        };
        let paused = qmp
            .execute("query-status", None)
            .ok()
            .and_then(|v| v.get("running").and_then(|r| r.as_bool()))
            .map(|running| !running)
            .unwrap_or(rec.state == DomainState::Paused as i32);
        let events = qmp.take_events();
        let run = Arc::new(Running {
            id: rec.id,
            pid: rec.pid,
            live,
            qmp,
            own_child: false,
            stop_reason: Mutex::new(None),
            fake_reboot: AtomicBool::new(false),
            exited: (Mutex::new(false), Condvar::new()),
        });
        self.seen_id(rec.id);
        let (state, reason) = match (paused, rec.state == DomainState::Paused as i32) {
            (true, true) | (false, false) => (
                DomainState::from_i32(rec.state).unwrap_or(DomainState::Running),
                rec.reason,
            ),
            (true, false) => (DomainState::Paused, paused_reason::UNKNOWN),
            (false, true) => (DomainState::Running, running_reason::UNPAUSED),
        };
        if let Some(pty) = crate::serial_log::serial0_pty(&run.live) {
            let log = self.tree.log_file(&rec.name);
            crate::serial_log::start(&self.taps, &rec.name, &pty, &log);
        }
        self.attach(&rec.name, &run, state, reason);
        tracing::info!(domain = %rec.name, pid = rec.pid, id = rec.id, "re-adopted running VM");
        if let Some(events) = events {
            self.follow(rec.name.clone(), run, events);
        }
    }

    fn mark_crashed(&self, name: &str) {
        {
            let mut reg = self.reg();
            let forget = match reg.domains.get_mut(name) {
                Some(e) => {
                    e.state = DomainState::Shutoff;
                    e.reason = shutoff_reason::CRASHED;
                    !e.is_persistent()
                }
                None => false,
            };
            if forget {
                reg.domains.remove(name);
            }
        }
        let _ = std::fs::remove_file(self.tree.state_file(name));
        let _ = std::fs::remove_dir_all(self.tree.runtime_dir(name));
    }

    /// Starts the autostart domains that are not running, in the
    /// background so the socket opens at once.
    pub fn autostart(self: &Arc<Self>) {
        let handles: Vec<_> = self
            .reg()
            .domains
            .values()
            .filter(|e| e.autostart && !e.is_active())
            .map(Entry::handle)
            .collect();
        for h in handles {
            let me = self.clone();
            let _ = std::thread::Builder::new()
                .name(format!("autostart-{}", h.name))
                .spawn(move || match me.start(&h, false) {
                    Ok(()) => tracing::info!(domain = %h.name, "autostarted"),
                    Err(e) => tracing::error!(domain = %h.name, error = %e, "autostart failed"),
                });
        }
    }
}
