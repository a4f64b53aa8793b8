//! Virtio devices as pure state machines, over one transport core.
//!
//! Nothing here touches KVM or spawns threads: a transport
//! ([`transport::mmio::MmioTransport`]) is a [`rvirt_bus::BusDevice`]
//! decoding its registers onto the shared [`transport::common::VirtioCore`];
//! devices see guest memory only through vm-memory's checked accessors,
//! interrupts leave through `rvirt_platform`'s interrupt traits (an irqfd
//! in the VMM) and queue work is done when the VMM's event loop calls
//! [`VirtioDevice::process_queue`] (after the queue's ioeventfd fired). See
//! README.md for the wiring.
//!
//! Lock order: the bus lock of a transport is taken before the device's
//! own mutex; the event-loop thread takes only the device mutex. Interrupt
//! state is atomics shared through [`TransportInterrupt`], so a device
//! never needs the transport's lock.

pub mod balloon;
pub mod blk;
mod chain;
pub mod console;
mod device;
pub mod input;
pub mod net;
mod queue_util;
mod ratelimit;
pub mod rng;
pub mod scsi;
#[cfg(test)]
mod test_util;

pub mod transport;

pub use device::{ActivateContext, ActivateError, VirtioDevice, VirtioInterrupt};
pub use transport::common::QueueNotifier;
pub use transport::mmio::{self, MmioTransport};
pub use transport::{InterruptKind, NotifyRegion, TransportInterrupt, VirtioTransport};

// Re-exported so the VMM and the fuzz targets build queues and memory with
// exactly the versions the devices use.
pub use {virtio_queue, vm_memory};

/// The guest memory every device works on.
pub type Memory = vm_memory::GuestMemoryMmap<()>;

/// Feature bits the transport offers for every device (modern virtio only).
pub mod features {
    use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
    use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

    /// VIRTIO_F_VERSION_1: the driver must accept it; legacy drivers are refused.
    pub const VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
    /// Used/avail event suppression, handled by `virtio_queue::Queue`.
    pub const EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
    /// Indirect descriptor tables, walked (with bounds checks) by virtio-queue.
    pub const INDIRECT_DESC: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
    /// Everything the transport adds to a device's own features.
    pub const TRANSPORT: u64 = VERSION_1 | EVENT_IDX | INDIRECT_DESC;
}
