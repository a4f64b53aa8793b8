//! The controller driven through its ports as SeaBIOS and Linux drive
//! it, on a small guest memory and raw images in temporary files.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use rvirt_block::{AioMode, RawFile};
use rvirt_platform::TriggerMode;

use super::*;
use crate::drive::Identity;

const RAM: usize = 0x40000;
const PRD: u64 = 0x1000;
const BUF: u64 = 0x8000;

#[derive(Default)]
struct Line {
    level: AtomicBool,
    raised: AtomicU32,
}

impl InterruptLine for Line {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> std::io::Result<()> {
        self.level.store(true, Ordering::SeqCst);
        self.raised.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn lower(&self) -> std::io::Result<()> {
        self.level.store(false, Ordering::SeqCst);
        Ok(())
    }
}

struct Rig {
    ide: Ide,
    mem: Memory,
    disk: tempfile::NamedTempFile,
    lines: [Arc<Line>; 2],
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn image(len: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&pattern(len)).unwrap();
    f
}

fn disk_of(file: &std::fs::File, aio: AioMode) -> Disk<u8> {
    Disk::new(Arc::new(RawFile::new(file.try_clone().unwrap())), aio).unwrap()
}

/// A disk (1 MiB) at ide.0 unit 0 and a CD-ROM (64 blocks) at ide.1
/// unit 0.
fn rig(aio: AioMode) -> (Rig, tempfile::NamedTempFile) {
    let disk = image(1 << 20);
    let iso = image(64 * 2048);
    let d = disk_of(disk.as_file(), aio);
    let c = disk_of(iso.as_file(), AioMode::Sync);
    let hd = Attachment {
        drive: Drive::disk(Identity::qemu(Kind::Disk, 1), 1 << 20, false, true),
        disk: Some(d),
    };
    let cd = Attachment {
        drive: Drive::cdrom(Identity::qemu(Kind::Cdrom, 3), Some(64 * 2048)),
        disk: Some(c),
    };
    let mut ide = Ide::new(vec![Some(hd), None, Some(cd), None]);
    let mem = Memory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    let lines = [Arc::new(Line::default()), Arc::new(Line::default())];
    ide.attach(Wiring {
        memory: mem.clone(),
        irqs: [lines[0].clone(), lines[1].clone()],
        kick: None,
    });
    (
        Rig {
            ide,
            mem,
            disk,
            lines,
        },
        iso,
    )
}

impl Rig {
    fn outb(&mut self, c: usize, reg: u64, v: u8) {
        self.ide.write_command_block(c, reg, &[v]);
    }

    fn inb(&mut self, c: usize, reg: u64) -> u8 {
        let mut b = [0];
        self.ide.read_command_block(c, reg, &mut b);
        b[0]
    }

    fn status(&mut self, c: usize) -> u8 {
        self.inb(c, 7)
    }

    /// Waits for the block layer (the worker pool) to finish, then reaps.
    fn settle(&mut self, c: usize) {
        for _ in 0..2000 {
            self.ide.reap();
            if self.ide.read_control(c) & status::BSY == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("IDE channel {c} stays busy");
    }

    fn insw(&mut self, c: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut w = [0; 2];
            self.ide.read_command_block(c, 0, &mut w);
            out.extend_from_slice(&w);
        }
        out
    }

    fn outsw(&mut self, c: usize, data: &[u8]) {
        for w in data.chunks(2) {
            self.ide.write_command_block(c, 0, w);
        }
    }

    /// An LBA28 command on the selected drive of channel `c`.
    fn command(&mut self, c: usize, command: u8, lba: u32, count: u8) {
        self.outb(c, 2, count);
        self.outb(c, 3, lba as u8);
        self.outb(c, 4, (lba >> 8) as u8);
        self.outb(c, 5, (lba >> 16) as u8);
        self.outb(c, 6, 0xe0 | ((lba >> 24) as u8 & 0xf));
        self.outb(c, 7, command);
    }

    fn prds(&mut self, c: usize, entries: &[(u32, u16, bool)]) {
        for (i, &(addr, len, eot)) in entries.iter().enumerate() {
            let mut e = [0u8; 8];
            e[..4].copy_from_slice(&addr.to_le_bytes());
            e[4..6].copy_from_slice(&len.to_le_bytes());
            e[7] = if eot { 0x80 } else { 0 };
            self.mem
                .write_slice(&e, GuestAddress(PRD + 8 * i as u64))
                .unwrap();
        }
        let base = 8 * c as u64;
        self.ide
            .write_bar(BM_BAR, base + 4, &(PRD as u32).to_le_bytes());
    }

    fn bm_start(&mut self, c: usize, to_memory: bool) {
        let v = bm::START | if to_memory { bm::WRITE_MEM } else { 0 };
        self.ide.write_bar(BM_BAR, 8 * c as u64, &[v]);
    }

    fn bm_status(&mut self, c: usize) -> u8 {
        let mut b = [0];
        self.ide.read_bar(BM_BAR, 8 * c as u64 + 2, &mut b);
        b[0]
    }

    fn image_at(&mut self, offset: u64, len: usize) -> Vec<u8> {
        let f = self.disk.as_file_mut();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut v = vec![0; len];
        f.read_exact(&mut v).unwrap();
        v
    }
}

#[test]
fn the_function_is_qemus_piix3_ide() {
    let ide = Ide::new(Vec::new());
    let c = ide.config();
    assert_eq!(c.read_u16(0), 0x8086);
    assert_eq!(c.read_u16(2), 0x7010);
    assert_eq!(c.read_u32(8) >> 8, 0x010180);
    assert_eq!(c.bar(4), Some(BarSpec::io(16)));
}

#[test]
fn reset_signatures_and_missing_drives_read_zero() {
    let (mut r, _iso) = rig(AioMode::Sync);
    // ide.0 master: a disk, ready, signature 01 01 00 00.
    assert_eq!(r.status(0), status::READY);
    assert_eq!(
        (r.inb(0, 2), r.inb(0, 3), r.inb(0, 4), r.inb(0, 5)),
        (1, 1, 0, 0)
    );
    // ide.1 master: a CD-ROM, DRDY clear, signature 14 eb.
    assert_eq!(r.status(1), 0);
    assert_eq!((r.inb(1, 4), r.inb(1, 5)), (0x14, 0xeb));
    // No slave: everything reads 0, its commands go nowhere.
    r.outb(0, 6, 0xb0);
    r.outb(0, 2, 0x55);
    assert_eq!((r.status(0), r.inb(0, 2)), (0, 0));
    r.outb(0, 7, cmd::IDENTIFY);
    assert!(!r.ide.irq_pending(0));
    // A missing master beside a slave answers, and aborts what it gets
    // (SeaBIOS probes it so before the slave).
    let slave = Attachment {
        drive: Drive::disk(Identity::qemu(Kind::Disk, 2), 1 << 20, false, true),
        disk: Some(disk_of(r.disk.as_file(), AioMode::Sync)),
    };
    let mut only_slave = Ide::new(vec![None, Some(slave)]);
    only_slave.write_command_block(0, 6, &[0xa0]);
    only_slave.write_command_block(0, 7, &[cmd::IDENTIFY]);
    let mut b = [0];
    only_slave.read_command_block(0, 7, &mut b);
    assert_eq!(b[0], status::READY | status::ERR);
    only_slave.write_command_block(0, 6, &[0xb0]);
    only_slave.write_command_block(0, 7, &[cmd::IDENTIFY]);
    only_slave.read_command_block(0, 7, &mut b);
    assert_eq!(b[0], status::READY | status::DRQ);
    // An empty controller reads 0 everywhere.
    let mut empty = Ide::new(Vec::new());
    let mut b = [0xaa];
    empty.read_command_block(0, 7, &mut b);
    assert_eq!(b[0], 0);
    // SRST: busy while asserted, the signature back after.
    r.outb(0, 6, 0xa0);
    r.outb(0, 4, 0x12);
    r.ide.write_control(0, ctl::SRST | ctl::NIEN);
    assert_eq!(r.ide.read_control(0) & status::BSY, status::BSY);
    r.ide.write_control(0, ctl::NIEN);
    assert_eq!(r.ide.read_control(0), status::READY);
    assert_eq!((r.inb(0, 1), r.inb(0, 4)), (1, 0));
}

#[test]
fn identify_over_pio_with_drq_and_the_interrupt() {
    let (mut r, _iso) = rig(AioMode::Sync);
    r.command(0, cmd::IDENTIFY, 0, 0);
    assert!(r.lines[0].level.load(Ordering::SeqCst));
    assert_eq!(r.ide.read_control(0), status::READY | status::DRQ);
    // The status register read acknowledges the interrupt.
    r.status(0);
    assert!(!r.lines[0].level.load(Ordering::SeqCst));
    let page = r.insw(0, 256);
    let model: Vec<u8> = page[54..94].chunks(2).flat_map(|w| [w[1], w[0]]).collect();
    assert!(model.starts_with(b"QEMU HARDDISK"), "{model:?}");
    assert_eq!(r.status(0), status::READY);
    // A CD-ROM aborts IDENTIFY, its signature in place.
    r.command(1, cmd::IDENTIFY, 0, 0);
    assert_eq!(r.status(1), status::READY | status::ERR);
    assert_eq!(r.inb(1, 1), error::ABRT);
    assert_eq!((r.inb(1, 4), r.inb(1, 5)), (0x14, 0xeb));
    // nIEN keeps the line down.
    r.ide.write_control(0, ctl::NIEN);
    r.command(0, cmd::IDENTIFY, 0, 0);
    assert!(!r.lines[0].level.load(Ordering::SeqCst));
    r.insw(0, 256);
}

#[test]
fn pio_reads_and_writes_sectors_and_multiple_blocks() {
    for aio in [AioMode::Sync, AioMode::Threads] {
        let (mut r, _iso) = rig(aio);
        r.command(0, cmd::READ_SECTORS, 3, 2);
        let mut got = Vec::new();
        for _ in 0..2 {
            r.settle(0);
            assert_eq!(r.status(0), status::READY | status::DRQ);
            got.extend(r.insw(0, 256));
        }
        r.settle(0);
        assert_eq!(r.status(0), status::READY);
        assert_eq!(got, pattern(5 * 512)[3 * 512..]);
        // READ MULTIPLE in blocks of 4 sectors after SET MULTIPLE 4; a
        // block size that is no power of two is refused.
        r.command(0, cmd::SET_MULTIPLE, 0, 3);
        assert_eq!(r.status(0), status::READY | status::ERR);
        r.command(0, cmd::SET_MULTIPLE, 0, 4);
        assert_eq!(r.status(0), status::READY);
        r.command(0, cmd::READ_MULTIPLE, 0, 8);
        r.settle(0);
        let first = r.insw(0, 1024);
        r.settle(0);
        assert_eq!(r.ide.read_control(0), status::READY | status::DRQ);
        let second = r.insw(0, 1024);
        r.settle(0);
        assert_eq!(r.status(0), status::READY);
        assert_eq!([first, second].concat(), pattern(8 * 512));
        // WRITE SECTORS: DRQ at once, the data lands in the image.
        r.command(0, cmd::WRITE_SECTORS, 100, 2);
        assert_eq!(r.ide.read_control(0), status::READY | status::DRQ);
        r.outsw(0, &[0x5a; 512]);
        r.settle(0);
        r.outsw(0, &[0xa5; 512]);
        r.settle(0);
        assert_eq!(r.status(0), status::READY);
        assert_eq!(
            r.image_at(100 * 512, 1024),
            [[0x5a; 512], [0xa5; 512]].concat()
        );
        // READ SECTORS EXT: the high bytes from the previous writes.
        r.outb(0, 2, 0);
        r.outb(0, 2, 1);
        for reg in 3..=5 {
            r.outb(0, reg, 0);
        }
        r.outb(0, 3, 100);
        r.outb(0, 4, 0);
        r.outb(0, 5, 0);
        r.outb(0, 6, 0x40);
        r.outb(0, 7, cmd::READ_SECTORS_EXT);
        r.settle(0);
        assert_eq!(r.insw(0, 256), vec![0x5a; 512]);
    }
}

#[test]
fn chs_addresses_use_the_drives_geometry() {
    let (mut r, _iso) = rig(AioMode::Sync);
    // Cylinder 0, head 1, sector 2: LBA 63 + 1.
    r.outb(0, 2, 1);
    r.outb(0, 3, 2);
    r.outb(0, 4, 0);
    r.outb(0, 5, 0);
    r.outb(0, 6, 0xa1);
    r.outb(0, 7, cmd::READ_SECTORS);
    assert_eq!(r.insw(0, 256), pattern(65 * 512)[64 * 512..]);
    // Sector 0 does not exist.
    r.outb(0, 3, 0);
    r.outb(0, 7, cmd::READ_SECTORS);
    assert_eq!(r.status(0), status::READY | status::ERR);
}

#[test]
fn dma_reads_and_writes_through_the_bus_master() {
    for aio in [AioMode::Sync, AioMode::Threads] {
        let (mut r, _iso) = rig(aio);
        r.prds(
            0,
            &[(BUF as u32, 512, false), (BUF as u32 + 0x1000, 1024, true)],
        );
        r.command(0, cmd::READ_DMA, 4, 3);
        assert_eq!(r.bm_status(0) & bm::ACTIVE, 0);
        r.bm_start(0, true);
        r.settle(0);
        assert_eq!(r.status(0), status::READY);
        assert_eq!(r.bm_status(0) & (bm::ACTIVE | bm::INT | bm::ERROR), bm::INT);
        let mut a = vec![0; 512];
        let mut b = vec![0; 1024];
        r.mem.read_slice(&mut a, GuestAddress(BUF)).unwrap();
        r.mem
            .read_slice(&mut b, GuestAddress(BUF + 0x1000))
            .unwrap();
        assert_eq!([a, b].concat(), pattern(7 * 512)[4 * 512..]);
        // Clearing INT and stopping the engine.
        r.ide.write_bar(BM_BAR, 2, &[bm::INT]);
        r.ide.write_bar(BM_BAR, 0, &[0]);
        assert_eq!(r.bm_status(0) & bm::INT, 0);
        // A write, the bus master started first.
        r.mem.write_slice(&[0x77; 512], GuestAddress(BUF)).unwrap();
        r.prds(0, &[(BUF as u32, 512, true)]);
        r.bm_start(0, false);
        r.command(0, cmd::WRITE_DMA, 9, 1);
        r.settle(0);
        assert_eq!(r.status(0), status::READY);
        assert_eq!(r.image_at(9 * 512, 512), vec![0x77; 512]);
        r.ide.write_bar(BM_BAR, 0, &[0]);
    }
}

#[test]
fn hostile_prd_tables_fail_the_command_not_the_controller() {
    let (mut r, _iso) = rig(AioMode::Sync);
    let end = RAM as u32;
    let cases: Vec<Vec<(u32, u16, bool)>> = vec![
        // Outside RAM.
        vec![(0xfff0_0000, 512, true)],
        // Across RAM's end.
        vec![(end - 256, 512, true)],
        // Shorter than the transfer.
        vec![(BUF as u32, 256, true)],
    ];
    for entries in cases {
        r.prds(0, &entries);
        r.command(0, cmd::READ_DMA, 0, 1);
        r.bm_start(0, true);
        assert_eq!(r.status(0), status::READY | status::ERR);
        assert_eq!(r.inb(0, 1), error::ABRT);
        assert_eq!(r.bm_status(0) & (bm::ERROR | bm::ACTIVE), bm::ERROR);
        r.ide.write_bar(BM_BAR, 0, &[0]);
        r.ide.write_bar(BM_BAR, 2, &[bm::ERROR | bm::INT]);
    }
    // The table itself outside RAM.
    r.ide.write_bar(BM_BAR, 4, &0xffff_fff0u32.to_le_bytes());
    r.command(0, cmd::READ_DMA, 0, 1);
    r.bm_start(0, true);
    assert_eq!(r.status(0), status::READY | status::ERR);
    r.ide.write_bar(BM_BAR, 0, &[0]);
    // A table of tiny entries and no end: read up to its limit, then
    // refused as short (256 sectors want 128 KiB, 8192 entries give 16).
    let tiny = [2u8, 0, 0, 0, 2, 0, 0, 0].repeat(MAX_PRD);
    r.mem.write_slice(&tiny, GuestAddress(0x10000)).unwrap();
    r.ide.write_bar(BM_BAR, 4, &0x10000u32.to_le_bytes());
    r.command(0, cmd::READ_DMA, 0, 0);
    r.bm_start(0, true);
    assert_eq!(r.status(0), status::READY | status::ERR);
    r.ide.write_bar(BM_BAR, 0, &[0]);
    // Still working afterwards.
    r.prds(0, &[(BUF as u32, 512, true)]);
    r.command(0, cmd::READ_DMA, 0, 1);
    r.bm_start(0, true);
    assert_eq!(r.status(0), status::READY);
}

#[test]
fn bad_commands_and_ranges_are_aborted() {
    let (mut r, _iso) = rig(AioMode::Sync);
    r.command(0, 0x77, 0, 1);
    assert_eq!(r.status(0), status::READY | status::ERR);
    assert_eq!(r.inb(0, 1), error::ABRT);
    // 2048 sectors: a read of the last two from 2047 is past the end.
    r.command(0, cmd::READ_SECTORS, 2047, 2);
    assert_eq!(r.status(0), status::READY | status::ERR);
    assert_eq!(r.inb(0, 1), error::IDNF | error::ABRT);
    // A disk refuses PACKET, a CD-ROM disk reads.
    r.command(0, cmd::PACKET, 0, 0);
    assert_eq!(r.inb(0, 1), error::ABRT);
    r.command(1, cmd::READ_DMA, 0, 1);
    assert_eq!(r.inb(1, 1), error::ABRT);
    // Data port traffic outside a transfer changes nothing.
    r.outsw(0, &[1; 64]);
    assert_eq!(r.insw(0, 4), vec![0xff; 8]);
    assert_eq!(r.status(0), status::READY | status::ERR);
}

/// Sends `cdb` as a PACKET command (PIO, byte count `limit`).
fn packet(r: &mut Rig, cdb: [u8; 12], limit: u16, dma: bool) {
    r.outb(1, 1, u8::from(dma));
    r.outb(1, 4, limit as u8);
    r.outb(1, 5, (limit >> 8) as u8);
    r.outb(1, 6, 0xa0);
    r.outb(1, 7, cmd::PACKET);
    assert_eq!(r.ide.read_control(1), status::READY | status::DRQ);
    assert_eq!(r.inb(1, 2), reason::CD);
    r.outsw(1, &cdb);
}

/// Reads a PIO reply chunk by chunk.
fn reply(r: &mut Rig) -> Vec<u8> {
    let mut out = Vec::new();
    while r.status(1) & status::DRQ != 0 {
        assert_eq!(r.inb(1, 2), reason::IO);
        let n = usize::from(r.inb(1, 4)) | usize::from(r.inb(1, 5)) << 8;
        out.extend(r.insw(1, n / 2));
    }
    out
}

#[test]
fn atapi_packets_over_pio_and_dma() {
    let (mut r, _iso) = rig(AioMode::Sync);
    // The medium is new: TEST UNIT READY is fine (no change reported at
    // power-on), INQUIRY names the drive.
    packet(&mut r, [0; 12], 2048, false);
    assert_eq!(r.status(1), status::READY);
    assert_eq!(r.inb(1, 2), reason::IO | reason::CD);
    packet(
        &mut r,
        [0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0],
        2048,
        false,
    );
    let inq = reply(&mut r);
    assert_eq!(inq.len(), 36);
    assert_eq!(inq[0], 5);
    assert_eq!(&inq[16..28], b"QEMU DVD-ROM");
    // READ(10) of 3 blocks in 2048-byte chunks.
    packet(&mut r, [0x28, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0], 2048, false);
    let data = reply(&mut r);
    assert_eq!(data, pattern(5 * 2048)[2 * 2048..]);
    assert_eq!(r.status(1), status::READY);
    // ... and of 2 blocks in one chunk, by DMA.
    r.prds(1, &[(BUF as u32, 4096, true)]);
    packet(
        &mut r,
        [0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0],
        0xfffe,
        true,
    );
    r.bm_start(1, true);
    assert_eq!(r.status(1), status::READY);
    assert_eq!(r.inb(1, 2), reason::IO | reason::CD);
    let mut got = vec![0; 4096];
    r.mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
    assert_eq!(got, pattern(3 * 2048)[2048..]);
    r.ide.write_bar(BM_BAR, 8, &[0]);
    // A read past the medium's end: CHECK CONDITION (ILLEGAL REQUEST).
    packet(
        &mut r,
        [0x28, 0, 0, 0, 0, 64, 0, 0, 1, 0, 0, 0],
        2048,
        false,
    );
    assert_eq!(r.status(1), status::READY | status::ERR);
    assert_eq!(r.inb(1, 1) >> 4, 5);
}

#[test]
fn a_media_change_is_seen_once_and_a_guest_eject_reported() {
    let (mut r, _iso) = rig(AioMode::Sync);
    let moved = Arc::new(Mutex::new(Vec::new()));
    let m = moved.clone();
    r.ide
        .on_tray_moved(Arc::new(move |n, open| m.lock().unwrap().push((n, open))));
    r.ide
        .device(2)
        .unwrap()
        .drive
        .cdrom_state()
        .unwrap()
        .open_tray(true);
    r.ide.set_medium(2, None);
    packet(&mut r, [0; 12], 2048, false);
    assert_eq!(r.inb(1, 1) >> 4, 2, "NOT READY with the tray open");
    let other = image(8 * 2048);
    r.ide
        .set_medium(2, Some(disk_of(other.as_file(), AioMode::Sync)));
    r.ide
        .device(2)
        .unwrap()
        .drive
        .cdrom_state()
        .unwrap()
        .close_tray();
    packet(&mut r, [0; 12], 2048, false);
    assert_eq!(r.inb(1, 1) >> 4, 6, "UNIT ATTENTION once");
    packet(&mut r, [0; 12], 2048, false);
    assert_eq!(r.status(1), status::READY);
    // START STOP UNIT with LoEj: the guest ejects.
    packet(&mut r, [0x1b, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], 2048, false);
    assert_eq!(r.status(1), status::READY);
    assert_eq!(*moved.lock().unwrap(), vec![(2, true)]);
}
