//! Procedures virsh calls that rvirt-remote's table does not describe,
//! decoded and encoded here so rvirtd can serve them without changing
//! the shared crate: DOMAIN_GET_VCPU_PIN_INFO (230, `virsh vcpuinfo` of a
//! shut-off domain) and DOMAIN_RESET (245, `virsh reset`).

use rvirt_remote::server::error_reply;
use rvirt_remote::xdr::{Opaque, Reader, Xdr};
use rvirt_remote::{Header, Message, MessageStatus, MessageType, NonnullDomain, RemoteError};

use crate::daemon::Daemon;
use crate::hostinfo;

pub const DOMAIN_GET_VCPU_PIN_INFO: i32 = 230;
pub const DOMAIN_RESET: i32 = 245;

/// `remote_domain_get_vcpu_pin_info_args`.
struct PinInfoArgs {
    dom: NonnullDomain,
    ncpumaps: i32,
    maplen: i32,
}

fn decode(payload: &[u8]) -> Option<PinInfoArgs> {
    let mut r = Reader::new(payload);
    let dom = NonnullDomain::decode(&mut r).ok()?;
    let ncpumaps = i32::decode(&mut r).ok()?;
    let maplen = i32::decode(&mut r).ok()?;
    let _flags = u32::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some(PinInfoArgs {
        dom,
        ncpumaps,
        maplen,
    })
}

/// The reply to a CALL of a procedure only this module knows, or `None`
/// when `h` is not one of them.
pub fn reply(d: &Daemon, h: &Header, payload: &[u8]) -> Option<Message> {
    let result = match h.proc_ {
        DOMAIN_GET_VCPU_PIN_INFO => match decode(payload) {
            Some(a) => pin_info(d, &a),
            None => Err(RemoteError::undecodable_payload()),
        },
        DOMAIN_RESET => match decode_dom_flags(payload) {
            Some(dom) => d.reset(&dom).map(|()| Vec::new()),
            None => Err(RemoteError::undecodable_payload()),
        },
        _ => return None,
    };
    Some(match result {
        Ok(body) => Message {
            header: Header::remote(h.proc_, MessageType::Reply, h.serial, MessageStatus::Ok),
            payload: body,
        },
        Err(e) => error_reply(h, &e),
    })
}

/// `{ remote_nonnull_domain dom; unsigned int flags; }`.
fn decode_dom_flags(payload: &[u8]) -> Option<NonnullDomain> {
    let mut r = Reader::new(payload);
    let dom = NonnullDomain::decode(&mut r).ok()?;
    let _flags = u32::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some(dom)
}

/// Every vCPU may run on every host CPU: rvirt does no pinning.
fn pin_info(d: &Daemon, a: &PinInfoArgs) -> Result<Vec<u8>, RemoteError> {
    let vcpus = {
        let reg = d.reg();
        let e = reg.resolve(&a.dom)?;
        let def = e
            .current_def()
            .ok_or_else(|| RemoteError::internal("domain has no definition"))?;
        def.vcpu.count
    };
    if a.ncpumaps < 1 || !(1..=2048).contains(&a.maplen) {
        return Err(RemoteError::invalid_arg("bad cpumap count or length"));
    }
    let num = vcpus.min(a.ncpumaps as u32);
    let host = hostinfo::cpus();
    let mut maps = Vec::new();
    for _ in 0..num {
        maps.extend(hostinfo::all_cpus_map(host, a.maplen as usize));
    }
    let mut out = Vec::new();
    Opaque(maps).encode(&mut out);
    (num as i32).encode(&mut out);
    Ok(out)
}
