//! ATAPI CD-ROM: the MMC commands a PACKET carries are rvirt-scsi's
//! ([`rvirt_scsi::mmc`], shared with virtio-scsi's `scsi-cd`); this maps
//! what a command does onto the ATA protocol (a data phase by PIO or DMA,
//! the error register's sense key and ABRT).

use crate::drive::{error, Action, Protocol};

pub use rvirt_scsi::mmc::{Cdrom, Flavor, Tray, BLOCK};
use rvirt_scsi::Outcome;

/// A CD-ROM as an ATAPI drive answers.
pub fn cdrom(medium: Option<u64>) -> Cdrom {
    Cdrom::new(medium, Flavor::Atapi)
}

/// What the 12-byte PACKET command `cdb` does on `cd`, with its data
/// phase by DMA or PIO.
pub fn packet(cd: &mut Cdrom, cdb: &[u8; 12], dma: bool) -> Action {
    let protocol = if dma { Protocol::Dma } else { Protocol::Pio };
    match cd.command(cdb) {
        Outcome::Good | Outcome::Flush => Action::Done,
        Outcome::Data(b) => Action::DataIn(b, protocol),
        Outcome::Read { offset, len } => Action::Read {
            offset,
            len,
            protocol,
        },
        // A CD-ROM never writes; should one ask, it is refused.
        Outcome::Write { .. } => {
            Action::Error(rvirt_scsi::sense::key::ILLEGAL_REQUEST << 4 | error::ABRT)
        }
        Outcome::Check(s) => Action::Error(s.key << 4 | error::ABRT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_keys_go_to_the_error_register_and_data_to_the_protocol() {
        let mut cd = cdrom(None);
        assert_eq!(packet(&mut cd, &[0; 12], true), Action::Error(0x24));
        let mut cd = cdrom(Some(10 * BLOCK));
        match packet(&mut cd, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], false) {
            Action::DataIn(b, Protocol::Pio) => assert_eq!(b, [0, 0, 0, 9, 0, 0, 8, 0]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            packet(&mut cd, &[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0, 0, 0], true),
            Action::Read {
                offset: 9 * BLOCK,
                len: BLOCK,
                protocol: Protocol::Dma
            }
        );
        match packet(&mut cd, &[0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0], true) {
            Action::DataIn(b, _) => {
                assert_eq!(b[3], 0x21, "ATAPI response format");
                assert_eq!(&b[16..32], b"QEMU DVD-ROM    ");
            }
            other => panic!("{other:?}"),
        }
    }
}
