//! Where everything lives in the guest's physical address space.
//!
//! ```text
//! 0x0000_0000  real-mode IVT and BDA (RAM)
//! 0x0000_0500  GDT, then an empty IDT
//! 0x0000_6000  PVH hvm_start_info, module list, memory map
//! 0x0000_7000  Linux zero page (boot_params)
//! 0x0000_8ff0  initial stack pointer for the 64-bit entry
//! 0x0000_9000  identity page tables (PML4, PDPT, PD: first 1 GiB)
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA: MP floating pointer and MP table        (reserved)
//! 0x000a_0000  the VGA window: not RAM (the std VGA's, or nothing)
//! 0x000e_0000  ACPI tables: RSDP first, then XSDT, FADT, ... (reserved)
//! 0x0010_0000  kernel (ELF segments at their physical addresses, bzImage
//!              payload here), then free RAM; the initrd at the top of low RAM
//! 0xc000_0000  32-bit MMIO hole: a window for PCI BARs (until 0xd000_0000),
//!              then platform devices (virtio-mmio slots), IOAPIC, LAPIC,
//!              KVM TSS
//! 0x1_0000_0000  RAM above 4 GiB when the guest has more than 3 GiB, then
//!              (from the next 1 GiB boundary) the 64-bit MMIO window
//! ```
//!
//! What is placed where at run time (GSIs, MMIO and port ranges) comes from
//! the [`crate::allocator::SystemAllocator`] over these windows.
//!
//! The 385 KiB between the EBDA and 1 MiB are the only RAM the guest does not
//! get back as usable in its memory map; the hole below 4 GiB is address
//! space, not RAM: a `-m 5000` guest has all 5000 MiB, 3 GiB of it low.

/// GDT (four 8-byte entries) and IDT.
pub const GDT_START: u64 = 0x500;
pub const IDT_START: u64 = 0x520;
/// PVH boot structures.
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6040;
pub const PVH_MEMMAP: u64 = 0x6100;
/// Room for the memory map: up to 128 entries of 24 bytes.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = 128;
/// Linux zero page.
pub const ZERO_PAGE: u64 = 0x7000;
/// Stack for the 64-bit entry (the kernel switches to its own at once).
pub const BOOT_STACK: u64 = 0x8ff0;
/// Identity-mapped page tables for the 64-bit entry.
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// Kernel command line and its maximum size (including the NUL).
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// Extended BIOS data area: where an OS looks for the MP floating pointer.
pub const EBDA_START: u64 = 0x9fc00;
/// The legacy VGA window: never RAM (a VGA device's memory, or nothing),
/// as on QEMU's pc and q35.
pub const VGA_WINDOW_START: u64 = 0xa_0000;
pub const VGA_WINDOW_END: u64 = 0xc_0000;
/// ACPI tables; the RSDP is at the start so a scan of 0xe0000..0xfffff finds
/// it even when the boot protocol does not pass its address.
pub const ACPI_START: u64 = 0xe0000;
pub const ACPI_MAX: u64 = 0x20000;
/// End of the legacy area: the kernel and free RAM start here.
pub const HIGH_RAM_START: u64 = 0x10_0000;

/// Start of the 32-bit MMIO hole and of what lies in it.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// The part of the hole for 32-bit PCI BARs.
pub const PCI_MMIO32_START: u64 = MMIO_HOLE_START;
pub const PCI_MMIO32_END: u64 = PLATFORM_MMIO_START;
/// Platform devices' MMIO (virtio-mmio slots, 4 KiB each), up to the IOAPIC.
pub const PLATFORM_MMIO_START: u64 = 0xd000_0000;
pub const PLATFORM_MMIO_END: u64 = IOAPIC_START;
/// Where the first virtio-mmio slot lands (the allocator's first fit).
pub const VIRTIO_MMIO_START: u64 = PLATFORM_MMIO_START;
/// Size of the 64-bit MMIO window above RAM (for 64-bit PCI BARs).
pub const MMIO64_SIZE: u64 = 64 << 30;
pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const LAPIC_START: u64 = 0xfee0_0000;
/// KVM needs three pages for the TSS and one for the identity map (used
/// for real mode on older Intel CPUs) in unused guest physical space.
pub const KVM_IDENTITY_MAP: u64 = 0xfffb_c000;
pub const KVM_TSS: u64 = 0xfffb_d000;

/// Legacy port I/O assignments.
pub mod ports {
    pub const COM1: u16 = 0x3f8;
    pub const COM2: u16 = 0x2f8;
    pub const COM3: u16 = 0x3e8;
    pub const COM4: u16 = 0x2e8;
    pub const UART_LEN: u16 = 8;
    pub const I8042: u16 = 0x60;
    pub const I8042_LEN: u16 = 5;
    pub const CMOS: u16 = 0x70;
    pub const CMOS_LEN: u16 = 2;
    pub const POST: u16 = 0x80;
    pub const PVPANIC: u16 = 0x505;
    /// ACPI PM1a event block (4), PM1a control (2), PM timer (4).
    pub const ACPI_PM: u16 = 0x600;
    pub const ACPI_PM1A_EVT: u16 = ACPI_PM;
    pub const ACPI_PM1A_CNT: u16 = ACPI_PM + 4;
    pub const ACPI_PM_TMR: u16 = ACPI_PM + 8;
    pub const RESET_CONTROL: u16 = 0xcf9;
}

/// Legacy ISA IRQs: fixed by the PC's design, reserved in the allocator.
pub mod irqs {
    pub const PIT: u32 = 0;
    /// The slave 8259's cascade input.
    pub const CASCADE: u32 = 2;
    pub const COM1: u32 = 4;
    pub const COM2: u32 = 3;
    /// COM3 and COM4 share COM1's and COM2's lines, as on a PC.
    pub const COM3: u32 = 4;
    pub const COM4: u32 = 3;
    pub const KEYBOARD: u32 = 1;
    pub const MOUSE: u32 = 12;
    pub const RTC: u32 = 8;
    pub const SCI: u32 = 9;
    /// Every IRQ above: no allocated GSI is ever one of them.
    pub const LEGACY: [u32; 8] = [PIT, KEYBOARD, CASCADE, COM2, COM1, RTC, SCI, MOUSE];
    /// IOAPIC pins (GSIs 0-23) of the in-kernel irqchip.
    pub const IOAPIC_PINS: u32 = 24;
}

/// The SLP_TYP the DSDT's `\_S5_` package announces for power-off; the ACPI
/// PM device acts on the same value. 0, as QEMU's PIIX4 and ICH9 PM (whose
/// DSDT has `\_S5_` = {0, 0, 0, 0}): a guest that hard-codes it, or
/// compares it with what it saw under QEMU, finds the same.
pub const S5_SLP_TYP: u8 = 0;
/// What the FADT tells the guest to write to the reset register (PIIX: CPU
/// reset and system reset).
pub const RESET_VALUE: u8 = 0x06;

/// e820 / PVH memory map entry types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// One range of the guest's memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    pub start: u64,
    pub size: u64,
    pub kind: u32,
}

/// The guest's RAM: the part below the 32-bit hole and the part above 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamLayout {
    /// Bytes of RAM at guest address 0.
    pub low: u64,
    /// Bytes of RAM at 4 GiB.
    pub high: u64,
    /// A window below 4 GiB the memory map reserves besides the legacy
    /// areas: q35's ECAM (MMCONFIG), which Linux uses only if reserved.
    pub reserved: Option<(u64, u64)>,
}

/// Which PC board the RAM is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Board {
    /// `pc`: RAM up to 3 GiB below the hole.
    #[default]
    Pc,
    /// `q35`: RAM below the ECAM window at 0xb0000000, and only 2 GiB low
    /// once the guest has 2.75 GiB or more, as QEMU lays it out.
    Q35,
    /// `microvm`: `pc`'s layout, with RAM in the VGA window too.
    Microvm,
}

impl Board {
    /// Whether the VGA window (0xA0000-0xBFFFF) is left without RAM, for a
    /// VGA to answer there: on pc and q35. QEMU's microvm has RAM there (it
    /// has no PCI, so no VGA), and one memory slot instead of two saves an
    /// SRCU grace period at every start.
    pub fn vga_window(self) -> bool {
        self != Board::Microvm
    }
}

/// q35's ECAM window: 256 buses of 1 MiB, where firmware puts it.
pub const Q35_ECAM_BASE: u64 = 0xb000_0000;
pub const Q35_ECAM_SIZE: u64 = 0x1000_0000;

impl RamLayout {
    /// Splits `size` bytes of RAM around the 32-bit MMIO hole.
    pub fn new(size: u64) -> Self {
        let low = size.min(MMIO_HOLE_START);
        RamLayout {
            low,
            high: size - low,
            reserved: None,
        }
    }

    /// The layout of `size` bytes of RAM on `board`.
    pub fn for_board(board: Board, size: u64) -> Self {
        match board {
            Board::Pc | Board::Microvm => Self::new(size),
            Board::Q35 => {
                let hole = if size >= Q35_ECAM_BASE {
                    0x8000_0000
                } else {
                    Q35_ECAM_BASE
                };
                let low = size.min(hole);
                RamLayout {
                    low,
                    high: size - low,
                    reserved: Some((Q35_ECAM_BASE, Q35_ECAM_SIZE)),
                }
            }
        }
    }

    /// Total RAM.
    pub fn size(&self) -> u64 {
        self.low + self.high
    }

    /// The (guest address, size) regions to back with host memory.
    pub fn regions(&self) -> Vec<(u64, u64)> {
        let mut r = vec![(0, self.low)];
        if self.high > 0 {
            r.push((MMIO_HOLE_END, self.high));
        }
        r
    }

    /// Start of the 64-bit MMIO window: the first 1 GiB boundary above RAM
    /// (and above 4 GiB).
    pub fn mmio64_start(&self) -> u64 {
        (MMIO_HOLE_END + self.high).next_multiple_of(1 << 30)
    }

    /// The memory map handed to the guest (e820 / PVH memmap), sorted.
    pub fn memory_map(&self) -> Vec<MemoryRange> {
        let ram = |start, end: u64| MemoryRange {
            start,
            size: end - start,
            kind: E820_RAM,
        };
        let reserved = |start, end: u64| MemoryRange {
            start,
            size: end - start,
            kind: E820_RESERVED,
        };
        let mut map = vec![
            ram(0, EBDA_START),
            reserved(EBDA_START, 0xa0000),
            reserved(ACPI_START, HIGH_RAM_START),
            ram(HIGH_RAM_START, self.low),
        ];
        if let Some((base, len)) = self.reserved {
            map.push(reserved(base, base + len));
        }
        if self.high > 0 {
            map.push(ram(MMIO_HOLE_END, MMIO_HOLE_END + self.high));
        }
        map
    }
}

/// The smallest guest rvirt builds: the legacy area plus room for a kernel.
pub const MIN_RAM: u64 = 2 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(l: &RamLayout) -> u64 {
        l.memory_map()
            .iter()
            .filter(|r| r.kind == E820_RAM)
            .map(|r| r.size)
            .sum()
    }

    #[test]
    fn small_guest_is_all_low() {
        let l = RamLayout::new(128 << 20);
        assert_eq!(
            l,
            RamLayout {
                low: 128 << 20,
                high: 0,
                reserved: None,
            }
        );
        assert_eq!(l.regions(), vec![(0, 128 << 20)]);
        assert_eq!(usable(&l), (128 << 20) - (HIGH_RAM_START - EBDA_START));
    }

    #[test]
    fn large_guest_splits_around_the_hole() {
        let l = RamLayout::new(5000 << 20);
        assert_eq!(l.low, 3 << 30);
        assert_eq!(l.high, (5000 << 20) - (3 << 30));
        let map = l.memory_map();
        let top = map.last().unwrap();
        assert_eq!((top.start, top.size), (1 << 32, (5000 << 20) - (3 << 30)));
        assert_eq!(usable(&l), (5000 << 20) - (HIGH_RAM_START - EBDA_START));
        // Exactly 3 GiB still fits below the hole.
        assert_eq!(RamLayout::new(3 << 30).high, 0);
    }

    #[test]
    fn q35_keeps_ram_below_the_ecam_window() {
        let small = RamLayout::for_board(Board::Q35, 1 << 30);
        assert_eq!((small.low, small.high), (1 << 30, 0));
        let at_limit = RamLayout::for_board(Board::Q35, Q35_ECAM_BASE - 4096);
        assert_eq!(at_limit.high, 0);
        let big = RamLayout::for_board(Board::Q35, 5000 << 20);
        assert_eq!((big.low, big.high), (2 << 30, (5000 << 20) - (2 << 30)));
        let map = big.memory_map();
        assert!(map.windows(2).all(|w| w[0].start < w[1].start), "sorted");
        assert!(map.iter().any(|r| r.start == Q35_ECAM_BASE
            && r.size == Q35_ECAM_SIZE
            && r.kind == E820_RESERVED));
    }

    #[test]
    fn fixed_areas_do_not_overlap() {
        let areas = [
            (GDT_START, 0x40),
            (PVH_START_INFO, 0x40),
            (PVH_MODLIST, 0x20),
            (PVH_MEMMAP, (PVH_MEMMAP_MAX_ENTRIES * 24) as u64),
            (ZERO_PAGE, 0x1000),
            (PML4_START, 0x3000),
            (CMDLINE_START, CMDLINE_MAX as u64),
            (EBDA_START, 0x400),
            (ACPI_START, ACPI_MAX),
        ];
        for (i, a) in areas.iter().enumerate() {
            assert!(a.0 + a.1 <= HIGH_RAM_START);
            for b in &areas[i + 1..] {
                assert!(a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0, "{a:x?} vs {b:x?}");
            }
        }
        const { assert!(BOOT_STACK < PML4_START && BOOT_STACK > ZERO_PAGE + 0x1000) };
    }
}
