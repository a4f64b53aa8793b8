//! Turns a descriptor chain into checked guest-memory segments.
//!
//! virtio-queue stops walking a chain after queue-size descriptors (so loops
//! end), but it does so silently; this module notices and reports it, and
//! checks every buffer against guest memory before a device touches it.

use virtio_queue::DescriptorChain;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::Memory;

/// A buffer of the chain, known to lie inside guest memory unless the chain
/// carries a [`ChainFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: GuestAddress,
    pub len: u32,
}

/// Why a chain cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    /// The chain loops, is longer than the queue, or points at a descriptor
    /// that cannot be read.
    #[error("descriptor chain is truncated, too long or loops")]
    Truncated,
    /// A device-readable buffer follows a device-writable one.
    #[error("device-readable descriptor after a device-writable one")]
    WrongDirection,
    /// A buffer lies (partly) outside guest memory.
    #[error("descriptor {addr:#x}+{len:#x} is outside guest memory")]
    OutOfMemory { addr: u64, len: u32 },
    /// More descriptors than the device accepts.
    #[error("more than {0} descriptors")]
    TooManyDescriptors(usize),
}

/// The readable and writable buffers of one chain, in order.
#[derive(Debug, Default)]
pub struct Segments {
    pub readable: Vec<Segment>,
    pub writable: Vec<Segment>,
    /// Set when the chain is malformed; the segments are then only good for
    /// writing a status byte, which is itself bounds-checked.
    pub fault: Option<ChainFault>,
}

/// Walks `chain`, keeping at most `max_descriptors` buffers.
pub fn collect(mem: &Memory, chain: DescriptorChain<&Memory>, max_descriptors: usize) -> Segments {
    let mut out = Segments::default();
    let mut last_has_next = false;
    for desc in chain {
        last_has_next = desc.has_next();
        if out.readable.len() + out.writable.len() >= max_descriptors {
            out.fault
                .get_or_insert(ChainFault::TooManyDescriptors(max_descriptors));
            return out;
        }
        let seg = Segment {
            addr: desc.addr(),
            len: desc.len(),
        };
        if !in_memory(mem, seg) {
            out.fault.get_or_insert(ChainFault::OutOfMemory {
                addr: seg.addr.0,
                len: seg.len,
            });
        }
        if desc.is_write_only() {
            out.writable.push(seg);
        } else {
            if !out.writable.is_empty() {
                out.fault.get_or_insert(ChainFault::WrongDirection);
            }
            out.readable.push(seg);
        }
    }
    // A well-formed chain ends on a descriptor without NEXT; anything else
    // means virtio-queue gave up on it.
    if last_has_next {
        out.fault.get_or_insert(ChainFault::Truncated);
    }
    out
}

/// True when the whole buffer is backed by guest RAM.
pub fn in_memory(mem: &Memory, seg: Segment) -> bool {
    seg.len == 0 || mem.check_range(seg.addr, seg.len as usize)
}

/// Total length of a list of segments (cannot overflow: each is a u32 and
/// there are at most a queue's worth).
pub fn total_len(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| u64::from(s.len)).sum()
}
