//! Carrying out a parsed request against the disk and guest memory.

use vm_memory::{Address, Bytes, GuestMemoryBackend};

use crate::chain::Segment;
use crate::Memory;

use super::aligned::AlignedBuf;
use super::disk::{DiskBackend, GuestSlice};
use super::request::{ByteRange, Operation, RequestError, ID_BYTES};

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

/// Bounce buffers never grow past this, so a 4 GiB request costs 128 KiB.
const CHUNK: usize = 128 * 1024;

/// Per-device state the executor needs.
pub struct Executor<'a> {
    pub disk: &'a dyn DiskBackend,
    pub read_only: bool,
    pub serial: &'a [u8],
    /// Bounce buffer for guest buffers the disk cannot take directly.
    pub buf: &'a mut AlignedBuf,
}

/// The host view of `data`, when every buffer can go to the disk as it is
/// (zero-copy); `None` when some buffer needs the bounce buffer (O_DIRECT
/// misalignment) or cannot be mapped.
pub fn direct_slices<'m>(
    mem: &'m Memory,
    data: &[Segment],
    disk: &dyn DiskBackend,
) -> Option<Vec<GuestSlice<'m>>> {
    let mut out = Vec::with_capacity(data.len());
    for seg in data {
        // A buffer may straddle two memory regions: one slice per region.
        for s in mem.get_slices(seg.addr, seg.len as usize) {
            out.push(s.ok()?);
        }
    }
    disk.alignment().fits(&out).then_some(out)
}

/// Why a request failed while running.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("disk I/O failed")]
    Io(#[from] std::io::Error),
    #[error("guest memory access failed")]
    Memory,
    #[error("write to a read-only disk")]
    ReadOnly,
}

impl Executor<'_> {
    /// Runs `op`; returns how many bytes it wrote into guest buffers (not
    /// counting the status byte).
    pub fn run(&mut self, mem: &Memory, op: &Operation) -> Result<u32, ExecError> {
        match op {
            Operation::Read { offset, data } => self.read(mem, *offset, data),
            Operation::Write { offset, data } => {
                self.writable()?;
                self.write(mem, *offset, data).map(|()| 0)
            }
            Operation::Flush => self.disk.flush().map(|()| 0).map_err(Into::into),
            Operation::GetId { data } => self.get_id(mem, data),
            Operation::Discard(ranges) => {
                self.writable()?;
                self.each_range(ranges, |disk, r| disk.discard(r.offset, r.len))
            }
            Operation::WriteZeroes(ranges) => {
                self.writable()?;
                self.each_range(ranges, |disk, r| disk.write_zeroes(r.offset, r.len))
            }
        }
    }

    fn writable(&self) -> Result<(), ExecError> {
        if self.read_only {
            Err(ExecError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn read(&mut self, mem: &Memory, offset: u64, data: &[Segment]) -> Result<u32, ExecError> {
        if let Some(slices) = direct_slices(mem, data, self.disk) {
            self.disk.read_vectored_at(&slices, offset)?;
            let total = crate::chain::total_len(data);
            return Ok(u32::try_from(total).unwrap_or(u32::MAX));
        }
        self.read_bounced(mem, offset, data)
    }

    fn read_bounced(
        &mut self,
        mem: &Memory,
        mut offset: u64,
        data: &[Segment],
    ) -> Result<u32, ExecError> {
        let mut written = 0u32;
        for seg in data {
            let mut done = 0u32;
            while done < seg.len {
                let n = ((seg.len - done) as usize).min(CHUNK);
                self.buf.resize(n);
                self.disk.read_at(self.buf.as_mut_slice(), offset)?;
                let addr = seg
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(ExecError::Memory)?;
                mem.write_slice(self.buf.as_slice(), addr)
                    .map_err(|_| ExecError::Memory)?;
                offset += n as u64;
                done += n as u32;
                written = written.saturating_add(n as u32);
            }
        }
        Ok(written)
    }

    fn write(&mut self, mem: &Memory, offset: u64, data: &[Segment]) -> Result<(), ExecError> {
        if let Some(slices) = direct_slices(mem, data, self.disk) {
            return Ok(self.disk.write_vectored_at(&slices, offset)?);
        }
        self.write_bounced(mem, offset, data)
    }

    fn write_bounced(
        &mut self,
        mem: &Memory,
        mut offset: u64,
        data: &[Segment],
    ) -> Result<(), ExecError> {
        for seg in data {
            let mut done = 0u32;
            while done < seg.len {
                let n = ((seg.len - done) as usize).min(CHUNK);
                self.buf.resize(n);
                let addr = seg
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(ExecError::Memory)?;
                mem.read_slice(self.buf.as_mut_slice(), addr)
                    .map_err(|_| ExecError::Memory)?;
                self.disk.write_at(self.buf.as_slice(), offset)?;
                offset += n as u64;
                done += n as u32;
            }
        }
        Ok(())
    }

    fn get_id(&mut self, mem: &Memory, data: &[Segment]) -> Result<u32, ExecError> {
        // The ID is zero-padded to 20 bytes; a shorter buffer gets a prefix.
        let mut id = [0u8; ID_BYTES as usize];
        let n = self.serial.len().min(id.len());
        id[..n].copy_from_slice(&self.serial[..n]);
        let mut done = 0usize;
        for seg in data {
            if done == id.len() {
                break;
            }
            let n = (seg.len as usize).min(id.len() - done);
            mem.write_slice(&id[done..done + n], seg.addr)
                .map_err(|_| ExecError::Memory)?;
            done += n;
        }
        Ok(done as u32)
    }

    fn each_range(
        &self,
        ranges: &[ByteRange],
        f: impl Fn(&dyn DiskBackend, &ByteRange) -> std::io::Result<()>,
    ) -> Result<u32, ExecError> {
        for r in ranges {
            f(self.disk, r)?;
        }
        Ok(0)
    }
}
