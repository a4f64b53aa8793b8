//! The x86_64 KVM machine: guest memory, vCPUs and their run loop, boot
//! loaders, ACPI and MP tables.
//!
//! Boot path, in order (see [`Machine::new`], [`Machine::load`],
//! [`Machine::start`]): open /dev/kvm and create the VM with the in-kernel
//! irqchip and PIT; map guest RAM around the 32-bit hole; create the vCPUs
//! with CPUID for the requested topology; write the ACPI and MP tables; load
//! the kernel, initrd and command line and the boot protocol's structures;
//! set the boot vCPU's registers; start one thread per vCPU. The run loop is
//! in [`vcpu`].
//!
//! Firmware boot ([`firmware`]) replaces the middle: the BIOS image is
//! mapped below 4 GiB and into the legacy area, the vCPUs stay at the reset
//! vector, and the ACPI tables and memory map are handed over unplaced
//! ([`Machine::firmware_tables`]) for the VMM to serve through fw_cfg.

pub mod acpi;
pub mod allocator;
pub mod boot;
pub mod cpuid;
pub mod firmware;
pub mod layout;
pub mod mptable;
pub mod regs;
pub mod slot;
pub mod smbios;
pub mod topology;
pub mod vcpu;
mod vm;

pub use allocator::{AllocError, Range, SystemAllocator};
pub use boot::{BootConfig, EntryPoint, Protocol};
pub use cpuid::{CpuModel, CpuSpec};
pub use firmware::{BiosArea, Firmware, FirmwareConfig, FirmwareError, LegacyArea, SegmentMode};
pub use layout::Board;
pub use slot::{DeviceMemory, MemorySlot, SlotError};
pub use topology::Topology;
pub use vcpu::{ThreadIds, VcpuEvents, Vcpus};
pub use vm::{ConfigPart, FirmwareTables, Machine, MachineConfig, MachineError};
