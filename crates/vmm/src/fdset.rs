//! fd sets: descriptors the parent passed open (`-add-fd` on the command
//! line, QMP `add-fd` later), for options that name `/dev/fdset/N`
//! instead of a path (QEMU's monitor/fds.c semantics: opening
//! `/dev/fdset/N` takes a copy of a descriptor of set N whose access mode
//! allows the open).
//!
//! A block node keeps the copy it took (see [`keep`]), as QEMU's node
//! keeps its file open: `remove-fd` after `blockdev-add` (libvirt's order)
//! leaves the node its image.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rvirt_qmp::{AddfdInfo, FdsetFdInfo, FdsetInfo, QmpError};
use rvirt_vmm_config::sandbox::{fdset_of, AddFd};

/// One passed descriptor and the `opaque` string it came with.
struct Passed {
    fd: OwnedFd,
    opaque: Option<String>,
}

#[derive(Default)]
struct Table {
    sets: BTreeMap<u32, Vec<Passed>>,
    /// Copies block nodes took, by the `/dev/fdset/N` path they name.
    kept: BTreeMap<PathBuf, File>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    sets: BTreeMap::new(),
    kept: BTreeMap::new(),
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum FdSetError {
    #[error("-add-fd: file descriptor {0} is not open")]
    NotOpen(i32),
    #[error("fd set {0} has no descriptor open for {1}")]
    NoMatch(u32, &'static str),
    #[error("fd set {0} does not exist")]
    NoSet(u32),
}

/// Takes the `-add-fd` descriptors. Call once, before anything is opened.
pub fn init(add: &[AddFd]) -> Result<(), FdSetError> {
    let mut t = table();
    for a in add {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(a.fd, libc::F_GETFD) } < 0 {
            return Err(FdSetError::NotOpen(a.fd));
        }
        // SAFETY: the descriptor is open (checked above) and was passed to
        // this process to own; no other option names it.
        let fd = unsafe { OwnedFd::from_raw_fd(a.fd) };
        // Passed fds must not leak into anything this process starts.
        let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
        t.sets
            .entry(a.set)
            .or_default()
            .push(Passed { fd, opaque: None });
    }
    Ok(())
}

/// QMP `add-fd`: `fd` joins set `set`, or the lowest free set number.
pub fn add(fd: OwnedFd, set: Option<i64>, opaque: Option<String>) -> Result<AddfdInfo, QmpError> {
    let mut t = table();
    let set = match set {
        Some(s) => u32::try_from(s)
            .map_err(|_| QmpError::invalid_parameter_value("fdset-id", "a value below 2^32"))?,
        None => (0..).find(|s| !t.sets.contains_key(s)).unwrap_or(0),
    };
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    let raw = fd.as_raw_fd();
    t.sets.entry(set).or_default().push(Passed { fd, opaque });
    Ok(AddfdInfo {
        fdset_id: i64::from(set),
        fd: i64::from(raw),
    })
}

/// QMP `remove-fd`: closes descriptor `fd` of set `set`, or every one.
/// Copies nodes took stay open.
pub fn remove(set: i64, fd: Option<i64>) -> Result<(), QmpError> {
    let mut t = table();
    let name = match fd {
        Some(fd) => format!("fdset-id:{set}, fd:{fd}"),
        None => format!("fdset-id:{set}"),
    };
    let not_found = || QmpError::generic(format!("File descriptor named '{name}' not found"));
    let id = u32::try_from(set).map_err(|_| not_found())?;
    let fds = t.sets.get_mut(&id).ok_or_else(not_found)?;
    match fd {
        Some(fd) => {
            let at = fds
                .iter()
                .position(|p| i64::from(p.fd.as_raw_fd()) == fd)
                .ok_or_else(not_found)?;
            fds.remove(at);
        }
        None => fds.clear(),
    }
    t.drop_unused(id);
    Ok(())
}

impl Table {
    /// Drops set `id` once it holds no descriptor and no node keeps a
    /// copy of one (QEMU keeps a set while its copies are open).
    fn drop_unused(&mut self, id: u32) {
        let kept = self.kept.keys().any(|p| fdset_of(p) == Some(id));
        if !kept && self.sets.get(&id).is_some_and(Vec::is_empty) {
            self.sets.remove(&id);
        }
    }
}

/// QMP `query-fdsets`.
pub fn query() -> Vec<FdsetInfo> {
    table()
        .sets
        .iter()
        .map(|(id, fds)| FdsetInfo {
            fdset_id: i64::from(*id),
            fds: fds
                .iter()
                .map(|p| FdsetFdInfo {
                    fd: i64::from(p.fd.as_raw_fd()),
                    opaque: p.opaque.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Keeps `file` (a copy taken from the set `path` names) for later opens
/// of `path`, whatever happens to the set.
pub fn keep(path: &Path, file: File) {
    table().kept.insert(path.to_path_buf(), file);
}

/// Drops what [`keep`] kept for `path`.
pub fn forget(path: &Path) {
    let mut t = table();
    t.kept.remove(path);
    if let Some(id) = fdset_of(path) {
        t.drop_unused(id);
    }
}

fn access_ok(fd: impl AsFd, read: bool, write: bool) -> bool {
    let Ok(flags) = rustix::fs::fcntl_getfl(fd) else {
        return false;
    };
    let mode = flags & rustix::fs::OFlags::RWMODE;
    if mode == rustix::fs::OFlags::RDWR {
        true
    } else if mode == rustix::fs::OFlags::WRONLY {
        write && !read
    } else {
        !write
    }
}

/// A copy of a descriptor of the set `path` names that allows `write`
/// (and reading, if `read`), or of the one a node kept for `path`;
/// `None` when `path` is no `/dev/fdset/N`.
pub fn open(path: &Path, read: bool, write: bool) -> Option<Result<File, io::Error>> {
    let set = fdset_of(path)?;
    let want = match (read, write) {
        (true, true) => "reading and writing",
        (false, true) => "writing",
        _ => "reading",
    };
    let t = table();
    let dup = |fd: std::os::fd::BorrowedFd| {
        rustix::io::fcntl_dupfd_cloexec(fd, 3)
            .map(File::from)
            .map_err(io::Error::from)
    };
    if let Some(kept) = t.kept.get(path) {
        if access_ok(kept, read, write) {
            return Some(dup(kept.as_fd()));
        }
    }
    let Some(fds) = t.sets.get(&set) else {
        return Some(Err(io::Error::new(
            io::ErrorKind::NotFound,
            FdSetError::NoSet(set),
        )));
    };
    for p in fds {
        if access_ok(&p.fd, read, write) {
            return Some(dup(p.fd.as_fd()));
        }
    }
    Some(Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        FdSetError::NoMatch(set, want),
    )))
}
