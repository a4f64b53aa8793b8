//! Persistent definitions on disk, for any kind of object (domains today;
//! networks and storage pools next), as libvirt keeps them: `NAME.xml` in
//! the driver's directory, `autostart/NAME.xml` symlinks beside it.
//!
//! - Writes are atomic (temp file, fsync, rename, fsync of the directory).
//! - What is written is read back through the model first: a definition
//!   that would not load again is refused, so a good file is never
//!   replaced by a rejected one.
//! - Loading skips (and logs) files that do not parse or whose name does
//!   not match, never deletes them; it removes what an interrupted write
//!   or undefine leaves behind (temp files, dangling autostart links).

use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::fsutil::{write_atomic, TEMP_INFIX};

/// An object kept in a [`Store`].
pub trait Definition: Sized {
    /// What the files hold, for log lines (`domain`, `network`).
    const KIND: &'static str;
    /// Parses and validates a file's text.
    fn parse(text: &str) -> Result<Self, String>;
    /// Its name: the file is `NAME.xml`.
    fn name(&self) -> &str;
    /// The text to store.
    fn to_xml(&self) -> String;
    /// What else a stored definition must have (a UUID…).
    fn check_stored(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Definition for rvirt_domain::Domain {
    const KIND: &'static str = "domain";

    fn parse(text: &str) -> Result<Self, String> {
        rvirt_domain::Domain::from_xml(text).map_err(|e| e.to_string())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn to_xml(&self) -> String {
        self.to_inactive_xml()
    }

    fn check_stored(&self) -> Result<(), String> {
        match self.uuid {
            Some(_) => Ok(()),
            None => Err("it has no UUID".into()),
        }
    }
}

/// A definition read at start.
pub struct Loaded<T> {
    pub def: T,
    pub autostart: bool,
}

/// Why a definition could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the {kind} '{name}' would not load again: {reason}")]
    Unreadable {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] io::Error),
}

/// One driver's definitions.
#[derive(Debug, Clone)]
pub struct Store<T> {
    dir: PathBuf,
    autostart_dir: PathBuf,
    kind: PhantomData<fn() -> T>,
}

impl<T: Definition> Store<T> {
    /// Definitions in `dir`, autostart links in `autostart_dir`.
    pub fn new(dir: &Path, autostart_dir: &Path) -> Self {
        Store {
            dir: dir.to_path_buf(),
            autostart_dir: autostart_dir.to_path_buf(),
            kind: PhantomData,
        }
    }

    /// `NAME.xml`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    fn link(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(format!("{name}.xml"))
    }

    /// Reads every `NAME.xml`, after removing what interrupted writes left.
    pub fn load_all(&self) -> Vec<Loaded<T>> {
        self.recover();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read definitions");
                return Vec::new();
            }
        };
        files.sort();
        let mut out = Vec::new();
        for path in files {
            if path.extension().is_none_or(|x| x != "xml") || !path.is_file() {
                continue;
            }
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| T::parse(&text))
                .and_then(|def| {
                    if def.name() != stem {
                        return Err(format!("it names '{}', not '{stem}'", def.name()));
                    }
                    def.check_stored().map(|()| def)
                });
            match loaded {
                Ok(def) => out.push(Loaded {
                    autostart: self.is_autostart(&stem),
                    def,
                }),
                Err(e) => tracing::error!(
                    kind = T::KIND,
                    file = %path.display(),
                    error = %e,
                    "definition skipped"
                ),
            }
        }
        out
    }

    /// Removes temp files of writes cut short and autostart links whose
    /// definition is gone.
    fn recover(&self) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(TEMP_INFIX) {
                tracing::info!(file = %entry.path().display(), "interrupted write removed");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        for entry in std::fs::read_dir(&self.autostart_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = entry.path();
            let dangling = p.symlink_metadata().is_ok() && std::fs::metadata(&p).is_err();
            if dangling {
                tracing::info!(link = %p.display(), "dangling autostart link removed");
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// Writes `def` atomically, once its text is known to load again.
    pub fn save(&self, def: &T) -> Result<(), StoreError> {
        let text = def.to_xml();
        let reread = T::parse(&text).and_then(|d| d.check_stored().map(|()| d));
        match reread {
            Ok(d) if d.name() == def.name() => {}
            Ok(d) => {
                return Err(StoreError::Unreadable {
                    kind: T::KIND,
                    name: def.name().into(),
                    reason: format!("it reads back as '{}'", d.name()),
                })
            }
            Err(reason) => {
                return Err(StoreError::Unreadable {
                    kind: T::KIND,
                    name: def.name().into(),
                    reason,
                })
            }
        }
        let path = self.file(def.name());
        write_atomic(&path, text.as_bytes()).map_err(|e| StoreError::Write(path, e))
    }

    /// Removes the definition and its autostart link.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let _ = std::fs::remove_file(self.link(name));
        match std::fs::remove_file(self.file(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn is_autostart(&self, name: &str) -> bool {
        self.link(name).exists()
    }

    /// Creates or removes the autostart link, as libvirt does
    /// (`autostart/NAME.xml -> ../NAME.xml`).
    pub fn set_autostart(&self, name: &str, on: bool) -> io::Result<()> {
        let link = self.link(name);
        if on {
            if link.symlink_metadata().is_ok() {
                return Ok(());
            }
            std::os::unix::fs::symlink(self.file(name), &link)
        } else {
            match std::fs::remove_file(&link) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A definition as small as can be: `<thing name='N' ok='yes'/>`; one
    /// whose `ok` is not `yes` is refused by its parser.
    #[derive(Debug, Clone, PartialEq)]
    struct Thing {
        name: String,
        ok: String,
    }

    impl Definition for Thing {
        const KIND: &'static str = "thing";
        fn parse(text: &str) -> Result<Self, String> {
            let attr = |k: &str| {
                let start = text.find(&format!("{k}='"))? + k.len() + 2;
                let end = text[start..].find('\'')? + start;
                Some(text[start..end].to_string())
            };
            let name = attr("name").ok_or("no name")?;
            let ok = attr("ok").ok_or("no ok")?;
            if ok != "yes" {
                return Err(format!("ok='{ok}' is refused"));
            }
            Ok(Thing { name, ok })
        }
        fn name(&self) -> &str {
            &self.name
        }
        fn to_xml(&self) -> String {
            format!("<thing name='{}' ok='{}'/>", self.name, self.ok)
        }
    }

    fn thing(name: &str, ok: &str) -> Thing {
        Thing {
            name: name.into(),
            ok: ok.into(),
        }
    }

    fn store(dir: &Path) -> Store<Thing> {
        std::fs::create_dir_all(dir.join("autostart")).unwrap();
        Store::new(dir, &dir.join("autostart"))
    }

    #[test]
    fn definitions_round_trip_with_autostart() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.save(&thing("a", "yes")).unwrap();
        s.save(&thing("b", "yes")).unwrap();
        s.set_autostart("b", true).unwrap();
        s.set_autostart("b", true).unwrap();
        let loaded = s.load_all();
        let got: Vec<_> = loaded
            .iter()
            .map(|l| (l.def.name.as_str(), l.autostart))
            .collect();
        assert_eq!(got, [("a", false), ("b", true)]);
        s.set_autostart("b", false).unwrap();
        assert!(!s.is_autostart("b"));
        s.set_autostart("a", true).unwrap();
        s.remove("a").unwrap();
        s.remove("a").unwrap();
        assert!(!s.is_autostart("a"));
        assert_eq!(s.load_all().len(), 1);
    }

    #[test]
    fn a_rejected_definition_never_replaces_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.save(&thing("a", "yes")).unwrap();
        let e = s.save(&thing("a", "no")).unwrap_err();
        assert!(e.to_string().contains("would not load again"), "{e}");
        assert_eq!(
            std::fs::read_to_string(s.file("a")).unwrap(),
            "<thing name='a' ok='yes'/>"
        );
        // A write that fails (its directory is gone) leaves nothing either.
        let gone = Store::<Thing>::new(&dir.path().join("missing"), dir.path());
        assert!(matches!(
            gone.save(&thing("x", "yes")),
            Err(StoreError::Write(..))
        ));
    }

    #[test]
    fn loading_skips_the_broken_and_recovers_the_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.save(&thing("good", "yes")).unwrap();
        std::fs::write(s.file("bad"), "<thing name='bad' ok='no'/>").unwrap();
        std::fs::write(s.file("other"), "<thing name='renamed' ok='yes'/>").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a definition").unwrap();
        let temp = dir.path().join(format!(".good.xml{TEMP_INFIX}77"));
        std::fs::write(&temp, "<thing name='good' ok='half").unwrap();
        std::os::unix::fs::symlink(s.file("gone"), dir.path().join("autostart/gone.xml")).unwrap();
        let loaded = s.load_all();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].def, thing("good", "yes"));
        // The broken files are left for the user; the leftovers are gone.
        assert!(s.file("bad").exists() && s.file("other").exists());
        assert!(!temp.exists());
        assert!(dir
            .path()
            .join("autostart/gone.xml")
            .symlink_metadata()
            .is_err());
    }
}
