//! The connection under [`super::Client`]: one reader thread that owns the
//! read side and files every message where its waiter finds it, and a
//! writer lock that keeps whole messages from interleaving.
//!
//! Lock order: `state` and `writer` are never held together, and nothing
//! blocks while holding `state`. The reader never waits for `writer` and
//! never blocks writing: a daemon that stops reading until its replies
//! drain (libvirtd does at `max_client_requests`) would otherwise wait for
//! the reader while the reader waits for it. Keepalive messages it cannot
//! send at once are left in `control` for the next writer (or its own next
//! turn) to send.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::net::SendFlags;
use tracing::{debug, trace, warn};

use super::{Async, ClientError};
use crate::error::{code, from, RemoteError};
use crate::frame::{FrameDecoder, FrameError};
use crate::keepalive::{KeepaliveAction, KeepaliveProc, KeepaliveTracker};
use crate::message::{Message, MessageStatus, MessageType};
use crate::procedures::{Args, Procedure};

/// The longest the reader sleeps in one read: how soon it notices a
/// keepalive it was asked to start (or sooner, see [`Shared::new`]), or a
/// PONG it still owes.
const TICK: Duration = Duration::from_secs(1);

/// `control` bits: keepalive messages waiting to be sent.
const PING: u8 = 1;
const PONG: u8 = 2;

/// Why the connection ended; every waiter from then on fails with it.
#[derive(Debug, Clone)]
pub(super) enum Ended {
    /// The daemon closed the connection between messages (or we did).
    Closed,
    /// Anything else: the first error, shared by every waiter.
    Failed(Arc<ClientError>),
}

impl Ended {
    pub(super) fn error(&self) -> ClientError {
        match self {
            Ended::Closed => ClientError::Closed,
            Ended::Failed(e) => ClientError::Lost(Arc::clone(e)),
        }
    }
}

/// What the reader has filed and the callers wait on.
#[derive(Debug, Default)]
struct State {
    next_serial: u32,
    /// Calls sent and not answered yet, with the procedure the reply must
    /// carry.
    waiting: HashMap<u32, Procedure>,
    /// Replies not collected yet: the payload, or why the call failed.
    answered: HashMap<u32, Result<Vec<u8>, ClientError>>,
    /// Events and stream messages, in arrival order, until someone takes them.
    asyncs: VecDeque<Async>,
    /// Client-side keepalive asked for by the handshake: (interval, count).
    keepalive: Option<(Duration, u32)>,
    ended: Option<Ended>,
}

/// The write side: the socket and keepalive bytes still owed.
#[derive(Debug)]
struct Writer {
    sock: UnixStream,
    /// Keepalive bytes not yet written (a short non-blocking write leaves
    /// a tail here, which must go out before any other message).
    owed: Vec<u8>,
}

/// Shared by the client, its stream senders and the reader thread.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    writer: Mutex<Writer>,
    /// Keepalive messages the reader wants sent (`PING`/`PONG` bits).
    control: AtomicU8,
    /// For shutting the socket down from any thread without the writer lock.
    ctl: UnixStream,
    /// The reader's longest sleep.
    tick: Duration,
}

/// Writes all of `bytes`, never raising SIGPIPE (rvirsh restores its
/// default disposition; a dead daemon must be an error, not a kill).
fn send_all(sock: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(sock, bytes, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes what fits without blocking; returns how much was written.
fn send_some(sock: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match rustix::net::send(
            sock,
            &bytes[done..],
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

impl Writer {
    /// Moves requested keepalive messages into `owed`.
    fn take_control(&mut self, control: &AtomicU8) {
        let bits = control.swap(0, Ordering::AcqRel);
        for (bit, k) in [(PING, KeepaliveProc::Ping), (PONG, KeepaliveProc::Pong)] {
            if bits & bit != 0 {
                if let Ok(b) = k.message().to_bytes() {
                    self.owed.extend_from_slice(&b);
                }
            }
        }
    }

    /// Sends owed keepalive bytes, blocking or not.
    fn flush_owed(&mut self, block: bool) -> io::Result<()> {
        if self.owed.is_empty() {
            return Ok(());
        }
        if block {
            send_all(&self.sock, &self.owed)?;
            self.owed.clear();
        } else {
            let n = send_some(&self.sock, &self.owed)?;
            self.owed.drain(..n);
        }
        Ok(())
    }
}

impl Shared {
    /// A connection on `sock`; the reader gets its own clone. A keepalive
    /// interval shorter than [`TICK`] shortens the reader's sleep, so that
    /// the first PING is never later than one interval.
    pub(super) fn new(sock: &UnixStream, ping_interval: Option<Duration>) -> io::Result<Self> {
        Ok(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            writer: Mutex::new(Writer {
                sock: sock.try_clone()?,
                owed: Vec::new(),
            }),
            control: AtomicU8::new(0),
            ctl: sock.try_clone()?,
            tick: ping_interval.map_or(TICK, |i| i.min(TICK)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while filing cannot leave the maps half-updated in a way
        // that matters more than losing the connection would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on the condition variable until `deadline` (forever when
    /// `None`); returns the guard again.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        match deadline {
            None => self.changed.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                self.changed
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    /// Sends one whole message, after any keepalive bytes owed.
    pub(super) fn send(&self, m: &Message) -> Result<(), ClientError> {
        trace!(proc_ = m.header.proc_, serial = m.header.serial, "send");
        let bytes = m.to_bytes()?;
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.take_control(&self.control);
        let sent = w
            .flush_owed(true)
            .and_then(|()| send_all(&w.sock, &bytes))
            .and_then(|()| {
                // The reader may have asked while we held the lock.
                w.take_control(&self.control);
                w.flush_owed(true)
            });
        drop(w);
        sent.map_err(|e| {
            // Writing fails when the connection is gone: say why it went.
            match &self.lock().ended {
                Some(end) => end.error(),
                None => FrameError::Io(e).into(),
            }
        })
    }

    /// Asks for a keepalive message to be sent; sends it now if nobody is
    /// writing and the socket takes it without blocking.
    fn request(&self, bit: u8) {
        self.control.fetch_or(bit, Ordering::AcqRel);
        self.flush_control();
    }

    /// The reader's non-blocking attempt at sending owed keepalive bytes.
    fn flush_control(&self) {
        let Ok(mut w) = self.writer.try_lock() else {
            // A caller is writing; it sends the owed bytes when done.
            return;
        };
        w.take_control(&self.control);
        if let Err(e) = w.flush_owed(false) {
            // The read side sees the same failure and ends the connection.
            debug!(error = %e, "sending keepalive failed");
        }
    }

    /// Takes a serial for a call to `p` and registers its waiter, unless
    /// the connection has ended.
    pub(super) fn register(&self, p: Procedure) -> Result<u32, ClientError> {
        let mut st = self.lock();
        if let Some(end) = &st.ended {
            return Err(end.error());
        }
        let serial = st.next_serial;
        st.next_serial = st.next_serial.wrapping_add(1);
        st.waiting.insert(serial, p);
        Ok(serial)
    }

    /// Forgets a call: its reply, when it comes, is dropped.
    pub(super) fn forget(&self, serial: u32) {
        let mut st = self.lock();
        st.waiting.remove(&serial);
        st.answered.remove(&serial);
    }

    /// The reply to `serial`: its payload, the daemon's error, the end of
    /// the connection, or `Ok(None)` when `deadline` passed first.
    pub(super) fn reply(
        &self,
        serial: u32,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.answered.remove(&serial) {
                return r.map(Some);
            }
            if let Some(end) = &st.ended {
                return Err(end.error());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            st = self.wait(st, deadline);
        }
    }

    /// The first queued event or stream message that `wanted` accepts,
    /// leaving the others queued; `Ok(None)` when `deadline` passed first.
    pub(super) fn next_async(
        &self,
        wanted: impl Fn(&Async) -> bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Async>, ClientError> {
        let mut st = self.lock();
        loop {
            if let Some(i) = st.asyncs.iter().position(&wanted) {
                return Ok(st.asyncs.remove(i));
            }
            if let Some(end) = &st.ended {
                return Err(end.error());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            st = self.wait(st, deadline);
        }
    }

    /// Starts client-side keepalive (the reader picks it up within a tick).
    pub(super) fn start_keepalive(&self, interval: Duration, count: u32) {
        self.lock().keepalive = Some((interval, count));
    }

    /// Shuts the socket down: the reader sees the end, blocked writers fail.
    pub(super) fn shutdown(&self) {
        let _ = self.ctl.shutdown(Shutdown::Both);
    }

    /// Records the end and wakes every waiter.
    fn end(&self, why: Ended) {
        let mut st = self.lock();
        if st.ended.is_none() {
            debug!(?why, "connection ended");
            st.ended = Some(why);
        }
        st.waiting.clear();
        drop(st);
        self.changed.notify_all();
        self.shutdown();
    }

    /// Files one message from the daemon.
    fn file(&self, m: Message) {
        let h = m.header;
        trace!(proc_ = h.proc_, serial = h.serial, "recv");
        if let Some(k) = KeepaliveProc::of(&m) {
            if k == KeepaliveProc::Ping {
                self.request(PONG);
            }
            return;
        }
        if !h.is_remote() {
            debug!(prog = h.prog, "ignoring a message of another program");
            return;
        }
        let filed = match h.type_ {
            MessageType::Reply => {
                let mut st = self.lock();
                let Some(p) = st.waiting.remove(&h.serial) else {
                    // libvirtd answers stream data that raced a stream's
                    // close with a bare dummy REPLY; a forgotten call's
                    // reply lands here too.
                    debug!(serial = h.serial, "ignoring a reply nobody waits for");
                    return;
                };
                st.answered.insert(h.serial, outcome(p, &m));
                true
            }
            MessageType::Message => match Procedure::from_i32(h.proc_) {
                Some(p) => match Args::decode(p, &m.payload) {
                    Ok(args) => {
                        self.lock().asyncs.push_back(Async::Event(args));
                        true
                    }
                    Err(e) => {
                        warn!(proc_ = %p, error = %e, "dropping an event that does not decode");
                        false
                    }
                },
                None => {
                    debug!(proc_ = h.proc_, "ignoring an unknown event");
                    false
                }
            },
            MessageType::Stream => {
                self.lock().asyncs.push_back(Async::Stream {
                    serial: h.serial,
                    status: h.status,
                    data: m.payload,
                });
                true
            }
            t => {
                debug!(proc_ = h.proc_, type_ = ?t, "ignoring a message a daemon does not send");
                false
            }
        };
        if filed {
            self.changed.notify_all();
        }
    }
}

/// What a REPLY means for the call to `p` that it answers.
fn outcome(p: Procedure, m: &Message) -> Result<Vec<u8>, ClientError> {
    let h = m.header;
    if h.proc_ != p.number() {
        return Err(ClientError::Protocol(format!(
            "reply to serial {} is for procedure {}, not {p}",
            h.serial, h.proc_
        )));
    }
    match h.status {
        MessageStatus::Ok => Ok(m.payload.clone()),
        MessageStatus::Error => match m.body::<RemoteError>() {
            Ok(e) => Err(e.into()),
            Err(source) => Err(ClientError::Decode { proc_: p, source }),
        },
        MessageStatus::Continue => Err(ClientError::Protocol(
            "reply with status CONTINUE".to_string(),
        )),
    }
}

/// The reader thread: reads until the connection ends, then fails every
/// waiter with the reason.
pub(super) fn run_reader(shared: Arc<Shared>, sock: UnixStream) {
    let why = read_until_end(&shared, sock);
    shared.end(why);
}

fn read_until_end(shared: &Shared, mut sock: UnixStream) -> Ended {
    let failed = |e: ClientError| Ended::Failed(Arc::new(e));
    let mut frames = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut keepalive: Option<KeepaliveTracker> = None;
    loop {
        let now = Instant::now();
        loop {
            match frames.next_message() {
                Ok(Some(m)) => {
                    if let Some(k) = keepalive.as_mut() {
                        k.heard(now);
                    }
                    shared.file(m);
                }
                Ok(None) => break,
                Err(e) => return failed(e.into()),
            }
        }
        if keepalive.is_none() {
            if let Some((interval, count)) = shared.lock().keepalive {
                keepalive = Some(KeepaliveTracker::new(interval, count, now));
            }
        }
        let mut wait = shared.tick;
        if let Some(k) = keepalive.as_mut() {
            match k.poll(now) {
                KeepaliveAction::Wait => {}
                KeepaliveAction::SendPing => shared.request(PING),
                KeepaliveAction::Close => {
                    return failed(ClientError::from(RemoteError::new(
                        code::INTERNAL_ERROR,
                        from::RPC,
                        Some("connection closed due to keepalive timeout"),
                    )))
                }
            }
            wait = wait.min(k.deadline().saturating_duration_since(now));
        }
        shared.flush_control();
        // A zero timeout means "none" to set_read_timeout.
        let wait = wait.max(Duration::from_millis(1));
        if let Err(e) = sock.set_read_timeout(Some(wait)) {
            return failed(FrameError::Io(e).into());
        }
        match sock.read(&mut buf) {
            Ok(0) if frames.buffered() == 0 => return Ended::Closed,
            Ok(0) => return failed(FrameError::Truncated.into()),
            Ok(n) => frames.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return failed(FrameError::Io(e).into()),
        }
    }
}
