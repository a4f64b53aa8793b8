//! The controller driven as a guest's driver drives it: a small driver
//! over guest memory, enumerating a tablet; and hostile rings, contexts
//! and registers.

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::hid::{Hid, HidKind};

const RAM: usize = 1 << 20;
const DCBAA: u64 = 0x1000;
const CMD_RING: u64 = 0x2000;
const ERST: u64 = 0x3000;
const EVENT_RING: u64 = 0x4000;
const EVENTS: u32 = 16;
const INPUT: u64 = 0x5000;
const OUTPUT: u64 = 0x6000;
const EP0_RING: u64 = 0x7000;
const INTR_RING: u64 = 0x8000;
const BUF: u64 = 0x9000;

/// A TRB as the driver writes it.
fn trb(parameter: u64, status: u32, kind: u32, flags: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&parameter.to_le_bytes());
    b[8..12].copy_from_slice(&status.to_le_bytes());
    b[12..16].copy_from_slice(&((kind << 10) | flags | 1).to_le_bytes());
    b
}

#[derive(Debug, PartialEq, Eq)]
struct Ev {
    kind: u32,
    cc: u8,
    ptr: u64,
    length: u32,
    slot: u8,
    epid: u8,
}

struct Driver {
    x: Xhci,
    mem: Memory,
    cmd_idx: u64,
    ev_idx: u32,
    ev_cycle: bool,
    ep0_idx: u64,
    intr_idx: u64,
    tablet: Arc<Mutex<Hid>>,
}

impl Driver {
    fn new() -> Self {
        let mem = Memory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
        let mut x = Xhci::new(XhciConfig::default());
        let tablet = Arc::new(Mutex::new(Hid::new(HidKind::Tablet)));
        x.plug(1, tablet.clone()).unwrap();
        x.attach(mem.clone(), Arc::new(NoVectors), IntxPin::unconnected());
        x.write_config(
            reg::COMMAND,
            &(command::MEMORY | command::MASTER).to_le_bytes(),
        );
        Driver {
            x,
            mem,
            cmd_idx: 0,
            ev_idx: 0,
            ev_cycle: true,
            ep0_idx: 0,
            intr_idx: 0,
            tablet,
        }
    }

    fn w32(&mut self, off: u64, v: u32) {
        self.x.write_bar(0, off, &v.to_le_bytes());
    }

    fn r32(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.x.read_bar(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w64(&mut self, off: u64, v: u64) {
        self.x.write_bar(0, off, &v.to_le_bytes());
    }

    fn put(&self, addr: u64, b: &[u8]) {
        self.mem.write_slice(b, GuestAddress(addr)).unwrap();
    }

    fn put_u32s(&self, addr: u64, v: &[u32]) {
        write_u32s(&self.mem, addr, v).unwrap();
    }

    /// The driver's start: reset, rings, event ring, run.
    fn start(&mut self) {
        self.w32(OFF_OPER, usbcmd::HCRST);
        assert_eq!(self.r32(OFF_OPER + 4) & usbsts::HCH, usbsts::HCH);
        self.w64(OFF_OPER + 0x30, DCBAA);
        self.w64(OFF_OPER + 0x18, CMD_RING | 1);
        self.put_u32s(ERST, &[EVENT_RING as u32, 0, EVENTS, 0]);
        self.w32(OFF_RUNTIME + 0x28, 1);
        self.w64(OFF_RUNTIME + 0x38, EVENT_RING);
        self.w64(OFF_RUNTIME + 0x30, ERST);
        self.w32(OFF_RUNTIME + 0x20, IMAN_IE);
        self.w32(OFF_OPER, usbcmd::RS | usbcmd::INTE);
        assert_eq!(self.r32(OFF_OPER + 4) & usbsts::HCH, 0);
    }

    fn next_event(&mut self) -> Option<Ev> {
        let t = ring::read_trb(&self.mem, EVENT_RING + 16 * u64::from(self.ev_idx)).unwrap();
        if (t.control & 1 != 0) != self.ev_cycle {
            return None;
        }
        self.ev_idx += 1;
        if self.ev_idx == EVENTS {
            self.ev_idx = 0;
            self.ev_cycle = !self.ev_cycle;
        }
        let erdp = EVENT_RING + 16 * u64::from(self.ev_idx);
        self.w64(OFF_RUNTIME + 0x38, erdp | u64::from(ERDP_EHB));
        Some(Ev {
            kind: t.kind(),
            cc: (t.status >> 24) as u8,
            ptr: t.parameter,
            length: t.status & 0xff_ffff,
            slot: (t.control >> 24) as u8,
            epid: ((t.control >> 16) & 0x1f) as u8,
        })
    }

    fn command(&mut self, parameter: u64, kind: u32, flags: u32) -> Ev {
        let at = CMD_RING + 16 * self.cmd_idx;
        self.put(at, &trb(parameter, 0, kind, flags));
        self.cmd_idx += 1;
        self.w32(OFF_DOORBELL, 0);
        let ev = self.next_event().expect("a command completion");
        assert_eq!((ev.kind, ev.ptr), (tt::COMMAND_COMPLETION, at));
        ev
    }

    fn ep0(&mut self, b: [u8; 16]) -> u64 {
        let at = EP0_RING + 16 * self.ep0_idx;
        self.put(at, &b);
        self.ep0_idx += 1;
        at
    }

    /// A control transfer on slot 1: its data stage's bytes (IN).
    fn control(&mut self, setup: u64, len: u32) -> (Vec<u8>, Vec<Ev>) {
        let is_in = setup & 0x80 != 0;
        let trt = if len == 0 {
            0
        } else if is_in {
            3
        } else {
            2
        };
        self.ep0(trb(setup, 8, tt::SETUP, ring::TR_IDT | (trt << 16)));
        if len > 0 {
            let dir = if is_in { 1 << 16 } else { 0 };
            self.ep0(trb(BUF, len, tt::DATA, dir | ring::TR_ISP));
        }
        let dir = if is_in && len > 0 { 0 } else { 1 << 16 };
        self.ep0(trb(0, 0, tt::STATUS, ring::TR_IOC | dir));
        self.put(BUF, &vec![0u8; len as usize]);
        self.w32(OFF_DOORBELL + 4, 1);
        let mut evs = Vec::new();
        while let Some(e) = self.next_event() {
            evs.push(e);
        }
        let mut data = vec![0u8; len as usize];
        self.mem.read_slice(&mut data, GuestAddress(BUF)).unwrap();
        (data, evs)
    }

    /// Port reset, Enable Slot, Address Device for the tablet.
    fn enumerate(&mut self) {
        self.start();
        let port = 5u64; // p3 = 4 USB 3 ports first.
        let psc = OFF_PORTS + 0x10 * (port - 1);
        let v = self.r32(psc);
        assert_eq!(
            v & (portsc::CCS | portsc::PP | 0x3c00),
            portsc::CCS | portsc::PP | portsc::SPEED_HIGH
        );
        self.w32(psc, portsc::PP | portsc::PR);
        let ev = self.next_event().unwrap();
        assert_eq!((ev.kind, ev.ptr), (tt::PORT_STATUS_CHANGE, port << 24));
        assert_ne!(self.r32(psc) & portsc::PED, 0);
        let ev = self.command(0, tt::ENABLE_SLOT, 0);
        assert_eq!((ev.cc, ev.slot), (cc::SUCCESS, 1));
        self.put(DCBAA + 8, &OUTPUT.to_le_bytes());
        self.put_u32s(INPUT, &[0, 3]);
        self.put_u32s(INPUT + 32, &[1 << 27, (port as u32) << 16, 0, 0]);
        self.put_u32s(
            INPUT + 64,
            &[0, (4 << 3) | (64 << 16), EP0_RING as u32 | 1, 0, 8],
        );
        let ev = self.command(INPUT, tt::ADDRESS_DEVICE, 1 << 24);
        assert_eq!(ev.cc, cc::SUCCESS);
        let out = read_u32s::<4>(&self.mem, OUTPUT).unwrap();
        assert_eq!(out[3], (slot_state::ADDRESSED << 27) | 1);
    }
}

#[test]
fn capability_registers_are_qemus() {
    let mut d = Driver::new();
    assert_eq!(d.r32(0), 0x0100_0040);
    assert_eq!(d.r32(4), (8 << 24) | (16 << 8) | 64);
    assert_eq!(d.r32(0x14), 0x2000);
    assert_eq!(d.r32(0x18), 0x1000);
    assert_eq!(d.r32(0x28), (4 << 8) | 5);
    assert_eq!(d.r32(0x38), (4 << 8) | 1);
    let mut b = [0u8; 2];
    d.x.read_bar(0, 2, &mut b);
    assert_eq!(u16::from_le_bytes(b), 0x0100);
    assert_eq!(d.x.config().read_u32(0x08) >> 8, CLASS);
}

#[test]
fn enumerates_the_tablet_and_gets_a_report() {
    let mut d = Driver::new();
    d.enumerate();
    // GET_DESCRIPTOR(device), 18 bytes.
    let (data, evs) = d.control(0x0012_0000_0100_0680, 18);
    assert_eq!(
        data,
        [18, 1, 0, 2, 0, 0, 0, 64, 0x27, 6, 1, 0, 0, 0, 1, 3, 10, 1]
    );
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].cc, evs[0].slot, evs[0].epid), (cc::SUCCESS, 1, 1));
    // A longer buffer: a short packet on the data stage, then success.
    let (data, evs) = d.control(0x00ff_0000_0200_0680, 255);
    assert_eq!(data[2], 34);
    assert_eq!(evs.len(), 2);
    assert_eq!((evs[0].cc, evs[0].length), (cc::SHORT_PACKET, 255 - 34));
    assert_eq!(evs[1].cc, cc::SUCCESS);
    // SET_CONFIGURATION(1), no data stage.
    let (_, evs) = d.control(0x0000_0000_0001_0900, 0);
    assert_eq!(evs[0].cc, cc::SUCCESS);
    // An unknown request stalls, and the endpoint halts until reset.
    let (_, evs) = d.control(0x0000_0000_0000_ff80 | (1 << 48), 1);
    assert_eq!(evs[0].cc, cc::STALL_ERROR);
    let ev = d.command(0, tt::RESET_ENDPOINT, (1 << 24) | (1 << 16));
    assert_eq!(ev.cc, cc::SUCCESS);
    let ev = d.command(
        (EP0_RING + 16 * d.ep0_idx) | 1,
        tt::SET_TR_DEQUEUE,
        (1 << 24) | (1 << 16),
    );
    assert_eq!(ev.cc, cc::SUCCESS);

    // Configure EP 1 IN (epid 3), interrupt.
    d.put_u32s(INPUT, &[0, 1 | (1 << 3)]);
    d.put_u32s(INPUT + 32, &[3 << 27, 5 << 16, 0, 0]);
    d.put_u32s(
        INPUT + 32 + 32 * 3,
        &[0, (7 << 3) | (8 << 16), INTR_RING as u32 | 1, 0, 8],
    );
    let ev = d.command(INPUT, tt::CONFIGURE_ENDPOINT, 1 << 24);
    assert_eq!(ev.cc, cc::SUCCESS);

    // A pending IN transfer: NAKed until the pointer moves.
    d.put(
        INTR_RING,
        &trb(BUF, 8, tt::NORMAL, ring::TR_IOC | ring::TR_ISP),
    );
    d.intr_idx += 1;
    d.w32(OFF_DOORBELL + 4, 3);
    assert_eq!(d.next_event(), None);
    d.tablet
        .lock()
        .unwrap()
        .pointer_abs(0x4000, 0x2000, crate::hid::buttons::LEFT, 0);
    d.x.wake();
    let ev = d.next_event().expect("the report's transfer event");
    assert_eq!(
        ev,
        Ev {
            kind: tt::TRANSFER_EVENT,
            cc: cc::SHORT_PACKET,
            ptr: INTR_RING,
            length: 2,
            slot: 1,
            epid: 3
        }
    );
    let mut r = [0u8; 6];
    d.mem.read_slice(&mut r, GuestAddress(BUF)).unwrap();
    assert_eq!(r, [1, 0x00, 0x40, 0x00, 0x20, 0]);
    // The endpoint context follows the ring.
    let ctx = read_u32s::<5>(&d.mem, OUTPUT + 32 * 3).unwrap();
    assert_eq!(ctx[0] & 7, ep_state::RUNNING);
    assert_eq!(u64::from(ctx[2] & !0xf), INTR_RING + 16);
    assert_eq!(d.intr_idx, 1);
}

#[test]
fn a_command_ring_outside_ram_is_a_trb_error() {
    let mut d = Driver::new();
    d.start();
    d.w64(OFF_OPER + 0x18, 0x7fff_0000_0000 | 1);
    d.w32(OFF_DOORBELL, 0);
    let ev = d.next_event().unwrap();
    assert_eq!(
        (ev.kind, ev.cc, ev.ptr),
        (tt::COMMAND_COMPLETION, cc::TRB_ERROR, 0x7fff_0000_0000)
    );
    // Nothing advanced: the next doorbell reports the same TRB.
    d.w32(OFF_DOORBELL, 0);
    assert_eq!(d.next_event().unwrap().ptr, 0x7fff_0000_0000);
}

#[test]
fn a_looping_command_ring_ends() {
    let mut d = Driver::new();
    d.start();
    // A Link TRB pointing at itself.
    d.put(CMD_RING, &trb(CMD_RING, 0, tt::LINK, 0));
    d.w32(OFF_DOORBELL, 0);
    let ev = d.next_event().unwrap();
    assert_eq!((ev.cc, ev.ptr), (cc::TRB_ERROR, CMD_RING));
    // Two links toggling the cycle bit between them: still bounded.
    d.put(CMD_RING, &trb(CMD_RING + 16, 0, tt::LINK, ring::LINK_TC));
    d.put(CMD_RING + 16, &trb(CMD_RING, 0, tt::LINK, ring::LINK_TC));
    d.w64(OFF_OPER + 0x18, CMD_RING | 1);
    d.w32(OFF_DOORBELL, 0);
    d.next_event();
}

#[test]
fn hostile_contexts_are_trb_errors() {
    let mut d = Driver::new();
    d.start();
    let ev = d.command(0, tt::ENABLE_SLOT, 0);
    assert_eq!(ev.slot, 1);
    // Input context outside RAM.
    let ev = d.command(0xffff_ffff_ffff_fff0, tt::ADDRESS_DEVICE, 1 << 24);
    assert_eq!(ev.cc, cc::TRB_ERROR);
    // A port that does not exist, and one with nothing on it.
    d.put_u32s(INPUT, &[0, 3]);
    d.put_u32s(INPUT + 32, &[0, 200 << 16, 0, 0]);
    assert_eq!(
        d.command(INPUT, tt::ADDRESS_DEVICE, 1 << 24).cc,
        cc::TRB_ERROR
    );
    d.put_u32s(INPUT + 32, &[0, 6 << 16, 0, 0]);
    assert_eq!(
        d.command(INPUT, tt::ADDRESS_DEVICE, 1 << 24).cc,
        cc::USB_TRANSACTION_ERROR
    );
    // Slots that are not enabled or do not exist.
    assert_eq!(
        d.command(INPUT, tt::CONFIGURE_ENDPOINT, 2 << 24).cc,
        cc::SLOT_NOT_ENABLED_ERROR
    );
    assert_eq!(d.command(0, tt::DISABLE_SLOT, 200 << 24).cc, cc::TRB_ERROR);
    // An endpoint command on an endpoint that was never enabled.
    assert_eq!(
        d.command(0, tt::STOP_ENDPOINT, (1 << 24) | (5 << 16)).cc,
        cc::EP_NOT_ENABLED_ERROR
    );
    // Unknown command types.
    assert_eq!(d.command(0, 40, 0).cc, cc::TRB_ERROR);
}

#[test]
fn a_looping_transfer_ring_halts_the_endpoint() {
    let mut d = Driver::new();
    d.enumerate();
    d.put(EP0_RING, &trb(EP0_RING, 0, tt::LINK, 0));
    d.w32(OFF_DOORBELL + 4, 1);
    let ev = d.next_event().unwrap();
    assert_eq!(
        (ev.kind, ev.cc, ev.epid),
        (tt::TRANSFER_EVENT, cc::TRB_ERROR, 1)
    );
    let ctx = read_u32s::<5>(&d.mem, OUTPUT + 32).unwrap();
    assert_eq!(ctx[0] & 7, ep_state::HALTED);
    // Halted: more doorbells do nothing.
    d.w32(OFF_DOORBELL + 4, 1);
    assert_eq!(d.next_event(), None);
}

#[test]
fn hostile_transfers_are_errors() {
    let mut d = Driver::new();
    d.enumerate();
    // A data stage pointing outside RAM.
    d.ep0(trb(
        0x0012_0000_0100_0680,
        8,
        tt::SETUP,
        ring::TR_IDT | (3 << 16),
    ));
    d.ep0(trb(0xffff_ffff_0000, 18, tt::DATA, 1 << 16));
    d.ep0(trb(0, 0, tt::STATUS, ring::TR_IOC));
    d.w32(OFF_DOORBELL + 4, 1);
    let ev = d.next_event().unwrap();
    assert_eq!(ev.cc, cc::DATA_BUFFER_ERROR);
    // A TD that never ends (chained TRBs to the end of the ring's reach).
    let mut d = Driver::new();
    d.enumerate();
    for i in 0..300 {
        d.put(EP0_RING + 16 * i, &trb(BUF, 8, tt::NORMAL, ring::TR_CH));
    }
    d.w32(OFF_DOORBELL + 4, 1);
    assert_eq!(d.next_event().unwrap().cc, cc::TRB_ERROR);
    // A control TD without its Setup.
    let mut d = Driver::new();
    d.enumerate();
    d.ep0(trb(0, 0, tt::STATUS, ring::TR_IOC));
    d.w32(OFF_DOORBELL + 4, 1);
    assert_eq!(d.next_event().unwrap().cc, cc::TRB_ERROR);
}

#[test]
fn an_event_ring_outside_ram_is_a_controller_error() {
    let mut d = Driver::new();
    d.put_u32s(ERST, &[0xfff0_0000, 0x7fff, 16, 0]);
    d.w32(OFF_RUNTIME + 0x28, 1);
    d.w64(OFF_RUNTIME + 0x38, 0x7fff_fff0_0000);
    d.w64(OFF_RUNTIME + 0x30, ERST);
    d.w32(OFF_OPER, usbcmd::RS);
    d.w32(OFF_DOORBELL, 0);
    d.put(0, &trb(0, 0, tt::NOOP_COMMAND, 0));
    d.w64(OFF_OPER + 0x18, 1);
    d.w32(OFF_DOORBELL, 0);
    assert_ne!(d.r32(OFF_OPER + 4) & usbsts::HCE, 0);
    // A segment size out of range, too.
    let mut d = Driver::new();
    d.put_u32s(ERST, &[EVENT_RING as u32, 0, 1 << 20, 0]);
    d.w32(OFF_RUNTIME + 0x28, 1);
    d.w64(OFF_RUNTIME + 0x30, ERST);
    assert_ne!(d.r32(OFF_OPER + 4) & usbsts::HCE, 0);
}

#[test]
fn random_register_writes_and_memory_never_panic() {
    // A small deterministic generator: the fuzz target explores further.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20 {
        let mut d = Driver::new();
        d.start();
        for i in 0..0x400u64 {
            let v = next();
            d.put(0x1000 + (i * 8) % 0xf000, &v.to_le_bytes());
        }
        for _ in 0..2000 {
            let v = next();
            let off = ((v >> 32) % BAR_SIZE) & !3;
            let val = match v & 3 {
                0 => (v >> 8) as u32 & 0x000f_ffff,
                _ => v as u32,
            };
            d.w32(off, val);
            if v & 0x10 != 0 {
                d.w32(OFF_DOORBELL + 4 * ((v >> 5) % 4), (v >> 12) as u32 & 0x1f);
            }
        }
        d.x.wake();
    }
}
