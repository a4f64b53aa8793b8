//! Virtio transports: how a driver reaches a [`VirtioDevice`].
//!
//! The driver-facing state machine is the same whatever the transport:
//! the Status handshake, the feature banks and negotiation, the queue
//! registers, activation, reset and DEVICE_NEEDS_RESET. It lives once, in
//! [`common::VirtioCore`]. A transport is a register decoder over it:
//! [`mmio::MmioTransport`] decodes the virtio-mmio register file; a
//! virtio-pci transport decodes the PCI capabilities' structures (common
//! configuration, notify, ISR, device configuration) onto the same core:
//! [`pci::PciTransport`].
//!
//! Interrupts leave through [`TransportInterrupt`]: one line for
//! everything with an InterruptStatus/ISR register the driver reads
//! (virtio-mmio: an edge; PCI INTx: a level line), or MSI-X vectors the
//! driver assigns per queue and for configuration changes.
//!
//! What the VMM wires for a transport, it learns from the transport
//! ([`VirtioTransport`]): where kicks land ([`NotifyRegion`], for
//! ioeventfds) and what kind of interrupt it raises ([`InterruptKind`]).

pub mod common;
mod interrupt;
pub mod mmio;
#[cfg(test)]
mod mmio_tests;
pub mod pci;

use std::sync::{Arc, Mutex};

use rvirt_bus::BusDevice;
use rvirt_platform::TriggerMode;

pub use interrupt::{InterruptDelivery, TransportInterrupt, NO_VECTOR};

use crate::VirtioDevice;

/// Where a queue's kicks land inside a transport's register window, so the
/// VMM can catch them with an ioeventfd and never return to the vCPU
/// thread: a write of `len` bytes at `offset` (from the window's base)
/// whose value is `datamatch` (any value if `None`) kicks `queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyRegion {
    pub offset: u64,
    pub len: u32,
    pub datamatch: Option<u64>,
    pub queue: u16,
}

/// The interrupt a transport raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptKind {
    /// One line for the device (virtio-mmio: edge; PCI INTx: level).
    Line(TriggerMode),
    /// MSI-X vectors, as many as given.
    Msi { vectors: u16 },
}

/// A virtio transport as the VMM places and wires it.
pub trait VirtioTransport: BusDevice {
    /// The device behind the transport, for the event loop.
    fn device(&self) -> Arc<Mutex<dyn VirtioDevice>>;
    /// Where each queue's kicks land, relative to the window's base.
    fn notify_regions(&self) -> Vec<NotifyRegion>;
    /// The interrupt the transport raises.
    fn interrupt_kind(&self) -> InterruptKind;
}
