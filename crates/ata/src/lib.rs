//! ATA storage for rvirt's PC machines: the ATA/ATAPI command core that
//! every controller shares ([`drive`], [`atapi`], [`identify`]) and the
//! controllers that carry it to the guest ([`ahci`]: ICH9 AHCI; [`ide`]:
//! PIIX3 IDE), on the block layer's disks (raw and qcow2, every cache mode
//! and engine).
//!
//! Pure state machines over guest memory (vm-memory) and the PCI crate's
//! configuration space: no KVM, no threads, no command line. The VMM's
//! device manager builds the controllers, puts them on PCI (and the IDE's
//! legacy ports on its I/O bus) and runs their `process` and `reap` on its
//! device thread.

pub mod ahci;
pub mod atapi;
pub mod drive;
pub mod ide;
pub mod identify;
pub mod sg;

/// Guest memory as the controllers see it.
pub type Memory = vm_memory::GuestMemoryMmap<()>;
