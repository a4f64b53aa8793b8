//! Sense data: the key, additional sense code and qualifier of a CHECK
//! CONDITION, and the fixed format (SPC-4 4.5.3) initiators read.

/// A sense key with its ASC and ASCQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

/// Sense keys.
pub mod key {
    pub const NO_SENSE: u8 = 0x00;
    pub const NOT_READY: u8 = 0x02;
    pub const MEDIUM_ERROR: u8 = 0x03;
    pub const ILLEGAL_REQUEST: u8 = 0x05;
    pub const UNIT_ATTENTION: u8 = 0x06;
    pub const DATA_PROTECT: u8 = 0x07;
}

const fn s(key: u8, asc: u8, ascq: u8) -> Sense {
    Sense { key, asc, ascq }
}

impl Sense {
    pub const NO_SENSE: Sense = s(key::NO_SENSE, 0, 0);
    pub const INVALID_OPCODE: Sense = s(key::ILLEGAL_REQUEST, 0x20, 0);
    pub const LBA_OUT_OF_RANGE: Sense = s(key::ILLEGAL_REQUEST, 0x21, 0);
    pub const INVALID_FIELD: Sense = s(key::ILLEGAL_REQUEST, 0x24, 0);
    pub const LUN_NOT_SUPPORTED: Sense = s(key::ILLEGAL_REQUEST, 0x25, 0);
    pub const SAVING_PARAMS_NOT_SUPPORTED: Sense = s(key::ILLEGAL_REQUEST, 0x39, 0);
    pub const MEDIUM_REMOVAL_PREVENTED: Sense = s(key::ILLEGAL_REQUEST, 0x53, 2);
    pub const WRITE_PROTECTED: Sense = s(key::DATA_PROTECT, 0x27, 0);
    pub const MEDIUM_MAY_HAVE_CHANGED: Sense = s(key::UNIT_ATTENTION, 0x28, 0);
    /// Power on, reset or bus device reset occurred (QEMU's RESET).
    pub const POWER_ON_RESET: Sense = s(key::UNIT_ATTENTION, 0x29, 0);
    /// Medium not present, tray closed.
    pub const NO_MEDIUM: Sense = s(key::NOT_READY, 0x3a, 1);
    /// Medium not present, tray open.
    pub const NO_MEDIUM_TRAY_OPEN: Sense = s(key::NOT_READY, 0x3a, 2);
    /// What an I/O error of the medium reports (QEMU's for EIO).
    pub const IO_ERROR: Sense = s(key::MEDIUM_ERROR, 0x11, 0);

    /// Fixed-format sense data, current error, 18 bytes.
    pub fn fixed(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[0] = 0x70;
        b[2] = self.key;
        b[7] = 10;
        b[12] = self.asc;
        b[13] = self.ascq;
        b
    }
}
