//! Listening sockets: binding (replacing a stale socket file), the accept
//! loop, and removing the file when the monitor goes away.

use super::connection::{serve, End};
use super::poll::{self, entry, READABLE};
use super::stream::Stream;
use super::{ServerError, Shared};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A socket file we created; removed on drop unless something else has
/// replaced it since.
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Binds `path`, first removing a socket file left by a previous process
/// (as QEMU does). Anything that is not a socket is left alone.
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ServerError> {
    let err = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path).map_err(err)?,
        Ok(_) => return Err(ServerError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    let meta = fs::symlink_metadata(path).map_err(err)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), "cannot remove socket: {e}");
                }
            }
        }
    }
}

/// Accepts one client at a time until shutdown. While a client is served,
/// further connections wait in the listen backlog, as with QEMU.
/// `first` is a client already accepted (the `wait=on` case).
pub(crate) fn accept_loop(
    listener: UnixListener,
    first: Option<UnixStream>,
    shared: &Shared,
    label: &str,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(monitor = label, "cannot make the listener nonblocking: {e}");
        return;
    }
    if let Some(stream) = first {
        if serve_client(stream, shared, label) == End::Shutdown {
            return;
        }
    }
    loop {
        let mut fds = [
            entry(shared.shutdown_fd(), READABLE),
            entry(listener.as_fd(), READABLE),
        ];
        if let Err(e) = poll::wait(&mut fds, None) {
            tracing::error!(monitor = label, "poll failed: {e}");
            return;
        }
        if poll::ready(&fds[0]) {
            return;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                tracing::warn!(monitor = label, "accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if serve_client(stream, shared, label) == End::Shutdown {
            return;
        }
    }
}

fn serve_client(stream: UnixStream, shared: &Shared, label: &str) -> End {
    let stream = match Stream::socket(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(monitor = label, "cannot set up the client: {e}");
            return End::Closed;
        }
    };
    tracing::info!(monitor = label, "QMP client connected");
    let end = serve(&stream, shared, label);
    tracing::info!(monitor = label, "QMP client disconnected");
    end
}
