//! A small blocking client for rvirsh: connects to a UNIX socket, runs
//! virsh's handshake, makes one call at a time, answers keepalive PINGs
//! and queues event and stream messages that arrive in between.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, trace};

use crate::calls::{ConnectOpenArgs, ConnectSupportsFeatureArgs, DomainOpenConsoleArgs};
use crate::consts::{feature, REMOTE_AUTH_NONE};
use crate::error::RemoteError;
use crate::frame::{FrameDecoder, FrameError};
use crate::keepalive::KeepaliveProc;
use crate::message::{Header, Message, MessageStatus, MessageType};
use crate::procedures::{procs, Args, Procedure, RemoteProcedure};
use crate::types::NonnullDomain;
use crate::uri::{RemoteUri, UriError};
use crate::xdr::{from_bytes, to_bytes, XdrError};

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket could not be connected (virsh's wording).
    #[error("Failed to connect socket to '{}'", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The URI is not one rvirt serves.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The byte stream broke.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A reply did not decode as its procedure's return type.
    #[error("invalid reply to {proc_}")]
    Decode {
        proc_: Procedure,
        #[source]
        source: XdrError,
    },
    /// The daemon answered with an error (boxed: it is large and rare).
    #[error(transparent)]
    Remote(Box<RemoteError>),
    /// The daemon closed the connection.
    #[error("the connection to the daemon was closed")]
    Closed,
    /// The daemon broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon requires an authentication rvirsh does not speak.
    #[error("authentication failed: no supported authentication method")]
    Auth,
}

impl From<RemoteError> for ClientError {
    fn from(e: RemoteError) -> Self {
        ClientError::Remote(Box::new(e))
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Frame(FrameError::Io(e))
    }
}

/// Something the daemon sent without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Async {
    /// An event MESSAGE, decoded.
    Event(Args),
    /// Stream data (status CONTINUE), end of stream (empty CONTINUE), or
    /// a stream error (status ERROR, payload a `remote_error`).
    Stream {
        serial: u32,
        status: MessageStatus,
        data: Vec<u8>,
    },
}

/// A connection to rvirtd (or libvirtd). One call at a time; console
/// input can be sent from another thread through a [`StreamSender`].
#[derive(Debug)]
pub struct Client {
    /// Read side; only this struct reads.
    sock: UnixStream,
    /// Write side, shared with stream senders so whole messages never
    /// interleave.
    writer: Arc<Mutex<UnixStream>>,
    frames: FrameDecoder,
    serial: u32,
    pending: VecDeque<Async>,
    close_callback: bool,
    features: Features,
}

/// Choices for the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Ask for keepalive (feature 10) as virsh does. A daemon that says
    /// yes starts PINGing, and PINGs are only answered inside `call` and
    /// `next_async`: a client that may sit idle for long (an editor open)
    /// should say no.
    pub ask_keepalive: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ask_keepalive: true,
        }
    }
}

/// What the daemon said it supports during the handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub keepalive: bool,
    pub event_callback: bool,
    pub close_callback: bool,
}

impl Client {
    /// Connects to the socket `uri` names and opens it.
    pub fn connect(uri: &RemoteUri) -> Result<Self, ClientError> {
        let path = uri.socket_path_from_env();
        Self::connect_path(&path, &uri.open_name())
    }

    /// Connects to `path` and opens the connection named `name`.
    pub fn connect_path(path: &Path, name: &str) -> Result<Self, ClientError> {
        let sock = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Self::handshake(sock, name)
    }

    /// Runs virsh's handshake on a connected socket: AUTH_LIST,
    /// SUPPORTS_FEATURE(keepalive), CONNECT_OPEN, SUPPORTS_FEATURE(event
    /// callbacks, close callbacks), and REGISTER_CLOSE_CALLBACK when offered.
    pub fn handshake(sock: UnixStream, name: &str) -> Result<Self, ClientError> {
        Self::handshake_with(sock, name, &ClientOptions::default())
    }

    /// [`Self::handshake`] with options.
    pub fn handshake_with(
        sock: UnixStream,
        name: &str,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let writer = Arc::new(Mutex::new(sock.try_clone()?));
        let mut c = Client {
            sock,
            writer,
            frames: FrameDecoder::new(),
            serial: 0,
            pending: VecDeque::new(),
            close_callback: false,
            features: Features::default(),
        };
        let auth = c.call::<procs::AuthList>(&())?;
        if !auth.types.is_empty() && !auth.types.contains(&REMOTE_AUTH_NONE) {
            return Err(ClientError::Auth);
        }
        if opts.ask_keepalive {
            c.features.keepalive = c.supports(feature::PROGRAM_KEEPALIVE)?;
        }
        c.call::<procs::ConnectOpen>(&ConnectOpenArgs {
            name: Some(name.to_string()),
            flags: 0,
        })?;
        c.features.event_callback = c.supports(feature::REMOTE_EVENT_CALLBACK)?;
        c.features.close_callback = c.supports(feature::REMOTE_CLOSE_CALLBACK)?;
        if c.features.close_callback {
            c.call::<procs::ConnectRegisterCloseCallback>(&())?;
            c.close_callback = true;
        }
        debug!(name, features = ?c.features, "connection open");
        Ok(c)
    }

    /// Asks CONNECT_SUPPORTS_FEATURE; an error reply counts as "no", as
    /// virsh treats it.
    fn supports(&mut self, f: i32) -> Result<bool, ClientError> {
        match self.call::<procs::ConnectSupportsFeature>(&ConnectSupportsFeatureArgs { feature: f })
        {
            Ok(r) => Ok(r.supported != 0),
            Err(ClientError::Remote(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The features agreed in the handshake.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The socket, e.g. to poll it next to a terminal.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// Calls procedure `P` and waits for its reply.
    pub fn call<P: RemoteProcedure>(&mut self, args: &P::Args) -> Result<P::Ret, ClientError> {
        let payload = self.call_raw(P::PROC, to_bytes(args))?;
        from_bytes(&payload).map_err(|source| ClientError::Decode {
            proc_: P::PROC,
            source,
        })
    }

    /// Sends a CALL with an encoded payload; returns the reply's payload.
    /// Returns the serial used through [`Self::last_serial`].
    pub fn call_raw(&mut self, p: Procedure, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let serial = self.serial;
        self.serial = self.serial.wrapping_add(1);
        let m = Message {
            header: Header::remote(p.number(), MessageType::Call, serial, MessageStatus::Ok),
            payload,
        };
        self.send(&m)?;
        loop {
            let reply = self.recv(None)?.ok_or(ClientError::Closed)?;
            let h = reply.header;
            if h.is_remote() && h.type_ == MessageType::Reply && h.serial == serial {
                if h.proc_ != p.number() {
                    return Err(ClientError::Protocol(format!(
                        "reply to serial {serial} is for procedure {}, not {p}",
                        h.proc_
                    )));
                }
                return match h.status {
                    MessageStatus::Ok => Ok(reply.payload),
                    MessageStatus::Error => {
                        let e: RemoteError = reply
                            .body()
                            .map_err(|source| ClientError::Decode { proc_: p, source })?;
                        Err(e.into())
                    }
                    MessageStatus::Continue => Err(ClientError::Protocol(
                        "reply with status CONTINUE".to_string(),
                    )),
                };
            }
            self.queue(reply)?;
        }
    }

    /// The serial of the most recent call (a console stream's serial).
    pub fn last_serial(&self) -> u32 {
        self.serial.wrapping_sub(1)
    }

    /// The next event or stream message, waiting up to `timeout` (forever
    /// when `None`); `Ok(None)` when the time ran out.
    pub fn next_async(&mut self, timeout: Option<Duration>) -> Result<Option<Async>, ClientError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(a) = self.pending.pop_front() {
                return Ok(Some(a));
            }
            match self.recv(deadline) {
                Ok(Some(m)) => self.queue(m)?,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a STREAM message for the stream opened by call `serial`.
    pub fn send_stream(
        &mut self,
        p: Procedure,
        serial: u32,
        status: MessageStatus,
        data: &[u8],
    ) -> Result<(), ClientError> {
        self.send(&Message {
            header: Header::remote(p.number(), MessageType::Stream, serial, status),
            payload: data.to_vec(),
        })
    }

    /// Ends the session as virsh does: UNREGISTER_CLOSE_CALLBACK if it was
    /// registered, then CONNECT_CLOSE.
    pub fn close(mut self) -> Result<(), ClientError> {
        if self.close_callback {
            self.call::<procs::ConnectUnregisterCloseCallback>(&())?;
        }
        self.call::<procs::ConnectClose>(&())?;
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    fn send(&mut self, m: &Message) -> Result<(), ClientError> {
        send_on(&self.writer, m)
    }

    /// Opens a domain's console (DOMAIN_OPEN_CONSOLE; `dev_name` NULL for
    /// the first one). Its output arrives as [`Async::Stream`] with the
    /// returned sender's serial; input goes through the sender.
    pub fn open_console(
        &mut self,
        dom: NonnullDomain,
        dev_name: Option<String>,
        flags: u32,
    ) -> Result<StreamSender, ClientError> {
        self.call::<procs::DomainOpenConsole>(&DomainOpenConsoleArgs {
            dom,
            dev_name,
            flags,
        })?;
        Ok(StreamSender {
            writer: Arc::clone(&self.writer),
            proc_: Procedure::DomainOpenConsole,
            serial: self.last_serial(),
        })
    }

    /// Files a message that is not the awaited reply: answers PINGs,
    /// decodes events, keeps stream data.
    fn queue(&mut self, m: Message) -> Result<(), ClientError> {
        let h = m.header;
        if let Some(k) = KeepaliveProc::of(&m) {
            if k == KeepaliveProc::Ping {
                self.send(&KeepaliveProc::Pong.message())?;
            }
            return Ok(());
        }
        // libvirtd answers stream data that raced a stream's close with a
        // bare dummy REPLY; such strays carry nothing to act on.
        if h.type_ == MessageType::Reply || !h.is_remote() {
            debug!(prog = h.prog, serial = h.serial, "ignoring stray message");
            return Ok(());
        }
        match h.type_ {
            MessageType::Message => match Procedure::from_i32(h.proc_) {
                Some(p) => {
                    let args = Args::decode(p, &m.payload)
                        .map_err(|source| ClientError::Decode { proc_: p, source })?;
                    self.pending.push_back(Async::Event(args));
                }
                None => debug!(proc_ = h.proc_, "ignoring unknown event"),
            },
            MessageType::Stream => self.pending.push_back(Async::Stream {
                serial: h.serial,
                status: h.status,
                data: m.payload,
            }),
            t => {
                return Err(ClientError::Protocol(format!(
                    "unexpected message type {t:?}"
                )))
            }
        }
        Ok(())
    }

    /// Reads until one whole message is buffered; `Ok(None)` when
    /// `deadline` passed first (partial data stays buffered for the next
    /// read), `Closed` at end of stream.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, ClientError> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(m) = self.frames.next_message()? {
                trace!(proc_ = m.header.proc_, serial = m.header.serial, "recv");
                return Ok(Some(m));
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => Some(t),
                    _ => return Ok(None),
                },
                None => None,
            };
            self.sock.set_read_timeout(timeout)?;
            match self.sock.read(&mut buf) {
                Ok(0) if self.frames.buffered() == 0 => return Err(ClientError::Closed),
                Ok(0) => return Err(FrameError::Truncated.into()),
                Ok(n) => self.frames.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Writes one whole message under the writer lock.
fn send_on(writer: &Mutex<UnixStream>, m: &Message) -> Result<(), ClientError> {
    trace!(proc_ = m.header.proc_, serial = m.header.serial, "send");
    let bytes = m.to_bytes()?;
    // A poisoned lock only means another sender panicked mid-write; the
    // socket itself is still usable or will report its own error.
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    w.write_all(&bytes)?;
    Ok(())
}

/// Largest data chunk per STREAM message: libvirt's
/// `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`, which every peer accepts.
pub const STREAM_CHUNK_MAX: usize = 256 * 1024 - 24;

/// Sends input into an open stream (a console) from any thread.
#[derive(Debug, Clone)]
pub struct StreamSender {
    writer: Arc<Mutex<UnixStream>>,
    proc_: Procedure,
    serial: u32,
}

impl StreamSender {
    /// The serial the stream's messages carry.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    fn message(&self, status: MessageStatus, data: &[u8]) -> Message {
        Message {
            header: Header::remote(
                self.proc_.number(),
                MessageType::Stream,
                self.serial,
                status,
            ),
            payload: data.to_vec(),
        }
    }

    /// Sends data (status CONTINUE), cut into chunks libvirt accepts.
    pub fn send(&self, data: &[u8]) -> Result<(), ClientError> {
        for chunk in data.chunks(STREAM_CHUNK_MAX) {
            send_on(&self.writer, &self.message(MessageStatus::Continue, chunk))?;
        }
        Ok(())
    }

    /// Closes the stream: an empty message with status OK.
    pub fn finish(&self) -> Result<(), ClientError> {
        send_on(&self.writer, &self.message(MessageStatus::Ok, &[]))
    }
}
