//! The disks and interfaces of a domain's XML, as `domblklist` and
//! `domiflist` read them (virsh parses the XML client-side), over the
//! domain crate's element tree. virsh reads them with XPath; the helpers
//! below are the few expressions it uses.

use rvirt_domain::xml::{self, Element, XmlError};

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    xml::parse(text)
}

/// `string(./@name)`: an empty value counts as absent, as libvirt's
/// `virXPathString` returns NULL for an empty string.
fn attr<'a>(e: &'a Element, name: &str) -> Option<&'a str> {
    e.attr(name).filter(|v| !v.is_empty())
}

/// Child elements with this name.
fn children<'a, 'n>(e: &'a Element, name: &'n str) -> impl Iterator<Item = &'a Element> + 'n
where
    'a: 'n,
{
    e.elements().filter(move |c| c.name == name)
}

/// `string(./child/@attr)`.
fn child_attr<'a>(e: &'a Element, child: &str, name: &str) -> Option<&'a str> {
    children(e, child).find_map(|c| attr(c, name))
}

/// `string(./child/@a|./child/@b|...)`: the first of these attributes
/// in document order over all `child` elements.
fn child_any_attr<'a>(e: &'a Element, child: &str, names: &[&str]) -> Option<&'a str> {
    children(e, child).find_map(|c| {
        c.attrs
            .iter()
            .find(|(k, v)| names.contains(&k.as_ref()) && !v.is_empty())
            .map(|(_, v)| v.as_ref())
    })
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

fn devices(root: &Element) -> impl Iterator<Item = &Element> {
    children(root, "devices").flat_map(Element::elements)
}

/// The disks of a domain XML; `None` when a disk has no target (virsh
/// then fails with "unable to query block list").
pub fn disks(root: &Element) -> Option<Vec<Disk>> {
    devices(root)
        .filter(|e| e.name == "disk")
        .map(|d| {
            Some(Disk {
                type_: attr(d, "type").unwrap_or("").to_string(),
                device: attr(d, "device").unwrap_or("").to_string(),
                target: child_attr(d, "target", "dev")?.to_string(),
                source: child_any_attr(d, "source", &["file", "dev", "dir", "name", "volume"])
                    .map(str::to_string),
            })
        })
        .collect()
}

/// The interfaces of a domain XML.
pub fn interfaces(root: &Element) -> Vec<Iface> {
    devices(root)
        .filter(|e| e.name == "interface")
        .map(|i| Iface {
            target: child_attr(i, "target", "dev").map(str::to_string),
            type_: attr(i, "type").unwrap_or("").to_string(),
            source: child_any_attr(i, "source", &["bridge", "dev", "network", "name", "path"])
                .map(str::to_string),
            model: child_attr(i, "model", "type").map(str::to_string),
            mac: child_attr(i, "mac", "address").map(str::to_string),
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

    #[test]
    fn empty_values_are_absent_and_sources_are_taken_in_document_order() {
        let root = parse(
            "<domain><devices><disk type='' device='disk'><source dev='' file='/f'/>\
             <source dir='/d'/><target dev=''/><target dev='vda'/></disk></devices></domain>",
        )
        .unwrap();
        let d = disks(&root).unwrap();
        assert_eq!(d[0].type_, "");
        assert_eq!(d[0].source.as_deref(), Some("/f"));
        assert_eq!(d[0].target, "vda");
    }
}
