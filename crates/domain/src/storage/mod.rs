//! libvirt's storage pool and volume XML (`storagepool.rng`,
//! `storagevol.rng`): read with line numbers, checked, and written back
//! as libvirt writes them (`virsh pool-dumpxml`, `vol-dumpxml`), in the
//! same way as the domain model: known parts are taken out of the tree,
//! what is left stays in each struct's `extra` and is written back, so
//! nothing a user wrote is lost. Pure: the storage driver fills in sizes,
//! permissions and timestamps from the filesystem.

mod pool;
mod volume;

pub use pool::{Pool, PoolTarget, PoolType, POOL_TYPES};
pub use volume::{BackingStore, Timestamps, VolTarget, Volume};

use crate::error::{Problem, Problems};
use crate::order;
use crate::units::{to_bytes, SizeError};
use crate::xml::{Element, XmlError};

/// Why a pool or volume document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Malformed(#[from] XmlError),
    /// `what` is `storage pool` or `storage volume`.
    #[error("Invalid {what} definition: {}", render(.problems))]
    Invalid {
        what: &'static str,
        problems: Vec<Problem>,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("line {}: {p}", p.line))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    fn from_problems(what: &'static str, p: Problems) -> Result<(), Error> {
        match p.into_result() {
            Ok(()) => Ok(()),
            Err(crate::Error::Invalid(problems)) => Err(Error::Invalid { what, problems }),
            Err(crate::Error::Malformed(e)) => Err(Error::Malformed(e)),
        }
    }
}

/// `<permissions>` of a pool's or a volume's target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    /// The file mode bits (written in octal, `0711`).
    pub mode: Option<u32>,
    /// uid, or -1 for "the daemon's".
    pub owner: Option<i64>,
    /// gid, or -1.
    pub group: Option<i64>,
    pub label: Option<String>,
    pub extra: Element,
}

impl Permissions {
    fn parse(p: &mut Problems, mut e: Element) -> Permissions {
        let mut perms = Permissions::default();
        if let Some(mut m) = e.take_child("mode") {
            let text = m.take_text();
            match u32::from_str_radix(text.trim(), 8) {
                Ok(v) if v <= 0o7777 => perms.mode = Some(v),
                _ => p.push(
                    m.line.0,
                    "permissions/mode",
                    None,
                    format!("malformed octal mode '{}'", text.trim()),
                ),
            }
        }
        for (name, slot) in [("owner", &mut perms.owner), ("group", &mut perms.group)] {
            if let Some(mut c) = e.take_child(name) {
                let text = c.take_text();
                match text.trim().parse::<i64>() {
                    Ok(v) if v >= -1 && v <= i64::from(u32::MAX) => *slot = Some(v),
                    _ => p.push(
                        c.line.0,
                        &format!("permissions/{name}"),
                        None,
                        format!("malformed {name} element '{}'", text.trim()),
                    ),
                }
            }
        }
        perms.label = e.take_child("label").map(|mut l| l.take_text());
        for n in ["mode", "owner", "group", "label"] {
            e.take_children(n);
        }
        perms.extra = kept(e, order::PERMISSIONS);
        perms
    }

    fn to_element(&self) -> Element {
        let mut e = Element::new("permissions");
        if let Some(m) = self.mode {
            e.push(Element::new("mode").with_text(format!("{m:04o}")));
        }
        if let Some(o) = self.owner {
            e.push(Element::new("owner").with_text(o.to_string()));
        }
        if let Some(g) = self.group {
            e.push(Element::new("group").with_text(g.to_string()));
        }
        if let Some(l) = &self.label {
            e.push(Element::new("label").with_text(l.clone()));
        }
        finish(e, &self.extra, order::PERMISSIONS)
    }
}

/// Appends the kept parts of `extra` and sorts by `table`.
/// What a reader keeps of an element it does not model, in the order the
/// writer puts it (`finish`: known names in `table`'s order, unknown ones
/// after), so a model read back from its own output equals the original.
fn kept(mut extra: Element, table: &[&str]) -> Element {
    extra.sort_children(|n| order::rank(table, n));
    extra
}

fn finish(mut el: Element, extra: &Element, table: &[&str]) -> Element {
    el.merge(extra);
    el.sort_children(|n| order::rank(table, n));
    el
}

/// `<capacity unit='bytes'>N</capacity>` as libvirt writes sizes.
fn bytes_el(name: &'static str, n: u64) -> Element {
    Element::new(name)
        .with_attr("unit", Some("bytes"))
        .with_text(n.to_string())
}

/// Reads a sized element (`<capacity unit='G'>1</capacity>`, default
/// bytes) into bytes, naming the element and line when it cannot.
fn size(p: &mut Problems, mut e: Element) -> Option<u64> {
    let line = e.line.0;
    let unit = e.take_attr("unit");
    let text = e.take_text();
    match to_bytes(&text, unit.as_deref()) {
        Ok(n) => Some(n),
        Err(SizeError::UnknownUnit) => {
            p.push(
                line,
                &e.name,
                Some("unit"),
                format!("unknown unit '{}'", unit.unwrap_or_default()),
            );
            None
        }
        Err(SizeError::NotANumber) => {
            p.push(
                line,
                &e.name,
                None,
                format!("malformed size '{}'", text.trim()),
            );
            None
        }
        Err(SizeError::TooLarge) => {
            p.push(
                line,
                &e.name,
                None,
                format!("size '{}' is too large", text.trim()),
            );
            None
        }
    }
}

/// The text of the required child `name` and its line, or a problem
/// naming it.
fn required_text(p: &mut Problems, e: &mut Element, name: &str, what: &str) -> (String, u32) {
    match e.take_child(name) {
        Some(mut c) => {
            let t = c.take_text().trim().to_string();
            if t.is_empty() {
                p.push(c.line.0, name, None, format!("missing {what}"));
            }
            (t, c.line.0)
        }
        None => {
            p.push(e.line.0, &e.name.clone(), None, format!("missing {what}"));
            (String::new(), e.line.0)
        }
    }
}

/// A name that becomes a file name must not leave its directory.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.contains('/') {
        return Err(format!("name '{name}' cannot contain '/'"));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') || name.contains('\n')
    {
        return Err(format!("invalid name '{name}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_and_refuse_garbage() {
        let e = crate::xml::parse(
            "<permissions><mode>0711</mode><owner>-1</owner><group>107</group></permissions>",
        )
        .unwrap();
        let mut p = Problems::default();
        let perms = Permissions::parse(&mut p, e);
        assert!(p.0.is_empty());
        assert_eq!(
            (perms.mode, perms.owner, perms.group),
            (Some(0o711), Some(-1), Some(107))
        );
        let mut out = String::new();
        crate::xml::write(&mut out, &perms.to_element(), 0);
        assert_eq!(
            out,
            "<permissions>\n  <mode>0711</mode>\n  <owner>-1</owner>\n  <group>107</group>\n</permissions>\n"
        );
        let e = crate::xml::parse("<permissions>\n<mode>9</mode><owner>x</owner></permissions>")
            .unwrap();
        let mut p = Problems::default();
        Permissions::parse(&mut p, e);
        assert_eq!(p.0.len(), 2);
        assert_eq!(p.0[0].line, 2);
    }

    #[test]
    fn names_that_would_escape_are_refused() {
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("disk.qcow2").is_ok());
    }
}
