//! Arbitrary guest memory under an AHCI port: the input is copied over the
//! command list, the received-FIS area, the command tables and their
//! PRDTs, and its first bytes pick which slots are issued on a disk port
//! and a CD-ROM port; the controller serves them against in-memory media.
//! Nothing may panic or hang; every issued slot completes.
#![no_main]

mod ram_disk;

use std::io;
use std::sync::Arc;

use ram_disk::{disk, DISK_SIZE};
use libfuzzer_sys::fuzz_target;
use rvirt_ata::ahci::{regs, Ahci, Attachment, Wiring};
use rvirt_ata::drive::{Drive, Identity, Kind};
use rvirt_pci::intx::IntxPin;
use rvirt_platform::{MsiMessage, MsiVectors};
use vm_memory::{Bytes, GuestAddress};

const MEM_SIZE: usize = 0x1_0000;
struct NoMsi;

impl MsiVectors for NoMsi {
    fn count(&self) -> u16 {
        1
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, image)) = data.split_at_checked(8) else {
        return;
    };
    let mem = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .unwrap();
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();
    let hd = Drive::disk(Identity::qemu(Kind::Disk, 1), DISK_SIZE as u64, false, true);
    let cd = Drive::cdrom(Identity::qemu(Kind::Cdrom, 2), Some(DISK_SIZE as u64));
    let mut ahci = Ahci::new(vec![
        Some(Attachment {
            drive: hd,
            disk: Some(disk()),
        }),
        Some(Attachment {
            drive: cd,
            disk: Some(disk()),
        }),
    ]);
    ahci.attach(Wiring {
        memory: mem,
        msi: Arc::new(NoMsi),
        intx: IntxPin::unconnected(),
        kick: None,
    });
    for (port, slots) in [(0u64, &head[0..4]), (1, &head[4..8])] {
        let base = regs::PORT_BASE + port * regs::PORT_LEN;
        // Both ports' lists and FIS areas inside the input: 0x0 and 0x400
        // for the lists, 0x800 and 0x900 for the FIS areas.
        ahci.write_reg(base + regs::port::CLB, (port * 0x400) as u32);
        ahci.write_reg(base + regs::port::FB, (0x800 + port * 0x100) as u32);
        ahci.write_reg(base + regs::port::CMD, regs::cmd::FRE | regs::cmd::ST);
        let issued = u32::from_le_bytes(slots.try_into().unwrap());
        ahci.write_reg(base + regs::port::CI, issued);
        ahci.reap();
        assert_eq!(
            ahci.read_reg(base + regs::port::CI),
            0,
            "a command never completed"
        );
    }
});
