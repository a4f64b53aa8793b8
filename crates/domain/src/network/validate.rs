//! What libvirt's bridge driver checks when a network is defined or
//! created (`networkValidate`), beyond what its parser checks.

use super::{ErrorKind, Kind, Network, Problems};

pub(super) fn check(net: &Network, p: &mut Problems) {
    let name = &net.name;
    // Names become file names.
    if !name.is_empty()
        && (name == "." || name == ".." || name.starts_with('.') || name.contains('\0'))
    {
        p.xml(net.line, format!("invalid network name '{name}'"));
    }
    if net.kind() != Kind::Virtual {
        let mode = net.forward_mode().map_or("none", |m| m.as_str());
        let unsupported = |what: &str| {
            format!("Unsupported <{what}> element in network {name} with forward mode='{mode}'")
        };
        if net.mac.is_some() {
            p.push(net.line, ErrorKind::Unsupported, unsupported("mac"));
        }
        if let Some(ip) = net.ips.first() {
            p.push(ip.line, ErrorKind::Unsupported, unsupported("ip"));
        }
        if net.dns.as_ref().is_some_and(|d| {
            d.elements()
                .any(|c| matches!(&*c.name, "txt" | "host" | "srv"))
        }) {
            p.push(net.line, ErrorKind::Unsupported, unsupported("dns"));
        }
        if net.domain.is_some() {
            p.push(net.line, ErrorKind::Unsupported, unsupported("domain"));
        }
    }
    for v6 in [false, true] {
        let with_dhcp: Vec<_> = net
            .ips
            .iter()
            .filter(|i| {
                i.address.is_ipv6() == v6
                    && i.dhcp
                        .as_ref()
                        .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
            })
            .collect();
        if let Some(second) = with_dhcp.get(1) {
            let f = if v6 { "IPv6" } else { "IPv4" };
            p.push(
                second.line,
                ErrorKind::Unsupported,
                format!("Multiple {f} dhcp sections found -- dhcp is supported only for a single {f} address on each network"),
            );
        }
    }
    for ip in &net.ips {
        if ip.prefix_len().is_none() {
            p.push(
                ip.line,
                ErrorKind::Internal,
                format!(
                    "bridge '{}' has an invalid netmask or IP address",
                    net.bridge_name().unwrap_or_default()
                ),
            );
        }
    }
}
