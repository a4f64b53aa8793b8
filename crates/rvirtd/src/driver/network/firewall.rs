//! A network's firewall rules, as libvirt's bridge driver makes them with
//! iptables (`network_iptables.c`), written for nftables and applied with
//! `nft`: one table per network, `inet rvirt_BRIDGE`, added in one
//! transaction on start and deleted whole on destroy, so nothing is left
//! behind and a half-applied set never exists. After a restart rvirtd
//! applies it again (the same transaction replaces what is there), as
//! libvirtd reloads its rules.
//!
//! - input: DNS (udp/tcp 53) and DHCP (udp 67, 547) from the bridge
//!   accepted; output: DHCP replies (udp 68, 546) to it accepted;
//! - forward: traffic between guests on the bridge accepted; for `nat`,
//!   from the network out and replies back in (conntrack); for `route`,
//!   both ways; everything else in or out of the bridge rejected (the
//!   only forwarding an isolated network gets);
//! - postrouting (`nat` only): masquerade out of the network, TCP and UDP
//!   to ports 1024-65535 (or `<nat><port>`), multicast and broadcast left
//!   alone.
//!
//! Accepts in this table do not override drops in another table (a host
//! firewall's own nftables or iptables-nft chains still apply); libvirt's
//! iptables rules had the same limit with a host firewall's FORWARD drop.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use rvirt_domain::network::{Cidr, ForwardMode, Network};

/// The table of a network, by its bridge.
pub fn table_name(bridge: &str) -> String {
    let safe: String = bridge
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("rvirt_{safe}")
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn nat_ports(net: &Network) -> (u32, u32) {
    let port = net.forward.as_ref().and_then(|f| {
        f.extra
            .child("nat")
            .and_then(|n| n.child("port"))
            .map(|p| (p.attr("start"), p.attr("end")))
    });
    match port {
        Some((Some(s), Some(e))) => (s.parse().unwrap_or(1024), e.parse().unwrap_or(65535)),
        _ => (1024, 65535),
    }
}

/// The whole ruleset of `net` on `bridge`, as one `nft -f` transaction
/// that replaces the table if it exists.
pub fn ruleset(net: &Network, bridge: &str) -> String {
    let t = table_name(bridge);
    let mode = net.forward_mode();
    let nets: Vec<Cidr> = net.ips.iter().filter_map(|i| i.cidr()).collect();
    let mut forward = vec![format!("iifname \"{bridge}\" oifname \"{bridge}\" accept")];
    for c in &nets {
        let f = family(c.address);
        let n = format!("{}/{}", c.network(), c.prefix);
        match mode {
            Some(ForwardMode::Nat) => {
                forward.push(format!("iifname \"{bridge}\" {f} saddr {n} accept"));
                forward.push(format!(
                    "oifname \"{bridge}\" {f} daddr {n} ct state related,established accept"
                ));
            }
            Some(ForwardMode::Route) => {
                forward.push(format!("iifname \"{bridge}\" {f} saddr {n} accept"));
                forward.push(format!("oifname \"{bridge}\" {f} daddr {n} accept"));
            }
            _ => {}
        }
    }
    forward.push(format!("iifname \"{bridge}\" reject"));
    forward.push(format!("oifname \"{bridge}\" reject"));
    let mut nat = Vec::new();
    if mode == Some(ForwardMode::Nat) {
        let (lo, hi) = nat_ports(net);
        for c in nets.iter().filter(|c| c.address.is_ipv4()) {
            let n = format!("{}/{}", c.network(), c.prefix);
            nat.push(format!("ip saddr {n} ip daddr 224.0.0.0/24 return"));
            nat.push(format!("ip saddr {n} ip daddr 255.255.255.255 return"));
            for proto in ["tcp", "udp"] {
                nat.push(format!(
                    "ip saddr {n} ip daddr != {n} meta l4proto {proto} masquerade to :{lo}-{hi}"
                ));
            }
            nat.push(format!("ip saddr {n} ip daddr != {n} masquerade"));
        }
    }
    let mut s = format!("add table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
    s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    s.push_str(&format!(
        "    iifname \"{bridge}\" udp dport {{ 53, 67, 547 }} accept\n    iifname \"{bridge}\" tcp dport 53 accept\n  }}\n"
    ));
    s.push_str("  chain output {\n    type filter hook output priority filter; policy accept;\n");
    s.push_str(&format!(
        "    oifname \"{bridge}\" udp dport {{ 68, 546 }} accept\n  }}\n"
    ));
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    for r in &forward {
        s.push_str(&format!("    {r}\n"));
    }
    s.push_str("  }\n");
    if !nat.is_empty() {
        s.push_str(
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
        );
        for r in &nat {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// Why rules could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run {0}")]
    Run(String, #[source] std::io::Error),
    #[error("{0} failed: {1}")]
    Failed(String, String),
}

fn nft(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<(), FirewallError> {
    let shown = program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FirewallError::Run(shown.clone(), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| FirewallError::Run(shown.clone(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| FirewallError::Run(shown.clone(), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FirewallError::Failed(
            format!("{shown} {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Adds (or replaces) the network's table.
pub fn apply(program: &Path, net: &Network, bridge: &str) -> Result<(), FirewallError> {
    nft(program, &["-f", "-"], Some(&ruleset(net, bridge)))
}

/// Deletes the network's table; a table already gone is no error.
pub fn remove(program: &Path, bridge: &str) -> Result<(), FirewallError> {
    let t = table_name(bridge);
    match nft(program, &["delete", "table", "inet", &t], None) {
        Err(FirewallError::Failed(_, msg)) if msg.contains("No such file or directory") => Ok(()),
        other => other,
    }
}

/// Whether the network's table exists.
pub fn exists(program: &Path, bridge: &str) -> bool {
    nft(
        program,
        &["list", "table", "inet", &table_name(bridge)],
        None,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nat_ruleset_is_libvirts_set_in_one_table() {
        let net = Network::from_xml(
            "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
             <ip address='192.168.122.1' netmask='255.255.255.0'/></network>",
        )
        .unwrap();
        let r = ruleset(&net, "virbr0");
        assert!(r.starts_with("add table inet rvirt_virbr0\ndelete table inet rvirt_virbr0\n"));
        for want in [
            "iifname \"virbr0\" udp dport { 53, 67, 547 } accept",
            "iifname \"virbr0\" oifname \"virbr0\" accept",
            "iifname \"virbr0\" ip saddr 192.168.122.0/24 accept",
            "oifname \"virbr0\" ip daddr 192.168.122.0/24 ct state related,established accept",
            "oifname \"virbr0\" reject",
            "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 meta l4proto tcp masquerade to :1024-65535",
            "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade",
        ] {
            assert!(r.contains(want), "{want} missing from\n{r}");
        }
        // An isolated network forwards nothing and masquerades nothing.
        let iso = Network::from_xml(
            "<network><name>i</name><ip address='10.0.0.1' prefix='24'/></network>",
        )
        .unwrap();
        let r = ruleset(&iso, "virbr1");
        assert!(!r.contains("masquerade") && !r.contains("saddr"), "{r}");
        assert_eq!(table_name("br-x.1"), "rvirt_br_x_1");
    }
}
