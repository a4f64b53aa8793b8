//! The graphical console: rvirt-vnc's server on the listener `-vnc` names,
//! its events on the QMP bus, and what the monitor asks of it.
//!
//! The server shows the display device's screen (`rvirt_display`); with
//! none, a blank 640x480 screen, as QEMU serves its "Guest has not
//! initialized the display" screen (without QEMU's text).

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rvirt_qmp::{Event as QmpEvent, EventBus, QmpError, VncBasicInfo, VncInfo, VncServerInfo};
use rvirt_vmm_config::{VncConfig, VncListen, VncShare};
use rvirt_vnc::{
    AddrInfo, BlankFramebuffer, Event, Framebuffer, ImageFormat, InputSink, Options, Screenshot,
    SharePolicy, VncServer,
};

/// Why `-vnc` could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("cannot listen on {0}")]
    Listen(String, #[source] std::io::Error),
    #[error("no free port from {0} to {1}")]
    NoFreePort(u16, u16, #[source] std::io::Error),
    #[error("cannot start the VNC server")]
    Start(#[source] std::io::Error),
}

/// The VNC server and what QMP reports of it.
pub(crate) struct Display {
    server: VncServer,
    auth: &'static str,
    /// What the server shows, for `screendump`.
    fb: Arc<dyn Framebuffer>,
}

fn basic(a: &AddrInfo) -> VncBasicInfo {
    VncBasicInfo {
        host: a.host.clone(),
        service: a.service.clone(),
        family: a.family.into(),
        websocket: false,
    }
}

fn listener(listen: &VncListen) -> Result<Option<OwnedFd>, DisplayError> {
    match listen {
        VncListen::None => Ok(None),
        VncListen::Unix(path) => {
            // As QEMU: a socket file left by an earlier run is replaced.
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path)
                .map_err(|e| DisplayError::Listen(format!("unix:{}", path.display()), e))?;
            Ok(Some(l.into()))
        }
        VncListen::Tcp { host, port, to } => {
            // An empty host is every IPv4 address.
            let host = if host.is_empty() {
                "0.0.0.0"
            } else {
                host.as_str()
            };
            let last = to.unwrap_or(*port);
            let mut err = None;
            for p in *port..=last {
                match TcpListener::bind((host, p)) {
                    Ok(l) => return Ok(Some(l.into())),
                    Err(e) => err = Some(e),
                }
            }
            let e = err.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into());
            match to {
                Some(_) => Err(DisplayError::NoFreePort(*port, last, e)),
                None => Err(DisplayError::Listen(format!("{host}:{port}"), e)),
            }
        }
    }
}

impl Display {
    /// Listens where `cfg` says and starts the server over `screen` (a
    /// blank one without); its events go to `bus` (only with a listener,
    /// as QEMU's), its clients' keys and pointer to `input`.
    pub(crate) fn start(
        cfg: &VncConfig,
        name: Option<&str>,
        screen: Option<Arc<dyn Framebuffer>>,
        bus: EventBus,
        input: Arc<dyn InputSink>,
    ) -> Result<Arc<Self>, DisplayError> {
        let listen = listener(&cfg.listen)?;
        let auth = if cfg.password { "vnc" } else { "none" };
        let options = Options {
            share: match cfg.share {
                VncShare::AllowExclusive => SharePolicy::AllowExclusive,
                VncShare::ForceShared => SharePolicy::ForceShared,
                VncShare::Ignore => SharePolicy::Ignore,
            },
            password_auth: cfg.password,
            name: name.map_or_else(|| "rvirt".into(), |n| format!("rvirt ({n})")),
            max_clients: cfg.connections as usize,
            on_thread_start: Some(crate::sandbox::enter_vnc),
            ..Options::default()
        };
        let server_info = move |a: AddrInfo| VncServerInfo {
            addr: basic(&a),
            auth: Some(auth.into()),
        };
        let events = Box::new(move |e: Event| {
            let event = match e {
                Event::Connected {
                    server: Some(s),
                    client,
                } => QmpEvent::VncConnected {
                    server: server_info(s),
                    client: basic(&client),
                },
                Event::Initialized {
                    server: Some(s),
                    client,
                } => QmpEvent::VncInitialized {
                    server: server_info(s),
                    client: basic(&client),
                },
                Event::Disconnected {
                    server: Some(s),
                    client,
                } => QmpEvent::VncDisconnected {
                    server: server_info(s),
                    client: basic(&client),
                },
                _ => return,
            };
            bus.post(event);
        });
        let fb = screen.unwrap_or_else(|| Arc::new(BlankFramebuffer::new(640, 480)));
        let server =
            VncServer::new(fb.clone(), input, options, events).map_err(DisplayError::Start)?;
        if let Some(fd) = listen {
            let addr = server.listen(fd);
            tracing::info!("vnc: listening on {addr}");
        }
        Ok(Arc::new(Self { server, auth, fb }))
    }

    /// `query-vnc`.
    pub(crate) fn info(&self) -> VncInfo {
        let Some(l) = self.server.listening() else {
            return VncInfo::default();
        };
        VncInfo {
            enabled: true,
            host: Some(l.host),
            family: Some(l.family.into()),
            service: Some(l.service),
            auth: Some(self.auth.into()),
            clients: Some(self.server.clients().iter().map(basic).collect()),
        }
    }

    pub(crate) fn set_password(&self, password: &str) -> Result<(), QmpError> {
        self.server
            .set_password(password)
            .map_err(|e| QmpError::generic(e.to_string()))
    }

    pub(crate) fn expire_password(&self, at: Option<u64>) {
        self.server
            .expire_password(at.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)));
    }

    /// `screendump`: the screen as it is now, in `format`, into `out`.
    pub(crate) fn screendump(
        &self,
        format: ImageFormat,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        // Encoded in memory first, so the file gets one write of a whole
        // picture.
        let mut image = Vec::new();
        Screenshot::capture(self.fb.as_ref()).write(format, &mut image)?;
        out.write_all(&image)?;
        out.flush()
    }

    /// `screendump` to a path: written beside it and renamed over it, so
    /// a reader never sees half a picture (tempfile's file is 0600).
    pub(crate) fn screendump_to(&self, format: ImageFormat, path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        self.screendump(format, tmp.as_file_mut())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    pub(crate) fn add_client(&self, fd: OwnedFd, skipauth: bool) {
        self.server.add_client(fd, skipauth);
    }
}
