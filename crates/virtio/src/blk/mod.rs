//! virtio-blk (device type 2) on a raw image.
//!
//! One request queue; requests are parsed ([`request`]) from checked
//! descriptor chains and run synchronously ([`exec`]) with pread/pwrite on the
//! event-loop thread. io_uring and worker pools come later, behind
//! [`DiskBackend`].

pub mod disk;
pub mod exec;
pub mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{DescriptorChain, Queue};
use vm_memory::Bytes;

pub use disk::{DiskBackend, RawFile};
use exec::{Executor, Status};
use request::{Limits, Parsed};

use crate::{
    chain, queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt,
};

/// virtio-blk always counts in 512-byte sectors, whatever the disk's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Largest queue the device offers.
pub const QUEUE_SIZE: u16 = 256;
/// Data segments per request (seg_max): the queue minus header and status.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Ranges per DISCARD / WRITE_ZEROES request.
pub const MAX_RANGES: u32 = 16;
/// Sectors per DISCARD / WRITE_ZEROES range (2 GiB - 512).
pub const MAX_RANGE_SECTORS: u32 = (u32::MAX >> 1) / SECTOR_SIZE as u32;
/// Size of `struct virtio_blk_config` up to write_zeroes_may_unmap.
pub const CONFIG_SIZE: usize = 60;

/// How the disk is exposed.
#[derive(Debug, Clone, Default)]
pub struct BlockOptions {
    /// Refuse writes, discards and write-zeroes (VIRTIO_BLK_F_RO).
    pub read_only: bool,
    /// What GET_ID returns; longer serials are cut to 20 bytes.
    pub serial: Option<String>,
}

struct Active {
    mem: Memory,
    queue: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// The block device.
pub struct Block {
    disk: Box<dyn DiskBackend>,
    options: BlockOptions,
    capacity: u64,
    config: [u8; CONFIG_SIZE],
    active: Option<Active>,
    buf: Vec<u8>,
}

/// Why a disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot read the disk size")]
    Size(#[source] std::io::Error),
}

impl Block {
    /// A block device on `disk`; its size is read now and fixed.
    pub fn new(disk: Box<dyn DiskBackend>, options: BlockOptions) -> Result<Self, BlockError> {
        let size = disk.len().map_err(BlockError::Size)?;
        let capacity = size / SECTOR_SIZE;
        if size % SECTOR_SIZE != 0 {
            tracing::warn!(
                size,
                "disk size is not a multiple of 512; the tail is not visible"
            );
        }
        Ok(Block {
            disk,
            config: build_config(capacity, options.read_only),
            options,
            capacity,
            active: None,
            buf: Vec::new(),
        })
    }

    /// Disk size in sectors, as in the config space.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn limits(&self) -> Limits {
        Limits {
            capacity: self.capacity,
            max_ranges: MAX_RANGES,
            max_range_sectors: MAX_RANGE_SECTORS,
        }
    }

    /// Parses and runs one chain; returns the used length.
    fn handle(&mut self, mem: &Memory, chain: DescriptorChain<&Memory>) -> u32 {
        let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        let Parsed { status, op } = request::parse(mem, segs, &self.limits());
        let Some(status_addr) = status else {
            // Nowhere to report: return the chain untouched.
            tracing::debug!(?op, "virtio-blk request without a status byte");
            return 0;
        };
        let (status, written) = match op {
            Err(error) => {
                tracing::debug!(%error, "virtio-blk request refused");
                (Status::from(&error), 0)
            }
            Ok(op) => {
                let serial = self.options.serial.as_deref().unwrap_or("").as_bytes();
                let mut exec = Executor {
                    disk: &*self.disk,
                    read_only: self.options.read_only,
                    serial,
                    buf: &mut self.buf,
                };
                match exec.run(mem, &op) {
                    Ok(written) => (Status::Ok, written),
                    Err(error) => {
                        tracing::debug!(%error, "virtio-blk request failed");
                        (Status::IoErr, 0)
                    }
                }
            }
        };
        if mem.write_obj(status as u8, status_addr).is_err() {
            tracing::debug!(
                addr = status_addr.0,
                "virtio-blk status byte outside memory"
            );
            return written;
        }
        written.saturating_add(1)
    }
}

fn build_config(capacity: u64, read_only: bool) -> [u8; CONFIG_SIZE] {
    let mut c = [0u8; CONFIG_SIZE];
    c[0..8].copy_from_slice(&capacity.to_le_bytes());
    c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
    if !read_only {
        c[36..40].copy_from_slice(&MAX_RANGE_SECTORS.to_le_bytes());
        c[40..44].copy_from_slice(&MAX_RANGES.to_le_bytes());
        c[44..48].copy_from_slice(&1u32.to_le_bytes());
        c[48..52].copy_from_slice(&MAX_RANGE_SECTORS.to_le_bytes());
        c[52..56].copy_from_slice(&MAX_RANGES.to_le_bytes());
        // write_zeroes_may_unmap stays 0: zeroes are written in place.
    }
    c
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        let mut f = 1 << VIRTIO_BLK_F_SEG_MAX | 1 << VIRTIO_BLK_F_FLUSH;
        if self.options.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        } else {
            f |= 1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start < CONFIG_SIZE {
            let n = data.len().min(CONFIG_SIZE - start);
            data[..n].copy_from_slice(&self.config[start..start + n]);
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let queue = crate::device::single_ready_queue(ctx.queues)?;
        self.active = Some(Active {
            mem: ctx.mem,
            queue,
            interrupt: ctx.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn process_queue(&mut self, queue: u16) {
        if queue != 0 {
            return;
        }
        // Taken out so `handle` can borrow the rest of the device.
        let Some(mut active) = self.active.take() else {
            return;
        };
        let Active {
            mem,
            queue,
            interrupt,
        } = &mut active;
        queue_util::drain(queue, mem, 0, &**interrupt, |chain| self.handle(mem, chain));
        self.active = Some(active);
    }
}
