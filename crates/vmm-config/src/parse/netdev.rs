//! `-netdev tap,...` (the only network backend) and QEMU's MAC address
//! rules: the `mac=` syntax and the default 52:54:00:12:34:56+ series.

use crate::config::TapSource;
use crate::opts::Opts;
use crate::ConfigError;

/// Netdev types QEMU 7.2 knows; all but tap are refused as not yet
/// supported, anything else as unknown (QEMU's wording).
const OTHER_NETDEV_TYPES: &[&str] = &[
    "user",
    "socket",
    "stream",
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

/// Parses `-netdev TYPE,id=ID,...` into its id and tap source.
pub(super) fn parse_netdev(v: &str) -> Result<(String, TapSource), ConfigError> {
    let mut o = Opts::parse("-netdev", v, Some("type"))?;
    let kind = o
        .get("type")
        .ok_or_else(|| o.error("Parameter 'type' is missing".into()))?;
    if kind != "tap" {
        return Err(if OTHER_NETDEV_TYPES.contains(&kind.as_str()) {
            o.error(format!("type '{kind}' is not supported yet (only tap)"))
        } else {
            o.error(format!("Parameter 'type' does not accept value '{kind}'"))
        });
    }
    let id = o
        .get("id")
        .ok_or_else(|| o.error("Parameter 'id' is missing".into()))?;
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
    o.finish()?;
    let tap = match fd {
        Some(fd) => TapSource::Fd(fd.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ConfigError::new(
                "-netdev",
                format!("fd={fd}: expects a file descriptor number"),
            )
        })?),
        None => TapSource::Name(ifname.filter(|n| !n.is_empty())),
    };
    Ok((id, tap))
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
