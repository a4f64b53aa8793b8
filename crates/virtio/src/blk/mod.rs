//! virtio-blk (device type 2): the virtio side of a disk.
//!
//! One request queue; requests are parsed ([`request`]) from checked
//! descriptor chains, their guest buffers turned into host buffers
//! ([`exec::guest_bufs`]), and handed to the block layer
//! ([`rvirt_block::Disk`]), which runs them inline, on a worker pool or
//! through io_uring. Asynchronous engines complete requests later: their
//! eventfd is the device's [`VirtioDevice::host_fd`], and
//! [`VirtioDevice::process_host_fd`] returns the finished chains to the
//! used ring. This module owns the status byte, the config space
//! (capacity, limits, the `wce` byte) and the feature bits.

pub mod exec;
pub mod request;
#[cfg(test)]
mod tests;

use std::ops::Not;
use std::os::fd::RawFd;
use std::sync::Arc;

use rvirt_block::{AioMode, DiskBackend, Op, Range, Request as DiskRequest};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use exec::Status;
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
/// Offset of the `wce` byte (writeback cache enabled) in the config space.
pub const CONFIG_WCE: usize = 32;

/// What the device keeps with each request it hands the block layer.
#[derive(Debug)]
pub struct Tag {
    head: u16,
    /// Where the status byte goes.
    status: GuestAddress,
    /// Bytes the request writes into guest buffers when it succeeds.
    written: u32,
}

/// A disk as this device uses it: the block layer's disk with the
/// device's request tag.
pub type Disk = rvirt_block::Disk<Tag>;

type Done = rvirt_block::Done<Tag>;

/// A finished request, ready for the used ring.
#[derive(Debug)]
struct Completion {
    head: u16,
    /// Where the status byte goes; None: the chain had no room for one.
    status: Option<GuestAddress>,
    result: Status,
    /// Bytes written into guest buffers, not counting the status byte.
    written: u32,
}

impl From<Done> for Completion {
    fn from(d: Done) -> Self {
        let ok = d.result.is_ok();
        Completion {
            head: d.tag.head,
            status: Some(d.tag.status),
            result: if ok { Status::Ok } else { Status::IoErr },
            written: if ok { d.tag.written } else { 0 },
        }
    }
}

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
///
/// Invariant: guest buffers handed to the disk point into the memory held
/// by `active`; the disk is quiesced (every request finished) before
/// `active` is dropped or replaced, and the disk is dropped (which waits)
/// before anything else.
pub struct Block {
    // First, so dropping the device waits for in-flight I/O before the
    // guest memory in `active` goes.
    disk: Disk,
    options: BlockOptions,
    capacity: u64,
    /// Advertised as blk_size when O_DIRECT needs more than 512 bytes.
    block_size: Option<u32>,
    config: [u8; CONFIG_SIZE],
    /// The write cache the disk was opened with, restored at reset (as
    /// QEMU's original_wce).
    original_wce: bool,
    active: Option<Active>,
    /// Completions reaped and not yet on the used ring.
    done: Vec<Done>,
}

/// Why a disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot read the disk size")]
    Size(#[source] std::io::Error),
}

/// How long [`Block::switch_disk`] waits for the requests in flight.
pub const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why [`Block::switch_disk`] kept the old disk.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError<E> {
    #[error("cannot settle the disk in use")]
    Settle(#[source] std::io::Error),
    #[error(transparent)]
    Open(E),
    #[error("the new image has {new} bytes, the disk {old}")]
    Size { new: u64, old: u64 },
}

impl Block {
    /// A block device on `disk`, running requests inline (the synchronous
    /// engine); its size is read now and fixed.
    pub fn new(disk: Box<dyn DiskBackend>, options: BlockOptions) -> Result<Self, BlockError> {
        let disk = Disk::new(Arc::from(disk), AioMode::Sync).map_err(BlockError::Size)?;
        Self::with_disk(disk, options)
    }

    /// A block device on a disk from [`Disk::open`] (or [`Disk::new`]),
    /// with the engine and write cache chosen there.
    pub fn with_disk(disk: Disk, options: BlockOptions) -> Result<Self, BlockError> {
        let size = disk.len().map_err(BlockError::Size)?;
        let capacity = size / SECTOR_SIZE;
        if size % SECTOR_SIZE != 0 {
            tracing::warn!(
                size,
                "disk size is not a multiple of 512; the tail is not visible"
            );
        }
        let align = disk.alignment();
        let block_size = (align.offset > SECTOR_SIZE as usize)
            .then(|| u32::try_from(align.offset).ok())
            .flatten();
        let original_wce = disk.write_cache();
        let mut config = build_config(capacity, options.read_only, block_size);
        config[CONFIG_WCE] = u8::from(original_wce);
        Ok(Block {
            disk,
            config,
            block_size,
            original_wce,
            options,
            capacity,
            active: None,
            done: Vec::new(),
        })
    }

    /// The block layer's counters for this disk (`query-blockstats`).
    pub fn stats(&self) -> Arc<rvirt_block::Stats> {
        self.disk.stats().clone()
    }

    /// Whether the guest sees a volatile write cache now.
    pub fn write_cache(&self) -> bool {
        self.disk.write_cache()
    }

    fn set_write_cache(&mut self, on: bool) {
        self.disk.set_write_cache(on);
        self.config[CONFIG_WCE] = u8::from(on);
    }

    /// Disk size in sectors, as in the config space.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Switches the device to the disk `open` returns (a snapshot's
    /// overlay on the image in use, or the image below after a commit),
    /// in an order that loses and reorders no request: the requests in
    /// flight finish on the old disk and go back to the guest, the old
    /// image is made durable, and only then is the new one opened (so it
    /// reads the old one's tables as they are on disk) and put in place.
    /// The caller keeps the device from running meanwhile (it holds the
    /// device's lock with the device loop paused). On an error the device
    /// keeps its disk. Returns the old disk.
    pub fn switch_disk<E>(
        &mut self,
        open: impl FnOnce() -> Result<Disk, E>,
    ) -> Result<Disk, SwitchError<E>> {
        self.disk
            .settle(&mut self.done, SETTLE_LIMIT)
            .map_err(SwitchError::Settle)?;
        self.return_done();
        let mut disk = open().map_err(SwitchError::Open)?;
        let size = disk.len().map_err(SwitchError::Settle)?;
        if size / SECTOR_SIZE != self.capacity {
            return Err(SwitchError::Size {
                new: size,
                old: self.capacity * SECTOR_SIZE,
            });
        }
        disk.set_write_cache(self.disk.write_cache());
        Ok(std::mem::replace(&mut self.disk, disk))
    }

    /// Finishes the requests in flight (back to the guest) and makes the
    /// image durable; with `log`, every write from then on is logged
    /// there (a commit job's start), without, logging stops. The caller
    /// keeps the device from running meanwhile.
    pub fn settle_and_log(
        &mut self,
        log: Option<Arc<rvirt_block::commit::WriteLog>>,
    ) -> std::io::Result<()> {
        self.disk.settle(&mut self.done, SETTLE_LIMIT)?;
        self.return_done();
        self.disk.log_writes(log);
        Ok(())
    }

    /// Puts finished requests on the used ring without starting others.
    fn return_done(&mut self) {
        let Some(Active {
            mem,
            queue,
            interrupt,
        }) = self.active.as_mut()
        else {
            self.done.clear();
            return;
        };
        let mut used = false;
        for d in self.done.drain(..) {
            if let Err(error) = finish(mem, queue, d.into()) {
                tracing::warn!(queue = 0, %error, "broken virtqueue, device needs reset");
                interrupt.signal_needs_reset();
                return;
            }
            used = true;
        }
        if used && crate::queue_util::wants_interrupt(queue, mem) {
            interrupt.signal_used_queue(0);
        }
    }

    /// Requests handed to the disk and not yet returned to the guest.
    pub fn in_flight(&self) -> usize {
        self.disk.in_flight() + self.done.len()
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
            disk,
            options,
            active,
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
                finish(mem, queue, d.into())?;
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
                    if disk.in_flight() >= limit {
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
                    };
                    if let Some(d) = req.start(disk, chain, head) {
                        finish(mem, queue, d)?;
                        used = true;
                    }
                }
                disk.commit();
                // What finished already goes back in this pass.
                disk.reap_ready(done);
                let reaped = !done.is_empty();
                for d in done.drain(..) {
                    finish(mem, queue, d.into())?;
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
}

impl Request<'_> {
    /// Parses a chain and hands it to the disk; returns the result when
    /// it is known at once (refused, inline or synchronous).
    fn start(
        self,
        disk: &mut Disk,
        chain: DescriptorChain<&Memory>,
        head: u16,
    ) -> Option<Completion> {
        let mem: &Memory = self.mem;
        let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        let Parsed { status, op, kind } = request::parse(mem, segs, self.limits);
        let done = |status, result, written| {
            Some(Completion {
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
                // QEMU counts refused reads, writes and discards as invalid.
                if let Some(kind) = kind {
                    disk.stats().invalid(kind);
                }
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
        let mut written = 0;
        let op = match op {
            Operation::GetId { data } => {
                let serial = self.options.serial.as_deref().unwrap_or("").as_bytes();
                return match exec::get_id(mem, &data, serial) {
                    Ok(n) => done(Some(status_addr), Status::Ok, n),
                    Err(error) => {
                        tracing::debug!(%error, "virtio-blk request failed");
                        done(Some(status_addr), Status::IoErr, 0)
                    }
                };
            }
            Operation::Read { offset, data } | Operation::Write { offset, data } => {
                let read = changes.not();
                let Some(bufs) = exec::guest_bufs(mem, &data) else {
                    tracing::debug!("virtio-blk buffer is not in guest RAM");
                    return done(Some(status_addr), Status::IoErr, 0);
                };
                if read {
                    written = u32::try_from(crate::chain::total_len(&data)).unwrap_or(u32::MAX);
                    Op::Read { offset, bufs }
                } else {
                    Op::Write { offset, bufs }
                }
            }
            Operation::Flush => Op::Flush,
            Operation::Discard(r) => Op::Discard(ranges(&r)),
            Operation::WriteZeroes(r) => Op::WriteZeroes(ranges(&r)),
        };
        let tag = Tag {
            head,
            status: status_addr,
            written,
        };
        disk.submit(DiskRequest { tag, op }).map(Completion::from)
    }
}

fn ranges(r: &[request::ByteRange]) -> Vec<Range> {
    r.iter()
        .map(|r| Range {
            offset: r.offset,
            len: r.len,
        })
        .collect()
}

/// Writes the status byte and returns the chain to the used ring.
fn finish(mem: &Memory, queue: &mut Queue, d: Completion) -> Result<(), virtio_queue::Error> {
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
        // FLUSH and CONFIG_WCE always, as QEMU offers them (config-wce=on):
        // the guest learns from `wce` whether there is a cache to flush.
        let mut f =
            1 << VIRTIO_BLK_F_SEG_MAX | 1 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_CONFIG_WCE;
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

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `wce` is writable: the driver turns the write cache on or
        // off (QEMU takes it whatever was negotiated).
        let wce = CONFIG_WCE as u64;
        let Some(at) = wce.checked_sub(offset) else {
            return;
        };
        if let Some(&b) = usize::try_from(at).ok().and_then(|i| data.get(i)) {
            self.set_write_cache(b != 0);
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let queue = crate::device::single_ready_queue(ctx.queues)?;
        // A new driver never sees completions meant for the old one.
        self.disk.quiesce();
        self.done.clear();
        // QEMU's rule: a driver that cannot configure the cache gets one
        // exactly when it can flush it.
        if ctx.acked_features & 1 << VIRTIO_BLK_F_CONFIG_WCE == 0 {
            self.set_write_cache(ctx.acked_features & 1 << VIRTIO_BLK_F_FLUSH != 0);
        }
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
        self.disk.quiesce();
        self.done.clear();
        self.active = None;
        self.set_write_cache(self.original_wce);
    }

    fn process_queue(&mut self, queue: u16) {
        if queue != 0 {
            return;
        }
        self.pump();
    }

    fn host_fd(&self) -> Option<RawFd> {
        self.disk.host_fd()
    }

    fn process_host_fd(&mut self) {
        self.disk.reap(&mut self.done);
        self.pump();
    }
}
