//! Domain event callbacks (CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY)
//! and their delivery to every interested client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rvirt_remote::calls::{DomainEventCallbackRebootMsg, DomainEventRebootMsg};
use rvirt_remote::consts::{VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_REBOOT};
use rvirt_remote::{server, Args, NonnullDomain, Uuid};

use super::outbox::Outbox;

/// One client's registrations.
pub struct Subscriber {
    pub outbox: Arc<Outbox>,
    /// callback id -> (event id, only this domain).
    callbacks: Mutex<HashMap<i32, (i32, Option<Uuid>)>>,
}

impl Subscriber {
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Subscriber {
            outbox,
            callbacks: Mutex::new(HashMap::new()),
        }
    }

    fn callbacks(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (i32, Option<Uuid>)>> {
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        s.callbacks().insert(id, (event_id, dom));
        tracing::debug!(callback = id, event_id, "event callback registered");
        id
    }

    pub fn deregister(&self, s: &Subscriber, id: i32) -> bool {
        s.callbacks().remove(&id).is_some()
    }

    fn each(&self, event_id: i32, dom: &NonnullDomain, mut f: impl FnMut(&Subscriber, i32)) {
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
                .filter(|(_, (ev, only))| *ev == event_id && only.is_none_or(|u| u == dom.uuid))
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
}
