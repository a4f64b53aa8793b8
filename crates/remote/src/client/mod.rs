//! A blocking client of libvirt's remote protocol that keeps several calls
//! in flight on one connection.
//!
//! One reader thread per connection reads every message and files it:
//! a REPLY goes to the call with its serial, events and stream messages
//! queue until someone takes them ([`Client::next_async`],
//! [`Client::next_event`], [`Client::next_stream`]), and a keepalive PING
//! is answered at once, whatever the callers are doing (an editor may be
//! open for an hour). Callers on any thread send whole messages under one
//! writer lock and wait for their own replies, so calls are pipelined
//! ([`Client::start`], [`Client::call_many`]) or made one at a time
//! ([`Client::call`]) on the same connection.
//!
//! Every wait ends: with its answer, at its deadline when it has one, or
//! when the connection ends, which fails every waiter with the reason (the
//! daemon hung up, the byte stream broke, or, with client keepalive as
//! virsh has it, the daemon was silent for `interval * (count + 1)`).

mod conn;

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::debug;

use crate::calls::{ConnectOpenArgs, ConnectSupportsFeatureArgs, DomainOpenConsoleArgs};
use crate::consts::{feature, REMOTE_AUTH_NONE};
use crate::error::RemoteError;
use crate::frame::FrameError;
use crate::message::{Header, Message, MessageStatus, MessageType};
use crate::procedures::{procs, Args, Procedure, RemoteProcedure};
use crate::types::NonnullDomain;
use crate::uri::{RemoteUri, UriError};
use crate::xdr::{from_bytes, to_bytes, XdrError};
use conn::Shared;

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
    /// The connection ended for this reason while the call was in flight
    /// (or before it was made); every waiter gets the same reason.
    #[error(transparent)]
    Lost(Arc<ClientError>),
    /// No reply within the time the caller gave.
    #[error("no reply to {proc_} within {after:?}")]
    TimedOut { proc_: Procedure, after: Duration },
    /// The daemon broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon requires an authentication rvirsh does not speak.
    #[error("authentication failed: no supported authentication method")]
    Auth,
}

impl ClientError {
    /// The daemon's error, when the daemon answered with one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ClientError::Remote(e) => Some(e),
            _ => None,
        }
    }
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
    /// a stream error (status ERROR, payload a `remote_error`: see
    /// [`Async::stream_error`]).
    Stream {
        serial: u32,
        status: MessageStatus,
        data: Vec<u8>,
    },
}

impl Async {
    /// The error a stream message with status ERROR carries.
    pub fn stream_error(&self) -> Option<Result<RemoteError, XdrError>> {
        match self {
            Async::Stream {
                status: MessageStatus::Error,
                data,
                ..
            } => Some(from_bytes(data)),
            _ => None,
        }
    }
}

/// Calls in flight at once in [`Client::call_many`]: enough to hide the
/// round trip, bounded so the daemon never queues an unbounded backlog.
pub const WINDOW: usize = 256;

/// Choices for the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Ask for keepalive (feature 10) as virsh does: a daemon that says
    /// yes PINGs an idle client, and the reader thread answers.
    pub ask_keepalive: bool,
    /// Client-side keepalive, once the daemon agreed to feature 10: after
    /// this long without a message from the daemon the client PINGs it,
    /// and after `ping_count` unanswered PINGs the connection ends (virsh's
    /// `virConnectSetKeepAlive(conn, 5, 6)`). `None`: never PING.
    pub ping_interval: Option<Duration>,
    /// See `ping_interval`.
    pub ping_count: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ask_keepalive: true,
            ping_interval: Some(Duration::from_secs(5)),
            ping_count: 6,
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

/// A connection to rvirtd (or libvirtd). Every method takes `&self`:
/// threads may share one client, each waiting for its own replies.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    close_callback: bool,
    features: Features,
}

impl Client {
    /// Connects to the socket `uri` names and opens it.
    pub fn connect(uri: &RemoteUri) -> Result<Self, ClientError> {
        let path = uri.socket_path_from_env();
        Self::connect_path(&path, &uri.open_name())
    }

    /// Connects to `path` and opens the connection named `name`.
    pub fn connect_path(path: &Path, name: &str) -> Result<Self, ClientError> {
        Self::connect_path_with(path, name, &ClientOptions::default())
    }

    /// [`Self::connect_path`] with options.
    pub fn connect_path_with(
        path: &Path,
        name: &str,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let sock = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Self::handshake_with(sock, name, opts)
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
        let shared = Arc::new(Shared::new(&sock, opts.ping_interval)?);
        let reader = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("remote-reader".into())
                .spawn(move || conn::run_reader(shared, sock))?
        };
        // From here on, dropping `c` stops the reader.
        let mut c = Client {
            shared,
            reader: Some(reader),
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
        if let (true, Some(interval)) = (c.features.keepalive, opts.ping_interval) {
            c.shared.start_keepalive(interval, opts.ping_count);
        }
        debug!(name, features = ?c.features, "connection open");
        Ok(c)
    }

    /// Asks CONNECT_SUPPORTS_FEATURE; an error reply counts as "no", as
    /// virsh treats it.
    fn supports(&self, f: i32) -> Result<bool, ClientError> {
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

    /// Calls procedure `P` and waits for its reply (or the end of the
    /// connection).
    pub fn call<P: RemoteProcedure>(&self, args: &P::Args) -> Result<P::Ret, ClientError> {
        self.start::<P>(args)?.wait()
    }

    /// Sends a CALL of procedure `P` and returns at once; the reply is
    /// collected through the returned handle, and dropped if the handle
    /// is dropped first.
    pub fn start<P: RemoteProcedure>(&self, args: &P::Args) -> Result<Pending<'_, P>, ClientError> {
        let serial = self.start_raw(P::PROC, to_bytes(args))?;
        Ok(Pending {
            client: self,
            serial,
            _proc: PhantomData,
        })
    }

    /// Calls `P` once per argument, with up to [`WINDOW`] calls in flight;
    /// one result per argument, in order. An error reply fails only its
    /// own call; a broken connection fails them all.
    pub fn call_many<P: RemoteProcedure>(
        &self,
        args: &[P::Args],
    ) -> Result<Vec<Result<P::Ret, RemoteError>>, ClientError> {
        let mut results = Vec::with_capacity(args.len());
        let mut in_flight = VecDeque::with_capacity(WINDOW.min(args.len()));
        let mut next = args.iter();
        loop {
            while in_flight.len() < WINDOW {
                match next.next() {
                    Some(a) => in_flight.push_back(self.start::<P>(a)?),
                    None => break,
                }
            }
            let Some(p) = in_flight.pop_front() else {
                return Ok(results);
            };
            match p.wait() {
                Ok(r) => results.push(Ok(r)),
                Err(ClientError::Remote(e)) => results.push(Err(*e)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls procedure `p` with an encoded payload; returns the reply's
    /// payload.
    pub fn call_raw(&self, p: Procedure, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let serial = self.start_raw(p, payload)?;
        let reply = self.shared.reply(serial, None);
        // `reply` only returns `Ok(None)` at a deadline, and there is none.
        reply.and_then(|r| r.ok_or(ClientError::Closed))
    }

    fn start_raw(&self, p: Procedure, payload: Vec<u8>) -> Result<u32, ClientError> {
        let serial = self.shared.register(p)?;
        let m = Message {
            header: Header::remote(p.number(), MessageType::Call, serial, MessageStatus::Ok),
            payload,
        };
        if let Err(e) = self.shared.send(&m) {
            self.shared.forget(serial);
            return Err(e);
        }
        Ok(serial)
    }

    /// The next event or stream message, waiting up to `timeout` (forever
    /// when `None`, until the connection ends); `Ok(None)` when the time
    /// ran out.
    pub fn next_async(&self, timeout: Option<Duration>) -> Result<Option<Async>, ClientError> {
        self.shared.next_async(|_| true, deadline(timeout))
    }

    /// The next event, leaving stream messages queued.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<Args>, ClientError> {
        let a = self
            .shared
            .next_async(|a| matches!(a, Async::Event(_)), deadline(timeout))?;
        Ok(a.and_then(|a| match a {
            Async::Event(e) => Some(e),
            Async::Stream { .. } => None,
        }))
    }

    /// The next message of the stream opened by call `serial`, leaving
    /// events and other streams queued.
    pub fn next_stream(
        &self,
        serial: u32,
        timeout: Option<Duration>,
    ) -> Result<Option<Async>, ClientError> {
        self.shared.next_async(
            |a| matches!(a, Async::Stream { serial: s, .. } if *s == serial),
            deadline(timeout),
        )
    }

    /// Calls a procedure that opens a stream (a console, a volume upload
    /// or download). Stream messages from the daemon, even those that
    /// arrive before the reply, are read with [`Self::next_stream`] and
    /// the sender's serial; data goes out through the sender.
    pub fn open_stream<P: RemoteProcedure>(
        &self,
        args: &P::Args,
    ) -> Result<(P::Ret, StreamSender), ClientError> {
        let pending = self.start::<P>(args)?;
        let serial = pending.serial();
        let ret = pending.wait()?;
        Ok((
            ret,
            StreamSender {
                shared: Arc::clone(&self.shared),
                proc_: P::PROC,
                serial,
            },
        ))
    }

    /// Opens a domain's console (DOMAIN_OPEN_CONSOLE; `dev_name` NULL for
    /// the first one).
    pub fn open_console(
        &self,
        dom: NonnullDomain,
        dev_name: Option<String>,
        flags: u32,
    ) -> Result<StreamSender, ClientError> {
        let args = DomainOpenConsoleArgs {
            dom,
            dev_name,
            flags,
        };
        Ok(self.open_stream::<procs::DomainOpenConsole>(&args)?.1)
    }

    /// Ends the session as virsh does: UNREGISTER_CLOSE_CALLBACK if it was
    /// registered, then CONNECT_CLOSE.
    pub fn close(self) -> Result<(), ClientError> {
        if self.close_callback {
            self.call::<procs::ConnectUnregisterCloseCallback>(&())?;
        }
        self.call::<procs::ConnectClose>(&())?;
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.shutdown();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// A call in flight; [`Pending::wait`] collects its reply.
#[derive(Debug)]
#[must_use = "a call's reply is dropped with its handle"]
pub struct Pending<'c, P: RemoteProcedure> {
    client: &'c Client,
    serial: u32,
    _proc: PhantomData<fn() -> P>,
}

impl<P: RemoteProcedure> Pending<'_, P> {
    /// The call's serial (a stream's messages carry it).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Waits for the reply, or the end of the connection.
    pub fn wait(self) -> Result<P::Ret, ClientError> {
        self.wait_until(None)
    }

    /// Waits for the reply up to `timeout`; after that the call fails
    /// with [`ClientError::TimedOut`] and its reply is dropped when it comes.
    pub fn wait_timeout(self, timeout: Duration) -> Result<P::Ret, ClientError> {
        self.wait_until(Some(timeout))
    }

    fn wait_until(self, timeout: Option<Duration>) -> Result<P::Ret, ClientError> {
        let payload = self
            .client
            .shared
            .reply(self.serial, deadline(timeout))?
            .ok_or(ClientError::TimedOut {
                proc_: P::PROC,
                after: timeout.unwrap_or_default(),
            })?;
        from_bytes(&payload).map_err(|source| ClientError::Decode {
            proc_: P::PROC,
            source,
        })
    }
}

impl<P: RemoteProcedure> Drop for Pending<'_, P> {
    fn drop(&mut self) {
        // After a collected reply this finds nothing; otherwise a late
        // reply is dropped instead of kept forever.
        self.client.shared.forget(self.serial);
    }
}

/// Largest data chunk per STREAM message: libvirt's
/// `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`, which every peer accepts.
pub const STREAM_CHUNK_MAX: usize = 256 * 1024 - 24;

/// Sends into an open stream (a console) from any thread.
#[derive(Debug, Clone)]
pub struct StreamSender {
    shared: Arc<Shared>,
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
            self.shared
                .send(&self.message(MessageStatus::Continue, chunk))?;
        }
        Ok(())
    }

    /// Closes the stream: an empty message with status OK.
    pub fn finish(&self) -> Result<(), ClientError> {
        self.shared.send(&self.message(MessageStatus::Ok, &[]))
    }
}
