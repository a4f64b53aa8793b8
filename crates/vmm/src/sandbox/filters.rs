//! The system calls each kind of thread may make: allow-lists, built with
//! seccompiler into one BPF program per kind.
//!
//! A thread inherits the filters of the thread that creates it and adds
//! its own, and the kernel applies every filter a thread has: a call must
//! pass all of them. So the process-wide [`Kind::Start`] list (installed
//! on the main thread before any other thread exists) holds everything any
//! thread does, at start and later; the main thread narrows itself to
//! [`Kind::Main`] once the VM runs, and every other thread narrows itself
//! to its own list when it starts. Threads created after that (a reboot's
//! vCPU threads and device loop) pass `Start`, `Main` and their own, so
//! `Main` holds what they do too.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use syscalls::Sysno;

use rvirt_vmm_config::sandbox::{Elevate, SandboxConfig, SeccompMode};

/// The kinds of threads rvirt-vmm runs (docs/vmm-threads.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The whole process from the sandbox's start: everything below, plus
    /// what building the VM needs (opening and binding what the command
    /// line names, io_uring rings).
    Start,
    /// The main thread once the VM runs: its event loop, reboots (a new VM,
    /// its memory and threads), the monitor's requests.
    Main,
    /// `CPU n/KVM`: KVM_RUN and the exits it dispatches.
    Vcpu,
    /// `devices`: the event loop over ioeventfds, taps and disk
    /// completions.
    Devices,
    /// `qmp-*`: a monitor connection.
    Monitor,
    /// `chardev *`: host input into a serial port or console.
    Chardev,
    /// `blk-io*`: a disk's worker threads.
    BlockIo,
    /// `vnc-accept`, `vnc-refresh`: the VNC server's accept and refresh
    /// threads, which start the client threads.
    Vnc,
    /// `vnc-client-N`: one VNC client's socket.
    VncClient,
    /// `signals`: sigwait.
    Signals,
    /// The child that drops the last reference to the VM after exit.
    Teardown,
}

impl Kind {
    /// Every kind, in the order of [`Kind::index`].
    pub const ALL: [Kind; 11] = [
        Kind::Start,
        Kind::Main,
        Kind::Vcpu,
        Kind::Devices,
        Kind::Monitor,
        Kind::Chardev,
        Kind::BlockIo,
        Kind::Vnc,
        Kind::VncClient,
        Kind::Signals,
        Kind::Teardown,
    ];

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Main => "main",
            Kind::Vcpu => "vcpu",
            Kind::Devices => "devices",
            Kind::Monitor => "monitor",
            Kind::Chardev => "chardev",
            Kind::BlockIo => "blk-io",
            Kind::Vnc => "vnc",
            Kind::VncClient => "vnc-client",
            Kind::Signals => "signals",
            Kind::Teardown => "teardown",
        }
    }
}

/// One allowed call: unconditionally, or when one of the rules holds.
enum Allow {
    Any(Sysno),
    If(Sysno, Vec<SeccompRule>),
}

fn eq(arg: u8, value: u64) -> SeccompCondition {
    // Arguments and values are known-valid here (index < 6).
    SeccompCondition::new(arg, Len::Qword, Op::Eq, value).expect("valid seccomp condition")
}

fn masked(arg: u8, mask: u64, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, Len::Qword, Op::MaskedEq(mask), value)
        .expect("valid seccomp condition")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conds).expect("a non-empty rule")
}

/// What every thread does: memory (malloc's arenas, thread stacks), futexes
/// (locks, channels, joins), signals (the vCPU kick, the SIGSYS report),
/// time, thread exit, and writing its log lines.
const COMMON: &[Sysno] = &[
    Sysno::futex,
    Sysno::restart_syscall,
    Sysno::rt_sigreturn,
    Sysno::rt_sigprocmask,
    Sysno::sigaltstack,
    Sysno::exit,
    Sysno::exit_group,
    Sysno::mmap,
    Sysno::munmap,
    Sysno::mprotect,
    Sysno::madvise,
    Sysno::brk,
    Sysno::sched_yield,
    Sysno::sched_getaffinity,
    Sysno::clock_gettime,
    Sysno::clock_nanosleep,
    Sysno::nanosleep,
    Sysno::getpid,
    Sysno::gettid,
    Sysno::getrandom,
    Sysno::write,
    Sysno::close,
    Sysno::fcntl,
    Sysno::rseq,
    Sysno::set_robust_list,
];

/// The vCPU loop: KVM_RUN; the devices it reaches through the bus write
/// serial output and raise interrupts through eventfds or KVM_IRQ_LINE;
/// the watchdog's registers arm its timerfd.
const VCPU: &[Sysno] = &[
    Sysno::ioctl,
    Sysno::read,
    Sysno::writev,
    Sysno::sendmsg,
    Sysno::sendto,
    Sysno::pwrite64,
    Sysno::timerfd_settime,
];

/// The device loop: epoll, ioeventfds, taps (readv/writev), disks (the
/// inline engine's calls, io_uring submissions), tap offloads (ioctl).
const DEVICES: &[Sysno] = &[
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    Sysno::epoll_ctl,
    Sysno::read,
    Sysno::readv,
    Sysno::writev,
    Sysno::pread64,
    Sysno::pwrite64,
    Sysno::preadv,
    Sysno::pwritev,
    Sysno::preadv2,
    Sysno::pwritev2,
    Sysno::fsync,
    Sysno::fdatasync,
    Sysno::fallocate,
    Sysno::io_uring_enter,
    Sysno::ioctl,
    Sysno::lseek,
    // The watchdog's second stage, armed when the first runs out.
    Sysno::timerfd_settime,
];

/// A monitor connection: its socket, passed descriptors (SCM_RIGHTS), the
/// shutdown eventfd; statx for `query-block`'s `actual-size` of each image
/// (metadata by path: nothing is opened).
const MONITOR: &[Sysno] = &[
    Sysno::statx,
    Sysno::eventfd2,
    Sysno::ioctl,
    Sysno::accept4,
    Sysno::read,
    Sysno::recvmsg,
    Sysno::recvfrom,
    Sysno::sendmsg,
    Sysno::sendto,
    Sysno::writev,
    Sysno::poll,
    Sysno::ppoll,
    Sysno::shutdown,
    Sysno::fcntl,
    Sysno::getsockopt,
];

/// A chardev's input: reads from stdin, a pty or a socket (accepting a
/// client on a listening one).
const CHARDEV: &[Sysno] = &[
    Sysno::read,
    Sysno::recvfrom,
    Sysno::poll,
    Sysno::ppoll,
    Sysno::accept4,
    Sysno::fcntl,
    Sysno::ioctl,
    Sysno::setsockopt,
];

/// A disk's workers: positioned I/O, flushes, discards, the completion
/// eventfd.
const BLOCK_IO: &[Sysno] = &[
    Sysno::read,
    Sysno::pread64,
    Sysno::pwrite64,
    Sysno::preadv,
    Sysno::pwritev,
    Sysno::preadv2,
    Sysno::pwritev2,
    Sysno::fsync,
    Sysno::fdatasync,
    Sysno::fallocate,
    Sysno::ioctl,
    Sysno::lseek,
];

/// The VNC server's accept and refresh threads (and, as they make the
/// client threads, everything in [`VNC_CLIENT`]): accepting, polling the
/// listener and the wake-up eventfds, and starting a client (its eventfd,
/// FIONBIO on its socket, its peer's address, its thread; prctl and clone
/// are narrowed below; clone3 passes this list to meet the process-wide
/// filter's ENOSYS, as in `main`: a trap here would win over it, and
/// glibc blocks every signal around clone3, so the trap would kill the
/// process without its report; the new thread installs its own filter
/// under this one: seccomp, which can only narrow).
const VNC: &[Sysno] = &[
    Sysno::clone3,
    Sysno::seccomp,
    Sysno::accept4,
    Sysno::poll,
    Sysno::ppoll,
    Sysno::read,
    Sysno::eventfd2,
    Sysno::ioctl,
    Sysno::getpeername,
    Sysno::prctl,
];

/// A VNC client's thread: its non-blocking socket (recv and send are
/// recvfrom and sendto), its wake-up eventfd, and shutting down its own or
/// (taking exclusive access) another client's socket. It receives no
/// descriptor and opens nothing: its challenge comes from getrandom.
/// mremap: glibc's realloc of a large (mmap'd) block, its output queue and
/// pixel buffers growing to a full frame.
const VNC_CLIENT: &[Sysno] = &[
    Sysno::mremap,
    Sysno::recvfrom,
    Sysno::sendto,
    Sysno::poll,
    Sysno::ppoll,
    Sysno::read,
    Sysno::shutdown,
];

const SIGNALS: &[Sysno] = &[Sysno::rt_sigtimedwait];

/// The teardown child: it waits for the VMM's end and drops the VM.
const TEARDOWN: &[Sysno] = &[Sysno::read, Sysno::recvmsg, Sysno::close_range];

/// The main thread's event loop and reboots: a new VM (/dev/kvm, guest
/// memory, the kernel read again), new threads, the device loop's epoll
/// and eventfds, the monitors' requests (`blockdev-add` and snapshots
/// open images: fstatfs tells whether one lives in memory; getsockopt: a
/// stream back-end hot-plugged on a socket passed with getfd checks its
/// type); the signal
/// thread is started from here too.
const MAIN: &[Sysno] = &[
    Sysno::ioctl,
    Sysno::openat,
    Sysno::fstatfs,
    Sysno::read,
    Sysno::pread64,
    Sysno::lseek,
    Sysno::fstat,
    Sysno::newfstatat,
    Sysno::statx,
    Sysno::fcntl,
    Sysno::dup,
    Sysno::dup3,
    Sysno::eventfd2,
    Sysno::epoll_create1,
    Sysno::epoll_ctl,
    // Each boot's watchdog timer.
    Sysno::timerfd_create,
    Sysno::pipe2,
    Sysno::mremap,
    Sysno::rt_sigaction,
    Sysno::rt_sigtimedwait,
    Sysno::tgkill,
    Sysno::prctl,
    Sysno::seccomp,
    Sysno::sendmsg,
    Sysno::recvmsg,
    Sysno::shutdown,
    Sysno::unlink,
    Sysno::unlinkat,
    Sysno::readlink,
    Sysno::getuid,
    Sysno::geteuid,
    Sysno::getgid,
    Sysno::getegid,
    Sysno::sched_getaffinity,
    Sysno::getsockopt,
    Sysno::clone3,
];

/// Only at start: opening, creating and binding what the command line
/// names (files, ptys, sockets of any family for socket chardevs), io_uring
/// rings and their restrictions, pid files, daemonizing's pipe.
const START: &[Sysno] = &[
    Sysno::open,
    Sysno::creat,
    Sysno::rename,
    Sysno::renameat,
    Sysno::renameat2,
    Sysno::mkdir,
    Sysno::socket,
    Sysno::socketpair,
    Sysno::bind,
    Sysno::listen,
    Sysno::connect,
    Sysno::getsockname,
    Sysno::getpeername,
    Sysno::setsockopt,
    Sysno::getsockopt,
    Sysno::accept4,
    Sysno::io_uring_setup,
    Sysno::io_uring_register,
    Sysno::ftruncate,
    Sysno::fstatfs,
    Sysno::statfs,
    Sysno::fsync,
    Sysno::fdatasync,
    Sysno::fchmod,
    Sysno::getdents64,
    Sysno::access,
    Sysno::faccessat,
    Sysno::faccessat2,
    Sysno::uname,
    Sysno::sysinfo,
    Sysno::getrlimit,
    Sysno::prlimit64,
    Sysno::landlock_create_ruleset,
    Sysno::landlock_add_rule,
    Sysno::landlock_restrict_self,
    Sysno::getcwd,
    Sysno::poll,
    Sysno::ppoll,
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    Sysno::ioctl,
];

/// `elevateprivileges=allow` (and any `-runas`, whose drop glibc carries
/// out on every thread: after it no capability is left to regain).
const ELEVATE: &[Sysno] = &[
    Sysno::setuid,
    Sysno::setgid,
    Sysno::setreuid,
    Sysno::setregid,
    Sysno::setresuid,
    Sysno::setresgid,
    Sysno::setgroups,
    Sysno::setfsuid,
    Sysno::setfsgid,
    Sysno::capset,
    Sysno::capget,
];

/// `spawn=allow`: processes other than the VMM's threads, and programs.
const SPAWN: &[Sysno] = &[
    Sysno::fork,
    Sysno::vfork,
    Sysno::execve,
    Sysno::execveat,
    Sysno::wait4,
    Sysno::waitid,
];

/// `resourcecontrol=allow`.
const RESOURCE_CONTROL: &[Sysno] = &[
    Sysno::sched_setaffinity,
    Sysno::sched_setscheduler,
    Sysno::sched_setparam,
    Sysno::sched_setattr,
    Sysno::setpriority,
    Sysno::getpriority,
    Sysno::mbind,
    Sysno::set_mempolicy,
    Sysno::migrate_pages,
    Sysno::move_pages,
];

/// `obsolete=allow`: calls only old binaries make.
const OBSOLETE: &[Sysno] = &[
    Sysno::uselib,
    Sysno::sysfs,
    Sysno::ustat,
    Sysno::vserver,
    Sysno::getpmsg,
    Sysno::putpmsg,
    Sysno::afs_syscall,
    Sysno::tuxcall,
    Sysno::security,
];

/// The allow-list of `kind` under `cfg`, with `runas` telling whether a
/// `-runas` drop happens.
fn list(kind: Kind, cfg: &SandboxConfig, runas: bool) -> Vec<Allow> {
    let mut calls: Vec<Sysno> = COMMON.to_vec();
    let own: &[&[Sysno]] = match kind {
        Kind::Start => &[
            START, MAIN, VCPU, DEVICES, MONITOR, CHARDEV, BLOCK_IO, VNC, VNC_CLIENT, SIGNALS,
            TEARDOWN,
        ],
        Kind::Main => &[MAIN, VCPU, DEVICES, SIGNALS],
        Kind::Vcpu => &[VCPU],
        Kind::Devices => &[DEVICES],
        Kind::Monitor => &[MONITOR],
        Kind::Chardev => &[CHARDEV],
        Kind::BlockIo => &[BLOCK_IO],
        // Client threads start under the filters of the thread that makes
        // them, so this one holds what they do.
        Kind::Vnc => &[VNC, VNC_CLIENT],
        Kind::VncClient => &[VNC_CLIENT],
        Kind::Signals => &[SIGNALS],
        Kind::Teardown => &[TEARDOWN],
    };
    for l in own {
        calls.extend_from_slice(l);
    }
    if cfg.elevate == Elevate::Allow || runas {
        calls.extend_from_slice(ELEVATE);
    }
    if cfg.resource_control {
        calls.extend_from_slice(RESOURCE_CONTROL);
    }
    if cfg.obsolete {
        calls.extend_from_slice(OBSOLETE);
    }
    let mut out: Vec<Allow> = calls.into_iter().map(Allow::Any).collect();
    // The VNC server starts a thread per client from its own threads.
    let creates_threads = matches!(kind, Kind::Start | Kind::Main | Kind::Vnc);
    if cfg.spawn {
        out.extend(SPAWN.iter().map(|&s| Allow::Any(s)));
        if creates_threads {
            out.push(Allow::Any(Sysno::clone));
        }
    } else if creates_threads {
        // Threads only: clone3's flags are in memory, out of a filter's
        // reach, so it fails with ENOSYS (the `clone3` filter below) and
        // glibc falls back to clone, whose flags are checked here.
        out.push(Allow::If(
            Sysno::clone,
            vec![rule(vec![masked(
                0,
                libc::CLONE_THREAD as u64,
                libc::CLONE_THREAD as u64,
            )])],
        ));
    }
    out
}

/// `KVM_GET_DIRTY_LOG`: `_IOW(KVMIO, 0x42, struct kvm_dirty_log)` (16
/// bytes), which kvm-ioctls keeps private.
const KVM_GET_DIRTY_LOG: u64 = 0x4010_ae42;

/// Narrows calls that take a choice of family or operation: sockets
/// (UNIX only after start), prctl (naming threads, no_new_privs), tgkill
/// (this process's threads only), the VNC server's ioctl (FIONBIO, and
/// the display's dirty log).
fn narrow(kind: Kind, allows: Vec<Allow>) -> Vec<Allow> {
    let pid = std::process::id() as u64;
    allows
        .into_iter()
        .map(|a| match a {
            Allow::Any(Sysno::tgkill) => Allow::If(Sysno::tgkill, vec![rule(vec![eq(0, pid)])]),
            Allow::Any(Sysno::ioctl) if kind == Kind::Vnc => Allow::If(
                Sysno::ioctl,
                // The request number is an unsigned int. The refresh
                // thread reads the display's dirty log.
                [libc::FIONBIO, KVM_GET_DIRTY_LOG]
                    .iter()
                    .map(|&op| {
                        rule(vec![SeccompCondition::new(1, Len::Dword, Op::Eq, op)
                            .expect("valid seccomp condition")])
                    })
                    .collect(),
            ),
            Allow::Any(Sysno::prctl) if kind != Kind::Start => Allow::If(
                Sysno::prctl,
                [
                    libc::PR_SET_NAME,
                    libc::PR_GET_NAME,
                    libc::PR_SET_NO_NEW_PRIVS,
                    libc::PR_GET_NO_NEW_PRIVS,
                    libc::PR_SET_DUMPABLE,
                ]
                .iter()
                .map(|&op| rule(vec![eq(0, op as u64)]))
                .collect(),
            ),
            other => other,
        })
        .collect()
}

/// Builds the program for `kind`.
pub fn build(
    kind: Kind,
    cfg: &SandboxConfig,
    runas: bool,
) -> Result<(BpfProgram, usize), seccompiler::BackendError> {
    let allows = narrow(kind, list(kind, cfg, runas));
    // None: allowed whatever its arguments; Some: when one rule holds.
    let mut calls: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for a in allows {
        match a {
            Allow::Any(s) => {
                calls.insert(i64::from(s.id()), None);
            }
            Allow::If(s, r) => {
                if let Some(rules) = calls.entry(i64::from(s.id())).or_insert(Some(Vec::new())) {
                    rules.extend(r);
                }
            }
        }
    }
    let rules: BTreeMap<i64, Vec<SeccompRule>> = calls
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let count = rules.len();
    let mismatch = match cfg.mode {
        SeccompMode::Kill => SeccompAction::Trap,
        SeccompMode::Log => SeccompAction::Log,
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch())?;
    Ok((filter.try_into()?, count))
}

/// The filter that makes clone3 fail with ENOSYS, so glibc creates threads
/// with clone, whose flags the allow-lists can check.
pub fn clone3_enosys() -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules = BTreeMap::new();
    rules.insert(i64::from(Sysno::clone3.id()), Vec::new());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )?;
    filter.try_into()
}

fn arch() -> TargetArch {
    TargetArch::x86_64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libvirt() -> SandboxConfig {
        rvirt_vmm_config::sandbox::parse_sandbox(
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        )
        .unwrap()
        .unwrap()
    }

    fn allowed(kind: Kind, cfg: &SandboxConfig) -> Vec<Sysno> {
        narrow(kind, list(kind, cfg, false))
            .into_iter()
            .map(|a| match a {
                Allow::Any(s) | Allow::If(s, _) => s,
            })
            .collect()
    }

    #[test]
    fn no_thread_may_exec_trace_mount_or_elevate_under_libvirts_options() {
        let cfg = libvirt();
        for kind in Kind::ALL {
            let calls = allowed(kind, &cfg);
            for forbidden in [
                Sysno::execve,
                Sysno::execveat,
                Sysno::fork,
                Sysno::vfork,
                Sysno::ptrace,
                Sysno::process_vm_readv,
                Sysno::process_vm_writev,
                Sysno::mount,
                Sysno::umount2,
                Sysno::pivot_root,
                Sysno::chroot,
                Sysno::setuid,
                Sysno::setresuid,
                Sysno::capset,
                Sysno::kill,
                Sysno::bpf,
                Sysno::perf_event_open,
                Sysno::init_module,
                Sysno::kexec_load,
                Sysno::unshare,
                Sysno::setns,
            ] {
                assert!(
                    !calls.contains(&forbidden),
                    "{} allows {}",
                    kind.name(),
                    forbidden.name()
                );
            }
            // Sockets, new rings and new files are for start only.
            if kind != Kind::Start {
                for start_only in [
                    Sysno::socket,
                    Sysno::bind,
                    Sysno::connect,
                    Sysno::io_uring_setup,
                    Sysno::io_uring_register,
                ] {
                    assert!(
                        !calls.contains(&start_only),
                        "{} allows {}",
                        kind.name(),
                        start_only.name()
                    );
                }
            }
            if !matches!(kind, Kind::Start | Kind::Main) {
                assert!(
                    !calls.contains(&Sysno::openat),
                    "{} opens files",
                    kind.name()
                );
            }
            if !matches!(kind, Kind::Start | Kind::Main | Kind::Vnc) {
                assert!(
                    !calls.contains(&Sysno::clone),
                    "{} creates threads",
                    kind.name()
                );
            }
        }
        // Every list builds into a program.
        for kind in Kind::ALL {
            let (_, n) = build(kind, &cfg, false).unwrap();
            println!("{:>9}: {n} calls", kind.name());
        }
    }

    #[test]
    fn a_vnc_client_thread_only_talks_on_its_socket() {
        let cfg = libvirt();
        let client = allowed(Kind::VncClient, &cfg);
        for not in [
            Sysno::accept4,
            Sysno::recvmsg,
            Sysno::sendmsg,
            Sysno::ioctl,
            Sysno::clone,
            Sysno::prctl,
            Sysno::eventfd2,
            Sysno::openat,
        ] {
            assert!(!client.contains(&not), "vnc-client allows {}", not.name());
        }
        // The server's threads: ioctl is FIONBIO only.
        let server = narrow(Kind::Vnc, list(Kind::Vnc, &cfg, false));
        assert!(server
            .iter()
            .any(|a| matches!(a, Allow::If(Sysno::ioctl, _))));
        assert!(!server.iter().any(|a| matches!(a, Allow::Any(Sysno::ioctl))));
        // The monitor creates no thread (add_client hands the descriptor to
        // the VNC server's refresh thread) and receives passed descriptors.
        let monitor = allowed(Kind::Monitor, &cfg);
        assert!(!monitor.contains(&Sysno::clone));
        assert!(monitor.contains(&Sysno::recvmsg));
    }

    #[test]
    fn the_options_add_what_they_allow() {
        let mut cfg = libvirt();
        assert!(!allowed(Kind::Main, &cfg).contains(&Sysno::setuid));
        assert!(allowed(Kind::Vcpu, &cfg).len() < allowed(Kind::Main, &cfg).len());
        cfg.spawn = true;
        assert!(allowed(Kind::Main, &cfg).contains(&Sysno::execve));
        cfg.elevate = Elevate::Allow;
        assert!(allowed(Kind::Vcpu, &cfg).contains(&Sysno::setresuid));
        cfg.resource_control = true;
        assert!(allowed(Kind::Main, &cfg).contains(&Sysno::sched_setaffinity));
        // -runas: glibc makes every thread change its credentials.
        let cfg = libvirt();
        let runas = narrow(Kind::Devices, list(Kind::Devices, &cfg, true));
        assert!(runas
            .iter()
            .any(|a| matches!(a, Allow::Any(Sysno::setresuid))));
    }
}
