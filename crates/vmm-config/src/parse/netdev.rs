//! `-netdev tap|stream|user,...` and QEMU's MAC address rules: the `mac=`
//! syntax and the default 52:54:00:12:34:56+ series.

use std::net::Ipv4Addr;

use crate::config::{HostFwd, Netdev, StreamAddr, StreamNetdev, TapSource, UserNetdev};
use crate::opts::Opts;
use crate::ConfigError;

/// Netdev types QEMU 7.2 knows that rvirt does not serve; anything else
/// is refused as unknown (QEMU's wording).
const OTHER_NETDEV_TYPES: &[&str] = &[
    "socket",
    "dgram",
    "l2tpv3",
    "vde",
    "bridge",
    "hubport",
    "netmap",
    "vhost-user",
    "vhost-vdpa",
    "vmnet-host",
    "vmnet-shared",
    "vmnet-bridged",
];

/// QEMU's own message for the options `fd=` excludes.
const INVALID_WITH_FD: &str = "ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, \
                               fds=, and vhostfds= are invalid with fd=";

/// Parses `-netdev TYPE,id=ID,...` (or its JSON form) into its id and
/// back-end; rvirt-domain reads slirp's addressing for a daemon's passt
/// with it.
pub fn parse_netdev(v: &str) -> Result<(String, Netdev), ConfigError> {
    let mut o = Opts::parse_repeating("-netdev", v, Some("type"), &["hostfwd"])?;
    let kind = o
        .get("type")
        .ok_or_else(|| o.error("Parameter 'type' is missing".into()))?;
    if !matches!(kind.as_str(), "tap" | "stream" | "user") {
        return Err(if OTHER_NETDEV_TYPES.contains(&kind.as_str()) {
            o.error(format!(
                "type '{kind}' is not supported yet (only tap, stream and user)"
            ))
        } else {
            o.error(format!("Parameter 'type' does not accept value '{kind}'"))
        });
    }
    let id = o
        .get("id")
        .ok_or_else(|| o.error("Parameter 'id' is missing".into()))?;
    let netdev = match kind.as_str() {
        "stream" => Netdev::Stream(stream(&mut o)?),
        "user" => Netdev::User(user(&mut o)?),
        _ => Netdev::Tap(tap(&mut o)?),
    };
    o.finish()?;
    Ok((id, netdev))
}

fn tap(o: &mut Opts) -> Result<TapSource, ConfigError> {
    let ifname = o.get("ifname");
    let fd = o.get("fd");
    let script = o.get("script");
    let downscript = o.get("downscript");
    let vnet_hdr = o.get_bool("vnet_hdr")?;
    let helper = o.get("helper");
    let queues = o.get_u32("queues")?;
    let fds = o.get("fds");
    let vhostfds = o.get("vhostfds");
    if fd.is_some()
        && (ifname.is_some()
            || script.is_some()
            || downscript.is_some()
            || vnet_hdr.is_some()
            || helper.is_some()
            || queues.is_some()
            || fds.is_some()
            || vhostfds.is_some())
    {
        return Err(o.error(INVALID_WITH_FD.into()));
    }
    if fds.is_some() || queues.is_some_and(|q| q > 1) {
        return Err(o.error("multiqueue (fds=, queues= above 1) is not supported yet".into()));
    }
    if queues == Some(0) {
        return Err(o.error("parameter 'queues' must be at least 1".into()));
    }
    // rvirt never runs programs on the host's behalf: the tap arrives ready
    // (configured by rvirtd or the caller), so only "no scripts" makes sense.
    for (key, val) in [("script", &script), ("downscript", &downscript)] {
        if let Some(s) = val {
            if s != "no" && !s.is_empty() {
                return Err(o.error(format!(
                    "{key}={s}: rvirt does not run network scripts; use {key}=no and set the tap up beforehand"
                )));
            }
        }
    }
    if helper.is_some() || o.get("br").is_some() {
        return Err(o.error(
            "helper= and br= are not supported: rvirt does not run network helpers".into(),
        ));
    }
    let vhostfd = o.get("vhostfd");
    if o.get_bool("vhost")? == Some(true)
        || o.get_bool("vhostforce")? == Some(true)
        || vhostfd.is_some()
        || vhostfds.is_some()
    {
        return Err(o.error("vhost-net is not supported: use vhost=off".into()));
    }
    // sndbuf only throttles the host side; poll-us only applies to vhost.
    o.ignore(&["sndbuf", "poll-us"]);
    Ok(match fd {
        Some(fd) => TapSource::Fd(fd_number(&fd).ok_or_else(|| {
            ConfigError::new(
                "-netdev",
                format!("fd={fd}: expects a file descriptor number"),
            )
        })?),
        None => TapSource::Name(ifname.filter(|n| !n.is_empty())),
    })
}

fn fd_number(s: &str) -> Option<i32> {
    s.parse::<i32>().ok().filter(|n| *n >= 0)
}

/// `-netdev stream` as QEMU 7.2 has it, as a client (`server=off`, its
/// default), with QEMU 8's `reconnect=`.
fn stream(o: &mut Opts) -> Result<StreamNetdev, ConfigError> {
    if o.get_bool("server")? == Some(true) {
        return Err(
            o.error("server=on is not supported: rvirt connects to its peer (server=off)".into())
        );
    }
    let reconnect = o.get_u32("reconnect")?.filter(|n| *n > 0);
    let kind = o.require("addr.type")?;
    let addr = match kind.as_str() {
        "unix" => {
            let path = o.require("addr.path")?;
            if o.get_bool("addr.abstract")? == Some(true) {
                return Err(o.error("addr.abstract=on is not supported".into()));
            }
            o.get_bool("addr.tight")?;
            if path.is_empty() {
                return Err(o.error("addr.path is empty".into()));
            }
            StreamAddr::Unix(path.into())
        }
        "fd" => {
            let n = o.require("addr.str")?;
            if reconnect.is_some() {
                return Err(o.error("reconnect= needs addr.type=unix".into()));
            }
            StreamAddr::Fd(fd_number(&n).ok_or_else(|| {
                o.error(format!("addr.str={n}: expects a file descriptor number"))
            })?)
        }
        "inet" | "vsock" => {
            return Err(o.error(format!(
                "addr.type={kind} is not supported yet (only unix and fd)"
            )))
        }
        other => {
            return Err(o.error(format!(
                "Parameter 'addr.type' does not accept value '{other}'"
            )))
        }
    };
    Ok(StreamNetdev { addr, reconnect })
}

/// slirp's options that passt has no counterpart for.
const USER_UNSUPPORTED: &[&str] = &[
    "hostname",
    "domainname",
    "dnssearch",
    "tftp",
    "tftp-server-name",
    "bootfile",
    "smb",
    "smbserver",
    "guestfwd",
    "ipv6-net",
    "ipv6-prefix",
    "ipv6-prefixlen",
    "ipv6-host",
    "ipv6-dns",
];

/// `-netdev user` with slirp's addressing (QEMU's net/slirp.c defaults).
fn user(o: &mut Opts) -> Result<UserNetdev, ConfigError> {
    for key in USER_UNSUPPORTED {
        if o.get(key).is_some() {
            return Err(o.error(format!(
                "parameter '{key}' is not supported by rvirt's user networking (passt)"
            )));
        }
    }
    if o.get_bool("restrict")? == Some(true) {
        return Err(
            o.error("restrict=on is not supported by rvirt's user networking (passt)".into())
        );
    }
    let ipv4 = o.get_bool("ipv4")?.unwrap_or(true);
    let ipv6 = o.get_bool("ipv6")?.unwrap_or(true);
    if !ipv4 && !ipv6 {
        return Err(o.error("IPv4 and IPv6 cannot both be disabled".into()));
    }
    let (net, prefix) = match o.get("net") {
        None => (Ipv4Addr::new(10, 0, 2, 0), 24),
        Some(n) => {
            parse_net(&n).ok_or_else(|| o.error(format!("net={n}: expects ADDRESS[/MASK]")))?
        }
    };
    let mask = u32::MAX << (32 - prefix);
    let network = u32::from(net) & mask;
    let in_net = |key: &str, default: u32, o: &mut Opts| -> Result<Ipv4Addr, ConfigError> {
        let a = match o.get(key) {
            None => Ipv4Addr::from(network | default),
            Some(v) => v
                .parse::<Ipv4Addr>()
                .map_err(|_| o.error(format!("{key}={v}: expects an IPv4 address")))?,
        };
        if u32::from(a) & mask != network {
            return Err(o.error(format!(
                "{key}={a} is not in the network {}/{prefix}",
                Ipv4Addr::from(network)
            )));
        }
        Ok(a)
    };
    let host = in_net("host", 2, o)?;
    let guest = in_net("dhcpstart", 15, o)?;
    let dns = in_net("dns", 3, o)?;
    if guest == host || guest == dns {
        return Err(o.error(format!(
            "dhcpstart={guest} is the host's or the DNS server's address"
        )));
    }
    let hostfwd = o
        .get_all("hostfwd")
        .iter()
        .map(|r| {
            host_forward(r, guest)
                .map_err(|why| o.error(format!("Invalid host forwarding rule '{r}' ({why})")))
        })
        .collect::<Result<_, _>>()?;
    Ok(UserNetdev {
        guest,
        prefix,
        host,
        dns,
        hostfwd,
        ipv4,
        ipv6,
    })
}

/// `ADDRESS[/MASK]`, MASK a prefix length or a dotted netmask; without
/// one, the address's class decides, as QEMU's slirp does.
fn parse_net(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a.parse::<Ipv4Addr>().ok()?, Some(m)),
        None => (s.parse::<Ipv4Addr>().ok()?, None),
    };
    let a = u32::from(addr);
    let prefix = match mask {
        Some(m) if m.contains('.') => {
            let m = u32::from(m.parse::<Ipv4Addr>().ok()?);
            // A netmask is ones then zeros.
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return None;
            }
            m.leading_ones() as u8
        }
        Some(m) => m.parse::<u8>().ok()?,
        None if a & 0x8000_0000 == 0 => 8,
        None if a & 0xfff0_0000 == 0xac10_0000 => 12,
        None if a & 0xc000_0000 == 0x8000_0000 => 16,
        None if a & 0xffff_0000 == 0xc0a8_0000 => 16,
        None => 24,
    };
    // Room for the gateway, DNS and guest addresses at .2, .3 and .15.
    (1..=27).contains(&prefix).then_some((addr, prefix))
}

/// A number as C's strtol with base 0 reads it (slirp's ports): decimal,
/// 0x hex or 0 octal.
fn c_number(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`, with slirp's
/// reasons for a bad rule. passt forwards to the one guest address, so a
/// guest address must be that one.
fn host_forward(rule: &str, guest: Ipv4Addr) -> Result<HostFwd, &'static str> {
    let (proto, rest) = rule.split_once(':').ok_or("No : separators")?;
    let udp = match proto {
        "" | "tcp" => false,
        "udp" => true,
        _ => return Err("Bad protocol name"),
    };
    let (haddr, rest) = rest.split_once(':').ok_or("Missing : separator")?;
    let host_addr = match haddr {
        "" => None,
        a => Some(a.parse::<Ipv4Addr>().map_err(|_| "Bad host address")?),
    };
    let (hport, rest) = rest.split_once('-').ok_or("Bad host port separator")?;
    let host_port = c_number(hport)
        .filter(|p| (0..=65535).contains(p))
        .ok_or("Bad host port")?;
    let (gaddr, gport) = rest
        .split_once(':')
        .ok_or("Missing guest address separator")?;
    if !gaddr.is_empty() {
        let a = gaddr.parse::<Ipv4Addr>().map_err(|_| "Bad guest address")?;
        if a != guest {
            return Err("passt forwards to the guest's own address only");
        }
    }
    let guest_port = c_number(gport)
        .filter(|p| (1..=65535).contains(p))
        .ok_or("Bad guest port")?;
    if host_port == 0 {
        return Err("host port 0 is not supported: passt binds the port given");
    }
    Ok(HostFwd {
        udp,
        host_addr,
        host_port: host_port as u16,
        guest_port: guest_port as u16,
    })
}

/// Parses a MAC as QEMU's `mac` property does: six two-digit hex bytes
/// separated by `:` or `-`.
pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, m) in mac.iter_mut().enumerate() {
        let pos = i * 3;
        if i < 5 && b[pos + 2] != b':' && b[pos + 2] != b'-' {
            return None;
        }
        let pair = &s[pos..pos + 2];
        if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *m = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(mac)
}

/// QEMU's default-MAC bookkeeping (`qemu_macaddr_default_if_unset`): NICs
/// are realized in command-line order; a NIC without `mac=` takes the lowest
/// 52:54:00:12:34:XX (XX from 0x56) no earlier NIC holds, and an explicit
/// MAC in that series marks its XX as held.
#[derive(Default)]
pub(super) struct MacTable {
    used: Vec<u8>,
}

const MAC_BASE: [u8; 5] = [0x52, 0x54, 0x00, 0x12, 0x34];

impl MacTable {
    pub(super) fn assign(&mut self, given: Option<[u8; 6]>) -> [u8; 6] {
        if let Some(mac) = given.filter(|m| *m != [0; 6]) {
            if mac[..5] == MAC_BASE {
                self.used.push(mac[5]);
            }
            return mac;
        }
        // QEMU stores -1 (0xff) when 0x56..0xfe are all taken.
        let last = (0x56..0xff)
            .find(|x| !self.used.contains(x))
            .unwrap_or(0xff);
        self.used.push(last);
        let mut mac = [0u8; 6];
        mac[..5].copy_from_slice(&MAC_BASE);
        mac[5] = last;
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_syntax_is_strict() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
        assert_eq!(
            parse_mac("52-54-00-12-34-56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        for bad in [
            "52:54:00:12:34",
            "52:54:00:12:34:5g",
            "5:54:00:12:34:56",
            "52:54:00:12:34:567",
            "52:54:00:12:34:56:",
            "52.54.00.12.34.56",
            "+2:54:00:12:34:56",
            "",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_forwarding_rules_as_slirp_reads_them() {
        let g = Ipv4Addr::new(10, 0, 2, 15);
        assert_eq!(
            host_forward("tcp::2222-:22", g),
            Ok(HostFwd {
                udp: false,
                host_addr: None,
                host_port: 2222,
                guest_port: 22
            })
        );
        assert_eq!(
            host_forward("udp:127.0.0.1:0x10-10.0.2.15:017", g),
            Ok(HostFwd {
                udp: true,
                host_addr: Some(Ipv4Addr::LOCALHOST),
                host_port: 16,
                guest_port: 15
            })
        );
        for (rule, why) in [
            ("bogus", "No : separators"),
            ("sctp::1-:2", "Bad protocol name"),
            ("tcp:1", "Missing : separator"),
            ("tcp:x:1-:2", "Bad host address"),
            ("tcp::1:2", "Bad host port separator"),
            ("tcp::99999-:22", "Bad host port"),
            ("tcp::1-2", "Missing guest address separator"),
            ("tcp::1-1.2.3:4", "Bad guest address"),
            ("tcp::1-:0", "Bad guest port"),
            (
                "tcp::1-10.0.2.16:22",
                "passt forwards to the guest's own address only",
            ),
            (
                "tcp::0-:22",
                "host port 0 is not supported: passt binds the port given",
            ),
        ] {
            assert_eq!(host_forward(rule, g), Err(why), "{rule}");
        }
    }

    #[test]
    fn networks_with_and_without_masks() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(parse_net("10.0.2.0/24"), Some((a("10.0.2.0"), 24)));
        assert_eq!(
            parse_net("192.168.76.0/255.255.255.0"),
            Some((a("192.168.76.0"), 24))
        );
        assert_eq!(parse_net("10.1.0.0"), Some((a("10.1.0.0"), 8)));
        assert_eq!(parse_net("172.16.0.0"), Some((a("172.16.0.0"), 12)));
        assert_eq!(parse_net("192.168.1.0"), Some((a("192.168.1.0"), 16)));
        assert_eq!(parse_net("203.0.113.0"), Some((a("203.0.113.0"), 24)));
        for bad in [
            "10.0.2.0/33",
            "10.0.2.0/30",
            "10.0.2.0/255.0.255.0",
            "ten",
            "10.0.2.0/x",
        ] {
            assert_eq!(parse_net(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_macs_follow_qemu() {
        let mut t = MacTable::default();
        assert_eq!(t.assign(None)[5], 0x56);
        assert_eq!(t.assign(Some([0x52, 0x54, 0, 0x12, 0x34, 0x57]))[5], 0x57);
        // 0x57 is held, so the next default skips it.
        assert_eq!(t.assign(None)[5], 0x58);
        // A MAC outside the series holds nothing.
        let other = [0x52, 0x54, 0, 0xaa, 0xbb, 0x59];
        assert_eq!(t.assign(Some(other)), other);
        assert_eq!(t.assign(None), [0x52, 0x54, 0, 0x12, 0x34, 0x59]);
    }
}
