//! Shared by the ATA targets: a RAM disk on the sync engine, so every
//! request completes inside the call that submits it.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use rvirt_block::{AioMode, Disk, DiskBackend};

pub const DISK_SIZE: usize = 64 * 2048;

pub struct RamDisk(Mutex<Vec<u8>>);

impl RamDisk {
    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        if end > DISK_SIZE {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(start..end)
    }
}

impl DiskBackend for RamDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(DISK_SIZE as u64)
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

/// A disk of [`DISK_SIZE`] bytes of 0x5a.
pub fn disk() -> Disk<u8> {
    Disk::new(Arc::new(RamDisk(Mutex::new(vec![0x5a; DISK_SIZE]))), AioMode::Sync).unwrap()
}
