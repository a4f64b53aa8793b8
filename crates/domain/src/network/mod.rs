//! libvirt's virtual network XML (`<network>`): read with line numbers,
//! checked with the rules of libvirt's network parser and of its bridge
//! driver's define-time validation, filled in as the bridge driver fills
//! it in (UUID, `virbrN` bridge, stp/delay, MAC), written back in
//! `virsh net-dumpxml` layout, and edited by `virsh net-update`'s
//! sections. What the model does not read is kept and written back
//! unchanged (`<portgroup>`, `<bandwidth>`, `<route>`, `dnsmasq:options`…).
//!
//! ```
//! use rvirt_domain::network::Network;
//! let mut net = Network::from_xml("<network><name>lan</name><forward/>\
//!     <ip address='192.168.50.1' netmask='255.255.255.0'/></network>").unwrap();
//! net.fill_in(&|name| name == "virbr0").unwrap();
//! assert_eq!(net.bridge_name(), Some("virbr1"));
//! assert!(net.to_xml().contains("<forward mode='nat'/>"));
//! ```

mod addr;
mod format;
mod parse;
pub mod update;
mod validate;

use std::fmt;
use std::net::IpAddr;

pub use addr::{netmask_prefix, prefix_netmask, range_len, Cidr, DhcpRangeError};

use crate::fill::{OsRandom, Random};
use crate::mac::Mac;
use crate::xml::{Element, Line, Text, XmlError};

/// `<forward mode>`: how the network reaches the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    Nat,
    Route,
    Open,
    Bridge,
    Private,
    Vepa,
    Passthrough,
    Hostdev,
}

impl ForwardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Route => "route",
            Self::Open => "open",
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Passthrough => "passthrough",
            Self::Hostdev => "hostdev",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nat" => Self::Nat,
            "route" => Self::Route,
            "open" => Self::Open,
            "bridge" => Self::Bridge,
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            "passthrough" => Self::Passthrough,
            "hostdev" => Self::Hostdev,
            _ => return None,
        })
    }
}

/// The kind of network, by what the host does for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bridge, addresses, dnsmasq and firewall rules made by the daemon:
    /// no `<forward>` (isolated), `nat`, `route` or `open`.
    Virtual,
    /// Guests join an existing host bridge (`forward mode='bridge'` with
    /// `<bridge name>`): nothing is made at start.
    HostBridge,
    /// macvtap and device pools (`bridge` without a bridge name, `private`,
    /// `vepa`, `passthrough`, `hostdev`).
    Direct,
}

/// `<forward>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub mode: ForwardMode,
    pub dev: Option<String>,
    /// `<nat>`, `<interface>`, `<pf>`… and attributes besides `mode`/`dev`.
    pub extra: Element,
    pub line: Line,
}

/// `<bridge>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bridge {
    pub name: Option<String>,
    pub stp: Option<bool>,
    /// Forward delay, seconds.
    pub delay: Option<u32>,
    /// `zone`, `macTableManager`…
    pub attrs: Vec<(Text, Text)>,
    pub line: Line,
}

/// `<ip>`: an address of the bridge, with DHCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip {
    /// `ipv4` or `ipv6` as written.
    pub family: Option<String>,
    pub address: IpAddr,
    pub netmask: Option<IpAddr>,
    pub prefix: Option<u8>,
    /// `localPtr`…
    pub attrs: Vec<(Text, Text)>,
    pub tftp_root: Option<String>,
    pub dhcp: Option<Dhcp>,
    /// Other children.
    pub extra: Element,
    pub line: Line,
}

/// `<dhcp>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dhcp {
    pub ranges: Vec<DhcpRange>,
    pub hosts: Vec<DhcpHost>,
    /// `<bootp>`…
    pub extra: Element,
    pub line: Line,
}

/// `<range start end>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRange {
    pub start: IpAddr,
    pub end: IpAddr,
    /// `<lease>` and anything else inside.
    pub extra: Element,
    pub line: Line,
}

/// `<host mac|id name ip>`: a static lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DhcpHost {
    pub mac: Option<Mac>,
    /// The DHCPv6 client id.
    pub id: Option<String>,
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
    /// `<lease>` and unknown attributes.
    pub extra: Element,
    pub line: Line,
}

/// `<domain name localOnly>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName {
    pub name: String,
    pub local_only: Option<bool>,
    pub attrs: Vec<(Text, Text)>,
}

/// A network definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub uuid: Option<uuid::Uuid>,
    /// Attributes of `<network>` (`ipv6`, `trustGuestRxFilters`, `xmlns:…`).
    pub attrs: Vec<(Text, Text)>,
    pub forward: Option<Forward>,
    pub bridge: Option<Bridge>,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    pub domain: Option<DomainName>,
    /// `<dns>` kept whole (enable, forwarders, txt, srv, hosts); the
    /// dnsmasq configuration reads it.
    pub dns: Option<Element>,
    pub ips: Vec<Ip>,
    /// Everything else (`metadata`, `route`, `portgroup`, `bandwidth`,
    /// `vlan`, `dnsmasq:options`…), in libvirt's order.
    pub extra: Element,
    pub line: Line,
}

/// How libvirt classes an error: the error code a daemon reports it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// VIR_ERR_XML_ERROR.
    Xml,
    /// VIR_ERR_INTERNAL_ERROR.
    Internal,
    /// VIR_ERR_CONFIG_UNSUPPORTED.
    Unsupported,
}

/// One thing wrong with a network definition, in libvirt's words, and the
/// line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u32,
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Why a network document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Malformed(#[from] XmlError),
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The error code a daemon reports it with: that of the first problem.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Malformed(_) => ErrorKind::Xml,
            Error::Invalid(p) => p.first().map_or(ErrorKind::Xml, |p| p.kind),
        }
    }
}

/// Problems found in one pass, reported together in line order.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, line: Line, kind: ErrorKind, message: impl Into<String>) {
        self.0.push(Problem {
            line: line.0,
            kind,
            message: message.into(),
        });
    }

    pub fn xml(&mut self, line: Line, message: impl Into<String>) {
        self.push(line, ErrorKind::Xml, message);
    }

    fn into_result(mut self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by_key(|p| p.line);
        Err(Error::Invalid(self.0))
    }
}

/// The most `virbrN` names tried, as libvirt's MAX_BRIDGE_ID.
pub const MAX_BRIDGE_ID: u32 = 256;

impl Network {
    /// Parses and validates a network definition; a rejected document
    /// yields nothing, so it changes nothing.
    pub fn from_xml(text: &str) -> Result<Network, Error> {
        let root = crate::xml::parse(text)?;
        let mut p = Problems::default();
        let net = parse::network(root, &mut p);
        if let Some(net) = &net {
            validate::check(net, &mut p);
        }
        p.into_result()?;
        net.ok_or_else(|| Error::Invalid(Vec::new()))
    }

    /// Re-checks a definition changed in code (by an update).
    pub fn validate(&self) -> Result<(), Error> {
        let mut p = Problems::default();
        validate::check(self, &mut p);
        p.into_result()
    }

    /// The kind of network this is.
    pub fn kind(&self) -> Kind {
        match self.forward.as_ref().map(|f| f.mode) {
            None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open) => Kind::Virtual,
            Some(ForwardMode::Bridge) if self.bridge_name().is_some() => Kind::HostBridge,
            Some(_) => Kind::Direct,
        }
    }

    /// The forward mode, None for an isolated network.
    pub fn forward_mode(&self) -> Option<ForwardMode> {
        self.forward.as_ref().map(|f| f.mode)
    }

    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.as_ref().and_then(|b| b.name.as_deref())
    }

    /// The IPv4 `<ip>` elements, in order.
    pub fn ipv4(&self) -> impl Iterator<Item = &Ip> {
        self.ips.iter().filter(|i| i.address.is_ipv4())
    }

    /// The `<ip>` that serves DHCP for `family` (the first with a range
    /// or a host, as libvirt's bridge driver picks it).
    pub fn dhcp_ip(&self, v6: bool) -> Option<&Ip> {
        self.ips.iter().find(|i| {
            i.address.is_ipv6() == v6
                && i.dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
        })
    }

    /// Whether dnsmasq serves DNS on it (`<dns enable='no'>` turns it off).
    pub fn dns_enabled(&self) -> bool {
        self.dns
            .as_ref()
            .and_then(|d| d.attr("enable"))
            .is_none_or(|v| v != "no")
    }

    /// Fills in what libvirt's bridge driver fills in when a network is
    /// defined: a UUID; and for a network it makes a bridge for, a bridge
    /// name (`virbrN`, the first not `in_use`, or the `%d` template
    /// given), stp on and delay 0 unless given, a MAC with the QEMU
    /// prefix.
    pub fn fill_in(&mut self, in_use: &dyn Fn(&str) -> bool) -> Result<(), Error> {
        self.fill_in_with(in_use, &mut OsRandom)
    }

    /// [`Network::fill_in`] with a chosen source of randomness.
    pub fn fill_in_with(
        &mut self,
        in_use: &dyn Fn(&str) -> bool,
        rng: &mut dyn Random,
    ) -> Result<(), Error> {
        if self.uuid.is_none() {
            self.uuid = Some(uuid::Builder::from_random_bytes(rng.bytes16()).into_uuid());
        }
        if self.kind() != Kind::Virtual {
            return Ok(());
        }
        let bridge = self.bridge.get_or_insert_with(Bridge::default);
        let template = match bridge.name.as_deref() {
            Some(n) if n.matches("%d").count() == 1 && n.matches('%').count() == 1 => {
                Some(n.to_string())
            }
            Some(_) => None,
            None => Some("virbr%d".to_string()),
        };
        if let Some(t) = template {
            bridge.name = (0..=MAX_BRIDGE_ID)
                .map(|i| t.replace("%d", &i.to_string()))
                .find(|n| !in_use(n));
            if bridge.name.is_none() {
                return Err(Error::Invalid(vec![Problem {
                    line: 0,
                    kind: ErrorKind::Internal,
                    message: format!("Bridge generation exceeded max id {MAX_BRIDGE_ID}"),
                }]));
            }
        }
        bridge.stp.get_or_insert(true);
        bridge.delay.get_or_insert(0);
        if self.mac.is_none() {
            let b = rng.bytes16();
            self.mac = Some(Mac::with_qemu_prefix([b[0], b[1], b[2]]));
        }
        Ok(())
    }

    /// The definition as `virsh net-dumpxml` writes it.
    pub fn to_xml(&self) -> String {
        format::to_string(self)
    }
}

#[cfg(test)]
mod tests;
