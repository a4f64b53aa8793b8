//! Daemon start: definitions from disk, VMs that survived a previous
//! daemon (re-adopted over their monitor, or marked crashed when they
//! died meanwhile), then autostart.

use std::sync::Arc;

use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;
use rvirt_remote::event::{paused_reason, running_reason, shutoff_reason, DomainState};

use super::passt::PasstChild;
use super::registry::{wire_uuid, Entry, Running, StoredDef};
use super::runtime::{self, RuntimeRecord};
use super::vmm::QMP_TIMEOUT;
use super::DomainDriver;
use crate::supervise::Child;

impl DomainDriver {
    /// Loads everything; call once before serving.
    pub fn load(self: &Arc<Self>) {
        super::confine::sweep_cgroups(&self.tree.cgroup_dir);
        for l in self.store.load_all() {
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
        // The VMM's command line names its UUID (`-uuid`), which no other
        // domain's has: a recycled pid is never taken for it.
        let child = Child::adopt(&rec.child_record());
        let passt: Vec<PasstChild> = rec.passt.iter().filter_map(PasstChild::adopt).collect();
        let qmp = match &child {
            Some(_) => match QmpClient::connect(&rec.monitor, QMP_TIMEOUT) {
                Ok(q) => Some(q),
                Err(e) => {
                    tracing::error!(domain = %rec.name, error = %crate::error_chain(&e), "cannot reconnect to the monitor");
                    None
                }
            },
            None => None,
        };
        let (Some(child), Some(qmp)) = (child, qmp) else {
            tracing::warn!(domain = %rec.name, pid = rec.pid, "VM died while rvirtd was away: shut off (crashed)");
            // A passt left behind by a VMM that died goes too.
            super::passt::stop_all(&passt);
            rec.held.release();
            self.mark_crashed(&rec.name);
            return;
        };
        let paused = qmp
            .query_status()
            .ok()
            .map(|s| !s.running)
            .unwrap_or(rec.state == DomainState::Paused as i32);
        let events = qmp.take_events();
        // `held` lists every file the VM's user has; those given after
        // the start go back at their own unplug, so they are told apart
        // again (the record keeps both for a release after a crash).
        let mut held = rec.held.clone();
        held.labelled.retain(|p| !rec.labelled_later.contains(p));
        let run = Arc::new(
            Running::new(rec.id, Arc::new(child), live.clone(), qmp, held)
                .with_passt(passt)
                .with_vnc(self.vnc_ports.adopt(&live)),
        );
        run.label_later(rec.labelled_later.clone());
        run.hotplug.restore(rec.hotplug.clone());
        self.seen_id(rec.id);
        let (state, reason) = match (paused, rec.state == DomainState::Paused as i32) {
            (true, true) | (false, false) => (
                DomainState::from_i32(rec.state).unwrap_or(DomainState::Running),
                rec.reason,
            ),
            (true, false) => (DomainState::Paused, paused_reason::UNKNOWN),
            (false, true) => (DomainState::Running, running_reason::UNPAUSED),
        };
        if let Some(pty) = super::serial_log::serial0_pty(&run.live()) {
            let log = self.tree.log_file(&rec.name);
            super::serial_log::start(&self.serial_readers, &rec.name, &pty, &log);
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
