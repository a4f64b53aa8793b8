//! The daemon's table of domains: each one's definitions, state and
//! running process. Guarded by one mutex held only for short lookups and
//! updates; long operations hold the domain's own job lock instead, so a
//! slow start never blocks other clients.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;
use rvirt_remote::event::DomainState;
use rvirt_remote::{NonnullDomain, RemoteError, Uuid};

use crate::supervise::Child;

/// A running VMM process and what rvirtd knows about it.
pub struct Running {
    /// The domain id, unique among running domains since daemon start.
    pub id: i32,
    /// The VMM process, started by this rvirtd or adopted after a restart.
    pub child: Arc<Child>,
    /// The live definition (`dumpxml` without `--inactive`): the one it was
    /// started with, then as snapshots and block jobs change its disks.
    live: std::sync::RwLock<Arc<Domain>>,
    pub qmp: QmpClient,
    /// The shut-off reason to record when the process exits, when rvirtd
    /// caused the exit (destroy, guest power-off); none means crashed.
    pub stop_reason: Mutex<Option<i32>>,
    /// A reboot pressed the power button: the guest's power-off is to be
    /// turned into a reset.
    pub fake_reboot: std::sync::atomic::AtomicBool,
    /// Set by the follower thread when the process is gone.
    pub exited: (Mutex<bool>, Condvar),
    /// Labels and cgroup of a confined VMM, released when it ends.
    pub held: super::confine::Held,
    /// Files given to the VM's user while it runs (snapshot overlays),
    /// given back with `held`'s.
    labelled_later: Mutex<Vec<std::path::PathBuf>>,
    /// Its block graph as rvirtd changed it, and its block jobs.
    pub blocks: super::blockjob::BlockState,
    /// The guest's memory as the balloon last reported it (KiB; 0 until a
    /// BALLOON_CHANGE event), as libvirt tracks it for dominfo.
    pub balloon_kib: std::sync::atomic::AtomicU64,
    /// The passt serving its user-mode interfaces, stopped with it.
    pub passt: Vec<super::passt::PasstChild>,
    /// Its removable drives' trays and media as rvirtd last saw them.
    pub media: super::media::MediaState,
    /// What was hot-plugged, and the guest's answers to detaches.
    pub hotplug: super::hotplug::HotplugState,
    /// Its VNC ports, given back when this record goes.
    pub vnc: super::graphics::PortLease,
}

impl Running {
    /// A new record of a running VMM (not yet exited, no stop requested).
    pub fn new(
        id: i32,
        child: Arc<Child>,
        live: Arc<Domain>,
        qmp: QmpClient,
        held: super::confine::Held,
    ) -> Self {
        Running {
            id,
            child,
            live: std::sync::RwLock::new(live),
            qmp,
            stop_reason: Mutex::new(None),
            fake_reboot: std::sync::atomic::AtomicBool::new(false),
            exited: (Mutex::new(false), Condvar::new()),
            held,
            labelled_later: Mutex::new(Vec::new()),
            blocks: Default::default(),
            balloon_kib: std::sync::atomic::AtomicU64::new(0),
            passt: Vec::new(),
            media: Default::default(),
            hotplug: Default::default(),
            vnc: Default::default(),
        }
    }

    /// With the passt processes serving it.
    pub fn with_passt(mut self, passt: Vec<super::passt::PasstChild>) -> Self {
        self.passt = passt;
        self
    }

    /// The live definition now.
    pub fn live(&self) -> Arc<Domain> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the live definition (the caller holds the domain's job
    /// lock and saves the runtime record after).
    pub fn set_live(&self, live: Domain) {
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(live);
    }

    /// Changes the live definition in place: `f` runs on a copy under the
    /// write lock, so two threads changing different parts (a request and
    /// the monitor's events) lose neither change.
    pub fn update_live(&self, f: impl FnOnce(&mut Domain)) {
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        let mut d = (**live).clone();
        f(&mut d);
        *live = Arc::new(d);
    }

    /// Records files given to the VM's user after its start.
    pub fn label_later(&self, paths: Vec<std::path::PathBuf>) {
        self.labelled_later
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(paths);
    }

    /// Gives `path` (given to the VM's user since its start) back to its
    /// owner, the VM having let go of it.
    pub fn unlabel(&self, path: &std::path::Path) {
        let Ok(path) = std::fs::canonicalize(path) else {
            return;
        };
        let mut l = self
            .labelled_later
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = l.iter().position(|p| *p == path) {
            l.remove(i);
            super::dac::restore(&path);
        }
    }

    /// The files given to the VM's user since it started.
    pub fn labelled_later(&self) -> Vec<std::path::PathBuf> {
        self.labelled_later
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the VM holds now: what it started with and what it was given
    /// since.
    pub fn held_now(&self) -> super::confine::Held {
        let mut h = self.held.clone();
        h.labelled.extend(
            self.labelled_later
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        h
    }

    /// Holds the VNC port lease for as long as the record lives.
    pub fn with_vnc(mut self, vnc: super::graphics::PortLease) -> Self {
        self.vnc = vnc;
        self
    }

    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// The guest's memory now (KiB): the balloon's last word, else the
    /// definition's target.
    pub fn memory_kib(&self) -> u64 {
        match self.balloon_kib.load(std::sync::atomic::Ordering::Relaxed) {
            0 => {
                let live = self.live();
                live.current_memory_kib.unwrap_or(live.memory_kib)
            }
            kib => kib,
        }
    }

    /// Waits until the follower saw the process exit, at most `timeout`.
    pub fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        let (lock, cv) = &self.exited;
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |done| !*done)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }

    pub fn mark_exited(&self) {
        let (lock, cv) = &self.exited;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
    }

    pub fn set_stop_reason(&self, reason: i32) {
        *self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    pub fn stop_reason(&self) -> Option<i32> {
        *self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One domain.
pub struct Entry {
    pub name: String,
    pub uuid: Uuid,
    /// The persistent definition; `None` for a transient domain.
    pub config: Option<StoredDef>,
    pub autostart: bool,
    pub state: DomainState,
    pub reason: i32,
    pub run: Option<Arc<Running>>,
    /// Serialises lifecycle operations on this domain.
    pub job: Arc<Mutex<()>>,
}

impl Entry {
    pub fn new(name: String, uuid: Uuid, config: Option<StoredDef>) -> Self {
        Entry {
            name,
            uuid,
            config,
            autostart: false,
            state: DomainState::Shutoff,
            reason: 0,
            run: None,
            job: Arc::new(Mutex::new(())),
        }
    }

    pub fn id(&self) -> i32 {
        self.run.as_ref().map_or(-1, |r| r.id)
    }

    pub fn is_active(&self) -> bool {
        self.run.is_some()
    }

    pub fn is_persistent(&self) -> bool {
        self.config.is_some()
    }

    /// How the protocol names it.
    pub fn handle(&self) -> NonnullDomain {
        NonnullDomain {
            name: self.name.clone(),
            uuid: self.uuid,
            id: self.id(),
        }
    }

    /// The definition that describes it now: the live one while running.
    pub fn current_def(&self) -> Option<Arc<Domain>> {
        match &self.run {
            Some(r) => Some(r.live()),
            None => self.config.as_ref().and_then(|c| c.domain().ok()),
        }
    }
}

/// A persistent definition as kept in memory: its inactive XML, parsed
/// again when a caller needs the model. A parsed `Domain` keeps every
/// element it does not model and costs 8-11 KiB; the text is a few times
/// smaller, and parsing it back takes tens of microseconds, which only
/// start, dominfo-style queries and stats pay.
#[derive(Clone)]
pub struct StoredDef {
    xml: Arc<str>,
}

impl StoredDef {
    /// Keeps `dom` (validated and filled in) as its inactive XML.
    pub fn new(dom: &Domain) -> Self {
        StoredDef {
            xml: dom.to_inactive_xml().into(),
        }
    }

    /// The inactive XML, as stored on disk.
    pub fn xml(&self) -> &str {
        &self.xml
    }

    /// The model, parsed again, with the live-only parts the stored text
    /// leaves out (device aliases) filled in again; everything else was
    /// filled in before it was stored, so this changes nothing more. The
    /// text came from a validated model, so a failure here is an internal
    /// error, not the user's.
    pub fn domain(&self) -> Result<Arc<Domain>, RemoteError> {
        let mut dom = Domain::from_xml(&self.xml)
            .map_err(|e| RemoteError::internal(&format!("stored definition unreadable: {e}")))?;
        dom.fill_in();
        Ok(Arc::new(dom))
    }
}

/// All domains, by name.
#[derive(Default)]
pub struct Registry {
    pub domains: BTreeMap<String, Entry>,
}

impl Registry {
    pub fn by_name(&self, name: &str) -> Result<&Entry, RemoteError> {
        self.domains
            .get(name)
            .ok_or_else(|| RemoteError::no_domain_name(name))
    }

    pub fn by_uuid(&self, uuid: &Uuid) -> Result<&Entry, RemoteError> {
        self.domains
            .values()
            .find(|e| &e.uuid == uuid)
            .ok_or_else(|| RemoteError::no_domain_uuid(uuid))
    }

    pub fn by_id(&self, id: i32) -> Result<&Entry, RemoteError> {
        self.domains
            .values()
            .find(|e| e.id() == id && id >= 0)
            .ok_or_else(|| RemoteError::no_domain_id(id))
    }

    /// The domain a call names: by UUID as libvirt's drivers do, with the
    /// name in the message as the QEMU driver words it.
    pub fn resolve(&self, dom: &NonnullDomain) -> Result<&Entry, RemoteError> {
        // The UUID decides, as libvirt's lookup; the handle's name finds it
        // in O(log n) unless the domain was renamed since (then a scan).
        // `virsh list` calls this once per domain: a scan each time made
        // listing 5,000 domains quadratic.
        self.domains
            .get(&dom.name)
            .filter(|e| e.uuid == dom.uuid)
            .or_else(|| self.domains.values().find(|e| e.uuid == dom.uuid))
            .ok_or_else(|| {
                RemoteError::new(
                    rvirt_remote::error::code::NO_DOMAIN,
                    rvirt_remote::error::from::QEMU,
                    Some(&format!(
                        "no domain with matching uuid '{}' ({})",
                        dom.uuid, dom.name
                    )),
                )
            })
    }

    pub fn resolve_mut(&mut self, dom: &NonnullDomain) -> Result<&mut Entry, RemoteError> {
        let name = self.resolve(dom)?.name.clone();
        self.domains
            .get_mut(&name)
            .ok_or_else(|| RemoteError::no_domain_name(&name))
    }
}

/// Converts the domain model's UUID to the protocol's.
pub fn wire_uuid(u: &uuid::Uuid) -> Uuid {
    Uuid(*u.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_resolves_by_uuid_whatever_its_name_says() {
        let mut reg = Registry::default();
        for (name, b) in [("a", 1u8), ("b", 2)] {
            reg.domains
                .insert(name.into(), Entry::new(name.into(), Uuid([b; 16]), None));
        }
        let handle = |name: &str, b: u8| NonnullDomain {
            name: name.into(),
            uuid: Uuid([b; 16]),
            id: -1,
        };
        assert_eq!(reg.resolve(&handle("a", 1)).unwrap().name, "a");
        // A stale name (the domain was renamed): found by its UUID.
        assert_eq!(reg.resolve(&handle("old", 2)).unwrap().name, "b");
        // The name of one with the UUID of another: the UUID decides.
        assert_eq!(reg.resolve(&handle("a", 2)).unwrap().name, "b");
        assert!(reg.resolve(&handle("a", 3)).is_err());
    }
}
