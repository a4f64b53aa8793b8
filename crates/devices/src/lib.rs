//! The machine's emulated devices.
//!
//! Each device is a state machine behind [`rvirt_bus::BusDevice`]: it sees the
//! offset of an access inside its own range and nothing of the vCPU loop, the
//! monitor or the command line, so it can be tested with no guest and no KVM.
//! Interrupts leave through `rvirt_platform`'s lines, and each device that
//! has a place in the DSDT says so (`acpi_device`).

pub mod acpi_pm;
pub mod debugcon;
pub mod fw_cfg;
pub mod i6300esb;
pub mod i8042;
pub mod irq;
pub mod parallel;
pub mod post;
pub mod ps2;
pub mod pvpanic;
pub mod reset_control;
pub mod rtc;
pub mod serial;

pub use acpi_pm::AcpiPm;
pub use debugcon::DebugCon;
pub use fw_cfg::{FwCfg, FwCfgBuilder};
pub use i6300esb::I6300Esb;
pub use i8042::I8042;
pub use irq::LineTrigger;
pub use parallel::Parallel;
pub use post::PostPort;
pub use pvpanic::PvPanic;
pub use reset_control::ResetControl;
pub use rtc::Cmos;
pub use serial::Serial;
