//! Event callbacks (CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
//! CONNECT_NETWORK_EVENT_REGISTER_ANY,
//! CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY) and their delivery to every
//! interested client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rvirt_remote::calls::{
    DomainEventBlockJob2Msg, DomainEventBlockJobMsg, DomainEventCallbackBlockJobMsg,
    DomainEventCallbackDeviceRemovedMsg, DomainEventCallbackGraphicsMsg,
    DomainEventCallbackRebootMsg, DomainEventCallbackTrayChangeMsg, DomainEventCallbackWatchdogMsg,
    DomainEventDeviceRemovedMsg, DomainEventGraphicsMsg, DomainEventRebootMsg,
    DomainEventTrayChangeMsg, DomainEventWatchdogMsg, NetworkEventLifecycleMsg,
    StoragePoolEventLifecycleMsg, StoragePoolEventRefreshMsg,
};
use rvirt_remote::consts::storage::{EVENT_ID_LIFECYCLE, EVENT_ID_REFRESH};
use rvirt_remote::consts::{
    VIR_DOMAIN_EVENT_ID_BLOCK_JOB, VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
    VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_ID_GRAPHICS,
    VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_REBOOT, VIR_DOMAIN_EVENT_ID_TRAY_CHANGE,
    VIR_DOMAIN_EVENT_ID_WATCHDOG, VIR_NETWORK_EVENT_ID_LIFECYCLE,
};
use rvirt_remote::types::{NonnullNetwork, NonnullStoragePool};
use rvirt_remote::{server, Args, NonnullDomain, Uuid};

/// What kind of object a callback watches: event ids are numbered per
/// kind, so a domain's lifecycle callback (0) is not a network's (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Domain,
    Network,
    StoragePool,
}

/// One registration: the kind, the event id, and the one object it is
/// limited to (by UUID), if any.
type Registration = (Kind, i32, Option<Uuid>);

use super::outbox::Outbox;

/// One client's registrations.
pub struct Subscriber {
    pub outbox: Arc<Outbox>,
    /// callback id -> what it watches.
    callbacks: Mutex<HashMap<i32, Registration>>,
}

impl Subscriber {
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Subscriber {
            outbox,
            callbacks: Mutex::new(HashMap::new()),
        }
    }

    fn callbacks(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Registration>> {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<Weak<Subscriber>>>,
    next_id: AtomicI32,
}

impl EventHub {
    pub fn attach(&self, s: &Arc<Subscriber>) {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(s));
    }

    /// Registers a callback and returns its id (unique per daemon, as
    /// libvirtd's are).
    pub fn register(&self, s: &Subscriber, event_id: i32, dom: Option<Uuid>) -> i32 {
        self.register_kind(s, Kind::Domain, event_id, dom)
    }

    /// Registers a callback for objects of `kind`.
    pub fn register_kind(
        &self,
        s: &Subscriber,
        kind: Kind,
        event_id: i32,
        only: Option<Uuid>,
    ) -> i32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        s.callbacks().insert(id, (kind, event_id, only));
        tracing::debug!(callback = id, event_id, "event callback registered");
        id
    }

    pub fn deregister(&self, s: &Subscriber, id: i32) -> bool {
        self.deregister_kind(s, Kind::Domain, id)
    }

    /// Removes callback `id` if it watches objects of `kind`.
    pub fn deregister_kind(&self, s: &Subscriber, kind: Kind, id: i32) -> bool {
        let mut cbs = s.callbacks();
        if cbs.get(&id).is_some_and(|r| r.0 == kind) {
            cbs.remove(&id);
            return true;
        }
        false
    }

    fn each(&self, event_id: i32, dom: &NonnullDomain, f: impl FnMut(&Subscriber, i32)) {
        self.each_of(Kind::Domain, event_id, &dom.uuid, f)
    }

    fn each_of(&self, kind: Kind, event_id: i32, uuid: &Uuid, mut f: impl FnMut(&Subscriber, i32)) {
        let subs: Vec<Arc<Subscriber>> = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for s in subs {
            let ids: Vec<i32> = s
                .callbacks()
                .iter()
                .filter(|(_, (k, ev, only))| {
                    *k == kind && *ev == event_id && only.is_none_or(|u| u == *uuid)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                f(&s, id);
            }
        }
    }

    /// Pushes a lifecycle event (`rvirt_remote::event::LifecycleEvent`
    /// number and detail) to every matching callback.
    pub fn lifecycle(&self, dom: &NonnullDomain, event: i32, detail: i32) {
        tracing::debug!(domain = %dom.name, event, detail, "lifecycle event");
        self.each(VIR_DOMAIN_EVENT_ID_LIFECYCLE, dom, |s, id| {
            s.outbox
                .send(&server::lifecycle_event(id, dom.clone(), event, detail));
        });
    }

    /// Pushes a reboot event.
    pub fn reboot(&self, dom: &NonnullDomain) {
        self.each(VIR_DOMAIN_EVENT_ID_REBOOT, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackReboot(
                    DomainEventCallbackRebootMsg {
                        callback_id: id,
                        msg: DomainEventRebootMsg { dom: dom.clone() },
                    },
                )));
        });
    }

    /// A removable drive's tray moved (the VMM's DEVICE_TRAY_MOVED):
    /// libvirt's TRAY_CHANGE with the device's alias and
    /// `VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN` or `_CLOSE`.
    pub fn tray_change(&self, dom: &NonnullDomain, alias: &str, reason: i32) {
        tracing::debug!(domain = %dom.name, alias, reason, "tray change event");
        self.each(VIR_DOMAIN_EVENT_ID_TRAY_CHANGE, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackTrayChange(
                    DomainEventCallbackTrayChangeMsg {
                        callback_id: id,
                        msg: DomainEventTrayChangeMsg {
                            dom: dom.clone(),
                            dev_alias: alias.to_string(),
                            reason,
                        },
                    },
                )));
        });
    }

    /// Pushes DEVICE_REMOVED: the guest let go of the device `alias`
    /// (after a detach) and it is gone from the live definition.
    pub fn device_removed(&self, dom: &NonnullDomain, alias: &str) {
        tracing::debug!(domain = %dom.name, alias, "device removed event");
        self.each(VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackDeviceRemoved(
                    DomainEventCallbackDeviceRemovedMsg {
                        callback_id: id,
                        msg: DomainEventDeviceRemovedMsg {
                            dom: dom.clone(),
                            dev_alias: alias.to_string(),
                        },
                    },
                )));
        });
    }

    /// Pushes a watchdog event (`event::watchdog_action`).
    pub fn watchdog(&self, dom: &NonnullDomain, action: i32) {
        tracing::debug!(domain = %dom.name, action, "watchdog event");
        self.each(VIR_DOMAIN_EVENT_ID_WATCHDOG, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackWatchdog(
                    DomainEventCallbackWatchdogMsg {
                        callback_id: id,
                        msg: DomainEventWatchdogMsg {
                            dom: dom.clone(),
                            action,
                        },
                    },
                )));
        });
    }

    /// Pushes a block job's event twice, as libvirt does: BLOCK_JOB naming
    /// the disk by `path`, BLOCK_JOB_2 by `target` (`vda`).
    pub fn block_job(&self, dom: &NonnullDomain, path: &str, target: &str, kind: i32, status: i32) {
        tracing::debug!(domain = %dom.name, target, kind, status, "block job event");
        self.each(VIR_DOMAIN_EVENT_ID_BLOCK_JOB, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackBlockJob(
                    DomainEventCallbackBlockJobMsg {
                        callback_id: id,
                        msg: DomainEventBlockJobMsg {
                            dom: dom.clone(),
                            path: path.to_string(),
                            type_: kind,
                            status,
                        },
                    },
                )));
        });
        self.each(VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, dom, |s, id| {
            s.outbox.send(&server::event(&Args::DomainEventBlockJob2(
                DomainEventBlockJob2Msg {
                    callback_id: id,
                    dom: dom.clone(),
                    dst: target.to_string(),
                    type_: kind,
                    status,
                },
            )));
        });
    }

    /// Pushes a graphics event (a VNC client connected, initialized or
    /// went away).
    pub fn graphics(
        &self,
        dom: &NonnullDomain,
        msg: &dyn Fn(NonnullDomain) -> DomainEventGraphicsMsg,
    ) {
        self.each(VIR_DOMAIN_EVENT_ID_GRAPHICS, dom, |s, id| {
            s.outbox
                .send(&server::event(&Args::DomainEventCallbackGraphics(
                    DomainEventCallbackGraphicsMsg {
                        callback_id: id,
                        msg: msg(dom.clone()),
                    },
                )));
        });
    }

    /// Pushes a network lifecycle event (`consts::network_event`).
    pub fn network_lifecycle(&self, net: &NonnullNetwork, event: i32) {
        tracing::debug!(network = %net.name, event, "network lifecycle event");
        self.each_of(
            Kind::Network,
            VIR_NETWORK_EVENT_ID_LIFECYCLE,
            &net.uuid,
            |s, id| {
                s.outbox.send(&server::event(&Args::NetworkEventLifecycle(
                    NetworkEventLifecycleMsg {
                        callback_id: id,
                        net: net.clone(),
                        event,
                        detail: 0,
                    },
                )));
            },
        );
    }

    /// Pushes a storage pool lifecycle event
    /// (`rvirt_remote::consts::storage::event`) to every matching callback.
    pub fn pool_lifecycle(&self, pool: &NonnullStoragePool, event: i32, detail: i32) {
        tracing::debug!(pool = %pool.name, event, detail, "storage pool event");
        self.each_of(
            Kind::StoragePool,
            EVENT_ID_LIFECYCLE,
            &pool.uuid,
            |s, id| {
                s.outbox
                    .send(&server::event(&Args::StoragePoolEventLifecycle(
                        StoragePoolEventLifecycleMsg {
                            callback_id: id,
                            pool: pool.clone(),
                            event,
                            detail,
                        },
                    )));
            },
        );
    }

    /// Pushes a storage pool refresh event.
    pub fn pool_refresh(&self, pool: &NonnullStoragePool) {
        self.each_of(Kind::StoragePool, EVENT_ID_REFRESH, &pool.uuid, |s, id| {
            s.outbox.send(&server::event(&Args::StoragePoolEventRefresh(
                StoragePoolEventRefreshMsg {
                    callback_id: id,
                    pool: pool.clone(),
                },
            )));
        });
    }
}
