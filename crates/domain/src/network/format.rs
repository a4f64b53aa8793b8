//! A network as `virsh net-dumpxml` writes it.

use super::{Bridge, DhcpHost, Ip, Network};
use crate::order;
use crate::xml::{self, Element, Node};

fn sort_attrs(e: &mut Element, table: &[&str]) {
    e.attrs.sort_by_cached_key(|(k, _)| order::rank(table, k));
}

fn with_rest(mut e: Element, rest: &Element) -> Element {
    e.merge(rest);
    e
}

fn bridge(b: &Bridge) -> Element {
    let mut e = Element::new("bridge")
        .with_attr("name", b.name.clone())
        .with_attr("stp", b.stp.map(|s| if s { "on" } else { "off" }))
        .with_attr("delay", b.delay.map(|d| d.to_string()));
    e.attrs.extend(b.attrs.iter().cloned());
    sort_attrs(&mut e, order::NETWORK_BRIDGE_ATTRS);
    e
}

pub(super) fn dhcp_host(h: &DhcpHost) -> Element {
    let e = Element::new("host")
        .with_attr("mac", h.mac.map(|m| m.to_string()))
        .with_attr("id", h.id.clone())
        .with_attr("name", h.name.clone())
        .with_attr("ip", h.ip.map(|a| a.to_string()));
    with_rest(e, &h.extra)
}

fn ip(i: &Ip) -> Element {
    let mut e = Element::new("ip")
        .with_attr("family", i.family.clone())
        .with_attr("address", Some(i.address.to_string()))
        .with_attr("netmask", i.netmask.map(|m| m.to_string()))
        .with_attr("prefix", i.prefix.map(|p| p.to_string()));
    e.attrs.extend(i.attrs.iter().cloned());
    if let Some(root) = &i.tftp_root {
        e.push(Element::new("tftp").with_attr("root", Some(root.clone())));
    }
    if let Some(d) = &i.dhcp {
        let mut de = Element::new("dhcp");
        for r in &d.ranges {
            let re = Element::new("range")
                .with_attr("start", Some(r.start.to_string()))
                .with_attr("end", Some(r.end.to_string()));
            de.push(with_rest(re, &r.extra));
        }
        for h in &d.hosts {
            de.push(dhcp_host(h));
        }
        de.merge(&d.extra);
        de.sort_children(|n| order::rank(order::NETWORK_DHCP, n));
        e.push(de);
    }
    e.merge(&i.extra);
    e.sort_children(|n| order::rank(order::NETWORK_IP, n));
    e
}

/// The document's tree.
pub(super) fn tree(n: &Network) -> Element {
    let mut root = Element::new("network");
    root.attrs = n.attrs.clone();
    root.push(Element::new("name").with_text(n.name.clone()));
    if let Some(u) = n.uuid {
        root.push(Element::new("uuid").with_text(u.to_string()));
    }
    if let Some(f) = &n.forward {
        let mut e = Element::new("forward")
            .with_attr("dev", f.dev.clone())
            .with_attr("mode", Some(f.mode.as_str()));
        e.merge(&f.extra);
        root.push(e);
    }
    if let Some(b) = &n.bridge {
        root.push(bridge(b));
    }
    if let Some(m) = n.mtu {
        root.push(Element::new("mtu").with_attr("size", Some(m.to_string())));
    }
    if let Some(m) = n.mac {
        root.push(Element::new("mac").with_attr("address", Some(m.to_string())));
    }
    if let Some(d) = &n.domain {
        let mut e = Element::new("domain")
            .with_attr("name", Some(d.name.clone()))
            .with_attr(
                "localOnly",
                d.local_only.map(|l| if l { "yes" } else { "no" }),
            );
        e.attrs.extend(d.attrs.iter().cloned());
        root.push(e);
    }
    if let Some(d) = &n.dns {
        root.push(d.clone());
    }
    for i in &n.ips {
        root.push(ip(i));
    }
    root.merge(&n.extra);
    root.sort_children(|c| order::rank(order::NETWORK, c));
    root
}

/// Writes the tree as libvirt does: as `xml::write`, except that an
/// `<ip>` with nothing inside is still opened and closed on two lines
/// (`virNetworkIPDefFormat` always closes it on its own line).
pub(super) fn to_string(n: &Network) -> String {
    let root = tree(n);
    let mut out = String::with_capacity(1024);
    let mut open = root.clone();
    open.children.clear();
    out.push('<');
    out.push_str(&open.name);
    for (k, v) in &open.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        xml::escape_into(&mut out, v);
        out.push('\'');
    }
    out.push_str(">\n");
    for c in &root.children {
        match c {
            Node::Element(e) if e.name == "ip" && e.children.is_empty() => {
                out.push_str("  <ip");
                for (k, v) in &e.attrs {
                    out.push(' ');
                    out.push_str(k);
                    out.push_str("='");
                    xml::escape_into(&mut out, v);
                    out.push('\'');
                }
                out.push_str(">\n  </ip>\n");
            }
            Node::Element(e) => xml::write(&mut out, e, 1),
            Node::Text(t) => {
                out.push_str("  ");
                xml::escape_into(&mut out, t);
                out.push('\n');
            }
        }
    }
    out.push_str("</network>\n");
    out
}
