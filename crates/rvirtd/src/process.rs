//! The VMM processes: starting one in its own session with its output in
//! the domain log, waiting for its monitor, signalling it, and waiting for
//! its exit through a pidfd (no polling), for children and adopted
//! processes alike.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvirt_qmp::QmpClient;
use thiserror::Error;

/// How long a new VMM may take to open its monitor.
pub const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each QMP command may take.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot open the domain log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot execute {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The VMM exited before its monitor came up; `message` is what it
    /// wrote to the log.
    #[error("{message}")]
    Exited { message: String },
    #[error("the VMM did not open its monitor within {0:?}")]
    MonitorTimeout(Duration),
    #[error("QMP: {0}")]
    Qmp(#[from] rvirt_qmp::ClientError),
}

/// A started VMM with its negotiated monitor connection.
pub struct Started {
    pub child: Child,
    pub qmp: QmpClient,
}

/// The descriptor number the first passed fd gets in the VMM (after
/// stdin, stdout and stderr).
pub const FIRST_PASSED_FD: RawFd = 3;

/// Starts `vmm args…` in a new session (so it outlives rvirtd), output
/// appended to `log`, and connects to its monitor at `monitor`.
/// `pass[i]` is open in the VMM as descriptor `FIRST_PASSED_FD + i`.
pub fn start_vmm(
    vmm: &Path,
    args: &[String],
    pass: &[BorrowedFd<'_>],
    log: &Path,
    monitor: &Path,
) -> Result<Started, StartError> {
    let mut logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| StartError::Log {
            path: log.into(),
            source,
        })?;
    let _ = writeln!(logf, "{}: starting up", timestamp());
    let _ = writeln!(logf, "{} {}", vmm.display(), args.join(" "));
    let offset = logf.metadata().map(|m| m.len()).unwrap_or(0);
    let err = logf.try_clone().map_err(|source| StartError::Log {
        path: log.into(),
        source,
    })?;
    let _ = std::fs::remove_file(monitor);
    // Copies numbered above the target range, so that placing one in the
    // child never overwrites another not yet placed; close-on-exec, so
    // only the placed ones reach the VMM.
    let above = FIRST_PASSED_FD + pass.len() as RawFd;
    let high = pass
        .iter()
        .map(|fd| crate::tap::dup_cloexec(fd.as_raw_fd(), above))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| StartError::Spawn {
            path: vmm.into(),
            source,
        })?;
    let high_raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
    let mut cmd = Command::new(vmm);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(logf))
        .stderr(Stdio::from(err));
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid and dup2, which are async-signal-safe; it reads a Vec
    // made before the fork and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
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
    let mut child = spawned.map_err(|source| StartError::Spawn {
        path: vmm.into(),
        source,
    })?;
    let deadline = Instant::now() + MONITOR_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut message = log_since(log, offset);
            if message.is_empty() {
                message = format!("rvirt-vmm exited ({status}) before its monitor came up");
            }
            return Err(StartError::Exited { message });
        }
        if monitor.exists() {
            match QmpClient::connect(monitor, QMP_TIMEOUT) {
                Ok(qmp) => return Ok(Started { child, qmp }),
                Err(e) if Instant::now() > deadline => {
                    kill_and_reap(&mut child);
                    return Err(e.into());
                }
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            kill_and_reap(&mut child);
            return Err(StartError::MonitorTimeout(MONITOR_TIMEOUT));
        }
        // Start-up only: the monitor appears within milliseconds.
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What the log got after `offset`, trimmed, the last lines only.
fn log_since(log: &Path, offset: u64) -> String {
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

/// `2026-11-23 23:05:01.123+0000`, as libvirt stamps its log lines.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let mut tm: libc::tm = libc::tm {
        tm_sec: 0,
        tm_min: 0,
        tm_hour: 0,
        tm_mday: 0,
        tm_mon: 0,
        tm_year: 0,
        tm_wday: 0,
        tm_yday: 0,
        tm_isdst: 0,
        tm_gmtoff: 0,
        tm_zone: std::ptr::null(),
    };
    // SAFETY: gmtime_r reads one time_t and writes the tm we own.
    unsafe { libc::gmtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}+0000",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

/// Sends `sig` to `pid`; false if there is no such process.
pub fn signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill only sends a signal; pid is positive so it names one
    // process, never a group.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether `pid` is a live (not zombie) process whose command line
/// mentions `marker` (guards against a recycled pid).
pub fn is_our_vmm(pid: i32, marker: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(marker)
}

/// A descriptor that becomes readable when the process exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Blocks until the process behind `fd` exits (or `timeout` passes);
/// true once it has exited.
pub fn wait_pidfd(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: one valid pollfd that lives across the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return rc > 0;
    }
}

/// Reaps `pid` if it is our child (no zombie left behind).
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on one pid with a status out pointer we own.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// User + system CPU time of `pid` in nanoseconds (0 when unknown).
pub fn cpu_time_ns(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    // After the command: state is field 0, utime 11, stime 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&k| fields.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    ticks.saturating_mul(1_000_000_000) / hz
}
