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

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

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

/// `CLONE_VM` and `CLONE_VFORK` (linux/sched.h).
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;

/// The child's stack in [`Prepared::spawn`]: the jail's entry and an
/// `execve` need a few KiB; a guard page below it.
const STACK: usize = 256 << 10;
const GUARD: usize = 4096;

/// What the child runs in [`Prepared::spawn`], reached through a thin
/// pointer by [`child_entry`].
struct Entry<'a> {
    run: &'a mut dyn FnMut(Joined) -> Infallible,
    joined: Joined,
}

/// The child's first Rust frame, on its own stack.
extern "C" fn child_entry(arg: *mut libc::c_void) -> ! {
    // SAFETY: `arg` is the `Entry` the parent made in `Prepared::spawn`,
    // alive there while the parent waits for this child (CLONE_VFORK).
    let e = unsafe { &mut *arg.cast::<Entry<'_>>() };
    run_child(e.run, e.joined)
}

/// Runs the child's part, which never returns (`Infallible`).
fn run_child(run: &mut dyn FnMut(Joined) -> Infallible, joined: Joined) -> ! {
    match run(joined) {}
}

/// `clone3(args)`, the child starting at `entry(arg)` on the stack `args`
/// names; the parent gets the system call's raw result (the pid, or
/// `-errno`).
///
/// # Safety
///
/// `args` names a stack of its size that nothing else uses, and
/// `entry` never returns; with `CLONE_VM` the caller's contract is
/// [`Prepared::spawn`]'s.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_into(
    args: &CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> !,
    arg: *mut libc::c_void,
) -> i64 {
    let ret: i64;
    // SAFETY: the system call reads `args` (valid, of the size passed).
    // In the parent it returns as any system call (rcx and r11 clobbered).
    // In the child, the kernel has put the stack pointer at the top of the
    // new stack: nothing of the caller's frame is used there, only r12 and
    // r13 (kept by the kernel), and `entry` never returns.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A stack for a `CLONE_VM` child: an anonymous mapping with a guard page
/// at its low end, unmapped on drop.
struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: a new private anonymous mapping; nothing else is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD + STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The usable part's lowest address.
    fn low(&self) -> u64 {
        self.base as u64 + GUARD as u64
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, which no child uses any more
        // (it has exec'd or exited when `spawn` returns).
        unsafe { libc::munmap(self.base, GUARD + STACK) };
    }
}

/// This process's dumpable flag before any child changed it: read by the
/// first [`crate::Jail::prepare`], which comes before any spawn, so a
/// spawn on another thread cannot have cleared it yet.
static DUMPABLE: OnceLock<i32> = OnceLock::new();

/// The dumpable flag [`Prepared::spawn`] puts back.
pub(crate) fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE reads a flag.
    *DUMPABLE.get_or_init(|| unsafe { libc::prctl(libc::PR_GET_DUMPABLE) })
}

impl Prepared {
    /// Starts a child running `run` (which never returns: it execs or
    /// exits) as `posix_spawn` does: it shares this
    /// process's memory (`CLONE_VM`) on a stack of its own and the calling
    /// thread waits until it has exec'd or exited (`CLONE_VFORK`), so
    /// nothing of rvirtd is copied and the cost does not grow with its
    /// size (a `fork` copies every mapping and page table of a daemon
    /// with thousands of threads). The child is made inside the jail's
    /// cgroup v2 where the kernel can (see the module's note). Where the
    /// kernel has no `clone3`, this is [`Prepared::fork`].
    ///
    /// The child's credentials, namespaces, root, rlimits and descriptor
    /// table are its own (no CLONE_FS, CLONE_FILES, CLONE_SIGHAND or
    /// CLONE_THREAD): only memory is shared, and the jail's entry changes
    /// none (its credentials go through raw system calls, not glibc's,
    /// which would change every thread of the process). Its credential
    /// change marks the shared memory not dumpable; this process's
    /// dumpable flag is put back after (as it was before the first
    /// spawn: concurrent spawns cannot read each other's change).
    ///
    /// Returns the child's pid and, from `clone3`, its pidfd.
    ///
    /// # Safety
    ///
    /// `run` runs in the child while other threads of this process run on
    /// the same memory: it may only make async-signal-safe system calls
    /// (this jail's [`Prepared::enter`], `dup2`, `execve`, `_exit`) on
    /// data made before the call, write no memory the parent reads but
    /// through a descriptor, allocate nothing, take no lock, and end in
    /// `execve` or `_exit`.
    pub unsafe fn spawn(
        &self,
        run: &mut dyn FnMut(Joined) -> Infallible,
    ) -> io::Result<(i32, Option<OwnedFd>)> {
        #[cfg(target_arch = "x86_64")]
        {
            let stack = Stack::new()?;
            let into = self
                .cgroup_v2
                .as_ref()
                .filter(|_| !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed));
            let dumpable = dumpable();
            for cgroup in [into, None] {
                let mut pidfd: libc::c_int = -1;
                let mut args = CloneArgs {
                    flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD,
                    pidfd: &mut pidfd as *mut libc::c_int as u64,
                    exit_signal: libc::SIGCHLD as u64,
                    stack: stack.low(),
                    stack_size: STACK as u64,
                    ..CloneArgs::default()
                };
                if let Some(dir) = cgroup {
                    args.flags |= CLONE_INTO_CGROUP;
                    args.cgroup = dir.as_raw_fd() as u64;
                }
                let mut entry = Entry {
                    run: &mut *run,
                    joined: Joined {
                        v2: cgroup.is_some(),
                    },
                };
                // The child gets every signal blocked until it sets its
                // own mask, so no handler of this process runs on its
                // stack; the mask is this thread's again after.
                let mut old = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
                // SAFETY: `all` and `old` are sigsets on this stack;
                // `clone3_into` gets a stack of `STACK` bytes only this
                // child uses and an entry that never returns; `entry`
                // lives until the child has exec'd or exited, which is
                // when CLONE_VFORK lets this thread go on; the caller's
                // contract covers what `run` does.
                let rc = unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::pthread_sigmask(libc::SIG_SETMASK, &all, old.as_mut_ptr());
                    let rc = clone3_into(&args, child_entry, (&mut entry as *mut Entry<'_>).cast());
                    libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
                    if dumpable > 0 {
                        libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong);
                    }
                    rc
                };
                if rc > 0 {
                    // SAFETY: CLONE_PIDFD stored a new descriptor this
                    // process owns.
                    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
                    return Ok((rc as i32, pidfd));
                }
                let errno = (-rc) as i32;
                match cgroup {
                    Some(_) if unsupported(errno) => {
                        if !NO_CLONE_INTO_CGROUP.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %io::Error::from_raw_os_error(errno), "no clone3 into a cgroup; children join theirs by cgroup.procs");
                        }
                    }
                    Some(_) => {
                        tracing::debug!(error = %io::Error::from_raw_os_error(errno), "no clone into the cgroup; cloning outside it");
                    }
                    // No clone3 at all (before Linux 5.3): fork.
                    None if errno == libc::ENOSYS => break,
                    None => return Err(io::Error::from_raw_os_error(errno)),
                }
            }
        }
        // SAFETY: the caller's contract is stricter than fork's.
        match unsafe { self.fork()? } {
            Forked::Child(joined) => run_child(run, joined),
            Forked::Parent { pid, pidfd } => Ok((pid, pidfd)),
        }
    }
}
