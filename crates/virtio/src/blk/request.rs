//! Parsing a virtio-blk request out of a descriptor chain.
//!
//! Layout (virtio 1.2, 5.2.6): a 16-byte header `{type: le32, reserved: le32,
//! sector: le64}` in device-readable memory, then the data (readable for
//! writes, writable for reads), then one device-writable status byte. The
//! spec forbids assuming anything about how these are split into
//! descriptors, so the parser works on byte ranges across segments.

use rvirt_block::IoKind;
use vm_memory::{Bytes, GuestAddress};

use crate::chain::{ChainFault, Segment, Segments};
use crate::Memory;

use super::SECTOR_SIZE;

/// The header every request starts with.
pub const HEADER_SIZE: u64 = 16;
/// One DISCARD / WRITE_ZEROES range: `{sector: le64, num_sectors: le32, flags: le32}`.
pub const RANGE_SIZE: u64 = 16;
/// The serial number GET_ID returns is at most this long.
pub const ID_BYTES: u32 = 20;

/// Request types (VIRTIO_BLK_T_*).
pub mod kind {
    pub use virtio_bindings::virtio_blk::{
        VIRTIO_BLK_T_DISCARD as DISCARD, VIRTIO_BLK_T_FLUSH as FLUSH,
        VIRTIO_BLK_T_GET_ID as GET_ID, VIRTIO_BLK_T_IN as IN, VIRTIO_BLK_T_OUT as OUT,
        VIRTIO_BLK_T_WRITE_ZEROES as WRITE_ZEROES,
    };
}

/// One range of a DISCARD or WRITE_ZEROES request, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
    /// VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP.
    pub unmap: bool,
}

/// What the request asks for, with its guest buffers.
#[derive(Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read `len` bytes at `offset` into `data`.
    Read {
        offset: u64,
        data: Vec<Segment>,
    },
    /// Write `data` at `offset`.
    Write {
        offset: u64,
        data: Vec<Segment>,
    },
    Flush,
    /// Write the serial number into `data`.
    GetId {
        data: Vec<Segment>,
    },
    Discard(Vec<ByteRange>),
    WriteZeroes(Vec<ByteRange>),
}

/// Why a request is refused; the status byte says IOERR or UNSUPP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed chain")]
    Chain(#[from] ChainFault),
    #[error("request header is {0} bytes, expected 16")]
    ShortHeader(u64),
    #[error("header is not in device-readable memory")]
    HeaderUnreadable,
    #[error("unsupported request type {0}")]
    Unsupported(u32),
    #[error("data length {0} is not a multiple of 512")]
    Unaligned(u64),
    #[error("sectors {sector}+{count} are beyond the end of the disk ({capacity} sectors)")]
    OutOfRange {
        sector: u64,
        count: u64,
        capacity: u64,
    },
    #[error("data buffers in the wrong direction for the request")]
    WrongDirection,
    #[error("discard/write-zeroes payload of {0} bytes is not a list of ranges")]
    BadRanges(u64),
    #[error("more than {0} discard/write-zeroes ranges")]
    TooManyRanges(u32),
    #[error("unknown discard/write-zeroes flags {0:#x}")]
    BadRangeFlags(u32),
}

/// A parsed request: the operation and where the status byte goes.
#[derive(Debug)]
pub struct Parsed {
    /// The last device-writable byte of the chain, if there is one.
    pub status: Option<GuestAddress>,
    pub op: Result<Operation, RequestError>,
    /// What the header asked for, as statistics count it, when it could
    /// be read (refused requests are counted as invalid by kind).
    pub kind: Option<IoKind>,
}

/// Limits the parser enforces, from the device's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Disk size in 512-byte sectors.
    pub capacity: u64,
    /// Most ranges per DISCARD / WRITE_ZEROES request.
    pub max_ranges: u32,
    /// Most sectors per range.
    pub max_range_sectors: u32,
}

/// Parses one request out of an already collected chain.
pub fn parse(mem: &Memory, mut segs: Segments, limits: &Limits) -> Parsed {
    let status = take_status(&mut segs.writable);
    let mut kind = None;
    let op = match segs.fault {
        Some(fault) => Err(fault.into()),
        None => parse_op(mem, segs, limits, &mut kind),
    };
    Parsed { status, op, kind }
}

/// Splits the status byte off the end of the writable segments.
fn take_status(writable: &mut Vec<Segment>) -> Option<GuestAddress> {
    while let Some(last) = writable.last_mut() {
        if last.len == 0 {
            writable.pop();
            continue;
        }
        last.len -= 1;
        // Cannot overflow: the segment was addr..addr+len inside memory, or
        // the chain is faulty and the write is checked anyway.
        let status = last.addr.0.checked_add(u64::from(last.len))?;
        if last.len == 0 {
            writable.pop();
        }
        return Some(GuestAddress(status));
    }
    None
}

fn parse_op(
    mem: &Memory,
    segs: Segments,
    limits: &Limits,
    kind_of: &mut Option<IoKind>,
) -> Result<Operation, RequestError> {
    let Segments {
        readable, writable, ..
    } = segs;
    let (header, payload) = split_at(&readable, HEADER_SIZE);
    let header_len = crate::chain::total_len(&header);
    if header_len < HEADER_SIZE {
        return Err(RequestError::ShortHeader(header_len));
    }
    let mut raw = [0u8; HEADER_SIZE as usize];
    read_segments(mem, &header, &mut raw)?;
    let req_type = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let sector = u64::from_le_bytes([
        raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
    ]);
    let payload_len = crate::chain::total_len(&payload);
    let writable_len = crate::chain::total_len(&writable);
    *kind_of = match req_type {
        kind::IN => Some(IoKind::Read),
        kind::OUT | kind::WRITE_ZEROES => Some(IoKind::Write),
        kind::DISCARD => Some(IoKind::Unmap),
        _ => None,
    };

    match req_type {
        kind::IN => {
            if payload_len != 0 {
                return Err(RequestError::WrongDirection);
            }
            let offset = check_io(sector, writable_len, limits)?;
            Ok(Operation::Read {
                offset,
                data: writable,
            })
        }
        kind::OUT => {
            if writable_len != 0 {
                return Err(RequestError::WrongDirection);
            }
            let offset = check_io(sector, payload_len, limits)?;
            Ok(Operation::Write {
                offset,
                data: payload,
            })
        }
        kind::FLUSH => Ok(Operation::Flush),
        kind::GET_ID => {
            if writable_len == 0 {
                return Err(RequestError::WrongDirection);
            }
            Ok(Operation::GetId { data: writable })
        }
        kind::DISCARD => Ok(Operation::Discard(parse_ranges(
            mem, &payload, limits, false,
        )?)),
        kind::WRITE_ZEROES => Ok(Operation::WriteZeroes(parse_ranges(
            mem, &payload, limits, true,
        )?)),
        other => Err(RequestError::Unsupported(other)),
    }
}

/// Checks a read or write of `len` bytes at `sector`; returns the byte offset.
fn check_io(sector: u64, len: u64, limits: &Limits) -> Result<u64, RequestError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(RequestError::Unaligned(len));
    }
    let count = len / SECTOR_SIZE;
    check_sectors(sector, count, limits.capacity)?;
    // sector <= capacity, and capacity * 512 is a file size, so no overflow.
    Ok(sector * SECTOR_SIZE)
}

fn check_sectors(sector: u64, count: u64, capacity: u64) -> Result<(), RequestError> {
    match sector.checked_add(count) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(RequestError::OutOfRange {
            sector,
            count,
            capacity,
        }),
    }
}

fn parse_ranges(
    mem: &Memory,
    payload: &[Segment],
    limits: &Limits,
    allow_unmap: bool,
) -> Result<Vec<ByteRange>, RequestError> {
    let len = crate::chain::total_len(payload);
    if len == 0 || !len.is_multiple_of(RANGE_SIZE) {
        return Err(RequestError::BadRanges(len));
    }
    let count = len / RANGE_SIZE;
    if count > u64::from(limits.max_ranges) {
        return Err(RequestError::TooManyRanges(limits.max_ranges));
    }
    // count <= max_ranges, a small number, so this allocation is bounded.
    let mut raw = vec![0u8; len as usize];
    read_segments(mem, payload, &mut raw)?;
    raw.chunks_exact(RANGE_SIZE as usize)
        .map(|r| {
            let sector = u64::from_le_bytes(r[0..8].try_into().unwrap_or_default());
            let sectors = u32::from_le_bytes(r[8..12].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(r[12..16].try_into().unwrap_or_default());
            let unmap_flag = virtio_bindings::virtio_blk::VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
            let allowed = if allow_unmap { unmap_flag } else { 0 };
            if flags & !allowed != 0 {
                return Err(RequestError::BadRangeFlags(flags));
            }
            if sectors > limits.max_range_sectors {
                return Err(RequestError::OutOfRange {
                    sector,
                    count: u64::from(sectors),
                    capacity: limits.capacity,
                });
            }
            check_sectors(sector, u64::from(sectors), limits.capacity)?;
            Ok(ByteRange {
                offset: sector * SECTOR_SIZE,
                len: u64::from(sectors) * SECTOR_SIZE,
                unmap: flags & unmap_flag != 0,
            })
        })
        .collect()
}

/// Splits segments after `at` bytes.
pub fn split_at(segs: &[Segment], at: u64) -> (Vec<Segment>, Vec<Segment>) {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut left = at;
    for &seg in segs {
        let len = u64::from(seg.len);
        if left >= len {
            head.push(seg);
            left -= len;
        } else if left > 0 {
            // left < seg.len, so both halves fit in u32.
            head.push(Segment {
                addr: seg.addr,
                len: left as u32,
            });
            tail.push(Segment {
                addr: GuestAddress(seg.addr.0.wrapping_add(left)),
                len: seg.len - left as u32,
            });
            left = 0;
        } else {
            tail.push(seg);
        }
    }
    (head, tail)
}

/// Gathers `out.len()` bytes from the segments (which hold at least that many).
fn read_segments(mem: &Memory, segs: &[Segment], out: &mut [u8]) -> Result<(), RequestError> {
    let mut done = 0usize;
    for seg in segs {
        if done == out.len() {
            break;
        }
        let n = (seg.len as usize).min(out.len() - done);
        mem.read_slice(&mut out[done..done + n], seg.addr)
            .map_err(|_| RequestError::HeaderUnreadable)?;
        done += n;
    }
    Ok(())
}
