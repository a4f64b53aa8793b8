//! `rvirtd [--root DIR] [--session] [--vmm PATH]`: serves libvirt's
//! remote protocol on DIR/run/rvirt/rvirt-sock (or the system/session
//! socket) until killed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rvirtd::fsutil::TreeLock;
use rvirtd::{server, Config, Drivers, Tree};

#[derive(Parser, Debug)]
#[command(
    name = "rvirtd",
    version,
    about = "rvirt management daemon (libvirt remote protocol)"
)]
struct Args {
    /// Put the whole system tree (etc/, run/, var/log/) under DIR.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Session mode: the current user's XDG directories.
    #[arg(long, conflicts_with = "root")]
    session: bool,
    /// The rvirt-vmm executable (default: $RVIRT_VMM, else next to rvirtd).
    #[arg(long, value_name = "PATH")]
    vmm: Option<PathBuf>,
    /// Give this group read-write access to the socket (mode 0660), as
    /// libvirtd's unix_sock_group does.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Seconds destroy waits after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 10)]
    destroy_grace: u64,
    /// Seconds of client silence before a keepalive PING (libvirtd's
    /// keepalive_interval).
    #[arg(long, default_value_t = 5)]
    keepalive_interval: u64,
    /// Unanswered PINGs before a client is dropped (keepalive_count).
    #[arg(long, default_value_t = 5)]
    keepalive_count: u32,
}

fn vmm_path(arg: Option<PathBuf>) -> PathBuf {
    if let Some(p) = arg.or_else(|| std::env::var_os("RVIRT_VMM").map(PathBuf::from)) {
        return p;
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("rvirt-vmm")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("rvirt-vmm"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // RVIRT_LOG in EnvFilter's syntax (rvirt-vmm reads it as a bare level).
    let filter = tracing_subscriber::EnvFilter::try_from_env("RVIRT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let is_root = rustix::process::getuid().is_root();
    let tree = match (&args.root, args.session || !is_root) {
        (Some(root), _) => Tree::system(root),
        (None, false) => Tree::system(std::path::Path::new("/")),
        (None, true) => match Tree::session() {
            Ok(t) => t,
            Err(e) => return fail(&format!("cannot find the session directories: {e}")),
        },
    };
    if let Err(e) = tree.create() {
        return fail(&format!("cannot create the directories: {e}"));
    }
    let _lock = match TreeLock::acquire(&tree.lock_file) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return fail(&format!(
                "another rvirtd is already running on this tree ({} is locked)",
                tree.lock_file.display()
            ))
        }
        Err(e) => return fail(&format!("cannot lock {}: {e}", tree.lock_file.display())),
    };
    // A client that disappears must not kill the daemon with SIGPIPE.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let drivers = Arc::new(Drivers::new(&Config {
        tree: tree.clone(),
        vmm: vmm_path(args.vmm),
        destroy_grace: Duration::from_secs(args.destroy_grace),
        keepalive: (
            Duration::from_secs(args.keepalive_interval.max(1)),
            args.keepalive_count,
        ),
    }));
    drivers.domain.load();
    // Pools before domains autostart: a domain's volume disks need them.
    drivers.storage.load();
    let listener = match server::bind(&tree.socket, args.socket_group.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", tree.socket.display())),
    };
    tracing::info!(socket = %tree.socket.display(), vmm = %drivers.domain.vmm.display(), "rvirtd ready");
    drivers.domain.autostart();
    match server::serve(listener, drivers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("serving failed: {e}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("rvirtd: {msg}");
    ExitCode::FAILURE
}
