//! The glue between a parsed request and the block layer: guest buffers
//! turned into host buffers, the status byte's values, and GET_ID (the one
//! request that never reaches the disk).

use rvirt_block::IoBuf;
use vm_memory::{Bytes, GuestMemoryBackend};

use crate::chain::Segment;
use crate::Memory;

use super::request::{RequestError, ID_BYTES};

/// VIRTIO_BLK_S_* as the guest sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = virtio_bindings::virtio_blk::VIRTIO_BLK_S_OK as u8,
    IoErr = virtio_bindings::virtio_blk::VIRTIO_BLK_S_IOERR as u8,
    Unsupp = virtio_bindings::virtio_blk::VIRTIO_BLK_S_UNSUPP as u8,
}

impl From<&RequestError> for Status {
    fn from(error: &RequestError) -> Self {
        match error {
            RequestError::Unsupported(_) => Status::Unsupp,
            _ => Status::IoErr,
        }
    }
}

/// The host view of guest buffers, for the block layer; None when a
/// buffer is not guest RAM (the chain checks make that rare: a region
/// vm-memory cannot map).
///
/// The invariant that makes these safe to hand over: the buffers point
/// into the mappings of `mem`, which the device keeps (in its active
/// state) until every request it submitted is done or the disk is
/// quiesced; reset, re-activation and drop all quiesce the disk before
/// letting go of the memory.
pub fn guest_bufs(mem: &Memory, data: &[Segment]) -> Option<Vec<IoBuf>> {
    let mut out = Vec::with_capacity(data.len());
    for seg in data {
        // A buffer may straddle two memory regions: one slice per region.
        for s in mem.get_slices(seg.addr, seg.len as usize) {
            let s = s.ok()?;
            // SAFETY: vm-memory checked that the slice lies inside a mapped
            // guest RAM region (plain memory, not MMIO). The mapping lives
            // as long as `mem`, which the device holds until the request
            // is done or the disk quiesced (the invariant above).
            out.push(unsafe { IoBuf::new(s.ptr_guard_mut().as_ptr(), s.len()) });
        }
    }
    Some(out)
}

/// Why GET_ID failed.
#[derive(Debug, thiserror::Error)]
#[error("guest memory access failed")]
pub struct MemoryError;

/// GET_ID: writes the serial, zero-padded to 20 bytes (a shorter buffer
/// gets a prefix); returns the bytes written.
pub fn get_id(mem: &Memory, data: &[Segment], serial: &[u8]) -> Result<u32, MemoryError> {
    let mut id = [0u8; ID_BYTES as usize];
    let n = serial.len().min(id.len());
    id[..n].copy_from_slice(&serial[..n]);
    let mut done = 0usize;
    for seg in data {
        if done == id.len() {
            break;
        }
        let n = (seg.len as usize).min(id.len() - done);
        mem.write_slice(&id[done..done + n], seg.addr)
            .map_err(|_| MemoryError)?;
        done += n;
    }
    Ok(done as u32)
}
