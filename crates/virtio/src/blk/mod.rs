//! virtio-blk (device type 2) on a raw image.
//!
//! One request queue; requests are parsed ([`request`]) from checked
//! descriptor chains and run ([`exec`]) by an engine: inline on the
//! event-loop thread (sync), on a worker pool (aio=threads) or through
//! io_uring (aio=io_uring / native). Asynchronous engines complete requests
//! later: their eventfd is the device's [`VirtioDevice::host_fd`], and
//! [`VirtioDevice::process_host_fd`] returns the finished chains to the
//! used ring. [`open_disk`] opens an image with QEMU's `cache=`, `aio=` and
//! `discard=` semantics.

pub mod aligned;
pub mod disk;
mod engine;
pub mod exec;
pub mod open;
pub mod request;
#[cfg(test)]
mod tests;

use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

use aligned::AlignedBuf;
pub use disk::{Alignment, DiskBackend, GuestSlice, RawFile};
use engine::{Done, Engine, Job};
use exec::{Executor, Status};
pub use open::{
    open_disk, AioMode, CacheMode, DiscardMode, Disk, DiskOpenOptions, HostDisk, OpenError,
    ParseModeError,
};
use request::{Limits, Operation, Parsed};

use crate::{chain, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// virtio-blk always counts in 512-byte sectors, whatever the disk's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Largest queue the device offers; also the bound on requests in flight.
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
    mem: Arc<Memory>,
    queue: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// The block device.
pub struct Block {
    // First, so dropping the device waits for in-flight I/O before anything
    // else goes.
    engine: Engine,
    disk: Arc<dyn DiskBackend>,
    options: BlockOptions,
    capacity: u64,
    /// Advertised as blk_size when O_DIRECT needs more than 512 bytes.
    block_size: Option<u32>,
    config: [u8; CONFIG_SIZE],
    active: Option<Active>,
    /// Bounce buffer for requests run inline.
    buf: AlignedBuf,
    /// Completions reaped and not yet on the used ring.
    done: Vec<Done>,
}

/// Why a disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot read the disk size")]
    Size(#[source] std::io::Error),
}

impl Block {
    /// A block device on `disk`, running requests inline (the synchronous
    /// engine); its size is read now and fixed.
    pub fn new(disk: Box<dyn DiskBackend>, options: BlockOptions) -> Result<Self, BlockError> {
        Self::with_disk(
            Disk {
                backend: Arc::from(disk),
                engine: Engine::Sync,
            },
            options,
        )
    }

    /// A block device on a disk from [`open_disk`] (or [`Disk::new`]), with
    /// the engine chosen there.
    pub fn with_disk(disk: Disk, options: BlockOptions) -> Result<Self, BlockError> {
        let Disk { backend, engine } = disk;
        let size = backend.len().map_err(BlockError::Size)?;
        let capacity = size / SECTOR_SIZE;
        if size % SECTOR_SIZE != 0 {
            tracing::warn!(
                size,
                "disk size is not a multiple of 512; the tail is not visible"
            );
        }
        let align = backend.alignment();
        let block_size = (align.offset > SECTOR_SIZE as usize)
            .then(|| u32::try_from(align.offset).ok())
            .flatten();
        Ok(Block {
            engine,
            buf: AlignedBuf::new(align.memory),
            disk: backend,
            config: build_config(capacity, options.read_only, block_size),
            block_size,
            options,
            capacity,
            active: None,
            done: Vec::new(),
        })
    }

    /// Disk size in sectors, as in the config space.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Requests handed to the engine and not yet returned to the guest.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight() + self.done.len()
    }

    fn limits(&self) -> Limits {
        Limits {
            capacity: self.capacity,
            max_ranges: MAX_RANGES,
            max_range_sectors: MAX_RANGE_SECTORS,
        }
    }

    /// Returns finished requests to the guest, then starts what the driver
    /// made available, as long as fewer than QUEUE_SIZE are in flight; one
    /// interrupt per pass, as EVENT_IDX allows.
    fn pump(&mut self) {
        let limits = self.limits();
        let Block {
            engine,
            disk,
            options,
            active,
            buf,
            done,
            ..
        } = self;
        let Some(Active {
            mem,
            queue,
            interrupt,
        }) = active.as_mut()
        else {
            done.clear();
            return;
        };
        let mut used = false;
        let result = (|| -> Result<(), virtio_queue::Error> {
            for d in done.drain(..) {
                finish(mem, queue, d)?;
                used = true;
            }
            if !queue.ready() {
                return Ok(());
            }
            loop {
                queue.disable_notification(&**mem)?;
                let mut full = false;
                // A driver never has more than a queue's worth outstanding;
                // a hostile one re-posting heads still in flight is capped.
                let limit = usize::from(queue.size().min(QUEUE_SIZE));
                loop {
                    if engine.in_flight() >= limit {
                        // Back here when a completion frees a slot; the
                        // driver need not kick meanwhile.
                        full = true;
                        break;
                    }
                    let Some(chain) = queue.iter(&**mem)?.next() else {
                        break;
                    };
                    let head = chain.head_index();
                    let req = Request {
                        mem,
                        limits: &limits,
                        options,
                        disk: &**disk,
                        buf,
                    };
                    if let Some(d) = req.start(engine, chain, head) {
                        finish(mem, queue, d)?;
                        used = true;
                    }
                }
                engine.commit();
                // What finished already goes back in this pass.
                engine.reap_ready(done);
                let reaped = !done.is_empty();
                for d in done.drain(..) {
                    finish(mem, queue, d)?;
                    used = true;
                }
                if full && reaped {
                    continue;
                }
                // With EVENT_IDX, re-check after re-enabling so a buffer
                // added in between is not left waiting for a kick that will
                // not come.
                if full || !queue.enable_notification(&**mem)? {
                    break;
                }
            }
            Ok(())
        })();
        if used && crate::queue_util::wants_interrupt(queue, mem) {
            interrupt.signal_used_queue(0);
        }
        if let Err(error) = result {
            tracing::warn!(queue = 0, %error, "broken virtqueue, device needs reset");
            interrupt.signal_needs_reset();
        }
    }
}

/// What starting one request needs from the device.
struct Request<'a> {
    mem: &'a Arc<Memory>,
    limits: &'a Limits,
    options: &'a BlockOptions,
    disk: &'a dyn DiskBackend,
    buf: &'a mut AlignedBuf,
}

impl Request<'_> {
    /// Parses a chain and hands it to the engine; returns the result when
    /// it is known at once (refused, inline or synchronous).
    fn start(
        self,
        engine: &mut Engine,
        chain: DescriptorChain<&Memory>,
        head: u16,
    ) -> Option<Done> {
        let mem: &Memory = self.mem;
        let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        let Parsed { status, op } = request::parse(mem, segs, self.limits);
        let done = |status, result, written| {
            Some(Done {
                head,
                status,
                result,
                written,
            })
        };
        let Some(status_addr) = status else {
            // Nowhere to report: return the chain untouched.
            tracing::debug!(?op, "virtio-blk request without a status byte");
            return done(None, Status::IoErr, 0);
        };
        let op = match op {
            Ok(op) => op,
            Err(error) => {
                tracing::debug!(%error, "virtio-blk request refused");
                return done(Some(status_addr), Status::from(&error), 0);
            }
        };
        let changes = matches!(
            op,
            Operation::Write { .. } | Operation::Discard(_) | Operation::WriteZeroes(_)
        );
        if changes && self.options.read_only {
            tracing::debug!("virtio-blk write to a read-only disk");
            return done(Some(status_addr), Status::IoErr, 0);
        }
        if let Operation::GetId { .. } = op {
            let serial = self.options.serial.as_deref().unwrap_or("").as_bytes();
            let mut exec = Executor {
                disk: self.disk,
                read_only: self.options.read_only,
                serial,
                buf: self.buf,
            };
            return match exec.run(mem, &op) {
                Ok(written) => done(Some(status_addr), Status::Ok, written),
                Err(error) => {
                    tracing::debug!(%error, "virtio-blk request failed");
                    done(Some(status_addr), Status::IoErr, 0)
                }
            };
        }
        let job = Job {
            head,
            status: status_addr,
            op,
            mem: self.mem.clone(),
        };
        match engine.submit(job) {
            Ok(()) => None,
            Err(job) => Some(engine::run(self.disk, self.buf, &job)),
        }
    }
}

/// Writes the status byte and returns the chain to the used ring.
fn finish(mem: &Memory, queue: &mut Queue, d: Done) -> Result<(), virtio_queue::Error> {
    let len = match d.status {
        None => 0,
        Some(addr) => match mem.write_obj(d.result as u8, addr) {
            Ok(()) => d.written.saturating_add(1),
            Err(_) => {
                tracing::debug!(addr = addr.0, "virtio-blk status byte outside memory");
                d.written
            }
        },
    };
    queue.add_used(mem, d.head, len)
}

fn build_config(capacity: u64, read_only: bool, block_size: Option<u32>) -> [u8; CONFIG_SIZE] {
    let mut c = [0u8; CONFIG_SIZE];
    c[0..8].copy_from_slice(&capacity.to_le_bytes());
    c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
    if let Some(size) = block_size {
        c[20..24].copy_from_slice(&size.to_le_bytes());
    }
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
        if self.block_size.is_some() {
            // O_DIRECT on a 4K-sector host disk: the guest must not send
            // smaller I/O.
            f |= 1 << VIRTIO_BLK_F_BLK_SIZE;
        }
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
        // A new driver never sees completions meant for the old one.
        self.engine.quiesce();
        self.done.clear();
        self.active = Some(Active {
            mem: Arc::new(ctx.mem),
            queue,
            interrupt: ctx.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) {
        // In-flight reads still write into guest memory: wait for them, so
        // nothing lands in the memory of a reset (or rebooted) guest, and
        // drop their results.
        self.engine.quiesce();
        self.done.clear();
        self.active = None;
    }

    fn process_queue(&mut self, queue: u16) {
        if queue != 0 {
            return;
        }
        self.pump();
    }

    fn host_fd(&self) -> Option<RawFd> {
        self.engine.host_fd()
    }

    fn process_host_fd(&mut self) {
        self.engine.reap(&mut self.done);
        self.pump();
    }
}
