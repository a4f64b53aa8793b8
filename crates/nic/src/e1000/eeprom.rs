//! The cards' 64-word EEPROM. The 82540EM's: QEMU's contents (its
//! `e1000_eeprom_template`, the MAC in words 0-2, the device ID in words 11
//! and 13, the checksum word that makes the sum 0xBABA), read through EERD
//! (Linux, iPXE) or bit-banged through EECD (older drivers, SeaBIOS-era
//! option ROMs). The 82574's: QEMU's `e1000e_eeprom_template` with the
//! same MAC, ID and checksum words, read through EERD in its own layout
//! ([`eerw`]).

/// Words, as the EEPROM holds them.
pub const WORDS: usize = 64;
/// The word that makes the sum of all 64 come to [`CHECKSUM_SUM`].
pub const CHECKSUM_WORD: usize = 0x3f;
pub const CHECKSUM_SUM: u16 = 0xbaba;

/// EECD bits.
pub mod eecd {
    pub const SK: u32 = 1 << 0;
    pub const CS: u32 = 1 << 1;
    pub const DI: u32 = 1 << 2;
    pub const DO: u32 = 1 << 3;
    pub const FWE_MASK: u32 = 3 << 4;
    pub const REQ: u32 = 1 << 6;
    pub const GNT: u32 = 1 << 7;
    pub const PRES: u32 = 1 << 8;
}

/// EERD bits.
pub mod eerd {
    pub const START: u32 = 1 << 0;
    pub const DONE: u32 = 1 << 4;
    pub const ADDR_SHIFT: u32 = 8;
    pub const DATA_SHIFT: u32 = 16;
}

/// The Microwire READ opcode (binary 110).
const READ_OPCODE: u32 = 6;

/// QEMU's EEPROM image with the device ID and MAC left out.
const TEMPLATE: [u16; WORDS] = [
    0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000, //
    0x3000, 0x1000, 0x6403, 0x0000, 0x8086, 0x0000, 0x8086, 0x3040, //
    0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700, //
    0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706, //
    0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff, //
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, //
    0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, //
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000, //
];

/// QEMU's 82574 image (its `e1000e_eeprom_template`: datasheet table 36)
/// with the device ID and MAC left out.
pub const TEMPLATE_82574: [u16; WORDS] = [
    0x0000, 0x0000, 0x0000, 0x0420, 0xf746, 0x2010, 0xffff, 0xffff, //
    0x0000, 0x0000, 0x026b, 0x0000, 0x8086, 0x0000, 0x0000, 0x8058, //
    0x0000, 0x2001, 0x7e7c, 0xffff, 0x1000, 0x00c8, 0x0000, 0x2704, //
    0x6cc9, 0x3150, 0x070e, 0x460b, 0x2d84, 0x0100, 0xf000, 0x0706, //
    0x6000, 0x0080, 0x0f04, 0x7fff, 0x4f01, 0xc600, 0x0000, 0x20ff, //
    0x0028, 0x0003, 0x0000, 0x0000, 0x0000, 0x0003, 0x0000, 0xffff, //
    0x0100, 0xc000, 0x121c, 0xc007, 0xffff, 0xffff, 0xffff, 0xffff, //
    0xffff, 0xffff, 0xffff, 0xffff, 0x0000, 0x0120, 0xffff, 0x0000, //
];

/// EERD as the 82574 lays it out (QEMU's `E1000_EERW_*`): start, done,
/// a 14-bit word address from bit 2, the data from bit 16.
pub mod eerw {
    pub const START: u32 = 1 << 0;
    pub const DONE: u32 = 1 << 1;
    pub const ADDR_SHIFT: u32 = 2;
    pub const ADDR_MASK: u32 = (1 << 14) - 1;
    pub const DATA_SHIFT: u32 = 16;
}

/// The EEPROM and the state of a bit-banged read.
pub struct Eeprom {
    words: [u16; WORDS],
    /// SK, CS, DI, FWE and REQ as last written.
    eecd: u32,
    val_in: u32,
    bits_in: u32,
    bit_out: u32,
    reading: bool,
}

impl Eeprom {
    /// QEMU's image for `device_id` and `mac`.
    pub fn new(device_id: u16, mac: [u8; 6]) -> Self {
        Self::with_template(&TEMPLATE, device_id, mac)
    }

    /// `template` for `device_id` and `mac`: the MAC in words 0-2, the
    /// device ID in 11 and 13, the checksum word (QEMU's
    /// `e1000x_core_prepare_eeprom`, which both cards share).
    pub fn with_template(template: &[u16; WORDS], device_id: u16, mac: [u8; 6]) -> Self {
        let mut words = *template;
        for i in 0..3 {
            words[i] = u16::from_le_bytes([mac[2 * i], mac[2 * i + 1]]);
        }
        words[11] = device_id;
        words[13] = device_id;
        let sum = words[..CHECKSUM_WORD]
            .iter()
            .fold(0u16, |s, &w| s.wrapping_add(w));
        words[CHECKSUM_WORD] = CHECKSUM_SUM.wrapping_sub(sum);
        Eeprom {
            words,
            eecd: 0,
            val_in: 0,
            bits_in: 0,
            bit_out: 0,
            reading: false,
        }
    }

    /// Word `index` (for tests and EERD).
    pub fn word(&self, index: usize) -> Option<u16> {
        self.words.get(index).copied()
    }

    /// EERD as read after `written` was written: a read started with a
    /// word address completes at once.
    pub fn eerd(&self, written: u32) -> u32 {
        if written & eerd::START == 0 {
            return written;
        }
        let r = written & !eerd::START;
        let index = (r >> eerd::ADDR_SHIFT) as usize;
        match self.word(index) {
            Some(w) => (u32::from(w) << eerd::DATA_SHIFT) | eerd::DONE | r,
            None => eerd::DONE | r,
        }
    }

    /// EERD of the 82574 after `written` was written: a read with a word
    /// address inside the EEPROM completes at once; another reads back
    /// without Done, as QEMU's `e1000e_set_eerd`.
    pub fn eerw(&self, written: u32) -> u32 {
        let addr = (written >> eerw::ADDR_SHIFT) & eerw::ADDR_MASK;
        let word = (written & eerw::START != 0)
            .then(|| self.word(addr as usize))
            .flatten();
        match word {
            Some(w) => eerw::DONE | (addr << eerw::ADDR_SHIFT) | (u32::from(w) << eerw::DATA_SHIFT),
            None => addr << eerw::ADDR_SHIFT,
        }
    }

    /// EECD as read: the EEPROM is present and granted to software; DO
    /// carries the bit being read out (high when no read is under way).
    pub fn read_eecd(&self) -> u32 {
        let mut v = eecd::PRES | eecd::GNT | self.eecd;
        let word = self.words[((self.bit_out >> 4) as usize) % WORDS];
        if !self.reading || (word >> ((self.bit_out & 0xf) ^ 0xf)) & 1 != 0 {
            v |= eecd::DO;
        }
        v
    }

    /// A write of EECD: chip select, and the clock that shifts the opcode
    /// and address in (on rising edges) and the data out (on falling ones).
    pub fn write_eecd(&mut self, val: u32) {
        let old = self.eecd;
        self.eecd = val & (eecd::SK | eecd::CS | eecd::DI | eecd::FWE_MASK | eecd::REQ);
        if val & eecd::CS == 0 {
            return;
        }
        if (val ^ old) & eecd::CS != 0 {
            // Chip select rose: a new command.
            self.val_in = 0;
            self.bits_in = 0;
            self.bit_out = 0;
            self.reading = false;
        }
        if (val ^ old) & eecd::SK == 0 {
            return;
        }
        if val & eecd::SK == 0 {
            self.bit_out = self.bit_out.wrapping_add(1);
            return;
        }
        self.val_in = (self.val_in << 1) | u32::from(val & eecd::DI != 0);
        self.bits_in += 1;
        if self.bits_in == 9 && !self.reading {
            // Start bit, 2-bit opcode, 6-bit address: the data's first
            // bit comes out on the next falling edge.
            self.bit_out = ((self.val_in & 0x3f) << 4).wrapping_sub(1);
            self.reading = (self.val_in >> 6) & 7 == READ_OPCODE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn the_image_holds_the_mac_ids_and_checksum() {
        let e = Eeprom::new(0x100e, MAC);
        assert_eq!(e.word(0), Some(0x5452));
        assert_eq!(e.word(1), Some(0x1200));
        assert_eq!(e.word(2), Some(0x5634));
        assert_eq!((e.word(11), e.word(13)), (Some(0x100e), Some(0x100e)));
        let sum = (0..WORDS).fold(0u16, |s, i| s.wrapping_add(e.word(i).unwrap()));
        assert_eq!(sum, CHECKSUM_SUM);
    }

    #[test]
    fn the_82574_image_and_its_eerd_layout() {
        let e = Eeprom::with_template(&TEMPLATE_82574, 0x10d3, MAC);
        assert_eq!(
            (e.word(0), e.word(11), e.word(13)),
            (Some(0x5452), Some(0x10d3), Some(0x10d3))
        );
        assert_eq!(e.word(3), Some(0x0420));
        let sum = (0..WORDS).fold(0u16, |s, i| s.wrapping_add(e.word(i).unwrap()));
        assert_eq!(sum, CHECKSUM_SUM);
        let v = e.eerw(eerw::START | (2 << eerw::ADDR_SHIFT));
        assert_eq!(
            v,
            eerw::DONE | (2 << eerw::ADDR_SHIFT) | (0x5634 << eerw::DATA_SHIFT)
        );
        assert_eq!(
            e.eerw(eerw::START | (64 << eerw::ADDR_SHIFT)),
            64 << eerw::ADDR_SHIFT
        );
        assert_eq!(e.eerw(5 << eerw::ADDR_SHIFT), 5 << eerw::ADDR_SHIFT);
    }

    #[test]
    fn eerd_reads_words_and_ignores_addresses_past_the_end() {
        let e = Eeprom::new(0x100e, MAC);
        let v = e.eerd(eerd::START | (1 << eerd::ADDR_SHIFT));
        assert_eq!(v & eerd::DONE, eerd::DONE);
        assert_eq!(v >> eerd::DATA_SHIFT, 0x1200);
        let v = e.eerd(eerd::START | (0xff << eerd::ADDR_SHIFT));
        assert_eq!(v, eerd::DONE | (0xff << eerd::ADDR_SHIFT));
        assert_eq!(e.eerd(0x300), 0x300, "no read started");
    }

    /// Linux's e1000_shift_out_ee_bits / e1000_shift_in_ee_bits.
    fn bitbang_read(e: &mut Eeprom, addr: u16) -> u16 {
        let clock = |e: &mut Eeprom, di: bool| {
            let base = eecd::CS | if di { eecd::DI } else { 0 };
            e.write_eecd(base);
            e.write_eecd(base | eecd::SK);
            e.write_eecd(base);
        };
        e.write_eecd(0);
        e.write_eecd(eecd::CS);
        let cmd = (0b110u32 << 6) | u32::from(addr);
        for bit in (0..9).rev() {
            clock(e, cmd >> bit & 1 != 0);
        }
        let mut word = 0u16;
        for _ in 0..16 {
            e.write_eecd(eecd::CS | eecd::SK);
            word = (word << 1) | u16::from(e.read_eecd() & eecd::DO != 0);
            e.write_eecd(eecd::CS);
        }
        e.write_eecd(0);
        word
    }

    #[test]
    fn a_bit_banged_read_gets_the_same_words() {
        let mut e = Eeprom::new(0x100e, MAC);
        for addr in [0u16, 1, 2, 11, 0x3f] {
            assert_eq!(bitbang_read(&mut e, addr), e.word(addr.into()).unwrap());
        }
        assert_ne!(e.read_eecd() & eecd::PRES, 0);
    }
}
