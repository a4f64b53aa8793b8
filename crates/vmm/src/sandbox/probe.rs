//! Test-only (debug builds, which the tests run, or the `sandbox-probe`
//! feature; never in a release build): makes a thread of a chosen kind try
//! something its confinement forbids, so that a test can see it stopped.
//!
//! `RVIRT_SANDBOX_PROBE=NAME=KIND:ACTION[:PATH];…` in the VMM's environment
//! arms it for the VM named NAME (`-name guest=NAME`; `*` for any), so one
//! daemon can start VMs each probing something else; SIGUSR1 (from the
//! test) fires it. KIND is a thread kind (`main`,
//! `vcpu`, `devices`, `monitor`, `chardev`, `blk-io`, `vnc`, `vnc-client`,
//! `signals`); ACTION is
//! `open` (PATH, a host file outside the VM), `execve`, `ptrace`, `socket`
//! (AF_INET) or `mount`. The main thread does it itself; any other kind
//! gets SIGUSR2 and does it in the handler, on its own thread, under its
//! own filters. A call that is refused without killing the VMM is
//! reported on stderr: `rvirt-vmm: probe: KIND ACTION: errno N`.

use std::ffi::CString;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::OnceLock;

use super::Kind;

/// The last thread of each kind to enter the sandbox.
static TIDS: [AtomicI32; Kind::ALL.len()] = [const { AtomicI32::new(0) }; Kind::ALL.len()];

/// Records the calling thread as the one of its kind to probe.
pub fn register(kind: Kind) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    TIDS[kind.index()].store(tid, Ordering::SeqCst);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Open = 1,
    Execve,
    Ptrace,
    Socket,
    Mount,
}

struct Armed {
    kind: Kind,
    action: Action,
    path: CString,
}

static ARMED: OnceLock<Armed> = OnceLock::new();
static PENDING: AtomicU8 = AtomicU8::new(0);

/// Reads `RVIRT_SANDBOX_PROBE`; true when armed (the caller then waits for
/// SIGUSR1 in its signal thread).
pub fn arm(name: Option<&str>) -> bool {
    let Ok(specs) = std::env::var("RVIRT_SANDBOX_PROBE") else {
        return false;
    };
    let Some(spec) = specs.split(';').find_map(|s| {
        let (who, what) = s.split_once('=')?;
        (who == "*" || Some(who) == name).then_some(what)
    }) else {
        return false;
    };
    let mut parts = spec.splitn(3, ':');
    let kind = parts.next().unwrap_or_default();
    let action = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or("/etc/shadow");
    let Some(kind) = Kind::ALL.iter().copied().find(|k| k.name() == kind) else {
        crate::say(format_args!("rvirt-vmm: probe: no thread kind '{kind}'"));
        return false;
    };
    let action = match action {
        "open" => Action::Open,
        "execve" => Action::Execve,
        "ptrace" => Action::Ptrace,
        "socket" => Action::Socket,
        "mount" => Action::Mount,
        other => {
            crate::say(format_args!("rvirt-vmm: probe: no action '{other}'"));
            return false;
        }
    };
    let path = CString::new(path).unwrap_or_default();
    // SAFETY: sigaction with a zeroed struct and a handler of the plain
    // signature; SIGUSR2 is used for nothing else.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr2 as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
    }
    ARMED.set(Armed { kind, action, path }).is_ok()
}

/// Fires the armed probe (from the main loop, on SIGUSR1).
pub fn fire() {
    let Some(a) = ARMED.get() else { return };
    if a.kind == Kind::Main || a.kind == Kind::Start {
        act(a);
        return;
    }
    let tid = TIDS[a.kind.index()].load(Ordering::SeqCst);
    if tid == 0 {
        crate::say(format_args!(
            "rvirt-vmm: probe: no {} thread runs",
            a.kind.name()
        ));
        return;
    }
    PENDING.store(1, Ordering::SeqCst);
    // SAFETY: tgkill to a thread of this process.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR2) };
}

extern "C" fn on_sigusr2(_sig: libc::c_int) {
    if PENDING.swap(0, Ordering::SeqCst) == 1 {
        if let Some(a) = ARMED.get() {
            act(a);
        }
    }
}

/// Makes the forbidden call with raw system calls (no allocation: this
/// runs in a signal handler too).
fn act(a: &Armed) {
    // SAFETY: each call takes constant arguments or `a.path`, a valid C
    // string that lives for the process; none of them touches this
    // process's memory beyond reading those.
    let rc = unsafe {
        match a.action {
            Action::Open => libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                a.path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            ),
            Action::Execve => {
                let argv = [a.path.as_ptr(), std::ptr::null()];
                let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                libc::syscall(
                    libc::SYS_execve,
                    c"/bin/true".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            }
            Action::Ptrace => {
                // init: a process outside the VM (getppid itself is not a
                // call every thread may make).
                libc::syscall(libc::SYS_ptrace, libc::PTRACE_ATTACH, 1, 0, 0)
            }
            Action::Socket => libc::syscall(
                libc::SYS_socket,
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            ),
            Action::Mount => libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null::<libc::c_void>(),
            ),
        }
    };
    let errno = if rc < 0 {
        // SAFETY: reading this thread's errno.
        unsafe { *libc::__errno_location() }
    } else {
        0
    };
    let mut buf = [0u8; 128];
    let mut len = 0;
    let mut put = |s: &[u8]| {
        let n = s.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&s[..n]);
        len += n;
    };
    put(b"rvirt-vmm: probe: ");
    put(a.kind.name().as_bytes());
    put(b" ");
    put(match a.action {
        Action::Open => b"open",
        Action::Execve => b"execve",
        Action::Ptrace => b"ptrace",
        Action::Socket => b"socket",
        Action::Mount => b"mount",
    });
    put(b": errno ");
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = errno.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b"\n");
    // SAFETY: write to stderr from a buffer that outlives the call.
    unsafe { libc::write(2, buf.as_ptr().cast(), len) };
}
