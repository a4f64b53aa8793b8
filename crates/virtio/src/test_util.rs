//! Shared helpers for unit tests: guest memory, mock queues, interrupts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::GuestAddress;

use rvirt_platform::{InterruptLine, TriggerMode};

use crate::{features, ActivateContext, Memory, VirtioDevice, VirtioInterrupt};

/// Guest RAM used by every test: 16 MiB at 0.
pub const MEM_SIZE: u64 = 0x100_0000;
/// Where test buffers live (the mock rings sit at 0).
pub const DATA: u64 = 0x10_0000;

pub const NEXT: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
pub const WRITE: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;

pub fn memory() -> Memory {
    Memory::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

/// An irqfd stand-in that counts triggers.
#[derive(Default)]
pub struct CountingIrq(pub AtomicUsize);

impl InterruptLine for CountingIrq {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Edge
    }
    fn raise(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Records what a device signalled.
#[derive(Default)]
pub struct RecordingInterrupt {
    pub used: Mutex<Vec<u16>>,
    pub config: AtomicUsize,
    pub needs_reset: AtomicBool,
}

impl VirtioInterrupt for RecordingInterrupt {
    fn signal_used_queue(&self, queue: u16) {
        self.used.lock().unwrap().push(queue);
    }
    fn signal_config_change(&self) {
        self.config.fetch_add(1, Ordering::SeqCst);
    }
    fn signal_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
    }
}

/// A raw descriptor; `next` is filled in by the mock for plain chains.
pub fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

/// Activates `device` on one mock queue per queue it declares.
pub fn activate(
    device: &mut dyn VirtioDevice,
    mem: &Memory,
    mocks: &[&MockSplitQueue<'_, Memory>],
    extra_features: u64,
) -> Arc<RecordingInterrupt> {
    let interrupt = Arc::new(RecordingInterrupt::default());
    let queues: Vec<Queue> = mocks.iter().map(|m| m.create_queue().unwrap()).collect();
    let ctx = ActivateContext {
        mem: mem.clone(),
        queues,
        interrupt: interrupt.clone(),
        acked_features: features::VERSION_1 | extra_features,
    };
    device.activate(ctx).unwrap();
    interrupt
}

/// Adds one chain whose descriptors are linked in order (flags other than
/// NEXT kept), starting at descriptor `first`.
pub fn add_chain(mock: &MockSplitQueue<'_, Memory>, first: u16, descs: &[(u64, u32, u16)]) {
    let raw: Vec<RawDescriptor> = descs
        .iter()
        .enumerate()
        .map(|(i, &(addr, len, flags))| {
            let last = i + 1 == descs.len();
            let flags = if last { flags & !NEXT } else { flags | NEXT };
            desc(addr, len, flags, first + i as u16 + 1)
        })
        .collect();
    mock.add_desc_chains(&raw, first).unwrap();
}

/// (id, len) of used-ring entry `i`.
pub fn used(mock: &MockSplitQueue<'_, Memory>, i: u16) -> (u32, u32) {
    let elem = mock.used().ring().ref_at(i as usize).unwrap().load();
    (elem.id(), elem.len())
}

/// The used ring's index.
pub fn used_idx(mock: &MockSplitQueue<'_, Memory>) -> u16 {
    mock.used().idx().load()
}
