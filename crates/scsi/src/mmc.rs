//! A CD-ROM: the MMC commands, the tray, the medium and the sense data,
//! as QEMU 7.2 answers them (`ide/atapi.c` for the ATAPI drive,
//! `scsi-disk.c` for `scsi-cd`; read-only, 2048-byte blocks, one data
//! track). The two differ only in INQUIRY ([`Flavor`]).
//!
//! Media changes go as on QEMU: opening the tray takes the medium out
//! (NOT READY, medium not present); a new medium makes the next command
//! fail once with UNIT ATTENTION (medium may have changed) and shows up in
//! GET EVENT STATUS NOTIFICATION.

use crate::{be16, be32, byte, Outcome, Sense};

/// scsi-cd's INQUIRY product.
const PRODUCT_SCSI: &str = "QEMU CD-ROM";

/// Bytes per CD block.
pub const BLOCK: u64 = 2048;
/// The largest CD, 99 minutes of 75 blocks a second (a bigger medium is a
/// DVD to GET CONFIGURATION, as QEMU decides).
const CD_MAX_BLOCKS: u64 = 99 * 60 * 75;

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

/// The transport a CD-ROM answers on: only INQUIRY tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// An ATAPI drive (`ide-cd`): `QEMU DVD-ROM`, ATAPI response format.
    Atapi,
    /// A SCSI CD-ROM (`scsi-cd`): `QEMU CD-ROM`, as scsi-disk.c says.
    Scsi,
}

/// A CD-ROM drive's state.
#[derive(Debug)]
pub struct Cdrom {
    /// The medium's size in bytes, if one is in.
    medium: Option<u64>,
    tray_open: bool,
    /// PREVENT ALLOW MEDIUM REMOVAL.
    locked: bool,
    /// The last command's sense.
    sense: Sense,
    flavor: Flavor,
    /// The next command fails with UNIT ATTENTION.
    unit_attention: bool,
    event: MediaEvent,
    /// A guest eject or load the monitor has not reported yet.
    moved: Option<Tray>,
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
    pub fn new(medium: Option<u64>, flavor: Flavor) -> Self {
        Cdrom {
            medium,
            flavor,
            tray_open: false,
            locked: false,
            sense: Sense::NO_SENSE,
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

    fn fail(&mut self, sense: Sense) -> Outcome {
        self.sense = sense;
        Outcome::Check(sense)
    }

    fn not_ready(&mut self) -> Outcome {
        self.fail(if self.tray_open {
            Sense::NO_MEDIUM_TRAY_OPEN
        } else {
            Sense::NO_MEDIUM
        })
    }

    fn invalid_field(&mut self) -> Outcome {
        self.fail(Sense::INVALID_FIELD)
    }

    fn data(&mut self, bytes: Vec<u8>, alloc: usize) -> Outcome {
        self.sense = Sense::NO_SENSE;
        crate::data(bytes, alloc)
    }

    fn ok(&mut self) -> Outcome {
        self.sense = Sense::NO_SENSE;
        Outcome::Good
    }

    /// VPD pages of a scsi-cd: the list, and the (empty) device
    /// identification (QEMU names the drive there; rvirt's CD-ROMs have
    /// no name to give).
    fn vpd(&mut self, page: u8, alloc: usize) -> Outcome {
        let b = match page {
            0x00 => vec![0x05, 0, 0, 2, 0x00, 0x83],
            0x83 => vec![0x05, 0x83, 0, 0],
            _ => return self.invalid_field(),
        };
        self.data(b, alloc)
    }

    /// What the command `cdb` does (12 bytes from ATAPI, up to 16 from a
    /// SCSI transport; missing bytes read as zero).
    pub fn command(&mut self, cdb: &[u8]) -> Outcome {
        let op = byte(cdb, 0);
        // INQUIRY, REQUEST SENSE and GET EVENT STATUS NOTIFICATION pass a
        // pending unit attention; anything else reports it, once.
        if self.unit_attention && !matches!(op, 0x12 | 0x03 | 0x4a) {
            self.unit_attention = false;
            return self.fail(Sense::MEDIUM_MAY_HAVE_CHANGED);
        }
        let needs_medium = matches!(op, 0x00 | 0x25 | 0x28 | 0xa8 | 0x43 | 0x2b | 0xbe);
        if needs_medium && self.medium().is_none() {
            return self.not_ready();
        }
        match op {
            0x00 => self.ok(), // TEST UNIT READY
            0x03 => {
                // REQUEST SENSE
                let b = self.sense.fixed().to_vec();
                let alloc = usize::from(byte(cdb, 4));
                if self.sense.key == crate::sense::key::UNIT_ATTENTION {
                    self.unit_attention = false;
                }
                self.data(b, alloc)
            }
            0x12 => {
                // INQUIRY
                let alloc = usize::from(be16(cdb, 3));
                if self.flavor == Flavor::Scsi {
                    if byte(cdb, 1) & 1 != 0 {
                        return self.vpd(byte(cdb, 2), alloc);
                    }
                    if byte(cdb, 2) != 0 {
                        return self.invalid_field();
                    }
                    let b = crate::disk::standard_inquiry(0x05, true, PRODUCT_SCSI, alloc);
                    return self.data(b, alloc);
                }
                let mut b = vec![0u8; 36];
                b[0] = 0x05; // CD/DVD
                b[1] = 0x80; // removable
                b[3] = 0x21; // ATAPI, response data format 1
                b[4] = 31;
                b[8..16].copy_from_slice(b"QEMU    ");
                b[16..32].copy_from_slice(b"QEMU DVD-ROM    ");
                b[32..36].copy_from_slice(crate::disk::REVISION.as_bytes());
                self.data(b, alloc)
            }
            0x1b => {
                // START STOP UNIT: LoEj with Start clear ejects, with Start
                // set loads.
                let (start, loej) = (byte(cdb, 4) & 1 != 0, byte(cdb, 4) & 2 != 0);
                if loej {
                    if !start {
                        if self.locked {
                            return self.fail(Sense::MEDIUM_REMOVAL_PREVENTED);
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
                self.locked = byte(cdb, 4) & 1 != 0;
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
                self.data(b, 8)
            }
            0x28 | 0xa8 => {
                // READ(10), READ(12)
                let lba = u64::from(be32(cdb, 2));
                let count = if op == 0x28 {
                    u64::from(be16(cdb, 7))
                } else {
                    u64::from(be32(cdb, 6))
                };
                if count == 0 {
                    return self.ok();
                }
                if lba + count > self.blocks().unwrap_or(0) {
                    return self.fail(Sense::LBA_OUT_OF_RANGE);
                }
                self.sense = Sense::NO_SENSE;
                Outcome::Read {
                    offset: lba * BLOCK,
                    len: count * BLOCK,
                }
            }
            0x2b | 0x4e | 0x35 => self.ok(), // SEEK, STOP PLAY/SCAN, SYNCHRONIZE CACHE
            0x43 => self.read_toc(cdb),
            0x46 => self.get_configuration(cdb),
            0x4a => self.event_status(cdb),
            0x5a => self.mode_sense(cdb),
            0xbd => {
                // MECHANISM STATUS: no changer, one slot.
                let mut b = vec![0u8; 8];
                b[5] = 1;
                self.data(b, usize::from(be16(cdb, 8)))
            }
            _ => self.fail(Sense::INVALID_OPCODE),
        }
    }

    fn read_toc(&mut self, cdb: &[u8]) -> Outcome {
        let msf_form = byte(cdb, 1) & 2 != 0;
        let alloc = usize::from(be16(cdb, 7));
        let format = match byte(cdb, 9) >> 6 {
            0 => byte(cdb, 2) & 0xf,
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
                let start = byte(cdb, 6);
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
        self.data(b, alloc)
    }

    fn get_configuration(&mut self, cdb: &[u8]) -> Outcome {
        let alloc = usize::from(be16(cdb, 7));
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
        self.data(b, alloc)
    }

    fn event_status(&mut self, cdb: &[u8]) -> Outcome {
        // Only polled requests, as QEMU.
        if byte(cdb, 1) & 1 == 0 {
            return self.invalid_field();
        }
        let alloc = usize::from(be16(cdb, 7));
        const MEDIA: u8 = 1 << 4;
        let mut b = vec![0u8; 4];
        b[3] = MEDIA; // supported classes
        if byte(cdb, 4) & MEDIA != 0 {
            b[2] = 4; // media class
            let status = u8::from(self.tray_open) | (u8::from(self.medium.is_some()) << 1);
            b.extend_from_slice(&[self.event as u8, status, 0, 0]);
            self.event = MediaEvent::None;
        } else {
            b[2] = 0x80; // no event available
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        self.data(b, alloc)
    }

    fn mode_sense(&mut self, cdb: &[u8]) -> Outcome {
        let alloc = usize::from(be16(cdb, 7));
        let page = byte(cdb, 2) & 0x3f;
        let control = byte(cdb, 2) >> 6;
        if control == 3 {
            // Saved values are not supported.
            return self.fail(Sense::SAVING_PARAMS_NOT_SUPPORTED);
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
        self.data(b, alloc)
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
        match cd.command(&cdb(&[0x03, 0, 0, 0, 18])) {
            Outcome::Data(b) => (b[2], b[12], b[13]),
            other => panic!("REQUEST SENSE gave {other:?}"),
        }
    }

    #[test]
    fn reads_are_in_2048_byte_blocks_within_the_medium() {
        let mut cd = Cdrom::new(Some(10 * BLOCK), Flavor::Atapi);
        assert_eq!(
            cd.command(&cdb(&[0x28, 0, 0, 0, 0, 9, 0, 0, 1])),
            Outcome::Read {
                offset: 9 * BLOCK,
                len: BLOCK,
            }
        );
        assert!(matches!(
            cd.command(&cdb(&[0xa8, 0, 0, 0, 0, 9, 0, 0, 0, 2])),
            Outcome::Check(_)
        ));
        assert_eq!(sense_of(&mut cd), (5, 0x21, 0));
        match cd.command(&cdb(&[0x25])) {
            Outcome::Data(b) => assert_eq!(b, [0, 0, 0, 9, 0, 0, 8, 0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_media_change_is_a_unit_attention_once_and_an_event() {
        let mut cd = Cdrom::new(None, Flavor::Atapi);
        assert!(matches!(
            cd.command(&cdb(&[0])),
            Outcome::Check(Sense::NO_MEDIUM)
        ));
        assert_eq!(sense_of(&mut cd), (2, 0x3a, 1));
        assert!(cd.open_tray(false));
        cd.set_medium(Some(100 * BLOCK));
        cd.close_tray();
        // The event is there before the unit attention is seen.
        match cd.command(&cdb(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8])) {
            Outcome::Data(b) => assert_eq!(&b[4..6], &[2, 2], "new media, present"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cd.command(&cdb(&[0])),
            Outcome::Check(Sense::MEDIUM_MAY_HAVE_CHANGED)
        ));
        assert_eq!(cd.command(&cdb(&[0])), Outcome::Good);
    }

    #[test]
    fn a_locked_tray_refuses_a_guest_eject_and_asks_on_a_monitor_one() {
        let mut cd = Cdrom::new(Some(BLOCK), Flavor::Atapi);
        cd.command(&cdb(&[0x1e, 0, 0, 0, 1]));
        assert!(matches!(
            cd.command(&cdb(&[0x1b, 0, 0, 0, 2])),
            Outcome::Check(_)
        ));
        assert!(!cd.open_tray(false));
        assert!(!cd.tray_open());
        cd.command(&cdb(&[0x1e, 0, 0, 0, 0]));
        assert_eq!(cd.command(&cdb(&[0x1b, 0, 0, 0, 2])), Outcome::Good);
        assert_eq!(cd.take_moved(), Some(Tray::Opened));
        assert!(cd.tray_open());
    }

    #[test]
    fn toc_and_configuration_describe_one_data_track() {
        let mut cd = Cdrom::new(Some(1000 * BLOCK), Flavor::Scsi);
        match cd.command(&cdb(&[0x43, 0, 0, 0, 0, 0, 0, 0, 100])) {
            Outcome::Data(b) => {
                assert_eq!(b.len(), 20);
                assert_eq!(&b[16..20], &1000u32.to_be_bytes(), "lead-out");
            }
            other => panic!("{other:?}"),
        }
        match cd.command(&cdb(&[0x46, 0, 0, 0, 0, 0, 0, 0, 8])) {
            Outcome::Data(b) => assert_eq!(&b[6..8], &[0, 8], "CD-ROM profile"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cd.command(&cdb(&[0xff])),
            Outcome::Check(Sense::INVALID_OPCODE)
        ));
    }
}
