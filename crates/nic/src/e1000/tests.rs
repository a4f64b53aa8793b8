use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use rvirt_hostnet::SocketBackend;
use rvirt_pci::intx::PirqRouter;
use rvirt_platform::TriggerMode;
use vm_memory::GuestMemoryMmap;

use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const TX_RING: u64 = 0x1_0000;
const RX_RING: u64 = 0x2_0000;
const TX_BUF: u64 = 0x3_0000;
const RX_BUFS: u64 = 0x4_0000;

#[derive(Default)]
struct Line(Mutex<bool>);
impl InterruptLine for Line {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }
    fn raise(&self) -> io::Result<()> {
        *self.0.lock().unwrap() = true;
        Ok(())
    }
    fn lower(&self) -> io::Result<()> {
        *self.0.lock().unwrap() = false;
        Ok(())
    }
}

struct Rig {
    nic: E1000,
    mem: Memory,
    peer: UnixDatagram,
    line: Arc<Line>,
}

fn rig() -> Rig {
    let (backend, peer) = SocketBackend::pair().unwrap();
    let mut nic = E1000::new(Box::new(backend), MAC).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let line = Arc::new(Line::default());
    let router = PirqRouter::new(vec![line.clone()], vec![]);
    nic.attach(mem.clone(), router.source(0));
    nic.write_config(
        reg::COMMAND,
        &(command::MEMORY | command::MASTER).to_le_bytes(),
    );
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    Rig {
        nic,
        mem,
        peer,
        line,
    }
}

fn rd(nic: &mut E1000, offset: u32) -> u32 {
    let mut b = [0u8; 4];
    nic.read_bar(MMIO_BAR, u64::from(offset), &mut b);
    u32::from_le_bytes(b)
}

fn wr(nic: &mut E1000, offset: u32, v: u32) {
    nic.write_bar(MMIO_BAR, u64::from(offset), &v.to_le_bytes());
}

/// A transmit ring of `n` descriptors at TX_RING, enabled.
fn setup_tx(r: &mut Rig, n: u32) {
    wr(&mut r.nic, TDBAL, TX_RING as u32);
    wr(&mut r.nic, TDBAH, 0);
    wr(&mut r.nic, TDLEN, n * 16);
    wr(&mut r.nic, TDH, 0);
    wr(&mut r.nic, TDT, 0);
    wr(&mut r.nic, TCTL, tctl::EN);
}

fn put_tx(r: &Rig, i: u64, addr: u64, len: u16, cmd_bits: u32) {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&(u32::from(len) | cmd_bits).to_le_bytes());
    r.mem
        .write_slice(&d, GuestAddress(TX_RING + i * 16))
        .unwrap();
}

/// A receive ring of `n` descriptors with 2 KiB buffers, all but one
/// given to the card.
fn setup_rx(r: &mut Rig, n: u32) {
    for i in 0..u64::from(n) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(RX_BUFS + i * 2048).to_le_bytes());
        r.mem
            .write_slice(&d, GuestAddress(RX_RING + i * 16))
            .unwrap();
    }
    wr(&mut r.nic, RDBAL, RX_RING as u32);
    wr(&mut r.nic, RDLEN, n * 16);
    wr(&mut r.nic, RDH, 0);
    wr(&mut r.nic, RDT, n - 1);
    wr(&mut r.nic, RCTL, rctl::EN | rctl::BAM);
}

fn frame(dst: [u8; 6], len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f
}

fn send_to_nic(r: &Rig, f: &[u8]) {
    let mut with_hdr = vec![0u8; VNET_HDR_LEN];
    with_hdr.extend_from_slice(f);
    r.peer.send(&with_hdr).unwrap();
}

#[test]
fn the_function_is_qemus_82540em() {
    let r = rig();
    let c = r.nic.config();
    assert_eq!(c.read_u16(reg::VENDOR_ID), 0x8086);
    assert_eq!(c.read_u16(reg::DEVICE_ID), 0x100e);
    assert_eq!(c.read_u8(reg::REVISION), 3);
    assert_eq!(c.read_u32(reg::REVISION) >> 8, 0x020000);
    assert_eq!(c.read_u16(reg::SUBSYSTEM_VENDOR_ID), 0x1af4);
    assert_eq!(c.read_u16(reg::SUBSYSTEM_ID), 0x1100);
    assert_eq!(c.interrupt_pin(), 1);
    assert_eq!(c.bar(0), Some(BarSpec::mem32(0x20000)));
    assert_eq!(c.bar(1), Some(BarSpec::io(0x40)));
}

#[test]
fn the_mac_is_in_the_eeprom_and_the_receive_address() {
    let mut r = rig();
    let mut words = Vec::new();
    for i in 0..3u32 {
        wr(&mut r.nic, EERD, eeprom::eerd::START | (i << 8));
        let v = rd(&mut r.nic, EERD);
        assert_ne!(v & eeprom::eerd::DONE, 0);
        words.extend_from_slice(&((v >> 16) as u16).to_le_bytes());
    }
    assert_eq!(words, MAC);
    assert_eq!(rd(&mut r.nic, RA), 0x1200_5452);
    assert_eq!(rd(&mut r.nic, RA + 4), 0x8000_5634);
    assert_ne!(rd(&mut r.nic, STATUS) & status::LU, 0, "link up");
    // The same registers through IOADDR/IODATA.
    r.nic.write_bar(IO_BAR, 0, &RA.to_le_bytes());
    let mut b = [0u8; 4];
    r.nic.read_bar(IO_BAR, 4, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0x1200_5452);
}

#[test]
fn a_frame_goes_out_and_the_descriptor_is_done_with_txdw() {
    let mut r = rig();
    setup_tx(&mut r, 8);
    wr(&mut r.nic, IMS, icr::TXDW);
    let f = frame([0xff; 6], 100, 0x5a);
    r.mem.write_slice(&f, GuestAddress(TX_BUF)).unwrap();
    put_tx(&r, 0, TX_BUF, 100, tx::cmd::EOP | tx::cmd::RS);
    wr(&mut r.nic, TDT, 1);
    // The tail write kicks the event loop; the rings move there.
    assert_eq!(rd(&mut r.nic, TDH), 0);
    r.nic.process();
    let mut buf = [0u8; 2048];
    let n = r.peer.recv(&mut buf).unwrap();
    assert_eq!(&buf[VNET_HDR_LEN..n], &f[..]);
    assert_eq!(rd(&mut r.nic, TDH), 1);
    let mut status = [0u8];
    r.mem
        .read_slice(&mut status, GuestAddress(TX_RING + 12))
        .unwrap();
    assert_eq!(status[0] & tx::STAT_DD, tx::STAT_DD);
    assert!(*r.line.0.lock().unwrap(), "INTx raised");
    let icr = rd(&mut r.nic, ICR);
    assert_eq!(icr & (icr::TXDW | icr::TXQE), icr::TXDW | icr::TXQE);
    assert!(!*r.line.0.lock().unwrap(), "reading ICR lowers it");
    assert_eq!(rd(&mut r.nic, ICR), 0);
    assert_eq!(rd(&mut r.nic, GPTC), 1);
    assert_eq!(rd(&mut r.nic, GPTC), 0, "statistics clear when read");
}

#[test]
fn a_frame_comes_in_with_its_fcs_room_and_rxt0() {
    let mut r = rig();
    setup_rx(&mut r, 8);
    wr(&mut r.nic, IMS, icr::RXT0);
    assert!(r.nic.poll_fd().is_some());
    let f = frame(MAC, 200, 0x33);
    send_to_nic(&r, &f);
    // Not for us: another unicast address and a multicast nobody joined.
    send_to_nic(&r, &frame([2, 9, 9, 9, 9, 9], 100, 0));
    send_to_nic(&r, &frame([0x01, 0, 0x5e, 0, 0, 1], 100, 0));
    // Short: padded to 60.
    send_to_nic(&r, &frame([0xff; 6], 20, 0x44));
    r.nic.process();
    let mut d = [0u8; 16];
    r.mem.read_slice(&mut d, GuestAddress(RX_RING)).unwrap();
    assert_eq!(u16::from_le_bytes([d[8], d[9]]), 204, "frame and FCS");
    assert_eq!(d[12] & (RXD_DD | RXD_EOP), RXD_DD | RXD_EOP);
    let mut got = vec![0u8; 200];
    r.mem.read_slice(&mut got, GuestAddress(RX_BUFS)).unwrap();
    assert_eq!(got, f);
    r.mem
        .read_slice(&mut d, GuestAddress(RX_RING + 16))
        .unwrap();
    assert_eq!(u16::from_le_bytes([d[8], d[9]]), 64);
    assert_eq!(rd(&mut r.nic, RDH), 2);
    assert!(*r.line.0.lock().unwrap());
    assert_ne!(rd(&mut r.nic, ICR) & icr::RXT0, 0);
    assert_eq!(rd(&mut r.nic, GPRC), 2);
    assert_eq!(rd(&mut r.nic, BPRC), 1);
}

#[test]
fn a_frame_larger_than_a_buffer_spans_descriptors() {
    let mut r = rig();
    setup_rx(&mut r, 8);
    wr(&mut r.nic, RCTL, rctl::EN | rctl::SECRC | (3 << 16)); // 256-byte buffers
    let f = frame(MAC, 600, 0x77);
    send_to_nic(&r, &f);
    r.nic.process();
    let lens: Vec<(u16, u8)> = (0..3)
        .map(|i| {
            let mut d = [0u8; 16];
            r.mem
                .read_slice(&mut d, GuestAddress(RX_RING + i * 16))
                .unwrap();
            (u16::from_le_bytes([d[8], d[9]]), d[12] & (RXD_DD | RXD_EOP))
        })
        .collect();
    assert_eq!(lens, [(256, RXD_DD), (256, RXD_DD), (88, RXD_DD | RXD_EOP)]);
}

#[test]
fn a_full_receive_ring_leaves_frames_in_the_host() {
    let mut r = rig();
    setup_rx(&mut r, 8);
    for _ in 0..7 {
        send_to_nic(&r, &frame(MAC, 100, 1));
    }
    send_to_nic(&r, &frame(MAC, 100, 2));
    r.nic.process();
    assert_eq!(rd(&mut r.nic, RDH), 7);
    assert!(r.nic.poll_fd().is_none(), "no room: the tap is not polled");
    // The guest gives buffers back: the eighth comes in.
    wr(&mut r.nic, RDT, 3);
    assert!(r.nic.poll_fd().is_some());
    r.nic.process();
    assert_eq!(rd(&mut r.nic, RDH), 0);
    let mut got = [0u8; 1];
    r.mem
        .read_slice(&mut got, GuestAddress(RX_BUFS + 7 * 2048 + 20))
        .unwrap();
    assert_eq!(got[0], 2);
}

#[test]
fn hostile_rings_are_survived() {
    let mut r = rig();
    // A tail past the ring: the card goes around once and stops.
    setup_tx(&mut r, 8);
    for i in 0..8 {
        put_tx(&r, i, TX_BUF, 60, tx::cmd::EOP);
    }
    wr(&mut r.nic, TDT, 100);
    r.nic.process();
    assert_eq!(rd(&mut r.nic, TDH), 0);
    assert_eq!(rd(&mut r.nic, GPTC), 8);
    // Buffers outside RAM and zero lengths: nothing sent, descriptors done.
    put_tx(&r, 0, u64::MAX - 10, 0xffff, tx::cmd::EOP | tx::cmd::RS);
    put_tx(&r, 1, 1 << 40, 100, tx::cmd::EOP | tx::cmd::RS);
    put_tx(&r, 2, TX_BUF, 0, tx::cmd::EOP | tx::cmd::RS);
    wr(&mut r.nic, TDT, 3);
    r.nic.process();
    assert_eq!(rd(&mut r.nic, TDH), 3);
    assert_eq!(rd(&mut r.nic, GPTC), 0);
    // A ring outside RAM: nothing moves, nothing breaks.
    wr(&mut r.nic, TDBAH, 0xffff_ffff);
    wr(&mut r.nic, TDT, 5);
    r.nic.process();
    assert_eq!(rd(&mut r.nic, TDH), 3);
    // A receive ring outside RAM: frames overrun.
    setup_rx(&mut r, 8);
    wr(&mut r.nic, RDBAH, 0x10);
    send_to_nic(&r, &frame(MAC, 100, 1));
    r.nic.process();
    assert_ne!(rd(&mut r.nic, ICR) & icr::RXO, 0);
    // Zero-length rings take nothing.
    wr(&mut r.nic, RDLEN, 0);
    wr(&mut r.nic, TDLEN, 0);
    assert!(r.nic.poll_fd().is_none());
    r.nic.process();
    // The peer got only the eight good frames.
    r.peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while r.peer.recv(&mut buf).is_ok() {
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn mdic_reaches_the_phy_and_unknown_registers_read_zero() {
    let mut r = rig();
    wr(
        &mut r.nic,
        MDIC,
        phy::mdic::OP_READ | (1 << phy::mdic::PHY_SHIFT) | (2 << phy::mdic::REG_SHIFT),
    );
    let v = rd(&mut r.nic, MDIC);
    assert_eq!(v & 0xffff, 0x141);
    assert_ne!(v & phy::mdic::READY, 0);
    wr(&mut r.nic, 0x1_f000, 0xdead_beef);
    assert_eq!(rd(&mut r.nic, 0x1_f000), 0);
    // Sub-dword accesses see the register's bytes.
    let mut b = [0u8; 2];
    r.nic.read_bar(MMIO_BAR, u64::from(RA) + 2, &mut b);
    assert_eq!(u16::from_le_bytes(b), 0x1200);
}

#[test]
fn set_link_takes_the_link_down_and_up_with_lsc() {
    let mut r = rig();
    setup_rx(&mut r, 8);
    wr(&mut r.nic, IMS, icr::LSC);
    r.nic.set_link_up(false);
    assert_eq!(rd(&mut r.nic, STATUS) & status::LU, 0);
    assert!(*r.line.0.lock().unwrap(), "LSC raised");
    assert_ne!(rd(&mut r.nic, ICR) & icr::LSC, 0);
    assert!(r.nic.poll_fd().is_none(), "nothing received while down");
    r.nic.process();
    assert_eq!(rd(&mut r.nic, STATUS) & status::LU, 0, "stays down");
    r.nic.set_link_up(true);
    assert_ne!(rd(&mut r.nic, STATUS) & status::LU, 0);
    assert_ne!(rd(&mut r.nic, ICR) & icr::LSC, 0);
    assert!(r.nic.poll_fd().is_some());
}

mod e82574_tests {
    //! The 82574L on the same core.

    use super::*;
    use crate::e1000::regs::e82574 as x;
    use rvirt_platform::{MsiMessage, MsiVectors};

    #[derive(Default)]
    struct Rec {
        raised: Mutex<Vec<u16>>,
        routed: Mutex<Vec<u16>>,
    }
    impl MsiVectors for Rec {
        fn count(&self) -> u16 {
            5
        }
        fn route(&self, v: u16, m: Option<MsiMessage>) -> io::Result<()> {
            if m.is_some() {
                self.routed.lock().unwrap().push(v);
            }
            Ok(())
        }
        fn raise(&self, v: u16) -> io::Result<()> {
            self.raised.lock().unwrap().push(v);
            Ok(())
        }
    }

    struct Rig2 {
        r: Rig,
        msix: Arc<Rec>,
        msi: Arc<Rec>,
    }

    fn rig2() -> Rig2 {
        let (backend, peer) = SocketBackend::pair().unwrap();
        let mut nic = E1000::with_model(Model::E82574l, Box::new(backend), MAC).unwrap();
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let line = Arc::new(Line::default());
        let router = PirqRouter::new(vec![line.clone()], vec![]);
        let msix = Arc::new(Rec::default());
        let msi = Arc::new(Rec::default());
        nic.set_msi_vectors(msix.clone(), msi.clone());
        nic.attach(mem.clone(), router.source(0));
        nic.write_config(
            reg::COMMAND,
            &(command::MEMORY | command::MASTER).to_le_bytes(),
        );
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        Rig2 {
            r: Rig {
                nic,
                mem,
                peer,
                line,
            },
            msix,
            msi,
        }
    }

    /// MSI-X on, every vector given a message and unmasked.
    fn enable_msix(r: &mut Rig2) {
        for v in 0..5u64 {
            let e = v * 16;
            let w = |nic: &mut E1000, o: u64, val: u32| {
                nic.write_bar(e82574::MSIX_BAR, o, &val.to_le_bytes())
            };
            w(&mut r.r.nic, e, 0xfee0_0000);
            w(&mut r.r.nic, e + 8, 0x40 + v as u32);
            w(&mut r.r.nic, e + 12, 0);
        }
        let cap = r.r.nic.config().find_capability(0x11).unwrap();
        r.r.nic
            .write_config(cap + 2, &rvirt_pci::msix::ENABLE.to_le_bytes());
    }

    fn raised(r: &Rig2) -> Vec<u16> {
        std::mem::take(&mut *r.msix.raised.lock().unwrap())
    }

    #[test]
    fn the_function_is_qemus_82574l() {
        let r = rig2();
        let c = r.r.nic.config();
        assert_eq!(c.read_u16(reg::VENDOR_ID), 0x8086);
        assert_eq!(c.read_u16(reg::DEVICE_ID), 0x10d3);
        assert_eq!(c.read_u8(reg::REVISION), 0);
        assert_eq!(c.read_u32(reg::REVISION) >> 8, 0x020000);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_VENDOR_ID), 0x8086);
        assert_eq!(c.read_u16(reg::SUBSYSTEM_ID), 0);
        assert_eq!(c.interrupt_pin(), 1);
        assert_eq!(c.bar(0), Some(BarSpec::mem32(0x20000)));
        assert_eq!(c.bar(1), Some(BarSpec::mem32(0x20000)));
        assert_eq!(c.bar(2), Some(BarSpec::io(0x20)));
        assert_eq!(c.bar(3), Some(BarSpec::mem32(0x4000)));
        // QEMU's chain: PM, MSI, PCI Express, MSI-X.
        let mut chain = Vec::new();
        let mut at = c.read_u8(reg::CAPABILITY_LIST);
        while at != 0 {
            chain.push((at, c.read_u8(u16::from(at))));
            at = c.read_u8(u16::from(at) + 1);
        }
        assert_eq!(
            chain,
            [(0xc8, 0x01), (0xd0, 0x05), (0xe0, 0x10), (0xa0, 0x11)]
        );
        assert_eq!(c.read_u16(0xa2), 4, "five MSI-X vectors");
        assert_eq!(c.read_u32(0xa4), 3, "table at 0 of BAR 3");
        assert_eq!(c.read_u32(0xa8), 0x2000 | 3, "PBA at 0x2000 of BAR 3");
    }

    #[test]
    fn the_mac_status_and_eeprom_in_the_82574_layout() {
        let mut r = rig2();
        let nic = &mut r.r.nic;
        let mut words = Vec::new();
        for i in 0..3u32 {
            wr(
                nic,
                EERD,
                eeprom::eerw::START | (i << eeprom::eerw::ADDR_SHIFT),
            );
            let v = rd(nic, EERD);
            assert_ne!(v & eeprom::eerw::DONE, 0);
            words.extend_from_slice(&((v >> 16) as u16).to_le_bytes());
        }
        assert_eq!(words, MAC);
        assert_eq!(rd(nic, RA), 0x1200_5452);
        let s = rd(nic, STATUS);
        assert_eq!(s & (status::LU | status::FD), status::LU | status::FD);
        assert_ne!(s & status::GIO_MASTER_ENABLE, 0);
        wr(nic, CTRL, x::ctrl::GIO_MASTER_DISABLE);
        assert_eq!(rd(nic, STATUS) & status::GIO_MASTER_ENABLE, 0);
        assert_ne!(rd(nic, EECD) & x::eecd::AUTO_RD, 0, "auto-read done");
        // A software reset puts the MAC back.
        wr(nic, RA, 0);
        wr(nic, CTRL, ctrl::RST);
        assert_eq!(rd(nic, RA), 0x1200_5452);
        assert_eq!(rd(nic, CTRL) & ctrl::RST, 0);
        // Registers through IOADDR/IODATA in BAR 2.
        nic.write_bar(e82574::IO_BAR, 0, &RA.to_le_bytes());
        let mut b = [0u8; 4];
        nic.read_bar(e82574::IO_BAR, 4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x1200_5452);
        nic.read_bar(e82574::FLASH_BAR, 0, &mut b);
        assert_eq!(b, [0; 4]);
    }

    #[test]
    fn intx_icr_reads_clear_and_show_asserted() {
        let mut r = rig2();
        setup_tx(&mut r.r, 8);
        r.r.mem
            .write_slice(&frame([0xff; 6], 60, 1), GuestAddress(TX_BUF))
            .unwrap();
        put_tx(&r.r, 0, TX_BUF, 60, tx::cmd::EOP | tx::cmd::RS);
        wr(&mut r.r.nic, IMS, icr::TXDW);
        wr(&mut r.r.nic, TDT, 1);
        r.r.nic.process();
        assert!(*r.r.line.0.lock().unwrap());
        let v = rd(&mut r.r.nic, ICR);
        assert_eq!(v, icr::TXDW | icr::TXQE | x::icr::ASSERTED);
        assert_eq!(rd(&mut r.r.nic, ICR), 0, "cleared without MSI-X");
        assert!(!*r.r.line.0.lock().unwrap());
        assert!(r.msix.raised.lock().unwrap().is_empty());
    }

    #[test]
    fn msix_vectors_follow_ivar_with_eiac_auto_clear() {
        let mut r = rig2();
        enable_msix(&mut r);
        let ivar = 0x8 | (0x8 | 1) << 8 | (0x8 | 2) << 16;
        wr(&mut r.r.nic, x::IVAR, ivar);
        wr(&mut r.r.nic, x::EIAC, x::icr::RXQ0 | x::icr::TXQ0);
        wr(
            &mut r.r.nic,
            IMS,
            x::icr::RXQ0 | x::icr::TXQ0 | x::icr::OTHER | icr::LSC,
        );
        // A frame out: TXQ0 on vector 1, auto-cleared and masked.
        setup_tx(&mut r.r, 8);
        r.r.mem
            .write_slice(&frame([0xff; 6], 60, 1), GuestAddress(TX_BUF))
            .unwrap();
        put_tx(&r.r, 0, TX_BUF, 60, tx::cmd::EOP | tx::cmd::RS);
        wr(&mut r.r.nic, TDT, 1);
        r.r.nic.process();
        let mut buf = [0u8; 2048];
        r.r.peer.recv(&mut buf).unwrap();
        assert_eq!(raised(&r), [1]);
        assert_eq!(rd(&mut r.r.nic, IMS) & x::icr::TXQ0, 0, "auto-masked");
        assert!(!*r.r.line.0.lock().unwrap(), "no INTx under MSI-X");
        // A frame in: RXQ0 on vector 0.
        wr(&mut r.r.nic, x::RFCTL, x::rfctl::EXTEN);
        setup_rx(&mut r.r, 8);
        send_to_nic(&r.r, &frame(MAC, 60, 7));
        r.r.nic.process();
        assert_eq!(raised(&r), [0]);
        // Link down: LSC is an "other" cause, on vector 2; ICR keeps it
        // when read under MSI-X, a write of OTHER clears both.
        r.r.nic.set_link_up(false);
        assert_eq!(raised(&r), [2]);
        let v = rd(&mut r.r.nic, ICR);
        assert_eq!(v & (icr::LSC | x::icr::OTHER), icr::LSC | x::icr::OTHER);
        assert_ne!(rd(&mut r.r.nic, ICR) & icr::LSC, 0);
        wr(&mut r.r.nic, ICR, x::icr::OTHER);
        assert_eq!(rd(&mut r.r.nic, ICR) & (icr::LSC | x::icr::OTHER), 0);
        // Linux's way: LSC cleared alone, OTHER left (not in EIAC), the
        // vector re-enabled; the next link change still reaches it, and
        // nothing fires in between.
        wr(&mut r.r.nic, IMS, x::icr::OTHER | icr::LSC);
        r.r.nic.set_link_up(true);
        assert_eq!(raised(&r), [2]);
        wr(&mut r.r.nic, ICR, icr::LSC);
        wr(&mut r.r.nic, IMS, x::icr::OTHER | icr::LSC);
        assert!(raised(&r).is_empty(), "no storm while OTHER stays set");
        r.r.nic.set_link_up(false);
        assert_eq!(raised(&r), [2]);
        assert!(r.msi.raised.lock().unwrap().is_empty());
    }

    #[test]
    fn masked_vectors_latch_in_the_pba() {
        let mut r = rig2();
        enable_msix(&mut r);
        // Mask vector 1 again, then raise TXQ0 through ICS.
        r.r.nic
            .write_bar(e82574::MSIX_BAR, 16 + 12, &1u32.to_le_bytes());
        wr(&mut r.r.nic, x::IVAR, (0x8 | 1) << 8);
        wr(&mut r.r.nic, IMS, x::icr::TXQ0);
        wr(&mut r.r.nic, ICS, x::icr::TXQ0);
        assert!(raised(&r).is_empty());
        let mut pba = [0u8; 8];
        r.r.nic.read_bar(e82574::MSIX_BAR, 0x2000, &mut pba);
        assert_eq!(pba[0], 1 << 1);
        // PBACLR clears it.
        wr(&mut r.r.nic, x::PBACLR, 1 << 1);
        r.r.nic.read_bar(e82574::MSIX_BAR, 0x2000, &mut pba);
        assert_eq!(pba[0], 0);
    }

    #[test]
    fn extended_descriptors_are_written_back_whole() {
        let mut r = rig2();
        wr(&mut r.r.nic, x::RFCTL, x::rfctl::EXTEN);
        setup_rx(&mut r.r, 8);
        let f = frame(MAC, 100, 0x33);
        send_to_nic(&r.r, &f);
        // An IPv4 TCP frame: packet type 2, IP ID, "checksum not checked".
        let mut ip = frame(MAC, 80, 0);
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        ip[14] = 0x45;
        ip[18..20].copy_from_slice(&[0x12, 0x34]);
        ip[23] = 6;
        send_to_nic(&r.r, &ip);
        r.r.nic.process();
        let mut d = [0u8; 16];
        r.r.mem.read_slice(&mut d, GuestAddress(RX_RING)).unwrap();
        let st = u32::from_le_bytes(d[8..12].try_into().unwrap());
        assert_eq!(st, 0x3, "done, end of packet, a MAC frame");
        assert_eq!(
            u16::from_le_bytes([d[12], d[13]]),
            104,
            "with room for the FCS"
        );
        assert_eq!(&d[..8], &[0; 8], "the buffer address is overwritten");
        let mut got = vec![0u8; 100];
        r.r.mem.read_slice(&mut got, GuestAddress(RX_BUFS)).unwrap();
        assert_eq!(got, f);
        r.r.mem
            .read_slice(&mut d, GuestAddress(RX_RING + 16))
            .unwrap();
        let st = u32::from_le_bytes(d[8..12].try_into().unwrap());
        assert_eq!(st, 0x3 | 0x4 | (1 << 9) | (2 << 16));
        assert_eq!(u16::from_le_bytes([d[4], d[5]]), 0x1234);
        let icr = rd(&mut r.r.nic, ICR);
        assert_ne!(icr & icr::RXT0, 0);
    }

    #[test]
    fn hostile_82574_settings_are_survived() {
        let mut r = rig2();
        enable_msix(&mut r);
        // IVAR naming vectors the table lacks, or none valid.
        wr(&mut r.r.nic, x::IVAR, 0x7 | 0xf << 8);
        wr(&mut r.r.nic, IMS, !0);
        wr(&mut r.r.nic, ICS, !0);
        assert!(raised(&r).is_empty());
        // Packet split is refused: the frame is dropped and counted.
        wr(&mut r.r.nic, x::RFCTL, x::rfctl::EXTEN);
        setup_rx(&mut r.r, 8);
        wr(&mut r.r.nic, RCTL, rctl::EN | rctl::BAM | (1 << 10));
        send_to_nic(&r.r, &frame(MAC, 60, 7));
        r.r.nic.process();
        assert_eq!(rd(&mut r.r.nic, RDH), 0);
        assert_eq!(rd(&mut r.r.nic, MPC), 1);
        // A ring outside RAM, a tail past it, a huge FLXBUF.
        wr(
            &mut r.r.nic,
            RCTL,
            rctl::EN | rctl::BAM | x::rctl::FLXBUF_MASK,
        );
        wr(&mut r.r.nic, RDBAL, 0xfff0_0000);
        wr(&mut r.r.nic, RDT, 0xffff);
        send_to_nic(&r.r, &frame(MAC, 60, 7));
        r.r.nic.process();
        wr(&mut r.r.nic, RDBAL, RX_RING as u32);
        wr(&mut r.r.nic, RDT, 3);
        send_to_nic(&r.r, &frame(MAC, 1500, 7));
        r.r.nic.process();
        // Every register read and written once, and the MSI-X BAR's
        // every corner.
        for o in (0..0x20000u32).step_by(4) {
            let v = rd(&mut r.r.nic, o);
            wr(&mut r.r.nic, o, !v);
        }
        let mut b = [0u8; 8];
        for o in [0u64, 0x4f, 0x50, 0x1ffc, 0x2000, 0x2008, 0x3ff8] {
            r.r.nic.read_bar(e82574::MSIX_BAR, o, &mut b);
            r.r.nic.write_bar(e82574::MSIX_BAR, o, &b);
        }
        r.r.nic.process();
    }
}
