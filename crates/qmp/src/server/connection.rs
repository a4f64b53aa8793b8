//! Serving one client: read commands, run them, write replies and events,
//! all without ever blocking on the client.

use super::poll::{self, entry, NOTHING, READABLE, WRITABLE};
use super::stream::Stream;
use super::Shared;
use crate::bus::Subscription;
use crate::error::QmpError;
use crate::json::to_qmp_line;
use crate::message::Response;
use crate::outbox::Outbox;
use crate::session::{Session, SessionOutput};
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The client left or was dropped; the monitor may accept another.
    Closed,
    /// The server is shutting down.
    Shutdown,
}

/// How long queued output may take to drain when the connection ends
/// gracefully (the client half-closed, or the VMM is exiting after `quit`).
const FINAL_FLUSH: Duration = Duration::from_secs(1);

const READ_CHUNK: usize = 64 * 1024;

struct Sink<'a> {
    shared: &'a Shared,
    outbox: &'a Arc<Outbox>,
    subscription: &'a mut Option<Subscription>,
}

impl SessionOutput for Sink<'_> {
    fn send(&mut self, line: Vec<u8>) {
        self.outbox.push(&line);
    }

    fn negotiated(&mut self) {
        *self.subscription = Some(self.shared.bus.subscribe(self.outbox.clone()));
    }

    fn congested(&self) -> bool {
        self.outbox.len() >= self.shared.config.read_watermark || self.outbox.overflowed()
    }
}

/// Serves `stream` until the client leaves, misbehaves or the server stops.
pub(crate) fn serve(stream: &Stream, shared: &Shared, label: &str) -> End {
    let outbox = match Outbox::new(shared.config.max_outbox) {
        Ok(o) => Arc::new(o),
        Err(e) => {
            tracing::error!(monitor = label, "cannot create an eventfd: {e}");
            return End::Closed;
        }
    };
    let mut session = Session::new(shared.backend.clone(), shared.config.max_message);
    outbox.push(&session.greeting());
    let mut subscription = None;
    let mut input: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut buf = vec![0u8; READ_CHUNK];

    loop {
        let mut sink = Sink {
            shared,
            outbox: &outbox,
            subscription: &mut subscription,
        };
        match session.process(&input, &mut sink) {
            Ok(n) => drop(input.drain(..n)),
            Err(e) => {
                tracing::warn!(monitor = label, "dropping client: {e}");
                let err = QmpError::generic(format!("QMP input rejected: {e}"));
                outbox.push(&to_qmp_line(&Response::new(Err(err), None)));
                flush_for(stream, &outbox, FINAL_FLUSH);
                return End::Closed;
            }
        }
        if outbox.overflowed() {
            tracing::warn!(
                monitor = label,
                "dropping client: it does not read its output"
            );
            return End::Closed;
        }
        if let Err(e) = outbox.flush_with(|b| stream.write(b)) {
            tracing::debug!(monitor = label, "client gone: {e}");
            return End::Closed;
        }
        if eof && input.is_empty() && !session.has_pending() {
            flush_for(stream, &outbox, FINAL_FLUSH);
            return End::Closed;
        }

        let want_read = !eof && input.is_empty() && outbox.len() < shared.config.read_watermark;
        let want_write = outbox.len() > 0;
        let mut fds = [
            entry(shared.shutdown_fd(), READABLE),
            entry(outbox.waker().as_fd(), READABLE),
            entry(stream.read_fd(), if want_read { READABLE } else { NOTHING }),
            entry(
                stream.write_fd(),
                if want_write { WRITABLE } else { NOTHING },
            ),
        ];
        if let Err(e) = poll::wait(&mut fds, None) {
            tracing::error!(monitor = label, "poll failed: {e}");
            return End::Closed;
        }
        if poll::ready(&fds[0]) {
            flush_for(stream, &outbox, FINAL_FLUSH);
            return End::Shutdown;
        }
        if poll::ready(&fds[1]) {
            // Only wakes us; the queue itself is checked every iteration.
            let _ = outbox.waker().read();
        }
        if poll::ready(&fds[2]) {
            let mut passed = Vec::new();
            let got = stream.read(&mut buf, &mut passed);
            if !passed.is_empty() {
                session.receive_fds(passed);
            }
            match got {
                Ok(0) => eof = true,
                Ok(n) => input.extend_from_slice(&buf[..n]),
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    tracing::debug!(monitor = label, "read failed: {e}");
                    return End::Closed;
                }
            }
        }
        if poll::broken(&fds[3]) {
            return End::Closed;
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Writes what is queued, waiting at most `limit` for a slow reader.
fn flush_for(stream: &Stream, outbox: &Outbox, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match outbox.flush_with(|b| stream.write(b)) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut fds = [entry(stream.write_fd(), WRITABLE)];
        if poll::wait(&mut fds, Some(left)).is_err() {
            return;
        }
    }
}
