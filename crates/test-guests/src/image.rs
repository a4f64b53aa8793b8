//! Recognising the three boot formats in a file, as a VMM's loader would:
//! ELF64 with or without Xen's PVH entry note, and bzImage.

/// A guest file's boot format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ELF64 with a `XEN_ELFNOTE_PHYS32_ENTRY` note: 32-bit PVH entry.
    PvhElf,
    /// ELF64 without that note: 64-bit entry at `e_entry`, RSI = boot_params.
    Elf64,
    /// Linux bzImage with a 64-bit entry (`XLF_KERNEL_64`).
    BzImage,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format.
    pub format: Format,
    /// ELF: `e_entry`; bzImage: `code32_start + 0x200` (the 64-bit entry).
    pub entry: u64,
    /// The PVH note's 32-bit entry address, if any.
    pub pvh_entry: Option<u32>,
    /// bzImage: `setup_sects` from the setup header.
    pub setup_sects: Option<u8>,
    /// bzImage: the boot protocol version.
    pub protocol: Option<u16>,
}

/// Why a file is not one of the three formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Shorter than its headers say.
    #[error("file is truncated")]
    Truncated,
    /// Neither ELF nor bzImage.
    #[error("file is neither ELF nor bzImage")]
    Unknown,
    /// ELF, but not little-endian 64-bit x86.
    #[error("ELF file is not little-endian x86-64")]
    NotElf64,
    /// bzImage older than boot protocol 2.12 (no xloadflags).
    #[error("bzImage boot protocol {0:#06x} is older than 2.12")]
    OldProtocol(u16),
    /// bzImage without `XLF_KERNEL_64`.
    #[error("bzImage has no 64-bit entry point")]
    No64BitEntry,
}

const PT_NOTE: u32 = 4;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

fn bytes<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], ImageError> {
    off.checked_add(N)
        .and_then(|end| b.get(off..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(ImageError::Truncated)
}
fn u16_at(b: &[u8], off: usize) -> Result<u16, ImageError> {
    bytes(b, off).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, ImageError> {
    bytes(b, off).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, ImageError> {
    bytes(b, off).map(u64::from_le_bytes)
}
fn usize_at(b: &[u8], off: usize) -> Result<usize, ImageError> {
    usize::try_from(u64_at(b, off)?).map_err(|_| ImageError::Truncated)
}

/// Identifies a guest file's format and entry points.
pub fn inspect(file: &[u8]) -> Result<ImageInfo, ImageError> {
    if file.starts_with(b"\x7fELF") {
        inspect_elf(file)
    } else if file.get(0x202..0x206) == Some(b"HdrS") {
        inspect_bzimage(file)
    } else {
        Err(ImageError::Unknown)
    }
}

fn inspect_elf(file: &[u8]) -> Result<ImageInfo, ImageError> {
    // EI_CLASS = ELFCLASS64, EI_DATA = little-endian, e_machine = EM_X86_64.
    if bytes::<2>(file, 4)? != [2, 1] || u16_at(file, 0x12)? != 62 {
        return Err(ImageError::NotElf64);
    }
    let entry = u64_at(file, 0x18)?;
    let phoff = usize_at(file, 0x20)?;
    let phentsize = usize::from(u16_at(file, 0x36)?);
    let mut pvh_entry = None;
    for i in 0..usize::from(u16_at(file, 0x38)?) {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ImageError::Truncated)?;
        if u32_at(file, ph)? == PT_NOTE {
            let (off, size) = (usize_at(file, ph + 0x08)?, usize_at(file, ph + 0x20)?);
            let end = off.checked_add(size).ok_or(ImageError::Truncated)?;
            let notes = file.get(off..end).ok_or(ImageError::Truncated)?;
            pvh_entry = pvh_entry.or(find_pvh_note(notes)?);
        }
    }
    let format = if pvh_entry.is_some() {
        Format::PvhElf
    } else {
        Format::Elf64
    };
    Ok(ImageInfo {
        format,
        entry,
        pvh_entry,
        setup_sects: None,
        protocol: None,
    })
}

/// Walks ELF notes (4-byte aligned name and descriptor) for Xen's PHYS32 entry.
fn find_pvh_note(mut notes: &[u8]) -> Result<Option<u32>, ImageError> {
    let align = |n: u32| (n as usize).div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (u32_at(notes, 0)?, u32_at(notes, 4)?, u32_at(notes, 8)?);
        let desc = 12 + align(namesz);
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && notes.get(12..16) == Some(b"Xen\0") && descsz >= 4 {
            return u32_at(notes, desc).map(Some);
        }
        notes = notes
            .get(desc + align(descsz)..)
            .ok_or(ImageError::Truncated)?;
    }
    Ok(None)
}

fn inspect_bzimage(file: &[u8]) -> Result<ImageInfo, ImageError> {
    let protocol = u16_at(file, 0x206)?;
    if protocol < 0x020c {
        return Err(ImageError::OldProtocol(protocol));
    }
    if u16_at(file, 0x236)? & 1 == 0 {
        return Err(ImageError::No64BitEntry);
    }
    let setup_sects = bytes::<1>(file, 0x1f1)?[0];
    let setup_len = (usize::from(setup_sects.max(1)) + 1) * 512;
    if file.len() <= setup_len + 0x200 {
        return Err(ImageError::Truncated);
    }
    Ok(ImageInfo {
        format: Format::BzImage,
        entry: u64::from(u32_at(file, 0x214)?) + 0x200,
        pvh_entry: None,
        setup_sects: Some(setup_sects),
        protocol: Some(protocol),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(inspect(b"hello"), Err(ImageError::Unknown));
        assert_eq!(inspect(b"\x7fELF\x02\x01"), Err(ImageError::Truncated));
        let mut elf32 = vec![0u8; 64];
        elf32[..6].copy_from_slice(b"\x7fELF\x01\x01");
        assert_eq!(inspect(&elf32), Err(ImageError::NotElf64));
        let mut old = vec![0u8; 0x1000];
        old[0x202..0x206].copy_from_slice(b"HdrS");
        old[0x206..0x208].copy_from_slice(&0x0206u16.to_le_bytes());
        assert_eq!(inspect(&old), Err(ImageError::OldProtocol(0x0206)));
        old[0x206..0x208].copy_from_slice(&0x020cu16.to_le_bytes());
        assert_eq!(inspect(&old), Err(ImageError::No64BitEntry));
    }

    #[test]
    fn finds_the_pvh_note_after_another_note() {
        let mut notes = Vec::new();
        for (name, kind, desc) in [
            (&b"GNU\0"[..], 3u32, &[1u8, 2, 3, 4, 5][..]),
            (b"Xen\0", 18, &0x10_0000u32.to_le_bytes()),
        ] {
            notes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&kind.to_le_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        }
        assert_eq!(find_pvh_note(&notes), Ok(Some(0x10_0000)));
        assert_eq!(find_pvh_note(&notes[..20]), Err(ImageError::Truncated));
    }
}
