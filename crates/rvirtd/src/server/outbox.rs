//! A client's outgoing queue: replies and events are queued here and one
//! writer thread per client sends them, so that a client that stops
//! reading only ever blocks its own writer, never a VM follower or
//! another client. A client whose queue overflows is disconnected.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use rvirt_remote::Message;

/// Messages waiting for a slow client before it is dropped.
const QUEUE: usize = 1024;

pub struct Outbox {
    tx: SyncSender<Vec<u8>>,
    stream: UnixStream,
    closed: AtomicBool,
}

impl Outbox {
    /// The outbox and the receiving end its writer thread drains.
    pub fn new(stream: UnixStream) -> (Self, Receiver<Vec<u8>>) {
        let (tx, rx) = sync_channel(QUEUE);
        (
            Outbox {
                tx,
                stream,
                closed: AtomicBool::new(false),
            },
            rx,
        )
    }

    /// Queues `m`; false (and the connection is closed) if it cannot be.
    pub fn send(&self, m: &Message) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let bytes = match m.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reply too large to send");
                return false;
            }
        };
        match self.tx.try_send(bytes) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("client does not read its messages; disconnecting it");
                self.close();
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Ends the connection in both directions (the reader sees EOF).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// The writer thread's loop: send until the queue or the socket ends.
pub fn write_loop(mut stream: UnixStream, rx: Receiver<Vec<u8>>) {
    for bytes in rx {
        if stream.write_all(&bytes).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
    }
}
