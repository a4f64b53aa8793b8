//! File ownership as libvirt's DAC security driver does it
//! (`src/security/security_dac.c` with `remember_owner`): a confined VMM's
//! user is given the files it writes (disk images, chardev files) and the
//! kernel and initrd it cannot read otherwise, at start; their original
//! owner and mode come back when the VM ends, however it ends, even after
//! an rvirtd restart.
//!
//! The original owner and mode are remembered on the file itself, in
//! trusted xattrs (libvirt's `trusted.libvirt.security.*`), with a count
//! of the VMs holding the label and the host's boot id (a label left from
//! before a reboot is stale and forgotten, as libvirt's timestamp does).
//! The count lets VMs share a label; a file one VM writes exclusively (a
//! writable disk that is not `<shareable/>`) is refused to a second one
//! while labelled. The runtime record lists the files each running VM
//! labelled, so whoever stops it restores exactly those.
//!
//! Read-only images are not relabelled at all: rvirtd passes them opened
//! read-only, so their owner and mode never change and no VMM can chmod
//! them.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const OWNER: &str = "trusted.rvirt.dac";
const REFS: &str = "trusted.rvirt.ref_dac";
const BOOT: &str = "trusted.rvirt.boot_dac";

#[derive(Debug, thiserror::Error)]
pub enum DacError {
    #[error("cannot find {0}")]
    Stat(PathBuf, #[source] io::Error),
    #[error("{0} is in use by another domain")]
    InUse(PathBuf),
    #[error("cannot remember the owner of {0}")]
    Remember(PathBuf, #[source] io::Error),
    #[error("cannot give {0} to +{1}:+{2}")]
    Chown(PathBuf, u32, u32, #[source] io::Error),
}

/// The user and group a VMM runs as: libvirt's DAC label `+UID:+GID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{}:+{}", self.uid, self.gid)
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn get(path: &Path, name: &str) -> Option<String> {
    let mut buf = [0u8; 128];
    let n = rustix::fs::getxattr(path, name, &mut buf).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

fn set_attr(path: &Path, name: &str, value: &str) -> io::Result<()> {
    rustix::fs::setxattr(
        path,
        name,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(io::Error::from)
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(io::Error::from)
}

/// The remembered (uid, gid, mode) and holder count, if the label is
/// current (same boot).
fn remembered(path: &Path) -> Option<(u32, u32, u32, u32)> {
    if get(path, BOOT)? != boot_id() {
        return None;
    }
    let owner = get(path, OWNER)?;
    let refs: u32 = get(path, REFS)?.parse().ok()?;
    let mut it = owner.split(':');
    let uid = it.next()?.strip_prefix('+')?.parse().ok()?;
    let gid = it.next()?.strip_prefix('+')?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    Some((uid, gid, mode, refs))
}

/// Gives `path` to `label`, remembering its owner and mode first.
/// `exclusive`: refused while another VM holds the label. Returns the path
/// as labelled (symlinks resolved), for [`restore`].
pub fn set(path: &Path, label: Label, exclusive: bool) -> Result<PathBuf, DacError> {
    let path = std::fs::canonicalize(path).map_err(|e| DacError::Stat(path.into(), e))?;
    let meta = std::fs::metadata(&path).map_err(|e| DacError::Stat(path.clone(), e))?;
    let remember = |e| DacError::Remember(path.clone(), e);
    match remembered(&path) {
        Some((_, _, _, refs)) if refs > 0 => {
            if exclusive {
                return Err(DacError::InUse(path));
            }
            set_attr(&path, REFS, &(refs + 1).to_string()).map_err(remember)?;
        }
        _ => {
            let owner = format!("+{}:+{}:{:o}", meta.uid(), meta.gid(), meta.mode() & 0o7777);
            // Written before the owner changes: a crash in between leaves
            // a label that restores to what the file had.
            set_attr(&path, OWNER, &owner).map_err(remember)?;
            set_attr(&path, BOOT, &boot_id()).map_err(remember)?;
            set_attr(&path, REFS, "1").map_err(remember)?;
        }
    }
    chown(&path, label.uid, label.gid)
        .map_err(|e| DacError::Chown(path.clone(), label.uid, label.gid, e))?;
    Ok(path)
}

/// Drops one hold on `path`'s label; the last one gives the file its
/// remembered owner and mode back.
pub fn restore(path: &Path) {
    let Some((uid, gid, mode, refs)) = remembered(path) else {
        return;
    };
    if refs > 1 {
        if let Err(e) = set_attr(path, REFS, &(refs - 1).to_string()) {
            tracing::warn!(file = %path.display(), error = %e, "cannot release a label");
        }
        return;
    }
    let back = chown(path, uid, gid).and_then(|()| {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: chmod on a valid C string; no memory is written.
        if unsafe { libc::chmod(c.as_ptr(), mode) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    });
    match back {
        Ok(()) => {
            for name in [OWNER, REFS, BOOT] {
                let _ = rustix::fs::removexattr(path, name);
            }
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot restore the owner")
        }
    }
}

/// Whether `label` can read `path` as it is (mode bits).
pub fn readable_by(path: &Path, label: Label) -> bool {
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    let mode = m.mode();
    if m.uid() == label.uid {
        mode & 0o400 != 0
    } else if m.gid() == label.gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn owner(p: &Path) -> (u32, u32, u32) {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }

    #[test]
    fn labels_are_counted_remembered_and_restored() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("not root: test skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("disk.img");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        chown(&f, 12, 34).unwrap();
        let vm = Label {
            uid: 4242,
            gid: 4343,
        };
        let labelled = set(&f, vm, true).unwrap();
        assert_eq!(owner(&f), (4242, 4343, 0o640));
        // An exclusive user is refused while the label is held…
        assert!(matches!(set(&f, vm, true), Err(DacError::InUse(_))));
        // …a sharing one counts.
        set(&f, vm, false).unwrap();
        restore(&labelled);
        assert_eq!(owner(&f).0, 4242, "one holder left");
        // The holder changed the mode meanwhile: it comes back too.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        restore(&labelled);
        assert_eq!(owner(&f), (12, 34, 0o640));
        assert!(get(&f, OWNER).is_none());
        // A stale label (another boot) is forgotten, not obeyed.
        set(&f, vm, true).unwrap();
        set_attr(&f, BOOT, "another-boot").unwrap();
        set(&f, vm, true).unwrap();
        restore(&f);
        assert_eq!(
            owner(&f).0,
            4242,
            "the stale label's owner was not restored"
        );
    }
}
