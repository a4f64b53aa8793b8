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
    if !queue.ready() {
        return true;
    }
    let mut used = false;
    let result = (|| -> Result<(), virtio_queue::Error> {
        loop {
            queue.disable_notification(mem)?;
            // A fresh iterator per chain: `add_used` needs the queue back.
            while let Some(chain) = queue.iter(mem)?.next() {
                let head = chain.head_index();
                let len = handle(chain);
                queue.add_used(mem, head, len)?;
                used = true;
            }
            // With EVENT_IDX, re-check after re-enabling so a buffer added in
            // between is not left waiting for a kick that will not come.
            if !queue.enable_notification(mem)? {
                break;
            }
        }
        Ok(())
    })();
    let notify = used && wants_interrupt(queue, mem);
    if notify {
        interrupt.signal_used_queue(index);
    }
    match result {
        Ok(()) => true,
        Err(error) => {
            warn_limited!(queue = index, %error, "broken virtqueue, device needs reset");
            interrupt.signal_needs_reset();
            false
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
