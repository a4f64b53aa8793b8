//! A transport's interrupt state, shared with the device without a lock.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use rvirt_pci::msix::Msix;
use rvirt_platform::{InterruptLine, MsiVectors};

use crate::ratelimit::warn_limited;
use crate::VirtioInterrupt;

/// The InterruptStatus / ISR bit for "the used ring changed".
pub const INT_VRING: u32 = 1;
/// The InterruptStatus / ISR bit for "the configuration changed".
pub const INT_CONFIG: u32 = 2;
/// The MSI-X vector value meaning "no vector" (virtio's VIRTIO_MSI_NO_VECTOR).
pub const NO_VECTOR: u16 = 0xffff;

/// How a transport's interrupts reach the guest.
#[derive(Clone)]
pub enum InterruptDelivery {
    /// One line; the driver reads InterruptStatus (ISR) to learn why.
    Line(Arc<dyn InterruptLine>),
    /// MSI-X: the vector the driver gave the queue, or the config vector.
    Msi(Arc<dyn MsiVectors>),
    /// virtio-pci: the function's MSI-X vectors while the driver has
    /// enabled MSI-X (the table's mask and pending bits apply), else its
    /// INTx pin, a level line the driver lowers by reading the ISR.
    Pci {
        msix: Arc<Msix>,
        intx: Arc<dyn InterruptLine>,
    },
}

/// InterruptStatus (ISR), DEVICE_NEEDS_RESET, ConfigGeneration and the
/// MSI-X vector assignments of one device, and the way out to the guest.
///
/// The device's event-loop thread sets bits here while a vCPU may be
/// reading or acknowledging them through the transport, so they are
/// atomics rather than fields behind the transport's lock.
pub struct TransportInterrupt {
    status: AtomicU32,
    needs_reset: AtomicBool,
    generation: AtomicU32,
    delivery: InterruptDelivery,
    config_vector: AtomicU16,
    queue_vectors: Vec<AtomicU16>,
}

impl TransportInterrupt {
    /// The interrupt state of a device with `queues` queues.
    pub fn new(delivery: InterruptDelivery, queues: usize) -> Self {
        TransportInterrupt {
            status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            delivery,
            config_vector: AtomicU16::new(NO_VECTOR),
            queue_vectors: (0..queues).map(|_| AtomicU16::new(NO_VECTOR)).collect(),
        }
    }

    /// The InterruptStatus register (the ISR's bits).
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

    /// The driver acknowledged `bits` (virtio-mmio InterruptACK; a PCI ISR
    /// read acknowledges everything). A level line goes low once nothing
    /// is pending.
    pub fn ack(&self, bits: u32) {
        let left = self.status.fetch_and(!bits, Ordering::AcqRel) & !bits;
        if left == 0 {
            let line = match &self.delivery {
                InterruptDelivery::Line(line) => Some(line),
                InterruptDelivery::Pci { intx, .. } => Some(intx),
                InterruptDelivery::Msi(_) => None,
            };
            if let Some(Err(error)) = line.map(|l| l.lower()) {
                warn_limited!(%error, "cannot lower a virtio interrupt line");
            }
        }
    }

    /// The MSI-X vector of configuration changes.
    pub fn config_vector(&self) -> u16 {
        self.config_vector.load(Ordering::Acquire)
    }

    /// Sets the MSI-X vector of configuration changes.
    pub fn set_config_vector(&self, vector: u16) {
        self.config_vector.store(vector, Ordering::Release);
    }

    /// The MSI-X vector of `queue` ([`NO_VECTOR`] for a queue that does
    /// not exist).
    pub fn queue_vector(&self, queue: u16) -> u16 {
        self.queue_vectors
            .get(usize::from(queue))
            .map_or(NO_VECTOR, |v| v.load(Ordering::Acquire))
    }

    /// Sets the MSI-X vector of `queue`; ignored for a queue that does not
    /// exist.
    pub fn set_queue_vector(&self, queue: u16, vector: u16) {
        if let Some(v) = self.queue_vectors.get(usize::from(queue)) {
            v.store(vector, Ordering::Release);
        }
    }

    /// Back to the power-on state (a device reset).
    pub(crate) fn clear(&self) {
        self.ack(u32::MAX);
        self.needs_reset.store(false, Ordering::Release);
        self.config_vector.store(NO_VECTOR, Ordering::Release);
        for v in &self.queue_vectors {
            v.store(NO_VECTOR, Ordering::Release);
        }
    }

    fn raise(&self, bit: u32, vector: u16) {
        self.status.fetch_or(bit, Ordering::AcqRel);
        let result = match &self.delivery {
            InterruptDelivery::Line(line) => line.raise(),
            // A driver that gave no vector gets no interrupt, as specified.
            InterruptDelivery::Msi(_) if vector == NO_VECTOR => Ok(()),
            InterruptDelivery::Msi(msi) => msi.raise(vector),
            InterruptDelivery::Pci { msix, intx } => {
                if !msix.enabled() {
                    intx.raise()
                } else if vector == NO_VECTOR {
                    Ok(())
                } else {
                    msix.trigger(vector)
                }
            }
        };
        if let Err(error) = result {
            // The guest will miss one interrupt; nothing better to do here.
            warn_limited!(%error, "cannot raise a virtio interrupt");
        }
    }
}

impl VirtioInterrupt for TransportInterrupt {
    fn signal_used_queue(&self, queue: u16) {
        self.raise(INT_VRING, self.queue_vector(queue));
    }

    fn signal_config_change(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.raise(INT_CONFIG, self.config_vector());
    }

    fn signal_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::Release);
        // The spec asks for a configuration change notification so the
        // driver reads Status and sees DEVICE_NEEDS_RESET.
        self.raise(INT_CONFIG, self.config_vector());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use rvirt_platform::{MsiMessage, TriggerMode};

    #[derive(Default)]
    struct Level(Mutex<Vec<bool>>);
    impl InterruptLine for Level {
        fn trigger_mode(&self) -> TriggerMode {
            TriggerMode::Level
        }
        fn raise(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
        fn lower(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
    }

    #[derive(Default)]
    struct Vectors(Mutex<Vec<u16>>);
    impl MsiVectors for Vectors {
        fn count(&self) -> u16 {
            4
        }
        fn route(&self, _: u16, _: Option<MsiMessage>) -> std::io::Result<()> {
            Ok(())
        }
        fn raise(&self, vector: u16) -> std::io::Result<()> {
            self.0.lock().unwrap().push(vector);
            Ok(())
        }
    }

    #[test]
    fn a_level_line_stays_up_until_everything_is_acknowledged() {
        let line = Arc::new(Level::default());
        let irq = TransportInterrupt::new(InterruptDelivery::Line(line.clone()), 1);
        irq.signal_used_queue(0);
        irq.signal_config_change();
        irq.ack(INT_VRING);
        assert_eq!(
            *line.0.lock().unwrap(),
            [true, true],
            "config still pending"
        );
        irq.ack(INT_CONFIG);
        assert_eq!(*line.0.lock().unwrap(), [true, true, false]);
        assert_eq!(irq.status(), 0);
    }

    #[test]
    fn msi_goes_to_the_vector_the_driver_chose() {
        let msi = Arc::new(Vectors::default());
        let irq = TransportInterrupt::new(InterruptDelivery::Msi(msi.clone()), 2);
        irq.signal_used_queue(1);
        irq.set_queue_vector(1, 3);
        irq.set_config_vector(0);
        irq.signal_used_queue(1);
        irq.signal_config_change();
        irq.set_queue_vector(7, 1);
        assert_eq!(irq.queue_vector(7), NO_VECTOR);
        assert_eq!(*msi.0.lock().unwrap(), [3, 0], "no vector, no interrupt");
        irq.clear();
        assert_eq!(irq.queue_vector(1), NO_VECTOR);
    }
}
