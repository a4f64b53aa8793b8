//! Image formats: the step between an offset on the virtual disk (what the
//! guest addresses) and where those bytes are in the storage.
//!
//! A raw image maps every offset to itself. A format with metadata
//! (qcow2, through imago, next) maps through its tables: a range may be
//! split over several host extents, read as zeroes where nothing is
//! allocated, or need clusters allocated before a write. The engines ask
//! [`Format::map`] before each transfer and move data per extent, so such a
//! format sits between the device and the engines without either knowing.

use std::io;
use std::sync::Arc;

use crate::backend::DiskBackend;

/// Where the start of a virtual range lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// `len` bytes at `offset` in the storage.
    Host { offset: u64, len: u64 },
    /// `len` bytes that read as zeroes and hold nothing (unallocated, or a
    /// zero cluster). Never returned for a write.
    Zero { len: u64 },
}

impl Mapping {
    /// Bytes of the virtual range this mapping covers.
    pub fn len(&self) -> u64 {
        match *self {
            Mapping::Host { len, .. } | Mapping::Zero { len } => len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A disk image format over its storage.
pub trait Format: Send + Sync {
    /// Size of the virtual disk in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the virtual disk is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Where the start of `[offset, offset + len)` lives: an extent of at
    /// most `len` bytes (at least one when `len` is not zero). With
    /// `write`, the range is made writable in place first (allocated);
    /// that may do metadata I/O, so engines call it off the guest's vCPU
    /// threads.
    fn map(&self, offset: u64, len: u64, write: bool) -> io::Result<Mapping>;

    /// The storage the host extents are in.
    fn storage(&self) -> &Arc<dyn DiskBackend>;

    /// Makes the format's own metadata durable; the storage is flushed
    /// after.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A raw image: the virtual disk is the storage, byte for byte.
pub struct Raw {
    storage: Arc<dyn DiskBackend>,
}

impl Raw {
    pub fn new(storage: Arc<dyn DiskBackend>) -> Self {
        Raw { storage }
    }
}

impl Format for Raw {
    fn len(&self) -> io::Result<u64> {
        self.storage.len()
    }

    fn map(&self, offset: u64, len: u64, _write: bool) -> io::Result<Mapping> {
        Ok(Mapping::Host { offset, len })
    }

    fn storage(&self) -> &Arc<dyn DiskBackend> {
        &self.storage
    }
}
