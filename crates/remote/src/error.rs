//! `remote_error`: the payload of every ERROR reply, with libvirt's error
//! codes, domains and message shapes (virterror.h, virerror.c).

use std::fmt;

use crate::types::{NonnullDomain, NonnullNetwork, Uuid};
use crate::xdr::xdr_struct;

/// `virErrorNumber` values rvirt raises or clients commonly test for.
pub mod code {
    pub const OK: i32 = 0;
    pub const INTERNAL_ERROR: i32 = 1;
    pub const NO_MEMORY: i32 = 2;
    pub const NO_SUPPORT: i32 = 3;
    pub const NO_CONNECT: i32 = 5;
    pub const INVALID_CONN: i32 = 6;
    pub const INVALID_DOMAIN: i32 = 7;
    pub const INVALID_ARG: i32 = 8;
    pub const OPERATION_FAILED: i32 = 9;
    pub const NO_KERNEL: i32 = 17;
    pub const XML_ERROR: i32 = 27;
    pub const DOM_EXIST: i32 = 28;
    pub const OPERATION_DENIED: i32 = 29;
    pub const OPEN_FAILED: i32 = 30;
    pub const WRITE_FAILED: i32 = 34;
    pub const SYSTEM_ERROR: i32 = 38;
    pub const RPC: i32 = 39;
    pub const NO_DOMAIN: i32 = 42;
    pub const NO_NETWORK: i32 = 43;
    pub const AUTH_FAILED: i32 = 45;
    pub const NO_STORAGE_POOL: i32 = 49;
    pub const NO_STORAGE_VOL: i32 = 50;
    pub const NO_NODE_DEVICE: i32 = 53;
    pub const NO_SECURITY_MODEL: i32 = 54;
    pub const OPERATION_INVALID: i32 = 55;
    pub const NO_INTERFACE: i32 = 57;
    pub const NO_NWFILTER: i32 = 62;
    pub const NO_SECRET: i32 = 66;
    pub const CONFIG_UNSUPPORTED: i32 = 67;
    pub const OPERATION_TIMEOUT: i32 = 68;
    pub const NO_DOMAIN_SNAPSHOT: i32 = 72;
    pub const INVALID_STREAM: i32 = 73;
    pub const ARGUMENT_UNSUPPORTED: i32 = 74;
    pub const STORAGE_PROBE_FAILED: i32 = 75;
    pub const STORAGE_POOL_BUILT: i32 = 76;
    pub const OPERATION_ABORTED: i32 = 78;
    pub const NO_DOMAIN_METADATA: i32 = 80;
    pub const BLOCK_COPY_ACTIVE: i32 = 83;
    pub const OPERATION_UNSUPPORTED: i32 = 84;
    pub const RESOURCE_BUSY: i32 = 87;
    pub const ACCESS_DENIED: i32 = 88;
    pub const STORAGE_VOL_EXIST: i32 = 90;
    pub const DEVICE_MISSING: i32 = 99;
    pub const MULTIPLE_DOMAINS: i32 = 110;
}

/// `virErrorDomain`: which part of libvirt raised the error.
pub mod from {
    pub const NONE: i32 = 0;
    pub const XML: i32 = 5;
    pub const DOM: i32 = 6;
    pub const RPC: i32 = 7;
    pub const CONF: i32 = 9;
    pub const QEMU: i32 = 10;
    pub const STORAGE: i32 = 18;
    pub const NETWORK: i32 = 19;
    pub const TEST: i32 = 12;
    pub const REMOTE: i32 = 13;
    pub const DOMAIN: i32 = 20;
    pub const NODEDEV: i32 = 22;
    pub const SECURITY: i32 = 24;
    pub const INTERFACE: i32 = 26;
    pub const SECRET: i32 = 30;
    pub const NWFILTER: i32 = 33;
    pub const DOMAIN_SNAPSHOT: i32 = 35;
    pub const STREAMS: i32 = 38;
    pub const EVENT: i32 = 40;
    pub const CAPABILITIES: i32 = 44;
    pub const URI: i32 = 45;
    pub const AUTH: i32 = 46;
}

/// `virErrorLevel`.
pub mod level {
    pub const NONE: i32 = 0;
    pub const WARNING: i32 = 1;
    pub const ERROR: i32 = 2;
}

xdr_struct! {
    /// `remote_error`. Its fields mirror `virError`.
    pub struct RemoteError {
        pub code: i32,
        pub domain: i32,
        pub message: Option<String>,
        pub level: i32,
        pub dom: Option<NonnullDomain>,
        /// The message template (`"Domain not found: %s"`).
        pub str1: Option<String>,
        /// The detail substituted into it.
        pub str2: Option<String>,
        pub str3: Option<String>,
        pub int1: i32,
        pub int2: i32,
        pub net: Option<NonnullNetwork>,
    }
}

/// virerror.c's two message forms per code: without and with detail.
fn templates(c: i32) -> (&'static str, &'static str) {
    match c {
        code::INTERNAL_ERROR => ("internal error", "internal error: %s"),
        code::NO_MEMORY => ("out of memory", "out of memory: %s"),
        code::NO_SUPPORT => (
            "this function is not supported by the connection driver",
            "this function is not supported by the connection driver: %s",
        ),
        code::NO_CONNECT => (
            "no connection driver available",
            "no connection driver available for %s",
        ),
        code::INVALID_CONN => (
            "invalid connection pointer in",
            "invalid connection pointer in %s",
        ),
        code::INVALID_DOMAIN => ("invalid domain pointer in", "invalid domain pointer in %s"),
        code::INVALID_ARG => ("invalid argument", "invalid argument: %s"),
        code::OPERATION_FAILED => ("operation failed", "operation failed: %s"),
        code::NO_KERNEL => (
            "missing kernel information",
            "missing kernel information: %s",
        ),
        code::XML_ERROR => (
            "XML description is invalid or not well formed",
            "XML error: %s",
        ),
        code::DOM_EXIST => ("this domain exists already", "domain %s exists already"),
        code::OPERATION_DENIED => (
            "operation forbidden for read only access",
            "operation forbidden: %s",
        ),
        code::OPEN_FAILED => (
            "failed to open configuration file",
            "failed to open configuration file %s",
        ),
        code::WRITE_FAILED => (
            "failed to write configuration file",
            "failed to write configuration file: %s",
        ),
        code::SYSTEM_ERROR => ("system call error", "%s"),
        code::RPC => ("RPC error", "%s"),
        code::NO_DOMAIN => ("Domain not found", "Domain not found: %s"),
        code::NO_NETWORK => ("Network not found", "Network not found: %s"),
        code::NO_STORAGE_POOL => ("Storage pool not found", "Storage pool not found: %s"),
        code::NO_STORAGE_VOL => ("Storage volume not found", "Storage volume not found: %s"),
        code::NO_SECURITY_MODEL => ("Security model not found", "Security model not found: %s"),
        code::NO_NODE_DEVICE => ("Node device not found", "Node device not found: %s"),
        code::NO_INTERFACE => ("Interface not found", "Interface not found: %s"),
        code::NO_NWFILTER => ("Network filter not found", "Network filter not found: %s"),
        code::NO_SECRET => ("Secret not found", "Secret not found: %s"),
        code::NO_DOMAIN_SNAPSHOT => ("Domain snapshot not found", "Domain snapshot not found: %s"),
        code::OPERATION_INVALID => (
            "Requested operation is not valid",
            "Requested operation is not valid: %s",
        ),
        code::CONFIG_UNSUPPORTED => ("unsupported configuration", "unsupported configuration: %s"),
        code::BLOCK_COPY_ACTIVE => ("block copy still active", "block copy still active: %s"),
        code::OPERATION_TIMEOUT => (
            "Timed out during operation",
            "Timed out during operation: %s",
        ),
        code::INVALID_STREAM => ("stream is not valid", "stream is not valid: %s"),
        code::ARGUMENT_UNSUPPORTED => ("argument unsupported", "argument unsupported: %s"),
        code::STORAGE_PROBE_FAILED => {
            ("Storage pool probe failed", "Storage pool probe failed: %s")
        }
        code::STORAGE_POOL_BUILT => (
            "storage pool already built",
            "Storage pool already built: %s",
        ),
        code::STORAGE_VOL_EXIST => (
            "this storage volume exists already",
            "storage volume %s exists already",
        ),
        code::OPERATION_ABORTED => ("operation aborted", "operation aborted: %s"),
        code::NO_DOMAIN_METADATA => ("metadata not found", "metadata not found: %s"),
        code::OPERATION_UNSUPPORTED => ("Operation not supported", "Operation not supported: %s"),
        code::RESOURCE_BUSY => ("resource busy", "resource busy: %s"),
        code::DEVICE_MISSING => ("device not found", "device not found: %s"),
        code::ACCESS_DENIED => ("access denied", "access denied: %s"),
        code::MULTIPLE_DOMAINS => (
            "multiple matching domains found",
            "multiple matching domains found: %s",
        ),
        _ => ("unknown error", "%s"),
    }
}

impl RemoteError {
    /// An error shaped as libvirt's `virReportError` shapes it: `str1` the
    /// template, `str2` the detail, `message` the two combined, level ERROR,
    /// `int1`/`int2` -1.
    pub fn new(code: i32, domain: i32, detail: Option<&str>) -> Self {
        let (plain, with) = templates(code);
        let (message, str1) = match detail {
            Some(d) => (with.replacen("%s", d, 1), with),
            None => (plain.to_string(), plain),
        };
        RemoteError {
            code,
            domain,
            message: Some(message),
            level: level::ERROR,
            dom: None,
            str1: Some(str1.to_string()),
            str2: detail.map(str::to_string),
            str3: None,
            int1: -1,
            int2: -1,
            net: None,
        }
    }

    /// VIR_ERR_NO_DOMAIN for a name lookup, as the QEMU driver words it.
    pub fn no_domain_name(name: &str) -> Self {
        Self::new(
            code::NO_DOMAIN,
            from::QEMU,
            Some(&format!("no domain with matching name '{name}'")),
        )
    }

    /// VIR_ERR_NO_DOMAIN for a UUID lookup.
    pub fn no_domain_uuid(uuid: &Uuid) -> Self {
        Self::new(
            code::NO_DOMAIN,
            from::QEMU,
            Some(&format!("no domain with matching uuid '{uuid}'")),
        )
    }

    /// VIR_ERR_NO_DOMAIN for an id lookup.
    pub fn no_domain_id(id: i32) -> Self {
        Self::new(
            code::NO_DOMAIN,
            from::QEMU,
            Some(&format!("no domain with matching id {id}")),
        )
    }

    /// VIR_ERR_OPERATION_INVALID (`domain is not running`, ...).
    pub fn operation_invalid(detail: &str) -> Self {
        Self::new(code::OPERATION_INVALID, from::QEMU, Some(detail))
    }

    /// VIR_ERR_OPERATION_FAILED.
    pub fn operation_failed(detail: &str) -> Self {
        Self::new(code::OPERATION_FAILED, from::QEMU, Some(detail))
    }

    /// VIR_ERR_INTERNAL_ERROR.
    pub fn internal(detail: &str) -> Self {
        Self::new(code::INTERNAL_ERROR, from::QEMU, Some(detail))
    }

    /// VIR_ERR_XML_ERROR, raised by the domain XML parser.
    pub fn xml_error(detail: &str) -> Self {
        Self::new(code::XML_ERROR, from::DOMAIN, Some(detail))
    }

    /// VIR_ERR_INVALID_ARG.
    pub fn invalid_arg(detail: &str) -> Self {
        Self::new(code::INVALID_ARG, from::QEMU, Some(detail))
    }

    /// VIR_ERR_OPERATION_TIMEOUT.
    pub fn operation_timeout(detail: &str) -> Self {
        Self::new(code::OPERATION_TIMEOUT, from::QEMU, Some(detail))
    }

    /// VIR_ERR_NO_SUPPORT for a public API the driver lacks, named as
    /// libvirt names it (`virDomainShutdown`).
    pub fn no_support(api: &str) -> Self {
        Self::new(code::NO_SUPPORT, from::DOMAIN, Some(api))
    }

    // Calls fail with libvirt's `remote_error` as the wire carries it.
    #[allow(clippy::result_large_err)]
    /// libvirt's `virCheckFlags`: VIR_ERR_INVALID_ARG naming the flags
    /// outside `supported` and the driver function (`qemuDomainReboot`)
    /// that refused them.
    pub fn check_flags(flags: u32, supported: u32, function: &str) -> Result<(), Self> {
        let extra = flags & !supported;
        if extra == 0 {
            return Ok(());
        }
        // virCheckFlags' message stands alone, with no "invalid argument"
        // in front (libvirt 9.0's test and QEMU drivers both).
        let message = format!("unsupported flags (0x{extra:x}) in function {function}");
        let mut e = Self::new(code::INVALID_ARG, from::QEMU, Some(&message));
        e.message = Some(message);
        Err(e)
    }

    /// VIR_ERR_RPC for a procedure number the daemon does not know.
    pub fn unknown_procedure(proc_: i32) -> Self {
        Self::new(
            code::RPC,
            from::RPC,
            Some(&format!("unknown procedure: {proc_}")),
        )
    }

    /// VIR_ERR_RPC for a program/version the daemon does not serve.
    pub fn unknown_program(prog: u32, vers: u32) -> Self {
        Self::new(
            code::RPC,
            from::RPC,
            Some(&format!("Cannot find program {prog} version {vers}")),
        )
    }

    /// VIR_ERR_RPC for arguments that do not decode.
    pub fn undecodable_payload() -> Self {
        Self::new(
            code::RPC,
            from::RPC,
            Some("Unable to decode message payload"),
        )
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "unknown error (code {})", self.code),
        }
    }
}

impl std::error::Error for RemoteError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_bytes, to_bytes};

    /// The exact reply libvirtd 9.0 sent for `virsh dominfo nosuchdomain`.
    const CAPTURED: &str = "0000002a0000000a000000010000003d446f6d61696e206e6f7420666f756e643a206e6f20646f6d61696e2077697468206d61746368696e67206e616d6520276e6f73756368646f6d61696e2700000000000002000000000000000100000014446f6d61696e206e6f7420666f756e643a202573000000010000002b6e6f20646f6d61696e2077697468206d61746368696e67206e616d6520276e6f73756368646f6d61696e270000000000ffffffffffffffff00000000";

    #[test]
    fn no_domain_matches_libvirtd_byte_for_byte() {
        let e = RemoteError::no_domain_name("nosuchdomain");
        let hex: String = to_bytes(&e).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, CAPTURED);
        assert_eq!(
            e.to_string(),
            "Domain not found: no domain with matching name 'nosuchdomain'"
        );
        assert_eq!(from_bytes::<RemoteError>(&to_bytes(&e)).unwrap(), e);
    }

    #[test]
    fn unsupported_flags_as_vir_check_flags_words_them() {
        assert!(RemoteError::check_flags(3, 3, "f").is_ok());
        let e = RemoteError::check_flags(0x14, 1, "qemuDomainShutdownFlags").unwrap_err();
        assert_eq!(e.code, code::INVALID_ARG);
        assert_eq!(
            e.to_string(),
            "unsupported flags (0x14) in function qemuDomainShutdownFlags"
        );
    }

    #[test]
    fn operation_invalid_message() {
        let e = RemoteError::operation_invalid("domain is not running");
        assert_eq!(
            e.to_string(),
            "Requested operation is not valid: domain is not running"
        );
        assert_eq!(e.code, 55);
        let rpc = RemoteError::unknown_procedure(9999);
        assert_eq!(rpc.to_string(), "unknown procedure: 9999");
        assert_eq!((rpc.code, rpc.domain), (39, 7));
    }
}
