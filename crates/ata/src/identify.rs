//! IDENTIFY DEVICE and IDENTIFY PACKET DEVICE: the 512-byte pages a guest
//! reads to learn what a drive is, with the words QEMU 7.2 fills (its
//! `ide_identify` and `ide_atapi_identify`), so firmware and drivers see
//! the same drive on rvirt and on QEMU.

/// QEMU's firmware revision string for its drives.
pub const FIRMWARE: &str = "2.5+";

/// A page of 256 little-endian words.
struct Page([u16; 256]);

impl Page {
    /// ATA strings: space padded, two characters per word, the first in
    /// the high byte.
    fn string(&mut self, word: usize, words: usize, s: &str) {
        let mut bytes = s.bytes().chain(std::iter::repeat(b' '));
        for w in &mut self.0[word..word + words] {
            let hi = bytes.next().unwrap_or(b' ');
            let lo = bytes.next().unwrap_or(b' ');
            *w = u16::from(hi) << 8 | u16::from(lo);
        }
    }

    fn u32(&mut self, word: usize, v: u32) {
        self.0[word] = v as u16;
        self.0[word + 1] = (v >> 16) as u16;
    }

    fn u64(&mut self, word: usize, v: u64) {
        for i in 0..4 {
            self.0[word + i] = (v >> (16 * i)) as u16;
        }
    }

    fn bytes(&self) -> [u8; 512] {
        let mut out = [0u8; 512];
        for (i, w) in self.0.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// CHS geometry for `sectors`, as QEMU guesses it for a disk without a
/// partition table hint: 16 heads, 63 sectors per track, at most 16383
/// cylinders.
pub fn geometry(sectors: u64) -> (u16, u16, u16) {
    let cylinders = (sectors / (16 * 63)).clamp(2, 16383) as u16;
    (cylinders, 16, 63)
}

/// IDENTIFY DEVICE for a disk of `sectors` 512-byte sectors.
pub fn disk(sectors: u64, serial: &str, model: &str, write_cache: bool) -> [u8; 512] {
    let mut p = Page([0; 256]);
    let (cyls, heads, secs) = geometry(sectors);
    p.0[0] = 0x0040; // fixed device
    p.0[1] = cyls;
    p.0[3] = heads;
    p.0[4] = 512 * secs;
    p.0[5] = 512;
    p.0[6] = secs;
    p.string(10, 10, serial);
    p.0[20] = 3; // dual-ported buffer with read cache
    p.0[21] = 512; // cache size in sectors
    p.0[22] = 4; // ECC bytes
    p.string(23, 4, FIRMWARE);
    p.string(27, 20, model);
    p.0[47] = 0x8000 | 16; // READ/WRITE MULTIPLE: 16 sectors
    p.0[48] = 1; // dword I/O
    p.0[49] = (1 << 11) | (1 << 9) | (1 << 8); // IORDY, LBA, DMA
    p.0[51] = 0x200;
    p.0[52] = 0x200;
    p.0[53] = 1 | (1 << 1) | (1 << 2); // words 54-58, 64-70 and 88 valid
    let chs = u32::from(cyls) * u32::from(heads) * u32::from(secs);
    p.0[54] = cyls;
    p.0[55] = heads;
    p.0[56] = secs;
    p.u32(57, chs);
    p.u32(60, sectors.min(0x0fff_ffff) as u32);
    p.0[62] = 0x07; // single word DMA 0-2
    p.0[63] = 0x07; // multiword DMA 0-2
    p.0[64] = 0x03; // PIO 3-4
    p.0[65] = 120;
    p.0[66] = 120;
    p.0[67] = 120;
    p.0[68] = 120;
    p.0[80] = 0xf0; // ATA-4 to ATA-7
    p.0[81] = 0x16;
    p.0[82] = (1 << 14) | (1 << 5) | 1; // NOP, write cache, SMART
    p.0[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10); // FLUSH EXT, FLUSH, LBA48
    p.0[84] = 1 << 14;
    p.0[85] = (1 << 14) | (u16::from(write_cache) << 5) | 1;
    p.0[86] = (1 << 13) | (1 << 12) | (1 << 10);
    p.0[87] = 1 << 14;
    p.0[88] = 0x3f | (1 << 13); // UDMA 0-5, UDMA 5 selected
    p.0[93] = 1 | (1 << 14) | 0x2000;
    p.u64(100, sectors);
    p.bytes()
}

/// IDENTIFY PACKET DEVICE for a CD-ROM.
pub fn cdrom(serial: &str, model: &str) -> [u8; 512] {
    let mut p = Page([0; 256]);
    // ATAPI, CD-ROM, removable, 50 us DRQ, 12-byte packets.
    p.0[0] = (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5);
    p.string(10, 10, serial);
    p.0[20] = 3;
    p.0[21] = 512;
    p.0[22] = 4;
    p.string(23, 4, FIRMWARE);
    p.string(27, 20, model);
    p.0[48] = 1;
    p.0[49] = 1 << 9 | 1 << 8; // LBA, DMA
    p.0[53] = 7;
    p.0[62] = 7;
    p.0[63] = 7;
    p.0[64] = 3;
    p.0[65] = 0xb4;
    p.0[66] = 0xb4;
    p.0[67] = 0x12c;
    p.0[68] = 0xb4;
    p.0[71] = 30;
    p.0[72] = 30;
    p.0[80] = 0x1e; // ATAPI-1 to ATAPI-4
    p.0[88] = 0x3f | (1 << 13);
    p.bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(page: &[u8; 512], w: usize) -> u16 {
        u16::from_le_bytes([page[2 * w], page[2 * w + 1]])
    }

    #[test]
    fn a_disk_page_carries_its_size_and_names() {
        let page = disk(1 << 30, "QM00001", "QEMU HARDDISK", true);
        assert_eq!(word(&page, 83) & (1 << 10), 1 << 10, "LBA48");
        let lba48 = (0..4).fold(0u64, |a, i| a | u64::from(word(&page, 100 + i)) << (16 * i));
        assert_eq!(lba48, 1 << 30);
        assert_eq!(
            u32::from(word(&page, 60)) | u32::from(word(&page, 61)) << 16,
            0x0fff_ffff
        );
        // "QEMU HARDDISK" with the bytes of each word swapped.
        assert_eq!(&page[54..60], b"EQUMH ");
        assert_eq!(word(&page, 85) & (1 << 5), 1 << 5, "write cache on");
    }

    #[test]
    fn a_cdrom_page_says_atapi_cdrom_removable() {
        let page = cdrom("QM00003", "QEMU DVD-ROM");
        let w0 = word(&page, 0);
        assert_eq!(w0 >> 14, 2);
        assert_eq!((w0 >> 8) & 0x1f, 5);
        assert_ne!(w0 & 0x80, 0);
    }
}
