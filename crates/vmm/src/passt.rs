//! `-netdev user`: rvirt-vmm serves QEMU's user networking by running
//! Debian's passt on one end of a socketpair (`passt --fd`), the other end
//! being the NIC's stream back-end. passt is told slirp's addressing
//! (`net=`, `host=`, `dhcpstart=`, `dns=`: 10.0.2.15/24, gateway 10.0.2.2
//! which reaches the host, DNS 10.0.2.3 forwarded to the host's resolver)
//! and the `hostfwd=` rules, so a guest sees the network QEMU's slirp
//! would give it.
//!
//! passt runs unprivileged (as the VMM's user, or as nobody when the VMM
//! is root) and ends with the VM on every path: dropping [`Passt`] (the
//! VMM's exit, or a failed start) stops and reaps it; if the VMM is killed
//! outright its end of the socket closes and passt, started with
//! `--one-off`, exits by itself (and the kernel's parent-death signal
//! backs that up where passt keeps the VMM's credentials).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Signal};
use rvirt_hostnet::passt::{self, Endpoint, PasstOptions};
use rvirt_vmm_config::UserNetdev;

/// passt's descriptor for its end of the socketpair.
const PASST_FD: RawFd = 3;
/// How long passt may take to come up (40-60 ms here, unloaded).
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long passt has after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The unprivileged user and group passt drops to when started as root:
/// Debian's nobody and nogroup (passt's own default, named by number so
/// that the pid file's directory can be given to it).
const NOBODY: u32 = 65534;

/// Why passt could not serve a `-netdev user`.
#[derive(Debug, thiserror::Error)]
pub enum PasstError {
    #[error("cannot run {} (user networking needs Debian's passt)", .0.display())]
    Missing(PathBuf, #[source] std::io::Error),
    #[error("cannot start {}", .0.display())]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("cannot set up passt's {0}")]
    Setup(&'static str, #[source] std::io::Error),
    #[error("passt exited at start: {0}")]
    Exited(String),
    #[error("passt did not come up within {}s", START_LIMIT.as_secs())]
    Timeout,
}

/// passt's options for a `-netdev user`.
fn options(u: &UserNetdev) -> PasstOptions {
    PasstOptions::slirp(u)
}

/// A running passt, stopped and reaped when dropped.
pub(crate) struct Passt {
    child: Child,
    /// Holds the pid file; removed when dropped.
    dir: PathBuf,
}

impl Passt {
    /// Starts passt for `netdev` and returns it with the VMM's end of its
    /// socket, once passt serves it.
    pub(crate) fn start(netdev: &str, u: &UserNetdev) -> Result<(Passt, OwnedFd), PasstError> {
        let program = passt::program();
        let (ours, theirs) = UnixStream::pair().map_err(|e| PasstError::Setup("socketpair", e))?;
        let root = rustix::process::geteuid().is_root();
        let dir =
            std::env::temp_dir().join(format!("rvirt-vmm-{}-passt-{netdev}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| PasstError::Setup("pid file directory", e))?;
        if root {
            // passt writes its pid file after dropping to nobody.
            let id = Some(rustix::process::Uid::from_raw(NOBODY));
            let gid = Some(rustix::process::Gid::from_raw(NOBODY));
            if let Err(e) = rustix::fs::chown(&dir, id, gid) {
                let _ = std::fs::remove_dir(&dir);
                return Err(PasstError::Setup("pid file directory", e.into()));
            }
        }
        let pidfile = dir.join("passt.pid");
        let runas = format!("{NOBODY}:{NOBODY}");
        let args = options(u).args(
            &Endpoint::Fd(PASST_FD),
            &pidfile,
            root.then_some(runas.as_str()),
        );
        tracing::info!(netdev, program = %program.display(), args = %args.join(" "), "starting passt");
        let their_fd = theirs.as_raw_fd();
        let parent = rustix::process::getpid();
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes async-signal-safe system calls (dup2, close_range,
        // prctl, getppid, _exit) on values copied before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 leaves the copy without close-on-exec: passt's fd 3.
                if libc::dup2(their_fd, PASST_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Descriptors the VMM inherited without close-on-exec (the
                // taps and monitor rvirtd passed) stay out of passt. Marked,
                // not closed: the pipe exec failures are reported through
                // must stay open until the exec.
                const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                libc::syscall(
                    libc::SYS_close_range,
                    PASST_FD + 1,
                    libc::c_uint::MAX,
                    CLOSE_RANGE_CLOEXEC,
                );
                // Killed with the VMM; cleared by the kernel if passt
                // changes its user, where the socket's end of file does it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent.as_raw_nonzero().get() {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        drop(theirs);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(if e.kind() == std::io::ErrorKind::NotFound {
                    PasstError::Missing(program, e)
                } else {
                    PasstError::Spawn(program, e)
                });
            }
        };
        let stderr = child.stderr.take();
        let mut passt = Passt { child, dir };
        let ready = passt::wait_ready(&pidfile, START_LIMIT, || {
            matches!(passt.child.try_wait(), Ok(Some(_)) | Err(_))
        });
        match ready {
            Ok(true) => {}
            Ok(false) => {
                let said = stderr.map(last_words).unwrap_or_default();
                return Err(PasstError::Exited(if said.is_empty() {
                    "no message".into()
                } else {
                    said
                }));
            }
            Err(_) => return Err(PasstError::Timeout),
        }
        if let Some(err) = stderr {
            forward_log(netdev, err);
        }
        tracing::info!(netdev, pid = passt.child.id(), "passt serves the NIC");
        Ok((passt, ours.into()))
    }
}

impl Drop for Passt {
    fn drop(&mut self) {
        let exited = |c: &mut Child| matches!(c.try_wait(), Ok(Some(_)) | Err(_));
        if !exited(&mut self.child) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while !exited(&mut self.child) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !exited(&mut self.child) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What passt said before it exited: its last line that is not noise.
fn last_words(err: ChildStderr) -> String {
    let mut text = String::new();
    // It has exited: this ends at once.
    let _ = err.take(64 * 1024).read_to_string(&mut text);
    text.lines()
        .rfind(|l| !passt::is_noise(l))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// passt's later messages go to the VMM's log; the pipe is drained so
/// passt never blocks or dies writing to it.
fn forward_log(netdev: &str, err: ChildStderr) {
    let netdev = netdev.to_string();
    let spawned = std::thread::Builder::new()
        .name("passt-log".into())
        .spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if !passt::is_noise(&line) {
                    tracing::warn!(netdev = %netdev, "passt: {line}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot follow passt's messages: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_vmm_config::HostFwd;
    use std::net::Ipv4Addr;
    use std::path::Path;

    fn slirp() -> UserNetdev {
        UserNetdev {
            guest: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            host: Ipv4Addr::new(10, 0, 2, 2),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            hostfwd: vec![
                HostFwd {
                    udp: false,
                    host_addr: None,
                    host_port: 2222,
                    guest_port: 22,
                },
                HostFwd {
                    udp: true,
                    host_addr: Some(Ipv4Addr::LOCALHOST),
                    host_port: 5353,
                    guest_port: 5353,
                },
            ],
            ipv4: true,
            ipv6: false,
        }
    }

    #[test]
    fn slirps_network_in_passts_words() {
        let a = options(&slirp()).args(&Endpoint::Fd(3), Path::new("/p"), None);
        assert_eq!(
            a.join(" "),
            "--one-off --fd 3 --foreground --quiet --pid /p --address 10.0.2.15 --netmask 24 \
             --gateway 10.0.2.2 --dns 10.0.2.3 --dns-forward 10.0.2.3 --ipv4-only \
             --tcp-ports 2222:22 --udp-ports 127.0.0.1/5353"
        );
    }

    #[test]
    fn a_missing_passt_is_named() {
        // Not the process environment (tests run in parallel): the error
        // path of a spawn that finds no program.
        let e = PasstError::Missing(
            "passt".into(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(
            e.to_string(),
            "cannot run passt (user networking needs Debian's passt)"
        );
    }

    #[test]
    fn passt_serves_the_socket_and_goes_with_its_handle() {
        if std::process::Command::new(passt::program())
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
                panic!("passt is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh");
            }
            eprintln!("passt is not installed: skipped");
            return;
        }
        // passt copies the network of its namespace: a private one.
        rvirt_testkit::netns::in_netns(|| {
            rvirt_testkit::netns::routed();
            let mut u = slirp();
            u.hostfwd.clear();
            let (p, fd) = Passt::start("t0", &u).unwrap();
            let pid = p.child.id();
            let dir = p.dir.clone();
            assert!(dir.join("passt.pid").exists());
            assert!(Path::new(&format!("/proc/{pid}")).exists());
            drop(p);
            assert!(!dir.exists(), "the pid file's directory goes");
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "passt is stopped and reaped"
            );
            drop(fd);
        });
    }
}
