//! Ethernet MAC addresses as libvirt reads and writes them.

use std::fmt;
use std::str::FromStr;

/// The prefix libvirt gives generated addresses for QEMU/KVM guests.
pub const QEMU_PREFIX: [u8; 3] = [0x52, 0x54, 0x00];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("'{0}' is not a MAC address")]
    Syntax(String),
    #[error("'{0}' is a multicast address")]
    Multicast(String),
}

impl Mac {
    /// An address with libvirt's QEMU prefix and three given bytes.
    pub fn with_qemu_prefix(tail: [u8; 3]) -> Mac {
        let [a, b, c] = QEMU_PREFIX;
        Mac([a, b, c, tail[0], tail[1], tail[2]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for Mac {
    type Err = MacError;

    /// Six hex bytes of one or two digits separated by `:` (libvirt also
    /// accepts one-digit bytes such as `52:54:0:1:2:3`).
    fn from_str(s: &str) -> Result<Self, MacError> {
        let bad = || MacError::Syntax(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let mac = Mac(out);
        if mac.is_multicast() {
            return Err(MacError::Multicast(s.to_string()));
        }
        Ok(mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lowercase() {
        let m: Mac = "52:54:00:AB:cd:0".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:00");
    }

    #[test]
    fn rejects_malformed_and_multicast() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52-54-00-ab-cd-ef",
            "52:54:00:ab:cd:xyz",
            "52:54:00:ab::ef",
        ] {
            assert!(
                matches!(bad.parse::<Mac>(), Err(MacError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "01:00:5e:00:00:01".parse::<Mac>(),
            Err(MacError::Multicast(_))
        ));
    }
}
