//! passt for every `<interface type='user'>`, run by rvirtd beside the
//! domain's VMM. libvirt 9.0 runs passt itself only for `<backend
//! type='passt'/>` (`qemu_passt.c`: before QEMU, `passt --one-off --socket
//! …` with the interface's `<mtu>`, `<source dev>`, `<backend logFile>`,
//! `<ip>`s and `<portForward>`s) and gives QEMU `-netdev user` otherwise,
//! which QEMU serves with its built-in slirp. rvirt-vmm has no slirp: by
//! hand it runs passt for `-netdev user` itself, but a VMM rvirtd starts is
//! confined (seccomp denies execve, its jail holds no passt, its Landlock
//! no host files). So rvirtd runs this passt for both kinds, told slirp's
//! addressing for a plain `type='user'` (the guest sees the network
//! libvirt and QEMU would give it), and passes the VMM its end of a
//! socketpair (`-netdev stream` on `addr.type=fd`): no socket path either
//! side must reach, nothing for the VMM to spawn.
//!
//! passt is confined as its VMM is (`confine.rs`, crates/jail): the VM's
//! user and group, no capabilities, no_new_privs, its own mount namespace
//! whose root holds only the passt program and its libraries, /dev/null
//! and /dev/urandom, the host's resolv.conf (the DNS it forwards to), its
//! pid file's directory and a `<backend logFile>`; and the VM's cgroup, so
//! `cgroup.kill` on the VM's end takes it too. passt then applies its own
//! sandbox on top (namespaces, seccomp). Two departures from libvirt, both
//! for supervision: passt runs in the foreground as a supervised child
//! (its pidfd watched, reaped here), and it is not given the guest's MAC
//! as its own (`--mac-addr`, which later libvirt dropped as a mistake).
//!
//! passt ends with the domain on every path: with `--one-off` it exits
//! when the VMM's end of the socket closes (shutdown, destroy, a crash or
//! `kill -9` of the VMM), the follower's clean-up stops and reaps it all
//! the same, and removing the VM's cgroup kills whatever is left. Its
//! record (pid and pid file path, which its command line contains) is in
//! the domain's runtime record, so a restarted rvirtd adopts it again.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvirt_domain::usernet::{Proto, UserNet};
use rvirt_domain::PasstRequest;
use rvirt_hostnet::passt::{self, Endpoint, PasstOptions, PortForward, PortRange};
use rvirt_remote::RemoteError;

use super::confine::{self, Held};
use super::dac::Label;
use crate::supervise::{Child, Record, Spawn, FIRST_PASSED_FD};

/// How long passt may take to serve its socket (40-60 ms here, unloaded).
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long a passt has after SIGTERM, when it did not go with its VMM.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The unprivileged user and group passt drops to when rvirtd is root and
/// does not confine it: Debian's nobody and nogroup (passt's own default),
/// by number, so that its directory can be given to it.
const NOBODY: u32 = 65534;

/// A running passt and how it is found again.
#[derive(Debug, Clone)]
pub struct PasstChild {
    pub child: Arc<Child>,
    /// Its pid file's path, which its command line contains.
    pub marker: String,
}

impl PasstChild {
    pub fn record(&self) -> Record {
        self.child.record(&self.marker)
    }

    /// The passt of `rec` if it still runs.
    pub fn adopt(rec: &Record) -> Option<PasstChild> {
        Child::adopt(rec).map(|c| PasstChild {
            child: Arc::new(c),
            marker: rec.marker.clone(),
        })
    }
}

/// passt's options for a request: slirp's network for a plain
/// `type='user'`, else the interface's own as libvirt 9.0 passes them.
fn request_options(r: &PasstRequest) -> PasstOptions {
    match &r.slirp {
        Some(u) => PasstOptions::slirp(u),
        None => options(&r.user),
    }
}

/// passt's options for an interface, as libvirt 9.0 passes them.
fn options(u: &UserNet) -> PasstOptions {
    PasstOptions {
        addresses: u.ips.clone(),
        mtu: u.mtu,
        interface: u.source_dev.clone(),
        log_file: u.log_file.as_ref().map(Into::into),
        forwards: u
            .port_forwards
            .iter()
            .map(|f| PortForward {
                udp: f.proto == Proto::Udp,
                address: f.address,
                dev: f.dev.clone(),
                ranges: f
                    .ranges
                    .iter()
                    .map(|r| PortRange {
                        start: r.start,
                        end: r.end,
                        to: r.to,
                        exclude: r.exclude,
                    })
                    .collect(),
            })
            .collect(),
        ..PasstOptions::default()
    }
}

/// The error libvirt reports when passt does not start.
fn failed(why: &str) -> RemoteError {
    RemoteError::internal(&format!("Could not start 'passt': {why}"))
}

/// How passt is confined: the VM's label and cgroup, and an empty
/// directory to mount its root on (its VMM's: each mounts its own root in
/// its own namespace).
pub struct Confined<'a> {
    pub label: Label,
    pub held: &'a mut Held,
    pub root: &'a Path,
}

/// The passt started for a domain, and the VMM's end of each one's
/// socket by `-netdev` id.
#[derive(Default)]
pub struct Started {
    pub children: Vec<PasstChild>,
    pub ends: Vec<(String, OwnedFd)>,
}

/// Starts a passt for each request, logging into `log`, confined when
/// `confined` says how; all of them serve their socket on return. On
/// failure those started are stopped.
pub fn start_all(
    reqs: &[PasstRequest],
    log: &Path,
    mut confined: Option<Confined<'_>>,
) -> Result<Started, RemoteError> {
    let mut started = Started::default();
    for r in reqs {
        match start(r, log, confined.as_mut()) {
            Ok((c, end)) => {
                started.children.push(c);
                started.ends.push((r.netdev_id.clone(), end));
            }
            Err(e) => {
                stop_all(&started.children);
                return Err(e);
            }
        }
    }
    Ok(started)
}

fn start(
    r: &PasstRequest,
    log: &Path,
    confined: Option<&mut Confined<'_>>,
) -> Result<(PasstChild, OwnedFd), RemoteError> {
    let dir = r
        .pidfile
        .parent()
        .ok_or_else(|| failed("no directory for its pid file"))?;
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let cannot =
            |d: &Path, e: std::io::Error| failed(&format!("cannot create {}: {e}", d.display()));
        // The parent of the domains' directories is crossed, not listed,
        // by an unjailed passt that writes its pid file as nobody.
        if let Some(parent) = dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(parent)
                .map_err(|e| cannot(parent, e))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| cannot(parent, e))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(cannot(dir, e)),
            _ => {}
        }
    }
    let root = rustix::process::geteuid().is_root();
    // passt writes its pid file as the user it runs as: the directory is
    // that user's (and private), as libvirt's is its QEMU user's.
    let owner = match &confined {
        Some(c) => Some(c.label),
        None if root => Some(Label {
            uid: NOBODY,
            gid: NOBODY,
        }),
        None => None,
    };
    if let Some(l) = owner {
        rustix::fs::chown(
            dir,
            Some(rustix::process::Uid::from_raw(l.uid)),
            Some(rustix::process::Gid::from_raw(l.gid)),
        )
        .map_err(|e| failed(&format!("cannot give {} to passt: {e}", dir.display())))?;
    }
    for stale in [&r.socket, &r.pidfile] {
        let _ = std::fs::remove_file(stale);
    }
    let named = passt::program();
    let program = confine::resolve(&named);
    let jail = match confined {
        Some(c) => {
            // The jail binds the program where it is.
            let program = program.as_deref().ok_or_else(|| {
                failed(&format!("cannot execute {} (not found)", named.display()))
            })?;
            let mut writable = vec![dir.to_path_buf()];
            if let Some(f) = &r.user.log_file {
                writable.push(confine::passt_log_file(Path::new(f), c.label, c.held)?);
            }
            Some(confine::passt_jail(
                program, c.label, c.held, c.root, &writable,
            )?)
        }
        None => None,
    };
    // Unconfined as root, passt drops to nobody itself; jailed it already
    // runs as the VM's user and has no capability to drop.
    let runas = format!("{NOBODY}:{NOBODY}");
    let runas = (root && jail.is_none()).then_some(runas.as_str());
    let args = request_options(r).args(&Endpoint::Fd(FIRST_PASSED_FD), &r.pidfile, runas);
    let program = program.unwrap_or(named);
    crate::driver::domain::log_line(log, &format!("{} {}", program.display(), args.join(" ")));
    let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let (vmm_end, passt_end) =
        UnixStream::pair().map_err(|e| failed(&format!("socketpair: {e}")))?;
    let child = Child::spawn(Spawn {
        program: &program,
        args: &args,
        pass: vec![passt_end.into()],
        log: Some(log),
        env_remove: &["RVIRT_LOG"],
        jail,
        env: &[],
    })
    .map_err(|e| failed(&crate::error_chain(&e)))?;
    let child = Arc::new(child);
    match passt::wait_ready(&r.pidfile, START_LIMIT, || child.has_exited()) {
        Ok(true) => {}
        Ok(false) => {
            let said = super::vmm::log_since(log, offset);
            let said: Vec<&str> = said.lines().filter(|l| !passt::is_noise(l)).collect();
            return Err(failed(said.last().copied().unwrap_or("it exited")));
        }
        Err(e) => {
            child.stop(STOP_GRACE);
            return Err(failed(&e.to_string()));
        }
    }
    tracing::debug!(pid = child.pid(), netdev = %r.netdev_id, "passt serves");
    Ok((
        PasstChild {
            child,
            marker: r.pidfile.display().to_string(),
        },
        vmm_end.into(),
    ))
}

/// Stops and reaps every passt (most have gone with their VMM already)
/// and removes its pid file.
pub fn stop_all(children: &[PasstChild]) {
    for p in children {
        if !p.child.has_exited() && !p.child.stop(STOP_GRACE) {
            tracing::warn!(pid = p.child.pid(), "passt did not go away");
            continue;
        }
        let pidfile = Path::new(&p.marker);
        let _ = std::fs::remove_file(pidfile);
        // The domain's directory goes with its last passt.
        if let Some(dir) = pidfile.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_domain::usernet::{PortForward as Pf, PortRange as Pr};

    #[test]
    fn libvirts_arguments() {
        let u = UserNet {
            passt: true,
            log_file: Some("/var/log/p.log".into()),
            ips: vec![
                ("172.17.2.4".parse().unwrap(), Some(24)),
                ("2001:db8::4".parse().unwrap(), None),
            ],
            port_forwards: vec![Pf {
                proto: Proto::Udp,
                address: Some("127.0.0.1".parse().unwrap()),
                dev: None,
                ranges: vec![Pr {
                    start: 5000,
                    end: Some(5010),
                    to: Some(6000),
                    exclude: false,
                }],
            }],
            mtu: Some(9000),
            source_dev: Some("eth0".into()),
        };
        let a = options(&u).args(
            &Endpoint::Socket("/r/passt/net0.socket".into()),
            Path::new("/r/passt/net0.pid"),
            None,
        );
        assert_eq!(
            a.join(" "),
            "--one-off --socket /r/passt/net0.socket --foreground --quiet \
             --pid /r/passt/net0.pid --mtu 9000 --interface eth0 --log-file /var/log/p.log \
             --address 172.17.2.4 --netmask 24 --address 2001:db8::4 \
             --udp-ports 127.0.0.1/5000-5010:6000-6010"
        );
    }
}
