//! The watchdog (`-device i6300esb`) and what the VM does when it runs out
//! (`-watchdog-action`, `-action watchdog=`), and the parallel ports
//! (`-parallel`, `-device isa-parallel`).

use crate::chardev::ChardevBackend;
use crate::config::PciAddr;

/// What the VMM does when a watchdog runs out: QAPI's `WatchdogAction`,
/// the one type the command line and the monitor share, as in QEMU.
pub use rvirt_qmp::WatchdogAction;

/// `-device i6300esb,id=,bus=,addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub id: Option<String>,
    pub addr: PciAddr,
}

/// A parallel port (`-parallel`, `-device isa-parallel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParallelConfig {
    /// The device id (`parallel0`).
    pub id: String,
    /// The chardev id (generated for the `-parallel` shorthand).
    pub chardev: String,
    pub backend: ChardevBackend,
    /// LPT1..LPT3 (`index=`; QEMU's ports 0x378, 0x278, 0x3bc).
    pub index: u32,
    /// The first of its eight ports.
    pub iobase: u16,
    /// Its ISA IRQ (7 on every index, as QEMU).
    pub irq: u32,
}

/// QEMU's `isa-parallel` ports by index.
pub const PARALLEL_PORTS: [u16; 3] = [0x378, 0x278, 0x3bc];
/// QEMU's `isa-parallel` IRQ, whatever the index.
pub const PARALLEL_IRQ: u32 = 7;
