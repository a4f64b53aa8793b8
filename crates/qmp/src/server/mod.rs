//! The monitor server: one thread per monitor endpoint, each serving one
//! client at a time.
//!
//! Threading: std threads with blocking-free I/O driven by `poll(2)`. A
//! monitor thread owns its listener and its current client and runs that
//! client's commands itself (so `stop` waiting for the vCPUs to pause blocks
//! only that monitor). Events reach it through its client's outbox and an
//! eventfd. This keeps all monitor work off the vCPU threads and off the
//! VMM's device event loop, and needs no async runtime (mio or tokio would
//! add a dependency for at most a handful of descriptors per thread).

mod connection;
mod listener;
mod poll;
mod stream;
pub(crate) mod wake;

use crate::backend::MonitorBackend;
use crate::bus::EventBus;
use listener::SocketFile;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use stream::Stream;
use wake::Wake;

/// Errors starting a monitor.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket could not be bound.
    #[error("cannot listen on {path}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path exists and is not a socket; we do not delete it.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// Setting up a descriptor or a thread failed.
    #[error("cannot start the monitor")]
    Setup(#[source] io::Error),
}

/// Limits applied to every client.
#[derive(Clone, Copy, Debug)]
pub struct MonitorConfig {
    /// Largest accepted message; a client that sends more is disconnected.
    pub max_message: usize,
    /// Most bytes queued for one client; a client whose queue overflows
    /// (it does not read while events keep coming) is disconnected.
    pub max_outbox: usize,
    /// The monitor stops reading commands while this many bytes wait to be
    /// written, so replies alone cannot overflow the queue.
    pub read_watermark: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            max_message: crate::json::MAX_MESSAGE_SIZE,
            max_outbox: 1 << 20,
            read_watermark: 64 * 1024,
        }
    }
}

/// What every monitor thread shares.
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn MonitorBackend>,
    pub(crate) bus: EventBus,
    pub(crate) config: MonitorConfig,
    /// Written once on shutdown and never read, so it stays readable and
    /// every thread polling it wakes.
    shutdown: Wake,
}

impl Shared {
    pub(crate) fn shutdown_fd(&self) -> BorrowedFd<'_> {
        self.shutdown.as_fd()
    }
}

/// The set of QMP monitors of one VMM.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use rvirt_qmp::{EventBus, MonitorServer, MonitorBackend};
/// # fn f(vm: Arc<dyn MonitorBackend>) -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::new();
/// let mut monitors = MonitorServer::new(vm, bus.clone())?;
/// monitors.listen_unix("/run/vm1/qmp.sock", "compat_monitor0")?; // -qmp unix:...,server=on,wait=off
/// monitors.serve_stdio("compat_monitor1")?;                      // -qmp stdio
/// bus.post(rvirt_qmp::Event::Resume);
/// monitors.shutdown(); // flushes replies, joins threads, removes socket files
/// # Ok(()) }
/// ```
pub struct MonitorServer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    sockets: Vec<SocketFile>,
    /// Run first on every monitor thread (the VMM's seccomp filter).
    on_thread_start: Option<fn()>,
}

impl MonitorServer {
    /// A server with default limits and no monitors yet.
    pub fn new(backend: Arc<dyn MonitorBackend>, bus: EventBus) -> Result<Self, ServerError> {
        Self::with_config(backend, bus, MonitorConfig::default())
    }

    /// A server with the given limits.
    pub fn with_config(
        backend: Arc<dyn MonitorBackend>,
        bus: EventBus,
        config: MonitorConfig,
    ) -> Result<Self, ServerError> {
        let shutdown = Wake::new().map_err(ServerError::Setup)?;
        Ok(Self {
            shared: Arc::new(Shared {
                backend,
                bus,
                config,
                shutdown,
            }),
            threads: Vec::new(),
            sockets: Vec::new(),
            on_thread_start: None,
        })
    }

    /// Has every monitor thread started from now on run `hook` first (the
    /// VMM confines its threads by kind this way).
    pub fn on_thread_start(&mut self, hook: fn()) {
        self.on_thread_start = Some(hook);
    }

    /// `-qmp unix:PATH,server=on,wait=off` and `-chardev socket,path=PATH,
    /// server=on,wait=off`: listens on `path` (replacing a stale socket
    /// file) and removes the file on shutdown. `label` names the monitor in
    /// logs and thread names.
    pub fn listen_unix(&mut self, path: impl AsRef<Path>, label: &str) -> Result<(), ServerError> {
        let (listener, file) = listener::bind(path.as_ref())?;
        self.serve_listener(listener, label)?;
        self.sockets.push(file);
        Ok(())
    }

    /// `server=on,wait=on` (QEMU's default when `wait` is not given):
    /// like [`MonitorServer::listen_unix`], but first blocks the caller
    /// until a client connects, so the VMM starts the guest only once its
    /// manager is attached.
    pub fn listen_unix_and_wait(
        &mut self,
        path: impl AsRef<Path>,
        label: &str,
    ) -> Result<(), ServerError> {
        let path = path.as_ref();
        let (listener, file) = listener::bind(path)?;
        self.sockets.push(file);
        tracing::info!(monitor = label, path = %path.display(), "waiting for a QMP client");
        let (first, _) = listener.accept().map_err(ServerError::Setup)?;
        self.spawn_accept(listener, Some(first), label)
    }

    /// Serves clients of a socket the VMM already listens on (for instance
    /// one passed by the management daemon). The socket file, if any, is
    /// the caller's to remove.
    pub fn serve_listener(
        &mut self,
        listener: UnixListener,
        label: &str,
    ) -> Result<(), ServerError> {
        self.spawn_accept(listener, None, label)
    }

    fn spawn_accept(
        &mut self,
        listener: UnixListener,
        first: Option<UnixStream>,
        label: &str,
    ) -> Result<(), ServerError> {
        let shared = self.shared.clone();
        let name = label.to_string();
        self.spawn(label, move || {
            listener::accept_loop(listener, first, &shared, &name)
        })
    }

    /// `-qmp stdio`: one session on the process's stdin/stdout. The
    /// descriptors are duplicated, but note they become nonblocking.
    pub fn serve_stdio(&mut self, label: &str) -> Result<(), ServerError> {
        let input = std::io::stdin().as_fd_owned().map_err(ServerError::Setup)?;
        let output = std::io::stdout()
            .as_fd_owned()
            .map_err(ServerError::Setup)?;
        self.serve_fds(input, output, label)
    }

    /// One session over an already connected (input, output) pair, e.g. a
    /// connected socket twice or a pipe pair. Ends when the input closes.
    pub fn serve_fds(
        &mut self,
        input: OwnedFd,
        output: OwnedFd,
        label: &str,
    ) -> Result<(), ServerError> {
        let stream = Stream::pair(input, output).map_err(ServerError::Setup)?;
        let shared = self.shared.clone();
        let name = label.to_string();
        self.spawn(label, move || {
            connection::serve(&stream, &shared, &name);
        })
    }

    /// The socket files this server created and will remove.
    pub fn socket_paths(&self) -> Vec<PathBuf> {
        self.sockets.iter().map(|s| s.path.clone()).collect()
    }

    /// The bus events are posted to.
    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Stops every monitor: each flushes what it queued (at most a second),
    /// its thread is joined and its socket file removed. Call it from the
    /// VMM's main thread, never from a [`MonitorBackend`] method.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        if let Err(e) = self.shared.shutdown.write(1) {
            tracing::error!("cannot signal the monitors to stop: {e}");
            return;
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a monitor thread panicked");
            }
        }
        self.sockets.clear();
    }

    fn spawn(&mut self, label: &str, f: impl FnOnce() + Send + 'static) -> Result<(), ServerError> {
        let hook = self.on_thread_start;
        let handle = std::thread::Builder::new()
            .name(format!("qmp-{label}"))
            .spawn(move || {
                if let Some(h) = hook {
                    h();
                }
                f()
            })
            .map_err(ServerError::Setup)?;
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for MonitorServer {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

trait DupFd {
    fn as_fd_owned(&self) -> io::Result<OwnedFd>;
}

impl<T: std::os::fd::AsFd> DupFd for T {
    fn as_fd_owned(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}
