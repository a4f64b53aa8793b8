//! Forking straight into the jail's cgroup v2: `clone3` with
//! `CLONE_INTO_CGROUP` (Linux 5.7), so the child never joins it by
//! writing `cgroup.procs`. That write takes the cgroup threadgroup
//! rwsem for writing, which on this project's kernels waits for an RCU
//! grace period (5-30 ms measured, most of a confined start's cost);
//! a clone into the cgroup takes it for reading only. Neither glibc 2.36
//! nor std's `Command` can clone into a cgroup, nor do rustix or nix wrap
//! `clone3`, hence the raw system call.
//!
//! Where the kernel lacks it (no `clone3`, or one that does not know the
//! cgroup field) or refuses it, the child is made with `fork` and joins
//! by `cgroup.procs` in [`crate::Prepared::enter`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Prepared;

/// Where the child starts, as [`Prepared::fork`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Made inside the cgroup v2 directory: nothing to write.
    pub v2: bool,
}

/// What [`Prepared::fork`] returns in each process.
#[derive(Debug)]
pub enum Forked {
    /// In the child: enter the jail with this, then exec.
    Child(Joined),
    /// In the parent: the child's pid and, from `clone3`, its pidfd
    /// (close-on-exec).
    Parent { pid: i32, pidfd: Option<OwnedFd> },
}

/// `struct clone_args` (linux/sched.h), up to `cgroup` (CLONE_ARGS_SIZE_VER2);
/// libc has no x86_64 glibc binding of it.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Set once the kernel has shown it has no `clone3` into a cgroup, so later
/// spawns go straight to `fork`.
static NO_CLONE_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// The kernel has no such call, or a `clone_args` it does not know the
/// cgroup field of, or no `CLONE_INTO_CGROUP` flag.
fn unsupported(errno: i32) -> bool {
    matches!(errno, libc::ENOSYS | libc::E2BIG | libc::EINVAL)
}

impl Prepared {
    /// Forks the calling process, the child inside the jail's cgroup v2
    /// when the kernel can (see the module's note), else with `fork`.
    ///
    /// # Safety
    ///
    /// As `fork`: in a multi-threaded parent the child may only make
    /// async-signal-safe calls (this jail's [`Prepared::enter`], `dup2`,
    /// `execve`, `_exit`) until it execs. After a `clone3` the child's
    /// libc thread state still names the parent's thread: it must not
    /// use pthread calls either.
    pub unsafe fn fork(&self) -> io::Result<Forked> {
        if let Some(dir) = &self.cgroup_v2 {
            if !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed) {
                let mut pidfd: libc::c_int = -1;
                let args = CloneArgs {
                    flags: CLONE_PIDFD | CLONE_INTO_CGROUP,
                    pidfd: &mut pidfd as *mut libc::c_int as u64,
                    exit_signal: libc::SIGCHLD as u64,
                    cgroup: dir.as_raw_fd() as u64,
                    ..CloneArgs::default()
                };
                // SAFETY: `args` is a valid clone_args of the size passed,
                // its pidfd pointer points at a live int; with no
                // CLONE_VM and no stack the child runs on a copy of this
                // stack, as after fork, and the caller's contract covers
                // what it does next.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_clone3,
                        &args as *const CloneArgs,
                        std::mem::size_of::<CloneArgs>(),
                    )
                };
                match rc {
                    0 => return Ok(Forked::Child(Joined { v2: true })),
                    pid if pid > 0 => {
                        // SAFETY: CLONE_PIDFD stored a new descriptor
                        // this process owns.
                        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
                        return Ok(Forked::Parent {
                            pid: pid as i32,
                            pidfd,
                        });
                    }
                    _ => {
                        let e = io::Error::last_os_error();
                        let errno = e.raw_os_error().unwrap_or(0);
                        if unsupported(errno) && !NO_CLONE_INTO_CGROUP.swap(true, Ordering::Relaxed)
                        {
                            tracing::warn!(error = %e, "no clone3 into a cgroup; children join theirs by cgroup.procs");
                        } else {
                            tracing::debug!(error = %e, "no clone into the cgroup; forking");
                        }
                    }
                }
            }
        }
        // SAFETY: the caller's contract is fork's.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(Forked::Child(Joined { v2: false })),
            pid => Ok(Forked::Parent { pid, pidfd: None }),
        }
    }
}
