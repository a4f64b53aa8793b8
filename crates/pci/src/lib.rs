//! PCI for rvirt's pc and q35 machines, as pure state machines: nothing
//! here touches KVM; interrupts leave through `rvirt_platform`'s traits and
//! BARs land on `rvirt_bus` buses.
//!
//! - [`config`]: one function's configuration space (type 0 and type 1
//!   headers with hardware's read-only, writable and write-1-to-clear
//!   bits, capabilities, BARs and where they decode).
//! - [`msix`], [`msi`], [`caps`]: MSI-X (table and PBA in a BAR, masking,
//!   pending bits), MSI, PCI Express and power management capabilities.
//! - [`function`]: the [`PciFunction`] trait and the adapters that put a
//!   function's BARs (and chipset windows) on the machine's buses.
//! - [`segment`]: the topology (root bus, bridges, the buses behind them)
//!   reached by bus number as programmed, which keeps the buses in step
//!   with every BAR move.
//! - [`rom`]: an expansion ROM image behind a function's ROM BAR.
//! - [`access`]: CF8/CFC and ECAM.
//! - [`bridge`]: `pcie-root-port`. [`pci_bridge`]: `pci-bridge` and
//!   `pcie-pci-bridge`. [`chipset`]: the i440FX/PIIX and
//!   Q35/ICH9 functions. [`intx`]: INTx pins and the PIRQ wires.
//! - [`acpi`]: the root bridge's DSDT node (`_CRS`, `_PRT`).
//! - [`pcihp`]: pc's ACPI PCI hot-plug (QEMU's PIIX4 registers at 0xae00
//!   and the DSDT's slot devices).

pub mod access;
pub mod acpi;
pub mod bar;
pub mod bridge;
pub mod caps;
pub mod chipset;
pub mod config;
pub mod function;
pub mod intx;
pub mod msi;
pub mod msix;
pub mod pci_bridge;
pub mod pcihp;
pub mod rom;
pub mod segment;

pub use bar::{AddressSpace, BarKind, BarMapping, BarSpec};
pub use config::{ConfigSpace, Ids};
pub use function::{PciFunction, SharedFunction};
pub use segment::{BarObserver, FunctionId, FunctionInfo, PciSegment, SegmentBuilder};

/// The PIRQ wire (0 = PIRQA) that pin `pin` (0 = INTA) of a device in
/// root-bus slot `slot` drives on `pc`: the i440FX/PIIX3 rotation QEMU
/// uses (slot 1, the PIIX3, on PIRQA).
pub fn pc_pirq(slot: u8, pin: u8) -> usize {
    usize::from((slot % 4 + pin % 4 + 3) % 4)
}

/// The same on `q35`: slots rotate over PIRQE-H, as QEMU's ICH9 does for
/// the slots below 24.
pub fn q35_pirq(slot: u8, pin: u8) -> usize {
    usize::from((slot % 4 + pin % 4) % 4 + 4)
}
