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
    /// The user VMMs run as (qemu.conf's `user`); scripts/setup.sh creates
    /// rvirt-qemu.
    #[arg(long, value_name = "USER", default_value = "rvirt-qemu")]
    user: String,
    /// The group VMMs run as (qemu.conf's `group`); default: the user's.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Run VMMs unconfined: as rvirtd's own user, no jail, no -sandbox.
    #[arg(long)]
    unconfined: bool,
    /// Forbidden system calls are logged by the kernel and allowed (for
    /// finding what a seccomp filter lacks; never in production).
    #[arg(long)]
    seccomp_log: bool,
    /// dnsmasq for the networks' DHCP and DNS (default: $RVIRT_DNSMASQ,
    /// else /usr/sbin/dnsmasq).
    #[arg(long, value_name = "PATH")]
    dnsmasq: Option<PathBuf>,
    /// nftables' nft for the networks' firewall rules (default:
    /// $RVIRT_NFT, else /usr/sbin/nft).
    #[arg(long, value_name = "PATH")]
    nft: Option<PathBuf>,
    /// Install the `default` NAT network (192.168.122.0/24 on virbr0,
    /// autostarted) on the first start of this tree, as libvirt's packages
    /// do; implied in system mode on `/`.
    #[arg(long)]
    default_network: bool,
}

/// The uid and gid of `user` (and `group`, else the user's own).
fn identity(user: &str, group: Option<&str>) -> Result<(u32, u32), String> {
    let c = std::ffi::CString::new(user).map_err(|_| format!("invalid user '{user}'"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data that getpwnam_r fills.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pw` and `buf` (whose length is passed)
    // and sets `out` to `&pw` or null.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return Err(format!(
            "user '{user}' does not exist (scripts/setup.sh creates rvirt-qemu; --unconfined runs VMMs as rvirtd's own user)"
        ));
    }
    let (uid, mut gid) = (pw.pw_uid, pw.pw_gid);
    if let Some(g) = group {
        let c = std::ffi::CString::new(g).map_err(|_| format!("invalid group '{g}'"))?;
        // SAFETY: group is plain data that getgrnam_r fills.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as getpwnam_r above.
        let rc =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return Err(format!("group '{g}' does not exist"));
        }
        gid = gr.gr_gid;
    }
    if uid == 0 {
        return Err(format!(
            "user '{user}' is root: use --unconfined to run VMMs as root"
        ));
    }
    Ok((uid, gid))
}

fn vmm_path(arg: Option<PathBuf>) -> PathBuf {
    let p = arg
        .or_else(|| std::env::var_os("RVIRT_VMM").map(PathBuf::from))
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("rvirt-vmm")))
                .filter(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("rvirt-vmm"));
    absolute_program(p)
}

/// The program as an absolute path, resolved once here: a confined VMM is
/// exec'd after the jail's pivot_root, where neither rvirtd's working
/// directory nor its PATH exist.
fn absolute_program(p: PathBuf) -> PathBuf {
    if p.components().count() > 1 {
        return std::path::absolute(&p).unwrap_or(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(&p))
        .find(|c| c.is_file())
        .unwrap_or(p)
}

/// A program named by an option, else by a variable, else at `fallback`.
fn program(arg: Option<PathBuf>, var: &str, fallback: &str) -> PathBuf {
    arg.or_else(|| std::env::var_os(var).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(fallback))
}

/// The lease helper, beside rvirtd (`RVIRT_LEASESHELPER` overrides).
fn leases_helper() -> PathBuf {
    if let Some(p) = std::env::var_os("RVIRT_LEASESHELPER") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("rvirt-leaseshelper")))
        .unwrap_or_else(|| PathBuf::from("rvirt-leaseshelper"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // RVIRT_LOG in EnvFilter's syntax, as every rvirt program reads it.
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
    // The networks' directory is made on the first start of a tree: that
    // is when libvirt's packages would have installed the default network.
    let first_start = !tree.network_config_dir.exists();
    let install_default = args.default_network
        || (args.root.is_none() && tree.mode == rvirt_remote::uri::Mode::System);
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
    // Jailing needs root (namespaces, ownership, cgroups): a session daemon
    // confines its VMMs with -sandbox only.
    let confine = if args.unconfined || !is_root {
        None
    } else {
        match identity(&args.user, args.group.as_deref()) {
            Ok((uid, gid)) => Some(rvirtd::driver::domain::confine::Confinement {
                label: rvirtd::driver::domain::dac::Label { uid, gid },
                seccomp_log: args.seccomp_log,
            }),
            Err(e) => return fail(&e),
        }
    };
    match rvirtd::sys::raise_nofile() {
        Ok((was, now)) => tracing::info!(was, now, "descriptor limit (RLIMIT_NOFILE) raised"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    // A client that disappears must not kill the daemon with SIGPIPE.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let drivers = Arc::new(Drivers::new(&Config {
        tree: tree.clone(),
        vmm: vmm_path(args.vmm),
        destroy_grace: Duration::from_secs(args.destroy_grace),
        confine,
        sandbox: !args.unconfined,
        keepalive: (
            Duration::from_secs(args.keepalive_interval.max(1)),
            args.keepalive_count,
        ),
        network: rvirtd::driver::network::NetworkConfig {
            dnsmasq: program(args.dnsmasq, "RVIRT_DNSMASQ", "/usr/sbin/dnsmasq"),
            leases_helper: leases_helper(),
            nft: program(args.nft, "RVIRT_NFT", "/usr/sbin/nft"),
            install_default,
        },
    }));
    drivers.network.load(first_start);
    drivers.domain.load();
    // Pools before domains autostart: a domain's volume disks need them.
    drivers.storage.load();
    let listener = match server::bind(&tree.socket, args.socket_group.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", tree.socket.display())),
    };
    tracing::info!(socket = %tree.socket.display(), vmm = %drivers.domain.vmm.display(), "rvirtd ready");
    // Networks first: an autostarted domain may need one.
    drivers.network.autostart();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vmm_is_named_by_an_absolute_path() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_program(PathBuf::from("target/rvirt-vmm")),
            cwd.join("target/rvirt-vmm")
        );
        assert_eq!(
            absolute_program(PathBuf::from("/a/b")),
            PathBuf::from("/a/b")
        );
        // A bare name is found on PATH (sh is on every PATH this runs with).
        assert!(absolute_program(PathBuf::from("sh")).is_absolute());
    }
}
