//! The system calls rvirtd makes around its children and descriptors, in
//! one place and through rustix: waiting for a descriptor, pidfds,
//! signals, duplicating descriptors, CPU time, the host name, the log
//! time stamp and the descriptor limit.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal};

/// Waits until `fd` is readable (or hung up), at most `timeout` (`None`:
/// for ever). True when it is; false on timeout. EINTR is retried.
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The soft descriptor limit rvirtd was started with, before
/// [`raise_nofile`] raised it.
static INHERITED_NOFILE: OnceLock<u64> = OnceLock::new();

/// Raises rvirtd's own RLIMIT_NOFILE, as systemd services do: each running
/// domain holds descriptors (its pidfd, its monitor connection, its serial
/// pty when it has one), so the inherited soft limit (often 1,024) would
/// cap the domains long before memory does. The soft limit goes to the
/// hard one; as root the hard one first goes to the kernel's ceiling
/// (`fs.nr_open`). Returns the soft limit before and after. The programs
/// rvirtd starts get the inherited soft limit back ([`inherited_nofile`]).
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let old = getrlimit(Resource::Nofile);
    let soft = old.current.unwrap_or(u64::MAX);
    let _ = INHERITED_NOFILE.set(soft);
    let mut hard = old.maximum;
    if rustix::process::getuid().is_root() {
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        if let Some(c) = ceiling.filter(|&c| hard.is_some_and(|h| c > h)) {
            let raised = Rlimit {
                current: old.current,
                maximum: Some(c),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                hard = Some(c);
            }
        }
    }
    let new = Rlimit {
        current: hard,
        maximum: hard,
    };
    setrlimit(Resource::Nofile, new)?;
    Ok((soft, hard.unwrap_or(u64::MAX)))
}

/// The soft descriptor limit rvirtd inherited, when [`raise_nofile`]
/// changed it: what a child gets back before it runs its program.
pub fn inherited_nofile() -> Option<u64> {
    INHERITED_NOFILE.get().copied()
}

fn pid(raw: i32) -> io::Result<Pid> {
    Pid::from_raw(raw).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// A descriptor that becomes readable when process `raw` exits.
pub fn pidfd_open(raw: i32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(
        pid(raw)?,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Sends SIGTERM or SIGKILL (`sig`) to process `raw` (never a group);
/// false when there is no such process.
pub fn signal(raw: i32, sig: Signal) -> bool {
    pid(raw).is_ok_and(|p| rustix::process::kill_process(p, sig).is_ok())
}

/// A close-on-exec copy of `fd` numbered `min` or above.
pub fn dup_above(fd: impl AsFd, min: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, min)?)
}

/// The clock ticks per second /proc counts CPU time in.
fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// User + system CPU time of process `raw` in nanoseconds (0 when unknown).
pub fn cpu_time_ns(raw: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{raw}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    // After the command: state is field 0, utime 11, stime 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&k| fields.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks.saturating_mul(1_000_000_000) / clock_ticks().max(1)
}

/// The host's name (`localhost` when it has none).
pub fn hostname() -> String {
    let u = rustix::system::uname();
    let name = u.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// `2026-11-23 23:05:01.123+0000`, as libvirt stamps its log lines.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm); saves a `gmtime_r` call for a log stamp.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let t = timestamp();
        assert_eq!(t.len(), "2026-11-23 23:05:01.123+0000".len(), "{t}");
    }

    #[test]
    fn waits_time_out_and_see_data() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!wait_readable(&a, Some(Duration::from_millis(10))).unwrap());
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        assert!(wait_readable(&a, Some(Duration::from_secs(5))).unwrap());
        assert!(cpu_time_ns(std::process::id() as i32) > 0 || clock_ticks() > 0);
        assert!(!hostname().is_empty());
    }
}
