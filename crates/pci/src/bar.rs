//! Base address registers: what a function declares and where the guest
//! (or firmware, or the VMM for a direct kernel boot) put them.

/// One past the highest guest-physical address x86 can have (52 bits): a
/// 64-bit BAR programmed beyond it decodes nowhere.
pub const PHYS_ADDR_LIMIT: u64 = 1 << 52;

/// What kind of BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// I/O ports.
    Io,
    /// Memory below 4 GiB.
    Mem32,
    /// Memory anywhere; takes two BAR registers.
    Mem64,
}

/// A BAR as the function declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    pub kind: BarKind,
    /// A power of two.
    pub size: u64,
    pub prefetchable: bool,
}

impl BarSpec {
    pub fn io(size: u64) -> Self {
        BarSpec {
            kind: BarKind::Io,
            size,
            prefetchable: false,
        }
    }

    pub fn mem32(size: u64) -> Self {
        BarSpec {
            kind: BarKind::Mem32,
            size,
            prefetchable: false,
        }
    }

    pub fn mem64(size: u64, prefetchable: bool) -> Self {
        BarSpec {
            kind: BarKind::Mem64,
            size,
            prefetchable,
        }
    }

    /// The address space it decodes in.
    pub fn space(&self) -> AddressSpace {
        match self.kind {
            BarKind::Io => AddressSpace::Io,
            BarKind::Mem32 | BarKind::Mem64 => AddressSpace::Memory,
        }
    }
}

/// Port I/O or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressSpace {
    Io,
    Memory,
}

/// Where a BAR decodes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMapping {
    pub space: AddressSpace,
    pub base: u64,
    pub size: u64,
}

impl BarMapping {
    /// Whether the whole range lies inside the inclusive `window`.
    pub fn within(&self, window: Option<(u64, u64)>) -> bool {
        window.is_some_and(|(lo, hi)| self.base >= lo && self.base + (self.size - 1) <= hi)
    }
}
