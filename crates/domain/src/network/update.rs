//! `virNetworkUpdate` on a definition: one command (add, delete, modify)
//! on one section, with libvirt's matching rules and messages. rvirt
//! edits `ip-dhcp-host` (static leases); other sections are refused as
//! libvirt refuses a section it cannot update.

use super::{parse, DhcpHost, Network, Problems};

/// `virNetworkUpdateCommand`.
pub mod command {
    pub const MODIFY: u32 = 1;
    pub const DELETE: u32 = 2;
    pub const ADD_LAST: u32 = 3;
    pub const ADD_FIRST: u32 = 4;
}

/// `virNetworkUpdateSection`.
pub mod section {
    pub const BRIDGE: u32 = 1;
    pub const DOMAIN: u32 = 2;
    pub const IP: u32 = 3;
    pub const IP_DHCP_HOST: u32 = 4;
    pub const IP_DHCP_RANGE: u32 = 5;
    pub const FORWARD: u32 = 6;
    pub const FORWARD_INTERFACE: u32 = 7;
    pub const FORWARD_PF: u32 = 8;
    pub const PORTGROUP: u32 = 9;
    pub const DNS_HOST: u32 = 10;
    pub const DNS_TXT: u32 = 11;
    pub const DNS_SRV: u32 = 12;
}

/// virsh's name of a section (`ip-dhcp-host`).
pub fn section_name(s: u32) -> &'static str {
    match s {
        section::BRIDGE => "bridge",
        section::DOMAIN => "domain",
        section::IP => "ip",
        section::IP_DHCP_HOST => "ip-dhcp-host",
        section::IP_DHCP_RANGE => "ip-dhcp-range",
        section::FORWARD => "forward",
        section::FORWARD_INTERFACE => "forward-interface",
        section::FORWARD_PF => "forward-pf",
        section::PORTGROUP => "portgroup",
        section::DNS_HOST => "dns-host",
        section::DNS_TXT => "dns-txt",
        section::DNS_SRV => "dns-srv",
        _ => "none",
    }
}

/// Why an update was refused, with the error code libvirt uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// VIR_ERR_OPERATION_INVALID.
    #[error("{0}")]
    Invalid(String),
    /// VIR_ERR_XML_ERROR.
    #[error("{0}")]
    Xml(String),
    /// VIR_ERR_NO_SUPPORT.
    #[error("{0}")]
    Unsupported(String),
}

fn same_host(a: &DhcpHost, b: &DhcpHost) -> bool {
    a.mac == b.mac && a.id == b.id && a.name == b.name && a.ip == b.ip
}

fn or_null(v: Option<String>) -> String {
    v.unwrap_or_else(|| "(null)".into())
}

/// The host as libvirt quotes it in its messages (its C strings print
/// `(null)` when absent).
fn describe(h: &DhcpHost) -> String {
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        or_null(h.mac.map(|m| m.to_string())),
        or_null(h.name.clone()),
        or_null(h.ip.map(|a| a.to_string()))
    )
}

impl Network {
    /// Applies one `virsh net-update` command to this definition. On error
    /// the definition is unchanged.
    pub fn update(
        &mut self,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
    ) -> Result<(), UpdateError> {
        if section != section::IP_DHCP_HOST {
            return Err(UpdateError::Unsupported(format!(
                "can't update '{}' section of network '{}'",
                section_name(section),
                self.name
            )));
        }
        let mut next = self.clone();
        next.update_dhcp_host(command, parent_index, xml)?;
        next.validate()
            .map_err(|e| UpdateError::Xml(e.to_string()))?;
        *self = next;
        Ok(())
    }

    fn update_dhcp_host(
        &mut self,
        command: u32,
        parent: i32,
        xml: &str,
    ) -> Result<(), UpdateError> {
        let name = self.name.clone();
        let index = if parent >= 0 {
            let i = parent as usize;
            if i >= self.ips.len() {
                return Err(UpdateError::Invalid(format!(
                    "couldn't update dhcp host entry - no <ip> element found at index {parent} in network '{name}'"
                )));
            }
            i
        } else {
            self.ips
                .iter()
                .position(|i| {
                    i.dhcp
                        .as_ref()
                        .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
                })
                .or_else(|| self.ips.iter().position(|i| i.address.is_ipv4()))
                .or_else(|| self.ips.iter().position(|i| i.address.is_ipv6()))
                .ok_or_else(|| {
                    UpdateError::Invalid(format!(
                        "couldn't update dhcp host entry - no <ip> element found in network '{name}'"
                    ))
                })?
        };
        let ip = &mut self.ips[index];
        let root = crate::xml::parse(xml).map_err(|e| UpdateError::Xml(e.to_string()))?;
        if root.name != "host" {
            return Err(UpdateError::Xml(format!(
                "can't update 'host' section of network '{name}' - unrecognized element '{}'",
                root.name
            )));
        }
        let mut p = Problems::default();
        let host = parse::dhcp_host(root, ip.address.is_ipv6(), &name, &mut p);
        if let Err(e) = p.into_result() {
            return Err(UpdateError::Xml(e.to_string()));
        }
        let host =
            host.ok_or_else(|| UpdateError::Xml(format!("invalid dhcp host in network '{name}'")))?;
        let dhcp = ip.dhcp.get_or_insert_with(Default::default);
        match command {
            command::MODIFY => {
                let at = dhcp.hosts.iter().position(|h| {
                    (host.mac.is_some() && h.mac == host.mac)
                        || (host.id.is_some() && h.id == host.id)
                        || (host.mac.is_none() && host.id.is_none() && h.name == host.name)
                });
                match at {
                    Some(i) => dhcp.hosts[i] = host,
                    None => {
                        return Err(UpdateError::Invalid(format!(
                            "couldn't locate an existing dhcp host entry with \"mac='{}'\" \"name='{}'\" \"ip='{}'\" in network '{name}'",
                            or_null(host.mac.map(|m| m.to_string())),
                            or_null(host.name.clone()),
                            or_null(host.ip.map(|a| a.to_string()))
                        )));
                    }
                }
            }
            command::DELETE => match dhcp.hosts.iter().position(|h| same_host(h, &host)) {
                Some(i) => {
                    dhcp.hosts.remove(i);
                }
                None => {
                    return Err(UpdateError::Invalid(format!(
                        "couldn't locate a matching dhcp host entry in network '{name}'"
                    )))
                }
            },
            command::ADD_FIRST | command::ADD_LAST => {
                let clash = dhcp.hosts.iter().any(|h| {
                    (host.mac.is_some() && h.mac == host.mac)
                        || (host.id.is_some() && h.id == host.id)
                        || (host.name.is_some() && h.name == host.name)
                        || (host.ip.is_some() && h.ip == host.ip)
                });
                if clash {
                    return Err(UpdateError::Invalid(format!(
                        "there is an existing dhcp host entry in network '{name}' that matches \"{}\"",
                        describe(&host)
                    )));
                }
                if command == command::ADD_FIRST {
                    dhcp.hosts.insert(0, host);
                } else {
                    dhcp.hosts.push(host);
                }
            }
            other => {
                return Err(UpdateError::Unsupported(format!(
                    "unrecognized network update command code {other}"
                )))
            }
        }
        Ok(())
    }
}
