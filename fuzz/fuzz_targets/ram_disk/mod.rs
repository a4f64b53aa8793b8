//! Shared by the targets that serve a disk (ATA, virtio-blk, virtio-scsi):
//! a disk in RAM whose size is its buffer's. Opened on the sync engine,
//! every request completes inside the call that submits it.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use rvirt_block::{AioMode, Disk, DiskBackend};

/// The ATA targets' disk and CD-ROM size: 64 CD sectors.
pub const DISK_SIZE: usize = 64 * 2048;

pub struct RamDisk(pub Mutex<Vec<u8>>);

impl RamDisk {
    /// `size` bytes of 0x5a.
    pub fn new(size: usize) -> Self {
        RamDisk(Mutex::new(vec![0x5a; size]))
    }

    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let size = self.0.lock().unwrap().len();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        if end > size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(start..end)
    }
}

impl DiskBackend for RamDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.0.lock().unwrap()[r]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        self.0.lock().unwrap()[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let r = self.range(offset, len)?;
        self.0.lock().unwrap()[r].fill(0);
        Ok(())
    }
}

/// A RAM disk of `size` bytes on the sync engine, and its RAM.
pub fn ram<T: Send + 'static>(size: usize) -> (Arc<RamDisk>, Disk<T>) {
    let ram = Arc::new(RamDisk::new(size));
    let disk = Disk::new(ram.clone(), AioMode::Sync).unwrap();
    (ram, disk)
}

/// An ATA target's disk: [`DISK_SIZE`] bytes.
pub fn disk() -> Disk<u8> {
    ram(DISK_SIZE).1
}
