//! The controller driven as a guest drives it, on a small guest memory and
//! a raw image in a temporary file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

use rvirt_block::{AioMode, RawFile};
use rvirt_platform::MsiMessage;

use super::*;
use crate::drive::{Identity, Kind};

const CLB: u64 = 0x1000;
const FB: u64 = 0x2000;
const TABLE: u64 = 0x3000;
const BUF: u64 = 0x8000;
const RAM: usize = 0x40000;

#[derive(Default)]
struct Vectors(Mutex<u32>);

impl MsiVectors for Vectors {
    fn count(&self) -> u16 {
        1
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> std::io::Result<()> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

struct Rig {
    ahci: Ahci,
    mem: Memory,
    image: tempfile::NamedTempFile,
    msi: Arc<Vectors>,
}

fn disk_of(file: &std::fs::File, aio: AioMode) -> Disk<u8> {
    let backend = RawFile::new(file.try_clone().unwrap());
    Disk::new(Arc::new(backend), aio).unwrap()
}

fn rig(kind: Kind, aio: AioMode) -> Rig {
    let mut image = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..64 * 2048u32).map(|i| (i * 7 % 251) as u8).collect();
    image.write_all(&data).unwrap();
    let disk = disk_of(image.as_file(), aio);
    let size = disk.len().unwrap();
    let drive = match kind {
        Kind::Disk => Drive::disk(Identity::qemu(kind, 1), size, false, true),
        Kind::Cdrom => Drive::cdrom(Identity::qemu(kind, 1), Some(size)),
    };
    let mut ahci = Ahci::new(vec![Some(Attachment {
        drive,
        disk: Some(disk),
    })]);
    let mem = Memory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    let msi = Arc::new(Vectors::default());
    ahci.attach(Wiring {
        memory: mem.clone(),
        msi: msi.clone(),
        intx: IntxPin::unconnected(),
        kick: None,
    });
    // Driver bring-up: command list, FIS area, FIS receive, start.
    let p = regs::PORT_BASE;
    ahci.write_reg(p + regs::port::CLB, CLB as u32);
    ahci.write_reg(p + regs::port::FB, FB as u32);
    ahci.write_reg(p + regs::port::CMD, cmd::FRE | cmd::ST);
    ahci.write_reg(p + regs::port::IE, is::VALID);
    ahci.write_reg(regs::GHC, ghc::IE);
    Rig {
        ahci,
        mem,
        image,
        msi,
    }
}

impl Rig {
    fn reg(&self, r: u64) -> u32 {
        self.ahci.read_reg(regs::PORT_BASE + r)
    }

    /// Issues `cfis` in slot 0 with `prds` and waits for it.
    fn run(&mut self, cfis: &[u8], acmd: &[u8], prds: &[(u64, u32)], write: bool) -> u32 {
        let m = &self.mem;
        let dw0 = (prds.len() as u32) << 16 | u32::from(write) << 6 | 5;
        m.write_obj(dw0, GuestAddress(CLB)).unwrap();
        m.write_obj(0u32, GuestAddress(CLB + 4)).unwrap();
        m.write_obj(TABLE, GuestAddress(CLB + 8)).unwrap();
        let mut table = vec![0u8; 0x80 + 16 * prds.len()];
        table[..cfis.len()].copy_from_slice(cfis);
        table[0x40..0x40 + acmd.len()].copy_from_slice(acmd);
        for (i, &(addr, len)) in prds.iter().enumerate() {
            let e = &mut table[0x80 + 16 * i..0x90 + 16 * i];
            e[..8].copy_from_slice(&addr.to_le_bytes());
            e[12..16].copy_from_slice(&(len.wrapping_sub(1)).to_le_bytes());
        }
        m.write_slice(&table, GuestAddress(TABLE)).unwrap();
        self.ahci.write_reg(regs::PORT_BASE + regs::port::IS, !0);
        self.ahci.write_reg(regs::PORT_BASE + regs::port::CI, 1);
        for _ in 0..1000 {
            if self.reg(regs::port::CI) == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.ahci.reap();
        }
        assert_eq!(self.reg(regs::port::CI), 0, "command never completed");
        self.reg(regs::port::TFD)
    }

    fn prdbc(&self) -> u32 {
        self.mem.read_obj(GuestAddress(CLB + 4)).unwrap()
    }
}

fn h2d(command: u8, lba: u64, count: u16) -> [u8; 20] {
    let mut f = [0u8; 20];
    f[0] = fis::REG_H2D;
    f[1] = 0x80;
    f[2] = command;
    f[4] = lba as u8;
    f[5] = (lba >> 8) as u8;
    f[6] = (lba >> 16) as u8;
    f[7] = 0x40;
    f[8] = (lba >> 24) as u8;
    f[9] = (lba >> 32) as u8;
    f[10] = (lba >> 40) as u8;
    f[12] = count as u8;
    f[13] = (count >> 8) as u8;
    f
}

#[test]
fn identify_reads_the_page_with_a_pio_setup_fis() {
    let mut r = rig(Kind::Disk, AioMode::Sync);
    assert_eq!(r.reg(regs::port::SIG), 0x101);
    assert_eq!(r.reg(regs::port::SSTS), 0x123);
    let tfd = r.run(&h2d(0xec, 0, 0), &[], &[(BUF, 512)], false);
    assert_eq!(tfd & 0xff, 0x50);
    assert_eq!(r.prdbc(), 512);
    let is = r.reg(regs::port::IS);
    assert_eq!(is & (is::PSS | is::DHRS), is::PSS | is::DHRS);
    let mut page = [0u8; 512];
    r.mem.read_slice(&mut page, GuestAddress(BUF)).unwrap();
    let sectors = u64::from_le_bytes(page[200..208].try_into().unwrap());
    assert_eq!(sectors, 64 * 4);
    assert!(*r.msi.0.lock().unwrap() == 0, "MSI not enabled: INTx");
    assert_eq!(r.ahci.read_reg(regs::IS), 1);
    // IDENTIFY PACKET DEVICE on a disk aborts (how SeaBIOS tells them apart).
    let tfd = r.run(&h2d(0xa1, 0, 0), &[], &[(BUF, 512)], false);
    assert_eq!(tfd, 0x0451);
    assert_ne!(r.reg(regs::port::IS) & is::TFES, 0);
}

fn dma_read_checksum(aio: AioMode) {
    let mut r = rig(Kind::Disk, aio);
    // 8 sectors from LBA 3 into two PRDs.
    let tfd = r.run(
        &h2d(0x25, 3, 8),
        &[],
        &[(BUF, 1024), (BUF + 0x4000, 3072)],
        false,
    );
    assert_eq!(tfd & 0xff, 0x50);
    assert_eq!(r.prdbc(), 4096);
    let mut got = vec![0u8; 4096];
    r.mem
        .read_slice(&mut got[..1024], GuestAddress(BUF))
        .unwrap();
    r.mem
        .read_slice(&mut got[1024..], GuestAddress(BUF + 0x4000))
        .unwrap();
    let want: Vec<u8> = (3 * 512..11 * 512u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_dma_read_lands_in_the_prds_inline() {
    dma_read_checksum(AioMode::Sync);
}

#[test]
fn a_dma_read_lands_in_the_prds_through_the_worker_pool() {
    dma_read_checksum(AioMode::Threads);
}

#[test]
fn a_dma_write_lands_in_the_image() {
    let mut r = rig(Kind::Disk, AioMode::Threads);
    r.mem.write_slice(&[0xab; 512], GuestAddress(BUF)).unwrap();
    let tfd = r.run(&h2d(0xca, 5, 1), &[], &[(BUF, 512)], true);
    assert_eq!(tfd & 0xff, 0x50);
    let tfd = r.run(&h2d(0xe7, 0, 0), &[], &[], false);
    assert_eq!(tfd & 0xff, 0x50);
    let mut f = r.image.reopen().unwrap();
    f.seek(SeekFrom::Start(5 * 512)).unwrap();
    let mut got = [0u8; 512];
    f.read_exact(&mut got).unwrap();
    assert_eq!(got, [0xab; 512]);
}

#[test]
fn hostile_commands_fail_with_an_error_status() {
    let mut r = rig(Kind::Disk, AioMode::Sync);
    // A PRD outside RAM.
    let tfd = r.run(&h2d(0x25, 0, 1), &[], &[(RAM as u64 - 256, 512)], false);
    assert_eq!(tfd & 1, 1);
    // A PRD table shorter than the transfer, and none at all.
    let tfd = r.run(&h2d(0x25, 0, 8), &[], &[(BUF, 512)], false);
    assert_eq!(tfd & 1, 1);
    let tfd = r.run(&h2d(0x25, 0, 1), &[], &[], false);
    assert_eq!(tfd & 1, 1);
    // A huge PRD (4 MiB) past the end of RAM.
    let tfd = r.run(&h2d(0x25, 0, 1), &[], &[(BUF, 4 << 20)], false);
    assert_eq!(tfd & 1, 0, "only the transfer's bytes are mapped");
    let tfd = r.run(&h2d(0x25, 0, 0xffff), &[], &[(BUF, 4 << 20)], false);
    assert_eq!(tfd & 1, 1);
    // A bad FIS type.
    let mut f = h2d(0x25, 0, 1);
    f[0] = 0x34;
    let tfd = r.run(&f, &[], &[(BUF, 512)], false);
    assert_eq!(tfd & 1, 1);
    assert_ne!(r.reg(regs::port::IS) & is::IFS, 0);
    // A command list outside RAM.
    r.ahci
        .write_reg(regs::PORT_BASE + regs::port::CLBU, 0xffff_ffff);
    r.ahci.write_reg(regs::PORT_BASE + regs::port::CI, 1);
    assert_eq!(r.reg(regs::port::CI), 0);
    assert_ne!(r.reg(regs::port::IS) & is::HBFS, 0);
    // Every slot at once, all pointing at the same bad list: each fails.
    r.ahci.write_reg(regs::PORT_BASE + regs::port::CI, !0);
    assert_eq!(r.reg(regs::port::CI), 0);
    // A LBA beyond the disk.
    r.ahci.write_reg(regs::PORT_BASE + regs::port::CLBU, 0);
    let tfd = r.run(&h2d(0x25, 1 << 40, 1), &[], &[(BUF, 512)], false);
    assert_eq!(tfd, 0x1451);
}

#[test]
fn stopping_the_port_empties_the_command_list() {
    let mut r = rig(Kind::Disk, AioMode::Sync);
    r.ahci
        .write_reg(regs::PORT_BASE + regs::port::CMD, cmd::FRE);
    assert_eq!(r.reg(regs::port::CMD) & (cmd::ST | cmd::CR), 0);
    // Not running: an issued command waits.
    r.ahci.write_reg(regs::PORT_BASE + regs::port::CI, 1);
    assert_eq!(r.reg(regs::port::CI), 0, "ignored while stopped");
}

#[test]
fn msi_carries_the_completion_once_enabled() {
    let mut r = rig(Kind::Disk, AioMode::Sync);
    let o = r.ahci.msi_cap.offset;
    r.ahci.write_config(o + 4, &0xfee0_0000u32.to_le_bytes());
    r.ahci.write_config(o + 2, &1u16.to_le_bytes());
    r.run(&h2d(0xec, 0, 0), &[], &[(BUF, 512)], false);
    assert!(*r.msi.0.lock().unwrap() >= 1);
}

#[test]
fn atapi_reads_and_inquiry_on_a_cdrom() {
    let mut r = rig(Kind::Cdrom, AioMode::Sync);
    assert_eq!(r.reg(regs::port::SIG), 0xeb14_0101);
    let tfd = r.run(&h2d(0xa1, 0, 0), &[], &[(BUF, 512)], false);
    assert_eq!(tfd & 0xff, 0x50);
    let mut packet = h2d(0xa0, 0, 0);
    packet[3] = 1; // DMA
                   // The first command after a new medium sees UNIT ATTENTION? No: the
                   // medium was in from the start.
    let tfd = r.run(&packet, &[0x12, 0, 0, 0, 36], &[(BUF, 512)], false);
    assert_eq!(tfd & 0xff, 0x50);
    let mut inq = [0u8; 36];
    r.mem.read_slice(&mut inq, GuestAddress(BUF)).unwrap();
    assert_eq!(&inq[16..28], b"QEMU DVD-ROM");
    // READ(10) of block 2.
    let tfd = r.run(
        &packet,
        &[0x28, 0, 0, 0, 0, 2, 0, 0, 1],
        &[(BUF, 2048)],
        false,
    );
    assert_eq!(tfd & 0xff, 0x50);
    let mut got = vec![0u8; 2048];
    r.mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
    let want: Vec<u8> = (4096..6144u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(got, want);
    // A write to a CD-ROM fails.
    let tfd = r.run(&h2d(0xca, 0, 1), &[], &[(BUF, 512)], true);
    assert_eq!(tfd & 1, 1);
    // Media change: out, in again; the guest sees UNIT ATTENTION once.
    let disk = disk_of(r.image.as_file(), AioMode::Sync);
    let cd = r.ahci.device(0).unwrap().drive.cdrom_state().unwrap();
    assert!(cd.open_tray(false));
    r.ahci.set_medium(0, Some(disk));
    r.ahci
        .device(0)
        .unwrap()
        .drive
        .cdrom_state()
        .unwrap()
        .close_tray();
    let tfd = r.run(&packet, &[0], &[], false);
    assert_eq!(tfd, 0x6451);
    let tfd = r.run(&packet, &[0], &[], false);
    assert_eq!(tfd & 0xff, 0x50);
}

#[test]
fn a_guest_eject_is_reported_and_then_reads_find_no_medium() {
    let mut r = rig(Kind::Cdrom, AioMode::Sync);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    r.ahci.on_tray_moved(Arc::new(move |port, open| {
        s.lock().unwrap().push((port, open))
    }));
    let mut packet = h2d(0xa0, 0, 0);
    packet[3] = 1;
    // START STOP UNIT: LoEj, Start clear (eject).
    let tfd = r.run(&packet, &[0x1b, 0, 0, 0, 2], &[], false);
    assert_eq!(tfd & 0xff, 0x50);
    assert_eq!(*seen.lock().unwrap(), [(0, true)]);
    // TEST UNIT READY: not ready, medium not present, tray open.
    let tfd = r.run(&packet, &[0], &[], false);
    assert_eq!(tfd, 0x2451);
    // Load again.
    r.run(&packet, &[0x1b, 0, 0, 0, 3], &[], false);
    assert_eq!(*seen.lock().unwrap(), [(0, true), (0, false)]);
}
