//! The e1000 and e1000e under a hostile driver: the first byte's top bit
//! picks the card (an 82574L also gets RFCTL, IVAR, EIAC, IAM and CTRL_EXT
//! writes: extended descriptors, MSI-X mapping), the input's first 32 bytes are eight
//! register writes (offset byte, 3 value bytes, scaled to the ring and
//! control registers), the rest guest memory (64 KiB at 0) holding the
//! transmit ring at 0 (16 descriptors), the receive ring at 0x100 and
//! whatever buffers and frames they point at. The card sends what the
//! transmit ring holds and receives frames from the back-end into the
//! receive ring. Nothing may panic or hang, every frame sent is at most 64
//! KiB plus the vnet header, and the card never moves a head out of its
//! ring.
#![no_main]

mod common;

use std::io;

use libfuzzer_sys::fuzz_target;
use rvirt_hostnet::{NetBackend, VNET_HDR_LEN};
use rvirt_nic::e1000::{regs, Model, E1000, MMIO_BAR};
use rvirt_pci::config::{command, reg};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::PciFunction;

/// Takes every frame; offers `frames` frames of the input's sizes.
struct Peer {
    sizes: Vec<usize>,
}

impl NetBackend for Peer {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        assert!(frame.len() >= VNET_HDR_LEN && frame.len() <= VNET_HDR_LEN + 0x10000);
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(n) = self.sizes.pop() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = n.min(buf.len());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = i as u8;
        }
        // Unicast to the card's MAC half the time.
        if n >= VNET_HDR_LEN + 6 && n % 2 == 0 {
            buf[VNET_HDR_LEN..VNET_HDR_LEN + 6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        }
        Ok(n)
    }
}

const REGS: [u32; 16] = [
    regs::TDLEN,
    regs::TDH,
    regs::TDT,
    regs::TCTL,
    regs::RDLEN,
    regs::RDH,
    regs::RDT,
    regs::RCTL,
    regs::TDBAL,
    regs::RDBAL,
    regs::TDBAH,
    regs::ICS,
    regs::IMS,
    regs::MDIC,
    regs::EECD,
    regs::EERD,
];

/// The 82574's: five of the 82540EM's list traded for its own.
const REGS_82574: [u32; 16] = [
    regs::TDLEN,
    regs::TDH,
    regs::TDT,
    regs::TCTL,
    regs::RDLEN,
    regs::RDH,
    regs::RDT,
    regs::RCTL,
    regs::e82574::RFCTL,
    regs::e82574::IVAR,
    regs::e82574::EIAC,
    regs::ICS,
    regs::IMS,
    regs::e82574::IAM,
    regs::CTRL_EXT,
    regs::ICR,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (script, image) = data.split_at(32);
    let mem = common::memory(image);
    let sizes = script[..4].iter().map(|&b| usize::from(b) * 67).collect();
    let (model, table) = if script[0] & 0x80 != 0 {
        (Model::E82574l, &REGS_82574)
    } else {
        (Model::E82540em, &REGS)
    };
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let mut nic = E1000::with_model(model, Box::new(Peer { sizes }), mac).unwrap();
    nic.attach(mem, IntxPin::unconnected());
    nic.write_config(
        reg::COMMAND,
        &(command::MEMORY | command::MASTER).to_le_bytes(),
    );
    let w = |nic: &mut E1000, off: u32, v: u32| {
        nic.write_bar(MMIO_BAR, u64::from(off), &v.to_le_bytes())
    };
    // A sane start the script then bends.
    w(&mut nic, regs::TDBAL, 0);
    w(&mut nic, regs::TDLEN, 256);
    w(&mut nic, regs::TCTL, regs::tctl::EN);
    w(&mut nic, regs::RDBAL, 0x100);
    w(&mut nic, regs::RDLEN, 256);
    w(
        &mut nic,
        regs::RCTL,
        regs::rctl::EN | regs::rctl::BAM | regs::rctl::UPE,
    );
    w(&mut nic, regs::RDT, 15);
    for op in script.chunks(4) {
        let r = table[usize::from(op[0] & 15)];
        let v = u32::from_le_bytes([op[1], op[2], op[3], 0]);
        let v = match r {
            regs::TDT | regs::RDT | regs::TDH | regs::RDH => v & 0x1f,
            _ => v,
        };
        w(&mut nic, r, v);
        nic.process();
    }
    // The guest may leave a head past a ring it shrank; the card never
    // moves one there itself.
    let r = |nic: &mut E1000, off: u32| {
        let mut b = [0u8; 4];
        nic.read_bar(MMIO_BAR, u64::from(off), &mut b);
        u32::from_le_bytes(b)
    };
    let (before, tdlen) = (r(&mut nic, regs::TDH), r(&mut nic, regs::TDLEN));
    nic.process();
    let after = r(&mut nic, regs::TDH);
    if before < tdlen / 16 {
        assert!(after < tdlen / 16, "TDH {before} -> {after}, TDLEN {tdlen}");
    }
});
