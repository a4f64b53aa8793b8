//! The ATA command core every controller shares: a drive (disk or CD-ROM)
//! takes a task file (the registers a command arrives in, from an AHCI
//! register FIS or the IDE ports) and says what the command does
//! ([`Action`]); the controller moves the data (PRDs, bus-master DMA or
//! PIO) and reports the status it gets back. No guest memory and no I/O
//! here, so AHCI and IDE cannot disagree about what a command means.

use crate::atapi::Cdrom;
use crate::identify;

/// ATA status register bits.
pub mod status {
    pub const ERR: u8 = 0x01;
    pub const DRQ: u8 = 0x08;
    pub const DSC: u8 = 0x10;
    pub const DF: u8 = 0x20;
    pub const DRDY: u8 = 0x40;
    pub const BSY: u8 = 0x80;
    /// A drive at rest, ready for a command.
    pub const READY: u8 = DRDY | DSC;
}

/// ATA error register bits.
pub mod error {
    pub const ABRT: u8 = 0x04;
    pub const IDNF: u8 = 0x10;
}

/// The ATA commands rvirt's drives know.
pub mod cmd {
    pub const READ_SECTORS: u8 = 0x20;
    pub const READ_SECTORS_EXT: u8 = 0x24;
    pub const READ_DMA_EXT: u8 = 0x25;
    pub const READ_MULTIPLE_EXT: u8 = 0x29;
    pub const WRITE_SECTORS: u8 = 0x30;
    pub const WRITE_SECTORS_EXT: u8 = 0x34;
    pub const WRITE_DMA_EXT: u8 = 0x35;
    pub const WRITE_MULTIPLE_EXT: u8 = 0x39;
    pub const READ_VERIFY: u8 = 0x40;
    pub const READ_VERIFY_EXT: u8 = 0x42;
    pub const RECALIBRATE: u8 = 0x10;
    pub const INITIALIZE_PARAMS: u8 = 0x91;
    pub const PACKET: u8 = 0xa0;
    pub const IDENTIFY_PACKET: u8 = 0xa1;
    pub const READ_MULTIPLE: u8 = 0xc4;
    pub const WRITE_MULTIPLE: u8 = 0xc5;
    pub const SET_MULTIPLE: u8 = 0xc6;
    pub const READ_DMA: u8 = 0xc8;
    pub const WRITE_DMA: u8 = 0xca;
    pub const STANDBY_IMMEDIATE: u8 = 0xe0;
    pub const IDLE_IMMEDIATE: u8 = 0xe1;
    pub const STANDBY: u8 = 0xe2;
    pub const IDLE: u8 = 0xe3;
    pub const CHECK_POWER_MODE: u8 = 0xe5;
    pub const FLUSH_CACHE: u8 = 0xe7;
    pub const FLUSH_CACHE_EXT: u8 = 0xea;
    pub const IDENTIFY: u8 = 0xec;
    pub const SET_FEATURES: u8 = 0xef;
    pub const DEVICE_RESET: u8 = 0x08;
}

/// The signature a drive leaves in the LBA registers after a reset: how
/// software tells an ATAPI device from a disk.
pub const SIG_ATA: u32 = 0x0000_0101;
pub const SIG_ATAPI: u32 = 0xeb14_0101;

/// A command as the registers carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFile {
    pub command: u8,
    /// Features 7:0 and, for 48-bit commands, 15:8.
    pub features: u16,
    /// Sector count 7:0 and 15:8.
    pub count: u16,
    /// LBA 47:0 (for 28-bit commands, 27:24 come from `device`).
    pub lba: u64,
    pub device: u8,
}

/// How a command's data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Programmed I/O: AHCI sends a PIO Setup FIS, IDE a DRQ per block.
    Pio,
    Dma,
}

/// What a command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done, nothing to move.
    Done,
    /// These bytes go to the host.
    DataIn(Vec<u8>, Protocol),
    /// Read `len` bytes of the medium at byte `offset` into the host's
    /// buffers.
    Read {
        offset: u64,
        len: u64,
        protocol: Protocol,
    },
    /// Write `len` bytes from the host's buffers at byte `offset`.
    Write {
        offset: u64,
        len: u64,
        protocol: Protocol,
    },
    Flush,
    /// A PACKET command: its 12-byte CDB follows (in AHCI's command table,
    /// on IDE through the data port); hand it to [`Drive::packet`].
    Packet {
        dma: bool,
    },
    /// Failed: the status gets ERR, the error register this.
    Error(u8),
}

/// What a drive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Disk,
    Cdrom,
}

/// A drive's identity, as IDENTIFY reports it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub serial: String,
    pub model: String,
}

impl Identity {
    /// QEMU's defaults: `QM000NN` with the drive's unit number (IDE
    /// `bus * 2 + unit + 1`, AHCI port + 1), and its model strings.
    pub fn qemu(kind: Kind, number: u32) -> Self {
        Identity {
            serial: format!("QM{number:05}"),
            model: match kind {
                Kind::Disk => "QEMU HARDDISK",
                Kind::Cdrom => "QEMU DVD-ROM",
            }
            .into(),
        }
    }
}

/// One ATA or ATAPI drive: what a command does to it. The medium's bytes
/// are the controller's (it owns the block layer's disk); the drive knows
/// its size.
#[derive(Debug)]
pub struct Drive {
    kind: Kind,
    identity: Identity,
    /// Disk size in 512-byte sectors (a CD-ROM keeps its medium in `cdrom`).
    sectors: u64,
    read_only: bool,
    write_cache: bool,
    /// The guest's choice, restored at reset.
    original_write_cache: bool,
    cdrom: Option<Cdrom>,
}

/// Bytes per ATA sector.
pub const SECTOR: u64 = 512;

impl Drive {
    /// A disk of `size` bytes (a tail short of a sector is not visible).
    pub fn disk(identity: Identity, size: u64, read_only: bool, write_cache: bool) -> Self {
        Drive {
            kind: Kind::Disk,
            identity,
            sectors: size / SECTOR,
            read_only,
            write_cache,
            original_write_cache: write_cache,
            cdrom: None,
        }
    }

    /// A CD-ROM with a medium of `size` bytes, or none.
    pub fn cdrom(identity: Identity, medium: Option<u64>) -> Self {
        Drive {
            kind: Kind::Cdrom,
            identity,
            sectors: 0,
            read_only: true,
            write_cache: false,
            original_write_cache: false,
            cdrom: Some(crate::atapi::cdrom(medium)),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A disk's size in sectors (0 for a CD-ROM).
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The signature registers after a reset.
    pub fn signature(&self) -> u32 {
        match self.kind {
            Kind::Disk => SIG_ATA,
            Kind::Cdrom => SIG_ATAPI,
        }
    }

    /// Whether the guest turned the volatile write cache on.
    pub fn write_cache(&self) -> bool {
        self.write_cache
    }

    /// The CD-ROM's state (tray, medium, sense), for a CD-ROM.
    pub fn cdrom_state(&mut self) -> Option<&mut Cdrom> {
        self.cdrom.as_mut()
    }

    /// A device reset: the write cache back to what it was opened with.
    pub fn reset(&mut self) {
        self.write_cache = self.original_write_cache;
    }

    /// What `tf` does.
    pub fn command(&mut self, tf: &TaskFile) -> Action {
        use cmd::*;
        let cd = self.kind == Kind::Cdrom;
        match tf.command {
            IDENTIFY if !cd => Action::DataIn(
                identify::disk(
                    self.sectors,
                    &self.identity.serial,
                    &self.identity.model,
                    self.write_cache,
                )
                .to_vec(),
                Protocol::Pio,
            ),
            IDENTIFY_PACKET if cd => Action::DataIn(
                identify::cdrom(&self.identity.serial, &self.identity.model).to_vec(),
                Protocol::Pio,
            ),
            PACKET if cd => Action::Packet {
                dma: tf.features & 1 != 0,
            },
            DEVICE_RESET if cd => Action::Done,
            READ_DMA | READ_DMA_EXT | READ_SECTORS | READ_SECTORS_EXT | READ_MULTIPLE
            | READ_MULTIPLE_EXT
                if !cd =>
            {
                self.transfer(tf, false)
            }
            WRITE_DMA | WRITE_DMA_EXT | WRITE_SECTORS | WRITE_SECTORS_EXT | WRITE_MULTIPLE
            | WRITE_MULTIPLE_EXT
                if !cd =>
            {
                if self.read_only {
                    return Action::Error(error::ABRT);
                }
                self.transfer(tf, true)
            }
            READ_VERIFY | READ_VERIFY_EXT if !cd => match self.range(tf) {
                Some(_) => Action::Done,
                None => Action::Error(error::IDNF | error::ABRT),
            },
            FLUSH_CACHE | FLUSH_CACHE_EXT if !cd => Action::Flush,
            SET_FEATURES => self.set_features(tf),
            RECALIBRATE | INITIALIZE_PARAMS | SET_MULTIPLE | STANDBY_IMMEDIATE | IDLE_IMMEDIATE
            | STANDBY | IDLE | CHECK_POWER_MODE
                if !cd =>
            {
                Action::Done
            }
            _ => Action::Error(error::ABRT),
        }
    }

    /// A PACKET command's CDB (for a CD-ROM).
    pub fn packet(&mut self, cdb: &[u8; 12], dma: bool) -> Action {
        match self.cdrom.as_mut() {
            Some(cd) => crate::atapi::packet(cd, cdb, dma),
            None => Action::Error(error::ABRT),
        }
    }

    fn set_features(&mut self, tf: &TaskFile) -> Action {
        match tf.features as u8 {
            0x02 if self.kind == Kind::Disk => {
                self.write_cache = true;
                Action::Done
            }
            0x82 if self.kind == Kind::Disk => {
                self.write_cache = false;
                Action::Flush
            }
            // Transfer mode, read look-ahead, reverting to defaults, APM
            // and the like change nothing a guest can measure here.
            0x03 | 0x55 | 0xaa | 0x66 | 0xcc | 0x05 | 0x85 | 0x31 | 0x42 | 0xc2 => Action::Done,
            _ => Action::Error(error::ABRT),
        }
    }

    /// The LBA and sector count of a read/write/verify command, checked
    /// against the disk's size; None when out of range.
    fn range(&self, tf: &TaskFile) -> Option<(u64, u64)> {
        use cmd::*;
        let ext = matches!(
            tf.command,
            READ_DMA_EXT
                | READ_SECTORS_EXT
                | READ_MULTIPLE_EXT
                | WRITE_DMA_EXT
                | WRITE_SECTORS_EXT
                | WRITE_MULTIPLE_EXT
                | READ_VERIFY_EXT
        );
        let (lba, count) = if ext {
            let count = if tf.count == 0 {
                65536
            } else {
                u64::from(tf.count)
            };
            (tf.lba & 0xffff_ffff_ffff, count)
        } else {
            let count = match tf.count & 0xff {
                0 => 256,
                n => u64::from(n),
            };
            let lba = (tf.lba & 0xff_ffff) | (u64::from(tf.device & 0xf) << 24);
            (lba, count)
        };
        (lba.checked_add(count)? <= self.sectors).then_some((lba, count))
    }

    fn transfer(&self, tf: &TaskFile, write: bool) -> Action {
        use cmd::*;
        let Some((lba, count)) = self.range(tf) else {
            return Action::Error(error::IDNF | error::ABRT);
        };
        let protocol = match tf.command {
            READ_DMA | READ_DMA_EXT | WRITE_DMA | WRITE_DMA_EXT => Protocol::Dma,
            _ => Protocol::Pio,
        };
        let (offset, len) = (lba * SECTOR, count * SECTOR);
        if write {
            Action::Write {
                offset,
                len,
                protocol,
            }
        } else {
            Action::Read {
                offset,
                len,
                protocol,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> Drive {
        Drive::disk(Identity::qemu(Kind::Disk, 1), 1 << 20, false, true)
    }

    fn tf(command: u8, lba: u64, count: u16) -> TaskFile {
        TaskFile {
            command,
            lba,
            count,
            device: 0x40,
            ..TaskFile::default()
        }
    }

    #[test]
    fn reads_and_writes_are_checked_against_the_size() {
        let mut d = disk();
        assert_eq!(
            d.command(&tf(cmd::READ_DMA_EXT, 2, 2)),
            Action::Read {
                offset: 1024,
                len: 1024,
                protocol: Protocol::Dma
            }
        );
        // 2048 sectors: the last one is readable, one past it is not.
        assert!(matches!(
            d.command(&tf(cmd::READ_DMA, 2047, 1)),
            Action::Read { .. }
        ));
        assert_eq!(
            d.command(&tf(cmd::READ_DMA, 2047, 2)),
            Action::Error(error::IDNF | error::ABRT)
        );
        // A huge 48-bit LBA cannot overflow.
        assert!(matches!(
            d.command(&tf(cmd::WRITE_DMA_EXT, 0xffff_ffff_ffff, 0)),
            Action::Error(_)
        ));
        // Count 0 means 256 sectors for 28-bit commands.
        assert_eq!(
            d.command(&tf(cmd::WRITE_DMA, 0, 0)),
            Action::Write {
                offset: 0,
                len: 256 * 512,
                protocol: Protocol::Dma
            }
        );
    }

    #[test]
    fn a_disk_refuses_packet_commands_and_a_cdrom_disk_commands() {
        let mut d = disk();
        assert_eq!(
            d.command(&tf(cmd::IDENTIFY_PACKET, 0, 0)),
            Action::Error(error::ABRT)
        );
        assert!(matches!(
            d.command(&tf(cmd::IDENTIFY, 0, 0)),
            Action::DataIn(_, Protocol::Pio)
        ));
        let mut cd = Drive::cdrom(Identity::qemu(Kind::Cdrom, 1), None);
        assert_eq!(
            cd.command(&tf(cmd::IDENTIFY, 0, 0)),
            Action::Error(error::ABRT)
        );
        assert_eq!(
            cd.command(&tf(cmd::READ_DMA, 0, 1)),
            Action::Error(error::ABRT)
        );
        assert_eq!(cd.signature(), SIG_ATAPI);
    }

    #[test]
    fn set_features_toggles_the_write_cache() {
        let mut d = disk();
        let mut t = tf(cmd::SET_FEATURES, 0, 0);
        t.features = 0x82;
        assert_eq!(d.command(&t), Action::Flush);
        assert!(!d.write_cache());
        t.features = 0x02;
        assert_eq!(d.command(&t), Action::Done);
        assert!(d.write_cache());
        t.features = 0x77;
        assert_eq!(d.command(&t), Action::Error(error::ABRT));
    }

    #[test]
    fn a_read_only_disk_refuses_writes() {
        let mut d = Drive::disk(Identity::qemu(Kind::Disk, 1), 4096, true, false);
        assert_eq!(
            d.command(&tf(cmd::WRITE_DMA, 0, 1)),
            Action::Error(error::ABRT)
        );
    }
}
