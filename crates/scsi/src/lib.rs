//! SCSI targets as pure command interpreters, shared by every transport
//! that carries SCSI commands: virtio-scsi (rvirt-virtio) and ATAPI
//! (rvirt-ata). A target takes a CDB and says what it does
//! ([`Outcome`]): bytes for the initiator, a read or write of the medium
//! for the caller to run on its block layer, a flush, or CHECK CONDITION
//! with its sense data. No guest memory, no I/O, no threads here.
//!
//! [`disk`] answers as QEMU 7.2's `scsi-hd` (SBC), [`mmc`] as its CD-ROMs
//! (`scsi-cd`, and the ATAPI drive's packet commands), [`target`] what
//! the SCSI bus answers for a LUN no device sits on.

pub mod disk;
pub mod mmc;
pub mod sense;
pub mod target;

pub use sense::Sense;

/// What a command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// GOOD, nothing to move.
    Good,
    /// GOOD, and these bytes go to the initiator (already cut to the
    /// command's allocation length).
    Data(Vec<u8>),
    /// Read `len` bytes of the medium at byte `offset` to the initiator.
    Read { offset: u64, len: u64 },
    /// Write `len` bytes from the initiator at byte `offset`.
    Write { offset: u64, len: u64 },
    /// Make the medium's completed writes durable, then GOOD.
    Flush,
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

/// SCSI status bytes (SAM-5).
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
}

/// The opcodes the targets answer, by name.
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0a;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SEEK_10: u8 = 0x2b;
    pub const VERIFY_10: u8 = 0x2f;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_TOC: u8 = 0x43;
    pub const GET_CONFIGURATION: u8 = 0x46;
    pub const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
    pub const STOP_PLAY_SCAN: u8 = 0x4e;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const VERIFY_16: u8 = 0x8f;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const READ_12: u8 = 0xa8;
    pub const WRITE_12: u8 = 0xaa;
    pub const VERIFY_12: u8 = 0xaf;
    pub const MECHANISM_STATUS: u8 = 0xbd;
    /// READ CAPACITY(16), the service action of SERVICE ACTION IN(16).
    pub const SAI_READ_CAPACITY_16: u8 = 0x10;
}

/// The CDB's bytes at `range`, zero where the CDB is shorter (a
/// transport hands over a fixed-size CDB field; a short slice is never a
/// panic).
fn bytes<const N: usize>(cdb: &[u8], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    for (i, x) in b.iter_mut().enumerate() {
        *x = cdb.get(at + i).copied().unwrap_or(0);
    }
    b
}

pub(crate) fn be16(cdb: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes(cdb, at))
}

pub(crate) fn be32(cdb: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes(cdb, at))
}

pub(crate) fn be64(cdb: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes(cdb, at))
}

pub(crate) fn byte(cdb: &[u8], at: usize) -> u8 {
    cdb.get(at).copied().unwrap_or(0)
}

/// GOOD with `bytes` cut to `alloc`; nothing to move is plain GOOD.
pub(crate) fn data(mut bytes: Vec<u8>, alloc: usize) -> Outcome {
    bytes.truncate(alloc);
    if bytes.is_empty() {
        Outcome::Good
    } else {
        Outcome::Data(bytes)
    }
}

/// The LBA and block count of a READ/WRITE(6/10/12/16) CDB.
pub(crate) fn lba_and_count(cdb: &[u8]) -> (u64, u64) {
    match byte(cdb, 0) >> 5 {
        // Group 0: 21-bit LBA, and 0 blocks means 256.
        0 => {
            let lba = u64::from(be32(cdb, 0) & 0x1f_ffff);
            let n = byte(cdb, 4);
            (lba, if n == 0 { 256 } else { u64::from(n) })
        }
        1 | 2 => (u64::from(be32(cdb, 2)), u64::from(be16(cdb, 7))),
        5 => (u64::from(be32(cdb, 2)), u64::from(be32(cdb, 6))),
        _ => (be64(cdb, 2), u64::from(be32(cdb, 10))),
    }
}

/// How long a CDB is, from its group code (SPC-4 4.2.5.1): what a
/// transport needs to know before the command is interpreted.
pub fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lba_and_count_read_every_cdb_size() {
        assert_eq!(lba_and_count(&[0x08, 0x01, 0x02, 0x03, 0]), (0x10203, 256));
        assert_eq!(
            lba_and_count(&[0x28, 0, 0, 0, 1, 0, 0, 0, 2, 0]),
            (0x100, 2)
        );
        assert_eq!(
            lba_and_count(&[0xa8, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0]),
            (9, 3)
        );
        let mut c = [0u8; 16];
        c[0] = 0x88;
        c[2] = 1;
        c[13] = 4;
        assert_eq!(lba_and_count(&c), (1 << 56, 4));
        // A short slice reads as zeroes, never a panic.
        assert_eq!(lba_and_count(&[0x88]), (0, 0));
        assert_eq!(cdb_len(0x12), 6);
        assert_eq!(cdb_len(0x9e), 16);
    }
}
