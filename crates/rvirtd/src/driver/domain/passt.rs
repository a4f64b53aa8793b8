//! passt for `<interface type='user'>` with `<backend type='passt'/>`, as
//! libvirt 9.0's QEMU driver runs it (`qemu_passt.c`): before the VMM,
//! `passt --one-off --socket run/rvirt/passt/NAME-ALIAS.socket` with the
//! interface's `<mtu>`, `<source dev>`, `<backend logFile>`, `<ip>`s and
//! `<portForward>`s, and the VMM's `-netdev stream` connects to that
//! socket. Two departures, both for supervision: passt runs in the
//! foreground as a supervised child (its pidfd is watched and it is reaped
//! here, where libvirt lets it daemonize and keeps a pid file), and it is
//! not given the guest's MAC as its own (`--mac-addr`, which later libvirt
//! dropped as a mistake).
//!
//! passt ends with the domain on every path: with `--one-off` it exits
//! when the VMM's connection closes (shutdown, destroy, a crash or
//! `kill -9` of the VMM), and the follower's clean-up stops and reaps it
//! all the same. Its record (pid and socket path) is in the domain's
//! runtime record, so a restarted rvirtd adopts it again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvirt_domain::usernet::{Proto, UserNet};
use rvirt_domain::PasstRequest;
use rvirt_hostnet::passt::{self, Endpoint, PasstOptions, PortForward, PortRange};
use rvirt_remote::RemoteError;

use crate::supervise::{Child, Record, Spawn};

/// How long passt may take to serve its socket (40-60 ms here, unloaded).
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long a passt has after SIGTERM, when it did not go with its VMM.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The unprivileged user and group passt drops to when rvirtd is root:
/// Debian's nobody and nogroup (passt's own default), by number, so that
/// its directory can be given to it.
const NOBODY: u32 = 65534;

/// A running passt and how it is found again.
#[derive(Debug, Clone)]
pub struct PasstChild {
    pub child: Arc<Child>,
    /// Its socket path, which its command line contains; its pid file is
    /// beside it (`.pid`).
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

/// Starts a passt for each request, logging into `log`; all of them serve
/// their socket on return. On failure those started are stopped.
pub fn start_all(reqs: &[PasstRequest], log: &Path) -> Result<Vec<PasstChild>, RemoteError> {
    let mut started = Vec::new();
    for r in reqs {
        match start(r, log) {
            Ok(c) => started.push(c),
            Err(e) => {
                stop_all(&started);
                return Err(e);
            }
        }
    }
    Ok(started)
}

fn start(r: &PasstRequest, log: &Path) -> Result<PasstChild, RemoteError> {
    let dir = r
        .socket
        .parent()
        .ok_or_else(|| failed("no directory for its socket"))?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed(&format!("cannot create {}: {e}", dir.display())))?;
    }
    let root = rustix::process::geteuid().is_root();
    if root {
        // passt binds its socket as root but writes its pid file after
        // dropping to nobody: the directory is nobody's (and private: root
        // reaches the socket anyway), as libvirt's is its QEMU user's.
        let (uid, gid) = (
            rustix::process::Uid::from_raw(NOBODY),
            rustix::process::Gid::from_raw(NOBODY),
        );
        rustix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| failed(&format!("cannot give {} to passt: {e}", dir.display())))?;
    }
    for stale in [&r.socket, &r.pidfile] {
        let _ = std::fs::remove_file(stale);
    }
    let runas = format!("{NOBODY}:{NOBODY}");
    let args = options(&r.user).args(
        &Endpoint::Socket(r.socket.clone()),
        &r.pidfile,
        root.then_some(runas.as_str()),
    );
    let program = passt::program();
    crate::driver::domain::log_line(log, &format!("{} {}", program.display(), args.join(" ")));
    let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let child = Child::spawn(Spawn {
        program: &program,
        args: &args,
        pass: Vec::new(),
        log: Some(log),
        env_remove: &["RVIRT_LOG"],
        jail: None,
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
    tracing::debug!(pid = child.pid(), socket = %r.socket.display(), netdev = %r.netdev_id, "passt serves");
    Ok(PasstChild {
        child,
        marker: r.socket.display().to_string(),
    })
}

/// Stops and reaps every passt (most have gone with their VMM already)
/// and removes its socket and pid file.
pub fn stop_all(children: &[PasstChild]) {
    for p in children {
        if !p.child.has_exited() && !p.child.stop(STOP_GRACE) {
            tracing::warn!(pid = p.child.pid(), "passt did not go away");
            continue;
        }
        let socket = Path::new(&p.marker);
        let _ = std::fs::remove_file(socket);
        let _ = std::fs::remove_file(socket.with_extension("pid"));
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
