//! The server: listeners, the refresh thread, the clients' registry, the
//! password, and the events the monitor reports.
//!
//! Threads (see docs/vmm-threads.md): one accept thread per listening
//! socket, one refresh thread that asks the framebuffer what changed every
//! refresh interval and hands it to each client, and one thread per
//! client. A client's thread is the only one that writes to its socket,
//! from a bounded output queue, with non-blocking writes: a client that
//! stops reading holds only its own thread and its queue, and is
//! disconnected when the queue overflows. Client threads are started by
//! the server's own threads only (the accept thread, and the refresh
//! thread for clients handed over by descriptor), so a caller such as a
//! monitor thread never creates one: a confined caller need not be
//! allowed to.

use crate::client::{self, ClientShared, Wake};
use crate::framebuffer::Framebuffer;
use crate::input::InputSink;
use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, SocketFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// What a client's shared flag does (QEMU's `-vnc share=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharePolicy {
    /// A client asking for exclusive access disconnects the others, and
    /// shared clients are refused while it is connected (RFC 6143's
    /// suggestion; QEMU's default).
    #[default]
    AllowExclusive,
    /// Clients asking for exclusive access are refused.
    ForceShared,
    /// The flag is ignored: every client shares.
    Ignore,
}

/// What a thread of the server does, for [`Options::on_thread_start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// Accepts clients on a listening socket and starts their threads.
    Accept,
    /// Hands damage to the clients; starts the threads of clients added
    /// by descriptor.
    Refresh,
    /// Serves one client: its socket, its queue.
    Client,
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The shared-flag policy.
    pub share: SharePolicy,
    /// Clients must answer VNC's DES challenge (QEMU's `password=on`);
    /// until [`VncServer::set_password`] is called every answer fails.
    pub password_auth: bool,
    /// The desktop name clients show.
    pub name: String,
    /// How often the framebuffer is asked what changed.
    pub refresh: Duration,
    /// Clients at once; more are refused at accept.
    pub max_clients: usize,
    /// Time a client has to finish the handshake (version, security,
    /// ClientInit).
    pub handshake_limit: Duration,
    /// Run by every thread of the server before anything else (rvirt-vmm
    /// narrows the thread's seccomp filter to its role).
    pub on_thread_start: Option<fn(ThreadRole)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            share: SharePolicy::default(),
            password_auth: false,
            name: "rvirt".into(),
            // QEMU's GUI_REFRESH_INTERVAL_DEFAULT.
            refresh: Duration::from_millis(30),
            max_clients: 32,
            handshake_limit: Duration::from_secs(120),
            on_thread_start: None,
        }
    }
}

/// A socket address as QMP shows it (`VncBasicInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// The IP address, or "" for a unix socket.
    pub host: String,
    /// The port, or the unix socket's path.
    pub service: String,
    /// "ipv4", "ipv6" or "unix".
    pub family: &'static str,
}

impl AddrInfo {
    fn of(addr: Option<rustix::net::SocketAddrAny>) -> AddrInfo {
        use std::net::SocketAddr;
        let unknown = AddrInfo {
            host: String::new(),
            service: String::new(),
            family: "unix",
        };
        let Some(addr) = addr else { return unknown };
        match addr.address_family() {
            AddressFamily::INET | AddressFamily::INET6 => match SocketAddr::try_from(addr) {
                Ok(SocketAddr::V4(a)) => AddrInfo {
                    host: a.ip().to_string(),
                    service: a.port().to_string(),
                    family: "ipv4",
                },
                Ok(SocketAddr::V6(a)) => AddrInfo {
                    host: a.ip().to_string(),
                    service: a.port().to_string(),
                    family: "ipv6",
                },
                Err(_) => unknown,
            },
            AddressFamily::UNIX => {
                let path = rustix::net::SocketAddrUnix::try_from(addr)
                    .ok()
                    .and_then(|u| {
                        u.path_bytes()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                    })
                    .unwrap_or_default();
                AddrInfo {
                    service: path,
                    ..unknown
                }
            }
            _ => unknown,
        }
    }

    pub(crate) fn peer(fd: &OwnedFd) -> AddrInfo {
        AddrInfo::of(rustix::net::getpeername(fd).ok().flatten())
    }

    fn local(fd: &OwnedFd) -> AddrInfo {
        AddrInfo::of(rustix::net::getsockname(fd).ok())
    }
}

impl std::fmt::Display for AddrInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.family {
            "unix" => write!(f, "unix:{}", self.service),
            "ipv6" => write!(f, "[{}]:{}", self.host, self.service),
            _ => write!(f, "{}:{}", self.host, self.service),
        }
    }
}

/// What the server tells the monitor. `server` is the first listening
/// socket's address (none for a server that only takes clients by file
/// descriptor: QEMU then sends no events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A client connected (before authentication).
    Connected {
        /// The listener.
        server: Option<AddrInfo>,
        /// The client.
        client: AddrInfo,
    },
    /// A client finished the handshake.
    Initialized {
        /// The listener.
        server: Option<AddrInfo>,
        /// The client.
        client: AddrInfo,
    },
    /// A client is gone.
    Disconnected {
        /// The listener.
        server: Option<AddrInfo>,
        /// The client.
        client: AddrInfo,
    },
}

/// Receives the server's events (from its threads).
pub type EventSink = Box<dyn Fn(Event) + Send + Sync>;

/// Why [`VncServer::set_password`] refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("password authentication is not enabled")]
pub struct NoPasswordAuth;

pub(crate) struct Auth {
    pub password: Option<Vec<u8>>,
    /// `None`: never.
    pub expires: Option<SystemTime>,
}

/// A client handed over by descriptor, waiting for the refresh thread.
struct Adopt {
    fd: OwnedFd,
    skip_auth: bool,
    /// Dropped once the client is started (or refused).
    _done: mpsc::SyncSender<()>,
}

/// How long [`VncServer::add_client`] waits for the refresh thread to take
/// the client (it does at once unless the host is starved).
const ADOPT_LIMIT: Duration = Duration::from_secs(10);

pub(crate) struct Inner {
    pub fb: Arc<dyn Framebuffer>,
    pub input: Arc<dyn InputSink>,
    pub options: Options,
    pub auth: Mutex<Auth>,
    pub clients: Mutex<Vec<Arc<ClientShared>>>,
    listeners: Mutex<Vec<AddrInfo>>,
    events: EventSink,
    stop: AtomicBool,
    stop_wake: Wake,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Clients added by descriptor for the refresh thread to start; `None`
    /// once that thread is gone.
    adopt: Mutex<Option<Vec<Adopt>>>,
    adopt_wake: Wake,
}

/// Locks, tolerating a poisoned lock: the data are plain values a
/// panicking holder cannot leave half-written in a way that matters here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn emit(&self, make: impl FnOnce(Option<AddrInfo>) -> Event) {
        let server = lock(&self.listeners).first().cloned();
        (self.events)(make(server));
    }

    pub fn remove(&self, id: u64) {
        lock(&self.clients).retain(|c| c.id != id);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn spawn(
        self: &Arc<Self>,
        name: &str,
        role: ThreadRole,
        f: impl FnOnce() + Send + 'static,
    ) -> bool {
        let hook = self.options.on_thread_start;
        let body = move || {
            if let Some(h) = hook {
                h(role);
            }
            f()
        };
        match std::thread::Builder::new().name(name.into()).spawn(body) {
            Ok(handle) => {
                let mut threads = lock(&self.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
                true
            }
            Err(e) => {
                tracing::error!("vnc: cannot start thread {name}: {e}");
                false
            }
        }
    }

    fn start_client(self: &Arc<Self>, fd: OwnedFd, skip_auth: bool) {
        if self.stopping() {
            return;
        }
        let peer = AddrInfo::peer(&fd);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = match ClientShared::new(id, peer, fd) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!("vnc: client refused: {e}");
                return;
            }
        };
        {
            // Counted and added under one lock, so the limit holds.
            let mut clients = lock(&self.clients);
            if clients.len() >= self.options.max_clients {
                let max = self.options.max_clients;
                tracing::warn!(
                    "vnc: client {} refused: {max} clients connected",
                    shared.info
                );
                return;
            }
            clients.push(shared.clone());
        }
        let client = shared.info.clone();
        self.emit(|server| Event::Connected { server, client });
        let (inner, serving) = (self.clone(), shared.clone());
        let started = self.spawn(&format!("vnc-client-{id}"), ThreadRole::Client, move || {
            client::serve(inner, serving, skip_auth)
        });
        if !started {
            self.remove(id);
            let client = shared.info.clone();
            self.emit(|server| Event::Disconnected { server, client });
        }
    }

    fn accept_loop(self: Arc<Self>, listener: OwnedFd) {
        loop {
            let mut fds = [
                PollFd::new(&listener, PollFlags::IN),
                PollFd::new(&self.stop_wake, PollFlags::IN),
            ];
            if let Err(e) = rustix::event::poll(&mut fds, None) {
                if e == rustix::io::Errno::INTR {
                    continue;
                }
                tracing::error!("vnc: poll on listener: {e}");
                return;
            }
            if self.stopping() {
                return;
            }
            match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
                Ok(fd) => self.start_client(fd, false),
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {}
                Err(e) => {
                    // ECONNABORTED, EMFILE: drop this one, keep listening
                    // (but not in a busy loop).
                    tracing::warn!("vnc: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn refresh_loop(self: Arc<Self>) {
        let mut last_mode = self.fb.mode();
        let interval = rustix::event::Timespec::try_from(self.options.refresh).unwrap_or(
            rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 30_000_000,
            },
        );
        loop {
            let mut fds = [
                PollFd::new(&self.stop_wake, PollFlags::IN),
                PollFd::new(&self.adopt_wake, PollFlags::IN),
            ];
            let _ = rustix::event::poll(&mut fds, Some(&interval));
            if self.stopping() {
                // Callers waiting in add_client see their senders dropped.
                lock(&self.adopt).take();
                return;
            }
            if fds[1].revents().contains(PollFlags::IN) {
                self.adopt_wake.drain();
                let adopted = lock(&self.adopt).as_mut().map(std::mem::take);
                for a in adopted.into_iter().flatten() {
                    self.start_client(a.fd, a.skip_auth);
                }
            }
            let clients = lock(&self.clients).clone();
            if clients.is_empty() {
                continue;
            }
            let mut damage = self.fb.damage();
            let mode = self.fb.mode();
            if mode != last_mode {
                last_mode = mode;
                damage = vec![crate::Damage::All];
            }
            if damage.is_empty() {
                continue;
            }
            for c in clients {
                c.add_damage(&damage);
            }
        }
    }
}

/// An RFB server over one framebuffer and one input sink. Dropping it
/// disconnects every client and stops its threads.
pub struct VncServer {
    inner: Arc<Inner>,
}

impl VncServer {
    /// A server with no listener yet; starts the refresh thread.
    pub fn new(
        fb: Arc<dyn Framebuffer>,
        input: Arc<dyn InputSink>,
        options: Options,
        events: EventSink,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            fb,
            input,
            options,
            auth: Mutex::new(Auth {
                password: None,
                expires: None,
            }),
            clients: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            events,
            stop: AtomicBool::new(false),
            stop_wake: Wake::new()?,
            next_id: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
            adopt: Mutex::new(Some(Vec::new())),
            adopt_wake: Wake::new()?,
        });
        let refresh = inner.clone();
        if !inner.spawn("vnc-refresh", ThreadRole::Refresh, move || {
            refresh.refresh_loop()
        }) {
            return Err(std::io::Error::other("cannot start the refresh thread"));
        }
        Ok(Self { inner })
    }

    /// Serves clients connecting to `listener`, a listening stream socket
    /// (TCP or unix, bound by the caller or passed by a parent); returns
    /// its address.
    pub fn listen(&self, listener: OwnedFd) -> AddrInfo {
        let addr = AddrInfo::local(&listener);
        lock(&self.inner.listeners).push(addr.clone());
        let inner = self.inner.clone();
        self.inner.spawn("vnc-accept", ThreadRole::Accept, move || {
            inner.accept_loop(listener)
        });
        addr
    }

    /// Serves a client already connected on `fd` (QMP `add_client`);
    /// `skip_auth` offers it no authentication. The refresh thread starts
    /// it; this returns once it has (its Connected event sent, as QEMU
    /// sends VNC_CONNECTED before add_client's reply), or after 10 s.
    pub fn add_client(&self, fd: OwnedFd, skip_auth: bool) {
        let (done, started) = mpsc::sync_channel(1);
        {
            let mut adopt = lock(&self.inner.adopt);
            // None: the server is shutting down; the descriptor closes.
            let Some(queue) = adopt.as_mut() else { return };
            queue.push(Adopt {
                fd,
                skip_auth,
                _done: done,
            });
        }
        self.inner.adopt_wake.wake();
        if started.recv_timeout(ADOPT_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            tracing::warn!("vnc: the refresh thread did not take a client in time");
        }
    }

    /// Sets the password (its first 8 bytes count); only with
    /// [`Options::password_auth`].
    pub fn set_password(&self, password: &str) -> Result<(), NoPasswordAuth> {
        if !self.inner.options.password_auth {
            return Err(NoPasswordAuth);
        }
        lock(&self.inner.auth).password = Some(password.as_bytes().to_vec());
        Ok(())
    }

    /// From `at` on (`None`: never) every answer to the challenge fails.
    pub fn expire_password(&self, at: Option<SystemTime>) {
        lock(&self.inner.auth).expires = at;
    }

    /// The first listener's address, if the server listens.
    pub fn listening(&self) -> Option<AddrInfo> {
        lock(&self.inner.listeners).first().cloned()
    }

    /// The authentication clients get: "vnc" or "none".
    pub fn auth_name(&self) -> &'static str {
        if self.inner.options.password_auth {
            "vnc"
        } else {
            "none"
        }
    }

    /// The connected clients' addresses, handshake finished or not.
    pub fn clients(&self) -> Vec<AddrInfo> {
        lock(&self.inner.clients)
            .iter()
            .map(|c| c.info.clone())
            .collect()
    }

    /// Disconnects every client and stops the threads.
    pub fn shutdown(&self) {
        if self.inner.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.stop_wake.wake();
        for c in lock(&self.inner.clients).iter() {
            c.disconnect("server shut down");
        }
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for VncServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl AsFd for Wake {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
