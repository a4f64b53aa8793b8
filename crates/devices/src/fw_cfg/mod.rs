//! QEMU's firmware configuration device (fw_cfg), as QEMU's
//! `docs/specs/fw_cfg.txt` specifies it for x86: a selector at port 0x510,
//! a data port at 0x511 and a DMA address register at 0x514-0x51b, through
//! which firmware (SeaBIOS) reads what the machine is made of: RAM, CPUs,
//! boot order, the memory map and the ACPI tables with the commands that
//! link them ([`loader`]).
//!
//! The device is a set of items built once per boot ([`FwCfgBuilder`])
//! plus the guest's cursor into them; the only change after that is a
//! one-time refresh of some files when firmware first selects one
//! ([`FwCfg::refresh_on_first_select`]). Nothing the guest
//! writes can change an item: every item is read-only, so a DMA write
//! request sets the error bit, as QEMU does for its read-only items. DMA goes
//! through vm-memory's checked accessors: a descriptor or buffer outside
//! RAM sets the error bit or is dropped, never more.
//!
//! Written here rather than taken from a crate: no published crate provides
//! fw_cfg as a device model (Cloud Hypervisor's lives inside its own
//! `devices` crate).

pub mod loader;

use std::collections::BTreeMap;

use rvirt_bus::BusDevice;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// The ports: selector (and 1-byte data), data, DMA address (high, low).
pub const PORT_BASE: u16 = 0x510;
/// From the selector to the end of the DMA address register.
pub const PORT_LEN: u16 = 12;
const OFF_SELECTOR: u64 = 0;
const OFF_DATA: u64 = 1;
const OFF_DMA_HIGH: u64 = 4;
const OFF_DMA_LOW: u64 = 8;

/// The legacy keys (fw_cfg.txt's "selector keys"); new content goes in files.
pub mod keys {
    pub const SIGNATURE: u16 = 0x00;
    pub const ID: u16 = 0x01;
    pub const UUID: u16 = 0x02;
    pub const RAM_SIZE: u16 = 0x03;
    pub const NOGRAPHIC: u16 = 0x04;
    pub const NB_CPUS: u16 = 0x05;
    pub const NUMA: u16 = 0x0d;
    pub const BOOT_MENU: u16 = 0x0e;
    pub const MAX_CPUS: u16 = 0x0f;
    pub const FILE_DIR: u16 = 0x19;
    /// Files take keys from here on, in name order.
    pub const FILE_FIRST: u16 = 0x20;
    /// x86's own keys.
    pub const ACPI_TABLES: u16 = 0x8000;
    pub const SMBIOS_ENTRIES: u16 = 0x8001;
    pub const IRQ0_OVERRIDE: u16 = 0x8002;
    pub const E820_TABLE: u16 = 0x8003;
}

/// ID bits: the port interface, and DMA.
const ID_TRADITIONAL: u32 = 1 << 0;
const ID_DMA: u32 = 1 << 1;

/// DMA control bits (big-endian in the descriptor).
pub mod dma {
    pub const ERROR: u32 = 0x01;
    pub const READ: u32 = 0x02;
    pub const SKIP: u32 = 0x04;
    pub const SELECT: u32 = 0x08;
    pub const WRITE: u32 = 0x10;
}

/// What a read of the DMA register returns: "QEMU CFG", big-endian.
const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// A file name's room in the directory, NUL included.
pub const FILE_NAME_MAX: usize = 56;
/// Size of one DMA descriptor: control, length (u32), address (u64).
const DESCRIPTOR_LEN: u64 = 16;
/// The most bytes one DMA step copies through a host buffer.
const CHUNK: usize = 64 << 10;

/// Errors building the item set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    #[error("file name '{0}' is empty or longer than 55 bytes")]
    BadName(String),
    #[error("file '{0}' is given twice")]
    Duplicate(String),
    #[error("file '{name}' is {len} bytes; an item holds at most 4 GiB")]
    TooLarge { name: String, len: usize },
    #[error("too many files")]
    TooMany,
}

/// The items of one boot, before the guest sees them.
#[derive(Debug, Default, Clone)]
pub struct FwCfgBuilder {
    legacy: BTreeMap<u16, Vec<u8>>,
    files: BTreeMap<String, Vec<u8>>,
}

impl FwCfgBuilder {
    /// The items every fw_cfg device has: signature and ID (DMA
    /// supported).
    pub fn new() -> Self {
        let mut b = FwCfgBuilder::default();
        b.legacy(keys::SIGNATURE, b"QEMU".to_vec());
        b.legacy(keys::ID, (ID_TRADITIONAL | ID_DMA).to_le_bytes().to_vec());
        b
    }

    /// Sets a legacy (numbered) item.
    pub fn legacy(&mut self, key: u16, data: Vec<u8>) -> &mut Self {
        self.legacy.insert(key, data);
        self
    }

    /// Adds a named file.
    pub fn file(&mut self, name: &str, data: Vec<u8>) -> Result<&mut Self, FwCfgError> {
        if name.is_empty() || name.len() >= FILE_NAME_MAX || name.contains('\0') {
            return Err(FwCfgError::BadName(name.into()));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge {
                name: name.into(),
                len: data.len(),
            });
        }
        if self.files.contains_key(name) {
            return Err(FwCfgError::Duplicate(name.into()));
        }
        if self.files.len() >= usize::from(0x4000 - keys::FILE_FIRST) {
            return Err(FwCfgError::TooMany);
        }
        self.files.insert(name.into(), data);
        Ok(self)
    }

    /// Whether a file of this name was added.
    pub fn has_file(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// The key a file gets: files are numbered in name order, as QEMU does
    /// on every machine type since 2.5.
    pub fn file_key(&self, name: &str) -> Option<u16> {
        let index = self.files.keys().position(|n| n == name)?;
        Some(keys::FILE_FIRST + index as u16)
    }

    /// The device over `memory`, with the file directory built.
    pub fn build(&self, memory: GuestMemoryMmap) -> FwCfg {
        let mut items = self.legacy.clone();
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (i, (name, data)) in self.files.iter().enumerate() {
            let key = keys::FILE_FIRST + i as u16;
            dir.extend_from_slice(&(data.len() as u32).to_be_bytes());
            dir.extend_from_slice(&key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut n = [0u8; FILE_NAME_MAX];
            n[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&n);
            items.insert(key, data.clone());
        }
        items.insert(keys::FILE_DIR, dir);
        FwCfg {
            items,
            names: self
                .files
                .keys()
                .enumerate()
                .map(|(i, n)| (n.clone(), keys::FILE_FIRST + i as u16))
                .collect(),
            refresh: None,
            selector: None,
            offset: 0,
            dma_high: 0,
            memory,
            dma_errors: 0,
        }
    }
}

/// Makes new contents for some files: (name, bytes) pairs.
pub type Refresher = Box<dyn FnOnce() -> Vec<(String, Vec<u8>)> + Send>;

/// Files remade when firmware first selects one of them.
struct Refresh {
    keys: Vec<u16>,
    make: Refresher,
}

/// The device: the items and the guest's cursor.
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    /// Each file's key.
    names: BTreeMap<String, u16>,
    refresh: Option<Refresh>,
    /// The selected item's key, `None` for a key with no item.
    selector: Option<u16>,
    /// The read offset into the selected item.
    offset: u32,
    /// The high half of the DMA address, until the low half arrives.
    dma_high: u32,
    memory: GuestMemoryMmap,
    /// DMA requests that ended with the error bit, for the debug log.
    dma_errors: u64,
}

impl FwCfg {
    /// Has the first selection of any of `files` replace their contents
    /// (and any other file's `make` returns) with what `make` returns then,
    /// once, as QEMU's `acpi_build_update` rebuilds the ACPI tables when
    /// firmware first reads them, after it has placed the BARs. A file
    /// keeps its size: firmware read the sizes from the directory already,
    /// so new contents of another size are dropped with a warning (the
    /// caller pads them to a fixed size).
    pub fn refresh_on_first_select(&mut self, files: &[&str], make: Refresher) {
        let keys = files
            .iter()
            .filter_map(|f| self.names.get(*f).copied())
            .collect();
        self.refresh = Some(Refresh { keys, make });
    }

    fn select(&mut self, key: u16) {
        // The write bit (0x4000) is ignored: no item is writable.
        let key = key & !0x4000;
        if self.refresh.as_ref().is_some_and(|r| r.keys.contains(&key)) {
            if let Some(r) = self.refresh.take() {
                self.replace((r.make)());
            }
        }
        self.selector = self.items.contains_key(&key).then_some(key);
        self.offset = 0;
    }

    fn replace(&mut self, files: Vec<(String, Vec<u8>)>) {
        for (name, data) in files {
            let Some(item) = self.names.get(&name).and_then(|k| self.items.get_mut(k)) else {
                tracing::warn!(name, "fw_cfg: no such file to refresh");
                continue;
            };
            if item.len() == data.len() {
                *item = data;
            } else {
                tracing::warn!(
                    name,
                    was = item.len(),
                    now = data.len(),
                    "fw_cfg: a refreshed file changed size; firmware gets the old one"
                );
            }
        }
    }

    fn current(&self) -> &[u8] {
        self.selector
            .and_then(|k| self.items.get(&k))
            .map_or(&[][..], |v| v.as_slice())
    }

    /// The next byte of the selected item; 0 past its end or with none.
    fn read_byte(&mut self) -> u8 {
        let b = self.current().get(self.offset as usize).copied();
        match b {
            Some(b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }

    /// The number of DMA requests that failed.
    pub fn dma_errors(&self) -> u64 {
        self.dma_errors
    }

    /// Runs the DMA request whose descriptor is at `addr`, then writes its
    /// control word back: 0, or the error bit.
    fn dma(&mut self, addr: u64) {
        let mut desc = [0u8; DESCRIPTOR_LEN as usize];
        let at = GuestAddress(addr);
        if addr.checked_add(DESCRIPTOR_LEN).is_none()
            || self.memory.read_slice(&mut desc, at).is_err()
        {
            // Nowhere to report to: as QEMU, try to set the error bit
            // where the control word would be, and otherwise drop it.
            self.dma_errors += 1;
            let _ = self.memory.write_slice(&dma::ERROR.to_be_bytes(), at);
            return;
        }
        let control = u32::from_be_bytes(desc[0..4].try_into().unwrap_or_default());
        let length = u32::from_be_bytes(desc[4..8].try_into().unwrap_or_default());
        let address = u64::from_be_bytes(desc[8..16].try_into().unwrap_or_default());
        let status = self.transfer(control, length, address);
        if status & dma::ERROR != 0 {
            self.dma_errors += 1;
        }
        let _ = self.memory.write_slice(&status.to_be_bytes(), at);
    }

    /// One request's transfer, as QEMU's `fw_cfg_dma_transfer`: reads copy
    /// the item and zero-fill past its end, skips move the offset, writes
    /// fail (no item is writable). Returns the control word to write back.
    fn transfer(&mut self, control: u32, length: u32, address: u64) -> u32 {
        if control & dma::SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let (read, write) = if control & dma::READ != 0 {
            (true, false)
        } else if control & dma::WRITE != 0 {
            (false, true)
        } else if control & dma::SKIP != 0 {
            (false, false)
        } else {
            return 0;
        };
        if write && length > 0 {
            return dma::ERROR;
        }
        let mut remaining = u64::from(length);
        let mut address = address;
        let zeros = [0u8; 4096];
        while remaining > 0 {
            let item = self.current();
            let offset = self.offset as usize;
            let available = item.len().saturating_sub(offset);
            let n;
            if available == 0 {
                // Past the end (or no item): a read gets zeros, as QEMU's.
                n = remaining.min(zeros.len() as u64) as usize;
                if read && self.write_guest(&zeros[..n], address).is_err() {
                    return dma::ERROR;
                }
            } else {
                n = remaining.min(available as u64).min(CHUNK as u64) as usize;
                if read {
                    let chunk = item[offset..offset + n].to_vec();
                    if self.write_guest(&chunk, address).is_err() {
                        return dma::ERROR;
                    }
                }
                self.offset += n as u32;
            }
            remaining -= n as u64;
            address = address.wrapping_add(n as u64);
        }
        0
    }

    fn write_guest(&self, data: &[u8], address: u64) -> Result<(), ()> {
        if address.checked_add(data.len() as u64).is_none() {
            return Err(());
        }
        self.memory
            .write_slice(data, GuestAddress(address))
            .map_err(|_| ())
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data.len()) {
            // One byte per read; KVM hands a `rep insb` over as one longer
            // read, which is that many byte reads in a row.
            (OFF_SELECTOR | OFF_DATA, _) => {
                for b in data.iter_mut() {
                    *b = self.read_byte();
                }
            }
            (OFF_DMA_HIGH..=15, _) => {
                // The DMA register reads as its signature, big-endian.
                let sig = DMA_SIGNATURE.to_be_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    let at = (offset - OFF_DMA_HIGH) as usize + i;
                    *b = sig.get(at).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (OFF_SELECTOR, 2) => self.select(u16::from_le_bytes([data[0], data[1]])),
            // Writes to the data port are ignored since QEMU 2.4.
            (OFF_SELECTOR | OFF_DATA, 1) => {}
            (OFF_DMA_HIGH, 4) => {
                self.dma_high = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            }
            (OFF_DMA_LOW, 4) => {
                let low = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let addr = (u64::from(self.dma_high) << 32) | u64::from(low);
                self.dma_high = 0;
                self.dma(addr);
            }
            (OFF_DMA_HIGH, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(data);
                self.dma_high = 0;
                self.dma(u64::from_be_bytes(b));
            }
            _ => tracing::debug!(offset, len = data.len(), "fw_cfg: ignored write"),
        }
    }
}

/// One entry of `etc/e820`: address, length, type (little-endian, packed).
pub fn e820_entry(address: u64, length: u64, kind: u32) -> [u8; 20] {
    let mut e = [0u8; 20];
    e[0..8].copy_from_slice(&address.to_le_bytes());
    e[8..16].copy_from_slice(&length.to_le_bytes());
    e[16..20].copy_from_slice(&kind.to_le_bytes());
    e
}

#[cfg(test)]
mod tests;
