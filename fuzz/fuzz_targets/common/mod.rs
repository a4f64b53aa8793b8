//! Shared by the virtio device targets: guest memory whose start is the fuzz
//! input, and queues whose rings sit inside it, so the input is at once the
//! descriptor tables, the rings and the buffers they point at.
#![allow(dead_code)]

use rvirt_virtio::virtio_queue::{Queue, QueueT};
use rvirt_virtio::vm_memory::{Bytes, GuestAddress};
use rvirt_virtio::{Memory, VirtioInterrupt};

/// Guest RAM: 64 KiB at 0. Buffers may point anywhere in it (or outside).
pub const MEM_SIZE: usize = 0x1_0000;
/// Each queue's rings take one such slot from 0 on, the queue under test
/// first so a short input reaches it: descriptor table at +0 (16 entries),
/// avail ring at +0x100 (its index at +0x102), used ring at +0x140.
/// `fuzz/seeds/gen.py` writes seeds with this layout.
pub const QUEUE_SLOT: u64 = 0x200;
pub const AVAIL: u64 = 0x100;
pub const USED: u64 = 0x140;
pub const MAX_QUEUE_SIZE: u16 = 16;

/// Guest memory holding `image` from address 0 (the rest is zero).
pub fn memory(image: &[u8]) -> Memory {
    let mem = Memory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();
    mem
}

/// A ready queue in slot `slot`; `bits` picks its size (2..=16) and EVENT_IDX.
pub fn queue(slot: u64, bits: u8) -> Queue {
    let base = slot * QUEUE_SLOT;
    let size = MAX_QUEUE_SIZE >> (bits & 3);
    let mut q = Queue::new(MAX_QUEUE_SIZE).unwrap();
    q.set_size(size);
    q.try_set_desc_table_address(GuestAddress(base)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(base + AVAIL))
        .unwrap();
    q.try_set_used_ring_address(GuestAddress(base + USED))
        .unwrap();
    q.set_event_idx(bits & 4 != 0);
    q.set_ready(true);
    q
}

/// VIRTIO_F_VERSION_1, which every modern driver acks.
pub const VERSION_1: u64 = 1 << 32;

pub struct NoIrq;

impl VirtioInterrupt for NoIrq {
    fn signal_used_queue(&self, _: u16) {}
    fn signal_config_change(&self) {}
    fn signal_needs_reset(&self) {}
}

/// Splits `n` bytes off the front of `data` (fewer if it is shorter).
pub fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}
