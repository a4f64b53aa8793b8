//! qcow2 images, on imago.
//!
//! imago (by a QEMU block-layer developer) does the format: the header and
//! its feature bits, the L1/L2 tables and their caches, refcounts and
//! cluster allocation in a crash-safe order, copy-on-write from a backing
//! image, compressed clusters, zero clusters. It is built synchronous
//! (`sync` feature): rvirt has its own I/O threads and no async runtime.
//!
//! What rvirt adds around it:
//! - The I/O path. [`Format::map`] asks imago where a range lives
//!   (`get_shallow_mapping`, a table lookup that is cached): a cluster
//!   already allocated in this image is a host extent, and the engines
//!   (worker pool, io_uring with merging, O_DIRECT bouncing) move the
//!   guest's data there as for raw. Everything else — a write that needs
//!   clusters allocated, data in a backing image, compressed data — is
//!   [`Mapping::Format`], which the engines run through imago on their own
//!   thread (a `blk-io` worker, or the `devices` thread for io_uring and
//!   sync), never on a vCPU thread.
//! - Storage: imago does its I/O through rvirt's [`DiskBackend`]
//!   ([`Store`]), so the cache modes mean for metadata what they mean for
//!   data: O_DIRECT, O_DSYNC, no-flush.
//! - Durability: a write the guest needs durable (no write cache) that
//!   allocated also flushes imago's metadata before it completes; a guest
//!   flush flushes imago's caches, then syncs the file.
//! - The chain: rvirt opens every backing image itself, read-only, and
//!   hands it to imago; imago's own implicit opening is denied
//!   ([`imago::DenyImplicitOpenGate`]), so no image header makes the VMM
//!   open a file its caller did not accept (see [`ImageSpec`]).
//! - Discard: imago's `discard_*` may invalidate mappings that requests in
//!   flight on other threads still use, so rvirt discards by making the
//!   clusters zero (`write_zeroes`, which keeps mappings valid) and then
//!   giving the host space of whole clusters back to the file system.
//! - Damage imago trusts: a writable image whose header or tables have
//!   refcount 0 is refused at open (`check_metadata_refcounts`).
//! - Errors naming the image; the chain as `query-block` shows it.

mod open;
mod store;

use std::io;
use std::sync::Arc;

use imago::{FormatAccess, ShallowMapping};

use crate::backend::DiskBackend;
use crate::format::{Format, Layer, Mapping};

pub(crate) use open::open_qcow2;
pub use open::{Backing, ImageFormat, ImageSpec, MAX_CHAIN};
pub use store::Store;

/// A qcow2 image (with its backing chain) as a [`Format`].
pub struct Qcow2 {
    path: std::path::PathBuf,
    top: FormatAccess<Store>,
    /// The top image's file: where [`Mapping::Host`] extents are.
    storage: Arc<dyn DiskBackend>,
    cluster_size: u64,
    chain: Vec<Layer>,
    /// The top image's held-back table writes (writable images).
    anchors: Option<Arc<store::Anchors>>,
}

impl Qcow2 {
    /// The image file of the top layer.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes imago's caches, then the table writes held back until they
    /// were (see [`store::Anchors`]); nothing when none were.
    fn settle(&self) -> io::Result<()> {
        let Some(anchors) = &self.anchors else {
            return self.top.flush();
        };
        let n = anchors.pending();
        self.top.flush()?;
        anchors.apply(&*self.storage, n)
    }

    /// [`Qcow2::settle`] when a table write is waiting.
    fn settle_pending(&self) -> io::Result<()> {
        match &self.anchors {
            Some(a) if a.pending() > 0 => self.settle(),
            _ => Ok(()),
        }
    }

    /// Whether `storage` is the top image's file (not an external data
    /// file, not a backing image's).
    fn is_top(&self, storage: &Store) -> bool {
        Arc::ptr_eq(storage.disk(), &self.storage)
    }
}

impl Format for Qcow2 {
    fn len(&self) -> io::Result<u64> {
        Ok(self.top.size())
    }

    fn map(&self, offset: u64, len: u64, write: bool) -> io::Result<Mapping> {
        let (m, n) = self.top.get_shallow_mapping(offset, len)?;
        let len = n.min(len);
        Ok(match m {
            ShallowMapping::Raw {
                storage,
                offset: host,
                writable,
                ..
            } if (writable || !write) && self.is_top(storage) => {
                Mapping::Host { offset: host, len }
            }
            ShallowMapping::Zero { .. } if !write => Mapping::Zero { len },
            ShallowMapping::Eof { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request beyond the end of the disk",
                ))
            }
            _ => Mapping::Format { len },
        })
    }

    fn storage(&self) -> &Arc<dyn DiskBackend> {
        &self.storage
    }

    fn flush(&self) -> io::Result<()> {
        self.settle()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.top.read(buf, offset)
    }

    fn write(&self, offset: u64, buf: &[u8], durable: bool) -> io::Result<()> {
        self.top.write(buf, offset)?;
        // The data is durable (RWF_DSYNC is not used here: imago wrote
        // through the backend) once the file is synced, and the new
        // mapping once imago's tables are written. An O_DSYNC file made
        // the writes durable already, but the tables may still be cached.
        if durable || self.storage.writes_through() {
            self.settle()?;
        } else {
            self.settle_pending()?;
        }
        if durable {
            self.storage.flush()?;
        }
        Ok(())
    }

    fn zeroes_itself(&self) -> bool {
        true
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        // The clusters wholly inside the range that hold data in this
        // image: their host space goes back once they read as zeroes.
        let c = self.cluster_size;
        let start = offset.div_ceil(c) * c;
        let end = (offset + len) / c * c;
        let mut host = Vec::new();
        let mut at = start;
        while at < end {
            let (m, n) = self.top.get_shallow_mapping(at, end - at)?;
            if n == 0 {
                break;
            }
            let n = n.min(end - at);
            if let ShallowMapping::Raw {
                storage,
                offset,
                writable: true,
                ..
            } = m
            {
                if self.is_top(storage) {
                    host.push((offset, n));
                }
            }
            at += n;
        }
        self.top.write_zeroes(offset, len)?;
        self.settle_pending()?;
        for (offset, n) in host {
            // The clusters stay allocated (as zero clusters), so nothing
            // else is written there; the file may drop their blocks.
            self.storage.discard(offset, n)?;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.top.write_zeroes(offset, len)?;
        self.settle_pending()
    }

    fn allocation(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        let (m, n) = self.top.get_shallow_mapping(offset, len)?;
        let own = match m {
            ShallowMapping::Raw { .. } => true,
            ShallowMapping::Zero { explicit, .. } => explicit,
            ShallowMapping::Indirect { .. } => false,
            ShallowMapping::Eof { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request beyond the end of the disk",
                ))
            }
            // Compressed and other special clusters hold data here.
            _ => true,
        };
        Ok((own, n.min(len)))
    }

    fn chain(&self) -> Vec<Layer> {
        self.chain.clone()
    }
}

impl Drop for Qcow2 {
    /// Closing the image: imago's cached tables written, then the file
    /// synced (the engines are gone by now: a `Disk` drops its engine
    /// first), so a VMM that ends by any orderly way leaves a clean image.
    fn drop(&mut self) {
        if let Err(error) = self.settle().and_then(|()| self.storage.flush()) {
            tracing::error!(path = %self.path.display(), %error, "cannot flush the qcow2 image");
        }
    }
}
