//! Emulated PCI network cards that are not virtio: the NICs libvirt gives
//! guests without virtio drivers (virt-install's `generic` and older
//! operating systems, firmware's network boot).
//!
//! - [`e1000`]: Intel's 82540EM as QEMU's `e1000` presents it, and on
//!   the same core the 82574L as QEMU's `e1000e` ([`e1000::e82574`]).
//!
//! A card is a pure state machine: a [`rvirt_pci::PciFunction`] whose
//! registers the vCPUs reach through its BARs, with its descriptor rings in
//! guest memory (read and written through vm-memory, every address
//! checked) and its frames on an `rvirt_hostnet` back-end (a tap, a stream
//! socket, passt). Moving frames is left to whoever owns the thread: the
//! VMM's device event loop calls [`e1000::E1000::process`] when the card's
//! kick eventfd (a guest write to a tail register) or the back-end is
//! ready, so vCPU threads only ever run register accesses.
//!
//! Why a crate of its own rather than beside virtio-net: the two share
//! only the back-end ([`rvirt_hostnet::NetBackend`]); an Intel card has no
//! virtqueues, and `rvirt-virtio` stays the crate of the virtio devices.

pub mod e1000;

/// Guest memory as the cards see it.
pub type Memory = vm_memory::GuestMemoryMmap<()>;
