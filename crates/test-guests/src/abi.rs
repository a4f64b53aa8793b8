// Values shared by the guests (passed to gcc as -D macros by build.rs) and
// the Rust side. This file is `include!`d by both build.rs and lib.rs.

/// The I/O port the `exits` guest writes to. Nothing decodes it on QEMU's
/// `pc` or `microvm` machines (`info mtree -f` shows 0xe0-0xef unassigned on
/// both), and a plain PC VMM has no reason to map it either.
pub const EXIT_PORT: u16 = 0xe0;
/// How many `outb` the `exits` guest performs.
pub const EXIT_COUNT: u32 = 100_000;
/// Where the `smp` guest copies its real-mode AP start-up code (SIPI vector 0x08).
pub const TRAMPOLINE_ADDR: u32 = 0x8000;
