//! Address arithmetic for `<ip>`: prefixes, netmasks, which network an
//! address is in, DHCP range sizes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Ip;

/// An address with its prefix length (`192.168.122.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn from_bits(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// The prefix length of a contiguous netmask, None when it has holes.
pub fn netmask_prefix(mask: IpAddr) -> Option<u8> {
    let (v, width) = bits(mask);
    let top = v << (128 - u32::from(width));
    let ones = top.leading_ones();
    let rest = top.checked_shl(ones).unwrap_or(0);
    (rest == 0).then_some(ones as u8)
}

/// The netmask of an IPv4 prefix.
pub fn prefix_netmask(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(if p == 0 { 0 } else { u32::MAX << (32 - p) })
}

impl Cidr {
    fn mask(&self) -> u128 {
        let (_, width) = bits(self.address);
        let p = u32::from(self.prefix.min(width));
        if p == 0 {
            0
        } else {
            (u128::MAX >> (128 - u32::from(width))) ^ ((1u128 << (u32::from(width) - p)) - 1)
        }
    }

    /// The network's own address (`192.168.122.0`).
    pub fn network(&self) -> IpAddr {
        let (v, _) = bits(self.address);
        from_bits(v & self.mask(), self.address.is_ipv6())
    }

    /// The IPv4 netmask (`255.255.255.0`).
    pub fn netmask(&self) -> Ipv4Addr {
        prefix_netmask(self.prefix)
    }

    /// Whether `a` is inside this network.
    pub fn contains(&self, a: IpAddr) -> bool {
        if a.is_ipv6() != self.address.is_ipv6() {
            return false;
        }
        let (x, _) = bits(a);
        let (me, _) = bits(self.address);
        x & self.mask() == me & self.mask()
    }

    /// Whether two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let longer = if self.prefix <= other.prefix {
            other
        } else {
            self
        };
        shorter.contains(longer.address)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Ip {
    /// The prefix length, as libvirt's `virNetworkIPDefPrefix` finds it:
    /// `prefix`, else the netmask's, else the address class's (IPv4) or
    /// 64 (IPv6). None for a netmask with holes or a class-less address.
    pub fn prefix_len(&self) -> Option<u8> {
        if let Some(p) = self.prefix.filter(|&p| p > 0) {
            return Some(p);
        }
        if let Some(m) = self.netmask {
            return netmask_prefix(m);
        }
        match self.address {
            IpAddr::V4(v) => match v.octets()[0] {
                o if o & 0x80 == 0 => Some(8),
                o if o & 0xC0 == 0x80 => Some(16),
                o if o & 0xE0 == 0xC0 => Some(24),
                _ => None,
            },
            IpAddr::V6(_) => Some(64),
        }
    }

    /// The address with its prefix.
    pub fn cidr(&self) -> Option<Cidr> {
        self.prefix_len().map(|prefix| Cidr {
            address: self.address,
            prefix,
        })
    }
}

/// Why a DHCP range does not fit its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpRangeError {
    Family,
    Outside,
    Reversed,
}

/// The number of addresses from `start` to `end` inclusive within `net`
/// (libvirt's `virSocketAddrGetRange`, whose checks are the errors).
pub fn range_size(start: IpAddr, end: IpAddr, net: &Cidr) -> Result<u128, DhcpRangeError> {
    if start.is_ipv6() != end.is_ipv6() || start.is_ipv6() != net.address.is_ipv6() {
        return Err(DhcpRangeError::Family);
    }
    if !net.contains(start) || !net.contains(end) {
        return Err(DhcpRangeError::Outside);
    }
    let (s, _) = bits(start);
    let (e, _) = bits(end);
    if e < s {
        return Err(DhcpRangeError::Reversed);
    }
    Ok(e - s + 1)
}

/// The number of addresses from `start` to `end` inclusive (0 when the
/// families differ or the range is reversed).
pub fn range_len(start: IpAddr, end: IpAddr) -> u128 {
    if start.is_ipv6() != end.is_ipv6() {
        return 0;
    }
    let (s, _) = bits(start);
    let (e, _) = bits(end);
    if e < s {
        0
    } else {
        e - s + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_and_networks() {
        assert_eq!(netmask_prefix(ip("255.255.255.0")), Some(24));
        assert_eq!(netmask_prefix(ip("255.255.255.255")), Some(32));
        assert_eq!(netmask_prefix(ip("0.0.0.0")), Some(0));
        assert_eq!(netmask_prefix(ip("255.0.255.0")), None);
        assert_eq!(netmask_prefix(ip("ffff:ffff::")), Some(32));
        assert_eq!(prefix_netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        let c = Cidr {
            address: ip("192.168.122.1"),
            prefix: 24,
        };
        assert_eq!(c.network(), ip("192.168.122.0"));
        assert!(c.contains(ip("192.168.122.254")));
        assert!(!c.contains(ip("192.168.123.1")));
        assert!(!c.contains(ip("fd00::1")));
        let wide = Cidr {
            address: ip("192.168.0.0"),
            prefix: 16,
        };
        assert!(c.overlaps(&wide) && wide.overlaps(&c));
        assert_eq!(
            range_size(ip("192.168.122.2"), ip("192.168.122.254"), &c),
            Ok(253)
        );
        assert_eq!(
            range_size(ip("192.168.122.9"), ip("192.168.122.2"), &c),
            Err(DhcpRangeError::Reversed)
        );
        assert_eq!(
            range_size(ip("192.168.6.2"), ip("192.168.6.9"), &c),
            Err(DhcpRangeError::Outside)
        );
    }
}
