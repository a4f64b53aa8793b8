//! The shared data types of remote_protocol.x: objects, UUIDs, typed
//! parameters, vCPU info.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::consts::{REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX, VIR_UUID_BUFLEN};
use crate::xdr::{xdr_struct, Reader, Xdr, XdrError};

/// `remote_uuid`: `opaque[16]`, sent raw with no length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; VIR_UUID_BUFLEN]);

impl Xdr for Uuid {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        // Fixed-length opaque data: 16 bytes, already a multiple of 4.
        let mut u = [0u8; VIR_UUID_BUFLEN];
        u.copy_from_slice(r.read_padded(VIR_UUID_BUFLEN)?);
        Ok(Uuid(u))
    }
}

/// Why a UUID string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid UUID '{0}'")]
pub struct UuidParseError(pub String);

impl FromStr for Uuid {
    type Err = UuidParseError;

    /// Accepts 32 hex digits with `-` between any of them and surrounding
    /// blanks, as libvirt's `virUUIDParse` does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UuidParseError(s.to_string());
        let mut out = [0u8; VIR_UUID_BUFLEN];
        let mut digits = s.trim().chars().filter(|&c| c != '-');
        for b in out.iter_mut() {
            let hi = digits.next().and_then(|c| c.to_digit(16)).ok_or_else(err)?;
            let lo = digits.next().and_then(|c| c.to_digit(16)).ok_or_else(err)?;
            *b = (hi * 16 + lo) as u8;
        }
        if digits.next().is_some() || s.trim().starts_with('-') {
            return Err(err());
        }
        Ok(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    /// The 8-4-4-4-12 lowercase form virsh prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

xdr_struct! {
    /// `remote_nonnull_domain`: how every call names a domain.
    pub struct NonnullDomain {
        pub name: String,
        pub uuid: Uuid,
        /// The running id, or -1 when the domain is inactive.
        pub id: i32,
    }

    /// `remote_nonnull_network`.
    pub struct NonnullNetwork {
        pub name: String,
        pub uuid: Uuid,
    }

    /// `remote_nonnull_storage_pool`.
    pub struct NonnullStoragePool {
        pub name: String,
        pub uuid: Uuid,
    }

    /// `remote_nonnull_storage_vol`.
    pub struct NonnullStorageVol {
        pub pool: String,
        pub name: String,
        pub key: String,
    }

    /// `remote_nonnull_interface`.
    pub struct NonnullInterface {
        pub name: String,
        pub mac: String,
    }

    /// `remote_nonnull_node_device`.
    pub struct NonnullNodeDevice {
        pub name: String,
    }

    /// `remote_nonnull_secret`.
    pub struct NonnullSecret {
        pub uuid: Uuid,
        pub usage_type: i32,
        pub usage_id: String,
    }

    /// `remote_nonnull_nwfilter`.
    pub struct NonnullNwfilter {
        pub name: String,
        pub uuid: Uuid,
    }

    /// `remote_nonnull_domain_snapshot`.
    pub struct NonnullDomainSnapshot {
        pub name: String,
        pub dom: NonnullDomain,
    }

    /// `remote_vcpu_info`: one entry of DOMAIN_GET_VCPUS.
    pub struct VcpuInfo {
        pub number: u32,
        /// `virVcpuState`: 0 offline, 1 running, 2 blocked.
        pub state: i32,
        /// Nanoseconds.
        pub cpu_time: u64,
        /// The host CPU it last ran on.
        pub cpu: i32,
    }

    /// `remote_typed_param`: one named value of a stats or tuning list.
    pub struct TypedParam {
        pub field: String,
        pub value: TypedParamValue,
    }

    /// `remote_domain_stats_record`: one domain of CONNECT_GET_ALL_DOMAIN_STATS.
    pub struct DomainStatsRecord {
        pub dom: NonnullDomain,
        pub params: Vec<TypedParam> [REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX],
    }
}

/// `remote_typed_param_value`: a union switched on `VIR_TYPED_PARAM_*`.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedParamValue {
    /// `VIR_TYPED_PARAM_INT` (1).
    Int(i32),
    /// `VIR_TYPED_PARAM_UINT` (2).
    UInt(u32),
    /// `VIR_TYPED_PARAM_LLONG` (3).
    LLong(i64),
    /// `VIR_TYPED_PARAM_ULLONG` (4).
    ULLong(u64),
    /// `VIR_TYPED_PARAM_DOUBLE` (5).
    Double(f64),
    /// `VIR_TYPED_PARAM_BOOLEAN` (6), an int on the wire.
    Boolean(i32),
    /// `VIR_TYPED_PARAM_STRING` (7).
    String(String),
}

impl Xdr for TypedParamValue {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(v) => {
                1i32.encode(out);
                v.encode(out);
            }
            Self::UInt(v) => {
                2i32.encode(out);
                v.encode(out);
            }
            Self::LLong(v) => {
                3i32.encode(out);
                v.encode(out);
            }
            Self::ULLong(v) => {
                4i32.encode(out);
                v.encode(out);
            }
            Self::Double(v) => {
                5i32.encode(out);
                v.encode(out);
            }
            Self::Boolean(v) => {
                6i32.encode(out);
                v.encode(out);
            }
            Self::String(v) => {
                7i32.encode(out);
                v.encode(out);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(match i32::decode(r)? {
            1 => Self::Int(Xdr::decode(r)?),
            2 => Self::UInt(Xdr::decode(r)?),
            3 => Self::LLong(Xdr::decode(r)?),
            4 => Self::ULLong(Xdr::decode(r)?),
            5 => Self::Double(Xdr::decode(r)?),
            6 => Self::Boolean(Xdr::decode(r)?),
            7 => Self::String(Xdr::decode(r)?),
            v => {
                return Err(XdrError::BadValue {
                    what: "typed parameter type",
                    value: i64::from(v),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_bytes, to_bytes};

    #[test]
    fn domain_matches_the_notes_example() {
        let dom = NonnullDomain {
            name: "rpcdemo".into(),
            uuid: "2a7610c8-d7b4-43df-89fa-f91317d2999a".parse().unwrap(),
            id: -1,
        };
        let hex: String = to_bytes(&dom).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0000000772706364656d6f002a7610c8d7b443df89faf91317d2999affffffff"
        );
        assert_eq!(from_bytes::<NonnullDomain>(&to_bytes(&dom)).unwrap(), dom);
    }

    #[test]
    fn uuid_parse_and_print() {
        let u: Uuid = "6f1c2d3e4b5a4c7d8e9f0a1b2c3d4e5f".parse().unwrap();
        assert_eq!(u.to_string(), "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f");
        assert!("6f1c2d3e".parse::<Uuid>().is_err());
        assert!("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f00"
            .parse::<Uuid>()
            .is_err());
        assert!("zz1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
            .parse::<Uuid>()
            .is_err());
    }

    #[test]
    fn typed_param_union() {
        let p = TypedParam {
            field: "state.state".into(),
            value: TypedParamValue::Int(1),
        };
        assert_eq!(from_bytes::<TypedParam>(&to_bytes(&p)).unwrap(), p);
        let bad = [0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0];
        assert!(from_bytes::<TypedParam>(&bad).is_err());
    }
}
