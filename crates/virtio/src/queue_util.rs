//! The loop every device runs over its available ring.

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};

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
    let notify = used && queue.needs_notification(mem).unwrap_or(true);
    if notify {
        interrupt.signal_used_queue(index);
    }
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(queue = index, %error, "broken virtqueue, device needs reset");
            interrupt.signal_needs_reset();
            false
        }
    }
}
