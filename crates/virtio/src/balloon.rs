//! virtio-balloon (device type 5): inflate/deflate and memory statistics.
//!
//! The host sets a target with [`Balloon::set_target_pages`]; the driver
//! inflates (gives 4 KiB pages back, which the device frees with
//! `madvise(MADV_DONTNEED)` on the host mapping of guest RAM) or deflates
//! (takes pages back, which needs nothing: touching a freed page faults in a
//! zero page) and reports the balloon's size in `actual`.
//!
//! Statistics follow the statsq protocol: the driver posts one buffer of
//! (tag, value) pairs and the device keeps it; to ask for fresh numbers the
//! device returns the buffer ([`Balloon::request_stats`]), the driver refills
//! it and posts it again.

use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_BALLOON;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryBackend};

use crate::chain::{self, Segment};
use crate::ratelimit::warn_limited;
use crate::{queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// Largest queue the device offers.
pub const QUEUE_SIZE: u16 = 256;
pub const INFLATE_QUEUE: u16 = 0;
pub const DEFLATE_QUEUE: u16 = 1;
pub const STATS_QUEUE: u16 = 2;
/// The balloon's unit, whatever the host page size (VIRTIO_BALLOON_PFN_SHIFT).
pub const PAGE_SIZE: u64 = 4096;
const PFN_SHIFT: u32 = 12;
/// PFNs taken from one chain at most; Linux sends 256 per request, so this
/// only stops a hostile chain from keeping the event loop busy.
pub const MAX_PFNS_PER_CHAIN: usize = 4096;
/// Statistics kept from one stats buffer at most (Linux sends about 10).
pub const MAX_STATS: usize = 64;
/// `num_pages` and `actual`.
pub const CONFIG_SIZE: usize = 8;

/// VIRTIO_BALLOON_F_STATS_VQ.
pub const F_STATS_VQ: u64 = 1 << 1;
/// VIRTIO_BALLOON_F_DEFLATE_ON_OOM.
pub const F_DEFLATE_ON_OOM: u64 = 1 << 2;

/// Statistic tags (VIRTIO_BALLOON_S_*).
pub mod stat {
    pub const SWAP_IN: u16 = 0;
    pub const SWAP_OUT: u16 = 1;
    pub const MAJFLT: u16 = 2;
    pub const MINFLT: u16 = 3;
    pub const MEMFREE: u16 = 4;
    pub const MEMTOT: u16 = 5;
    pub const AVAIL: u16 = 6;
    pub const CACHES: u16 = 7;
    pub const HTLB_PGALLOC: u16 = 8;
    pub const HTLB_PGFAIL: u16 = 9;
}

/// `struct virtio_balloon_stat`: packed, little-endian.
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
struct RawStat {
    tag: u16,
    val: u64,
}

// SAFETY: plain integers, packed, so every byte pattern is a valid value and
// there is no padding.
unsafe impl ByteValued for RawStat {}

/// Which optional features the device offers.
#[derive(Debug, Clone, Copy)]
pub struct BalloonOptions {
    /// Offer the statistics queue.
    pub stats: bool,
    /// Let the guest deflate on its own when it runs out of memory.
    pub deflate_on_oom: bool,
}

impl Default for BalloonOptions {
    fn default() -> Self {
        BalloonOptions {
            stats: true,
            deflate_on_oom: true,
        }
    }
}

struct Active {
    mem: Memory,
    queues: Vec<Queue>,
    interrupt: Arc<dyn VirtioInterrupt>,
    stats_negotiated: bool,
    /// Head of the stats buffer the device holds until it wants new numbers.
    stats_head: Option<u16>,
}

/// The balloon device.
pub struct Balloon {
    options: BalloonOptions,
    target_pages: u32,
    actual_pages: u32,
    /// Pages freed by inflate minus pages returned by deflate, as seen by
    /// the device (the driver's own count is `actual`).
    inflated_pages: u64,
    stats: Vec<(u16, u64)>,
    stats_updates: u64,
    active: Option<Active>,
}

impl Balloon {
    pub fn new(options: BalloonOptions) -> Self {
        Balloon {
            options,
            target_pages: 0,
            actual_pages: 0,
            inflated_pages: 0,
            stats: Vec::new(),
            stats_updates: 0,
            active: None,
        }
    }

    /// Asks the guest to hold `pages` 4 KiB pages in the balloon (QMP
    /// `balloon` converts from bytes); raises a config-change interrupt.
    pub fn set_target_pages(&mut self, pages: u32) {
        self.target_pages = pages;
        if let Some(active) = &self.active {
            active.interrupt.signal_config_change();
        }
    }

    pub fn target_pages(&self) -> u32 {
        self.target_pages
    }

    /// The balloon size the driver reports (config `actual`).
    pub fn actual_pages(&self) -> u32 {
        self.actual_pages
    }

    /// Net pages the device freed through inflate requests.
    pub fn inflated_pages(&self) -> u64 {
        self.inflated_pages
    }

    /// The last statistics the driver sent, as (tag, value) pairs.
    pub fn stats(&self) -> &[(u16, u64)] {
        &self.stats
    }

    /// How many stats buffers have been read; a caller that asked for new
    /// numbers waits until this changes.
    pub fn stats_updates(&self) -> u64 {
        self.stats_updates
    }

    /// Returns the held stats buffer so the driver sends fresh numbers.
    /// False when there is none (no stats queue, or a request is already out).
    pub fn request_stats(&mut self) -> bool {
        let Some(active) = self.active.as_mut() else {
            return false;
        };
        let Some(head) = active.stats_head.take() else {
            return false;
        };
        let q = &mut active.queues[usize::from(STATS_QUEUE)];
        match q.add_used(&active.mem, head, 0) {
            Ok(()) => {
                if queue_util::wants_interrupt(q, &active.mem) {
                    active.interrupt.signal_used_queue(STATS_QUEUE);
                }
                true
            }
            Err(error) => {
                warn_limited!(%error, "virtio-balloon: broken statsq, device needs reset");
                active.interrupt.signal_needs_reset();
                false
            }
        }
    }

    /// Reads the PFNs of one inflate/deflate chain; returns how many.
    fn pfns(mem: &Memory, segs: &[Segment], mut each: impl FnMut(u32)) -> usize {
        let mut n = 0;
        for seg in segs {
            for i in 0..u64::from(seg.len / 4) {
                if n == MAX_PFNS_PER_CHAIN {
                    return n;
                }
                let Ok(pfn) = mem.read_obj::<u32>(GuestAddress(seg.addr.0 + i * 4)) else {
                    return n;
                };
                each(u32::from_le(pfn));
                n += 1;
            }
        }
        n
    }

    fn process_pages(&mut self, queue: u16) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let inflated = &mut self.inflated_pages;
        let q = &mut active.queues[usize::from(queue)];
        queue_util::drain(q, mem, queue, &*active.interrupt, |chain| {
            let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
            if let Some(fault) = segs.fault {
                tracing::debug!(%fault, "virtio-balloon: dropping a malformed chain");
                return 0;
            }
            Balloon::pfns(mem, &segs.readable, |pfn| {
                let addr = GuestAddress(u64::from(pfn) << PFN_SHIFT);
                if queue == INFLATE_QUEUE {
                    if discard_page(mem, addr) {
                        *inflated += 1;
                    }
                } else if mem.check_range(addr, PAGE_SIZE as usize) {
                    // Deflate: the page faults back in on first touch.
                    *inflated = inflated.saturating_sub(1);
                }
            });
            0
        });
    }

    fn process_stats(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if !active.stats_negotiated {
            return;
        }
        let mem = &active.mem;
        let q = &mut active.queues[usize::from(STATS_QUEUE)];
        if !q.ready() {
            return;
        }
        let mut returned = false;
        let result = (|| -> Result<(), virtio_queue::Error> {
            // With EVENT_IDX the driver kicks only past avail_event, which
            // enable_notification publishes; without it the next refill
            // would never be noticed.
            loop {
                while let Some(chain) = q.iter(mem)?.next() {
                    let head = chain.head_index();
                    // A driver posting a second buffer while one is held is out
                    // of protocol; give the older one back so none leaks.
                    if let Some(old) = active.stats_head.replace(head) {
                        q.add_used(mem, old, 0)?;
                        returned = true;
                    }
                    let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
                    if let Some(fault) = segs.fault {
                        tracing::debug!(%fault, "virtio-balloon: malformed stats chain");
                        continue;
                    }
                    self.stats.clear();
                    let size = std::mem::size_of::<RawStat>() as u64;
                    'segs: for seg in &segs.readable {
                        for i in 0..u64::from(seg.len) / size {
                            if self.stats.len() == MAX_STATS {
                                break 'segs;
                            }
                            let Ok(raw) =
                                mem.read_obj::<RawStat>(GuestAddress(seg.addr.0 + i * size))
                            else {
                                break 'segs;
                            };
                            let (tag, val) = (raw.tag, raw.val);
                            self.stats.push((u16::from_le(tag), u64::from_le(val)));
                        }
                    }
                    self.stats_updates += 1;
                }
                if !q.enable_notification(mem)? {
                    break;
                }
            }
            Ok(())
        })();
        if returned && queue_util::wants_interrupt(q, mem) {
            active.interrupt.signal_used_queue(STATS_QUEUE);
        }
        if let Err(error) = result {
            warn_limited!(%error, "virtio-balloon: broken statsq, device needs reset");
            active.interrupt.signal_needs_reset();
        }
    }

    fn config(&self) -> [u8; CONFIG_SIZE] {
        let mut c = [0u8; CONFIG_SIZE];
        c[..4].copy_from_slice(&self.target_pages.to_le_bytes());
        c[4..].copy_from_slice(&self.actual_pages.to_le_bytes());
        c
    }
}

/// Frees the host memory behind one guest page; false when the page is not
/// entirely inside one guest RAM region or the host refuses.
fn discard_page(mem: &Memory, addr: GuestAddress) -> bool {
    // `get_slice` fails unless the whole page lies in one region, so the
    // range given to madvise is guest RAM and nothing else.
    let Ok(slice) = mem.get_slice(addr, PAGE_SIZE as usize) else {
        tracing::debug!(
            addr = addr.0,
            "virtio-balloon: inflate of a page outside guest RAM"
        );
        return false;
    };
    let guard = slice.ptr_guard_mut();
    let ptr = guard.as_ptr();
    if !(ptr as usize).is_multiple_of(PAGE_SIZE as usize) {
        // A region mapped at an odd host offset: madvise would round down
        // into the neighbouring page.
        return false;
    }
    // SAFETY: [ptr, ptr + 4096) is a page-aligned part of a guest RAM mapping
    // owned by `mem` (checked above). MADV_DONTNEED only drops its contents,
    // which the guest gave up; the mapping stays valid and reads as zeroes.
    let rc = unsafe { libc::madvise(ptr.cast(), PAGE_SIZE as usize, libc::MADV_DONTNEED) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "virtio-balloon: madvise failed");
        return false;
    }
    true
}

impl VirtioDevice for Balloon {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BALLOON
    }

    fn queue_max_sizes(&self) -> &[u16] {
        if self.options.stats {
            &[QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE]
        } else {
            &[QUEUE_SIZE, QUEUE_SIZE]
        }
    }

    fn device_features(&self) -> u64 {
        let mut f = 0;
        if self.options.stats {
            f |= F_STATS_VQ;
        }
        if self.options.deflate_on_oom {
            f |= F_DEFLATE_ON_OOM;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let c = self.config();
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start < CONFIG_SIZE {
            let n = data.len().min(CONFIG_SIZE - start);
            data[..n].copy_from_slice(&c[start..start + n]);
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `actual` (bytes 4..8) is writable by the driver.
        let mut c = self.config();
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        for (i, &b) in data.iter().enumerate() {
            let Some(pos) = start.checked_add(i) else {
                break;
            };
            if (4..8).contains(&pos) {
                c[pos] = b;
            }
        }
        self.actual_pages = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let expected = self.queue_max_sizes().len();
        if ctx.queues.len() != expected {
            return Err(ActivateError::QueueCount {
                expected,
                got: ctx.queues.len(),
            });
        }
        let stats_negotiated = self.options.stats && ctx.acked_features & F_STATS_VQ != 0;
        let needed = if stats_negotiated { 3 } else { 2 };
        if let Some(i) = (0..needed).find(|&i| !ctx.queues[i].ready()) {
            return Err(ActivateError::QueueNotReady(i));
        }
        self.active = Some(Active {
            mem: ctx.mem,
            queues: ctx.queues,
            interrupt: ctx.interrupt,
            stats_negotiated,
            stats_head: None,
        });
        Ok(())
    }

    fn reset(&mut self) {
        // The guest got all its pages back; what it had freed is zero pages.
        self.active = None;
        self.actual_pages = 0;
        self.inflated_pages = 0;
    }

    fn process_queue(&mut self, queue: u16) {
        match queue {
            INFLATE_QUEUE | DEFLATE_QUEUE => self.process_pages(queue),
            STATS_QUEUE => self.process_stats(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
