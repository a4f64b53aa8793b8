//! Starting a jailed child by hand instead of with std's `Command`, so it
//! is made inside its cgroup v2 (`rvirt_jail::Prepared::spawn`: `clone3`
//! with `CLONE_INTO_CGROUP`, which `Command` cannot do), shares rvirtd's
//! memory until it execs instead of copying it (`CLONE_VM | CLONE_VFORK`)
//! and comes with its pidfd. What `Command` would do is done here the same
//! way: argv and the environment built before the spawn, stdio and the passed descriptors
//! placed with `dup2`, the signal mask emptied and SIGPIPE back to its
//! default, a close-on-exec pipe carrying the errno of a failed step or
//! `execve` back to the parent.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rvirt_jail::{Joined, Prepared};

use super::FIRST_PASSED_FD;
use crate::sys;

/// What the child needs, every byte of it made before the fork.
pub(super) struct Plan {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl Plan {
    /// `program` with `args` (argv\[0\] is the program, as `Command` gives
    /// it), rvirtd's environment less `remove`, plus `add`.
    pub(super) fn new(
        program: &Path,
        args: &[String],
        remove: &[&str],
        add: &[(&str, &str)],
    ) -> io::Result<Plan> {
        let program = cstring(program.as_os_str().as_bytes())?;
        let mut argv = vec![program.clone()];
        for a in args {
            argv.push(cstring(a.as_bytes())?);
        }
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                !remove.iter().any(|r| OsStr::new(r) == k)
                    && !add.iter().any(|(a, _)| OsStr::new(a) == k)
            })
            .collect();
        env.extend(add.iter().map(|(k, v)| (k.into(), v.into())));
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring(&kv)
            })
            .collect::<io::Result<_>>()?;
        Ok(Plan {
            program,
            argv,
            envp,
        })
    }
}

/// Starts `plan` jailed by `jail`: `log` (else /dev/null) as stdout and
/// stderr, /dev/null as stdin, `high[i]` at `FIRST_PASSED_FD + i`, in a
/// new session. Every descriptor given is numbered at or above the passed
/// range (so placing one never overwrites another). Returns the pid and
/// its pidfd once the program runs; the errno of the step that failed
/// otherwise (the child is reaped then).
pub(super) fn spawn(
    plan: &Plan,
    log: Option<File>,
    high: &[OwnedFd],
    jail: &Prepared,
) -> io::Result<(i32, OwnedFd)> {
    let above = FIRST_PASSED_FD + high.len() as RawFd;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let stdin = sys::dup_above(&null, above)?;
    let out = match &log {
        Some(f) => sys::dup_above(f, above)?,
        None => sys::dup_above(&null, above)?,
    };
    let (err_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // The parent must hold no write end, or its read never ends.
    let err_w = sys::dup_above(&pipe_w, above)?;
    drop(pipe_w);
    let high_raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let raw = ChildFds {
        stdin: stdin.as_raw_fd(),
        out: out.as_raw_fd(),
        report: err_w.as_raw_fd(),
    };
    // The child shares rvirtd's memory until it execs (`Prepared::spawn`,
    // as posix_spawn): a fork would copy the page tables and mappings of
    // a daemon that has two threads per running domain, which at 2,000
    // domains was 70% of rvirtd's time in a start (the copy, then its
    // teardown at exec).
    let mut run = |joined: Joined| -> std::convert::Infallible {
        // SAFETY: this runs in the child `spawn` made, on its own stack;
        // everything it reads was made above, and `child` only makes
        // async-signal-safe system calls, writes no shared memory and
        // never returns.
        unsafe { child(&plan.program, &argv, &envp, raw, &high_raw, jail, joined) }
    };
    // SAFETY: `run` keeps to `spawn`'s contract (see above).
    let (pid, pidfd) = unsafe { jail.spawn(&mut run)? };
    drop((stdin, out, err_w, null, log));
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match rustix::io::read(&err_r, &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                got = 0;
                tracing::warn!(pid, error = %e, "cannot read the child's start report");
                break;
            }
        }
    }
    if got == errno.len() {
        reap(pid);
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    let pidfd = match pidfd {
        Some(fd) => fd,
        None => sys::pidfd_open(pid).inspect_err(|_| {
            sys::signal(pid, rustix::process::Signal::KILL);
            reap(pid);
        })?,
    };
    Ok((pid, pidfd))
}

fn reap(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
}

#[derive(Clone, Copy)]
struct ChildFds {
    stdin: RawFd,
    out: RawFd,
    report: RawFd,
}

/// The child's side: never returns.
///
/// # Safety
///
/// Only in the child `Prepared::spawn` made (sharing the parent's memory),
/// before exec; `argv` and `envp` are null-terminated arrays of pointers
/// to live C strings.
unsafe fn child(
    program: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: ChildFds,
    high: &[RawFd],
    jail: &Prepared,
    joined: Joined,
) -> ! {
    let fail = |errno: i32| -> ! {
        let b = errno.to_ne_bytes();
        // SAFETY: a write of a stack buffer and _exit, both
        // async-signal-safe.
        unsafe {
            libc::write(fds.report, b.as_ptr().cast(), b.len());
            libc::_exit(127)
        }
    };
    let last = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: system calls on descriptors and data made before the spawn;
    // this process is a single thread whose memory the parent's thread
    // does not touch until it execs.
    unsafe {
        if libc::setsid() < 0 {
            fail(last());
        }
        // dup2 leaves close-on-exec clear on the new descriptor.
        for (from, to) in [(fds.stdin, 0), (fds.out, 1), (fds.out, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(last());
            }
        }
        for (i, &fd) in high.iter().enumerate() {
            if libc::dup2(fd, FIRST_PASSED_FD + i as RawFd) < 0 {
                fail(last());
            }
        }
        // rvirtd ignores SIGPIPE and may block signals in this thread; the
        // program starts with neither, as `Command` starts it.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if let Err(e) = jail.enter(joined) {
            fail(e.raw_os_error().unwrap_or(libc::EPERM));
        }
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(last())
    }
}
