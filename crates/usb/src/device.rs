//! What a USB device is to its host controller: a speed, a reset, control
//! requests on endpoint 0 and data on its other endpoints; and the
//! standard requests every device answers from its descriptors (USB 2.0
//! chapter 9), as QEMU's `hw/usb/desc.c` answers them.

use std::sync::{Arc, Mutex};

/// The speeds rvirt's devices run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    Full,
    High,
}

/// A SETUP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl Setup {
    /// From the 8 bytes of a Setup Stage TRB's immediate data.
    pub fn from_u64(v: u64) -> Self {
        Setup {
            request_type: v as u8,
            request: (v >> 8) as u8,
            value: (v >> 16) as u16,
            index: (v >> 32) as u16,
            length: (v >> 48) as u16,
        }
    }

    /// Device-to-host.
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }
}

/// A control request's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; for an IN request, the data (the controller sends at most
    /// wLength of it).
    Data(Vec<u8>),
    /// The device refuses the request (a STALL handshake).
    Stall,
}

/// An IN transaction's outcome on a data endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum In {
    Data(Vec<u8>),
    /// Nothing to send yet: the transfer stays pending.
    Nak,
    Stall,
}

/// A USB device on a port.
pub trait UsbDevice: Send {
    fn speed(&self) -> Speed;
    /// A bus reset: address 0, unconfigured.
    fn reset(&mut self);
    /// The address the controller gave it (xHCI sends SET_ADDRESS itself).
    fn set_address(&mut self, address: u8);
    /// A control transfer on endpoint 0; `out` is the data stage of a
    /// host-to-device request.
    fn control(&mut self, setup: &Setup, out: &[u8]) -> Reply;
    /// An IN transaction on endpoint `ep` (1-15) of at most `max` bytes.
    fn data_in(&mut self, ep: u8, max: usize) -> In;
    /// An OUT transaction on endpoint `ep`: accepted, or a STALL.
    fn data_out(&mut self, _ep: u8, _data: &[u8]) -> bool {
        false
    }
}

/// A device as the controller and its feeder (the VMM's input router)
/// share it. Lock order: the controller, then the device.
pub type SharedDevice = Arc<Mutex<dyn UsbDevice>>;

/// Standard request codes.
pub mod request {
    pub const GET_STATUS: u8 = 0;
    pub const CLEAR_FEATURE: u8 = 1;
    pub const SET_FEATURE: u8 = 3;
    pub const SET_ADDRESS: u8 = 5;
    pub const GET_DESCRIPTOR: u8 = 6;
    pub const GET_CONFIGURATION: u8 = 8;
    pub const SET_CONFIGURATION: u8 = 9;
    pub const GET_INTERFACE: u8 = 10;
    pub const SET_INTERFACE: u8 = 11;
}

/// Descriptor types.
pub mod dt {
    pub const DEVICE: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const STRING: u8 = 3;
    pub const DEVICE_QUALIFIER: u8 = 6;
    pub const OTHER_SPEED_CONFIG: u8 = 7;
}

/// A device's descriptors at one speed and at the other, and the strings.
pub struct Descriptors {
    /// The device descriptor at the speed it runs at.
    pub device: [u8; 18],
    /// The configuration (with its interface, class and endpoint
    /// descriptors) at the speed it runs at and at the other one.
    pub config: Vec<u8>,
    pub other_config: Vec<u8>,
    /// bMaxPacketSize0 at the other speed (the device qualifier's).
    pub other_max_packet0: u8,
    /// String descriptors 1..: their text.
    pub strings: Vec<String>,
}

/// The state chapter 9 requests change.
#[derive(Default, Debug)]
pub struct StdState {
    pub address: u8,
    pub configuration: u8,
    pub remote_wakeup: bool,
}

/// A string descriptor: UTF-16LE after its two header bytes.
fn string_descriptor(s: &str) -> Vec<u8> {
    let mut out = vec![0, dt::STRING];
    for u in s.encode_utf16().take(126) {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out[0] = out.len() as u8;
    out
}

impl Descriptors {
    /// Answers a standard request addressed to the device (or its
    /// interface 0 / endpoints for the few that need no class knowledge);
    /// `None` for what the class must answer.
    pub fn standard(&self, st: &mut StdState, s: &Setup) -> Option<Reply> {
        use request::*;
        let recipient = s.request_type & 0x1f;
        let kind = (s.request_type >> 5) & 3;
        if kind != 0 {
            return None;
        }
        let reply = match (s.is_in(), recipient, s.request) {
            (true, 0, GET_DESCRIPTOR) => self.descriptor(s.value, s.index),
            (true, 0, GET_STATUS) => {
                // Bus-powered (bmAttributes 0xa0), remote wakeup as set.
                Reply::Data(vec![u8::from(st.remote_wakeup) << 1, 0])
            }
            (true, 0, GET_CONFIGURATION) => Reply::Data(vec![st.configuration]),
            (false, 0, SET_ADDRESS) => {
                st.address = s.value as u8;
                Reply::Data(vec![])
            }
            (false, 0, SET_CONFIGURATION) => match s.value {
                0 | 1 => {
                    st.configuration = s.value as u8;
                    Reply::Data(vec![])
                }
                _ => Reply::Stall,
            },
            (false, 0, CLEAR_FEATURE | SET_FEATURE) if s.value == 1 => {
                st.remote_wakeup = s.request == SET_FEATURE;
                Reply::Data(vec![])
            }
            (true, 1, GET_STATUS) | (true, 2, GET_STATUS) => Reply::Data(vec![0, 0]),
            (true, 1, GET_INTERFACE) if s.index == 0 => Reply::Data(vec![0]),
            (false, 1, SET_INTERFACE) if s.index == 0 && s.value == 0 => Reply::Data(vec![]),
            // Clearing or setting an endpoint's halt: nothing halts here.
            (false, 2, CLEAR_FEATURE | SET_FEATURE) => Reply::Data(vec![]),
            (_, 1, _) => return None,
            _ => Reply::Stall,
        };
        Some(reply)
    }

    fn descriptor(&self, value: u16, index: u16) -> Reply {
        let (kind, n) = ((value >> 8) as u8, value as u8);
        match kind {
            dt::DEVICE => Reply::Data(self.device.to_vec()),
            dt::CONFIG if n == 0 => Reply::Data(self.config.clone()),
            dt::STRING if n == 0 => Reply::Data(vec![4, dt::STRING, 0x09, 0x04]),
            dt::STRING => match self.strings.get(usize::from(n) - 1) {
                Some(s) if !s.is_empty() => Reply::Data(string_descriptor(s)),
                _ => {
                    tracing::debug!(n, index, "usb: no such string");
                    Reply::Stall
                }
            },
            dt::DEVICE_QUALIFIER => {
                let d = &self.device;
                Reply::Data(vec![
                    10,
                    dt::DEVICE_QUALIFIER,
                    d[2],
                    d[3],
                    d[4],
                    d[5],
                    d[6],
                    self.other_max_packet0,
                    d[17],
                    0,
                ])
            }
            dt::OTHER_SPEED_CONFIG if n == 0 => {
                let mut c = self.other_config.clone();
                c[1] = dt::OTHER_SPEED_CONFIG;
                Reply::Data(c)
            }
            _ => Reply::Stall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_fields_from_the_trb() {
        let s = Setup::from_u64(0x0012_0000_0100_0680);
        assert_eq!(
            s,
            Setup {
                request_type: 0x80,
                request: 6,
                value: 0x0100,
                index: 0,
                length: 0x12
            }
        );
        assert!(s.is_in());
    }

    #[test]
    fn strings_are_utf16() {
        assert_eq!(string_descriptor("QE"), [6, 3, b'Q', 0, b'E', 0]);
    }
}
