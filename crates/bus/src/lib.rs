//! The I/O bus that vCPU exits are dispatched through.
//!
//! A [`Bus`] maps address ranges (port I/O or MMIO) to devices. A device sees
//! only the offset of an access inside its own range, never the absolute
//! address, so the same device model can sit at any base.
//!
//! Lock order: the range map is immutable once the machine is built, so
//! lookups take no lock. Each device has its own mutex, taken for the duration
//! of one access. A device never takes another device's lock while holding its
//! own, and never calls back into the bus, so two vCPUs touching two devices
//! never contend and cannot deadlock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A device reachable through a [`Bus`].
pub trait BusDevice: Send {
    /// Reads `data.len()` bytes at `offset` inside the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` inside the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A shared, individually locked device.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// A line into the interrupt controller that a device can drive.
///
/// Edge-triggered devices usually use an irqfd instead; this is for level
/// semantics (such as the ACPI SCI) where the device must both raise and lower
/// the line.
pub trait InterruptLine: Send + Sync {
    /// Sets the line's level.
    fn set_level(&self, high: bool);
}

/// What a device can ask of the machine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmRequest {
    /// The guest powered itself off (ACPI S5).
    PowerOff,
    /// The guest asked for a reset (i8042 pulse, triple fault).
    Reset,
    /// The guest reported a panic (pvpanic).
    Panic,
}

/// Receives [`VmRequest`]s from devices. Implementations must return at once:
/// they are called on vCPU threads in the middle of an exit.
pub trait VmControl: Send + Sync {
    /// Posts a request; the machine acts on it outside the device's lock.
    fn request(&self, request: VmRequest);
}

/// Errors building a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range is empty or wraps around the address space.
    #[error("invalid range {base:#x}+{len:#x}")]
    InvalidRange { base: u64, len: u64 },
    /// The new range overlaps one that is already taken.
    #[error("range {base:#x}+{len:#x} overlaps the device at {other:#x}")]
    Overlap { base: u64, len: u64, other: u64 },
}

struct Entry {
    len: u64,
    device: SharedDevice,
}

/// An address space (port I/O or MMIO) of devices.
pub struct Bus {
    name: &'static str,
    ranges: BTreeMap<u64, Entry>,
    unhandled: AtomicU64,
}

impl Bus {
    /// Creates an empty bus; `name` appears in log lines ("pio", "mmio").
    pub fn new(name: &'static str) -> Self {
        Bus {
            name,
            ranges: BTreeMap::new(),
            unhandled: AtomicU64::new(0),
        }
    }

    /// Places `device` at `[base, base + len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        // The only candidates for overlap are the nearest range starting at or
        // below `end - 1`.
        if let Some((&other, entry)) = self.ranges.range(..end).next_back() {
            if other + entry.len > base {
                return Err(BusError::Overlap { base, len, other });
            }
        }
        self.ranges.insert(base, Entry { len, device });
        Ok(())
    }

    fn resolve(&self, addr: u64, size: usize) -> Option<(&Entry, u64)> {
        let (&base, entry) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        // The whole access must fit in the device's range.
        (offset.checked_add(size as u64)? <= entry.len).then_some((entry, offset))
    }

    /// Dispatches a read. Returns false (and fills `data` with 0xff, as an
    /// unclaimed ISA/MMIO read floats high) when no device claims `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((entry, offset)) => {
                lock(&entry.device).read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                self.note_unhandled("read", addr, data.len());
                false
            }
        }
    }

    /// Dispatches a write. Returns false when no device claims `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((entry, offset)) => {
                lock(&entry.device).write(offset, data);
                true
            }
            None => {
                self.note_unhandled("write", addr, data.len());
                false
            }
        }
    }

    /// How many accesses no device claimed.
    pub fn unhandled(&self) -> u64 {
        self.unhandled.load(Ordering::Relaxed)
    }

    fn note_unhandled(&self, what: &str, addr: u64, len: usize) {
        self.unhandled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            bus = self.name,
            addr = format_args!("{addr:#x}"),
            len,
            "unhandled {what}"
        );
    }
}

/// Locks a device, recovering from a poisoned mutex: a device that panicked
/// mid-access is still in a consistent-enough state for the guest to go on,
/// and taking the whole VMM down would be worse.
fn lock(device: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_offset_and_counts_misses() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new("pio");
        bus.insert(dev.clone(), 0x3f8, 8).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b, [2]);
        assert!(bus.write(0x3ff, &[7]));
        assert_eq!(dev.lock().unwrap().writes, vec![(7, vec![7])]);
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(b, [0xff]);
        // An access straddling the end of the range is not the device's.
        let mut w = [0u8; 2];
        assert!(!bus.read(0x3ff, &mut w));
        assert_eq!(bus.unhandled(), 2);
    }

    #[test]
    fn refuses_overlaps_and_bad_ranges() {
        let mut bus = Bus::new("mmio");
        let d = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(d(), 0x1000, 0x100).unwrap();
        assert!(matches!(
            bus.insert(d(), 0x10ff, 1),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(d(), 0xf01, 0x100),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(d(), 0x2000, 0),
            Err(BusError::InvalidRange { .. })
        ));
        assert!(matches!(
            bus.insert(d(), u64::MAX, 2),
            Err(BusError::InvalidRange { .. })
        ));
        bus.insert(d(), 0x1100, 0x100).unwrap();
        bus.insert(d(), 0xf00, 0x100).unwrap();
    }
}
