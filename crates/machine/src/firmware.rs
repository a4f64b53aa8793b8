//! Firmware boot: the BIOS image mapped at the top of the 32-bit address
//! space with its last 128 KiB aliased below 1 MiB, the legacy BIOS area
//! (0xC0000-0xFFFFF) switchable between that ROM and RAM segment by
//! segment (what a chipset's PAM registers ask for), and the memory map
//! firmware is given. The vCPUs start at the real-mode reset vector (the
//! state KVM creates them in: CS base 0xFFFF0000, IP 0xFFF0), so nothing
//! here touches registers.
//!
//! Memory slots in firmware mode (direct kernel boot keeps one slot per RAM
//! region): RAM below the legacy area, RAM from 1 MiB, RAM above 4 GiB, the
//! ROM at the top, and one slot per legacy segment.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MemoryRegionAddress,
};

use crate::layout::{self, MemoryRange, RamLayout, E820_RAM, E820_RESERVED};

/// Errors loading or mapping firmware.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("could not read '{path}'")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{path}' is {size} bytes: a BIOS image is a multiple of 64 KiB, at most {max} KiB")]
    Size {
        path: PathBuf,
        size: usize,
        max: u64,
    },
    #[error("cannot map the BIOS image")]
    Map,
    #[error("KVM SET_USER_MEMORY_REGION failed for the BIOS area")]
    Slot(#[source] kvm_ioctls::Error),
}

/// The largest image: the ROM ends at 4 GiB and KVM's TSS and identity
/// map pages sit right below 256 KiB under it (where SeaBIOS expects them).
pub const MAX_SIZE: u64 = layout::MMIO_HOLE_END - layout::KVM_IDENTITY_MAP - 0x4000;
/// The part of the image the legacy area shows (0xE0000-0xFFFFF).
pub const ISA_BIOS_SIZE: u64 = 128 << 10;
/// The legacy BIOS area, as PAM divides it: 16 KiB segments from 0xC0000
/// to 0xEFFFF, then one of 64 KiB for 0xF0000-0xFFFFF.
pub const LEGACY_START: u64 = 0xc_0000;
pub const LEGACY_END: u64 = layout::HIGH_RAM_START;
const SEGMENTS: usize = 13;

/// A BIOS image read from disk.
#[derive(Debug, Clone)]
pub struct Firmware {
    path: PathBuf,
    image: Arc<[u8]>,
}

impl Firmware {
    /// Reads and checks an image.
    pub fn load(path: &Path) -> Result<Self, FirmwareError> {
        let image = std::fs::read(path).map_err(|source| FirmwareError::Read {
            path: path.to_owned(),
            source,
        })?;
        // QEMU asks for a multiple of 64 KiB too.
        if image.is_empty() || image.len() % 0x1_0000 != 0 || image.len() as u64 > MAX_SIZE {
            return Err(FirmwareError::Size {
                path: path.to_owned(),
                size: image.len(),
                max: MAX_SIZE >> 10,
            });
        }
        Ok(Firmware {
            path: path.to_owned(),
            image: image.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.image.len() as u64
    }

    /// Where the image starts: it ends at 4 GiB.
    pub fn base(&self) -> u64 {
        layout::MMIO_HOLE_END - self.size()
    }
}

/// How the legacy area behaves before firmware changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyArea {
    /// As QEMU's microvm (and isapc): the BIOS is RAM, writable, and the
    /// whole legacy area is plain RAM (holding the BIOS's last 128 KiB from
    /// 0xE0000); there are no PAM registers.
    WritableBios,
    /// As a PC chipset at reset: 0xE0000-0xFFFFF shows the ROM read-only,
    /// 0xC0000-0xDFFFF is unmapped; PAM registers switch each segment to
    /// RAM ([`BiosArea::set`]).
    Pam,
}

/// What firmware boot needs of the machine.
#[derive(Debug, Clone)]
pub struct FirmwareConfig {
    pub firmware: Firmware,
    pub legacy: LegacyArea,
}

/// What a legacy segment shows, as PAM's read/write enable bits choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentMode {
    /// Reads and writes go to the PCI side: the ROM where it is aliased
    /// (0xE0000-0xFFFFF), nothing elsewhere. PAM value 0.
    Rom,
    /// RAM, read-only (PAM 1: "read enable").
    RamReadOnly,
    /// RAM, read-write (PAM 3). PAM 2 ("write only") maps here too: KVM has
    /// no write-only memory, and firmware only uses that mode to copy
    /// itself, which read-write serves.
    Ram,
}

const SLOT_LOW: u32 = 0;
const SLOT_MID: u32 = 1;
const SLOT_HIGH: u32 = 2;
const SLOT_ROM: u32 = 3;
const SLOT_LEGACY: u32 = 4;

/// Segment `i`: (start, length).
fn segment(i: usize) -> (u64, u64) {
    if i < 12 {
        (LEGACY_START + i as u64 * 0x4000, 0x4000)
    } else {
        (0xf_0000, 0x1_0000)
    }
}

/// The legacy BIOS area and the ROM of one boot: owns the ROM's memory
/// and the memory slots that show it. Shared with the chipset device that
/// drives it (PAM on pc/q35); every change goes through one lock.
pub struct BiosArea {
    vm: Arc<VmFd>,
    rom: GuestRegionMmap,
    ram: GuestMemoryMmap,
    /// Each segment's mode, and whether it has a slot now.
    modes: Mutex<[(SegmentMode, bool); SEGMENTS]>,
    writable_rom: bool,
}

impl std::fmt::Debug for BiosArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiosArea")
            .field("rom_len", &self.rom.len())
            .field("writable_rom", &self.writable_rom)
            .finish()
    }
}

impl BiosArea {
    /// Maps the RAM around the legacy area, the ROM and the legacy
    /// segments into `vm`.
    pub(crate) fn map(
        vm: Arc<VmFd>,
        ram: &GuestMemoryMmap,
        layout: &RamLayout,
        cfg: &FirmwareConfig,
    ) -> Result<Self, FirmwareError> {
        let fw = &cfg.firmware;
        let rom = GuestRegionMmap::from_range(GuestAddress(fw.base()), fw.image.len(), None)
            .map_err(|_| FirmwareError::Map)?;
        rom.write_slice(&fw.image, MemoryRegionAddress(0))
            .map_err(|_| FirmwareError::Map)?;
        let writable_rom = cfg.legacy == LegacyArea::WritableBios;
        let area = BiosArea {
            vm,
            rom,
            ram: ram.clone(),
            modes: Mutex::new([(SegmentMode::Rom, false); SEGMENTS]),
            writable_rom,
        };
        area.set_slot(
            SLOT_ROM,
            fw.base(),
            area.rom.as_ptr(),
            fw.size(),
            !writable_rom,
        )?;
        if writable_rom {
            // As QEMU's microvm: the BIOS's last 128 KiB are RAM below
            // 1 MiB. Here they are a copy in guest RAM, so that what
            // firmware and fw_cfg's DMA write there (the RSDP, tables) is
            // what the guest reads; the copy at the top of 4 GiB is only
            // run at the reset vector, before the first far jump. A larger
            // image (bios-256k.bin) is copied whole, up to the 256 KiB of
            // the legacy area: what its own shadowing through PAM would
            // have copied, had there been a chipset.
            let shadow = fw.size().min(LEGACY_END - LEGACY_START);
            let tail = &fw.image[(fw.size() - shadow) as usize..];
            ram.write_slice(tail, GuestAddress(LEGACY_END - shadow))
                .map_err(|_| FirmwareError::Map)?;
            area.map_ram(SLOT_LOW, 0, layout.low, false)?;
            *area.modes.lock().unwrap_or_else(|p| p.into_inner()) =
                [(SegmentMode::Ram, false); SEGMENTS];
        } else {
            // Below the legacy area, but for the VGA window (not RAM on a
            // PC chipset: the std VGA answers there, or nothing).
            area.map_ram(SLOT_LOW, 0, layout::VGA_WINDOW_START, false)?;
            area.map_ram(SLOT_MID, LEGACY_END, layout.low - LEGACY_END, false)?;
            let mut state = area.modes.lock().unwrap_or_else(|p| p.into_inner());
            for (i, (mode, mapped)) in state.iter_mut().enumerate() {
                *mapped = area.apply(i, *mapped, *mode)?;
            }
        }
        if layout.high > 0 {
            area.map_ram(SLOT_HIGH, layout::MMIO_HOLE_END, layout.high, false)?;
        }
        Ok(area)
    }

    fn set_slot(
        &self,
        slot: u32,
        addr: u64,
        host: *mut u8,
        len: u64,
        readonly: bool,
    ) -> Result<(), FirmwareError> {
        let r = kvm_userspace_memory_region {
            slot,
            guest_phys_addr: addr,
            memory_size: len,
            userspace_addr: host as u64,
            flags: if readonly { KVM_MEM_READONLY } else { 0 },
        };
        // SAFETY: `host` points at `len` bytes of a mapping this struct
        // keeps alive (a clone of the guest RAM or the ROM region), and the
        // struct lives as long as the machine whose VM fd it holds; a zero
        // `len` removes the slot.
        unsafe { self.vm.set_user_memory_region(r) }.map_err(FirmwareError::Slot)
    }

    fn map_ram(&self, slot: u32, addr: u64, len: u64, readonly: bool) -> Result<(), FirmwareError> {
        let host = self
            .ram
            .get_host_address(GuestAddress(addr))
            .map_err(|_| FirmwareError::Map)?;
        // The range lies in one region: the RAM layout's regions are
        // [0, low) and [4 GiB, 4 GiB + high).
        let region = self
            .ram
            .find_region(GuestAddress(addr))
            .ok_or(FirmwareError::Map)?;
        if region.start_addr().0 + region.len() < addr + len {
            return Err(FirmwareError::Map);
        }
        self.set_slot(slot, addr, host, len, readonly)
    }

    /// Puts segment `i` in `mode`, removing its slot first if `mapped`
    /// (KVM does not let a slot change its flags in place). Returns whether
    /// the segment has a slot now.
    fn apply(&self, i: usize, mapped: bool, mode: SegmentMode) -> Result<bool, FirmwareError> {
        let (start, len) = segment(i);
        let slot = SLOT_LEGACY + i as u32;
        if mapped {
            self.set_slot(slot, start, std::ptr::null_mut(), 0, false)?;
        }
        match mode {
            SegmentMode::Ram => self.map_ram(slot, start, len, false)?,
            SegmentMode::RamReadOnly => self.map_ram(slot, start, len, true)?,
            SegmentMode::Rom => {
                let isa_start = LEGACY_END - ISA_BIOS_SIZE.min(self.rom.len());
                if start < isa_start {
                    return Ok(false);
                }
                let offset = self.rom.len() - (LEGACY_END - start);
                // SAFETY: `offset + len` ends at the ROM's end (the segment
                // ends at or before 1 MiB, which the ROM's end is aliased to).
                let host = unsafe { self.rom.as_ptr().add(offset as usize) };
                self.set_slot(slot, start, host, len, !self.writable_rom)?;
            }
        }
        Ok(true)
    }

    /// Sets every segment overlapping `[start, start + len)` to `mode`, as
    /// a PAM register write asks. Segments already in `mode` are left.
    /// Without PAM ([`LegacyArea::WritableBios`]) the area is RAM and this
    /// does nothing.
    pub fn set(&self, start: u64, len: u64, mode: SegmentMode) -> Result<(), FirmwareError> {
        if self.writable_rom {
            return Ok(());
        }
        let mut modes = self.modes.lock().unwrap_or_else(|p| p.into_inner());
        for (i, (m, mapped)) in modes.iter_mut().enumerate() {
            let (s, l) = segment(i);
            if s < start.saturating_add(len) && start < s + l && *m != mode {
                *mapped = self.apply(i, *mapped, mode)?;
                *m = mode;
            }
        }
        Ok(())
    }

    /// The mode of the segment holding `addr`, if it is in the legacy area.
    pub fn mode(&self, addr: u64) -> Option<SegmentMode> {
        let modes = self.modes.lock().unwrap_or_else(|p| p.into_inner());
        (0..SEGMENTS)
            .find(|&i| {
                let (s, l) = segment(i);
                (s..s + l).contains(&addr)
            })
            .map(|i| modes[i].0)
    }
}

/// The memory map firmware is given (`etc/e820`): all of RAM, which the
/// firmware carves up itself, and KVM's pages below the ROM.
pub fn memory_map(ram: &RamLayout) -> Vec<MemoryRange> {
    let mut map = vec![MemoryRange {
        start: 0,
        size: ram.low,
        kind: E820_RAM,
    }];
    if ram.high > 0 {
        map.push(MemoryRange {
            start: layout::MMIO_HOLE_END,
            size: ram.high,
            kind: E820_RAM,
        });
    }
    map.push(MemoryRange {
        start: layout::KVM_IDENTITY_MAP,
        size: 0x4000,
        kind: E820_RESERVED,
    });
    map.sort_by_key(|r| r.start);
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_legacy_area() {
        let mut next = LEGACY_START;
        for i in 0..SEGMENTS {
            let (s, l) = segment(i);
            assert_eq!(s, next);
            next = s + l;
        }
        assert_eq!(next, LEGACY_END);
    }

    #[test]
    fn the_rom_ends_where_kvm_pages_begin() {
        assert_eq!(MAX_SIZE, 256 << 10);
        assert_eq!(layout::KVM_TSS + 0x3000, layout::MMIO_HOLE_END - MAX_SIZE);
    }

    #[test]
    fn images_must_be_whole_64k_blocks() {
        let dir = std::env::temp_dir().join(format!("rvirt-fw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, len: usize| {
            let p = dir.join(name);
            std::fs::write(&p, vec![0x90u8; len]).unwrap();
            p
        };
        let ok = Firmware::load(&write("ok.bin", 128 << 10)).unwrap();
        assert_eq!(ok.base(), 0xfffe_0000);
        for (name, len) in [("odd.bin", 1000), ("big.bin", 512 << 10), ("empty.bin", 0)] {
            let e = Firmware::load(&write(name, len)).unwrap_err();
            assert!(matches!(e, FirmwareError::Size { .. }), "{name}: {e}");
        }
        assert!(matches!(
            Firmware::load(&dir.join("missing.bin")),
            Err(FirmwareError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn firmware_sees_all_ram_and_the_kvm_pages_reserved() {
        let map = memory_map(&RamLayout::new(5u64 << 30));
        assert_eq!(
            map,
            [
                MemoryRange {
                    start: 0,
                    size: 3 << 30,
                    kind: E820_RAM
                },
                MemoryRange {
                    start: 0xfffb_c000,
                    size: 0x4000,
                    kind: E820_RESERVED
                },
                MemoryRange {
                    start: 1 << 32,
                    size: 2 << 30,
                    kind: E820_RAM
                },
            ]
        );
    }
}
