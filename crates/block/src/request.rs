//! What a caller asks of a disk, and what it gets back.

use std::io;

use crate::buf::{total_len, IoBuf};

/// A byte range of the virtual disk (a discard or write-zeroes range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub len: u64,
}

/// An operation on the virtual disk.
#[derive(Debug)]
pub enum Op {
    /// Fill `bufs` from `offset` on.
    Read { offset: u64, bufs: Vec<IoBuf> },
    /// Write `bufs` at `offset`.
    Write { offset: u64, bufs: Vec<IoBuf> },
    /// Make every completed write durable.
    Flush,
    /// Give the ranges back (what they read afterwards is undefined).
    Discard(Vec<Range>),
    /// Make the ranges read as zeroes.
    WriteZeroes(Vec<Range>),
}

/// The kinds of operation, as statistics count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    Read,
    Write,
    Flush,
    /// Discards.
    Unmap,
}

impl Op {
    /// How statistics count it: write-zeroes are writes of their length,
    /// as QEMU counts them.
    pub fn kind(&self) -> IoKind {
        match self {
            Op::Read { .. } => IoKind::Read,
            Op::Write { .. } | Op::WriteZeroes(_) => IoKind::Write,
            Op::Flush => IoKind::Flush,
            Op::Discard(_) => IoKind::Unmap,
        }
    }

    /// Bytes it moves or covers.
    pub fn bytes(&self) -> u64 {
        match self {
            Op::Read { bufs, .. } | Op::Write { bufs, .. } => total_len(bufs),
            Op::Flush => 0,
            Op::Discard(r) | Op::WriteZeroes(r) => r.iter().map(|r| r.len).sum(),
        }
    }

    /// The end of the highest range it changes, for `wr_highest_offset`.
    pub(crate) fn write_end(&self) -> u64 {
        match self {
            Op::Write { offset, bufs } => offset.saturating_add(total_len(bufs)),
            Op::WriteZeroes(r) => r
                .iter()
                .map(|r| r.offset.saturating_add(r.len))
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }
}

/// A request: an operation and the caller's tag for it, given back in its
/// [`Done`]. The tag is opaque here (virtio-blk keeps the descriptor head
/// and the status byte's address in it).
#[derive(Debug)]
pub struct Request<T> {
    pub tag: T,
    pub op: Op,
}

/// A finished request.
#[derive(Debug)]
pub struct Done<T> {
    pub tag: T,
    pub result: io::Result<()>,
}
