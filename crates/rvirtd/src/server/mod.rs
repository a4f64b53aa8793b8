//! The RPC socket: accept loop, one reader thread and one writer thread
//! per client. What one client sends (garbage, oversized frames, a stall
//! mid-message) only ends or blocks that client.
//!
//! | module | job |
//! | --- | --- |
//! | [`connection`] | one client's reader loop, keepalive, stalls |
//! | [`router`] | every message to its answer: ACL, connection calls, drivers |
//! | [`outbox`] | a client's send queue and writer thread |
//! | [`events`] | event callbacks and their delivery |
//! | [`streams`] | a client's open streams (console, volume upload and download) |

pub mod connection;
pub mod events;
pub mod outbox;
pub mod router;
pub mod streams;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::driver::Drivers;

/// More clients than this at once are turned away.
const MAX_CLIENTS: usize = 1024;

static CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// Binds the socket (replacing a stale one: the caller holds the tree
/// lock, so no live daemon owns it) with mode 0600, or 0660 for `group`.
/// The socket is bound under a temporary name and renamed into place once
/// its mode and group are set, so no client ever sees it with others.
pub fn bind(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    for p in [path, tmp.as_path()] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let listener = UnixListener::bind(&tmp)?;
    let set_up = match group {
        Some(g) => crate::fsutil::share_with_group(&tmp, g),
        None => std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)),
    };
    if let Err(e) = set_up.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Serves clients until the listener fails.
pub fn serve(listener: UnixListener, drivers: Arc<Drivers>) -> io::Result<()> {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if CLIENTS.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            CLIENTS.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("too many clients; connection refused");
            continue;
        }
        let d = drivers.clone();
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                if let Err(e) = connection::serve(&d, stream) {
                    tracing::debug!(error = %e, "client ended");
                }
                CLIENTS.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            CLIENTS.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(error = %e, "cannot start a client thread");
        }
    }
    Ok(())
}
