//! The wire format of virtio-scsi requests (virtio 1.1, 5.6.6): a command's
//! header and response, the control queue's task-management and
//! asynchronous-notification requests, and the buffers between them,
//! read and written through vm-memory's checked accessors.

use vm_memory::{Bytes, GuestAddress};

use crate::chain::{Segment, Segments};
use crate::Memory;

/// Highest target and LUN the config space announces (QEMU's
/// VIRTIO_SCSI_MAX_TARGET and VIRTIO_SCSI_MAX_LUN).
pub const TARGET_MAX: u8 = 255;
pub const LUN_MAX: u16 = 16383;

/// Bytes of a command header before the CDB: LUN, tag, task attribute,
/// priority, CRN.
const CMD_HEADER: u32 = 8 + 8 + 3;
/// Bytes of a command response before the sense: sense_len, resid,
/// status_qualifier, status, response.
const RESP_HEADER: u32 = 4 + 4 + 2 + 1 + 1;

/// VIRTIO_SCSI_S_* response codes.
pub mod response {
    pub const OK: u8 = 0;
    pub const OVERRUN: u8 = 1;
    pub const BAD_TARGET: u8 = 3;
    pub const FAILURE: u8 = 9;
    pub const FUNCTION_REJECTED: u8 = 11;
}

/// Control request types and task-management functions.
const CTRL_TMF: u32 = 0;
const CTRL_AN_QUERY: u32 = 1;
const CTRL_AN_SUBSCRIBE: u32 = 2;
/// The highest TMF subtype (QUERY_TASK_SET).
const TMF_MAX: u32 = 7;

/// Why a request cannot be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("header of {need} bytes, buffers of {got}")]
    ShortHeader { need: u32, got: u64 },
    #[error("room for a response of {need} bytes, buffers of {got}")]
    ShortResponse { need: u32, got: u64 },
    #[error("control request type {0}")]
    UnknownControl(u32),
    #[error("guest memory access failed")]
    Memory,
}

/// Reads the first `n` bytes of `segs` (which lie in guest memory); an
/// error if they hold fewer.
fn gather(mem: &Memory, segs: &[Segment], n: u32) -> Result<Vec<u8>, RequestError> {
    let mut out = Vec::with_capacity(n as usize);
    for s in segs {
        if out.len() == n as usize {
            break;
        }
        // Zero-length descriptors are legal anywhere in a chain.
        let want = (n as usize - out.len()).min(s.len as usize);
        let mut buf = vec![0u8; want];
        mem.read_slice(&mut buf, s.addr)
            .map_err(|_| RequestError::Memory)?;
        out.extend_from_slice(&buf);
    }
    if out.len() < n as usize {
        return Err(RequestError::ShortHeader {
            need: n,
            got: out.len() as u64,
        });
    }
    Ok(out)
}

/// `segs` without their first `n` bytes.
fn skip(segs: &[Segment], mut n: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segs {
        let len = u64::from(s.len);
        if n >= len {
            n -= len;
            continue;
        }
        out.push(Segment {
            addr: GuestAddress(s.addr.0 + n),
            len: (len - n) as u32,
        });
        n = 0;
    }
    out
}

/// The first `n` bytes of `segs`.
pub fn truncate(segs: &[Segment], mut n: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segs {
        if n == 0 {
            break;
        }
        let len = u64::from(s.len).min(n);
        out.push(Segment {
            addr: s.addr,
            len: len as u32,
        });
        n -= len;
    }
    out
}

/// Writes `bytes` into `segs` as far as they reach; returns how many.
pub fn write_segments(mem: &Memory, segs: &[Segment], bytes: &[u8]) -> Result<usize, RequestError> {
    let mut done = 0;
    for s in segs {
        if done == bytes.len() {
            break;
        }
        let n = (s.len as usize).min(bytes.len() - done);
        mem.write_slice(&bytes[done..done + n], s.addr)
            .map_err(|_| RequestError::Memory)?;
        done += n;
    }
    Ok(done)
}

/// Target and LUN of an 8-byte LUN field, if it addresses one: byte 0 is
/// 1, byte 1 the target, bytes 2-3 the LUN in single-level form (flat
/// addressing from 256), as QEMU reads them.
fn address(lun: &[u8]) -> Option<(u8, u16)> {
    if lun[0] != 1 || (lun[2] != 0 && !(0x40..0x80).contains(&lun[2])) {
        return None;
    }
    Some((lun[1], u16::from_be_bytes([lun[2], lun[3]]) & 0x3fff))
}

/// A command request, parsed.
#[derive(Debug)]
pub struct Command {
    /// Target and LUN; None for an address no device can have.
    pub address: Option<(u8, u16)>,
    pub cdb: Vec<u8>,
    pub data_out: Vec<Segment>,
    pub data_in: Vec<Segment>,
    /// Where the response goes (the first writable bytes).
    response: Vec<Segment>,
    sense_size: u32,
}

/// What goes back for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub response: u8,
    pub status: u8,
    pub resid: u32,
    pub sense: Vec<u8>,
    /// Bytes written to the data-in buffers.
    pub data_in: u32,
}

impl Response {
    pub fn new(response: u8) -> Self {
        Response {
            response,
            status: 0,
            resid: 0,
            sense: Vec::new(),
            data_in: 0,
        }
    }

    pub fn good() -> Self {
        Response::new(response::OK)
    }

    pub fn check(sense: rvirt_scsi::Sense) -> Self {
        Response {
            status: rvirt_scsi::status::CHECK_CONDITION,
            sense: sense.fixed().to_vec(),
            ..Response::good()
        }
    }
}

impl Command {
    /// Parses a chain's header; the buffers are known to lie in memory.
    pub fn parse(
        mem: &Memory,
        segs: &Segments,
        cdb_size: u32,
        sense_size: u32,
    ) -> Result<Self, RequestError> {
        let need = CMD_HEADER + cdb_size;
        let got = crate::chain::total_len(&segs.readable);
        if got < u64::from(need) {
            return Err(RequestError::ShortHeader { need, got });
        }
        let resp = RESP_HEADER + sense_size;
        let room = crate::chain::total_len(&segs.writable);
        if room < u64::from(resp) {
            return Err(RequestError::ShortResponse {
                need: resp,
                got: room,
            });
        }
        let header = gather(mem, &segs.readable, need)?;
        Ok(Command {
            address: address(&header[..8]),
            cdb: header[CMD_HEADER as usize..].to_vec(),
            data_out: skip(&segs.readable, u64::from(need)),
            data_in: skip(&segs.writable, u64::from(resp)),
            response: truncate(&segs.writable, u64::from(resp)),
            sense_size,
        })
    }

    /// Writes the response; returns the bytes written to the chain.
    pub fn respond(&self, mem: &Memory, r: &Response) -> u32 {
        let sense_len = r.sense.len().min(self.sense_size as usize);
        let mut b = vec![0u8; (RESP_HEADER + self.sense_size) as usize];
        b[0..4].copy_from_slice(&(sense_len as u32).to_le_bytes());
        b[4..8].copy_from_slice(&r.resid.to_le_bytes());
        b[10] = r.status;
        b[11] = r.response;
        b[12..12 + sense_len].copy_from_slice(&r.sense[..sense_len]);
        match write_segments(mem, &self.response, &b) {
            Ok(n) => (n as u32).saturating_add(r.data_in),
            Err(_) => r.data_in,
        }
    }
}

/// A control-queue request: task management answered as complete (every
/// command has finished by the time the driver can ask), notifications
/// as none; `exists` says whether a target/LUN holds a device. Returns
/// the bytes written.
pub fn control(
    mem: &Memory,
    segs: &Segments,
    exists: impl Fn(u8, u16) -> bool,
) -> Result<u32, RequestError> {
    let readable = crate::chain::total_len(&segs.readable);
    let kind = gather(mem, &segs.readable, 4)?;
    if kind.len() < 4 {
        return Err(RequestError::ShortHeader {
            need: 4,
            got: readable,
        });
    }
    let kind = u32::from_le_bytes([kind[0], kind[1], kind[2], kind[3]]);
    let (need, resp) = match kind {
        // type, subtype, lun[8], tag; response byte.
        CTRL_TMF => (24, vec![0u8; 1]),
        // type, lun[8], event_requested; event_actual, response.
        CTRL_AN_QUERY | CTRL_AN_SUBSCRIBE => (16, vec![0u8; 5]),
        other => return Err(RequestError::UnknownControl(other)),
    };
    if readable < u64::from(need) {
        return Err(RequestError::ShortHeader {
            need,
            got: readable,
        });
    }
    let room = crate::chain::total_len(&segs.writable);
    if room < resp.len() as u64 {
        return Err(RequestError::ShortResponse {
            need: resp.len() as u32,
            got: room,
        });
    }
    let req = gather(mem, &segs.readable, need)?;
    let mut resp = resp;
    if kind == CTRL_TMF {
        let subtype = u32::from_le_bytes([req[4], req[5], req[6], req[7]]);
        resp[0] = match address(&req[8..16]) {
            Some((t, l)) if exists(t, l) => {
                if subtype <= TMF_MAX {
                    response::OK
                } else {
                    response::FUNCTION_REJECTED
                }
            }
            _ => response::BAD_TARGET,
        };
    } else {
        // event_actual 0: no asynchronous notification is supported.
        resp[4] = response::OK;
    }
    let n = write_segments(mem, &segs.writable, &resp)?;
    Ok(n as u32)
}
