//! rvirt-jail: confines a child process between fork and exec, as
//! Firecracker's jailer confines a microVM's VMM, for rvirtd's supervisor
//! (crates/rvirtd/src/supervise.rs). It links nothing of the VMM.
//!
//! A [`Jail`] says what the child gets; [`Jail::prepare`] turns it, in the
//! parent, into a [`Prepared`] whose [`Prepared::enter`] the child runs
//! after fork: only system calls on data made before the fork (no
//! allocation, no lock), in this order:
//!
//! 1. joins its cgroup(s), so every thread and process it makes is
//!    accounted there: [`Prepared::fork`] makes it inside the cgroup v2
//!    directory (`clone3` with `CLONE_INTO_CGROUP`; `cgroup.procs` only
//!    where the kernel lacks that), and it joins each v1 hierarchy of a
//!    hybrid host through `tasks` (as a single thread: no threadgroup
//!    lock);
//! 2. a mount namespace and an IPC namespace of its own; every mount made
//!    private, so nothing propagates back to the host;
//! 3. a new root: a tmpfs on the jail's (empty) root directory, holding a
//!    minimal `/dev` (its own tmpfs: null, zero, full, random, urandom,
//!    kvm, net/tun when asked, ptmx and the host's /dev/pts for ptys), a
//!    private `/tmp`, a /proc of its own processes when asked, and bind
//!    mounts of exactly the files it is given
//!    (read-only unless said otherwise: the program, its libraries, the
//!    guest's kernel…); `pivot_root` into it, the old root detached; the
//!    root then read-only;
//! 4. rlimits;
//! 5. the capability bounding set and ambient set emptied;
//! 6. no supplementary groups, the jail's gid and uid (which clears the
//!    permitted and effective capabilities), the inheritable ones cleared;
//! 7. no_new_privs.
//!
//! The device nodes are made with mknod in the jail's own /dev and owned
//! by its user (mode 0600), as libvirt's namespace code gives QEMU's user
//! /dev/kvm; the host's nodes keep their owner and mode.

pub mod cgroup;
mod enter;
mod fork;

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use cgroup::{Cgroup, CgroupError, Limits};
pub use fork::{Forked, Joined};

/// A device node of the jail's /dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
    /// /dev/kvm, owned by the jail's user.
    Kvm,
    /// /dev/net/tun, owned by the jail's user (a tap opened by name).
    Tun,
    /// /dev/ptmx and the host's /dev/pts, so ptys the child opens are the
    /// host's (their names mean the same outside).
    Ptys,
}

impl Device {
    /// (path under /dev, major, minor, owned by the jail's user).
    fn node(self) -> Option<(&'static str, u32, u32, bool)> {
        Some(match self {
            Device::Null => ("null", 1, 3, false),
            Device::Zero => ("zero", 1, 5, false),
            Device::Full => ("full", 1, 7, false),
            Device::Random => ("random", 1, 8, false),
            Device::Urandom => ("urandom", 1, 9, false),
            Device::Kvm => ("kvm", 10, 232, true),
            Device::Tun => ("net/tun", 10, 200, true),
            Device::Ptys => ("ptmx", 5, 2, false),
        })
    }
}

/// A host file or directory made visible inside the jail at the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub path: PathBuf,
    pub writable: bool,
}

/// One rlimit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub limit: u64,
}

/// What a jailed child gets.
#[derive(Debug, Clone, Default)]
pub struct Jail {
    pub uid: u32,
    pub gid: u32,
    /// An empty host directory: the mount point of the child's root (seen
    /// only in its own namespace).
    pub root: PathBuf,
    /// Files and directories visible inside, at their host paths.
    pub binds: Vec<Bind>,
    pub devices: Vec<Device>,
    pub rlimits: Vec<Rlimit>,
    /// Size of the private /tmp, in bytes.
    pub tmp_size: u64,
    /// A /proc of the child's own processes only (`subset=pid`,
    /// `hidepid=invisible`, read-only): for a program that reads
    /// `/proc/self` (passt does), without the host's /proc/sys or
    /// /proc/net or other users' processes.
    pub proc_self: bool,
    /// The cgroup(s) the child joins before anything else.
    pub cgroup: Option<Cgroup>,
}

/// Why a jail could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("'{0}' has a NUL byte")]
    Nul(PathBuf),
    #[error("'{0}' is not an absolute path")]
    Relative(PathBuf),
    #[error("cannot find '{0}'")]
    Missing(PathBuf, #[source] io::Error),
    #[error("cannot open the cgroup {0}")]
    Cgroup(PathBuf, #[source] io::Error),
}

/// One step of the child's setup, on C strings made in the parent.
#[derive(Debug)]
enum Step {
    Mkdir(CString, u32),
    /// An empty file to bind a file onto.
    Touch(CString),
    Mknod {
        path: CString,
        major: u32,
        minor: u32,
        owned: bool,
    },
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// Bind `source` onto `target`, read-only unless `writable`; device
    /// nodes usable only with `devices` (the ptys, a disk that is a block
    /// device).
    Bind {
        source: CString,
        target: CString,
        writable: bool,
        devices: bool,
    },
}

/// A [`Jail`] ready for a child to enter.
#[derive(Debug)]
pub struct Prepared {
    uid: u32,
    gid: u32,
    root: CString,
    steps: Vec<Step>,
    rlimits: Vec<Rlimit>,
    /// The cgroup v2 directory, for `clone3` to make the child in.
    cgroup_v2: Option<OwnedFd>,
    /// Its `cgroup.procs`, where the child was not made inside.
    procs_v2: Option<CString>,
    /// The `tasks` file of each v1 directory.
    tasks_v1: Vec<CString>,
    last_cap: u32,
}

fn c(p: &Path) -> Result<CString, JailError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| JailError::Nul(p.to_path_buf()))
}

fn cs(s: &str) -> CString {
    // Literals and formatted numbers only: never a NUL.
    CString::new(s).unwrap_or_default()
}

impl Jail {
    /// Everything the child will do, as data: the paths inside the new
    /// root, the directories to make for the bind mounts (parents first).
    pub fn prepare(&self) -> Result<Prepared, JailError> {
        // Before any spawn can have changed it (see `Prepared::spawn`).
        fork::dumpable();
        if !self.root.is_absolute() {
            return Err(JailError::Relative(self.root.clone()));
        }
        let root = &self.root;
        let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        let mut steps = vec![
            Step::Mount {
                source: Some(cs("rvirt-root")),
                target: c(root)?,
                fstype: Some(cs("tmpfs")),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(cs("mode=0755,size=1m")),
            },
            Step::Mkdir(c(&inside(Path::new("/dev")))?, 0o755),
            Step::Mount {
                source: Some(cs("rvirt-dev")),
                target: c(&inside(Path::new("/dev")))?,
                fstype: Some(cs("tmpfs")),
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                data: Some(cs("mode=0755,size=64k")),
            },
            Step::Mkdir(c(&inside(Path::new("/tmp")))?, 0o1777),
            Step::Mount {
                source: Some(cs("rvirt-tmp")),
                target: c(&inside(Path::new("/tmp")))?,
                fstype: Some(cs("tmpfs")),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: Some(cs(&format!("mode=1777,size={}", self.tmp_size.max(4096)))),
            },
        ];
        let mut made: Vec<PathBuf> = vec![PathBuf::from("/dev"), PathBuf::from("/tmp")];
        if self.proc_self {
            steps.push(Step::Mkdir(c(&inside(Path::new("/proc")))?, 0o555));
            steps.push(Step::Mount {
                source: Some(cs("proc")),
                target: c(&inside(Path::new("/proc")))?,
                fstype: Some(cs("proc")),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
                data: Some(cs("hidepid=invisible,subset=pid")),
            });
            made.push(PathBuf::from("/proc"));
        }
        let mut mkdirs = |p: &Path, steps: &mut Vec<Step>| -> Result<(), JailError> {
            let mut cur = PathBuf::from("/");
            for comp in p.components().skip(1) {
                cur.push(comp);
                if !made.contains(&cur) {
                    made.push(cur.clone());
                    steps.push(Step::Mkdir(c(&inside(&cur))?, 0o755));
                }
            }
            Ok(())
        };
        for d in &self.devices {
            let Some((name, major, minor, owned)) = d.node() else {
                continue;
            };
            let path = Path::new("/dev").join(name);
            if let Some(parent) = path.parent() {
                mkdirs(parent, &mut steps)?;
            }
            steps.push(Step::Mknod {
                path: c(&inside(&path))?,
                major,
                minor,
                owned,
            });
            if *d == Device::Ptys {
                steps.push(Step::Mkdir(c(&inside(Path::new("/dev/pts")))?, 0o755));
                steps.push(Step::Bind {
                    source: cs("/dev/pts"),
                    target: c(&inside(Path::new("/dev/pts")))?,
                    writable: true,
                    devices: true,
                });
            }
        }
        for b in &self.binds {
            if !b.path.is_absolute() {
                return Err(JailError::Relative(b.path.clone()));
            }
            let meta =
                std::fs::metadata(&b.path).map_err(|e| JailError::Missing(b.path.clone(), e))?;
            // Bound by what the path points at: a symlink inside would
            // point into nothing.
            let source = std::fs::canonicalize(&b.path)
                .map_err(|e| JailError::Missing(b.path.clone(), e))?;
            if let Some(parent) = b.path.parent() {
                mkdirs(parent, &mut steps)?;
            }
            if meta.is_dir() {
                mkdirs(&b.path, &mut steps)?;
            } else {
                steps.push(Step::Touch(c(&inside(&b.path))?));
            }
            use std::os::unix::fs::FileTypeExt;
            let ft = meta.file_type();
            steps.push(Step::Bind {
                source: c(&source)?,
                target: c(&inside(&b.path))?,
                writable: b.writable,
                devices: ft.is_block_device() || ft.is_char_device(),
            });
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63);
        let (mut cgroup_v2, mut procs_v2, mut tasks_v1) = (None, None, Vec::new());
        if let Some(cg) = &self.cgroup {
            if let Some(dir) = &cg.v2 {
                let fd = rustix::fs::open(
                    dir,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| JailError::Cgroup(dir.clone(), e.into()))?;
                cgroup_v2 = Some(fd);
                procs_v2 = Some(c(&dir.join("cgroup.procs"))?);
            }
            for dir in &cg.v1 {
                tasks_v1.push(c(&dir.join("tasks"))?);
            }
        }
        Ok(Prepared {
            uid: self.uid,
            gid: self.gid,
            root: c(root)?,
            steps,
            rlimits: self.rlimits.clone(),
            cgroup_v2,
            procs_v2,
            tasks_v1,
            last_cap,
        })
    }
}

impl Prepared {
    /// Confines the calling process. Runs in the child [`Prepared::fork`]
    /// made (`joined` is what it said), before exec: only system calls on
    /// data made by [`Jail::prepare`]; on failure it writes the step that
    /// failed to stderr. A child forked otherwise (`Command::pre_exec`)
    /// passes `Joined { v2: false }`.
    ///
    /// # Safety
    ///
    /// The caller must be a single-threaded child between fork and exec:
    /// this changes the process's mounts, credentials and limits for good.
    pub unsafe fn enter(&self, joined: Joined) -> io::Result<()> {
        // SAFETY: the caller's contract is this function's.
        unsafe { enter::enter(self, joined) }
    }
}

/// Libraries and the program interpreter a dynamically linked program
/// loads, as the dynamic loader resolves them (`ld.so --list`, what ldd
/// runs): the files a jail must bind for the program to start.
pub fn shared_objects(program: &Path) -> io::Result<Vec<PathBuf>> {
    let interp = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-x86-64.so.2"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no dynamic loader"))?;
    let out = std::process::Command::new(interp)
        .arg("--list")
        .arg(program)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()?;
    let mut libs = vec![interp.to_path_buf()];
    if !out.status.success() {
        // A static program lists nothing and needs nothing.
        return Ok(Vec::new());
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    if Path::new("/etc/ld.so.cache").exists() {
        libs.push(PathBuf::from("/etc/ld.so.cache"));
    }
    Ok(libs)
}
