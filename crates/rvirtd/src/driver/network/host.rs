//! The host side of a virtual network, made and unmade as libvirt's
//! bridge driver does (`networkStartNetworkVirtual`,
//! `networkShutdownNetworkVirtual`): the route collision check, the bridge
//! with its MAC, MTU, STP and delay, IPv6 sysctls, the firewall rules, the
//! addresses, up, IP forwarding, then dnsmasq. A failure undoes every step
//! already taken, in reverse, so a failed start leaves nothing behind.

use std::path::Path;
use std::sync::Arc;

use rvirt_domain::network::{Kind, Network};
use rvirt_hostnet::{strerror, Interfaces};
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;

use super::dnsmasq::{self, Files, Programs};
use super::firewall;
use crate::supervise::Child;

/// The programs and files a start needs.
pub struct Tools<'a> {
    pub dnsmasq: &'a Path,
    pub helper: &'a Path,
    pub nft: &'a Path,
}

fn system(detail: String) -> RemoteError {
    RemoteError::new(code::SYSTEM_ERROR, from::NONE, Some(&detail))
}

fn internal(detail: String) -> RemoteError {
    RemoteError::new(code::INTERNAL_ERROR, from::NONE, Some(&detail))
}

/// libvirt's `networkCheckRouteCollision`: an IPv4 network of `net` that
/// is already routed through some interface (`/proc/net/route`, of the
/// daemon's network namespace) is refused.
pub fn check_route_collision(net: &Network, routes: &str) -> Result<(), RemoteError> {
    if !routes.starts_with("Iface") {
        return Ok(());
    }
    for line in routes.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // The table prints each address as the host reads its network-order
        // bytes as a number.
        let dest = u32::from_be_bytes(dest.to_ne_bytes());
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        for c in net.ipv4().filter_map(|i| i.cidr()) {
            let ours = u32::from(c.netmask());
            let std::net::IpAddr::V4(addr) = c.address else {
                continue;
            };
            if u32::from(addr) & ours == dest & mask && ours == mask {
                return Err(internal(format!(
                    "Network is already in use by interface {}",
                    f[0]
                )));
            }
        }
    }
    Ok(())
}

fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// What a start made, to undo on failure or at destroy.
#[derive(Default)]
pub struct Made {
    pub bridge: Option<String>,
    pub rules: bool,
    pub dnsmasq: Option<Arc<Child>>,
}

/// Makes the host side of `net` (whose bridge name is filled in).
pub fn start(tools: &Tools<'_>, net: &Network, files: &Files) -> Result<Made, RemoteError> {
    let mut made = Made::default();
    match start_steps(tools, net, files, &mut made) {
        Ok(()) => Ok(made),
        Err(e) => {
            stop(tools, made);
            Err(e)
        }
    }
}

fn start_steps(
    tools: &Tools<'_>,
    net: &Network,
    files: &Files,
    made: &mut Made,
) -> Result<(), RemoteError> {
    if net.kind() != Kind::Virtual {
        return Ok(());
    }
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    check_route_collision(net, &routes)?;
    let Some(br) = net.bridge_name().map(str::to_string) else {
        return Err(internal(format!(
            "network '{}' has no bridge name defined",
            net.name
        )));
    };
    let ifs =
        Interfaces::new().map_err(|e| system(format!("cannot open a socket: {}", strerror(&e))))?;
    ifs.create_bridge(&br).map_err(|e| {
        system(format!(
            "error creating bridge interface {br}: {}",
            strerror(&e)
        ))
    })?;
    made.bridge = Some(br.clone());
    if let Some(mac) = net.mac {
        ifs.set_mac(&br, mac.0).map_err(|e| {
            system(format!(
                "Cannot set interface MAC on '{br}': {}",
                strerror(&e)
            ))
        })?;
    }
    if let Some(mtu) = net.mtu {
        ifs.set_mtu(&br, mtu).map_err(|e| {
            system(format!(
                "Cannot set interface MTU on '{br}': {}",
                strerror(&e)
            ))
        })?;
    }
    let b = net.bridge.as_ref();
    ifs.set_bridge_forward_delay(&br, b.and_then(|b| b.delay).unwrap_or(0))
        .map_err(|e| {
            system(format!(
                "Unable to set bridge {br} forward_delay: {}",
                strerror(&e)
            ))
        })?;
    ifs.set_bridge_stp(&br, b.and_then(|b| b.stp).unwrap_or(true))
        .map_err(|e| {
            system(format!(
                "Unable to set bridge {br} stp_state: {}",
                strerror(&e)
            ))
        })?;
    // No IPv6 on the bridge unless the network has an IPv6 address, and
    // never router advertisements from guests (libvirt's sysctls).
    let v6 = net.ips.iter().any(|i| i.address.is_ipv6());
    let conf = format!("/proc/sys/net/ipv6/conf/{br}");
    if Path::new(&conf).exists() {
        for (k, v) in [
            ("disable_ipv6", if v6 { "0" } else { "1" }),
            ("accept_ra", "0"),
            ("autoconf", "0"),
        ] {
            write_sysctl(&format!("{conf}/{k}"), v).map_err(|e| {
                system(format!(
                    "cannot write to '{conf}/{k}' on bridge '{br}': {}",
                    strerror(&e)
                ))
            })?;
        }
    }
    firewall::apply(tools.nft, net, &br).map_err(|e| internal(crate::error_chain(&e)))?;
    made.rules = true;
    for ip in &net.ips {
        let prefix = ip.prefix_len().ok_or_else(|| {
            internal(format!(
                "bridge '{br}' has an invalid netmask or IP address"
            ))
        })?;
        ifs.add_address(&br, ip.address, prefix).map_err(|e| {
            system(format!(
                "Failed to add IP address {}/{prefix} to {br}: {}",
                ip.address,
                strerror(&e)
            ))
        })?;
    }
    ifs.set_up(&br).map_err(|e| {
        system(format!(
            "Cannot set interface flags on '{br}': {}",
            strerror(&e)
        ))
    })?;
    if net.forward.is_some() {
        let v4 = net.ips.iter().any(|i| i.address.is_ipv4());
        let mut r = Ok(());
        if v4 {
            r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1\n");
        }
        if v6 && r.is_ok() {
            r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1\n");
        }
        r.map_err(|e| system(format!("failed to enable IP forwarding: {}", strerror(&e))))?;
    }
    if dnsmasq::needed(net) {
        let p = Programs {
            dnsmasq: tools.dnsmasq,
            helper: tools.helper,
        };
        let child = dnsmasq::start(&p, net, &br, files).map_err(|e| match e {
            dnsmasq::DnsmasqError::Binary { .. } => system(e.to_string()),
            other => internal(crate::error_chain(&other)),
        })?;
        made.dnsmasq = Some(child);
    }
    Ok(())
}

/// Unmakes what a start made: dnsmasq, the bridge down, the rules, the
/// bridge gone (libvirt's order). Errors are logged, never stop the rest.
pub fn stop(tools: &Tools<'_>, made: Made) {
    if let Some(d) = made.dnsmasq {
        dnsmasq::stop(&d);
    }
    let ifs = Interfaces::new();
    if let (Some(br), Ok(ifs)) = (&made.bridge, &ifs) {
        let _ = ifs.set_down(br);
    }
    if made.rules {
        if let Some(br) = &made.bridge {
            if let Err(e) = firewall::remove(tools.nft, br) {
                tracing::warn!(bridge = %br, error = %crate::error_chain(&e), "firewall rules not removed");
            }
        }
    }
    if let (Some(br), Ok(ifs)) = (&made.bridge, &ifs) {
        if let Err(e) = ifs.delete_bridge(br) {
            tracing::warn!(bridge = %br, error = %e, "bridge not deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_network_is_refused_with_the_interface_that_has_it() {
        let net = Network::from_xml(
            "<network><name>n</name><ip address='192.168.122.1' netmask='255.255.255.0'/></network>",
        )
        .unwrap();
        // /proc/net/route on a little-endian host: 192.168.122.0/24 on eth1.
        let routes =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                      eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                      eth1\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let e = check_route_collision(&net, routes).unwrap_err();
        assert_eq!(
            e.message.as_deref(),
            Some("internal error: Network is already in use by interface eth1")
        );
        let other = routes.replace("007AA8C0", "007BA8C0");
        check_route_collision(&net, &other).unwrap();
        check_route_collision(&net, "garbage").unwrap();
    }
}
