//! One function's configuration space, as hardware keeps it: a byte array
//! with, per bit, whether the guest may write it (`wmask`) and whether a 1
//! written clears it (`w1cmask`, the STATUS error bits), so a write can
//! never set a read-only bit and every register reads back what hardware
//! would. On top of the bytes it keeps what the registers mean for decoding:
//! where each BAR is, given COMMAND's decode bits and the rule that a
//! 64-bit BAR moves only once both of its halves are written.

use crate::bar::{AddressSpace, BarKind, BarMapping, BarSpec, PHYS_ADDR_LIMIT};

/// Register offsets of the standard headers.
pub mod reg {
    pub const VENDOR_ID: u16 = 0x00;
    pub const DEVICE_ID: u16 = 0x02;
    pub const COMMAND: u16 = 0x04;
    pub const STATUS: u16 = 0x06;
    pub const REVISION: u16 = 0x08;
    pub const CLASS_PROG: u16 = 0x09;
    pub const CACHE_LINE_SIZE: u16 = 0x0c;
    pub const LATENCY_TIMER: u16 = 0x0d;
    pub const HEADER_TYPE: u16 = 0x0e;
    pub const BAR0: u16 = 0x10;
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Type 0's expansion ROM base address register.
    pub const ROM_ADDRESS: u16 = 0x30;
    pub const CAPABILITY_LIST: u16 = 0x34;
    pub const INTERRUPT_LINE: u16 = 0x3c;
    pub const INTERRUPT_PIN: u16 = 0x3d;
    // Type 1 (bridge) header.
    pub const PRIMARY_BUS: u16 = 0x18;
    pub const SECONDARY_BUS: u16 = 0x19;
    pub const SUBORDINATE_BUS: u16 = 0x1a;
    pub const SEC_LATENCY_TIMER: u16 = 0x1b;
    pub const IO_BASE: u16 = 0x1c;
    pub const IO_LIMIT: u16 = 0x1d;
    pub const SEC_STATUS: u16 = 0x1e;
    pub const MEMORY_BASE: u16 = 0x20;
    pub const MEMORY_LIMIT: u16 = 0x22;
    pub const PREF_MEMORY_BASE: u16 = 0x24;
    pub const PREF_MEMORY_LIMIT: u16 = 0x26;
    pub const PREF_BASE_UPPER32: u16 = 0x28;
    pub const PREF_LIMIT_UPPER32: u16 = 0x2c;
    pub const BRIDGE_CONTROL: u16 = 0x3e;
}

/// COMMAND bits.
pub mod command {
    pub const IO: u16 = 1 << 0;
    pub const MEMORY: u16 = 1 << 1;
    pub const MASTER: u16 = 1 << 2;
    pub const SERR: u16 = 1 << 8;
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// STATUS bits.
pub mod status {
    pub const INTERRUPT: u16 = 1 << 3;
    pub const CAP_LIST: u16 = 1 << 4;
    /// The error bits, each cleared by writing 1.
    pub const W1C: u16 = 0xf900;
}

/// The expansion ROM's slot in [`ConfigSpace::decoded_bars`] (after the
/// six BARs, as QEMU's `PCI_ROM_SLOT`), and how many slots there are.
pub const ROM_BAR: usize = 6;
pub const BAR_SLOTS: usize = 7;
/// The expansion ROM register's decode enable bit.
pub const ROM_ENABLE: u32 = 1;
/// The smallest expansion ROM (its address bits start at bit 11).
pub const ROM_MIN_SIZE: u64 = 2 << 10;

/// Conventional PCI's configuration space.
pub const CONFIG_SIZE: usize = 256;
/// PCI Express's, with the extended capabilities from 0x100.
pub const PCIE_CONFIG_SIZE: usize = 4096;
/// Where the first capability goes.
const FIRST_CAPABILITY: u16 = 0x40;

/// A function's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// Base class, subclass and programming interface (`0x010000`).
    pub class: u32,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
}

/// Which header the function has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderType {
    /// Type 0: an endpoint with six BARs.
    Endpoint,
    /// Type 1: a PCI-to-PCI bridge with two BARs and forwarding windows.
    Bridge,
}

/// Which half of a 64-bit BAR the guest wrote first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Low,
    High,
}

/// An inclusive address range a bridge forwards.
pub type Window = (u64, u64);

/// What a bridge forwards to its secondary side, as the guest programmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgeWindows {
    pub io: Option<Window>,
    pub memory: Option<Window>,
    pub prefetchable: Option<Window>,
}

/// The configuration space of one function.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: Vec<u8>,
    wmask: Vec<u8>,
    w1cmask: Vec<u8>,
    header: HeaderType,
    /// What each BAR register is; a 64-bit BAR's upper half has `None`.
    bars: [Option<BarSpec>; 6],
    /// Where each BAR decodes (the low index of a 64-bit pair): its
    /// register value, except while a 64-bit BAR has one new half.
    effective: [u64; 6],
    pending: [Option<Half>; 6],
    /// The expansion ROM's size, if the function has one (type 0 only).
    rom: Option<u64>,
    next_capability: u16,
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field(
                "vendor",
                &format_args!("{:#06x}", self.read_u16(reg::VENDOR_ID)),
            )
            .field(
                "device",
                &format_args!("{:#06x}", self.read_u16(reg::DEVICE_ID)),
            )
            .field("header", &self.header)
            .field("bars", &self.bars)
            .finish()
    }
}

impl ConfigSpace {
    /// A type 0 header; `express` gives it PCI Express's 4 KiB space.
    pub fn endpoint(ids: &Ids, express: bool) -> Self {
        let mut c = Self::new(ids, HeaderType::Endpoint, express);
        c.set_u16(reg::SUBSYSTEM_VENDOR_ID, ids.subsystem_vendor);
        c.set_u16(reg::SUBSYSTEM_ID, ids.subsystem);
        c.wmask[usize::from(reg::INTERRUPT_LINE)] = 0xff;
        c
    }

    /// A type 1 (PCI-to-PCI bridge) header with a 16-bit I/O window, a
    /// 32-bit memory window and a 64-bit prefetchable window.
    pub fn bridge(ids: &Ids, express: bool) -> Self {
        let mut c = Self::new(ids, HeaderType::Bridge, express);
        for r in [
            reg::PRIMARY_BUS,
            reg::SECONDARY_BUS,
            reg::SUBORDINATE_BUS,
            reg::SEC_LATENCY_TIMER,
            reg::INTERRUPT_LINE,
        ] {
            c.wmask[usize::from(r)] = 0xff;
        }
        c.wmask[usize::from(reg::IO_BASE)] = 0xf0;
        c.wmask[usize::from(reg::IO_LIMIT)] = 0xf0;
        c.set_wmask_u16(reg::MEMORY_BASE, 0xfff0);
        c.set_wmask_u16(reg::MEMORY_LIMIT, 0xfff0);
        c.set_wmask_u16(reg::PREF_MEMORY_BASE, 0xfff0);
        c.set_wmask_u16(reg::PREF_MEMORY_LIMIT, 0xfff0);
        // The low nibble says the prefetchable window is 64-bit.
        c.set_u16(reg::PREF_MEMORY_BASE, 1);
        c.set_u16(reg::PREF_MEMORY_LIMIT, 1);
        c.set_wmask_u32(reg::PREF_BASE_UPPER32, u32::MAX);
        c.set_wmask_u32(reg::PREF_LIMIT_UPPER32, u32::MAX);
        c.set_w1cmask_u16(reg::SEC_STATUS, status::W1C);
        c.set_wmask_u16(reg::BRIDGE_CONTROL, 0x0fff);
        // Windows start closed: base above limit.
        c.set_u8(reg::IO_BASE, 0xf0);
        c.set_u16(reg::MEMORY_BASE, 0xfff0);
        c.set_u16(reg::PREF_MEMORY_BASE, 0xfff1);
        c
    }

    fn new(ids: &Ids, header: HeaderType, express: bool) -> Self {
        let size = if express {
            PCIE_CONFIG_SIZE
        } else {
            CONFIG_SIZE
        };
        let mut c = ConfigSpace {
            bytes: vec![0; size],
            wmask: vec![0; size],
            w1cmask: vec![0; size],
            header,
            bars: [None; 6],
            effective: [0; 6],
            pending: [None; 6],
            rom: None,
            next_capability: FIRST_CAPABILITY,
        };
        c.set_u16(reg::VENDOR_ID, ids.vendor);
        c.set_u16(reg::DEVICE_ID, ids.device);
        c.set_u8(reg::REVISION, ids.revision);
        c.set_u8(reg::CLASS_PROG, ids.class as u8);
        c.set_u16(reg::CLASS_PROG + 1, (ids.class >> 8) as u16);
        c.set_u8(
            reg::HEADER_TYPE,
            match header {
                HeaderType::Endpoint => 0,
                HeaderType::Bridge => 1,
            },
        );
        c.set_wmask_u16(
            reg::COMMAND,
            command::IO | command::MEMORY | command::MASTER | command::SERR | command::INTX_DISABLE,
        );
        c.set_w1cmask_u16(reg::STATUS, status::W1C);
        c.wmask[usize::from(reg::CACHE_LINE_SIZE)] = 0xff;
        c.wmask[usize::from(reg::LATENCY_TIMER)] = 0xff;
        c
    }

    /// The header type.
    pub fn header(&self) -> HeaderType {
        self.header
    }

    /// The size of the space (256 or 4096 bytes).
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Marks the function as one of several in its slot (header type bit 7).
    pub fn set_multifunction(&mut self, on: bool) {
        let h = self.bytes[usize::from(reg::HEADER_TYPE)];
        self.bytes[usize::from(reg::HEADER_TYPE)] = if on { h | 0x80 } else { h & 0x7f };
    }

    /// Sets the interrupt pin (1 = INTA# ... 4 = INTD#, 0 = none).
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        self.set_u8(reg::INTERRUPT_PIN, pin);
    }

    /// The interrupt pin (0 = none).
    pub fn interrupt_pin(&self) -> u8 {
        self.read_u8(reg::INTERRUPT_PIN)
    }

    /// The BAR registers a header has.
    pub fn bar_count(&self) -> usize {
        match self.header {
            HeaderType::Endpoint => 6,
            HeaderType::Bridge => 2,
        }
    }

    /// Declares BAR `index` (a 64-bit BAR takes `index + 1` too). Sizes
    /// are powers of two: at least 16 bytes of memory or 4 ports.
    ///
    /// # Panics
    /// On a layout no hardware has (a bad size, an index taken or past the
    /// header's BARs): the device model is wrong, not the guest.
    pub fn add_bar(&mut self, index: usize, spec: BarSpec) {
        let words = if spec.kind == BarKind::Mem64 { 2 } else { 1 };
        assert!(
            index + words <= self.bar_count(),
            "BAR {index} out of range"
        );
        assert!(
            self.bars[index].is_none() && (words == 1 || self.bars[index + 1].is_none()),
            "BAR {index} declared twice"
        );
        let min = if spec.kind == BarKind::Io { 4 } else { 16 };
        assert!(
            spec.size.is_power_of_two() && spec.size >= min,
            "BAR size {:#x}",
            spec.size
        );
        assert!(
            spec.kind != BarKind::Io || spec.size <= 256,
            "I/O BAR too large"
        );
        assert!(
            spec.kind != BarKind::Mem32 || spec.size <= 1 << 31,
            "BAR too large"
        );
        self.bars[index] = Some(spec);
        let at = bar_register(index);
        let mask = !(spec.size - 1);
        match spec.kind {
            BarKind::Io => {
                self.set_u32(at, 1);
                self.set_wmask_u32(at, (mask as u32) & !0x3);
            }
            BarKind::Mem32 => {
                self.set_u32(at, u32::from(spec.prefetchable) << 3);
                self.set_wmask_u32(at, (mask as u32) & !0xf);
            }
            BarKind::Mem64 => {
                self.set_u32(at, 0b100 | (u32::from(spec.prefetchable) << 3));
                self.set_wmask_u32(at, (mask as u32) & !0xf);
                self.set_wmask_u32(at + 4, (mask >> 32) as u32);
            }
        }
    }

    /// Declares an expansion ROM of `size` bytes (register 0x30): its
    /// address bits and the enable bit writable, sized as hardware does
    /// (writing all ones reads back the size mask). It decodes, read-only,
    /// while enabled and COMMAND's memory bit is on
    /// ([`ConfigSpace::decoded_bars`]'s [`ROM_BAR`]).
    ///
    /// # Panics
    /// On a bridge (whose ROM register sits elsewhere; none of rvirt's has
    /// one), or a size that is not a power of two from 2 KiB to 2 GiB: the
    /// device model is wrong, not the guest.
    pub fn add_rom(&mut self, size: u64) {
        assert_eq!(self.header, HeaderType::Endpoint, "ROM on a bridge");
        assert!(
            size.is_power_of_two() && (ROM_MIN_SIZE..=1 << 31).contains(&size),
            "ROM size {size:#x}"
        );
        self.rom = Some(size);
        let mask = (!(size - 1) as u32) & !((ROM_MIN_SIZE as u32) - 1);
        self.set_wmask_u32(reg::ROM_ADDRESS, mask | ROM_ENABLE);
    }

    /// The expansion ROM's size, if there is one.
    pub fn rom_size(&self) -> Option<u64> {
        self.rom
    }

    /// BAR `index`'s declaration, if it is the first register of a BAR.
    pub fn bar(&self, index: usize) -> Option<BarSpec> {
        self.bars.get(index).copied().flatten()
    }

    /// The address in BAR `index`'s registers now (both halves of a 64-bit
    /// BAR), whether or not it decodes.
    pub fn bar_address(&self, index: usize) -> u64 {
        let Some(spec) = self.bar(index) else {
            return 0;
        };
        let at = bar_register(index);
        let low = u64::from(self.read_u32(at));
        match spec.kind {
            BarKind::Io => low & !0x3,
            BarKind::Mem32 => low & !0xf,
            BarKind::Mem64 => (low & !0xf) | (u64::from(self.read_u32(at + 4)) << 32),
        }
    }

    /// Places BAR `index` at `addr` as firmware would before the guest
    /// runs (the low bits the size fixes are dropped).
    pub fn set_bar_address(&mut self, index: usize, addr: u64) {
        let Some(spec) = self.bar(index) else {
            return;
        };
        let addr = addr & !(spec.size - 1);
        let at = bar_register(index);
        let flags = self.read_u32(at) & if spec.kind == BarKind::Io { 0x3 } else { 0xf };
        self.set_u32(at, (addr as u32) | flags);
        if spec.kind == BarKind::Mem64 {
            self.set_u32(at + 4, (addr >> 32) as u32);
        }
        self.effective[index] = addr;
        self.pending[index] = None;
    }

    /// Where each BAR decodes now: its address if COMMAND enables its
    /// space and the range is one hardware would decode (not at 0, not
    /// wrapping, a 32-bit BAR below 4 GiB, ports below 64 Ki); `None`
    /// otherwise. Slot [`ROM_BAR`] is the expansion ROM, which also needs
    /// its own enable bit.
    pub fn decoded_bars(&self) -> [Option<BarMapping>; BAR_SLOTS] {
        let cmd = self.read_u16(reg::COMMAND);
        let mut out = [None; BAR_SLOTS];
        if let Some(size) = self.rom {
            let r = self.read_u32(reg::ROM_ADDRESS);
            let base = u64::from(r) & !(size - 1);
            if cmd & command::MEMORY != 0 && r & ROM_ENABLE != 0 && base != 0 {
                // A 32-bit register whose base is size-aligned: never
                // past 4 GiB.
                out[ROM_BAR] = Some(BarMapping {
                    space: AddressSpace::Memory,
                    base,
                    size,
                });
            }
        }
        for (i, slot) in out.iter_mut().take(6).enumerate() {
            let Some(spec) = self.bars[i] else { continue };
            let (space, enabled, limit) = match spec.kind {
                BarKind::Io => (AddressSpace::Io, cmd & command::IO != 0, 0x1_0000),
                BarKind::Mem32 => (AddressSpace::Memory, cmd & command::MEMORY != 0, 1 << 32),
                BarKind::Mem64 => (
                    AddressSpace::Memory,
                    cmd & command::MEMORY != 0,
                    PHYS_ADDR_LIMIT,
                ),
            };
            let base = self.effective[i];
            let fits = base.checked_add(spec.size).is_some_and(|end| end <= limit);
            if enabled && base != 0 && fits {
                *slot = Some(BarMapping {
                    space,
                    base,
                    size: spec.size,
                });
            }
        }
        out
    }

    /// A type 1 header's secondary and subordinate bus numbers.
    pub fn bus_numbers(&self) -> (u8, u8) {
        (
            self.read_u8(reg::SECONDARY_BUS),
            self.read_u8(reg::SUBORDINATE_BUS),
        )
    }

    /// What a type 1 header forwards: its windows where base <= limit and
    /// COMMAND enables the space.
    pub fn bridge_windows(&self) -> BridgeWindows {
        if self.header != HeaderType::Bridge {
            return BridgeWindows::default();
        }
        let cmd = self.read_u16(reg::COMMAND);
        let open = |base: u64, limit: u64| (base <= limit).then_some((base, limit));
        let io_base = u64::from(self.read_u8(reg::IO_BASE) & 0xf0) << 8;
        let io_limit = (u64::from(self.read_u8(reg::IO_LIMIT) & 0xf0) << 8) | 0xfff;
        let mem_base = u64::from(self.read_u16(reg::MEMORY_BASE) & 0xfff0) << 16;
        let mem_limit = (u64::from(self.read_u16(reg::MEMORY_LIMIT) & 0xfff0) << 16) | 0xf_ffff;
        let pref_base = (u64::from(self.read_u16(reg::PREF_MEMORY_BASE) & 0xfff0) << 16)
            | (u64::from(self.read_u32(reg::PREF_BASE_UPPER32)) << 32);
        let pref_limit = (u64::from(self.read_u16(reg::PREF_MEMORY_LIMIT) & 0xfff0) << 16)
            | 0xf_ffff
            | (u64::from(self.read_u32(reg::PREF_LIMIT_UPPER32)) << 32);
        BridgeWindows {
            io: open(io_base, io_limit).filter(|_| cmd & command::IO != 0),
            memory: open(mem_base, mem_limit).filter(|_| cmd & command::MEMORY != 0),
            prefetchable: open(pref_base, pref_limit).filter(|_| cmd & command::MEMORY != 0),
        }
    }

    /// Adds a capability of `len` bytes with ID `id` and returns its
    /// offset. Like QEMU, the newest capability heads the list.
    ///
    /// # Panics
    /// If the capabilities do not fit the first 256 bytes (a device model
    /// bug).
    pub fn add_capability(&mut self, id: u8, len: u8) -> u16 {
        let at = self.next_capability.next_multiple_of(4);
        let end = at + u16::from(len);
        assert!(
            len >= 2 && end <= CONFIG_SIZE as u16,
            "capabilities overflow"
        );
        let head = self.read_u8(reg::CAPABILITY_LIST);
        self.set_u8(at, id);
        self.set_u8(at + 1, head);
        self.set_u8(reg::CAPABILITY_LIST, at as u8);
        let st = self.read_u16(reg::STATUS);
        self.set_u16(reg::STATUS, st | status::CAP_LIST);
        self.next_capability = end;
        at
    }

    /// Adds a capability at a fixed offset `at` (a model that must match
    /// QEMU's layout byte for byte, as ICH9 AHCI's MSI at 0x80); later
    /// [`ConfigSpace::add_capability`] calls go past it. It heads the
    /// list, as there.
    ///
    /// # Panics
    /// If `at` is not dword aligned, lies before the header's end, or the
    /// capability does not fit (a device model bug).
    pub fn add_capability_at(&mut self, at: u16, id: u8, len: u8) -> u16 {
        let end = at + u16::from(len);
        assert!(
            at.is_multiple_of(4) && at >= FIRST_CAPABILITY && len >= 2 && end <= CONFIG_SIZE as u16,
            "capability placement"
        );
        let head = self.read_u8(reg::CAPABILITY_LIST);
        self.set_u8(at, id);
        self.set_u8(at + 1, head);
        self.set_u8(reg::CAPABILITY_LIST, at as u8);
        let st = self.read_u16(reg::STATUS);
        self.set_u16(reg::STATUS, st | status::CAP_LIST);
        self.next_capability = self.next_capability.max(end);
        at
    }

    /// The offset of the first capability with ID `id` (the list is
    /// read-only to the guest, so it is the one added).
    pub fn find_capability(&self, id: u8) -> Option<u16> {
        let mut at = self.read_u8(reg::CAPABILITY_LIST);
        // At most 48 capabilities fit 256 bytes; the bound keeps a loop
        // from spinning.
        for _ in 0..48 {
            if at < 0x40 {
                return None;
            }
            if self.read_u8(u16::from(at)) == id {
                return Some(u16::from(at));
            }
            at = self.read_u8(u16::from(at) + 1);
        }
        None
    }

    /// Reads `data.len()` bytes at `offset`; bytes past the space read as
    /// all ones, as a config read of a register that does not exist.
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self
                .bytes
                .get(usize::from(offset) + i)
                .copied()
                .unwrap_or(0xff);
        }
    }

    /// The guest writes `data` at `offset`: only writable bits change,
    /// W1C bits clear where a 1 is written, bytes past the space are
    /// dropped. BAR and COMMAND writes update where the BARs decode.
    pub fn write(&mut self, offset: u16, data: &[u8]) {
        let start = usize::from(offset);
        for (i, &v) in data.iter().enumerate() {
            let o = start + i;
            if o >= self.bytes.len() {
                break;
            }
            let old = self.bytes[o];
            let mut b = (old & !self.wmask[o]) | (v & self.wmask[o]);
            b &= !(v & self.w1cmask[o]);
            self.bytes[o] = b;
        }
        let end = start + data.len();
        let touches = |r: u16, len: usize| start < usize::from(r) + len && usize::from(r) < end;
        if touches(reg::COMMAND, 2) {
            // Decode may have changed: every BAR is where its registers
            // say, halves or not.
            for i in 0..6 {
                if self.bars[i].is_some() {
                    self.effective[i] = self.bar_address(i);
                    self.pending[i] = None;
                }
            }
        }
        for r in 0..self.bar_count() {
            if touches(bar_register(r), 4) {
                self.bar_register_written(r);
            }
        }
    }

    /// A write reached BAR register `r` (either half of a 64-bit BAR).
    fn bar_register_written(&mut self, r: usize) {
        let (index, half) = match self.bars[r] {
            Some(_) => (r, Half::Low),
            None if r > 0 && self.bars[r - 1].is_some_and(|b| b.kind == BarKind::Mem64) => {
                (r - 1, Half::High)
            }
            None => return,
        };
        let spec = self.bars[index].expect("checked above");
        let now = self.bar_address(index);
        if spec.kind != BarKind::Mem64 {
            self.effective[index] = now;
            return;
        }
        // A 64-bit BAR moves once both halves are written; in between it
        // stays where it was, never at the half-written address.
        match self.pending[index] {
            Some(p) if p != half => {
                self.effective[index] = now;
                self.pending[index] = None;
            }
            _ if now == self.effective[index] => self.pending[index] = None,
            _ => self.pending[index] = Some(half),
        }
    }

    pub fn read_u8(&self, offset: u16) -> u8 {
        let mut b = [0; 1];
        self.read(offset, &mut b);
        b[0]
    }

    pub fn read_u16(&self, offset: u16) -> u16 {
        let mut b = [0; 2];
        self.read(offset, &mut b);
        u16::from_le_bytes(b)
    }

    pub fn read_u32(&self, offset: u16) -> u32 {
        let mut b = [0; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Sets bytes as the device (not the guest) does: no masks apply.
    pub fn set_bytes(&mut self, offset: u16, data: &[u8]) {
        let o = usize::from(offset);
        self.bytes[o..o + data.len()].copy_from_slice(data);
    }

    pub fn set_u8(&mut self, offset: u16, v: u8) {
        self.set_bytes(offset, &[v]);
    }

    pub fn set_u16(&mut self, offset: u16, v: u16) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    pub fn set_u32(&mut self, offset: u16, v: u32) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    /// Makes the bits of `mask` at `offset` writable by the guest.
    pub fn set_wmask(&mut self, offset: u16, mask: &[u8]) {
        let o = usize::from(offset);
        self.wmask[o..o + mask.len()].copy_from_slice(mask);
    }

    pub fn set_wmask_u8(&mut self, offset: u16, mask: u8) {
        self.set_wmask(offset, &[mask]);
    }

    pub fn set_wmask_u16(&mut self, offset: u16, mask: u16) {
        self.set_wmask(offset, &mask.to_le_bytes());
    }

    pub fn set_wmask_u32(&mut self, offset: u16, mask: u32) {
        self.set_wmask(offset, &mask.to_le_bytes());
    }

    /// Makes the bits of `mask` at `offset` cleared by writing 1.
    pub fn set_w1cmask_u16(&mut self, offset: u16, mask: u16) {
        let o = usize::from(offset);
        self.w1cmask[o..o + 2].copy_from_slice(&mask.to_le_bytes());
    }
}

/// The offset of BAR register `index`.
pub fn bar_register(index: usize) -> u16 {
    reg::BAR0 + 4 * index as u16
}

/// Whether `[offset, offset + len)` overlaps `[at, at + size)`.
pub fn overlaps(offset: u16, len: usize, at: u16, size: usize) -> bool {
    usize::from(offset) < usize::from(at) + size && usize::from(at) < usize::from(offset) + len
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
