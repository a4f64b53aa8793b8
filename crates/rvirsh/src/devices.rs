//! The disks and interfaces of a domain's XML, as `domblklist` and
//! `domiflist` read them (virsh parses the XML client-side). A tiny element
//! tree over quick-xml is all that needs.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// An XML element: name, attributes in document order, child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elem {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Elem>,
}

impl Elem {
    fn from_start(e: &BytesStart<'_>) -> Result<Self, String> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
            attrs.push((key, value));
        }
        Ok(Elem {
            name,
            attrs,
            children: Vec::new(),
        })
    }

    /// The attribute's value; an empty value counts as absent, as libvirt's
    /// `virXPathString` returns NULL for an empty string.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Children with this name.
    pub fn children_named<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a Elem> + 'n
    where
        'a: 'n,
    {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// `string(./child/@attr)`.
    pub fn child_attr(&self, child: &str, attr: &str) -> Option<&str> {
        self.children_named(child).find_map(|c| c.attr(attr))
    }

    /// `string(./child/@a|./child/@b|...)`: the first of these attributes
    /// in document order over all `child` elements.
    pub fn child_any_attr(&self, child: &str, attrs: &[&str]) -> Option<&str> {
        self.children_named(child).find_map(|c| {
            c.attrs
                .iter()
                .find(|(k, v)| attrs.contains(&k.as_str()) && !v.is_empty())
                .map(|(_, v)| v.as_str())
        })
    }
}

/// Parses a document into its root element.
pub fn parse(xml: &str) -> Result<Elem, String> {
    let mut r = Reader::from_str(xml);
    let mut stack: Vec<Elem> = Vec::new();
    loop {
        match r.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => stack.push(Elem::from_start(&e)?),
            Event::Empty(e) => {
                let el = Elem::from_start(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Eof => return Err("no root element".to_string()),
            _ => {}
        }
    }
}

/// One row of `domblklist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub type_: String,
    pub device: String,
    pub target: String,
    pub source: Option<String>,
}

/// One row of `domiflist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub target: Option<String>,
    pub type_: String,
    pub source: Option<String>,
    pub model: Option<String>,
    pub mac: Option<String>,
}

fn devices(root: &Elem) -> impl Iterator<Item = &Elem> {
    root.children_named("devices")
        .flat_map(|d| d.children.iter())
}

/// The disks of a domain XML; `None` when a disk has no target (virsh
/// then fails with "unable to query block list").
pub fn disks(root: &Elem) -> Option<Vec<Disk>> {
    devices(root)
        .filter(|e| e.name == "disk")
        .map(|d| {
            Some(Disk {
                type_: d.attr("type").unwrap_or("").to_string(),
                device: d.attr("device").unwrap_or("").to_string(),
                target: d.child_attr("target", "dev")?.to_string(),
                source: d
                    .child_any_attr("source", &["file", "dev", "dir", "name", "volume"])
                    .map(str::to_string),
            })
        })
        .collect()
}

/// The interfaces of a domain XML.
pub fn interfaces(root: &Elem) -> Vec<Iface> {
    devices(root)
        .filter(|e| e.name == "interface")
        .map(|i| Iface {
            target: i.child_attr("target", "dev").map(str::to_string),
            type_: i.attr("type").unwrap_or("").to_string(),
            source: i
                .child_any_attr("source", &["bridge", "dev", "network", "name", "path"])
                .map(str::to_string),
            model: i.child_attr("model", "type").map(str::to_string),
            mac: i.child_attr("mac", "address").map(str::to_string),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<domain type='test' id='1'>
  <name>test</name>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
"#;

    #[test]
    fn disks_and_sources() {
        let root = parse(XML).unwrap();
        let d = disks(&root).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].target, "vda");
        assert_eq!(d[0].source.as_deref(), Some("/guest/diskimage1"));
        assert_eq!(d[1].device, "cdrom");
        assert_eq!(d[1].source, None);
    }

    #[test]
    fn interfaces_with_and_without_target() {
        let root = parse(XML).unwrap();
        let i = interfaces(&root);
        assert_eq!(i[0].target.as_deref(), Some("testnet0"));
        assert_eq!(i[0].source.as_deref(), Some("default"));
        assert_eq!(i[0].model, None);
        assert_eq!(i[1].type_, "user");
        assert_eq!(i[1].model.as_deref(), Some("virtio"));
        assert_eq!(i[1].target, None);
    }

    #[test]
    fn disk_without_target_is_refused_and_garbage_fails() {
        let root = parse("<domain><devices><disk type='file'/></devices></domain>").unwrap();
        assert_eq!(disks(&root), None);
        assert!(parse("<domain><devices>").is_err());
        assert!(parse("").is_err());
    }
}
