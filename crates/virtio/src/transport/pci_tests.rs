use std::sync::{Arc, Mutex};

use rvirt_pci::intx::{IntxPin, PirqRouter};
use rvirt_pci::PciFunction;
use rvirt_platform::{InterruptLine, MsiMessage, MsiVectors, TriggerMode};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::rng::Rng;
use crate::test_util::*;
use crate::transport::common::{ACK, DRIVER, DRIVER_OK, FEATURES_OK};
use crate::{features, VirtioDevice, VirtioInterrupt};

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl MsiVectors for Log {
    fn count(&self) -> u16 {
        2
    }
    fn route(&self, v: u16, m: Option<MsiMessage>) -> std::io::Result<()> {
        let d = m.map_or(0, |m| m.data);
        self.0.lock().unwrap().push(format!("route {v} {d:#x}"));
        Ok(())
    }
    fn raise(&self, v: u16) -> std::io::Result<()> {
        self.0.lock().unwrap().push(format!("msi {v}"));
        Ok(())
    }
}

impl InterruptLine for Log {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> std::io::Result<()> {
        self.0.lock().unwrap().push("intx 1".into());
        Ok(())
    }
    fn lower(&self) -> std::io::Result<()> {
        self.0.lock().unwrap().push("intx 0".into());
        Ok(())
    }
}

struct Fixture {
    mem: crate::Memory,
    log: Arc<Log>,
    t: PciTransport,
}

fn fixture(placement: PciPlacement) -> Fixture {
    let mem = memory();
    let log = Arc::new(Log::default());
    let dev: Arc<Mutex<dyn VirtioDevice>> =
        Arc::new(Mutex::new(Rng::new(Box::new(std::io::repeat(0x5a)))));
    let router = PirqRouter::new(vec![log.clone()], vec![]);
    let t = PciTransport::new(dev, mem.clone(), log.clone(), router.source(0), placement);
    Fixture { mem, log, t }
}

fn cr(t: &mut PciTransport, off: u16, len: usize) -> u32 {
    let mut b = [0u8; 4];
    t.read_config(off, &mut b[..len]);
    u32::from_le_bytes(b)
}

fn rd(t: &mut PciTransport, off: u64, len: usize) -> u64 {
    let mut b = [0u8; 8];
    t.read_bar(VIRTIO_BAR, off, &mut b[..len]);
    u64::from_le_bytes(b)
}

fn wr(t: &mut PciTransport, off: u64, len: usize, v: u64) {
    t.write_bar(VIRTIO_BAR, off, &v.to_le_bytes()[..len]);
}

/// The capabilities as (offset, id, cfg_type, bar, offset, length).
fn caps(t: &mut PciTransport) -> Vec<(u16, u8, u8, u8, u32, u32)> {
    let mut out = Vec::new();
    let mut at = cr(t, 0x34, 1) as u16;
    while at != 0 && out.len() < 48 {
        let id = cr(t, at, 1) as u8;
        out.push((
            at,
            id,
            cr(t, at + 3, 1) as u8,
            cr(t, at + 4, 1) as u8,
            cr(t, at + 8, 4),
            cr(t, at + 12, 4),
        ));
        at = cr(t, at + 1, 1) as u16;
    }
    out
}

#[test]
fn the_function_looks_like_qemus_modern_device() {
    let mut f = fixture(PciPlacement::Conventional);
    let t = &mut f.t;
    assert_eq!(cr(t, 0, 4), 0x1044_1af4, "1af4:1040 + 4 (rng)");
    assert_eq!(cr(t, 8, 4), 0x00ff_0001);
    assert_eq!(cr(t, 0x2c, 4), 0x1100_1af4);
    assert_eq!(cr(t, 0x3d, 1), 1, "INTA");
    let c = caps(t);
    let offsets: Vec<u16> = c.iter().map(|c| c.0).collect();
    assert_eq!(offsets, [0x98, 0x84, 0x70, 0x60, 0x50, 0x40]);
    assert_eq!(c[0].1, 0x11);
    let vendor: Vec<(u8, u8, u32, u32)> = c[1..].iter().map(|c| (c.2, c.3, c.4, c.5)).collect();
    assert_eq!(
        vendor,
        [
            (5, 0, 0, 0),
            (2, 4, 0x3000, 0x1000),
            (4, 4, 0x2000, 0x1000),
            (3, 4, 0x1000, 0x1000),
            (1, 4, 0, 0x1000)
        ]
    );
    assert_eq!(cr(t, 0x70 + 16, 4), 4, "notify_off_multiplier");
    let mut e = fixture(PciPlacement::Express);
    let offsets: Vec<(u16, u8)> = caps(&mut e.t).iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        offsets,
        [
            (0xdc, 0x11),
            (0xc8, 9),
            (0xb4, 9),
            (0xa4, 9),
            (0x94, 9),
            (0x84, 9),
            (0x7c, 1),
            (0x40, 0x10)
        ]
    );
}

#[test]
fn bring_up_a_request_and_an_msix_interrupt() {
    let mut f = fixture(PciPlacement::Conventional);
    let mock = MockSplitQueue::new(&f.mem, 16);
    let t = &mut f.t;
    assert_eq!(rd(t, 0x12, 2), 1, "num_queues");
    wr(t, 0x14, 1, u64::from(ACK | DRIVER));
    wr(t, 0x00, 4, 1);
    assert_eq!(rd(t, 0x04, 4), features::TRANSPORT >> 32);
    wr(t, 0x08, 4, 1);
    wr(t, 0x0c, 4, features::VERSION_1 >> 32);
    wr(t, 0x14, 1, u64::from(ACK | DRIVER | FEATURES_OK));
    assert_eq!(rd(t, 0x14, 1), u64::from(ACK | DRIVER | FEATURES_OK));
    // Vectors: config 1, queue 0 on 0; a vector the table lacks reads back
    // as NO_VECTOR.
    wr(t, 0x10, 2, 7);
    assert_eq!(rd(t, 0x10, 2), 0xffff);
    wr(t, 0x10, 2, 1);
    wr(t, 0x16, 2, 0);
    wr(t, 0x1a, 2, 0);
    assert_eq!(rd(t, 0x1a, 2), 0);
    wr(t, 0x18, 2, 16);
    wr(t, 0x20, 8, mock.desc_table_addr().0);
    wr(t, 0x28, 4, mock.avail_addr().0);
    wr(t, 0x2c, 4, mock.avail_addr().0 >> 32);
    wr(t, 0x30, 8, mock.used_addr().0);
    wr(t, 0x1c, 2, 1);
    assert_eq!(rd(t, 0x1c, 2), 1);
    assert_eq!(rd(t, 0x1e, 2), 0, "queue_notify_off");
    assert_eq!(rd(t, 0x20, 8), mock.desc_table_addr().0);
    wr(
        t,
        0x14,
        1,
        u64::from(ACK | DRIVER | FEATURES_OK | DRIVER_OK),
    );
    // MSI-X on, vector 0 programmed and unmasked through BAR 1.
    let ctl = t.config().read_u16(0x9a);
    t.write_config(0x9a, &(ctl | 0x8000).to_le_bytes());
    t.write_bar(MSIX_BAR, 0, &0xfee0_0000u32.to_le_bytes());
    t.write_bar(MSIX_BAR, 8, &0x45u32.to_le_bytes());
    t.write_bar(MSIX_BAR, 12, &0u32.to_le_bytes());
    add_chain(&mock, 0, &[(DATA, 4, WRITE)]);
    t.device().lock().unwrap().process_queue(0);
    assert_eq!(used(&mock, 0), (0, 4));
    let mut b = [0u8; 4];
    f.mem.read_slice(&mut b, GuestAddress(DATA)).unwrap();
    assert_eq!(b, [0x5a; 4]);
    assert_eq!(*f.log.0.lock().unwrap(), ["route 0 0x45", "msi 0"]);
    assert_eq!(f.t.notify_regions()[0].offset, 0x3000);
}

#[test]
fn without_msix_the_isr_and_intx_carry_interrupts() {
    let mut f = fixture(PciPlacement::Conventional);
    let t = &mut f.t;
    t.interrupt().signal_used_queue(0);
    assert_eq!(*f.log.0.lock().unwrap(), ["intx 1"]);
    assert_ne!(cr(&mut f.t, 6, 2) & 0x8, 0, "STATUS.INTERRUPT");
    assert_eq!(rd(&mut f.t, ISR_OFFSET, 1), 1, "ISR read");
    assert_eq!(rd(&mut f.t, ISR_OFFSET, 1), 0, "and cleared");
    assert_eq!(*f.log.0.lock().unwrap(), ["intx 1", "intx 0"]);
    assert_eq!(cr(&mut f.t, 6, 2) & 0x8, 0);
    // Interrupt Disable holds the line low while the device asserts.
    f.t.write_config(4, &[0, 0x4]);
    f.t.interrupt().signal_used_queue(0);
    assert_eq!(f.log.0.lock().unwrap().len(), 2);
}

#[test]
fn the_pci_cfg_window_reaches_the_bar() {
    let mut f = fixture(PciPlacement::Conventional);
    let t = &mut f.t;
    // bar 4, offset 0x12 (num_queues), length 2.
    t.write_config(0x84 + 4, &[4]);
    t.write_config(0x84 + 8, &0x12u32.to_le_bytes());
    t.write_config(0x84 + 12, &2u32.to_le_bytes());
    assert_eq!(cr(t, 0x84 + 16, 4), 1);
    // A write through it: device status ACK.
    t.write_config(0x84 + 8, &0x14u32.to_le_bytes());
    t.write_config(0x84 + 12, &1u32.to_le_bytes());
    t.write_config(0x84 + 16, &[1, 0, 0, 0]);
    assert_eq!(rd(t, 0x14, 1), 1);
    // Bad lengths or misaligned offsets do nothing.
    t.write_config(0x84 + 12, &3u32.to_le_bytes());
    t.write_config(0x84 + 16, &[0, 0, 0, 0]);
    assert_eq!(rd(t, 0x14, 1), 1);
}

#[test]
fn hostile_bar_accesses_are_harmless() {
    let mut f = fixture(PciPlacement::Express);
    let t = &mut f.t;
    for off in [
        0u64,
        3,
        0x3f,
        0x40,
        0xfff,
        0x1001,
        0x2fff,
        0x3ffe,
        0x4000,
        u64::MAX - 7,
    ] {
        for len in [1usize, 2, 3, 4, 8] {
            let mut b = [0u8; 8];
            for bar in 0..6 {
                t.read_bar(bar, off, &mut b[..len]);
                t.write_bar(bar, off, &[0xff; 8][..len]);
            }
        }
    }
    for off in (0..0x1000u16).step_by(3) {
        t.write_config(off, &[0xff, 0xff, 0xff]);
        let mut b = [0; 4];
        t.read_config(off, &mut b);
    }
    assert_eq!(cr(t, 0, 4), 0x1044_1af4);
}

#[test]
fn a_pin_with_no_router_is_fine() {
    let mem = memory();
    let dev: Arc<Mutex<dyn VirtioDevice>> =
        Arc::new(Mutex::new(Rng::new(Box::new(std::io::repeat(0)))));
    let t = PciTransport::new(
        dev,
        mem,
        Arc::new(Log::default()),
        IntxPin::unconnected(),
        PciPlacement::Conventional,
    );
    t.interrupt().signal_config_change();
}
