//! `-add-fd`: descriptors the parent passed open, by fd set, for options
//! that name `/dev/fdset/N` instead of a path (QEMU's monitor/fds.c
//! semantics: opening `/dev/fdset/N` takes a copy of a descriptor of set N
//! whose access mode allows the open).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use rvirt_vmm_config::sandbox::{fdset_of, AddFd};

static SETS: OnceLock<BTreeMap<u32, Vec<OwnedFd>>> = OnceLock::new();

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
    let mut sets: BTreeMap<u32, Vec<OwnedFd>> = BTreeMap::new();
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
        sets.entry(a.set).or_default().push(fd);
    }
    let _ = SETS.set(sets);
    Ok(())
}

/// A copy of a descriptor of the set `path` names that allows `write`
/// (and reading, if `read`); `None` when `path` is no `/dev/fdset/N`.
pub fn open(path: &Path, read: bool, write: bool) -> Option<Result<File, io::Error>> {
    let set = fdset_of(path)?;
    let want = match (read, write) {
        (true, true) => "reading and writing",
        (false, true) => "writing",
        _ => "reading",
    };
    let Some(fds) = SETS.get().and_then(|s| s.get(&set)) else {
        return Some(Err(io::Error::other(FdSetError::NoSet(set))));
    };
    for fd in fds {
        let Ok(flags) = rustix::fs::fcntl_getfl(fd) else {
            continue;
        };
        let mode = flags & rustix::fs::OFlags::RWMODE;
        let ok = if mode == rustix::fs::OFlags::RDWR {
            true
        } else if mode == rustix::fs::OFlags::WRONLY {
            write && !read
        } else {
            !write
        };
        if ok {
            return Some(
                rustix::io::fcntl_dupfd_cloexec(fd.as_fd(), 3)
                    .map(File::from)
                    .map_err(io::Error::from),
            );
        }
    }
    Some(Err(io::Error::other(FdSetError::NoMatch(set, want))))
}
