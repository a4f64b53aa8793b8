//! The streams a client has open (a console, a volume's upload or
//! download), by the serial of the call that opened them: the router hands
//! each STREAM message from the client to its stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_remote::MessageStatus;

/// One open stream as the client's side of it reaches the daemon.
pub trait ClientStream: Send + Sync {
    /// Data from the client (a CONTINUE message).
    fn data(&self, data: &[u8]);
    /// The client finished (OK) or aborted (ERROR) the stream; the stream
    /// confirms as libvirtd does.
    fn end(&self, status: MessageStatus);
    /// The client went away.
    fn stop(&self);
}

/// The streams one connection opened.
#[derive(Default)]
pub struct Streams {
    map: Mutex<HashMap<u32, Arc<dyn ClientStream>>>,
}

impl Streams {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<dyn ClientStream>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the stream opened by call `serial`.
    pub fn add(&self, serial: u32, s: Arc<dyn ClientStream>) {
        self.map().insert(serial, s);
    }

    /// Forgets a stream that ended on the daemon's side.
    pub fn remove(&self, serial: u32) {
        self.map().remove(&serial);
    }

    /// A STREAM message from the client.
    pub fn incoming(&self, serial: u32, status: MessageStatus, data: &[u8]) {
        let Some(s) = self.map().get(&serial).cloned() else {
            return;
        };
        match status {
            MessageStatus::Continue => s.data(data),
            _ => {
                self.remove(serial);
                s.end(status);
            }
        }
    }

    /// Stops every stream of a connection that ended.
    pub fn close_all(&self) {
        let all: Vec<_> = self.map().drain().map(|(_, s)| s).collect();
        for s in all {
            s.stop();
        }
    }
}
