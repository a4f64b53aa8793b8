//! USB for rvirt: QEMU 7.2's `qemu-xhci` host controller ([`xhci`]) and
//! the HID devices libvirt gives guests ([`hid`]: `usb-tablet`, `usb-kbd`,
//! `usb-mouse`), behind the small device interface of [`device`].
//!
//! Pure state machines, as the rest of rvirt's devices: no KVM, no
//! threads. The controller is a [`rvirt_pci::PciFunction`]; its rings and
//! contexts live in guest memory, read and written through vm-memory with
//! every address checked, so a guest that points them anywhere gets an
//! error completion, never a host crash or an endless loop.
//!
//! Why by hand: no maintained Rust crate emulates an xHCI controller or
//! USB HID devices (the USB crates on crates.io are host-side drivers).

pub mod device;
pub mod hid;
pub mod xhci;

/// Guest memory as the controller sees it.
pub type Memory = vm_memory::GuestMemoryMmap<()>;
