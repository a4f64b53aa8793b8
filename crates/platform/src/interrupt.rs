//! The one interrupt abstraction of the device models.
//!
//! A device raises interrupts through an [`InterruptLine`] (an IOAPIC pin:
//! edge-triggered for ISA devices and virtio-mmio, level-triggered for the
//! ACPI SCI and PCI INTx) or through [`MsiVectors`] (MSI/MSI-X: each vector
//! is a message, an address/data pair the guest programs). The VMM
//! implements both with KVM: an edge is one irqfd write, a level line is
//! `KVM_IRQ_LINE` or an irqfd with a resample eventfd (KVM lowers the line
//! at EOI and the VMM raises it again while the device still holds it), and
//! an MSI vector is an irqfd on a GSI whose route (`KVM_SET_GSI_ROUTING`)
//! carries the message. None of that is visible here.

use std::io;

/// How an [`InterruptLine`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Each [`InterruptLine::raise`] delivers one interrupt; `lower` does
    /// nothing.
    Edge,
    /// The line stays asserted from `raise` until `lower`.
    Level,
}

/// One interrupt line of a device.
pub trait InterruptLine: Send + Sync {
    /// Edge or level.
    fn trigger_mode(&self) -> TriggerMode;
    /// Edge: delivers one interrupt. Level: asserts the line (again
    /// asserting an asserted line changes nothing).
    fn raise(&self) -> io::Result<()>;
    /// Level: deasserts the line. Edge: nothing.
    fn lower(&self) -> io::Result<()> {
        Ok(())
    }
    /// Level: sets the line to `high`. Edge: raises it when `high`.
    fn set_level(&self, high: bool) -> io::Result<()> {
        if high {
            self.raise()
        } else {
            self.lower()
        }
    }
}

/// An MSI message as the guest programs it (MSI capability or an MSI-X
/// table entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// The MSI or MSI-X vectors of one device.
///
/// The device (or its transport) keeps the table the guest writes, with
/// its mask and pending bits; this trait only delivers: `route` tells the
/// machine where a vector's message goes, `raise` sends it.
pub trait MsiVectors: Send + Sync {
    /// How many vectors the device has.
    fn count(&self) -> u16;
    /// Points `vector` at `message`, or disables it (`None`: masked or not
    /// yet programmed). Fails when the machine cannot route it, or for a
    /// vector past [`MsiVectors::count`].
    fn route(&self, vector: u16, message: Option<MsiMessage>) -> io::Result<()>;
    /// Sends `vector`'s message. A vector that is not routed drops it; the
    /// device latches its pending bit itself while the vector is masked.
    fn raise(&self, vector: u16) -> io::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Level(Mutex<Vec<bool>>);
    impl InterruptLine for Level {
        fn trigger_mode(&self) -> TriggerMode {
            TriggerMode::Level
        }
        fn raise(&self) -> io::Result<()> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
        fn lower(&self) -> io::Result<()> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
    }

    struct Edge(Mutex<u32>);
    impl InterruptLine for Edge {
        fn trigger_mode(&self) -> TriggerMode {
            TriggerMode::Edge
        }
        fn raise(&self) -> io::Result<()> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn set_level_maps_onto_raise_and_lower() {
        let l = Level(Mutex::new(Vec::new()));
        l.set_level(true).unwrap();
        l.set_level(false).unwrap();
        assert_eq!(*l.0.lock().unwrap(), [true, false]);
        let e = Edge(Mutex::new(0));
        e.set_level(true).unwrap();
        e.set_level(false).unwrap();
        assert_eq!(*e.0.lock().unwrap(), 1, "an edge line ignores lowering");
    }
}
