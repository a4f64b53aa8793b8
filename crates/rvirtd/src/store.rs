//! Persistent definitions on disk: `NAME.xml` in the config directory,
//! autostart symlinks beside it. Writes are atomic; a file that does not
//! parse is reported and left alone, never deleted.

use std::io;
use std::path::Path;

use rvirt_domain::Domain;

use crate::fsutil::write_atomic;
use crate::paths::Tree;

/// A definition read at start.
pub struct Loaded {
    pub def: Domain,
    pub autostart: bool,
}

/// Reads every `NAME.xml`; broken ones are logged and skipped.
pub fn load_all(tree: &Tree) -> Vec<Loaded> {
    let mut out = Vec::new();
    let mut files: Vec<_> = match std::fs::read_dir(&tree.config_dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            tracing::warn!(dir = %tree.config_dir.display(), error = %e, "cannot read definitions");
            return out;
        }
    };
    files.sort();
    for path in files {
        if path.extension().is_none_or(|x| x != "xml") || !path.is_file() {
            continue;
        }
        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        match load_one(&path) {
            Ok(def) if def.name == stem && def.uuid.is_some() => {
                let autostart = tree.autostart_link(&stem).exists();
                out.push(Loaded { def, autostart });
            }
            Ok(def) => tracing::error!(
                file = %path.display(),
                name = %def.name,
                "definition skipped: its name does not match the file name or it has no UUID"
            ),
            Err(e) => tracing::error!(file = %path.display(), error = %e, "definition skipped"),
        }
    }
    out
}

fn load_one(path: &Path) -> Result<Domain, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Domain::from_xml(&text).map_err(|e| e.to_string())
}

pub fn save(tree: &Tree, def: &Domain) -> io::Result<()> {
    write_atomic(
        &tree.config_file(&def.name),
        def.to_inactive_xml().as_bytes(),
    )
}

pub fn remove(tree: &Tree, name: &str) -> io::Result<()> {
    let _ = std::fs::remove_file(tree.autostart_link(name));
    match std::fs::remove_file(tree.config_file(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Creates or removes the autostart link, as libvirt does
/// (`autostart/NAME.xml -> ../NAME.xml`).
pub fn set_autostart(tree: &Tree, name: &str, on: bool) -> io::Result<()> {
    let link = tree.autostart_link(name);
    if on {
        if link.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::os::unix::fs::symlink(tree.config_file(name), &link)
    } else {
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
