//! The QMP client rvirtd uses to drive a VMM (or QEMU) over its monitor
//! socket: connect, read the greeting, negotiate, run commands matched to
//! their replies by id, and receive events on a channel.

use crate::error::QmpError;
use crate::event::EventMessage;
use crate::json::{Framed, Streamer};
use crate::message::Greeting;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An event as received: name, data, server timestamp.
pub type ReceivedEvent = EventMessage;

/// Replies can be much larger than requests (`query-qmp-schema` on QEMU is
/// hundreds of KiB), so the client accepts bigger messages than the server.
const MAX_REPLY: usize = 64 << 20;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {path}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP socket I/O failed")]
    Io(#[source] io::Error),
    /// No answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The server closed the connection.
    #[error("the QMP server closed the connection")]
    Disconnected,
    /// The server sent something that is not QMP.
    #[error("unexpected message from the QMP server: {0}")]
    Protocol(String),
    /// The command failed; `error` is the server's error reply.
    #[error("QMP command {command} failed")]
    Command {
        /// The command that failed.
        command: String,
        /// The server's error.
        #[source]
        error: QmpError,
    },
}

type Reply = Result<Value, QmpError>;

#[derive(Default)]
struct Pending {
    /// Set by the reader when the connection ends; no new waiter is
    /// registered after that.
    closed: bool,
    waiters: HashMap<String, SyncSender<Reply>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A negotiated connection to a QMP monitor.
pub struct QmpClient {
    /// The connection, shared with the reader thread (one descriptor:
    /// rvirtd holds one per running domain, so a second, cloned one
    /// would cost a third of its descriptors per domain); the lock orders
    /// whole writes.
    writer: Mutex<Arc<UnixStream>>,
    pending: Arc<Mutex<Pending>>,
    events: Mutex<Option<Receiver<ReceivedEvent>>>,
    greeting: Greeting,
    next_id: AtomicU64,
    timeout: Duration,
    reader: Option<JoinHandle<()>>,
}

impl QmpClient {
    /// Connects to the monitor at `path`, reads the greeting and negotiates
    /// capabilities. `timeout` bounds each step and later each command.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut streamer = Streamer::new(MAX_REPLY);
        let greeting = read_greeting(&stream, &mut streamer, timeout)?;
        stream.set_read_timeout(None).map_err(ClientError::Io)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(ClientError::Io)?;
        let stream = Arc::new(stream);
        let reader_stream = stream.clone();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (events_tx, events_rx) = mpsc::channel();
        let reader = {
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("qmp-client".into())
                .spawn(move || read_loop(reader_stream, streamer, &pending, &events_tx))
                .map_err(ClientError::Io)?
        };
        let client = Self {
            writer: Mutex::new(stream),
            pending,
            events: Mutex::new(Some(events_rx)),
            greeting,
            next_id: AtomicU64::new(0),
            timeout,
            reader: Some(reader),
        };
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// Runs `command` with `arguments` (a JSON object, or `None`) and
    /// returns its `return` value.
    pub fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value, ClientError> {
        self.execute_timeout(command, arguments, self.timeout)
    }

    /// [`QmpClient::execute`] with its own timeout.
    pub fn execute_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.send(command, arguments, timeout, None)
    }

    /// Runs `command` with the descriptor `fd` passed alongside
    /// (SCM_RIGHTS), as `add-fd` and `getfd` take theirs: the monitor gets
    /// its own copy; the caller keeps `fd`.
    pub fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<Value, ClientError> {
        self.send(command, arguments, self.timeout, Some(fd))
    }

    fn send(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Value, ClientError> {
        let id = format!("rvirt-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut p = lock(&self.pending);
            if p.closed {
                return Err(ClientError::Disconnected);
            }
            p.waiters.insert(id.clone(), tx);
        }
        let mut msg = Map::new();
        msg.insert("execute".into(), json!(command));
        if let Some(args) = arguments {
            msg.insert("arguments".into(), args);
        }
        msg.insert("id".into(), json!(id));
        let mut line =
            serde_json::to_vec(&msg).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let written = match fd {
            None => (&**lock(&self.writer)).write_all(&line),
            Some(fd) => send_with_fd(&lock(&self.writer), &line, fd),
        };
        if let Err(e) = written {
            lock(&self.pending).waiters.remove(&id);
            return Err(ClientError::Io(e));
        }
        match rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(ClientError::Command {
                command: command.into(),
                error,
            }),
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.pending).waiters.remove(&id);
                Err(ClientError::Timeout(format!("the reply to {command}")))
            }
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Disconnected),
        }
    }

    /// Runs `command` and decodes its `return` value as `T`, one of this
    /// crate's reply types.
    pub fn execute_as<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, ClientError> {
        let v = self.execute(command, arguments)?;
        serde_json::from_value(v)
            .map_err(|e| ClientError::Protocol(format!("the reply to {command}: {e}")))
    }

    /// `query-status`.
    pub fn query_status(&self) -> Result<crate::types::StatusInfo, ClientError> {
        self.execute_as("query-status", None)
    }

    /// `query-chardev`.
    pub fn query_chardev(&self) -> Result<Vec<crate::types::ChardevInfo>, ClientError> {
        self.execute_as("query-chardev", None)
    }

    /// Takes the event channel, for a caller that wants to consume events
    /// on its own thread. Afterwards [`QmpClient::next_event`] fails.
    pub fn take_events(&self) -> Option<Receiver<ReceivedEvent>> {
        lock(&self.events).take()
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Result<ReceivedEvent, ClientError> {
        let guard = lock(&self.events);
        let rx = guard
            .as_ref()
            .ok_or_else(|| ClientError::Protocol("the event channel was taken".into()))?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => ClientError::Timeout("an event".into()),
            RecvTimeoutError::Disconnected => ClientError::Disconnected,
        })
    }

    /// Waits for the event `name`, discarding other events before it.
    pub fn wait_event(&self, name: &str, timeout: Duration) -> Result<ReceivedEvent, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Ok(ev) if ev.event == name => return Ok(ev),
                Ok(_) => {}
                Err(ClientError::Timeout(_)) => {
                    return Err(ClientError::Timeout(format!("event {name}")))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for QmpClient {
    fn drop(&mut self) {
        let _ = lock(&self.writer).shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_greeting(
    mut stream: &UnixStream,
    streamer: &mut Streamer,
    timeout: Duration,
) -> Result<Greeting, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(framed) = streamer.next() {
            return match framed {
                Framed::Message(v) => serde_json::from_value(v.clone())
                    .map_err(|_| ClientError::Protocol(format!("not a QMP greeting: {v}"))),
                Framed::Error(e) => Err(ClientError::Protocol(e)),
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout("the greeting".into()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(ClientError::Io)?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(ClientError::Disconnected),
            Ok(n) => streamer
                .feed(&buf[..n])
                .map_err(|e| ClientError::Protocol(e.to_string()))?,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout("the greeting".into()))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
}

/// Routes replies to their waiters and events to the channel until the
/// connection ends.
fn read_loop(
    stream: Arc<UnixStream>,
    mut streamer: Streamer,
    pending: &Mutex<Pending>,
    events: &Sender<ReceivedEvent>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    'outer: loop {
        while let Some(framed) = streamer.next() {
            match framed {
                Framed::Message(v) => route(v, pending, events),
                Framed::Error(e) => tracing::warn!("QMP server sent invalid JSON: {e}"),
            }
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = streamer.feed(&buf[..n]) {
                    tracing::warn!("QMP server message rejected: {e}");
                    break 'outer;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut p = lock(pending);
    p.closed = true;
    p.waiters.clear();
}

fn route(v: Value, pending: &Mutex<Pending>, events: &Sender<ReceivedEvent>) {
    if v.get("event").is_some() {
        match serde_json::from_value::<EventMessage>(v) {
            // A dropped receiver just means nobody listens for events.
            Ok(ev) => drop(events.send(ev)),
            Err(e) => tracing::warn!("malformed QMP event: {e}"),
        }
        return;
    }
    let reply: Reply = if let Some(ret) = v.get("return") {
        Ok(ret.clone())
    } else if let Some(err) = v.get("error") {
        match serde_json::from_value::<QmpError>(err.clone()) {
            Ok(e) => Err(e),
            Err(_) => Err(QmpError::generic(err.to_string())),
        }
    } else {
        tracing::warn!("unexpected QMP message: {v}");
        return;
    };
    let Some(id) = v.get("id").and_then(Value::as_str) else {
        tracing::warn!("QMP reply without our id: {v}");
        return;
    };
    if let Some(tx) = lock(pending).waiters.remove(id) {
        let _ = tx.send(reply);
    }
}

/// Writes `line` with `fd` attached to its first byte.
fn send_with_fd(
    stream: &UnixStream,
    line: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !ancillary.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the descriptor"));
    }
    let n = rustix::net::sendmsg(
        stream,
        &[std::io::IoSlice::new(line)],
        &mut ancillary,
        SendFlags::NOSIGNAL,
    )?;
    // The descriptor went with the first bytes; the rest plainly.
    if n < line.len() {
        (&*stream).write_all(&line[n..])?;
    }
    Ok(())
}
