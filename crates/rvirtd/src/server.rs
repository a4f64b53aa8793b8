//! The RPC socket: accept loop, one reader thread and one writer thread
//! per client. What one client sends (garbage, oversized frames, a stall
//! mid-message) only ends or blocks that client.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::connection;
use crate::daemon::Daemon;

/// More clients than this at once are turned away.
const MAX_CLIENTS: usize = 1024;

static CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// Binds the socket (replacing a stale one: the caller holds the tree
/// lock, so no live daemon owns it) with mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves clients until the listener fails.
pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) -> io::Result<()> {
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
        let d = daemon.clone();
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
