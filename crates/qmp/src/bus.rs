//! The event bus: the VMM posts events, every negotiated client gets them.

use crate::event::{Event, EventMessage, Timestamp};
use crate::json::to_qmp_line;
use crate::outbox::Outbox;
use std::sync::{Arc, Mutex, PoisonError};

/// Lock order: this list, then a subscriber's outbox queue. Monitor
/// threads never take the list while holding their queue.
#[derive(Default)]
struct Subscribers {
    next_id: u64,
    list: Vec<(u64, Arc<Outbox>)>,
}

/// Where the VMM posts events. Cheap to clone; all clones share the
/// subscribers. Posting never blocks on a client: each client has a bounded
/// queue, and a client whose queue overflows is disconnected by its
/// monitor thread.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<Mutex<Subscribers>>,
}

/// Keeps a client subscribed; unsubscribes on drop.
pub(crate) struct Subscription {
    bus: EventBus,
    id: u64,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Posts an event, timestamped now, to every negotiated client. Events
    /// posted from one thread reach every client in posting order: the
    /// subscriber lock is held across the fan-out.
    pub fn post(&self, event: Event) {
        let msg = EventMessage::new(&event, Timestamp::now());
        tracing::debug!(event = msg.event, "QMP event");
        let line = to_qmp_line(&msg);
        let subs = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, outbox) in &subs.list {
            outbox.push(&line);
        }
    }

    /// Number of clients currently receiving events.
    pub fn subscribers(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .len()
    }

    pub(crate) fn subscribe(&self, outbox: Arc<Outbox>) -> Subscription {
        let mut subs = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let id = subs.next_id;
        subs.next_id += 1;
        subs.list.push((id, outbox));
        Subscription {
            bus: self.clone(),
            id,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self
            .bus
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subs.list.retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_in_order_and_unsubscribe() {
        let bus = EventBus::new();
        let a = Arc::new(Outbox::new(1 << 16).unwrap());
        let sub = bus.subscribe(a.clone());
        bus.post(Event::Stop);
        bus.post(Event::Resume);
        let mut out = Vec::new();
        a.flush_with(|b| {
            out.extend_from_slice(b);
            Ok(b.len())
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let stop = text.find("STOP").unwrap();
        assert!(stop < text.find("RESUME").unwrap());
        assert_eq!(bus.subscribers(), 1);
        drop(sub);
        assert_eq!(bus.subscribers(), 0);
        bus.post(Event::Stop);
        assert_eq!(a.len(), 0);
    }
}
