//! The host side of character devices: where a serial port's bytes go and
//! where its input comes from. System calls go through rustix (poll, send,
//! ptys, termios, fcntl), which wraps them safely.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::SendFlags;
use rvirt_vmm_config::ChardevBackend;

/// Errors opening a character device backend.
#[derive(Debug, thiserror::Error)]
pub enum ChardevError {
    #[error("could not open '{path}'")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not create a pseudo-terminal")]
    Pty(#[source] io::Error),
    #[error("could not listen on '{path}'")]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("file descriptor {0} is not open")]
    BadFd(i32),
}

/// The connected client of a socket chardev, if any.
type Client = Arc<Mutex<Option<UnixStream>>>;

/// An open character device backend.
pub struct Chardev {
    label: String,
    kind: Kind,
}

enum Kind {
    Stdio,
    File(File),
    Pty {
        master: File,
        name: String,
    },
    Socket {
        path: PathBuf,
        client: Client,
        listener: Arc<UnixListener>,
    },
    Null,
}

impl Chardev {
    /// Opens `backend` for the frontend `label` (such as `serial0`).
    pub fn open(label: &str, backend: &ChardevBackend) -> Result<Self, ChardevError> {
        let kind = match backend {
            ChardevBackend::Stdio => Kind::Stdio,
            ChardevBackend::Null => Kind::Null,
            ChardevBackend::File { path, append } => {
                let f = crate::fdset::open(path, false, true)
                    .unwrap_or_else(|| {
                        OpenOptions::new()
                            .create(true)
                            .write(true)
                            .append(*append)
                            .truncate(!*append)
                            .open(path)
                    })
                    .map_err(|source| ChardevError::Open {
                        path: path.clone(),
                        source,
                    })?;
                Kind::File(f)
            }
            ChardevBackend::Pty => {
                let (master, name) = open_pty().map_err(ChardevError::Pty)?;
                // What QEMU prints, so scripts (and libvirt) find the pty.
                crate::say(format_args!(
                    "char device redirected to {name} (label {label})"
                ));
                Kind::Pty { master, name }
            }
            ChardevBackend::Socket { path, wait, .. } => {
                let listener = listen(path)?;
                let client: Client = Arc::new(Mutex::new(None));
                if *wait {
                    // server=on,wait=on: block until the first client, as
                    // QEMU does before starting the guest.
                    crate::say(format_args!(
                        "rvirt-vmm: waiting for connection on: unix:{}",
                        path.display()
                    ));
                    if let Ok((s, _)) = listener.accept() {
                        *client.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
                    }
                }
                Kind::Socket {
                    path: path.clone(),
                    client,
                    listener: Arc::new(listener),
                }
            }
            ChardevBackend::Fd(fd) => {
                // The parent (libvirt-style) passed a listening socket.
                let listener = adopt_listener(*fd).ok_or(ChardevError::BadFd(*fd))?;
                Kind::Socket {
                    path: PathBuf::new(),
                    client: Arc::new(Mutex::new(None)),
                    listener: Arc::new(listener),
                }
            }
        };
        Ok(Chardev {
            label: label.to_string(),
            kind,
        })
    }

    /// The pty's name, for `query-chardev` and the domain XML.
    pub fn pty_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pty { name, .. } => Some(name),
            _ => None,
        }
    }

    /// QEMU's `filename` for `query-chardev`.
    pub fn filename(&self) -> String {
        match &self.kind {
            Kind::Stdio => "stdio".into(),
            Kind::File(_) => "file".into(),
            Kind::Pty { name, .. } => format!("pty:{name}"),
            Kind::Socket { path, .. } => format!("unix:{},server=on", path.display()),
            Kind::Null => "null".into(),
        }
    }

    /// The label of the frontend.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A writer for the guest's output. Writes never block the guest for
    /// long: a socket with no client drops the bytes, as QEMU does.
    pub fn writer(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match &self.kind {
            Kind::Stdio => Box::new(FdWriter(dup(io::stdout())?)),
            Kind::File(f) => Box::new(f.try_clone()?),
            Kind::Pty { master, .. } => Box::new(PtyWriter {
                master: master.try_clone()?,
                stalled: false,
            }),
            Kind::Socket { client, .. } => Box::new(SocketWriter {
                client: client.clone(),
                stalled: false,
            }),
            Kind::Null => Box::new(io::sink()),
        })
    }

    /// Starts a thread that feeds input bytes to `deliver`, which returns
    /// how many it accepted (the rest are offered again). Backends without
    /// input start nothing.
    pub fn spawn_input<F>(&self, deliver: F) -> io::Result<()>
    where
        F: FnMut(&[u8]) -> usize + Send + 'static,
    {
        let name = format!("chardev {}", self.label);
        match &self.kind {
            Kind::Stdio => {
                let stdin = File::from(dup(io::stdin())?);
                spawn(name, move || pump(stdin, deliver))
            }
            Kind::Pty { master, .. } => {
                let m = master.try_clone()?;
                spawn(name, move || pump(Waiting(m), deliver))
            }
            Kind::Socket {
                client, listener, ..
            } => {
                let (client, listener) = (client.clone(), listener.clone());
                spawn(name, move || serve(listener, client, deliver))
            }
            Kind::File(_) | Kind::Null => Ok(()),
        }
    }
}

impl Drop for Chardev {
    fn drop(&mut self) {
        if let Kind::Socket { path, .. } = &self.kind {
            if !path.as_os_str().is_empty() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Takes ownership of a listening socket the parent passed as descriptor
/// `fd` (`fd=N` in QEMU's options); `None` if no such descriptor is open.
pub(crate) fn adopt_listener(fd: i32) -> Option<UnixListener> {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process to own; nothing else in it uses that number.
    Some(unsafe { UnixListener::from_raw_fd(fd) })
}

fn spawn<F: FnOnce() + Send + 'static>(name: String, f: F) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            crate::sandbox::enter(crate::sandbox::Kind::Chardev);
            f()
        })
        .map(|_| ())
}

/// A close-on-exec duplicate above the standard descriptors.
fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// Writes straight to a descriptor, unbuffered, so the guest's bytes appear
/// as they are written (std's stdout is line-buffered).
struct FdWriter(OwnedFd);

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::io::write(&self.0, buf)?)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How long output waits in all for a peer that is connected but does not
/// read, before the bytes are dropped: a stalled client must not stall the
/// guest (the serial port writes on a vCPU thread, virtio-console on the
/// device loop). After a drop, writes do not wait again until one gets
/// through, so a peer that never reads costs one wait, not one per byte.
const STALL_LIMIT: Duration = Duration::from_millis(100);

/// Writes `buf` with `try_write` (one non-blocking attempt), waiting for
/// the descriptor to take more while the peer reads, for at most
/// [`STALL_LIMIT`]. What does not fit is dropped, as QEMU drops output no
/// one takes.
fn write_or_drop(
    fd: BorrowedFd<'_>,
    mut buf: &[u8],
    stalled: &mut bool,
    mut try_write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let deadline = Instant::now() + STALL_LIMIT;
    while !buf.is_empty() {
        match try_write(buf) {
            Ok(n) => {
                *stalled = false;
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if *stalled || left.is_zero() || !wait_writable(fd, left) {
                    *stalled = true;
                    tracing::debug!(dropped = buf.len(), "chardev peer does not read");
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `fd` can take bytes (or `None`: for ever).
fn wait(fd: BorrowedFd<'_>, flags: PollFlags, limit: Option<Duration>) -> bool {
    let mut p = [PollFd::from_borrowed_fd(fd, flags)];
    let timeout = limit.and_then(|l| Timespec::try_from(l.max(Duration::from_millis(1))).ok());
    rustix::event::poll(&mut p, timeout.as_ref()).is_ok_and(|n| n > 0)
}

/// Waits until `fd` can take bytes, at most `limit`.
fn wait_writable(fd: BorrowedFd<'_>, limit: Duration) -> bool {
    wait(fd, PollFlags::OUT, Some(limit))
}

/// The guest's output to a pty master (non-blocking: nobody may be reading
/// the slave).
struct PtyWriter {
    master: File,
    stalled: bool,
}

impl Write for PtyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut master = &self.master;
        let fd = self.master.as_fd();
        match write_or_drop(fd, buf, &mut self.stalled, |b| master.write(b)) {
            // No slave open: the bytes go nowhere, as with QEMU.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(buf.len()),
            Err(e) => Err(e),
            Ok(()) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A pty master read by a thread of its own: the descriptor is non-blocking
/// for the writer's sake, so the reader waits in poll instead of read.
struct Waiting(File);

impl Read for Waiting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.0.as_fd(), PollFlags::IN, None);
                }
                // EIO while no slave is open: wait for one instead of
                // ending the input thread (a client may connect later).
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }
}

/// The guest's output to the connected client of a socket chardev, if any.
struct SocketWriter {
    client: Client,
    stalled: bool,
}

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = c.as_ref() {
            // MSG_DONTWAIT, not O_NONBLOCK: the input thread reads the same
            // socket and must keep blocking.
            let send = |b: &[u8]| {
                Ok(rustix::net::send(
                    s,
                    b,
                    SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                )?)
            };
            if write_or_drop(s.as_fd(), buf, &mut self.stalled, send).is_err() {
                // The client went away; wait for the next one.
                *c = None;
                self.stalled = false;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn listen(path: &Path) -> Result<UnixListener, ChardevError> {
    let err = |source| ChardevError::Listen {
        path: path.to_owned(),
        source,
    };
    // A socket file left by a process that died is replaced, as QEMU does.
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(err)
}

/// Copies input to `deliver` until end of file.
fn pump<R: Read, F: FnMut(&[u8]) -> usize>(mut input: R, mut deliver: F) {
    let mut buf = [0u8; 256];
    while let Ok(n) = input.read(&mut buf) {
        if n == 0 {
            break;
        }
        offer(&buf[..n], &mut deliver);
    }
}

/// Offers bytes until all are taken: the guest's receive FIFO pushes back.
fn offer<F: FnMut(&[u8]) -> usize>(mut bytes: &[u8], deliver: &mut F) {
    while !bytes.is_empty() {
        let n = deliver(bytes).min(bytes.len());
        bytes = &bytes[n..];
        if n == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Accepts one client at a time and feeds its input.
fn serve<F: FnMut(&[u8]) -> usize>(listener: Arc<UnixListener>, client: Client, mut deliver: F) {
    loop {
        // A client accepted at start (wait=on) is served first.
        let existing = client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|s| s.try_clone().ok());
        let stream = match existing {
            Some(s) => s,
            None => match listener.accept() {
                Ok((s, _)) => {
                    let Ok(w) = s.try_clone() else { continue };
                    *client.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
                    s
                }
                Err(_) => return,
            },
        };
        pump(stream, &mut deliver);
        *client.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn open_pty() -> io::Result<(File, String)> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    // Non-blocking, so that output nobody reads cannot block the guest
    // (see PtyWriter); the input thread waits in poll.
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?
        .to_string_lossy()
        .into_owned();
    set_raw(&name)?;
    Ok((File::from(master), name))
}

/// Puts the pty's slave side in raw mode, so the guest's bytes pass
/// unchanged (no CR/LF translation, no echo), as QEMU does.
fn set_raw(slave: &str) -> io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(slave)?;
    let mut t = rustix::termios::tcgetattr(&f)?;
    t.make_raw();
    rustix::termios::tcsetattr(&f, rustix::termios::OptionalActions::Now, &t)?;
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn socket_server_serves_one_client_after_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let backend = ChardevBackend::Socket {
            path: path.clone(),
            server: true,
            wait: false,
        };
        let c = Chardev::open("serial0", &backend).unwrap();
        let (tx, rx) = mpsc::channel();
        c.spawn_input(move |b| {
            tx.send(b.to_vec()).unwrap();
            b.len()
        })
        .unwrap();
        let mut w = c.writer().unwrap();
        w.write_all(b"dropped: nobody is connected").unwrap();
        for round in 0..2u8 {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(&[b'a' + round]).unwrap();
            assert_eq!(rx.recv_timeout(T).unwrap(), vec![b'a' + round]);
            w.write_all(b"out").unwrap();
            let got = rvirt_testkit::read_exact(&mut s, 3, T);
            assert_eq!(&got, b"out");
        }
        drop(c);
        assert!(!path.exists(), "socket file removed");
    }

    #[test]
    fn pty_passes_bytes_both_ways() {
        let c = Chardev::open("serial0", &ChardevBackend::Pty).unwrap();
        let name = c.pty_name().unwrap().to_string();
        assert!(name.starts_with("/dev/pts/"));
        let mut slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .unwrap();
        c.writer().unwrap().write_all(b"a\nb").unwrap();
        let got = rvirt_testkit::read_exact(&mut slave, 3, T);
        assert_eq!(&got, b"a\nb", "raw mode: no CR inserted");
    }

    #[test]
    fn file_backend_truncates_or_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "old").unwrap();
        let c = Chardev::open(
            "s",
            &ChardevBackend::File {
                path: path.clone(),
                append: true,
            },
        )
        .unwrap();
        c.writer().unwrap().write_all(b"+new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old+new");
        let c = Chardev::open(
            "s",
            &ChardevBackend::File {
                path: path.clone(),
                append: false,
            },
        )
        .unwrap();
        c.writer().unwrap().write_all(b"x").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
        let bad = ChardevBackend::File {
            path: "/nonexistent/dir/f".into(),
            append: false,
        };
        assert!(matches!(
            Chardev::open("s", &bad),
            Err(ChardevError::Open { .. })
        ));
    }
}
