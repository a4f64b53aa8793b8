//! The I/O bus that vCPU exits are dispatched through.
//!
//! A [`Bus`] maps address ranges (port I/O or MMIO) to devices. A device sees
//! only the offset of an access inside its own range, never the absolute
//! address, so the same device model can sit at any base, and move: a PCI
//! BAR is placed by the guest and may be moved at any time, so ranges can
//! be added, removed and moved while vCPUs run ([`Bus::insert`],
//! [`Bus::remove`], [`Bus::relocate`]).
//!
//! Lock order: lookups take no lock. The range map is an immutable snapshot
//! behind an [`ArcSwap`]: a vCPU loads the current snapshot (lock-free, no
//! shared counter to bounce between CPUs in the common case) and dispatches
//! through it; a change copies the map, edits the copy and swaps it in,
//! serialized by a writers-only mutex. A `RwLock` would also work, but every
//! exit would then write the lock's reader count, one cache line shared by
//! all vCPUs, to protect a map that changes a handful of times per boot.
//! An access racing a move may still reach the device at its old address,
//! as on hardware while a BAR is being reprogrammed.
//!
//! Each device has its own mutex, taken for the duration of one access. A
//! device never takes another device's lock while holding its own, and never
//! calls back into the bus, so two vCPUs touching two devices never contend
//! and cannot deadlock. The writers' mutex is never held while a device
//! lock is taken.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// A device reachable through a [`Bus`].
pub trait BusDevice: Send {
    /// Reads `data.len()` bytes at `offset` inside the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` inside the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A shared, individually locked device.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors changing a bus's map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range is empty or wraps around the address space.
    #[error("invalid range {base:#x}+{len:#x}")]
    InvalidRange { base: u64, len: u64 },
    /// The new range overlaps one that is already taken.
    #[error("range {base:#x}+{len:#x} overlaps the device at {other:#x}")]
    Overlap { base: u64, len: u64, other: u64 },
    /// No device starts at this address.
    #[error("no device at {0:#x}")]
    NotFound(u64),
}

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
}

type Map = BTreeMap<u64, Entry>;

/// An address space (port I/O or MMIO) of devices.
pub struct Bus {
    name: &'static str,
    ranges: ArcSwap<Map>,
    /// Serializes changes (load, copy, edit, store); readers never take it.
    writer: Mutex<()>,
    unhandled: AtomicU64,
}

/// `[base, base + len)`, if it is a valid range.
fn end_of(base: u64, len: u64) -> Result<u64, BusError> {
    base.checked_add(len)
        .filter(|_| len > 0)
        .ok_or(BusError::InvalidRange { base, len })
}

/// Refuses `[base, base + len)` if any range of `map` overlaps it.
fn check_free(map: &Map, base: u64, len: u64) -> Result<(), BusError> {
    let end = end_of(base, len)?;
    // The only candidate for overlap is the nearest range starting at or
    // below `end - 1`.
    if let Some((&other, entry)) = map.range(..end).next_back() {
        if other + entry.len > base {
            return Err(BusError::Overlap { base, len, other });
        }
    }
    Ok(())
}

impl Bus {
    /// Creates an empty bus; `name` appears in log lines ("pio", "mmio").
    pub fn new(name: &'static str) -> Self {
        Bus {
            name,
            ranges: ArcSwap::from_pointee(Map::new()),
            writer: Mutex::new(()),
            unhandled: AtomicU64::new(0),
        }
    }

    /// Applies `edit` to a copy of the map and publishes it if it succeeds;
    /// on error the map is left as it was.
    fn change<T>(&self, edit: impl FnOnce(&mut Map) -> Result<T, BusError>) -> Result<T, BusError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = Map::clone(&self.ranges.load());
        let out = edit(&mut map)?;
        self.ranges.store(Arc::new(map));
        Ok(out)
    }

    /// Places `device` at `[base, base + len)`.
    pub fn insert(&self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        self.change(|map| {
            check_free(map, base, len)?;
            map.insert(base, Entry { len, device });
            Ok(())
        })
    }

    /// Takes the device at `base` off the bus and returns it.
    pub fn remove(&self, base: u64) -> Result<SharedDevice, BusError> {
        self.change(|map| {
            map.remove(&base)
                .map(|e| e.device)
                .ok_or(BusError::NotFound(base))
        })
    }

    /// Moves the device at `old` to `[new, new + len)` in one step: no
    /// lookup sees it at both places or at neither. Refused (and nothing
    /// changes) if the new range overlaps another device's.
    pub fn relocate(&self, old: u64, new: u64, len: u64) -> Result<(), BusError> {
        self.change(|map| {
            let entry = map.remove(&old).ok_or(BusError::NotFound(old))?;
            check_free(map, new, len)?;
            map.insert(
                new,
                Entry {
                    len,
                    device: entry.device,
                },
            );
            Ok(())
        })
    }

    /// The `(base, len)` of every range, in address order.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.ranges
            .load()
            .iter()
            .map(|(&b, e)| (b, e.len))
            .collect()
    }

    /// The device and the offset of `[addr, addr + size)` inside it.
    fn resolve(&self, addr: u64, size: usize) -> Option<(SharedDevice, u64)> {
        let map = self.ranges.load();
        let (&base, entry) = map.range(..=addr).next_back()?;
        let offset = addr - base;
        // The whole access must fit in the device's range.
        (offset.checked_add(size as u64)? <= entry.len).then(|| (entry.device.clone(), offset))
    }

    /// Dispatches a read. Returns false (and fills `data` with 0xff, as an
    /// unclaimed ISA/MMIO read floats high) when no device claims `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((device, offset)) => {
                lock(&device).read(offset, data);
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
            Some((device, offset)) => {
                lock(&device).write(offset, data);
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
mod tests;
