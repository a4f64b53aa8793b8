//! What a device model sees of the machine besides the bus it sits on.
//!
//! - [`interrupt`]: the one interrupt abstraction: a line (edge, or level
//!   with resample) and a set of MSI vectors. The VMM implements them with
//!   KVM (irqfds, `KVM_IRQ_LINE`, GSI routing); devices see only the traits,
//!   so they build and test without KVM.
//! - [`control`]: what a device can ask of the machine as a whole (power
//!   off, reset, panic).
//! - [`acpi`]: how a device describes itself in the DSDT.
//!
//! Nothing here depends on KVM or on any device: the device crates depend
//! on this one, and the VMM implements it.

pub mod acpi;
pub mod control;
pub mod interrupt;

pub use control::{VmControl, VmRequest};
pub use interrupt::{InterruptLine, MsiMessage, MsiVectors, TriggerMode};
