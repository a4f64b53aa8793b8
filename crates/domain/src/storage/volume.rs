//! `<volume>`: a storage volume, as a client asks for one (vol-create) and
//! as the daemon reports one (vol-dumpxml).

use super::{bytes_el, finish, kept, required_text, size, Error, Permissions};
use crate::error::Problems;
use crate::order;
use crate::xml::{self, Element, Line};

/// `<timestamps>`: `seconds.nanoseconds` as libvirt writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timestamps {
    pub atime: String,
    pub mtime: String,
    pub ctime: String,
    pub btime: String,
}

impl Timestamps {
    fn to_element(&self) -> Element {
        let mut e = Element::new("timestamps");
        for (n, v) in [
            ("atime", &self.atime),
            ("mtime", &self.mtime),
            ("ctime", &self.ctime),
            ("btime", &self.btime),
        ] {
            e.push(Element::new(n).with_text(v.clone()));
        }
        e
    }
}

/// `<target>` of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolTarget {
    pub path: Option<String>,
    /// `<format type='…'/>`: raw, qcow2, dir…
    pub format: Option<String>,
    pub permissions: Option<Permissions>,
    /// The daemon's report only; ignored in a request.
    pub timestamps: Option<Timestamps>,
    pub extra: Element,
}

/// `<backingStore>` of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackingStore {
    pub path: String,
    pub format: Option<String>,
    pub permissions: Option<Permissions>,
    pub timestamps: Option<Timestamps>,
    pub extra: Element,
}

/// A storage volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Volume {
    /// `type`: file, block, dir… (the daemon sets it).
    pub kind: Option<String>,
    pub name: String,
    pub key: Option<String>,
    /// Bytes. A request must give it, except a clone's.
    pub capacity: Option<u64>,
    pub allocation: Option<u64>,
    pub physical: Option<u64>,
    pub target: VolTarget,
    pub backing: Option<BackingStore>,
    pub extra: Element,
    pub line: Line,
}

fn take_format(e: &mut Element) -> Option<String> {
    let mut f = e.take_child("format")?;
    let t = f.take_attr("type");
    if !f.is_empty() {
        // Richer than modelled: keep it whole.
        let mut kept = f;
        if let Some(t) = &t {
            kept.set_attr("type", t.clone());
        }
        e.push(kept);
        return None;
    }
    t
}

impl Volume {
    /// Parses and checks a volume document; a rejected document returns
    /// every problem with its line.
    pub fn from_xml(text: &str) -> Result<Volume, Error> {
        let mut root = xml::parse(text)?;
        let mut p = Problems::default();
        if root.name != "volume" {
            p.push(
                root.line.0,
                &root.name.clone(),
                None,
                "the root element must be <volume>".into(),
            );
        }
        let line = root.line;
        let kind = root.take_attr("type");
        let (name, _) = required_text(&mut p, &mut root, "name", "volume name element");
        let key = root.take_child("key").map(|mut k| k.take_text());
        let capacity = root.take_child("capacity").and_then(|e| size(&mut p, e));
        let allocation = root.take_child("allocation").and_then(|e| size(&mut p, e));
        let physical = root.take_child("physical").and_then(|e| size(&mut p, e));
        let target = match root.take_child("target") {
            Some(mut t) => {
                let path = t.take_child("path").map(|mut e| e.take_text());
                let format = take_format(&mut t);
                let permissions = t
                    .take_child("permissions")
                    .map(|e| Permissions::parse(&mut p, e));
                // The daemon's report, not a request.
                t.take_child("timestamps");
                VolTarget {
                    path,
                    format,
                    permissions,
                    timestamps: None,
                    extra: kept(t, order::STORAGE_TARGET),
                }
            }
            // The writer always writes a <target> (as vol-dumpxml does):
            // read its absence as an empty one, so a re-read is equal.
            None => VolTarget {
                extra: Element::new("target"),
                ..VolTarget::default()
            },
        };
        let backing = root.take_child("backingStore").map(|mut b| {
            let (path, _) = required_text(&mut p, &mut b, "path", "backing store path");
            let format = take_format(&mut b);
            let permissions = b
                .take_child("permissions")
                .map(|e| Permissions::parse(&mut p, e));
            b.take_child("timestamps");
            BackingStore {
                path,
                format,
                permissions,
                timestamps: None,
                extra: kept(b, order::STORAGE_TARGET),
            }
        });
        // libvirt reads the first of each and ignores the rest: drop the
        // rest too, so what is written reads back as the same model.
        for n in [
            "name",
            "key",
            "capacity",
            "allocation",
            "physical",
            "target",
            "backingStore",
        ] {
            root.take_children(n);
        }
        Error::from_problems("storage volume", p)?;
        Ok(Volume {
            kind,
            name,
            key,
            capacity,
            allocation,
            physical,
            target,
            backing,
            extra: kept(root, order::VOLUME),
            line,
        })
    }

    /// The volume as `virsh vol-dumpxml` writes it.
    pub fn to_xml(&self) -> String {
        let mut e = Element::new("volume").with_attr("type", self.kind.clone());
        e.push(Element::new("name").with_text(self.name.clone()));
        if let Some(k) = &self.key {
            e.push(Element::new("key").with_text(k.clone()));
        }
        for (n, v) in [
            ("capacity", self.capacity),
            ("allocation", self.allocation),
            ("physical", self.physical),
        ] {
            if let Some(v) = v {
                e.push(bytes_el(n, v));
            }
        }
        let t = &self.target;
        let mut te = Element::new("target");
        if let Some(path) = &t.path {
            te.push(Element::new("path").with_text(path.clone()));
        }
        if let Some(f) = &t.format {
            te.push(Element::new("format").with_attr("type", Some(f.clone())));
        }
        if let Some(perms) = &t.permissions {
            te.push(perms.to_element());
        }
        if let Some(ts) = &t.timestamps {
            te.push(ts.to_element());
        }
        e.push(finish(te, &t.extra, order::STORAGE_TARGET));
        if let Some(b) = &self.backing {
            let mut be = Element::new("backingStore");
            be.push(Element::new("path").with_text(b.path.clone()));
            if let Some(f) = &b.format {
                be.push(Element::new("format").with_attr("type", Some(f.clone())));
            }
            if let Some(perms) = &b.permissions {
                be.push(perms.to_element());
            }
            if let Some(ts) = &b.timestamps {
                be.push(ts.to_element());
            }
            e.push(finish(be, &b.extra, order::STORAGE_TARGET));
        }
        let e = finish(e, &self.extra, order::VOLUME);
        let mut out = String::new();
        xml::write(&mut out, &e, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `virsh vol-dumpxml` of a qcow2 volume with a backing volume, from
    /// libvirt 9.0.
    const DUMPED: &str = "<volume type='file'>
  <name>c.qcow2</name>
  <key>/tmp/pp-probe/pool/c.qcow2</key>
  <capacity unit='bytes'>20971520</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196616</physical>
  <target>
    <path>/tmp/pp-probe/pool/c.qcow2</path>
    <format type='qcow2'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
    <timestamps>
      <atime>1796658387.688637964</atime>
      <mtime>1796658387.682685034</mtime>
      <ctime>1796658387.688569871</ctime>
      <btime>0</btime>
    </timestamps>
  </target>
  <backingStore>
    <path>/tmp/pp-probe/pool/b.qcow2</path>
    <format type='qcow2'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
    <timestamps>
      <atime>1796658387.636536606</atime>
      <mtime>1796658387.630685032</mtime>
      <ctime>1796658387.636481093</ctime>
      <btime>0</btime>
    </timestamps>
  </backingStore>
</volume>
";

    #[test]
    fn libvirts_dump_reads_and_writes_back_the_same() {
        let mut v = Volume::from_xml(DUMPED).unwrap();
        assert_eq!(v.capacity, Some(20971520));
        assert_eq!(v.target.format.as_deref(), Some("qcow2"));
        let b = v.backing.as_ref().unwrap();
        assert_eq!(b.path, "/tmp/pp-probe/pool/b.qcow2");
        // Timestamps are the daemon's report: put back as it would.
        v.target.timestamps = Some(Timestamps {
            atime: "1796658387.688637964".into(),
            mtime: "1796658387.682685034".into(),
            ctime: "1796658387.688569871".into(),
            btime: "0".into(),
        });
        v.backing.as_mut().unwrap().timestamps = Some(Timestamps {
            atime: "1796658387.636536606".into(),
            mtime: "1796658387.630685032".into(),
            ctime: "1796658387.636481093".into(),
            btime: "0".into(),
        });
        assert_eq!(v.to_xml(), DUMPED);
    }

    #[test]
    fn a_request_with_units() {
        let v = Volume::from_xml(
            "<volume><name>n.img</name><capacity unit='G'>2</capacity><allocation>0</allocation>\
             <target><format type='qcow2'/><compat>1.1</compat></target></volume>",
        )
        .unwrap();
        assert_eq!(v.capacity, Some(2 << 30));
        assert_eq!(v.allocation, Some(0));
        assert!(v.to_xml().contains("<compat>1.1</compat>"));
    }

    #[test]
    fn problems_have_lines() {
        let e = Volume::from_xml(
            "<volume>\n<capacity unit='parsec'>1</capacity>\n<allocation>x</allocation>\n\
             <backingStore/></volume>",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("Invalid storage volume definition: "), "{e}");
        assert!(e.contains("missing volume name element"), "{e}");
        assert!(
            e.contains("line 2: <capacity> attribute 'unit': unknown unit 'parsec'"),
            "{e}"
        );
        assert!(
            e.contains("line 3: <allocation>: malformed size 'x'"),
            "{e}"
        );
        assert!(e.contains("missing backing store path"), "{e}");
    }
}
