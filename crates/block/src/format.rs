//! Image formats: the step between an offset on the virtual disk (what the
//! guest addresses) and where those bytes are in the storage.
//!
//! A raw image maps every offset to itself. A format with metadata
//! (qcow2, through imago: [`crate::Qcow2`]) maps through its tables: a
//! range may be split over several host extents, read as zeroes where
//! nothing is allocated, or need the format itself ([`Mapping::Format`]:
//! clusters to allocate before a write, data in a backing image, compressed
//! data). The engines ask [`Format::map`] before each transfer and move the
//! data of host extents themselves, so such a format sits between the
//! device and the engines without either knowing.

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
    /// `len` bytes only the format can move: a write that needs clusters
    /// allocated (and copied from a backing image), a read of a backing
    /// image's data or of compressed data. The engines run these through
    /// [`Format::read`] and [`Format::write`] on their own thread.
    Format { len: u64 },
}

impl Mapping {
    /// Bytes of the virtual range this mapping covers.
    pub fn len(&self) -> u64 {
        match *self {
            Mapping::Host { len, .. } | Mapping::Zero { len } | Mapping::Format { len } => len,
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

    /// Reads `buf.len()` bytes at virtual `offset` where [`Format::map`]
    /// said [`Mapping::Format`]. May do metadata I/O.
    fn read(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Writes `buf` at virtual `offset` where [`Format::map`] said
    /// [`Mapping::Format`] (allocating as needed). `durable`: the write and
    /// the metadata it depends on are durable when this returns.
    fn write(&self, _offset: u64, _buf: &[u8], _durable: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether discards and write-zeroes go through [`Format::discard`]
    /// and [`Format::write_zeroes`] (a format with metadata) rather than
    /// straight to the host extents.
    fn zeroes_itself(&self) -> bool {
        false
    }

    /// Drops `[offset, offset + len)`: it reads as zeroes afterwards and
    /// the storage may reclaim its space.
    fn discard(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Makes `[offset, offset + len)` read as zeroes.
    fn write_zeroes(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether the start of `[offset, offset + len)` is held by this image
    /// itself (data or explicit zeroes) rather than by the images below,
    /// and for how many bytes that holds (at least one when `len` is
    /// not zero). A commit copies what the overlay holds. An image
    /// without a chain holds everything.
    fn allocation(&self, _offset: u64, len: u64) -> io::Result<(bool, u64)> {
        Ok((true, len))
    }

    /// The image and the images below it, top first, as a monitor shows
    /// them (`query-block`'s `image` and its `backing-image`s).
    fn chain(&self) -> Vec<Layer> {
        Vec::new()
    }
}

/// One image of a disk's chain, as `query-block` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The file, as the command line or the overlay's header named it.
    pub filename: String,
    /// `raw` or `qcow2`.
    pub format: &'static str,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    pub read_only: bool,
    /// The backing file named in the image's header, if any.
    pub backing_filename: Option<String>,
    /// The format the header gives for it.
    pub backing_format: Option<String>,
    /// qcow2's cluster size.
    pub cluster_size: Option<u64>,
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
