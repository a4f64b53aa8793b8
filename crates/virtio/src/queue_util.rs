//! The loop every device runs over its available ring.

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::ratelimit::warn_limited;
use crate::{Memory, VirtioInterrupt};

/// Pops every available chain of `queue`, hands it to `handle` (which returns
/// the number of bytes it wrote into the chain) and returns it to the used
/// ring, then interrupts the driver if EVENT_IDX says it wants one.
///
/// A queue whose rings are broken (avail index running ahead of the queue
/// size, a head index out of range, rings outside memory) makes the device
/// signal DEVICE_NEEDS_RESET and stop; the function returns false then.
pub fn drain<F>(
    queue: &mut Queue,
    mem: &Memory,
    index: u16,
    interrupt: &dyn VirtioInterrupt,
    mut handle: F,
) -> bool
where
    F: FnMut(DescriptorChain<&Memory>) -> u32,
{
    drain_until(queue, mem, index, interrupt, |chain| Some(handle(chain))) != Drained::Broken
}

/// How [`drain_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every available chain was handled.
    All,
    /// The handler stopped; its chain is still available.
    Stopped,
    /// The rings are broken; the device signalled DEVICE_NEEDS_RESET.
    Broken,
}

/// [`drain`] whose handler may stop at a chain it cannot take now (a
/// back-end that is full): returning `None` leaves that chain available,
/// to be handled first next time, and ends the drain.
pub fn drain_until<F>(
    queue: &mut Queue,
    mem: &Memory,
    index: u16,
    interrupt: &dyn VirtioInterrupt,
    mut handle: F,
) -> Drained
where
    F: FnMut(DescriptorChain<&Memory>) -> Option<u32>,
{
    if !queue.ready() {
        return Drained::All;
    }
    let mut used = false;
    let result = (|| -> Result<Drained, virtio_queue::Error> {
        loop {
            queue.disable_notification(mem)?;
            loop {
                let pos = queue.next_avail();
                // A fresh iterator per chain: `add_used` needs the queue back.
                let Some(chain) = queue.iter(mem)?.next() else {
                    break;
                };
                let head = chain.head_index();
                match handle(chain) {
                    Some(len) => {
                        queue.add_used(mem, head, len)?;
                        used = true;
                    }
                    None => {
                        queue.set_next_avail(pos);
                        return Ok(Drained::Stopped);
                    }
                }
            }
            // With EVENT_IDX, re-check after re-enabling so a buffer added in
            // between is not left waiting for a kick that will not come.
            if !queue.enable_notification(mem)? {
                break;
            }
        }
        Ok(Drained::All)
    })();
    let notify = used && wants_interrupt(queue, mem);
    if notify {
        interrupt.signal_used_queue(index);
    }
    match result {
        Ok(d) => d,
        Err(error) => {
            warn_limited!(queue = index, %error, "broken virtqueue, device needs reset");
            interrupt.signal_needs_reset();
            Drained::Broken
        }
    }
}

/// VRING_AVAIL_F_NO_INTERRUPT: the driver polls and asks for no interrupts.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Whether the driver wants an interrupt for what was just added to the
/// used ring of `queue`: EVENT_IDX's `used_event` when negotiated, else the
/// avail ring's NO_INTERRUPT flag, which virtio-queue does not read (a
/// polling driver, such as a DPDK one, would otherwise take an interrupt
/// per batch it never asked for). Errs towards interrupting: a lost
/// interrupt hangs a driver, a spurious one costs it a check.
pub fn wants_interrupt(queue: &mut Queue, mem: &Memory) -> bool {
    let by_event_idx = queue.needs_notification(mem).unwrap_or(true);
    if queue.event_idx_enabled() {
        return by_event_idx;
    }
    match mem.read_obj::<u16>(GuestAddress(queue.avail_ring())) {
        Ok(flags) => u16::from_le(flags) & AVAIL_F_NO_INTERRUPT == 0,
        Err(_) => true,
    }
}
