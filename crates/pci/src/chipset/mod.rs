//! The chipset functions of the two PC machines.
//!
//! - `pc` (i440FX + PIIX3, as QEMU presents it): [`i440fx::HostBridge`] at
//!   00:00.0 (8086:1237, with the PAM registers), [`piix::IsaBridge`] at
//!   00:01.0 (8086:7000, PIRQ routing), [`piix::PowerManagement`] at
//!   00:01.3 (8086:7113, PMBA over the ACPI PM block).
//! - `q35` (Q35 + ICH9): [`q35::HostBridge`] at 00:00.0 (8086:29c0, PAM and
//!   PCIEXBAR, which places the ECAM window) and [`ich9::Lpc`] at 00:1f.0
//!   (8086:2918, PIRQ routing, PMBASE over the ACPI PM block).
//!
//! What firmware does to them at boot (PAM shadowing, PCIEXBAR, PMBA, the
//! PIRQ routes) the VMM does itself for a direct kernel boot, through
//! [`Preset`]. The ELCR (ports 0x4d0/0x4d1) belongs to KVM's in-kernel
//! PIC.

pub mod i440fx;
pub mod ich9;
pub mod pam;
pub mod piix;
pub mod q35;

/// What the chipset's registers hold when the guest first runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Reset values: firmware will program them.
    Reset,
    /// As firmware leaves them (the ACPI PM block at 0x600 and enabled,
    /// ECAM at 0xb0000000), for a kernel booted directly: the VMM plays
    /// firmware.
    DirectBoot,
}

/// Where firmware (and rvirt for a direct kernel boot) puts the ACPI PM
/// block: PMBA/PMBASE.
pub const PM_BASE: u16 = 0x600;
/// Where firmware puts the ECAM window on q35, and its size (256 buses).
pub const ECAM_BASE: u64 = 0xb000_0000;
pub const ECAM_SIZE: u64 = 256 << 20;
/// QEMU's subsystem ID of its host bridges.
pub const QEMU_SUBSYSTEM: (u16, u16) = (0x1af4, 0x1100);
