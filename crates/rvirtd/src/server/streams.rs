//! The streams a client has open (a console, a volume's upload or
//! download), by the serial of the call that opened them: the router hands
//! each STREAM message from the client to its stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_remote::server::{stream_data, stream_eof, stream_finish};
use rvirt_remote::MessageStatus;

use super::outbox::Outbox;

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

/// A stream the daemon fills with bytes it already holds (a screenshot):
/// data after the reply, its end, and the finish the client asks for.
pub struct BytesOut {
    proc_: i32,
    serial: u32,
    outbox: Arc<Outbox>,
    stopped: AtomicBool,
}

/// Stream data messages carry at most this much (libvirt's
/// VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX).
const CHUNK: usize = 256 * 1024;

impl BytesOut {
    /// Registers the stream call `serial` of procedure `proc_` opened;
    /// call [`BytesOut::send`] once the reply is out.
    pub fn open(streams: &Streams, outbox: &Arc<Outbox>, proc_: i32, serial: u32) -> Arc<Self> {
        let s = Arc::new(BytesOut {
            proc_,
            serial,
            outbox: outbox.clone(),
            stopped: AtomicBool::new(false),
        });
        streams.add(serial, s.clone());
        s
    }

    /// Sends `bytes` and the end of the stream (paced as bulk data).
    pub fn send(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(CHUNK) {
            if self.stopped.load(Ordering::Relaxed)
                || !self
                    .outbox
                    .send_bulk(&stream_data(self.proc_, self.serial, chunk))
            {
                return;
            }
        }
        self.outbox.send_bulk(&stream_eof(self.proc_, self.serial));
    }
}

impl ClientStream for BytesOut {
    fn data(&self, _data: &[u8]) {
        // The client sends nothing on an outgoing stream but its finish.
    }

    fn end(&self, status: MessageStatus) {
        self.stopped.store(true, Ordering::Relaxed);
        if status == MessageStatus::Ok {
            self.outbox.send(&stream_finish(self.proc_, self.serial));
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}
