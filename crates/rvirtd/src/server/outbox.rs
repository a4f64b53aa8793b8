//! A client's outgoing queue: replies and events are queued here and one
//! writer thread per client sends them, so that a client that stops
//! reading only ever blocks its own writer, never a VM follower or
//! another client. A client whose queue overflows is disconnected.
//!
//! Bulk data (a volume's download) goes through the same queue but is
//! paced: [`Outbox::send_bulk`] waits while more than [`BULK_BYTES`] of it
//! are queued and unwritten, so a download neither fills the queue (which
//! would drop the client at the next event) nor holds the file in memory.

use std::io::Write;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rvirt_remote::Message;

/// Messages waiting for a slow client before it is dropped.
const QUEUE: usize = 1024;

/// Bulk bytes queued and not yet written before a bulk sender waits.
pub const BULK_BYTES: usize = 4 << 20;

/// One queued message; bulk messages give their bytes back to the budget
/// once written.
pub struct Queued {
    pub bytes: Vec<u8>,
    budget: Option<Arc<Budget>>,
    /// Descriptors sent after the bytes, one per one-byte message, as
    /// libvirt's virNetSocketSendFD sends them.
    fds: Vec<OwnedFd>,
}

/// Bulk bytes in the queue, and a condition to wait for them to drain.
#[derive(Default)]
struct Budget {
    queued: Mutex<usize>,
    drained: Condvar,
}

impl Budget {
    fn release(&self, n: usize) {
        let mut q = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        *q = q.saturating_sub(n);
        self.drained.notify_all();
    }
}

pub struct Outbox {
    tx: SyncSender<Queued>,
    stream: UnixStream,
    closed: AtomicBool,
    bulk: Arc<Budget>,
}

impl Outbox {
    /// The outbox and the receiving end its writer thread drains.
    pub fn new(stream: UnixStream) -> (Self, Receiver<Queued>) {
        let (tx, rx) = sync_channel(QUEUE);
        (
            Outbox {
                tx,
                stream,
                closed: AtomicBool::new(false),
                bulk: Arc::default(),
            },
            rx,
        )
    }

    /// Queues bulk data once less than [`BULK_BYTES`] of it wait to be
    /// written; false (and nothing queued) once the connection is closed.
    pub fn send_bulk(&self, m: &Message) -> bool {
        let bytes = match m.to_bytes() {
            Ok(b) => b,
            Err(_) => return false,
        };
        let n = bytes.len();
        {
            let mut q = self
                .bulk
                .queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while *q > BULK_BYTES {
                if self.is_closed() {
                    return false;
                }
                // The timeout only bounds how late a close is noticed.
                q = self
                    .bulk
                    .drained
                    .wait_timeout(q, Duration::from_millis(200))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            *q += n;
        }
        self.queue(Queued {
            bytes,
            budget: Some(self.bulk.clone()),
            fds: Vec::new(),
        })
    }

    /// Queues `m`; false (and the connection is closed) if it cannot be.
    pub fn send(&self, m: &Message) -> bool {
        self.send_with_fds(m, Vec::new())
    }

    /// Queues `m` (a REPLY_WITH_FDS) and the descriptors that follow it.
    pub fn send_with_fds(&self, m: &Message, fds: Vec<OwnedFd>) -> bool {
        let bytes = match m.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reply too large to send");
                return false;
            }
        };
        self.queue(Queued {
            bytes,
            budget: None,
            fds,
        })
    }

    fn queue(&self, q: Queued) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            if let Some(b) = &q.budget {
                b.release(q.bytes.len());
            }
            return false;
        }
        match self.tx.try_send(q) {
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
        self.bulk.drained.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// One descriptor with a one-byte message (SCM_RIGHTS).
fn send_fd(stream: &UnixStream, fd: &OwnedFd) -> bool {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return false;
    }
    loop {
        match rustix::net::sendmsg(
            stream,
            &[std::io::IoSlice::new(&[0])],
            &mut cmsg,
            SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            _ => return false,
        }
    }
}

/// The writer thread's loop: send until the queue or the socket ends.
pub fn write_loop(mut stream: UnixStream, rx: Receiver<Queued>) {
    for q in rx {
        let ok = stream.write_all(&q.bytes).is_ok() && q.fds.iter().all(|fd| send_fd(&stream, fd));
        if let Some(b) = &q.budget {
            b.release(q.bytes.len());
        }
        if !ok {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
    }
}
