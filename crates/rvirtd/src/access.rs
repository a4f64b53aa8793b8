//! Read-only connections (CONNECT_OPEN with VIR_CONNECT_RO, `virsh -r`):
//! libvirt checks this in the client library, and libvirtd again on the
//! server, so a client that skips the library check is still refused.

use rvirt_remote::error::{code, from};
use rvirt_remote::{Procedure, RemoteError};

/// `VIR_CONNECT_RO`.
pub const VIR_CONNECT_RO: u32 = 1;

/// The error for a procedure a read-only connection may not call, if
/// `p` is one.
pub fn read_only_refusal(p: Procedure) -> Option<RemoteError> {
    use Procedure::*;
    let changes = matches!(
        p,
        DomainCreate
            | DomainCreateWithFlags
            | DomainCreateXml
            | DomainDefineXml
            | DomainDefineXmlFlags
            | DomainUndefine
            | DomainUndefineFlags
            | DomainDestroy
            | DomainDestroyFlags
            | DomainShutdown
            | DomainShutdownFlags
            | DomainReboot
            | DomainSuspend
            | DomainResume
            | DomainSetAutostart
            | DomainSetMetadata
            | DomainOpenConsole
    );
    changes.then(|| denied(&p.api_name()))
}

/// libvirt's refusal of API `api` on a read-only connection.
pub fn denied(api: &str) -> RemoteError {
    RemoteError::new(
        code::OPERATION_DENIED,
        from::NONE,
        Some(&format!("read only access prevents {api}")),
    )
}
