//! A command's scatter list (AHCI's PRDT, IDE's bus-master PRD table),
//! checked against guest RAM: data in is copied with vm-memory's checked
//! writes; reads and writes of the medium get host buffers for the block
//! layer only where vm-memory maps the whole range as RAM.

use rvirt_block::IoBuf;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::Memory;

/// One segment of guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: GuestAddress,
    pub len: u32,
}

/// Why a scatter list cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SgError {
    #[error("the scatter list is shorter than the transfer ({have} of {want} bytes)")]
    Short { have: u64, want: u64 },
    #[error("a scatter list segment is not guest RAM")]
    NotRam,
}

/// Total bytes the segments describe.
pub fn total(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| u64::from(s.len)).sum()
}

/// Copies `data` into the segments, in order; returns the bytes copied
/// (less than `data.len()` when the segments are shorter: the rest is
/// dropped, as a drive stops at the end of the host's buffer).
pub fn copy_in(mem: &Memory, segs: &[Segment], data: &[u8]) -> Result<usize, SgError> {
    let mut done = 0;
    for s in segs {
        if done == data.len() {
            break;
        }
        let n = (s.len as usize).min(data.len() - done);
        mem.write_slice(&data[done..done + n], s.addr)
            .map_err(|_| SgError::NotRam)?;
        done += n;
    }
    Ok(done)
}

/// Host buffers for the first `len` bytes of the segments.
///
/// The buffers point into `mem`'s mappings: whoever hands them to the
/// block layer keeps `mem` alive until the request is done or the disk
/// quiesced (the controllers hold their memory and quiesce their disks
/// before letting go of it).
pub fn io_bufs(mem: &Memory, segs: &[Segment], len: u64) -> Result<Vec<IoBuf>, SgError> {
    let have = total(segs);
    if have < len {
        return Err(SgError::Short { have, want: len });
    }
    let mut out = Vec::new();
    let mut left = len;
    for s in segs {
        if left == 0 {
            break;
        }
        let n = u64::from(s.len).min(left);
        // A segment may straddle two memory regions: one slice per region.
        for slice in mem.get_slices(s.addr, n as usize) {
            let slice = slice.map_err(|_| SgError::NotRam)?;
            // SAFETY: vm-memory checked that the slice lies inside a mapped
            // guest RAM region (plain memory, not MMIO); the mapping lives
            // as long as `mem`, which the controller keeps until the
            // request is done or its disk quiesced (see above).
            out.push(unsafe { IoBuf::new(slice.ptr_guard_mut().as_ptr(), slice.len()) });
        }
        left -= n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Memory {
        Memory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    #[test]
    fn segments_outside_ram_or_short_are_refused() {
        let m = mem();
        let inside = Segment {
            addr: GuestAddress(0x1000),
            len: 0x200,
        };
        let outside = Segment {
            addr: GuestAddress(0xff00),
            len: 0x200,
        };
        assert_eq!(io_bufs(&m, &[inside], 0x200).unwrap().len(), 1);
        assert_eq!(io_bufs(&m, &[outside], 0x200), Err(SgError::NotRam));
        assert_eq!(
            io_bufs(&m, &[inside], 0x400),
            Err(SgError::Short {
                have: 0x200,
                want: 0x400
            })
        );
        assert_eq!(copy_in(&m, &[outside], &[1; 0x200]), Err(SgError::NotRam));
        assert_eq!(copy_in(&m, &[inside, inside], &[7; 0x300]), Ok(0x300));
    }
}
