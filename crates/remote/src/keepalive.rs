//! virkeepaliveprotocol.x: PING and PONG, empty MESSAGEs of their own
//! program, serial 0. Either side may ping once feature 10 was agreed; the
//! other answers PONG.

use crate::consts::{KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION};
use crate::message::{Header, Message, MessageStatus, MessageType};

/// `KEEPALIVE_PROC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveProc {
    Ping = 1,
    Pong = 2,
}

impl KeepaliveProc {
    /// The procedure with this number.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Ping),
            2 => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 28-byte message.
    pub fn message(self) -> Message {
        Message {
            header: Header {
                prog: KEEPALIVE_PROGRAM,
                vers: KEEPALIVE_PROTOCOL_VERSION,
                proc_: self as i32,
                type_: MessageType::Message,
                serial: 0,
                status: MessageStatus::Ok,
            },
            payload: Vec::new(),
        }
    }

    /// The keepalive procedure of `m`, if it is a well-formed keepalive.
    pub fn of(m: &Message) -> Option<Self> {
        if m.header.is_keepalive() && m.header.type_ == MessageType::Message {
            Self::from_i32(m.header.proc_)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_bytes() {
        let b = KeepaliveProc::Ping.message().to_bytes().unwrap();
        assert_eq!(&b[..12], &[0, 0, 0, 28, 0x6b, 0x65, 0x65, 0x70, 0, 0, 0, 1]);
        assert_eq!(&b[12..20], &[0, 0, 0, 1, 0, 0, 0, 2]);
        let m = Message::from_frame(&b).unwrap();
        assert_eq!(KeepaliveProc::of(&m), Some(KeepaliveProc::Ping));
    }
}
