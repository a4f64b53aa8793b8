//! MSI-X: the capability in configuration space, and the vector table and
//! pending bit array (PBA) the guest reaches through a BAR.
//!
//! [`Msix`] keeps the table, the mask and pending bits and the capability's
//! enable and function-mask bits, and delivers through the machine's
//! [`MsiVectors`] (a KVM GSI route and an irqfd per vector in the VMM):
//! a vector's message is routed when the guest unmasks it with a new
//! message, a vector raised while masked (or while the function is masked)
//! latches its pending bit and fires when unmasked, as the PCI spec asks.
//! It is shared by the function (BAR and capability accesses, vCPU
//! threads) and its interrupt source (the device's event loop), behind one
//! short mutex that is a leaf of the lock order.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_platform::{MsiMessage, MsiVectors};

use crate::config::ConfigSpace;

/// The MSI-X capability's ID.
pub const CAP_ID: u8 = 0x11;
/// Its length in configuration space.
pub const CAP_LEN: u8 = 12;
/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
/// The most vectors a table has.
pub const MAX_VECTORS: u16 = 2048;
/// Message Control: MSI-X Enable.
pub const ENABLE: u16 = 1 << 15;
/// Message Control: Function Mask.
pub const FUNCTION_MASK: u16 = 1 << 14;
/// Vector Control: Mask Bit.
const VECTOR_MASKED: u32 = 1;

/// Where the capability, the table and the PBA are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCapability {
    /// The capability's offset in configuration space.
    pub offset: u16,
    pub vectors: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

impl MsixCapability {
    /// Adds the capability to `cfg`: `vectors` entries at `table_offset`
    /// of BAR `table_bar`, the PBA at `pba_offset` of BAR `pba_bar`
    /// (offsets 8-byte aligned).
    ///
    /// # Panics
    /// On a layout the spec forbids (a device model bug).
    pub fn add(cfg: &mut ConfigSpace, vectors: u16, table: (u8, u32), pba: (u8, u32)) -> Self {
        Self::add_maybe_at(cfg, None, vectors, table, pba)
    }

    /// [`MsixCapability::add`] at the fixed offset `at` (see
    /// [`ConfigSpace::add_capability_at`]), for a model that matches
    /// QEMU's layout (e1000e's MSI-X at 0xa0).
    pub fn add_at(
        cfg: &mut ConfigSpace,
        at: u16,
        vectors: u16,
        table: (u8, u32),
        pba: (u8, u32),
    ) -> Self {
        Self::add_maybe_at(cfg, Some(at), vectors, table, pba)
    }

    fn add_maybe_at(
        cfg: &mut ConfigSpace,
        at: Option<u16>,
        vectors: u16,
        (table_bar, table_offset): (u8, u32),
        (pba_bar, pba_offset): (u8, u32),
    ) -> Self {
        assert!((1..=MAX_VECTORS).contains(&vectors), "MSI-X vectors");
        assert!(table_bar < 6 && pba_bar < 6 && (table_offset | pba_offset) & 7 == 0);
        let offset = match at {
            Some(at) => cfg.add_capability_at(at, CAP_ID, CAP_LEN),
            None => cfg.add_capability(CAP_ID, CAP_LEN),
        };
        cfg.set_u16(offset + 2, vectors - 1);
        cfg.set_wmask_u16(offset + 2, ENABLE | FUNCTION_MASK);
        cfg.set_u32(offset + 4, table_offset | u32::from(table_bar));
        cfg.set_u32(offset + 8, pba_offset | u32::from(pba_bar));
        MsixCapability {
            offset,
            vectors,
            table_bar,
            table_offset,
            pba_bar,
            pba_offset,
        }
    }

    /// Whether a config write of `len` bytes at `offset` reached Message
    /// Control.
    pub fn control_written(&self, offset: u16, len: usize) -> bool {
        crate::config::overlaps(offset, len, self.offset + 2, 2)
    }

    /// Message Control's (enable, function mask) as the guest wrote them.
    pub fn control(&self, cfg: &ConfigSpace) -> (bool, bool) {
        let c = cfg.read_u16(self.offset + 2);
        (c & ENABLE != 0, c & FUNCTION_MASK != 0)
    }

    /// The table's bytes in its BAR.
    pub fn table_len(&self) -> u64 {
        u64::from(self.vectors) * ENTRY_SIZE
    }

    /// The PBA's bytes in its BAR (whole quadwords).
    pub fn pba_len(&self) -> u64 {
        u64::from(self.vectors).div_ceil(64) * 8
    }

    /// If `offset` of BAR `bar` falls in the table, the offset inside it.
    pub fn in_table(&self, bar: u8, offset: u64) -> Option<u64> {
        let off = offset.checked_sub(u64::from(self.table_offset))?;
        (bar == self.table_bar && off < self.table_len()).then_some(off)
    }

    /// If `offset` of BAR `bar` falls in the PBA, the offset inside it.
    pub fn in_pba(&self, bar: u8, offset: u64) -> Option<u64> {
        let off = offset.checked_sub(u64::from(self.pba_offset))?;
        (bar == self.pba_bar && off < self.pba_len()).then_some(off)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    address: u64,
    data: u32,
    control: u32,
}

impl Default for Entry {
    fn default() -> Self {
        // Every vector starts masked.
        Entry {
            address: 0,
            data: 0,
            control: VECTOR_MASKED,
        }
    }
}

impl Entry {
    fn bytes(&self) -> [u8; 16] {
        let mut b = [0; 16];
        b[0..8].copy_from_slice(&self.address.to_le_bytes());
        b[8..12].copy_from_slice(&self.data.to_le_bytes());
        b[12..16].copy_from_slice(&self.control.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8; 16]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        Entry {
            address: u64::from(u32_at(0)) | (u64::from(u32_at(4)) << 32),
            data: u32_at(8),
            // Only the mask bit is defined; the rest reads as zero.
            control: u32_at(12) & VECTOR_MASKED,
        }
    }

    fn message(&self) -> MsiMessage {
        MsiMessage {
            address: self.address,
            data: self.data,
        }
    }
}

struct State {
    entries: Vec<Entry>,
    pending: Vec<bool>,
    enabled: bool,
    function_masked: bool,
    /// The message each vector is routed to in the machine.
    routed: Vec<Option<MsiMessage>>,
}

/// One function's MSI-X vectors: table, PBA, and delivery.
pub struct Msix {
    state: Mutex<State>,
    out: Arc<dyn MsiVectors>,
}

impl std::fmt::Debug for Msix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msix")
            .field("vectors", &self.count())
            .finish()
    }
}

impl Msix {
    /// `vectors` vectors delivered through `out` (which has at least as
    /// many).
    pub fn new(vectors: u16, out: Arc<dyn MsiVectors>) -> Self {
        let n = usize::from(vectors.min(MAX_VECTORS));
        Msix {
            state: Mutex::new(State {
                entries: vec![Entry::default(); n],
                pending: vec![false; n],
                enabled: false,
                function_masked: false,
                routed: vec![None; n],
            }),
            out,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many vectors.
    pub fn count(&self) -> u16 {
        self.lock().entries.len() as u16
    }

    /// Whether the guest enabled MSI-X (the function then signals nothing
    /// on INTx).
    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// The guest wrote Message Control.
    pub fn set_control(&self, enabled: bool, function_masked: bool) {
        let mut st = self.lock();
        st.enabled = enabled;
        st.function_masked = function_masked;
        for v in 0..st.entries.len() {
            self.update(&mut st, v);
        }
    }

    /// Reads the table; bytes outside it read as zero.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        let st = self.lock();
        for (i, b) in data.iter_mut().enumerate() {
            let Some(at) = offset.checked_add(i as u64) else {
                *b = 0;
                continue;
            };
            let entry = usize::try_from(at / ENTRY_SIZE).unwrap_or(usize::MAX);
            *b = st
                .entries
                .get(entry)
                .map_or(0, |e| e.bytes()[(at % ENTRY_SIZE) as usize]);
        }
    }

    /// Writes the table. Only aligned 4- and 8-byte accesses inside it
    /// count, as the spec allows no others; the rest is dropped.
    pub fn write_table(&self, offset: u64, data: &[u8]) {
        let len = data.len() as u64;
        if !(len == 4 || len == 8) || !offset.is_multiple_of(len) {
            tracing::debug!(offset, len, "MSI-X table write of an unsupported size");
            return;
        }
        let mut st = self.lock();
        let v = usize::try_from(offset / ENTRY_SIZE).unwrap_or(usize::MAX);
        let Some(entry) = st.entries.get(v).copied() else {
            tracing::debug!(offset, "MSI-X table write past the table");
            return;
        };
        let mut bytes = entry.bytes();
        let at = (offset % ENTRY_SIZE) as usize;
        bytes[at..at + data.len()].copy_from_slice(data);
        st.entries[v] = Entry::from_bytes(&bytes);
        self.update(&mut st, v);
    }

    /// Reads the PBA; bytes outside it read as zero. Writes to the PBA are
    /// ignored: it is read-only.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        let st = self.lock();
        for (i, b) in data.iter_mut().enumerate() {
            let bit0 = offset.checked_add(i as u64).and_then(|o| o.checked_mul(8));
            *b = (0..8).fold(0u8, |acc, k| {
                let set = bit0
                    .and_then(|b| usize::try_from(b + k).ok())
                    .and_then(|v| st.pending.get(v).copied())
                    .unwrap_or(false);
                acc | (u8::from(set) << k)
            });
        }
    }

    /// Whether vector `v` is masked (by its own bit or the function's).
    pub fn masked(&self, v: u16) -> bool {
        let st = self.lock();
        st.function_masked
            || st
                .entries
                .get(usize::from(v))
                .is_none_or(|e| e.control & VECTOR_MASKED != 0)
    }

    /// Whether vector `v`'s pending bit is set.
    pub fn pending(&self, v: u16) -> bool {
        self.lock()
            .pending
            .get(usize::from(v))
            .copied()
            .unwrap_or(false)
    }

    /// Clears vector `v`'s pending bit without delivering it (a device
    /// whose driver asks for that, as e1000e's PBACLR).
    pub fn clear_pending(&self, v: u16) {
        if let Some(p) = self.lock().pending.get_mut(usize::from(v)) {
            *p = false;
        }
    }

    /// Signals vector `v`: delivered now if it is enabled and unmasked,
    /// else its pending bit latches. Fails for a vector the table lacks
    /// or when the machine cannot deliver.
    pub fn trigger(&self, v: u16) -> io::Result<()> {
        let mut st = self.lock();
        let i = usize::from(v);
        let Some(entry) = st.entries.get(i).copied() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no MSI-X vector {v}"),
            ));
        };
        if !st.enabled || st.function_masked || entry.control & VECTOR_MASKED != 0 {
            st.pending[i] = true;
            return Ok(());
        }
        self.route(&mut st, i)?;
        self.out.raise(v)
    }

    /// Back to the power-on state: disabled, every vector masked, no
    /// routes.
    pub fn reset(&self) {
        let mut st = self.lock();
        for v in 0..st.entries.len() {
            if st.routed[v].take().is_some() {
                if let Err(error) = self.out.route(v as u16, None) {
                    tracing::warn!(%error, "cannot remove an MSI-X route");
                }
            }
            st.entries[v] = Entry::default();
            st.pending[v] = false;
        }
        st.enabled = false;
        st.function_masked = false;
    }

    /// Routes vector `i` to its message if that changed.
    fn route(&self, st: &mut State, i: usize) -> io::Result<()> {
        let message = st.entries[i].message();
        if st.routed[i] != Some(message) {
            self.out.route(i as u16, Some(message))?;
            st.routed[i] = Some(message);
        }
        Ok(())
    }

    /// After a change to vector `i` or to the function's control: route an
    /// unmasked vector's (new) message, and fire it if it was pending.
    fn update(&self, st: &mut State, i: usize) {
        let deliverable =
            st.enabled && !st.function_masked && st.entries[i].control & VECTOR_MASKED == 0;
        if !deliverable {
            return;
        }
        if let Err(error) = self.route(st, i) {
            tracing::warn!(%error, vector = i, "cannot route an MSI-X vector");
            return;
        }
        if std::mem::take(&mut st.pending[i]) {
            if let Err(error) = self.out.raise(i as u16) {
                tracing::warn!(%error, vector = i, "cannot deliver a pending MSI-X vector");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records routes and deliveries.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub(crate) log: Mutex<Vec<String>>,
    }

    impl MsiVectors for Recorder {
        fn count(&self) -> u16 {
            8
        }
        fn route(&self, vector: u16, message: Option<MsiMessage>) -> io::Result<()> {
            self.log.lock().unwrap().push(match message {
                Some(m) => format!("route {vector} {:#x}/{:#x}", m.address, m.data),
                None => format!("unroute {vector}"),
            });
            Ok(())
        }
        fn raise(&self, vector: u16) -> io::Result<()> {
            self.log.lock().unwrap().push(format!("raise {vector}"));
            Ok(())
        }
    }

    fn program(m: &Msix, v: u64, address: u64, data: u32) {
        m.write_table(v * 16, &(address as u32).to_le_bytes());
        m.write_table(v * 16 + 4, &((address >> 32) as u32).to_le_bytes());
        m.write_table(v * 16 + 8, &data.to_le_bytes());
    }

    fn unmask(m: &Msix, v: u64) {
        m.write_table(v * 16 + 12, &0u32.to_le_bytes());
    }

    #[test]
    fn a_masked_vector_latches_and_fires_on_unmask() {
        let out = Arc::new(Recorder::default());
        let m = Msix::new(4, out.clone());
        m.set_control(true, false);
        program(&m, 1, 0xfee0_0000, 0x41);
        m.trigger(1).unwrap();
        assert!(m.pending(1), "vectors start masked");
        let mut pba = [0u8; 8];
        m.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0b10);
        unmask(&m, 1);
        assert!(!m.pending(1));
        assert_eq!(
            *out.log.lock().unwrap(),
            ["route 1 0xfee00000/0x41", "raise 1"]
        );
        m.trigger(1).unwrap();
        assert_eq!(
            out.log.lock().unwrap().len(),
            3,
            "routed once, raised twice"
        );
    }

    #[test]
    fn the_function_mask_and_enable_gate_every_vector() {
        let out = Arc::new(Recorder::default());
        let m = Msix::new(2, out.clone());
        program(&m, 0, 0xfee0_0000, 0x30);
        unmask(&m, 0);
        m.trigger(0).unwrap();
        assert!(m.pending(0), "MSI-X not enabled yet");
        m.set_control(true, true);
        assert!(m.pending(0), "function masked");
        m.set_control(true, false);
        assert!(!m.pending(0));
        assert_eq!(
            *out.log.lock().unwrap(),
            ["route 0 0xfee00000/0x30", "raise 0"]
        );
        m.reset();
        assert_eq!(out.log.lock().unwrap().last().unwrap(), "unroute 0");
        assert!(m.masked(0) && !m.enabled());
    }

    #[test]
    fn odd_accesses_change_nothing_and_read_zero_outside() {
        let out = Arc::new(Recorder::default());
        let m = Msix::new(2, out.clone());
        m.write_table(1, &[0xff; 4]);
        m.write_table(0, &[0xff; 2]);
        m.write_table(32, &[0xff; 4]);
        m.write_table(u64::MAX - 3, &[0xff; 4]);
        let mut b = [0xaau8; 16];
        m.read_table(0, &mut b);
        assert_eq!(b, Entry::default().bytes());
        m.read_table(1 << 40, &mut b);
        assert_eq!(b, [0; 16]);
        assert!(m.trigger(2).is_err());
        let mut pba = [0xaau8; 3];
        m.read_pba(u64::MAX - 1, &mut pba);
        assert_eq!(pba, [0; 3]);
        // An 8-byte write sets both address halves at once.
        m.write_table(16, &0x1_fee0_0000u64.to_le_bytes());
        let mut a = [0u8; 8];
        m.read_table(16, &mut a);
        assert_eq!(u64::from_le_bytes(a), 0x1_fee0_0000);
        assert!(out.log.lock().unwrap().is_empty());
    }

    #[test]
    fn the_capability_lays_out_its_registers() {
        let ids = crate::config::Ids {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: 0x010000,
            subsystem_vendor: 0x1af4,
            subsystem: 2,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, false);
        let cap = MsixCapability::add(&mut cfg, 3, (1, 0), (1, 0x800));
        assert_eq!(cap.offset, 0x40);
        assert_eq!(cfg.read_u8(0x34), 0x40);
        assert_eq!(cfg.read_u16(0x42), 2, "table size N-1, disabled");
        assert_eq!(cfg.read_u32(0x44), 1);
        assert_eq!(cfg.read_u32(0x48), 0x801);
        cfg.write(0x42, &0xffffu16.to_le_bytes());
        assert_eq!(
            cfg.read_u16(0x42),
            0xc002,
            "only enable and mask are writable"
        );
        assert_eq!(cap.control(&cfg), (true, true));
        assert!(cap.control_written(0x40, 4) && !cap.control_written(0x44, 4));
        assert_eq!(cap.in_table(1, 0x2f), Some(0x2f));
        assert_eq!(cap.in_table(1, 0x30), None);
        assert_eq!(cap.in_pba(1, 0x800), Some(0));
        assert_eq!(cap.in_pba(0, 0x800), None);
    }
}
