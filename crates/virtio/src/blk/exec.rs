//! Carrying out a parsed request against the disk and guest memory.

use vm_memory::{Address, Bytes};

use crate::chain::Segment;
use crate::Memory;

use super::disk::DiskBackend;
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
    pub buf: &'a mut Vec<u8>,
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

    fn read(&mut self, mem: &Memory, mut offset: u64, data: &[Segment]) -> Result<u32, ExecError> {
        let mut written = 0u32;
        for seg in data {
            let mut done = 0u32;
            while done < seg.len {
                let n = ((seg.len - done) as usize).min(CHUNK);
                self.buf.resize(n, 0);
                self.disk.read_at(&mut self.buf[..n], offset)?;
                let addr = seg
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(ExecError::Memory)?;
                mem.write_slice(&self.buf[..n], addr)
                    .map_err(|_| ExecError::Memory)?;
                offset += n as u64;
                done += n as u32;
                written = written.saturating_add(n as u32);
            }
        }
        Ok(written)
    }

    fn write(&mut self, mem: &Memory, mut offset: u64, data: &[Segment]) -> Result<(), ExecError> {
        for seg in data {
            let mut done = 0u32;
            while done < seg.len {
                let n = ((seg.len - done) as usize).min(CHUNK);
                self.buf.resize(n, 0);
                let addr = seg
                    .addr
                    .checked_add(u64::from(done))
                    .ok_or(ExecError::Memory)?;
                mem.read_slice(&mut self.buf[..n], addr)
                    .map_err(|_| ExecError::Memory)?;
                self.disk.write_at(&self.buf[..n], offset)?;
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
