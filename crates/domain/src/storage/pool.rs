//! `<pool>`: a storage pool definition.

use super::{bytes_el, finish, kept, required_text, size, Error, Permissions};
use crate::error::Problems;
use crate::order;
use crate::xml::{self, Element, Line, Node};

/// libvirt 9.0's pool types in `virStoragePoolType` order: the index is
/// the number its "missing backend for pool type N" message shows.
pub const POOL_TYPES: &[&str] = &[
    "dir",
    "fs",
    "netfs",
    "logical",
    "disk",
    "iscsi",
    "iscsi-direct",
    "scsi",
    "mpath",
    "rbd",
    "gluster",
    "zfs",
    "vstorage",
];

/// A pool's `type`, one of [`POOL_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolType(usize);

impl PoolType {
    pub const DIR: PoolType = PoolType(0);

    /// The type named `s`, if libvirt knows it.
    pub fn from_name(s: &str) -> Option<PoolType> {
        POOL_TYPES.iter().position(|t| *t == s).map(PoolType)
    }

    pub fn name(self) -> &'static str {
        POOL_TYPES[self.0]
    }

    /// libvirt's number for it (`virStoragePoolType`).
    pub fn number(self) -> usize {
        self.0
    }
}

/// `<target>` of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolTarget {
    pub path: String,
    pub permissions: Option<Permissions>,
    pub extra: Element,
}

/// A storage pool definition, with the sizes a running pool reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub kind: PoolType,
    pub name: String,
    pub uuid: Option<uuid::Uuid>,
    /// Bytes; what the filesystem reports while the pool runs, else 0.
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
    /// Kept whole: its shape depends on the type (a dir pool has none).
    pub source: Element,
    pub target: PoolTarget,
    /// Unknown attributes of `<pool>` and unknown children.
    pub extra: Element,
    pub line: Line,
}

impl Pool {
    /// Parses and checks a pool document; a rejected document returns
    /// every problem with its line.
    pub fn from_xml(text: &str) -> Result<Pool, Error> {
        let mut root = xml::parse(text)?;
        let mut p = Problems::default();
        if root.name != "pool" {
            p.push(
                root.line.0,
                &root.name.clone(),
                None,
                "the root element must be <pool>".into(),
            );
        }
        let line = root.line;
        let kind = match root.take_attr("type") {
            Some(t) => match PoolType::from_name(&t) {
                Some(k) => k,
                None => {
                    p.push(
                        line.0,
                        "pool",
                        Some("type"),
                        format!("unknown storage pool type {t}"),
                    );
                    PoolType::DIR
                }
            },
            None => {
                p.push(
                    line.0,
                    "pool",
                    Some("type"),
                    "storage pool missing type attribute".into(),
                );
                PoolType::DIR
            }
        };
        let (name, name_line) = required_text(&mut p, &mut root, "name", "pool name element");
        if let Err(e) = super::check_name(&name) {
            if !name.is_empty() {
                p.push(name_line, "name", None, e);
            }
        }
        let uuid = root.take_child("uuid").and_then(|mut u| {
            let t = u.take_text();
            match uuid::Uuid::parse_str(t.trim()) {
                Ok(v) => Some(v),
                Err(_) => {
                    p.push(u.line.0, "uuid", None, "malformed uuid element".into());
                    None
                }
            }
        });
        // Sizes are the daemon's report, not configuration: read and
        // dropped, as libvirt ignores them in a definition.
        for n in ["capacity", "allocation", "available"] {
            if let Some(e) = root.take_child(n) {
                size(&mut p, e);
            }
        }
        let mut source = root
            .take_child("source")
            .unwrap_or_else(|| Element::new("source"));
        // `<source>\n  </source>` as libvirt writes an empty one.
        source
            .children
            .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
        let target = match root.take_child("target") {
            Some(mut t) => {
                let (path, _) = required_text(&mut p, &mut t, "path", "storage pool target path");
                if !path.is_empty() && !path.starts_with('/') {
                    p.push(
                        t.line.0,
                        "target/path",
                        None,
                        format!("storage pool target path '{path}' must be absolute"),
                    );
                }
                let permissions = t
                    .take_child("permissions")
                    .map(|e| Permissions::parse(&mut p, e));
                PoolTarget {
                    path: sanitize_path(&path),
                    permissions,
                    extra: kept(t, order::STORAGE_TARGET),
                }
            }
            None => {
                p.push(
                    line.0,
                    "pool",
                    None,
                    "missing storage pool target path".into(),
                );
                PoolTarget::default()
            }
        };
        // libvirt reads the first of each and ignores the rest: drop the
        // rest too, so what is written reads back as the same model.
        for n in [
            "name",
            "uuid",
            "capacity",
            "allocation",
            "available",
            "source",
            "target",
        ] {
            root.take_children(n);
        }
        Error::from_problems("storage pool", p)?;
        Ok(Pool {
            kind,
            name,
            uuid,
            capacity: 0,
            allocation: 0,
            available: 0,
            source,
            target,
            extra: kept(root, order::POOL),
            line,
        })
    }

    /// The definition as `virsh pool-dumpxml` writes it.
    pub fn to_xml(&self) -> String {
        let mut e = Element::new("pool").with_attr("type", Some(self.kind.name()));
        e.push(Element::new("name").with_text(self.name.clone()));
        if let Some(u) = self.uuid {
            e.push(Element::new("uuid").with_text(u.hyphenated().to_string()));
        }
        e.push(bytes_el("capacity", self.capacity));
        e.push(bytes_el("allocation", self.allocation));
        e.push(bytes_el("available", self.available));
        let mut source = self.source.clone();
        if source.is_empty() {
            // libvirt opens and closes an empty <source> on two lines.
            source.push_text("\n  ");
        }
        e.push(source);
        let mut t = Element::new("target");
        t.push(Element::new("path").with_text(self.target.path.clone()));
        if let Some(perms) = &self.target.permissions {
            t.push(perms.to_element());
        }
        e.push(finish(t, &self.target.extra, order::STORAGE_TARGET));
        let e = finish(e, &self.extra, order::POOL);
        let mut out = String::new();
        xml::write(&mut out, &e, 0);
        out
    }
}

/// The path as libvirt keeps it (`virFileSanitizePath`): no doubled or
/// trailing slashes.
fn sanitize_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMPED: &str = "<pool type='dir'>
  <name>ppprobe</name>
  <uuid>5cadcf3d-8fd6-434a-b892-a074ca140214</uuid>
  <capacity unit='bytes'>270553174016</capacity>
  <allocation unit='bytes'>74324557824</allocation>
  <available unit='bytes'>196228616192</available>
  <source>
  </source>
  <target>
    <path>/tmp/pp-probe/pool</path>
    <permissions>
      <mode>0711</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</pool>
";

    #[test]
    fn libvirts_dump_reads_and_writes_back_the_same() {
        let mut pool = Pool::from_xml(DUMPED).unwrap();
        assert_eq!(pool.kind, PoolType::DIR);
        assert_eq!(pool.target.path, "/tmp/pp-probe/pool");
        // The sizes are the daemon's to fill in.
        assert_eq!(pool.capacity, 0);
        pool.capacity = 270553174016;
        pool.allocation = 74324557824;
        pool.available = 196228616192;
        assert_eq!(pool.to_xml(), DUMPED);
    }

    #[test]
    fn unknown_parts_are_kept_and_paths_sanitized() {
        let pool = Pool::from_xml(
            "<pool type='dir' x='1'><name>p</name><target><path>/a//b/</path><z/></target><refresh><volume allocation='default'/></refresh></pool>",
        )
        .unwrap();
        assert_eq!(pool.target.path, "/a/b");
        assert!(pool.uuid.is_none());
        let out = pool.to_xml();
        assert!(out.starts_with("<pool type='dir' x='1'>"), "{out}");
        assert!(out.contains("    <z/>\n"), "{out}");
        assert!(out.contains("<refresh>"), "{out}");
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let e = Pool::from_xml("<pool type='foo'>\n<name>a/b</name>\n<uuid>nope</uuid>\n</pool>")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("Invalid storage pool definition: "),
            "{msg}"
        );
        assert!(msg.contains("unknown storage pool type foo"), "{msg}");
        assert!(
            msg.contains("line 2: <name>: name 'a/b' cannot contain '/'"),
            "{msg}"
        );
        assert!(
            msg.contains("line 3: <uuid>: malformed uuid element"),
            "{msg}"
        );
        assert!(msg.contains("missing storage pool target path"), "{msg}");
        let e = Pool::from_xml("<pool type='dir'><target><path>rel</path></target></pool>")
            .unwrap_err();
        assert!(e.to_string().contains("missing pool name element"), "{e}");
        assert!(e.to_string().contains("must be absolute"), "{e}");
        assert!(matches!(
            Pool::from_xml("<pool type='dir'>"),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn types_have_libvirts_numbers() {
        assert_eq!(PoolType::from_name("fs").unwrap().number(), 1);
        assert_eq!(PoolType::from_name("netfs").unwrap().number(), 2);
        assert_eq!(PoolType::from_name("zfs").unwrap().number(), 11);
        assert!(PoolType::from_name("sheepdog").is_none());
    }
}
