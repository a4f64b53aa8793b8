//! The network model from the XML tree, with libvirt's parser messages;
//! each reader takes what it knows out of its element and keeps the rest.

use std::net::IpAddr;

use super::addr::{range_size, DhcpRangeError};
use super::{
    Bridge, Dhcp, DhcpHost, DhcpRange, DomainName, ErrorKind, Forward, ForwardMode, Ip, Network,
    Problems,
};
use crate::mac::{Mac, MacError};
use crate::order;
use crate::xml::{Element, Node};

/// What is left of an element, in libvirt's order, layout text dropped.
fn rest(mut e: Element, table: &[&str]) -> Element {
    e.children.retain(|n| match n {
        Node::Text(t) => !t.trim().is_empty(),
        Node::Element(_) => true,
    });
    e.sort_children(|n| order::rank(table, n));
    e
}

fn yes_no(v: &str) -> Option<bool> {
    match v {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn network(mut root: Element, p: &mut Problems) -> Option<Network> {
    if root.name != "network" {
        p.xml(
            root.line,
            format!("expecting root element of 'network', not '{}'", root.name),
        );
        return None;
    }
    let line = root.line;
    let name = match root.take_child("name").map(|mut n| (n.take_text(), n.line)) {
        Some((n, l)) if !n.trim().is_empty() => {
            let n = n.trim().to_string();
            if let Some(c) = n.chars().find(|c| matches!(c, '/' | '\n')) {
                p.xml(l, format!("invalid char in name: {c}"));
            }
            n
        }
        _ => {
            p.xml(line, "missing name information");
            String::new()
        }
    };
    let uuid = root.take_child("uuid").and_then(|mut u| {
        let text = u.take_text();
        match uuid::Uuid::parse_str(text.trim()) {
            Ok(id) => Some(id),
            Err(_) => {
                p.push(u.line, ErrorKind::Internal, "malformed uuid element");
                None
            }
        }
    });
    let forward = root.take_child("forward").and_then(|f| forward(f, p));
    let bridge = root.take_child("bridge").map(|mut b| Bridge {
        name: b.take_attr("name").filter(|n| !n.is_empty()),
        stp: b.take_attr("stp").and_then(|v| {
            let r = yes_no(&v);
            if r.is_none() {
                p.xml(
                    b.line,
                    format!("Invalid stp value '{v}' in network '{name}'"),
                );
            }
            r
        }),
        delay: b.take_attr("delay").and_then(|v| match v.trim().parse() {
            Ok(d) => Some(d),
            Err(_) => {
                p.xml(b.line, format!("Invalid delay value in network '{name}'"));
                None
            }
        }),
        attrs: {
            // In the order the writer puts them, so a re-read compares equal.
            let mut a = std::mem::take(&mut b.attrs);
            a.sort_by_cached_key(|(k, _)| order::rank(order::NETWORK_BRIDGE_ATTRS, k));
            a
        },
        line: b.line,
    });
    let mtu = root.take_child("mtu").and_then(|mut m| {
        let size = m.take_attr("size").unwrap_or_default();
        match size.trim().parse::<u32>() {
            Ok(0) => None,
            Ok(v) => Some(v),
            Err(_) => {
                p.xml(
                    m.line,
                    format!("Invalid mtu size '{size}' in network '{name}'"),
                );
                None
            }
        }
    });
    let mac = root.take_child("mac").and_then(|mut m| {
        let addr = m.take_attr("address").unwrap_or_default();
        match addr.parse::<Mac>() {
            Ok(mac) => Some(mac),
            Err(MacError::Multicast(_)) => {
                p.xml(
                    m.line,
                    format!("Invalid multicast bridge mac address '{addr}' in network '{name}'"),
                );
                None
            }
            Err(MacError::Syntax(_)) => {
                p.xml(
                    m.line,
                    format!("Invalid bridge mac address '{addr}' in network '{name}'"),
                );
                None
            }
        }
    });
    let domain = root.take_child("domain").map(|mut d| DomainName {
        name: d.take_attr("name").unwrap_or_default(),
        local_only: d.take_attr("localOnly").and_then(|v| yes_no(&v)),
        attrs: std::mem::take(&mut d.attrs),
    });
    let dns = root.take_child("dns").map(|d| rest(d, order::NETWORK_DNS));
    let ips: Vec<Ip> = root
        .take_children("ip")
        .into_iter()
        .filter_map(|e| ip(e, &name, p))
        .collect();
    if let Some(f) = &forward {
        if matches!(f.mode, ForwardMode::Nat | ForwardMode::Route) && ips.is_empty() {
            p.xml(
                f.line,
                format!(
                    "{} forwarding requested, but no IP address provided for network '{name}'",
                    f.mode.as_str()
                ),
            );
        }
        if f.mode == ForwardMode::Bridge {
            if let Some(b) = &bridge {
                if b.name.is_some() && f.dev.is_some() {
                    p.xml(f.line, format!("A network with forward mode='bridge' can specify a bridge name or a forward dev, but not both (network '{name}')"));
                }
                if b.stp.is_some() || b.delay.is_some() || b.attrs.iter().any(|(k, _)| k == "zone")
                {
                    p.xml(b.line, format!("bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in bridge (network '{name}')"));
                }
            }
        }
    }
    let attrs = std::mem::take(&mut root.attrs);
    Some(Network {
        name,
        uuid,
        attrs,
        forward,
        bridge,
        mtu,
        mac,
        domain,
        dns,
        ips,
        extra: rest(root, order::NETWORK),
        line,
    })
}

fn forward(mut f: Element, p: &mut Problems) -> Option<Forward> {
    let line = f.line;
    let mode = match f.take_attr("mode") {
        None => ForwardMode::Nat,
        Some(m) => match ForwardMode::parse(&m) {
            Some(mode) => mode,
            None => {
                p.push(
                    line,
                    ErrorKind::Unsupported,
                    format!("unknown forwarding type '{m}'"),
                );
                return None;
            }
        },
    };
    let dev = f.take_attr("dev").filter(|d| !d.is_empty());
    // libvirt lists the forward dev as the first pool interface too.
    if let Some(d) = &dev {
        if !f
            .elements()
            .any(|c| c.name == "interface" && c.attr("dev") == Some(d))
        {
            let mut i = Element::new("interface");
            i.set_attr("dev", d.clone());
            f.children.insert(0, Node::Element(i));
        }
    }
    for c in f.children.iter_mut() {
        if let Node::Element(nat) = c {
            if nat.name == "nat" {
                nat.sort_children(|n| order::rank(order::NETWORK_NAT, n));
            }
        }
    }
    Some(Forward {
        mode,
        dev,
        extra: rest(f, order::NETWORK_FORWARD),
        line,
    })
}

fn addr(p: &mut Problems, e: &Element, attr: &str, value: &str, name: &str) -> Option<IpAddr> {
    match value.trim().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let what = if attr == "address" {
                "address".to_string()
            } else {
                format!("{attr} address")
            };
            p.xml(
                e.line,
                format!("Invalid {what} '{value}' in network '{name}'"),
            );
            None
        }
    }
}

fn ip(mut e: Element, name: &str, p: &mut Problems) -> Option<Ip> {
    let line = e.line;
    let family = e.take_attr("family");
    let address = match e.take_attr("address") {
        Some(a) => addr(p, &e, "address", &a, name)?,
        None => {
            p.xml(
                line,
                format!("Missing required address attribute in network '{name}'"),
            );
            return None;
        }
    };
    match family.as_deref() {
        None => {}
        Some("ipv4") if address.is_ipv4() => {}
        Some("ipv6") if address.is_ipv6() => {}
        Some(f @ ("ipv4" | "ipv6")) => {
            p.xml(
                line,
                format!(
                    "Family '{f}' specified for non-{} address '{address}' in network '{name}'",
                    if f == "ipv4" { "IPv4" } else { "IPv6" }
                ),
            );
        }
        Some(f) => p.xml(
            line,
            format!("Unrecognized family '{f}' in network '{name}'"),
        ),
    }
    let netmask = match e.take_attr("netmask") {
        Some(m) => {
            let mask = addr(p, &e, "netmask", &m, name)?;
            if address.is_ipv6() || mask.is_ipv6() {
                p.xml(
                    line,
                    format!("netmask not supported for address '{address}' in network '{name}' (IPv4 only)"),
                );
            } else if super::addr::netmask_prefix(mask).is_none() {
                p.xml(line, format!("Invalid netmask '{m}' in network '{name}'"));
            }
            Some(mask)
        }
        None => None,
    };
    let prefix = match e.take_attr("prefix") {
        Some(v) => match v.trim().parse::<u8>() {
            Ok(pfx) if pfx <= if address.is_ipv4() { 32 } else { 128 } => Some(pfx),
            _ => {
                p.xml(
                    line,
                    format!("Invalid ip address prefix value '{v}' in network '{name}'"),
                );
                None
            }
        },
        None => None,
    };
    if netmask.is_some() && prefix.is_some() {
        p.push(
            line,
            ErrorKind::Unsupported,
            format!("Network '{name}' IP address cannot have both a prefix and a netmask"),
        );
    }
    let mut ipdef = Ip {
        family,
        address,
        netmask,
        prefix,
        attrs: std::mem::take(&mut e.attrs),
        tftp_root: None,
        dhcp: None,
        extra: Element::new("ip"),
        line,
    };
    if let Some(mut t) = e.take_child("tftp") {
        ipdef.tftp_root = t.take_attr("root");
        if !t.is_empty() {
            t.set_attr("root", ipdef.tftp_root.take().unwrap_or_default());
            e.push(t);
        }
    }
    if let Some(d) = e.take_child("dhcp") {
        ipdef.dhcp = Some(dhcp(d, &ipdef, name, p));
    }
    ipdef.extra = rest(e, order::NETWORK_IP);
    Some(ipdef)
}

fn dhcp(mut d: Element, ip: &Ip, name: &str, p: &mut Problems) -> Dhcp {
    let line = d.line;
    let cidr = ip.cidr();
    let ranges = d
        .take_children("range")
        .into_iter()
        .filter_map(|mut r| {
            let rline = r.line;
            let start = r.take_attr("start");
            let end = r.take_attr("end");
            let (Some(start), Some(end)) = (start, end) else {
                p.xml(
                    rline,
                    format!(
                        "Missing 'start' or 'end' attribute in dhcp range for network '{name}'"
                    ),
                );
                return None;
            };
            let s = addr(p, &r, "start", &start, name)?;
            let e = addr(p, &r, "end", &end, name)?;
            if let Some(c) = &cidr {
                match range_size(s, e, c) {
                    Ok(_) => {}
                    Err(DhcpRangeError::Outside) => p.push(
                        rline,
                        ErrorKind::Internal,
                        format!("range {s} - {e} is not entirely within network {c}"),
                    ),
                    Err(DhcpRangeError::Reversed) => p.push(
                        rline,
                        ErrorKind::Internal,
                        format!("range {s} - {e} is reversed "),
                    ),
                    Err(DhcpRangeError::Family) => p.push(
                        rline,
                        ErrorKind::Internal,
                        format!("range {s} - {e} is not entirely within network {c}"),
                    ),
                }
            }
            Some(DhcpRange {
                start: s,
                end: e,
                extra: rest(r, &["lease"]),
                line: rline,
            })
        })
        .collect();
    let v6 = ip.address.is_ipv6();
    let hosts = d
        .take_children("host")
        .into_iter()
        .filter_map(|h| dhcp_host(h, v6, name, p))
        .collect();
    Dhcp {
        ranges,
        hosts,
        extra: rest(d, order::NETWORK_DHCP),
        line,
    }
}

/// One `<host>` of `<dhcp>`, also what `net-update … ip-dhcp-host` sends.
pub(super) fn dhcp_host(
    mut h: Element,
    v6: bool,
    name: &str,
    p: &mut Problems,
) -> Option<DhcpHost> {
    let line = h.line;
    let mac = match h.take_attr("mac") {
        Some(m) => {
            match m.parse::<Mac>() {
                Ok(mac) => Some(mac),
                Err(MacError::Multicast(_)) => {
                    p.xml(line, format!("expected unicast mac address, found multicast '{m}' in network '{name}'"));
                    return None;
                }
                Err(MacError::Syntax(_)) => {
                    p.xml(
                        line,
                        format!("Cannot parse MAC address '{m}' in network '{name}'"),
                    );
                    return None;
                }
            }
        }
        None => None,
    };
    let id = h.take_attr("id");
    let hostname = h.take_attr("name");
    if let Some(n) = &hostname {
        if !n.starts_with(|c: char| c.is_ascii_alphabetic()) {
            p.xml(
                line,
                format!("Cannot use host name '{n}' in network '{name}'"),
            );
        }
    }
    let ip = match h.take_attr("ip") {
        Some(a) => Some(addr(p, &h, "ip", &a, name)?),
        None => None,
    };
    if !v6 && mac.is_none() && hostname.is_none() {
        p.xml(
            line,
            format!(
                "Static host definition in IPv4 network '{name}' must have mac or name attribute"
            ),
        );
        return None;
    }
    if v6 && id.is_none() && hostname.is_none() {
        p.xml(
            line,
            format!(
                "Static host definition in IPv6 network '{name}' must have id or name attribute"
            ),
        );
        return None;
    }
    Some(DhcpHost {
        mac,
        id,
        name: hostname,
        ip,
        extra: rest(h, &["lease"]),
        line,
    })
}
