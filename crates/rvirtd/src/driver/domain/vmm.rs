//! Starting a domain's VMM as libvirt starts QEMU: the host side of its
//! NICs first (taps), then the monitor's listening socket bound by rvirtd,
//! both passed by descriptor and named in the command line through the
//! argv derivation's fd plan (`-netdev tap,…,fd=3`, then `-chardev
//! socket,id=charmonitor,fd=N`); then the monitor connection. No file is polled for: the
//! socket exists before the VMM does.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use rvirt_domain::{derive_argv, derive_argv_with, Domain, FdPlan, RuntimePaths};
use rvirt_qmp::QmpClient;
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;

use super::confine::{self, Confinement, Held};
use super::nics::{self, NamedTap};
use super::passt::{self, PasstChild};
use crate::supervise::{Child, Spawn, SpawnError, FIRST_PASSED_FD};

/// How long each QMP command may take, and the greeting of a new VMM.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a VMM that dropped its monitor may take to exit, so that its
/// own last words can be read from the log.
const EXIT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the domain log {0}")]
    Log(PathBuf, #[source] io::Error),
    #[error("cannot bind the monitor socket {0}")]
    Monitor(PathBuf, #[source] io::Error),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The VMM exited before its monitor came up; `message` is what it
    /// wrote to the log.
    #[error("{message}")]
    Exited { message: String },
    #[error("no monitor")]
    Qmp(#[source] rvirt_qmp::ClientError),
}

impl StartError {
    /// The error as libvirt reports a QEMU that did not start.
    pub fn to_remote(&self) -> RemoteError {
        match self {
            StartError::Exited { message } => RemoteError::internal(&format!(
                "process exited while connecting to monitor: {message}"
            )),
            other => RemoteError::operation_failed(&crate::error_chain(other)),
        }
    }
}

/// A started VMM with its negotiated monitor connection and the names of
/// the taps it was given.
pub struct Started {
    pub child: Arc<Child>,
    pub qmp: QmpClient,
    pub taps: Vec<NamedTap>,
    /// What the confined VM holds until it ends.
    pub held: Held,
    /// The passt of each `<interface type='user'>`.
    pub passt: Vec<PasstChild>,
}

/// How a VMM is started.
pub struct Options<'a> {
    pub vmm: &'a Path,
    /// The jail and ownership (none: the VMM runs as rvirtd's user).
    pub confine: Option<&'a Confinement>,
    /// `-sandbox on,…`: the VMM's own seccomp filters and Landlock.
    pub sandbox: bool,
    pub name: &'a str,
    /// The virtual networks a NIC of `type='network'` is put on.
    pub networks: &'a dyn nics::Networks,
}

/// Derives `def`'s command line (validation first), confines it, starts
/// the passt of its user-mode NICs, makes its taps, binds its monitor and
/// starts `vmm` with them passed. What was started or held is given back
/// on failure.
pub fn start(o: &Options<'_>, def: &Domain, paths: &RuntimePaths) -> Result<Started, RemoteError> {
    let filled = match o.confine {
        Some(_) => confine::fill_chains(def)?,
        None => None,
    };
    let def = filled.as_ref().unwrap_or(def);
    let plain = derive_argv(def, paths).map_err(|e| {
        RemoteError::new(code::CONFIG_UNSUPPORTED, from::QEMU, Some(&e.to_string()))
    })?;
    let rundir = paths
        .monitor_socket
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let confined = match o.confine {
        Some(c) => Some(confine::prepare(c, o.vmm, def, o.name, &rundir)?),
        None => None,
    };
    let (mut held, jail, files) = match confined {
        Some(p) => (p.held, p.jail, p.files),
        None => Default::default(),
    };
    // passt is up before the VMM, as libvirt starts it before QEMU; jailed
    // as the VMM is and in its cgroup (`passt.rs`).
    let root = rundir.join("root");
    let jailed = held.label.map(|label| passt::Confined {
        label,
        held: &mut held,
        root: &root,
    });
    let passt = match passt::start_all(&plain.passt, &paths.log_file, jailed) {
        Ok(p) => p,
        Err(e) => {
            held.release();
            return Err(e);
        }
    };
    let (passt, passt_ends) = (passt.children, passt.ends);
    let release = |e: RemoteError| {
        passt::stop_all(&passt);
        held.release();
        e
    };
    // The host side of the NICs exists before the VMM, as with libvirt;
    // rvirtd's descriptors close once the VMM has its own, leaving it the
    // only holder (the taps are not persistent).
    let taps = nics::open_all(def, &plain.taps, o.networks)
        .map_err(|e| e.to_remote())
        .map_err(release)?;
    let listener = bind_monitor(&paths.monitor_socket)
        .map_err(|e| e.to_remote())
        .map_err(release)?;
    // The taps at 3, 4, … (as before the monitor was passed), the
    // monitor's listener after them.
    let mut plan = FdPlan::default();
    let mut pass: Vec<OwnedFd> = Vec::new();
    let mut named = Vec::new();
    for t in taps {
        plan.taps
            .insert(t.netdev_id.clone(), FIRST_PASSED_FD + pass.len() as i32);
        let (fd, tap) = t.into_parts();
        pass.push(fd);
        named.push(tap);
    }
    plan.monitor = Some(FIRST_PASSED_FD + pass.len() as i32);
    pass.push(listener.into());
    // Files rvirtd opened (chardev files), as -add-fd.
    for (what, fd) in files {
        plan.files.insert(what, FIRST_PASSED_FD + pass.len() as i32);
        pass.push(fd);
    }
    // Each user-mode NIC's end of its passt's socket.
    for (netdev, fd) in passt_ends {
        plan.streams
            .insert(netdev, FIRST_PASSED_FD + pass.len() as i32);
        pass.push(fd);
    }
    plan.sandbox = o.sandbox;
    plan.daemon_logs = true;
    let mut args = derive_argv_with(def, paths, &plan)
        .map_err(|e| RemoteError::new(code::CONFIG_UNSUPPORTED, from::QEMU, Some(&e.to_string())))
        .map_err(release)?
        .args;
    if let (Some(c), true) = (o.confine, o.sandbox) {
        if c.seccomp_log {
            if let Some(i) = args.iter().position(|a| a == "-sandbox") {
                args[i + 1].push_str(",x-log=on");
            }
        }
    }
    match run(o.vmm, &args, pass, paths, jail) {
        Ok((child, qmp)) => Ok(Started {
            child,
            qmp,
            taps: named,
            held,
            passt,
        }),
        Err(e) => Err(release(e.to_remote())),
    }
}

/// Binds the monitor's socket at `path` (replacing a stale one), for the
/// VMM to accept on; only rvirtd (its owner) may connect.
fn bind_monitor(path: &Path) -> Result<UnixListener, StartError> {
    let fail = |e| StartError::Monitor(path.into(), e);
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let l = UnixListener::bind(path).map_err(fail)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(l)
}

/// Starts the VMM with `pass` (the monitor's listener among them) and
/// connects to its monitor.
fn run(
    vmm: &Path,
    args: &[String],
    pass: Vec<OwnedFd>,
    paths: &RuntimePaths,
    jail: Option<Arc<rvirt_jail::Prepared>>,
) -> Result<(Arc<Child>, QmpClient), StartError> {
    let log = &paths.log_file;
    let mut logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| StartError::Log(log.into(), e))?;
    let _ = writeln!(logf, "{}: starting up", crate::sys::timestamp());
    let _ = writeln!(logf, "{} {}", vmm.display(), args.join(" "));
    let offset = logf.metadata().map(|m| m.len()).unwrap_or(0);
    drop(logf);
    let child = Arc::new(Child::spawn(Spawn {
        program: vmm,
        args,
        pass,
        log: Some(log),
        // rvirtd's own log level is not the VMM's: the VMM writes into the
        // domain log, and its debug lines would cut into the guest's.
        env_remove: &["RVIRT_LOG"],
        jail,
        env: &[],
    })?);
    // The pid file is rvirtd's to write, as libvirt writes QEMU's: the
    // VMM cannot reach the runtime directory.
    if let Err(e) =
        crate::fsutil::write_atomic(&paths.pidfile, format!("{}\n", child.pid()).as_bytes())
    {
        tracing::warn!(file = %paths.pidfile.display(), error = %e, "cannot write the pid file");
    }
    // The VMM holds the only listener now: if it dies, this connection is
    // reset at once instead of waiting for a greeting.
    match QmpClient::connect(&paths.monitor_socket, QMP_TIMEOUT) {
        Ok(qmp) => Ok((child, qmp)),
        Err(e) => {
            if child.wait(Some(EXIT_WAIT)) {
                let mut message = log_since(log, offset);
                if message.is_empty() {
                    message = "rvirt-vmm exited before its monitor came up".into();
                }
                return Err(StartError::Exited { message });
            }
            child.signal(Signal::KILL);
            child.wait(Some(EXIT_WAIT));
            Err(StartError::Qmp(e))
        }
    }
}

/// What the log got after `offset`, trimmed, the last lines only.
pub(super) fn log_since(log: &Path, offset: u64) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(log) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(64 * 1024).read_to_string(&mut s);
        }
    }
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(5)..];
    tail.join("\n").trim().to_string()
}
