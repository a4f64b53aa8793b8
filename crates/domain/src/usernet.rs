//! User-mode networking as `<interface type='user'>` describes it: the
//! back-end (`<backend type='passt'/>`, else QEMU's own), the guest's
//! addresses (`<ip>`), the forwarded host ports (`<portForward>`), the MTU
//! and the host interface (`<source dev>`). Read from the interface's kept
//! elements with libvirt's rules; what is wrong is reported with its line.

use std::net::IpAddr;

use crate::model::Interface;

/// `<portForward proto=…>`'s protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `<range start= end= to= exclude=/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: Option<u16>,
    pub to: Option<u16>,
    pub exclude: bool,
}

/// `<portForward proto= address= dev=>` and its ranges (none: every port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub proto: Proto,
    pub address: Option<IpAddr>,
    pub dev: Option<String>,
    pub ranges: Vec<PortRange>,
}

/// A user-mode interface's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserNet {
    /// `<backend type='passt'/>`: the daemon runs passt and the VMM gets a
    /// stream socket; else the VMM's own user networking (`-netdev user`).
    pub passt: bool,
    /// `<backend logFile=…>`: passt's log.
    pub log_file: Option<String>,
    /// `<ip address= prefix=>`, at most one IPv4 and one IPv6.
    pub ips: Vec<(IpAddr, Option<u8>)>,
    pub port_forwards: Vec<PortForward>,
    /// `<mtu size=>`.
    pub mtu: Option<u32>,
    /// `<source dev=>`: the host interface passt copies.
    pub source_dev: Option<String>,
}

/// What is wrong, on which line.
pub type Problem = (u32, String);

impl UserNet {
    /// Reads the settings of `iface` (of type `user`).
    pub fn of(iface: &Interface) -> Result<UserNet, Problem> {
        let extra = &iface.extra;
        let mut u = UserNet::default();
        if let Some(b) = extra.child("backend") {
            match b.attr("type") {
                Some("passt") => u.passt = true,
                None | Some("default") => {}
                Some(other) => {
                    return Err((
                        b.line.0,
                        format!("unknown interface backend type '{other}'"),
                    ))
                }
            }
            u.log_file = b.attr("logFile").map(String::from);
            if u.log_file.is_some() && !u.passt {
                return Err((
                    b.line.0,
                    "the 'logFile' attribute of <backend> is only supported with the passt backend"
                        .into(),
                ));
            }
        }
        for ip in extra.elements().filter(|e| e.name == "ip") {
            let line = ip.line.0;
            let addr: IpAddr = ip
                .attr("address")
                .ok_or((line, "missing IP address in <ip>".to_string()))?
                .parse()
                .map_err(|_| (line, "invalid address in <ip>".to_string()))?;
            let prefix = match ip.attr("prefix") {
                None => None,
                Some(p) => Some(
                    p.parse::<u8>()
                        .ok()
                        .filter(|&p| p <= if addr.is_ipv4() { 32 } else { 128 })
                        .ok_or((line, format!("invalid prefix '{p}' in <ip>")))?,
                ),
            };
            if u.ips.iter().any(|(a, _)| a.is_ipv4() == addr.is_ipv4()) {
                return Err((
                    line,
                    format!(
                        "only one {} address is allowed on a user-mode interface",
                        if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                ));
            }
            u.ips.push((addr, prefix));
        }
        for pf in extra.elements().filter(|e| e.name == "portForward") {
            u.port_forwards.push(port_forward(pf)?);
        }
        if !u.port_forwards.is_empty() && !u.passt {
            let line = extra
                .child("portForward")
                .map_or(iface.line.0, |e| e.line.0);
            return Err((
                line,
                "the <portForward> element can only be used with the passt backend".into(),
            ));
        }
        if let Some(m) = extra.child("mtu") {
            let size = m.attr("size").unwrap_or_default();
            u.mtu = Some(
                size.parse()
                    .ok()
                    .filter(|&s: &u32| s > 0)
                    .ok_or((m.line.0, format!("malformed mtu size '{size}'")))?,
            );
        }
        u.source_dev = iface
            .source
            .as_ref()
            .and_then(|s| s.attr("dev"))
            .map(String::from);
        Ok(u)
    }
}

fn port_forward(pf: &crate::xml::Element) -> Result<PortForward, Problem> {
    let line = pf.line.0;
    let proto = match pf.attr("proto") {
        Some("tcp") => Proto::Tcp,
        Some("udp") => Proto::Udp,
        Some(p) => return Err((line, format!("invalid protocol '{p}' in <portForward>"))),
        None => return Err((line, "missing proto in <portForward>".into())),
    };
    let address = match pf.attr("address") {
        None => None,
        Some(a) => Some(
            a.parse()
                .map_err(|_| (line, format!("invalid address '{a}' in <portForward>")))?,
        ),
    };
    let mut ranges = Vec::new();
    for r in pf.elements().filter(|e| e.name == "range") {
        let rl = r.line.0;
        let port = |key: &str| -> Result<Option<u16>, Problem> {
            match r.attr(key) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .map(Some)
                    .ok_or((rl, format!("invalid port '{v}' in <range {key}>"))),
            }
        };
        let start = port("start")?.ok_or((rl, "missing start in <range>".to_string()))?;
        let end = port("end")?;
        if end.is_some_and(|e| e < start) {
            return Err((rl, "the end of a <range> is below its start".into()));
        }
        let to = port("to")?;
        if let (Some(to), Some(end)) = (to, end) {
            if u32::from(end) - u32::from(start) + u32::from(to) > 65535 {
                return Err((rl, "a <range>'s target ports run past 65535".into()));
            }
        }
        let exclude = match r.attr("exclude") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(v) => return Err((rl, format!("invalid exclude '{v}' in <range>"))),
        };
        if exclude && to.is_some() {
            return Err((rl, "an excluded <range> cannot have a 'to'".into()));
        }
        ranges.push(PortRange {
            start,
            end,
            to,
            exclude,
        });
    }
    Ok(PortForward {
        proto,
        address,
        dev: pf.attr("dev").map(String::from),
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Domain;

    fn iface(xml: &str) -> Interface {
        let d = Domain::from_xml(&format!(
            "<domain type='kvm'><name>u</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{xml}</devices></domain>"
        ))
        .unwrap();
        d.devices.interfaces[0].clone()
    }

    #[test]
    fn passt_with_addresses_and_forwards() {
        let u = UserNet::of(&iface(
            "<interface type='user'><backend type='passt' logFile='/tmp/p.log'/>
               <source dev='eth0'/>
               <ip family='ipv4' address='172.17.2.4' prefix='24'/>
               <ip family='ipv6' address='2001:db8::4'/>
               <portForward proto='tcp' address='127.0.0.1' dev='lo'>
                 <range start='2222' to='22'/><range start='5000' end='5010'/>
                 <range start='5005' exclude='yes'/>
               </portForward>
               <portForward proto='udp'/>
               <mtu size='9000'/><model type='virtio'/></interface>",
        ))
        .unwrap();
        assert!(u.passt);
        assert_eq!(u.log_file.as_deref(), Some("/tmp/p.log"));
        assert_eq!(u.source_dev.as_deref(), Some("eth0"));
        assert_eq!(
            u.ips,
            vec![
                ("172.17.2.4".parse().unwrap(), Some(24)),
                ("2001:db8::4".parse().unwrap(), None)
            ]
        );
        assert_eq!(u.mtu, Some(9000));
        assert_eq!(u.port_forwards.len(), 2);
        let tcp = &u.port_forwards[0];
        assert_eq!((tcp.proto, tcp.dev.as_deref()), (Proto::Tcp, Some("lo")));
        assert_eq!(
            tcp.ranges,
            vec![
                PortRange {
                    start: 2222,
                    end: None,
                    to: Some(22),
                    exclude: false
                },
                PortRange {
                    start: 5000,
                    end: Some(5010),
                    to: None,
                    exclude: false
                },
                PortRange {
                    start: 5005,
                    end: None,
                    to: None,
                    exclude: true
                },
            ]
        );
        assert!(u.port_forwards[1].ranges.is_empty(), "every port");
    }

    #[test]
    fn mistakes_name_their_line() {
        for (xml, line, msg) in [
            (
                "<interface type='user'>\n<portForward proto='tcp'><range start='22'/></portForward></interface>",
                2,
                "the <portForward> element can only be used with the passt backend",
            ),
            (
                "<interface type='user'><backend type='passt'/>\n<portForward proto='sctp'/></interface>",
                2,
                "invalid protocol 'sctp' in <portForward>",
            ),
            (
                "<interface type='user'><backend type='passt'/><portForward proto='tcp'>\n<range start='99999'/></portForward></interface>",
                2,
                "invalid port '99999' in <range start>",
            ),
            (
                "<interface type='user'>\n<ip address='10.0.0.1'/>\n<ip address='10.0.0.2'/></interface>",
                3,
                "only one IPv4 address is allowed on a user-mode interface",
            ),
            (
                "<interface type='user'>\n<backend type='slirp4netns'/></interface>",
                2,
                "unknown interface backend type 'slirp4netns'",
            ),
        ] {
            // Checked at define time: the definition is refused.
            let e = Domain::from_xml(&format!(
                "<domain type='kvm'><name>u</name><memory>65536</memory>\
                 <os><type>hvm</type></os><devices>{xml}</devices></domain>"
            ))
            .unwrap_err();
            let crate::Error::Invalid(problems) = e else {
                panic!("{e}");
            };
            assert_eq!(problems.len(), 1, "{xml}");
            assert_eq!((problems[0].line, problems[0].message.as_str()), (line, msg), "{xml}");
        }
    }
}
