//! virtio-console (device type 3): one port (no MULTIPORT), the guest's hvc0.
//!
//! Queue 0 (receiveq) carries host input into device-writable buffers, queue 1
//! (transmitq) carries guest output to a [`Write`]. Host input waits in a
//! bounded buffer until the guest posts receive buffers, so a guest that stops
//! reading pushes back on the chardev instead of growing memory.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

use crate::chain::{self, Segment};
use crate::ratelimit::warn_limited;
use crate::{queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// Largest queue the device offers.
pub const QUEUE_SIZE: u16 = 256;
/// Queue indexes.
pub const RX_QUEUE: u16 = 0;
pub const TX_QUEUE: u16 = 1;
/// Host input held while the guest posts no buffers; beyond it
/// [`Console::push_input`] accepts nothing (backpressure).
pub const MAX_PENDING_INPUT: usize = 64 * 1024;
/// Guest output written per transmit chain at most, so a huge chain cannot
/// pin the event loop.
pub const MAX_BYTES_PER_TX: usize = 64 * 1024;
/// `struct virtio_console_config`: cols, rows, max_nr_ports, emerg_wr.
pub const CONFIG_SIZE: usize = 12;

struct Active {
    mem: Memory,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// The console device.
pub struct Console {
    output: Box<dyn Write + Send>,
    pending: VecDeque<u8>,
    active: Option<Active>,
    buf: Vec<u8>,
}

impl Console {
    /// A console whose guest output goes to `output`.
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Console {
            output,
            pending: VecDeque::new(),
            active: None,
            buf: Vec::new(),
        }
    }

    /// Queues host input for the guest and delivers what fits into posted
    /// receive buffers. Returns how many bytes were accepted: fewer than
    /// `data.len()` when the pending buffer is full; the caller keeps the rest
    /// and retries after the guest posted buffers (a kick on the receiveq).
    pub fn push_input(&mut self, data: &[u8]) -> usize {
        let room = MAX_PENDING_INPUT.saturating_sub(self.pending.len());
        let n = room.min(data.len());
        self.pending.extend(&data[..n]);
        self.deliver_input();
        n
    }

    /// Bytes accepted but not yet in guest buffers.
    pub fn pending_input(&self) -> usize {
        self.pending.len()
    }

    /// True while [`Console::push_input`] would accept at least one byte; the
    /// VMM stops polling the chardev otherwise.
    pub fn wants_input(&self) -> bool {
        self.pending.len() < MAX_PENDING_INPUT
    }

    /// Moves pending input into receive buffers until one side runs out.
    fn deliver_input(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if !active.rx.ready() {
            return;
        }
        let mem = &active.mem;
        let mut used = false;
        let result = (|| -> Result<(), virtio_queue::Error> {
            // One re-check after re-enabling notifications; a ring whose
            // avail index moves but yields no chain must not spin.
            let mut rechecked = false;
            while !self.pending.is_empty() {
                // Pop only while there is data, so posted buffers are kept
                // for later input.
                let Some(chain) = active.rx.iter(mem)?.next() else {
                    // No buffer: ask for a kick when the guest posts one
                    // (with EVENT_IDX), re-checking for a race.
                    if active.rx.enable_notification(mem)? && !rechecked {
                        rechecked = true;
                        continue;
                    }
                    break;
                };
                rechecked = false;
                let head = chain.head_index();
                let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
                let mut written = 0u32;
                if let Some(fault) = segs.fault {
                    tracing::debug!(%fault, "virtio-console: dropping a malformed rx chain");
                } else {
                    for Segment { addr, len } in segs.writable {
                        let n = (len as usize).min(self.pending.len());
                        if n == 0 {
                            break;
                        }
                        self.buf.clear();
                        self.buf.extend(self.pending.iter().take(n));
                        if mem.write_slice(&self.buf, addr).is_err() {
                            break;
                        }
                        self.pending.drain(..n);
                        // n ≤ len, a u32; the sum is bounded by MAX_PENDING_INPUT.
                        written += n as u32;
                    }
                }
                active.rx.add_used(mem, head, written)?;
                used = true;
            }
            Ok(())
        })();
        if used && queue_util::wants_interrupt(&mut active.rx, mem) {
            active.interrupt.signal_used_queue(RX_QUEUE);
        }
        if let Err(error) = result {
            warn_limited!(%error, "virtio-console: broken receiveq, device needs reset");
            active.interrupt.signal_needs_reset();
        }
    }

    fn transmit(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let output = &mut *self.output;
        let buf = &mut self.buf;
        let mem = &active.mem;
        queue_util::drain(&mut active.tx, mem, TX_QUEUE, &*active.interrupt, |chain| {
            let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
            if let Some(fault) = segs.fault {
                tracing::debug!(%fault, "virtio-console: dropping a malformed tx chain");
                return 0;
            }
            let mut total = 0usize;
            for Segment { addr, len } in segs.readable {
                let n = (len as usize).min(MAX_BYTES_PER_TX - total);
                if n == 0 {
                    break;
                }
                buf.resize(n, 0);
                if mem.read_slice(buf, addr).is_err() {
                    break;
                }
                if let Err(error) = output.write_all(buf) {
                    // A closed chardev drops output; the guest must not stall.
                    tracing::debug!(%error, "virtio-console: output failed, dropping");
                    break;
                }
                total += n;
            }
            let _ = output.flush();
            // The device writes nothing into a transmit chain.
            0
        });
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        // No SIZE, MULTIPORT or EMERG_WRITE: one port, cols/rows unknown.
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // cols, rows, max_nr_ports and emerg_wr all read as 0.
        let _ = offset;
        data.fill(0);
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let [rx, tx] = crate::device::ready_queues(ctx.queues)?;
        self.active = Some(Active {
            mem: ctx.mem,
            rx,
            tx,
            interrupt: ctx.interrupt,
        });
        // Input typed before the driver came up goes out now.
        self.deliver_input();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn process_queue(&mut self, queue: u16) {
        match queue {
            RX_QUEUE => self.deliver_input(),
            TX_QUEUE => self.transmit(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
