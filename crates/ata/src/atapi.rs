//! ATAPI CD-ROM: the SCSI/MMC commands a PACKET carries, the tray, the
//! medium and the sense data, as QEMU 7.2's `ide/atapi.c` answers them
//! (read-only, 2048-byte blocks, one data track).
//!
//! Media changes go as on QEMU: opening the tray takes the medium out
//! (NOT READY, medium not present); a new medium makes the next command
//! fail once with UNIT ATTENTION (medium may have changed) and shows up in
//! GET EVENT STATUS NOTIFICATION.

use crate::drive::{error, Action, Protocol};

/// Bytes per CD block.
pub const BLOCK: u64 = 2048;
/// The largest CD, 99 minutes of 75 blocks a second (a bigger medium is a
/// DVD to GET CONFIGURATION, as QEMU decides).
const CD_MAX_BLOCKS: u64 = 99 * 60 * 75;

/// SCSI sense keys, additional sense codes and their qualifiers.
mod sense {
    pub const NO_SENSE: u8 = 0x00;
    pub const NOT_READY: u8 = 0x02;
    pub const ILLEGAL_REQUEST: u8 = 0x05;
    pub const UNIT_ATTENTION: u8 = 0x06;

    pub const INVALID_OPCODE: u8 = 0x20;
    pub const LBA_OUT_OF_RANGE: u8 = 0x21;
    pub const INVALID_FIELD: u8 = 0x24;
    pub const MEDIUM_MAY_HAVE_CHANGED: u8 = 0x28;
    pub const MEDIUM_NOT_PRESENT: u8 = 0x3a;
    pub const MEDIA_REMOVAL_PREVENTED: u8 = 0x53;
}

/// GET EVENT STATUS NOTIFICATION media event codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaEvent {
    None = 0,
    EjectRequest = 1,
    NewMedia = 2,
    MediaRemoval = 3,
}

/// What a tray change did, for `DEVICE_TRAY_MOVED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tray {
    Opened,
    Closed,
}

/// A CD-ROM drive's state.
#[derive(Debug)]
pub struct Cdrom {
    /// The medium's size in bytes, if one is in.
    medium: Option<u64>,
    tray_open: bool,
    /// PREVENT ALLOW MEDIUM REMOVAL.
    locked: bool,
    /// Sense key, ASC and ASCQ of the last command.
    sense: (u8, u8, u8),
    /// The next command fails with UNIT ATTENTION.
    unit_attention: bool,
    event: MediaEvent,
    /// A guest eject or load the monitor has not reported yet.
    moved: Option<Tray>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An LBA in MSF form (75 frames a second, 2 seconds of lead-in).
fn msf(lba: u32) -> [u8; 4] {
    let l = lba + 150;
    [
        0,
        (l / (60 * 75)) as u8,
        ((l / 75) % 60) as u8,
        (l % 75) as u8,
    ]
}

impl Cdrom {
    pub fn new(medium: Option<u64>) -> Self {
        Cdrom {
            medium,
            tray_open: false,
            locked: false,
            sense: (sense::NO_SENSE, 0, 0),
            unit_attention: false,
            event: MediaEvent::None,
            moved: None,
        }
    }

    /// The medium's size in bytes, if one is in and the tray is closed.
    pub fn medium(&self) -> Option<u64> {
        self.medium.filter(|_| !self.tray_open)
    }

    pub fn tray_open(&self) -> bool {
        self.tray_open
    }

    pub fn locked(&self) -> bool {
        self.locked
    }

    /// A tray move the guest made since the last call.
    pub fn take_moved(&mut self) -> Option<Tray> {
        self.moved.take()
    }

    /// The monitor opens the tray (`eject`, `blockdev-open-tray`). A locked
    /// tray is not opened unless `force`: the guest is asked instead
    /// (an eject request event), as QEMU does. Returns whether it opened.
    pub fn open_tray(&mut self, force: bool) -> bool {
        if self.tray_open {
            return true;
        }
        if self.locked && !force {
            self.event = MediaEvent::EjectRequest;
            return false;
        }
        self.tray_open = true;
        self.event = MediaEvent::MediaRemoval;
        true
    }

    /// The monitor closes the tray.
    pub fn close_tray(&mut self) {
        if !self.tray_open {
            return;
        }
        self.tray_open = false;
        if self.medium.is_some() {
            self.event = MediaEvent::NewMedia;
            self.unit_attention = true;
        }
    }

    /// A new medium (or none) goes in; the tray must be open for it.
    pub fn set_medium(&mut self, medium: Option<u64>) {
        self.medium = medium;
    }

    fn blocks(&self) -> Option<u64> {
        self.medium().map(|b| b / BLOCK)
    }

    fn fail(&mut self, key: u8, asc: u8, ascq: u8) -> Action {
        self.sense = (key, asc, ascq);
        Action::Error(key << 4 | error::ABRT)
    }

    fn not_ready(&mut self) -> Action {
        let q = u8::from(self.tray_open) + 1;
        // Medium not present, tray closed (1) or open (2).
        self.fail(sense::NOT_READY, sense::MEDIUM_NOT_PRESENT, q)
    }

    fn invalid_field(&mut self) -> Action {
        self.fail(sense::ILLEGAL_REQUEST, sense::INVALID_FIELD, 0)
    }

    fn data(&mut self, mut bytes: Vec<u8>, alloc: usize, dma: bool) -> Action {
        bytes.truncate(alloc);
        self.sense = (sense::NO_SENSE, 0, 0);
        if bytes.is_empty() {
            return Action::Done;
        }
        let protocol = if dma { Protocol::Dma } else { Protocol::Pio };
        Action::DataIn(bytes, protocol)
    }

    fn ok(&mut self) -> Action {
        self.sense = (sense::NO_SENSE, 0, 0);
        Action::Done
    }

    /// What the 12-byte command `cdb` does.
    pub fn packet(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        let op = cdb[0];
        // INQUIRY, REQUEST SENSE and GET EVENT STATUS NOTIFICATION pass a
        // pending unit attention; anything else reports it, once.
        if self.unit_attention && !matches!(op, 0x12 | 0x03 | 0x4a) {
            self.unit_attention = false;
            return self.fail(sense::UNIT_ATTENTION, sense::MEDIUM_MAY_HAVE_CHANGED, 0);
        }
        let needs_medium = matches!(op, 0x00 | 0x25 | 0x28 | 0xa8 | 0x43 | 0x2b | 0xbe);
        if needs_medium && self.medium().is_none() {
            return self.not_ready();
        }
        match op {
            0x00 => self.ok(), // TEST UNIT READY
            0x03 => {
                // REQUEST SENSE
                let (key, asc, ascq) = self.sense;
                let mut b = vec![0u8; 18];
                b[0] = 0x70;
                b[2] = key;
                b[7] = 10;
                b[12] = asc;
                b[13] = ascq;
                let alloc = usize::from(cdb[4]);
                if key == sense::UNIT_ATTENTION {
                    self.unit_attention = false;
                }
                self.data(b, alloc, dma)
            }
            0x12 => {
                // INQUIRY
                let mut b = vec![0u8; 36];
                b[0] = 0x05; // CD/DVD
                b[1] = 0x80; // removable
                b[3] = 0x21; // ATAPI, response data format 1
                b[4] = 31;
                b[8..16].copy_from_slice(b"QEMU    ");
                b[16..32].copy_from_slice(b"QEMU DVD-ROM    ");
                b[32..36].copy_from_slice(crate::identify::FIRMWARE.as_bytes());
                self.data(b, usize::from(be16(&cdb[3..5])), dma)
            }
            0x1b => {
                // START STOP UNIT: LoEj with Start clear ejects, with Start
                // set loads.
                let (start, loej) = (cdb[4] & 1 != 0, cdb[4] & 2 != 0);
                if loej {
                    if !start {
                        if self.locked {
                            return self.fail(
                                sense::ILLEGAL_REQUEST,
                                sense::MEDIA_REMOVAL_PREVENTED,
                                2,
                            );
                        }
                        if !self.tray_open {
                            self.tray_open = true;
                            self.event = MediaEvent::MediaRemoval;
                            self.moved = Some(Tray::Opened);
                        }
                    } else if self.tray_open {
                        self.tray_open = false;
                        self.moved = Some(Tray::Closed);
                        if self.medium.is_some() {
                            self.event = MediaEvent::NewMedia;
                        }
                    }
                }
                self.ok()
            }
            0x1e => {
                // PREVENT ALLOW MEDIUM REMOVAL
                self.locked = cdb[4] & 1 != 0;
                self.ok()
            }
            0x25 => {
                // READ CAPACITY
                let last = self
                    .blocks()
                    .unwrap_or(0)
                    .saturating_sub(1)
                    .min(u32::MAX.into());
                let mut b = (last as u32).to_be_bytes().to_vec();
                b.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                self.data(b, 8, dma)
            }
            0x28 | 0xa8 => {
                // READ(10), READ(12)
                let lba = u64::from(be32(&cdb[2..6]));
                let count = if op == 0x28 {
                    u64::from(be16(&cdb[7..9]))
                } else {
                    u64::from(be32(&cdb[6..10]))
                };
                if count == 0 {
                    return self.ok();
                }
                if lba + count > self.blocks().unwrap_or(0) {
                    return self.fail(sense::ILLEGAL_REQUEST, sense::LBA_OUT_OF_RANGE, 0);
                }
                self.sense = (sense::NO_SENSE, 0, 0);
                Action::Read {
                    offset: lba * BLOCK,
                    len: count * BLOCK,
                    protocol: if dma { Protocol::Dma } else { Protocol::Pio },
                }
            }
            0x2b | 0x4e | 0x35 => self.ok(), // SEEK, STOP PLAY/SCAN, SYNCHRONIZE CACHE
            0x43 => self.read_toc(cdb, dma),
            0x46 => self.get_configuration(cdb, dma),
            0x4a => self.event_status(cdb, dma),
            0x5a => self.mode_sense(cdb, dma),
            0xbd => {
                // MECHANISM STATUS: no changer, one slot.
                let mut b = vec![0u8; 8];
                b[5] = 1;
                self.data(b, usize::from(be16(&cdb[8..10])), dma)
            }
            _ => self.fail(sense::ILLEGAL_REQUEST, sense::INVALID_OPCODE, 0),
        }
    }

    fn read_toc(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        let msf_form = cdb[1] & 2 != 0;
        let alloc = usize::from(be16(&cdb[7..9]));
        let format = match cdb[9] >> 6 {
            0 => cdb[2] & 0xf,
            f => f,
        };
        let blocks = self.blocks().unwrap_or(0) as u32;
        let addr = |lba: u32| {
            if msf_form {
                msf(lba)
            } else {
                lba.to_be_bytes()
            }
        };
        let mut b = vec![0u8, 0, 1, 1];
        match format {
            0 => {
                let start = cdb[6];
                if start > 1 && start != 0xaa {
                    return self.invalid_field();
                }
                if start <= 1 {
                    b.extend_from_slice(&[0, 0x14, 1, 0]);
                    b.extend_from_slice(&addr(0));
                }
                b.extend_from_slice(&[0, 0x16, 0xaa, 0]);
                b.extend_from_slice(&addr(blocks));
            }
            1 => {
                // Multi-session: one session, starting at track 1.
                b.extend_from_slice(&[0, 0x14, 1, 0]);
                b.extend_from_slice(&addr(0));
            }
            _ => return self.invalid_field(),
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        self.data(b, alloc, dma)
    }

    fn get_configuration(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        let alloc = usize::from(be16(&cdb[7..9]));
        let profile: u16 = match self.blocks() {
            None => 0,
            Some(n) if n > CD_MAX_BLOCKS => 0x0010, // DVD-ROM
            Some(_) => 0x0008,                      // CD-ROM
        };
        let mut b = vec![0u8; 8];
        b[6..8].copy_from_slice(&profile.to_be_bytes());
        // Profile list: DVD-ROM and CD-ROM, the current one marked.
        b.extend_from_slice(&[0, 0, 0x03, 8]);
        for p in [0x0010u16, 0x0008] {
            b.extend_from_slice(&p.to_be_bytes());
            b.extend_from_slice(&[u8::from(p == profile), 0]);
        }
        // Core: ATAPI interface.
        b.extend_from_slice(&[0, 1, 0x0b, 8, 0, 0, 0, 2, 1, 0, 0, 0]);
        // Removable medium: tray, eject, lock.
        let lock = if self.locked { 0x04 } else { 0 };
        b.extend_from_slice(&[0, 3, 0x0b, 4, 0x29 | lock, 0, 0, 0]);
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        self.data(b, alloc, dma)
    }

    fn event_status(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        // Only polled requests, as QEMU.
        if cdb[1] & 1 == 0 {
            return self.invalid_field();
        }
        let alloc = usize::from(be16(&cdb[7..9]));
        const MEDIA: u8 = 1 << 4;
        let mut b = vec![0u8; 4];
        b[3] = MEDIA; // supported classes
        if cdb[4] & MEDIA != 0 {
            b[2] = 4; // media class
            let status = u8::from(self.tray_open) | (u8::from(self.medium.is_some()) << 1);
            b.extend_from_slice(&[self.event as u8, status, 0, 0]);
            self.event = MediaEvent::None;
        } else {
            b[2] = 0x80; // no event available
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        self.data(b, alloc, dma)
    }

    fn mode_sense(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        let alloc = usize::from(be16(&cdb[7..9]));
        let page = cdb[2] & 0x3f;
        let control = cdb[2] >> 6;
        if control == 3 {
            // Saved values are not supported.
            return self.fail(sense::ILLEGAL_REQUEST, 0x39, 0);
        }
        let mut b = vec![0u8; 8];
        let error_recovery = [0x01, 0x06, 0x00, 0x05, 0, 0, 0, 0];
        let lock = u8::from(self.locked) << 1;
        let capabilities = [
            0x2a,
            0x12,
            0x3b,
            0x00,
            0x71,
            0x73,
            0x29 | lock,
            0x03,
            0x02,
            0xc2,
            0x00,
            0x02,
            0x02,
            0x00,
            0x02,
            0xc2,
            0,
            0,
            0,
            0,
        ];
        match page {
            0x01 => b.extend_from_slice(&error_recovery),
            0x2a => b.extend_from_slice(&capabilities),
            0x3f => {
                b.extend_from_slice(&error_recovery);
                b.extend_from_slice(&capabilities);
            }
            _ => return self.invalid_field(),
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        b[2] = 0x70; // medium type: no disc / door closed (as QEMU)
        self.data(b, alloc, dma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdb(bytes: &[u8]) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[..bytes.len()].copy_from_slice(bytes);
        c
    }

    fn sense_of(cd: &mut Cdrom) -> (u8, u8, u8) {
        match cd.packet(&cdb(&[0x03, 0, 0, 0, 18]), true) {
            Action::DataIn(b, _) => (b[2], b[12], b[13]),
            other => panic!("REQUEST SENSE gave {other:?}"),
        }
    }

    #[test]
    fn reads_are_in_2048_byte_blocks_within_the_medium() {
        let mut cd = Cdrom::new(Some(10 * BLOCK));
        assert_eq!(
            cd.packet(&cdb(&[0x28, 0, 0, 0, 0, 9, 0, 0, 1]), true),
            Action::Read {
                offset: 9 * BLOCK,
                len: BLOCK,
                protocol: Protocol::Dma
            }
        );
        assert!(matches!(
            cd.packet(&cdb(&[0xa8, 0, 0, 0, 0, 9, 0, 0, 0, 2]), true),
            Action::Error(_)
        ));
        assert_eq!(sense_of(&mut cd), (5, 0x21, 0));
        match cd.packet(&cdb(&[0x25]), false) {
            Action::DataIn(b, Protocol::Pio) => assert_eq!(b, [0, 0, 0, 9, 0, 0, 8, 0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_media_change_is_a_unit_attention_once_and_an_event() {
        let mut cd = Cdrom::new(None);
        assert!(matches!(cd.packet(&cdb(&[0]), true), Action::Error(0x24)));
        assert_eq!(sense_of(&mut cd), (2, 0x3a, 1));
        assert!(cd.open_tray(false));
        cd.set_medium(Some(100 * BLOCK));
        cd.close_tray();
        // The event is there before the unit attention is seen.
        match cd.packet(&cdb(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8]), true) {
            Action::DataIn(b, _) => assert_eq!(&b[4..6], &[2, 2], "new media, present"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(cd.packet(&cdb(&[0]), true), Action::Error(0x64)));
        assert_eq!(cd.packet(&cdb(&[0]), true), Action::Done);
    }

    #[test]
    fn a_locked_tray_refuses_a_guest_eject_and_asks_on_a_monitor_one() {
        let mut cd = Cdrom::new(Some(BLOCK));
        cd.packet(&cdb(&[0x1e, 0, 0, 0, 1]), true);
        assert!(matches!(
            cd.packet(&cdb(&[0x1b, 0, 0, 0, 2]), true),
            Action::Error(_)
        ));
        assert!(!cd.open_tray(false));
        assert!(!cd.tray_open());
        cd.packet(&cdb(&[0x1e, 0, 0, 0, 0]), true);
        assert_eq!(cd.packet(&cdb(&[0x1b, 0, 0, 0, 2]), true), Action::Done);
        assert_eq!(cd.take_moved(), Some(Tray::Opened));
        assert!(cd.tray_open());
    }

    #[test]
    fn toc_and_configuration_describe_one_data_track() {
        let mut cd = Cdrom::new(Some(1000 * BLOCK));
        match cd.packet(&cdb(&[0x43, 0, 0, 0, 0, 0, 0, 0, 100]), true) {
            Action::DataIn(b, _) => {
                assert_eq!(b.len(), 20);
                assert_eq!(&b[16..20], &1000u32.to_be_bytes(), "lead-out");
            }
            other => panic!("{other:?}"),
        }
        match cd.packet(&cdb(&[0x46, 0, 0, 0, 0, 0, 0, 0, 8]), true) {
            Action::DataIn(b, _) => assert_eq!(&b[6..8], &[0, 8], "CD-ROM profile"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cd.packet(&cdb(&[0xff]), true),
            Action::Error(0x54)
        ));
    }
}
