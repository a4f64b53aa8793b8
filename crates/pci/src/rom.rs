//! A function's expansion ROM image (an option ROM such as the VGA BIOS),
//! as its ROM BAR shows it: the file's bytes, zero-padded to the power of
//! two the BAR decodes (as QEMU's `pci_add_option_rom`), read-only.

use std::path::{Path, PathBuf};

use crate::config::ROM_MIN_SIZE;

/// The largest image taken: an x86 option ROM's length byte counts up to
/// 128 KiB, and no ROM QEMU ships is larger than that.
pub const MAX_SIZE: u64 = 1 << 20;

/// Why a ROM file is refused.
#[derive(Debug, thiserror::Error)]
pub enum RomError {
    #[error("could not read '{path}'")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{path}' is {size} bytes: an expansion ROM is 1 to {MAX_SIZE} bytes")]
    Size { path: PathBuf, size: u64 },
}

/// An expansion ROM image.
#[derive(Debug, Clone)]
pub struct OptionRom {
    bytes: Vec<u8>,
    size: u64,
}

impl OptionRom {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, RomError> {
        let bytes = std::fs::read(path).map_err(|source| RomError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(bytes).map_err(|size| RomError::Size {
            path: path.to_owned(),
            size,
        })
    }

    /// An image from `bytes`; an empty or too large one is refused with
    /// its size.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, u64> {
        let len = bytes.len() as u64;
        if bytes.is_empty() || len > MAX_SIZE {
            return Err(len);
        }
        Ok(OptionRom {
            size: len.next_power_of_two().max(ROM_MIN_SIZE),
            bytes,
        })
    }

    /// The BAR's size: a power of two, at least 2 KiB.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A read at `offset` inside the BAR: the image, zeros past its end
    /// up to the BAR's size, all ones past that.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let o = offset.saturating_add(i as u64);
            *b = match usize::try_from(o).ok().and_then(|o| self.bytes.get(o)) {
                Some(v) => *v,
                None if o < self.size => 0,
                None => 0xff,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_to_a_power_of_two_and_read_only_inside() {
        let r = OptionRom::from_bytes(vec![0x55, 0xaa, 0x40, 7, 8]).unwrap();
        assert_eq!(r.size(), 2048, "at least 2 KiB");
        let mut b = [0u8; 6];
        r.read(0, &mut b);
        assert_eq!(b, [0x55, 0xaa, 0x40, 7, 8, 0]);
        r.read(2046, &mut b);
        assert_eq!(b, [0, 0, 0xff, 0xff, 0xff, 0xff]);
        r.read(u64::MAX - 1, &mut b);
        assert_eq!(b, [0xff; 6]);
        let r = OptionRom::from_bytes(vec![1; 38 << 10]).unwrap();
        assert_eq!(r.size(), 64 << 10);
    }

    #[test]
    fn bad_images_are_named() {
        assert_eq!(OptionRom::from_bytes(Vec::new()).unwrap_err(), 0);
        assert!(OptionRom::from_bytes(vec![0; (MAX_SIZE + 1) as usize]).is_err());
        let e = OptionRom::load(Path::new("/nonexistent/vgabios.bin")).unwrap_err();
        assert_eq!(e.to_string(), "could not read '/nonexistent/vgabios.bin'");
    }
}
