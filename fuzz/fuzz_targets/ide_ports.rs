//! The PIIX3 IDE from a hostile driver: the input's first bytes are a
//! script of port accesses (task file and command registers, device
//! control with SRST and nIEN, data port reads and writes of any length,
//! bus-master command, status and PRD pointer writes of any size), the
//! rest is guest memory (PRD tables and buffers) over a disk and a CD-ROM
//! on each channel, on RAM media. Nothing may panic or hang: after the
//! script, releasing SRST leaves no drive busy (the sync engine completes
//! every request inside the access that starts it).
#![no_main]

mod ram_disk;

use std::sync::Arc;

use ram_disk::{disk, DISK_SIZE};
use libfuzzer_sys::fuzz_target;
use rvirt_ata::ahci::Attachment;
use rvirt_ata::drive::{Drive, Identity, Kind};
use rvirt_ata::ide::{Ide, Wiring, BM_BAR, CHANNELS};
use rvirt_pci::PciFunction;
use rvirt_platform::{InterruptLine, TriggerMode};
use vm_memory::{Bytes, GuestAddress};

const MEM_SIZE: usize = 0x1_0000;
/// Script steps of 4 bytes at the start of the input.
const STEPS: usize = 64;

struct NoLine;

impl InterruptLine for NoLine {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fn attachment(kind: Kind, n: u32) -> Attachment {
    let drive = match kind {
        Kind::Disk => Drive::disk(Identity::qemu(kind, n), DISK_SIZE as u64, false, true),
        Kind::Cdrom => Drive::cdrom(Identity::qemu(kind, n), Some(DISK_SIZE as u64)),
    };
    Attachment {
        drive,
        disk: Some(disk()),
    }
}

fuzz_target!(|data: &[u8]| {
    let (script, image) = data.split_at(data.len().min(STEPS * 4));
    let mem = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .unwrap();
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();
    // ide.0: a disk and a CD-ROM; ide.1: only a slave CD-ROM.
    let mut ide = Ide::new(vec![
        Some(attachment(Kind::Disk, 1)),
        Some(attachment(Kind::Cdrom, 2)),
        None,
        Some(attachment(Kind::Cdrom, 4)),
    ]);
    ide.attach(Wiring {
        memory: mem,
        irqs: [Arc::new(NoLine), Arc::new(NoLine)],
        kick: None,
    });
    let mut buf = vec![0u8; 0x1000];
    for step in script.chunks_exact(4) {
        let (op, c) = (step[0] & 0x0f, usize::from(step[0] >> 7));
        let (a, v) = (step[1], step[2]);
        let len = usize::from(step[3]) * 16 + 1;
        match op {
            0 => ide.write_command_block(c, u64::from(a % 8), &[v]),
            1 => {
                let mut b = [0];
                ide.read_command_block(c, u64::from(a % 8), &mut b);
            }
            2 => ide.write_control(c, v),
            3 => {
                let _ = ide.read_control(c);
            }
            4 => ide.read_command_block(c, 0, &mut buf[..len.min(0x1000)]),
            5 => ide.write_command_block(c, 0, &[v; 2]),
            6 => {
                let w = [v, a, step[3], v];
                let size = [1, 2, 4][usize::from(a) % 3];
                ide.write_bar(BM_BAR, u64::from(a % 16), &w[..size]);
            }
            7 => {
                let mut b = [0u8; 4];
                ide.read_bar(BM_BAR, u64::from(a % 16), &mut b);
            }
            8 => ide.process(),
            9 => ide.reap(),
            // A whole command: count, LBA and device, then the command.
            _ => {
                ide.write_command_block(c, 2, &[step[3]]);
                ide.write_command_block(c, 3, &[a]);
                ide.write_command_block(c, 6, &[0xe0 | (step[3] & 0x10)]);
                ide.write_command_block(c, 7, &[v]);
            }
        }
    }
    for c in 0..CHANNELS {
        ide.write_control(c, 0);
        ide.reap();
        assert_eq!(ide.read_control(c) & 0x80, 0, "channel {c} stays busy");
    }
});
