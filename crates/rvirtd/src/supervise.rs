//! Supervised children: the VMMs and the networks' dnsmasq (passt next). A child is
//! started with descriptors passed at fixed numbers, in its own session so
//! it outlives rvirtd, its output appended to a log; it is watched through
//! a pidfd (no polling, no pid-reuse race), stopped with SIGTERM and then
//! SIGKILL after a grace period, and found again from its [`Record`] after
//! rvirtd restarts (even after `kill -9`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use serde::{Deserialize, Serialize};

use crate::sys;

mod forked;

/// The descriptor number the first passed fd gets in the child (after
/// stdin, stdout and stderr).
pub const FIRST_PASSED_FD: RawFd = 3;

/// How long a stop waits for the exit after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open the log {0}")]
    Log(PathBuf, #[source] io::Error),
    #[error("cannot execute {0}")]
    Exec(PathBuf, #[source] io::Error),
    #[error("cannot pass descriptors to {0}")]
    Pass(PathBuf, #[source] io::Error),
    #[error("cannot watch process {0}")]
    Watch(i32, #[source] io::Error),
}

/// What to start.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    /// Open in the child as descriptors `FIRST_PASSED_FD + i`; closed in
    /// rvirtd once the child has them.
    pub pass: Vec<OwnedFd>,
    /// stdout and stderr appended here (else /dev/null).
    pub log: Option<&'a Path>,
    /// Variables of rvirtd's environment the child does not get.
    pub env_remove: &'a [&'a str],
    /// Confinement the child enters between fork and exec (crates/jail):
    /// after its session and descriptors are set up, before the program
    /// runs. A jailed child is made inside its cgroup v2 (`forked.rs`).
    pub jail: Option<Arc<rvirt_jail::Prepared>>,
    /// Variables the child gets besides rvirtd's.
    pub env: &'a [(&'a str, &'a str)],
}

/// What rvirtd keeps on disk to find a child again after a restart: its
/// pid and a marker its command line contains (so a recycled pid is
/// never taken for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub marker: String,
}

/// A running (or exited, not yet forgotten) child.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    /// Started by this rvirtd process, so it must be reaped here; an
    /// adopted child is reaped by whoever inherited it.
    own: bool,
    reaped: AtomicBool,
}

impl Child {
    /// Starts `s.program` in a new session with `s.pass` placed at
    /// `FIRST_PASSED_FD…` and nothing else of rvirtd's open.
    pub fn spawn(s: Spawn<'_>) -> Result<Child, SpawnError> {
        let program = s.program.to_path_buf();
        let log = match s.log {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| SpawnError::Log(path.into(), e))?,
            ),
            None => None,
        };
        // Copies numbered above the target range, so that placing one in the
        // child never overwrites another not yet placed; close-on-exec, so
        // only the placed ones reach the child.
        let above = FIRST_PASSED_FD + s.pass.len() as RawFd;
        let high = s
            .pass
            .iter()
            .map(|fd| sys::dup_above(fd, above))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SpawnError::Pass(program.clone(), e))?;
        drop(s.pass);
        if let Some(jail) = &s.jail {
            // Made inside its cgroup (see forked.rs), which Command cannot.
            let plan = forked::Plan::new(s.program, s.args, s.env_remove, s.env)
                .map_err(|e| SpawnError::Exec(program.clone(), e))?;
            let (pid, pidfd) = forked::spawn(&plan, log, &high, jail)
                .map_err(|e| SpawnError::Exec(program.clone(), e))?;
            return Ok(Child {
                pid,
                pidfd,
                own: true,
                reaped: AtomicBool::new(false),
            });
        }
        let (out, err) = match log {
            Some(f) => {
                let f2 = f
                    .try_clone()
                    .map_err(|e| SpawnError::Log(s.log.unwrap_or(Path::new("")).into(), e))?;
                (Stdio::from(f), Stdio::from(f2))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let high_raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
        let mut cmd = Command::new(s.program);
        cmd.args(s.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for var in s.env_remove {
            cmd.env_remove(var);
        }
        for (k, v) in s.env {
            cmd.env(k, v);
        }
        // rvirtd's raised descriptor limit is its own (sys::raise_nofile):
        // the program gets the one rvirtd inherited, as under systemd.
        let nofile = sys::inherited_nofile().map(|soft| libc::rlimit {
            rlim_cur: soft,
            rlim_max: libc::RLIM_INFINITY,
        });
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls setsid, getrlimit, setrlimit and dup2, which are
        // async-signal-safe system calls; it reads values made before the
        // fork and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(mut lim) = nofile {
                    let mut now: libc::rlimit = std::mem::zeroed();
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) == 0
                        && now.rlim_cur > lim.rlim_cur
                    {
                        lim.rlim_max = now.rlim_max;
                        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                    }
                }
                for (i, &fd) in high_raw.iter().enumerate() {
                    // dup2 leaves close-on-exec clear on the new descriptor.
                    if libc::dup2(fd, FIRST_PASSED_FD + i as RawFd) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        // The child has its own copies now.
        drop(high);
        let child = spawned.map_err(|e| SpawnError::Exec(program.clone(), e))?;
        let pid = child.id() as i32;
        // std's Child is dropped without waiting: reaping goes through the
        // pidfd below, which cannot hit a recycled pid.
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                sys::signal(pid, Signal::KILL);
                let mut c = child;
                let _ = c.wait();
                return Err(SpawnError::Watch(pid, e));
            }
        };
        drop(child);
        Ok(Child {
            pid,
            pidfd,
            own: true,
            reaped: AtomicBool::new(false),
        })
    }

    /// The child of `rec` if it still runs (not a zombie) and its command
    /// line still contains the marker.
    pub fn adopt(rec: &Record) -> Option<Child> {
        if rec.pid <= 0 || !alive_with(rec.pid, &rec.marker) {
            return None;
        }
        let pidfd = sys::pidfd_open(rec.pid).ok()?;
        // Checked again with the pidfd held: the pid cannot be recycled now.
        alive_with(rec.pid, &rec.marker).then_some(Child {
            pid: rec.pid,
            pidfd,
            own: false,
            reaped: AtomicBool::new(false),
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether this rvirtd process started it.
    pub fn is_own(&self) -> bool {
        self.own
    }

    /// Its record, with `marker` a string its command line contains.
    pub fn record(&self, marker: &str) -> Record {
        Record {
            pid: self.pid,
            marker: marker.to_string(),
        }
    }

    /// Sends SIGTERM or SIGKILL; false when it is already gone.
    pub fn signal(&self, sig: Signal) -> bool {
        !self.reaped.load(Ordering::SeqCst) && sys::signal(self.pid, sig)
    }

    /// Sends `sig` to the child's process group: its own, since it started a
    /// new session, so this reaches what it forked (dnsmasq's script
    /// runner) and nothing else. False when the group is gone.
    pub fn signal_group(&self, sig: Signal) -> bool {
        rustix::process::Pid::from_raw(self.pid)
            .is_some_and(|p| rustix::process::kill_process_group(p, sig).is_ok())
    }

    /// Waits until it has exited, at most `timeout` (`None`: for ever);
    /// true once it has. A child of this process is reaped then.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let exited = sys::wait_readable(self.pidfd.as_fd(), timeout).unwrap_or(false);
        if exited {
            self.reap();
        }
        exited
    }

    /// Whether it has exited (no wait).
    pub fn has_exited(&self) -> bool {
        self.wait(Some(Duration::ZERO))
    }

    /// Reaps an exited child of this process, once.
    fn reap(&self) {
        if self.own && !self.reaped.swap(true, Ordering::SeqCst) {
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
        }
    }

    /// SIGTERM, then SIGKILL when it has not exited after `grace`; true
    /// once it has exited.
    pub fn stop(&self, grace: Duration) -> bool {
        self.signal(Signal::TERM);
        if self.wait(Some(grace)) {
            return true;
        }
        tracing::warn!(pid = self.pid, "child ignored SIGTERM; killing it");
        self.signal(Signal::KILL);
        self.wait(Some(KILL_WAIT))
    }
}

/// Whether `pid` is a live (not zombie) process whose command line
/// contains `marker`.
fn alive_with(pid: i32, marker: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline
        .split(|&b| b == 0)
        .any(|arg| String::from_utf8_lossy(arg).contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str, pass: Vec<OwnedFd>, log: Option<&Path>) -> Child {
        Child::spawn(Spawn {
            program: Path::new("/bin/sh"),
            args: &["-c".to_string(), script.to_string()],
            pass,
            log,
            env_remove: &[],
            jail: None,
            env: &[],
        })
        .unwrap()
    }

    #[test]
    fn passed_descriptors_arrive_at_their_numbers_and_output_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("child.log");
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, d) = std::os::unix::net::UnixStream::pair().unwrap();
        // The child writes to fd 3 and fd 4, then says which fds it has.
        let child = sh(
            "echo three >&3; echo four >&4; ls /proc/self/fd | sort -n | tr '\\n' ' '",
            vec![b.into(), d.into()],
            Some(&log),
        );
        assert!(child.wait(Some(Duration::from_secs(10))));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &a, &mut s).unwrap();
        assert_eq!(s, "three\n");
        s.clear();
        std::io::Read::read_to_string(&mut &c, &mut s).unwrap();
        assert_eq!(s, "four\n");
        // stdin, stdout, stderr, the two passed, ls's own directory fd, and
        // whatever the test harness itself leaves inheritable; none of
        // this process's own descriptors (`a`, `c`, the copies above 4).
        let fds: Vec<i32> = std::fs::read_to_string(&log)
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        let inheritable = |fd: i32| {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC == 0
        };
        let ours: Vec<i32> = fds
            .iter()
            .copied()
            .filter(|&fd| fd > 4 && !inheritable(fd))
            .collect();
        assert!(fds.starts_with(&[0, 1, 2, 3, 4]), "{fds:?}");
        assert!(ours.len() <= 1, "only ls's own fd may be new: {fds:?}");
        assert!(child.has_exited());
        assert!(
            !child.signal(Signal::TERM),
            "a reaped child is not signalled"
        );
    }

    #[test]
    fn stop_escalates_to_sigkill_after_the_grace() {
        let child = sh("trap '' TERM; while :; do sleep 1; done", vec![], None);
        // Let the shell install its trap before the signal.
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        assert!(child.stop(Duration::from_millis(300)));
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(child.has_exited());

        let polite = sh("sleep 30", vec![], None);
        let t = Instant::now();
        assert!(polite.stop(Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5), "SIGTERM was enough");
    }

    #[test]
    fn a_record_finds_the_child_again_but_not_a_stranger() {
        let child = sh("sleep 30 # rvirt-marker-1234", vec![], None);
        let rec = child.record("rvirt-marker-1234");
        let again = Child::adopt(&rec).expect("adopted");
        assert_eq!(again.pid(), child.pid());
        assert!(!again.is_own());
        assert!(Child::adopt(&Record {
            pid: child.pid(),
            marker: "someone-else".into()
        })
        .is_none());
        assert!(child.stop(Duration::from_secs(5)));
        // The adopted handle sees the exit through its own pidfd.
        assert!(again.wait(Some(Duration::from_secs(5))));
        assert!(Child::adopt(&rec).is_none(), "gone");
        assert!(Child::adopt(&Record {
            pid: 0,
            marker: String::new()
        })
        .is_none());
    }

    #[test]
    fn removed_variables_do_not_reach_the_child() {
        assert!(std::env::var_os("HOME").is_some());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("env.log");
        let child = Child::spawn(Spawn {
            program: Path::new("/bin/sh"),
            args: &["-c".into(), "echo ${HOME:-unset}".into()],
            pass: vec![],
            log: Some(&log),
            env_remove: &["HOME"],
            jail: None,
            env: &[],
        })
        .unwrap();
        assert!(child.wait(Some(Duration::from_secs(10))));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "unset\n");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let e = Child::spawn(Spawn {
            program: Path::new("/nonexistent/rvirt-program"),
            args: &[],
            pass: vec![],
            log: None,
            env_remove: &[],
            jail: None,
            env: &[],
        })
        .unwrap_err();
        assert!(matches!(e, SpawnError::Exec(..)), "{e}");
    }

    #[test]
    fn a_jailed_child_is_made_by_hand_and_its_exec_error_comes_back() {
        // Needs root (mounts, cgroups), as rvirtd's confinement does.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let mut binds = vec![rvirt_jail::Bind {
            path: sh.clone(),
            writable: false,
        }];
        for lib in rvirt_jail::shared_objects(&sh).unwrap() {
            binds.push(rvirt_jail::Bind {
                path: lib,
                writable: false,
            });
        }
        let jail = rvirt_jail::Jail {
            uid: 65534,
            gid: 65534,
            root,
            binds,
            devices: vec![rvirt_jail::Device::Null],
            tmp_size: 1 << 20,
            ..rvirt_jail::Jail::default()
        };
        let jail = Arc::new(jail.prepare().unwrap());
        let log = dir.path().join("jailed.log");
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let child = Child::spawn(Spawn {
            program: &sh,
            args: &["-c".into(), "echo $RVIRT_T >&3; echo logged".into()],
            pass: vec![b.into()],
            log: Some(&log),
            env_remove: &[],
            jail: Some(jail.clone()),
            env: &[("RVIRT_T", "jailed")],
        })
        .unwrap();
        assert!(child.wait(Some(Duration::from_secs(10))));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &a, &mut s).unwrap();
        assert_eq!(s, "jailed\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "logged\n");
        let e = Child::spawn(Spawn {
            program: Path::new("/nonexistent/rvirt-program"),
            args: &[],
            pass: vec![],
            log: None,
            env_remove: &[],
            jail: Some(jail),
            env: &[],
        })
        .unwrap_err();
        match e {
            SpawnError::Exec(_, e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            e => panic!("{e}"),
        }
    }
}
