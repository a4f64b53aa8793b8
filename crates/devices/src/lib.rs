//! The machine's emulated devices.
//!
//! Each device is a state machine behind [`rvirt_bus::BusDevice`]: it sees the
//! offset of an access inside its own range and nothing of the vCPU loop, the
//! monitor or the command line, so it can be tested with no guest and no KVM.

pub mod acpi_pm;
pub mod i8042;
pub mod irq;
pub mod rtc;
pub mod serial;
pub mod sink;

pub use acpi_pm::AcpiPm;
pub use i8042::I8042;
pub use irq::EventFdTrigger;
pub use rtc::Cmos;
pub use serial::Serial;
pub use sink::{PortSink, PvPanic, ResetControl};
