//! `-sandbox on`: rvirt-vmm confines itself, in layers.
//!
//! 1. Landlock (where the kernel has it): from the sandbox's start the
//!    process may open only the files its command line names (and /dev/kvm,
//!    the ptys it asks for), may signal no process outside itself and reach
//!    no abstract socket outside itself (`paths.rs`).
//! 2. seccomp: one allow-list per kind of thread (`filters.rs`), installed
//!    by each thread when it starts ([`enter`], called through the thread
//!    hooks of the crates that start threads); a process-wide list from the
//!    sandbox's start, so that no thread ever runs without one. A call no
//!    list allows raises SIGSYS, whose handler writes the thread's kind and
//!    the call's name to stderr (the domain log under rvirtd) and ends the
//!    process (`sigsys.rs`); `x-log=on` makes the kernel log the call and
//!    allow it instead.
//! 3. `-runas`: the user the VMM becomes once the VM runs.
//!
//! io_uring performs its operations outside seccomp's reach: rings are
//! created at start only (io_uring_setup and io_uring_register are not in
//! any list once the VM runs), so only the rings the disks set up exist.
//!
//! Under rvirtd, the jail (crates/jail) adds its own layers before the VMM
//! starts: an unprivileged user, no capabilities, its own mount namespace
//! and root, a cgroup and rlimits.

mod filters;
mod paths;
#[cfg(any(feature = "sandbox-probe", debug_assertions))]
pub mod probe;
#[cfg(all(feature = "sandbox-probe", not(debug_assertions)))]
compile_error!("the sandbox probe is for test builds: never in a release build");
mod sigsys;

use std::cell::Cell;
use std::sync::OnceLock;

use rvirt_vmm_config::sandbox::{RunAs, SandboxConfig};
use rvirt_vmm_config::VmConfig;
use seccompiler::BpfProgram;

pub use filters::Kind;

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot build the {0} filter")]
    Build(&'static str, #[source] seccompiler::BackendError),
    #[error("cannot install the {0} filter")]
    Install(&'static str, #[source] seccompiler::Error),
    #[error("cannot catch SIGSYS")]
    Sigsys(#[source] std::io::Error),
    #[error("cannot apply the Landlock rules")]
    Landlock(#[source] landlock::RulesetError),
    #[error("cannot find user '{0}'")]
    NoUser(String),
    #[error("cannot become {0}")]
    RunAs(String, #[source] std::io::Error),
    #[error(
        "-netdev user '{0}' needs passt, which a sandboxed VMM cannot run: \
         give it -netdev stream to a passt started outside (as rvirtd does)"
    )]
    UserNet(String),
}

struct Installed {
    filters: Vec<BpfProgram>,
    counts: Vec<usize>,
    clone3: BpfProgram,
}

static SANDBOX: OnceLock<Installed> = OnceLock::new();

thread_local! {
    /// This thread's kind, for the SIGSYS report (a const-initialised Cell:
    /// safe to read in a signal handler).
    static KIND: Cell<u8> = const { Cell::new(0) };
}

/// The kind of the calling thread (`start` until it entered one).
fn current_kind() -> Kind {
    let i = KIND.with(|k| k.get()) as usize;
    Kind::ALL.get(i).copied().unwrap_or(Kind::Start)
}

/// A user to become, looked up before anything is confined.
pub struct User {
    name: String,
    uid: u32,
    gid: u32,
}

/// What [`prepare`] found: the `-runas` user to become once the VM runs.
pub struct Prepared {
    pub user: Option<User>,
    sandbox: Option<SandboxConfig>,
}

/// Builds every filter and looks the `-runas` user up, before anything is
/// confined (the user database is not reachable afterwards). Call once,
/// from the main thread, before any other thread exists.
pub fn prepare(config: &VmConfig) -> Result<Prepared, SandboxError> {
    let user = config.runas.as_ref().map(lookup).transpose()?;
    if config.sandbox.is_some() {
        // Landlock lists no passt to execute (and spawn=deny forbids it):
        // refused here in one line rather than failing at exec. rvirtd
        // runs passt itself for a confined VMM (docs/confinement.md).
        let nets = config
            .virtio
            .iter()
            .filter_map(|v| match v {
                rvirt_vmm_config::VirtioConfig::Net(n) => Some(n),
                _ => None,
            })
            .chain(config.nics.iter().map(|n| &n.net));
        let user_net = nets
            .filter(|n| matches!(n.backend, rvirt_vmm_config::Netdev::User(_)))
            .map(|n| n.netdev.clone())
            .next();
        if let Some(id) = user_net {
            return Err(SandboxError::UserNet(id));
        }
    }
    if let Some(cfg) = config.sandbox {
        let mut filters = Vec::new();
        let mut counts = Vec::new();
        for kind in Kind::ALL {
            let (prog, n) = filters::build(kind, &cfg, user.is_some())
                .map_err(|e| SandboxError::Build(kind.name(), e))?;
            filters.push(prog);
            counts.push(n);
        }
        let clone3 = filters::clone3_enosys().map_err(|e| SandboxError::Build("clone3", e))?;
        let _ = SANDBOX.set(Installed {
            filters,
            counts,
            clone3,
        });
    }
    Ok(Prepared {
        user,
        sandbox: config.sandbox,
    })
}

impl Prepared {
    /// Whether `-sandbox on` was given.
    pub fn is_on(&self) -> bool {
        self.sandbox.is_some()
    }

    /// Confines the whole process: SIGSYS reported, no core dumps,
    /// Landlock, the process-wide filter. Every thread created from now on
    /// inherits all of it.
    pub fn confine(&self, config: &VmConfig) -> Result<(), SandboxError> {
        let (Some(cfg), Some(s)) = (self.sandbox, SANDBOX.get()) else {
            return Ok(());
        };
        warm_malloc();
        sigsys::install().map_err(SandboxError::Sigsys)?;
        // Core dumps would write guest memory out; a process that is not
        // dumpable cannot be ptraced by another of the same user either.
        // SAFETY: prctl(PR_SET_DUMPABLE) changes only this process's flag.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        paths::restrict(config).map_err(SandboxError::Landlock)?;
        tracing::debug!(
            counts = ?Kind::ALL.iter().map(|k| (k.name(), s.counts[k.index()])).collect::<Vec<_>>(),
            "seccomp allow-lists"
        );
        if !cfg.spawn {
            seccompiler::apply_filter(&s.clone3).map_err(|e| SandboxError::Install("clone3", e))?;
        }
        install(Kind::Start)
    }
}

/// glibc's malloc opens /proc/sys/vm/overcommit_memory the first time any
/// thread shrinks a thread arena's heap (and caches the answer for the
/// process); once confined that open is a forbidden call, from whichever
/// thread frees first (a VNC client thread freeing a frame's buffers ended
/// the VMM this way). One arena is shrunk here, before any filter or
/// Landlock, so that the answer is cached. Small blocks, because large ones
/// would be mmap'd rather than taken from the thread's heap: freed, they
/// leave a top over the 128 KiB trim threshold, which glibc gives back by
/// shrinking the heap.
fn warm_malloc() {
    let warm = std::thread::Builder::new()
        .name("malloc-warm".into())
        .spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 1024]).collect();
            drop(std::hint::black_box(blocks));
        });
    if let Ok(t) = warm {
        let _ = t.join();
    }
}

fn install(kind: Kind) -> Result<(), SandboxError> {
    #[cfg(any(feature = "sandbox-probe", debug_assertions))]
    probe::register(kind);
    let Some(s) = SANDBOX.get() else {
        return Ok(());
    };
    seccompiler::apply_filter(&s.filters[kind.index()])
        .map_err(|e| SandboxError::Install(kind.name(), e))?;
    KIND.with(|k| k.set(kind.index() as u8));
    Ok(())
}

/// Narrows the calling thread to `kind`'s list (nothing without
/// `-sandbox on`). A thread that cannot be confined ends the process: it
/// must not run unconfined.
pub fn enter(kind: Kind) {
    if let Err(e) = install(kind) {
        crate::say(format_args!(
            "rvirt-vmm: sandbox: {}",
            crate::error_chain(&e)
        ));
        std::process::abort();
    }
}

/// The thread hooks handed to the crates that start threads.
pub fn enter_vcpu() {
    enter(Kind::Vcpu)
}
pub fn enter_monitor() {
    enter(Kind::Monitor)
}
pub fn enter_block_io() {
    enter(Kind::BlockIo)
}
pub fn enter_vnc(role: rvirt_vnc::ThreadRole) {
    enter(match role {
        rvirt_vnc::ThreadRole::Accept | rvirt_vnc::ThreadRole::Refresh => Kind::Vnc,
        rvirt_vnc::ThreadRole::Client => Kind::VncClient,
    })
}

/// The number of calls `kind` may make (for docs and tests).
/// Whether the sandbox's filters are installed (`-sandbox on`, once the
/// VM runs): what the main loop may do for a monitor request depends on
/// it.
pub fn is_installed() -> bool {
    SANDBOX.get().is_some()
}

pub fn allowed_count(kind: Kind) -> Option<usize> {
    SANDBOX.get().map(|s| s.counts[kind.index()])
}

fn lookup(r: &RunAs) -> Result<User, SandboxError> {
    match r {
        RunAs::Ids(uid, gid) => Ok(User {
            name: format!("{uid}:{gid}"),
            uid: *uid,
            gid: *gid,
        }),
        RunAs::User(name) => {
            let c = std::ffi::CString::new(name.as_str())
                .map_err(|_| SandboxError::NoUser(name.clone()))?;
            let mut pw: libc::passwd = unsafe_zeroed_passwd();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: getpwnam_r writes into `pw` and `buf` (whose length is
            // passed) and sets `out` to `&pw` or null.
            let rc = unsafe {
                libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out)
            };
            if rc != 0 || out.is_null() {
                return Err(SandboxError::NoUser(name.clone()));
            }
            Ok(User {
                name: name.clone(),
                uid: pw.pw_uid,
                gid: pw.pw_gid,
            })
        }
    }
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: passwd is plain data (integers and pointers); all-zero is a
    // valid value that getpwnam_r overwrites.
    unsafe { std::mem::zeroed() }
}

impl User {
    /// Becomes this user on every thread (glibc carries the change to each
    /// one), with no supplementary groups; afterwards root cannot be
    /// regained.
    pub fn become_user(&self) -> Result<(), SandboxError> {
        let err = |e| SandboxError::RunAs(self.name.clone(), e);
        // glibc's setgroups/setgid/setuid run on every thread (its setxid
        // broadcast); a raw system call would change only the calling
        // thread's credentials.
        // SAFETY: plain system-call wrappers taking integers and an empty
        // group list.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) < 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
            if libc::setgid(self.gid) < 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
            if libc::setuid(self.uid) < 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
            // SAFETY (as above): a check that the drop cannot be undone.
            if self.uid != 0 && libc::setuid(0) == 0 {
                return Err(err(std::io::Error::other("root could be regained")));
            }
        }
        Ok(())
    }
}
