//! TRBs and rings in guest memory: reading TRBs with every address
//! checked, following Link TRBs a bounded number of times, and gathering
//! a transfer descriptor (the TRBs of one transfer) without consuming it,
//! so a transfer the device NAKs stays where it is.

use vm_memory::{Bytes, GuestAddress};

use crate::Memory;

pub const TRB_SIZE: u64 = 16;

/// TRB types (xHCI 1.2 table 6-91).
pub mod trb_type {
    pub const NORMAL: u32 = 1;
    pub const SETUP: u32 = 2;
    pub const DATA: u32 = 3;
    pub const STATUS: u32 = 4;
    pub const ISOCH: u32 = 5;
    pub const LINK: u32 = 6;
    pub const EVENT_DATA: u32 = 7;
    pub const NOOP: u32 = 8;
    pub const ENABLE_SLOT: u32 = 9;
    pub const DISABLE_SLOT: u32 = 10;
    pub const ADDRESS_DEVICE: u32 = 11;
    pub const CONFIGURE_ENDPOINT: u32 = 12;
    pub const EVALUATE_CONTEXT: u32 = 13;
    pub const RESET_ENDPOINT: u32 = 14;
    pub const STOP_ENDPOINT: u32 = 15;
    pub const SET_TR_DEQUEUE: u32 = 16;
    pub const RESET_DEVICE: u32 = 17;
    pub const NOOP_COMMAND: u32 = 23;
    pub const TRANSFER_EVENT: u32 = 32;
    pub const COMMAND_COMPLETION: u32 = 33;
    pub const PORT_STATUS_CHANGE: u32 = 34;
    pub const HOST_CONTROLLER: u32 = 37;
}

/// Control bits.
pub const TRB_C: u32 = 1 << 0;
pub const LINK_TC: u32 = 1 << 1;
pub const TR_ISP: u32 = 1 << 2;
pub const TR_CH: u32 = 1 << 4;
pub const TR_IOC: u32 = 1 << 5;
pub const TR_IDT: u32 = 1 << 6;
pub const EVENT_ED: u32 = 1 << 2;

/// Link TRBs followed in a row before the ring counts as looping (QEMU's
/// `TRB_LINK_LIMIT`).
pub const LINK_LIMIT: u32 = 32;
/// TRBs in one transfer descriptor at most: far more than any driver
/// uses for a HID or control transfer, few enough to bound the work.
pub const TD_LIMIT: usize = 256;

/// One TRB as read, with where it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trb {
    pub parameter: u64,
    pub status: u32,
    pub control: u32,
    pub addr: u64,
}

impl Trb {
    pub fn kind(&self) -> u32 {
        (self.control >> 10) & 0x3f
    }

    /// A transfer TRB's buffer length.
    pub fn length(&self) -> u32 {
        self.status & 0x1_ffff
    }
}

/// A ring's dequeue pointer and consumer cycle state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    pub dequeue: u64,
    pub ccs: bool,
}

/// Why a ring could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// A TRB outside guest RAM, at this address.
    Memory(u64),
    /// Link TRBs with nothing between them: the ring loops.
    Loop(u64),
    /// A transfer descriptor longer than [`TD_LIMIT`] TRBs.
    TooLong(u64),
}

impl RingError {
    /// The TRB address an error event names.
    pub fn addr(&self) -> u64 {
        match *self {
            RingError::Memory(a) | RingError::Loop(a) | RingError::TooLong(a) => a,
        }
    }
}

/// Reads the 16 bytes at `addr`.
pub fn read_trb(mem: &Memory, addr: u64) -> Option<Trb> {
    let mut b = [0u8; 16];
    addr.checked_add(TRB_SIZE)?;
    mem.read_slice(&mut b, GuestAddress(addr)).ok()?;
    Some(Trb {
        parameter: u64::from_le_bytes(b[0..8].try_into().unwrap()),
        status: u32::from_le_bytes(b[8..12].try_into().unwrap()),
        control: u32::from_le_bytes(b[12..16].try_into().unwrap()),
        addr,
    })
}

impl Ring {
    pub fn new(base: u64, ccs: bool) -> Self {
        Ring { dequeue: base, ccs }
    }

    /// The next TRB the producer handed over (cycle bit matching),
    /// following Link TRBs; the ring advances past it. `None` when the
    /// ring is empty.
    pub fn next(&mut self, mem: &Memory) -> Result<Option<Trb>, RingError> {
        let mut links = 0;
        loop {
            let trb = read_trb(mem, self.dequeue).ok_or(RingError::Memory(self.dequeue))?;
            if (trb.control & TRB_C != 0) != self.ccs {
                return Ok(None);
            }
            if trb.kind() != trb_type::LINK {
                self.dequeue = self.dequeue.wrapping_add(TRB_SIZE);
                return Ok(Some(trb));
            }
            links += 1;
            if links > LINK_LIMIT {
                return Err(RingError::Loop(trb.addr));
            }
            self.dequeue = trb.parameter & !0xf;
            if trb.control & LINK_TC != 0 {
                self.ccs = !self.ccs;
            }
        }
    }

    /// The next whole transfer descriptor without consuming it: its TRBs
    /// and the ring as it would be after them. A control transfer runs
    /// from its Setup to its Status TRB; any other TD ends at a TRB
    /// without the chain bit. `None` while the producer has not handed
    /// over all of it.
    pub fn peek_td(&self, mem: &Memory) -> Result<Option<(Vec<Trb>, Ring)>, RingError> {
        let mut r = *self;
        let mut trbs = Vec::new();
        let mut in_control = false;
        loop {
            let Some(trb) = r.next(mem)? else {
                return Ok(None);
            };
            trbs.push(trb);
            match trb.kind() {
                trb_type::SETUP => in_control = true,
                trb_type::STATUS => in_control = false,
                _ => {}
            }
            if !in_control && trb.control & TR_CH == 0 {
                return Ok(Some((trbs, r)));
            }
            if trbs.len() >= TD_LIMIT {
                return Err(RingError::TooLong(trb.addr));
            }
        }
    }
}
