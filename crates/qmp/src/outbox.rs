//! A connection's bounded output queue, shared by the thread serving the
//! connection (replies) and whoever posts events.

use crate::server::wake::Wake;
use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Queue {
    bytes: VecDeque<u8>,
    /// Set when a push did not fit; the connection is then dropped.
    overflowed: bool,
}

/// Bytes waiting to be written to one client.
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// Signalled on every push so the serving thread wakes from `poll`.
    waker: Wake,
    limit: usize,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> io::Result<Self> {
        Ok(Self {
            queue: Mutex::new(Queue {
                bytes: VecDeque::new(),
                overflowed: false,
            }),
            waker: Wake::new()?,
            limit,
        })
    }

    /// A poisoned lock only means another thread panicked mid-push; the
    /// queue of bytes is still consistent enough to keep serving.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message whole, or marks the outbox overflowed if it does
    /// not fit. Never blocks on the client.
    pub(crate) fn push(&self, msg: &[u8]) {
        {
            let mut q = self.lock();
            if q.overflowed {
                return;
            }
            if q.bytes.len() + msg.len() > self.limit {
                q.overflowed = true;
            } else {
                q.bytes.extend(msg);
            }
        }
        // A failed wake-up (counter saturated) still leaves the eventfd
        // readable, which is all the poller needs.
        let _ = self.waker.write(1);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub(crate) fn waker(&self) -> &Wake {
        &self.waker
    }

    /// Writes queued bytes with `write` (which must not block) until the
    /// queue is empty or the writer would block. Returns the bytes left.
    pub(crate) fn flush_with(
        &self,
        mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut q = self.lock();
        while !q.bytes.is_empty() {
            let (front, _) = q.bytes.as_slices();
            match write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => drop(q.bytes.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(q.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_sticky_and_drops_nothing_partially() {
        let o = Outbox::new(10).unwrap();
        o.push(b"12345");
        o.push(b"123456");
        assert!(o.overflowed());
        assert_eq!(o.len(), 5);
        o.push(b"1");
        assert_eq!(o.len(), 5);
    }

    #[test]
    fn flush_stops_when_writer_would_block() {
        let o = Outbox::new(100).unwrap();
        o.push(b"hello world");
        let mut sink = Vec::new();
        let left = o
            .flush_with(|b| {
                if sink.len() >= 5 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = b.len().min(5);
                sink.extend_from_slice(&b[..n]);
                Ok(n)
            })
            .unwrap();
        assert_eq!((sink.as_slice(), left), (&b"hello"[..], 6));
        assert_eq!(o.waker().read().unwrap(), 1);
    }
}
