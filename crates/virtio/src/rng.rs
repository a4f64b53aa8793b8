//! virtio-rng (device type 4): fills the driver's buffers from a byte source.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::{DescriptorChain, Queue};
use vm_memory::Bytes;

use crate::chain::{self, Segment};
use crate::{queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// Largest queue the device offers.
pub const QUEUE_SIZE: u16 = 256;
/// Bytes handed out per request at most, so one greedy chain cannot keep the
/// event loop reading entropy for long.
pub const MAX_BYTES_PER_REQUEST: usize = 64 * 1024;

struct Active {
    mem: Memory,
    queue: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// The entropy device.
pub struct Rng {
    source: Box<dyn Read + Send>,
    active: Option<Active>,
    buf: Vec<u8>,
    /// The last read from the source failed. The driver retries at once
    /// when it gets nothing, so a source that stays broken (a file at its
    /// end, a closed EGD socket) would log a warning per request, without
    /// bound; only the first failure of a run is a warning.
    source_failing: bool,
}

impl Rng {
    /// An entropy device reading from `source`.
    pub fn new(source: Box<dyn Read + Send>) -> Self {
        Rng {
            source,
            active: None,
            buf: Vec::new(),
            source_failing: false,
        }
    }

    /// An entropy device reading from `path` (QEMU's `rng-random` backend).
    pub fn from_path(path: &std::path::Path) -> io::Result<Self> {
        Ok(Rng::new(Box::new(File::open(path)?)))
    }

    /// An entropy device reading from /dev/urandom.
    pub fn urandom() -> io::Result<Self> {
        Rng::from_path(std::path::Path::new("/dev/urandom"))
    }

    /// Fills the writable buffers of one chain; returns the bytes written.
    fn fill(
        source: &mut dyn Read,
        source_failing: &mut bool,
        buf: &mut Vec<u8>,
        mem: &Memory,
        chain: DescriptorChain<&Memory>,
    ) -> u32 {
        let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        if let Some(fault) = segs.fault {
            tracing::debug!(%fault, "virtio-rng: dropping a malformed chain");
            return 0;
        }
        let mut written = 0usize;
        for Segment { addr, len } in segs.writable {
            let want = (len as usize).min(MAX_BYTES_PER_REQUEST - written);
            if want == 0 {
                break;
            }
            buf.resize(want, 0);
            if let Err(error) = source.read_exact(buf) {
                if !std::mem::replace(source_failing, true) {
                    tracing::warn!(%error, "virtio-rng: entropy source failed");
                } else {
                    tracing::debug!(%error, "virtio-rng: entropy source still failing");
                }
                break;
            }
            if std::mem::replace(source_failing, false) {
                tracing::info!("virtio-rng: entropy source works again");
            }
            if mem.write_slice(buf, addr).is_err() {
                // Checked by `collect`, so only a racing memory change gets here.
                break;
            }
            written += want;
        }
        // At most MAX_BYTES_PER_REQUEST, so it fits.
        written as u32
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // virtio-rng has no configuration space.
        data.fill(0);
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
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if queue != 0 {
            return;
        }
        let source = &mut *self.source;
        let failing = &mut self.source_failing;
        let buf = &mut self.buf;
        let mem = &active.mem;
        queue_util::drain(&mut active.queue, mem, 0, &*active.interrupt, |chain| {
            Rng::fill(source, failing, buf, mem, chain)
        });
    }
}

#[cfg(test)]
mod tests;
