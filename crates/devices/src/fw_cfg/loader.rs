//! `etc/table-loader`: the commands with which firmware places fw_cfg files
//! (the ACPI tables) in guest memory and links them, in the format of
//! QEMU's `hw/acpi/bios-linker-loader.c`: 128-byte little-endian entries,
//! each one of allocate (a file, in high memory or the F segment, aligned),
//! add-pointer (add a file's guest address to a pointer field of another)
//! and add-checksum (fix a byte so that a range sums to zero).
//!
//! [`execute`] runs a command stream the way SeaBIOS's
//! `src/fw/romfile_loader.c` does, so the tests can check the tables a guest
//! ends up with; it refuses what SeaBIOS refuses.

use std::collections::BTreeMap;

use super::FILE_NAME_MAX;

/// The size of one command.
pub const ENTRY_LEN: usize = 128;

const ALLOCATE: u32 = 1;
const ADD_POINTER: u32 = 2;
const ADD_CHECKSUM: u32 = 3;

/// Where an allocation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Anywhere in RAM below 4 GiB (firmware takes it from the top).
    High = 1,
    /// The F segment (0xF0000-0xFFFFF), where an OS scans for the RSDP.
    FSeg = 2,
}

/// One loader command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Allocate {
        file: String,
        align: u32,
        zone: Zone,
    },
    /// `size` bytes at `offset` in `dest` are incremented by `src`'s address.
    AddPointer {
        dest: String,
        src: String,
        offset: u32,
        size: u8,
    },
    /// The byte at `offset` in `file` is set so that `start..start+length`
    /// sums to zero.
    AddChecksum {
        file: String,
        offset: u32,
        start: u32,
        length: u32,
    },
}

fn put_name(e: &mut [u8], at: usize, name: &str) {
    // Names are the machine's own constants; one that does not fit with its
    // NUL is cut, and the loader then finds no such file.
    let n = name.len().min(FILE_NAME_MAX - 1);
    e[at..at + n].copy_from_slice(&name.as_bytes()[..n]);
}

impl Command {
    /// The 128-byte entry.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut e = [0u8; ENTRY_LEN];
        match self {
            Command::Allocate { file, align, zone } => {
                e[0..4].copy_from_slice(&ALLOCATE.to_le_bytes());
                put_name(&mut e, 4, file);
                e[60..64].copy_from_slice(&align.to_le_bytes());
                e[64] = *zone as u8;
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                e[0..4].copy_from_slice(&ADD_POINTER.to_le_bytes());
                put_name(&mut e, 4, dest);
                put_name(&mut e, 60, src);
                e[116..120].copy_from_slice(&offset.to_le_bytes());
                e[120] = *size;
            }
            Command::AddChecksum {
                file,
                offset,
                start,
                length,
            } => {
                e[0..4].copy_from_slice(&ADD_CHECKSUM.to_le_bytes());
                put_name(&mut e, 4, file);
                e[60..64].copy_from_slice(&offset.to_le_bytes());
                e[64..68].copy_from_slice(&start.to_le_bytes());
                e[68..72].copy_from_slice(&length.to_le_bytes());
            }
        }
        e
    }
}

/// The `etc/table-loader` file for `commands`.
pub fn encode(commands: &[Command]) -> Vec<u8> {
    commands.iter().flat_map(|c| c.encode()).collect()
}

/// Why [`execute`] stopped (SeaBIOS stops at the first bad command too).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoaderError {
    #[error("command {0}: no such file, or not allocated")]
    NoFile(usize),
    #[error("command {0}: out of the file's bounds")]
    Bounds(usize),
    #[error("command {0}: bad alignment or pointer size")]
    Bad(usize),
    #[error("command {0}: out of memory for the allocation")]
    NoMemory(usize),
    #[error("the command stream is not a whole number of entries")]
    Truncated,
}

/// A file placed by [`execute`]: its guest address and final bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub address: u64,
    pub zone: Zone,
    pub bytes: Vec<u8>,
}

fn name_at(e: &[u8], at: usize) -> String {
    let raw = &e[at..at + FILE_NAME_MAX];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn u32_at(e: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]])
}

/// Runs `stream` over `files` as SeaBIOS does: allocations are placed by
/// `alloc(zone, size, align)` (returning `None` when there is no room),
/// pointers and checksums are applied in order. Unknown commands are
/// skipped, as SeaBIOS skips them.
pub fn execute(
    stream: &[u8],
    files: &BTreeMap<String, Vec<u8>>,
    mut alloc: impl FnMut(Zone, u64, u64) -> Option<u64>,
) -> Result<BTreeMap<String, Placed>, LoaderError> {
    if !stream.len().is_multiple_of(ENTRY_LEN) {
        return Err(LoaderError::Truncated);
    }
    let mut placed: BTreeMap<String, Placed> = BTreeMap::new();
    for (i, e) in stream.chunks_exact(ENTRY_LEN).enumerate() {
        match u32_at(e, 0) {
            ALLOCATE => {
                let file = name_at(e, 4);
                let align = u64::from(u32_at(e, 60));
                let zone = match e[64] {
                    1 => Zone::High,
                    2 => Zone::FSeg,
                    _ => return Err(LoaderError::Bad(i)),
                };
                // SeaBIOS wants a power of two of at least 16.
                if !align.is_power_of_two() {
                    return Err(LoaderError::Bad(i));
                }
                let bytes = files.get(&file).ok_or(LoaderError::NoFile(i))?.clone();
                let address = alloc(zone, bytes.len() as u64, align.max(16))
                    .ok_or(LoaderError::NoMemory(i))?;
                placed.insert(
                    file,
                    Placed {
                        address,
                        zone,
                        bytes,
                    },
                );
            }
            ADD_POINTER => {
                let dest = name_at(e, 4);
                let src = name_at(e, 60);
                let offset = u32_at(e, 116) as usize;
                let size = usize::from(e[120]);
                let src_addr = placed.get(&src).ok_or(LoaderError::NoFile(i))?.address;
                let d = placed.get_mut(&dest).ok_or(LoaderError::NoFile(i))?;
                if ![1, 2, 4, 8].contains(&size) {
                    return Err(LoaderError::Bad(i));
                }
                let field = offset
                    .checked_add(size)
                    .and_then(|end| d.bytes.get_mut(offset..end))
                    .ok_or(LoaderError::Bounds(i))?;
                let mut v = [0u8; 8];
                v[..size].copy_from_slice(field);
                let sum = u64::from_le_bytes(v).wrapping_add(src_addr);
                field.copy_from_slice(&sum.to_le_bytes()[..size]);
            }
            ADD_CHECKSUM => {
                let file = name_at(e, 4);
                let offset = u32_at(e, 60) as usize;
                let start = u32_at(e, 64) as usize;
                let length = u32_at(e, 68) as usize;
                let f = placed.get_mut(&file).ok_or(LoaderError::NoFile(i))?;
                let range = start
                    .checked_add(length)
                    .and_then(|end| f.bytes.get(start..end))
                    .ok_or(LoaderError::Bounds(i))?;
                if offset >= f.bytes.len() {
                    return Err(LoaderError::Bounds(i));
                }
                let sum = range.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                f.bytes[offset] = f.bytes[offset].wrapping_sub(sum);
            }
            _ => {}
        }
    }
    Ok(placed)
}
