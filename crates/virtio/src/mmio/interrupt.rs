//! The transport's interrupt state, shared with the device without a lock.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};

use crate::{IrqTrigger, VirtioInterrupt};

/// InterruptStatus, DEVICE_NEEDS_RESET and ConfigGeneration of one
/// virtio-mmio device, plus its interrupt line.
///
/// The device's event-loop thread sets bits here while a vCPU may be reading
/// or acknowledging them through the transport, so they are atomics rather
/// than fields behind the transport's lock.
pub struct MmioInterrupt {
    status: AtomicU32,
    needs_reset: AtomicBool,
    generation: AtomicU32,
    irq: Arc<dyn IrqTrigger>,
}

impl MmioInterrupt {
    pub(crate) fn new(irq: Arc<dyn IrqTrigger>) -> Self {
        MmioInterrupt {
            status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            irq,
        }
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Acquire)
    }

    /// Whether the device asked for a reset.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::Acquire)
    }

    /// The ConfigGeneration register.
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::AcqRel);
    }

    pub(crate) fn clear(&self) {
        self.status.store(0, Ordering::Release);
        self.needs_reset.store(false, Ordering::Release);
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::AcqRel);
        if let Err(error) = self.irq.trigger() {
            // The guest will miss one interrupt; nothing better to do here.
            tracing::warn!(%error, "cannot raise virtio interrupt");
        }
    }
}

impl VirtioInterrupt for MmioInterrupt {
    fn signal_used_queue(&self, _queue: u16) {
        self.raise(VIRTIO_MMIO_INT_VRING);
    }

    fn signal_config_change(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }

    fn signal_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::Release);
        // The spec asks for a configuration change notification so the
        // driver reads Status and sees DEVICE_NEEDS_RESET.
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }
}
