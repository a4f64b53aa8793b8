//! A SCSI disk as QEMU 7.2's `scsi-hd` answers (SBC-3, 512-byte blocks):
//! INQUIRY with the VPD pages Linux reads, READ CAPACITY(10)/(16),
//! READ/WRITE(6/10/12/16), VERIFY, SYNCHRONIZE CACHE, MODE SENSE(6/10)
//! (error recovery, geometry, caching), TEST UNIT READY, REQUEST SENSE,
//! START STOP UNIT and PREVENT ALLOW MEDIUM REMOVAL. A range past the
//! end is LBA OUT OF RANGE, a write to a read-only disk WRITE PROTECTED,
//! anything else INVALID COMMAND OPERATION CODE or INVALID FIELD IN CDB.
//!
//! UNMAP and WRITE SAME are not answered and thin provisioning is not
//! advertised (VPD 0xb2 and READ CAPACITY(16) say so).

use crate::{be16, be32, byte, data, lba_and_count, op, Outcome, Sense};

/// Bytes per block.
pub const BLOCK: u64 = 512;
/// QEMU's product, vendor and revision strings.
pub const VENDOR: &str = "QEMU";
pub const PRODUCT: &str = "QEMU HARDDISK";
pub const REVISION: &str = "2.5+";
/// Block limits (VPD 0xb0) as QEMU 7.2's defaults: max_io_size INT_MAX,
/// max_unmap_size 1 GiB, discard granularity 4 KiB.
const MAX_IO_BLOCKS: u32 = (i32::MAX as u64 / BLOCK) as u32;
const MAX_UNMAP_BLOCKS: u32 = ((1u64 << 30) / BLOCK) as u32;
const UNMAP_GRANULARITY: u32 = (4096 / BLOCK) as u32;

/// How a disk is presented.
#[derive(Debug, Clone, Default)]
pub struct DiskInfo {
    /// Size in bytes (a partial last block is not visible).
    pub size: u64,
    pub read_only: bool,
    /// VPD 0x80, and the device identification of VPD 0x83.
    pub serial: Option<String>,
    /// The identification VPD 0x83 gives without a serial (QEMU: the
    /// drive's name, `drive-scsi0-0-0-0` for libvirt's `-drive`).
    pub device_id: Option<String>,
}

/// A disk's command interpreter.
#[derive(Debug)]
pub struct Disk {
    info: DiskInfo,
    blocks: u64,
    /// The write cache the guest sees (MODE SENSE page 8's WCE).
    write_cache: bool,
    sense: Sense,
}

impl Disk {
    pub fn new(info: DiskInfo, write_cache: bool) -> Self {
        Disk {
            blocks: info.size / BLOCK,
            info,
            write_cache,
            sense: Sense::NO_SENSE,
        }
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// What `cdb` does.
    pub fn command(&mut self, cdb: &[u8]) -> Outcome {
        let out = self.run(cdb);
        self.sense = match &out {
            Outcome::Check(s) => *s,
            _ => Sense::NO_SENSE,
        };
        out
    }

    fn run(&mut self, cdb: &[u8]) -> Outcome {
        match byte(cdb, 0) {
            op::TEST_UNIT_READY
            | op::START_STOP_UNIT
            | op::PREVENT_ALLOW_MEDIUM_REMOVAL
            | op::SEEK_10 => Outcome::Good,
            op::REQUEST_SENSE => data(self.sense.fixed().to_vec(), usize::from(byte(cdb, 4))),
            op::INQUIRY => self.inquiry(cdb),
            op::MODE_SENSE_6 | op::MODE_SENSE_10 => self.mode_sense(cdb),
            op::READ_CAPACITY_10 => {
                let last = self.blocks.saturating_sub(1).min(u64::from(u32::MAX)) as u32;
                let mut b = last.to_be_bytes().to_vec();
                b.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                Outcome::Data(b)
            }
            op::SERVICE_ACTION_IN_16 if byte(cdb, 1) & 0x1f == op::SAI_READ_CAPACITY_16 => {
                let mut b = vec![0u8; 32];
                b[..8].copy_from_slice(&self.blocks.saturating_sub(1).to_be_bytes());
                b[8..12].copy_from_slice(&(BLOCK as u32).to_be_bytes());
                // Byte 14: LBPME clear, no thin provisioning.
                data(b, be32(cdb, 10) as usize)
            }
            op::READ_6 | op::READ_10 | op::READ_12 | op::READ_16 => {
                self.range(cdb)
                    .map_or_else(Outcome::Check, |(offset, len)| {
                        if len == 0 {
                            Outcome::Good
                        } else {
                            Outcome::Read { offset, len }
                        }
                    })
            }
            op::WRITE_6 | op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => {
                if self.info.read_only {
                    return Outcome::Check(Sense::WRITE_PROTECTED);
                }
                self.range(cdb)
                    .map_or_else(Outcome::Check, |(offset, len)| {
                        if len == 0 {
                            Outcome::Good
                        } else {
                            Outcome::Write { offset, len }
                        }
                    })
            }
            op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
                // BYTCHK 0: the medium is always readable; only the range
                // is checked. A compare (BYTCHK set) is not emulated.
                if byte(cdb, 1) & 0x06 != 0 {
                    return Outcome::Check(Sense::INVALID_FIELD);
                }
                let (lba, n) = lba_and_count(&remap_verify(cdb));
                if lba.checked_add(n).is_none_or(|end| end > self.blocks) {
                    return Outcome::Check(Sense::LBA_OUT_OF_RANGE);
                }
                Outcome::Good
            }
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => Outcome::Flush,
            _ => Outcome::Check(Sense::INVALID_OPCODE),
        }
    }

    /// The byte range of a READ/WRITE, checked against the capacity.
    fn range(&self, cdb: &[u8]) -> Result<(u64, u64), Sense> {
        let (lba, n) = lba_and_count(cdb);
        match lba.checked_add(n) {
            Some(end) if end <= self.blocks => Ok((lba * BLOCK, n * BLOCK)),
            _ => Err(Sense::LBA_OUT_OF_RANGE),
        }
    }

    fn inquiry(&self, cdb: &[u8]) -> Outcome {
        let alloc = usize::from(be16(cdb, 3));
        if byte(cdb, 1) & 1 != 0 {
            return match self.vpd(byte(cdb, 2)) {
                Some(b) => data(b, alloc),
                None => Outcome::Check(Sense::INVALID_FIELD),
            };
        }
        if byte(cdb, 2) != 0 {
            return Outcome::Check(Sense::INVALID_FIELD);
        }
        data(standard_inquiry(0, false, PRODUCT, alloc), alloc)
    }

    fn device_id(&self) -> Option<&str> {
        self.info
            .serial
            .as_deref()
            .or(self.info.device_id.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// A VPD page as QEMU's scsi-hd fills it; None for one it lacks.
    fn vpd(&self, page: u8) -> Option<Vec<u8>> {
        let mut b = vec![0u8, page, 0, 0];
        match page {
            0x00 => {
                b.push(0x00);
                if self.info.serial.is_some() {
                    b.push(0x80);
                }
                b.extend_from_slice(&[0x83, 0xb0, 0xb1, 0xb2]);
            }
            0x80 => {
                let serial = self.info.serial.as_deref()?.as_bytes();
                b.extend_from_slice(&serial[..serial.len().min(36)]);
            }
            0x83 => {
                if let Some(id) = self.device_id() {
                    let id = &id.as_bytes()[..id.len().min(255 - 8)];
                    // ASCII, vendor specific, not officially assigned.
                    b.extend_from_slice(&[2, 0, 0, id.len() as u8]);
                    b.extend_from_slice(id);
                }
            }
            0xb0 => {
                let mut l = [0u8; 0x3c];
                l[0] = 1; // WSNZ
                l[4..8].copy_from_slice(&MAX_IO_BLOCKS.to_be_bytes());
                l[16..20].copy_from_slice(&MAX_UNMAP_BLOCKS.to_be_bytes());
                l[20..24].copy_from_slice(&255u32.to_be_bytes());
                l[24..28].copy_from_slice(&UNMAP_GRANULARITY.to_be_bytes());
                l[36..40].copy_from_slice(&MAX_IO_BLOCKS.to_be_bytes());
                b.extend_from_slice(&l);
            }
            // Rotation rate and form factor: not reported, as QEMU.
            0xb1 => b.extend_from_slice(&[0u8; 0x3c]),
            // No UNMAP or WRITE SAME, fully provisioned.
            0xb2 => b.extend_from_slice(&[0u8; 4]),
            _ => return None,
        }
        let len = (b.len() - 4) as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        Some(b)
    }

    fn mode_sense(&self, cdb: &[u8]) -> Outcome {
        let six = byte(cdb, 0) == op::MODE_SENSE_6;
        let dbd = byte(cdb, 1) & 0x08 != 0;
        let page = byte(cdb, 2) & 0x3f;
        let control = byte(cdb, 2) >> 6;
        let alloc = if six {
            usize::from(byte(cdb, 4))
        } else {
            usize::from(be16(cdb, 7))
        };
        if control == 3 {
            return Outcome::Check(Sense::SAVING_PARAMS_NOT_SUPPORTED);
        }
        // Changeable values: only WCE is (the guest may turn the cache
        // off and on, as QEMU lets it).
        let changeable = control == 1;
        let mut pages = Vec::new();
        let push = |p: u8, pages: &mut Vec<u8>| match p {
            0x01 => {
                let mut b = [0u8; 12];
                b[0] = 0x01;
                b[1] = 10;
                if !changeable {
                    b[2] = 0x80; // AWRE
                }
                pages.extend_from_slice(&b);
            }
            0x04 => {
                let mut b = [0u8; 24];
                b[0] = 0x04;
                b[1] = 0x16;
                if !changeable {
                    let (cyls, heads) = geometry(self.blocks);
                    let c = cyls.to_be_bytes();
                    b[2..5].copy_from_slice(&c[1..4]);
                    b[5] = heads;
                    b[6..9].copy_from_slice(&c[1..4]);
                    b[9..12].copy_from_slice(&c[1..4]);
                    b[13] = 200; // step rate
                    b[14..17].copy_from_slice(&[0xff; 3]); // landing zone
                    b[20..22].copy_from_slice(&5400u16.to_be_bytes());
                }
                pages.extend_from_slice(&b);
            }
            0x08 => {
                let mut b = [0u8; 20];
                b[0] = 0x08;
                b[1] = 0x12;
                if changeable || self.write_cache {
                    b[2] = 0x04; // WCE
                }
                pages.extend_from_slice(&b);
            }
            _ => {}
        };
        match page {
            0x01 | 0x04 | 0x08 => push(page, &mut pages),
            0x3f => {
                for p in [0x01, 0x04, 0x08] {
                    push(p, &mut pages);
                }
            }
            _ => return Outcome::Check(Sense::INVALID_FIELD),
        }
        // Device-specific parameter: DPOFUA, WP for a read-only disk.
        let dev = 0x10 | if self.info.read_only { 0x80 } else { 0 };
        let mut bd = Vec::new();
        if !dbd {
            let n = if six {
                self.blocks.min(0xff_ffff)
            } else {
                self.blocks.min(0xffff_ffff)
            } as u32;
            bd.extend_from_slice(&n.to_be_bytes());
            if six {
                bd[0] = 0;
            }
            bd.extend_from_slice(&(BLOCK as u32).to_be_bytes());
        }
        let mut b = if six {
            vec![0, 0, dev, bd.len() as u8]
        } else {
            vec![0, 0, 0, dev, 0, 0, 0, bd.len() as u8]
        };
        b.extend_from_slice(&bd);
        b.extend_from_slice(&pages);
        if six {
            b[0] = (b.len() - 1) as u8;
        } else {
            let len = (b.len() - 2) as u16;
            b[..2].copy_from_slice(&len.to_be_bytes());
        }
        data(b, alloc)
    }
}

/// VERIFY(10/12/16) carry their LBA and count where READ does.
fn remap_verify(cdb: &[u8]) -> Vec<u8> {
    let mut c = cdb.to_vec();
    if let Some(o) = c.first_mut() {
        *o = match *o {
            op::VERIFY_10 => op::READ_10,
            op::VERIFY_12 => op::READ_12,
            _ => op::READ_16,
        };
    }
    c
}

/// Cylinders and heads of the rigid disk geometry page: QEMU's guess
/// for a disk without a partition table hint (16 heads, 63 sectors).
fn geometry(blocks: u64) -> (u32, u8) {
    let cyls = (blocks / (16 * 63)).clamp(1, 65535) as u32;
    (cyls, 16)
}

/// Standard INQUIRY data as QEMU's scsi-disk builds it: `alloc` bytes
/// (at most 256, zero past 36) with the additional length saying so.
pub(crate) fn standard_inquiry(
    device_type: u8,
    removable: bool,
    product: &str,
    alloc: usize,
) -> Vec<u8> {
    let len = alloc.clamp(36, 256);
    let mut b = vec![0u8; len];
    b[0] = device_type;
    b[1] = if removable { 0x80 } else { 0 };
    b[2] = 5; // SPC-3
    b[3] = 2 | 0x10; // response data format 2, HiSup
    b[4] = (len - 5) as u8;
    b[7] = 0x10 | 0x02; // sync, command queuing
    pad(&mut b[8..16], VENDOR);
    pad(&mut b[16..32], product);
    pad(&mut b[32..36], REVISION);
    b
}

fn pad(field: &mut [u8], s: &str) {
    field.fill(b' ');
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(blocks: u64, read_only: bool) -> Disk {
        Disk::new(
            DiskInfo {
                size: blocks * BLOCK,
                read_only,
                serial: Some("S1".into()),
                device_id: None,
            },
            true,
        )
    }

    fn bytes(o: Outcome) -> Vec<u8> {
        match o {
            Outcome::Data(b) => b,
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn inquiry_says_qemu_harddisk_and_lists_the_vpd_pages() {
        let mut d = disk(100, false);
        let b = bytes(d.command(&[0x12, 0, 0, 0, 96, 0]));
        assert_eq!(b.len(), 96);
        assert_eq!(b[4], 91);
        assert_eq!(&b[8..36], b"QEMU    QEMU HARDDISK   2.5+");
        let b = bytes(d.command(&[0x12, 1, 0, 0, 255, 0]));
        assert_eq!(&b[4..], &[0, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
        let b = bytes(d.command(&[0x12, 1, 0x83, 0, 255, 0]));
        assert_eq!(&b[4..], &[2, 0, 0, 2, b'S', b'1']);
        let b = bytes(d.command(&[0x12, 1, 0xb0, 0, 255, 0]));
        assert_eq!(b.len(), 64);
        assert_eq!(
            d.command(&[0x12, 1, 0x99, 0, 255, 0]),
            Outcome::Check(Sense::INVALID_FIELD)
        );
        assert_eq!(
            d.command(&[0x12, 0, 0x83, 0, 255, 0]),
            Outcome::Check(Sense::INVALID_FIELD)
        );
        // A short allocation length cuts the data.
        assert_eq!(bytes(d.command(&[0x12, 0, 0, 0, 5, 0])).len(), 5);
    }

    #[test]
    fn reads_and_writes_stay_within_the_capacity() {
        let mut d = disk(100, false);
        assert_eq!(
            d.command(&[0x28, 0, 0, 0, 0, 98, 0, 0, 2, 0]),
            Outcome::Read {
                offset: 98 * 512,
                len: 1024
            }
        );
        assert_eq!(
            d.command(&[0x28, 0, 0, 0, 0, 99, 0, 0, 2, 0]),
            Outcome::Check(Sense::LBA_OUT_OF_RANGE)
        );
        let sense = bytes(d.command(&[0x03, 0, 0, 0, 18, 0]));
        assert_eq!((sense[2], sense[12]), (5, 0x21));
        let mut c16 = [0u8; 16];
        c16[0] = 0x8a;
        c16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        c16[13] = 1;
        assert_eq!(d.command(&c16), Outcome::Check(Sense::LBA_OUT_OF_RANGE));
        assert_eq!(
            d.command(&[0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Outcome::Good,
            "zero blocks move nothing"
        );
        assert_eq!(
            d.command(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Outcome::Flush
        );
        assert_eq!(
            disk(100, true).command(&[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Outcome::Check(Sense::WRITE_PROTECTED)
        );
        assert_eq!(d.command(&[0xff]), Outcome::Check(Sense::INVALID_OPCODE));
        assert_eq!(d.command(&[]), Outcome::Good, "an empty CDB reads as TUR");
    }

    #[test]
    fn capacity_and_mode_pages_describe_the_disk() {
        let mut d = disk(100, false);
        assert_eq!(
            bytes(d.command(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            [0, 0, 0, 99, 0, 0, 2, 0]
        );
        let mut c16 = [0u8; 16];
        c16[0] = 0x9e;
        c16[1] = 0x10;
        c16[13] = 32;
        let b = bytes(d.command(&c16));
        assert_eq!(&b[..12], &[0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 2, 0]);
        // MODE SENSE(6), caching page, with the block descriptor.
        let b = bytes(d.command(&[0x1a, 0, 0x08, 0, 255, 0]));
        assert_eq!(b[0] as usize, b.len() - 1);
        assert_eq!((b[2], b[3]), (0x10, 8));
        assert_eq!(&b[4..12], &[0, 0, 0, 100, 0, 0, 2, 0]);
        assert_eq!((b[12], b[14]), (0x08, 0x04));
        // MODE SENSE(10), all pages, no block descriptor.
        let b = bytes(d.command(&[0x5a, 0x08, 0x3f, 0, 0, 0, 0, 1, 0, 0]));
        assert_eq!(b.len(), 8 + 12 + 24 + 20);
        assert_eq!(b[8 + 12], 0x04);
        assert_eq!(
            d.command(&[0x1a, 0, 0x2a, 0, 255, 0]),
            Outcome::Check(Sense::INVALID_FIELD)
        );
        let b = bytes(disk(100, true).command(&[0x1a, 0x08, 0x08, 0, 255, 0]));
        assert_eq!(b[2], 0x90, "write protected");
    }
}
