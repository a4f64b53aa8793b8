//! One message of virnetprotocol.x: the header and the undecoded payload.

use crate::consts::{
    KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION,
    VIR_NET_MESSAGE_MAX, VIR_NET_MESSAGE_MIN,
};
use crate::frame::FrameError;
use crate::xdr::{Reader, Xdr, XdrError};

/// `virNetMessageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A request that expects a REPLY with the same serial.
    Call = 0,
    /// The answer to a CALL.
    Reply = 1,
    /// An asynchronous event or keepalive; no reply.
    Message = 2,
    /// Stream data (consoles); the serial is the opening call's.
    Stream = 3,
    /// A CALL whose payload starts with a file descriptor count.
    CallWithFds = 4,
    /// A REPLY whose payload starts with a file descriptor count.
    ReplyWithFds = 5,
    /// A hole in a sparse stream.
    StreamHole = 6,
}

impl MessageType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            _ => return None,
        })
    }
}

/// `virNetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Success; for a REPLY the payload is the procedure's ret.
    Ok = 0,
    /// Failure; the payload is a `remote_error`.
    Error = 1,
    /// More stream data follows.
    Continue = 2,
}

impl MessageStatus {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            _ => return None,
        })
    }
}

/// `virNetMessageHeader`: six 32-bit words after the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    /// Procedure number; signed in the `.x` file.
    pub proc_: i32,
    pub type_: MessageType,
    pub serial: u32,
    pub status: MessageStatus,
}

impl Header {
    /// A header of the main REMOTE program.
    pub fn remote(proc_: i32, type_: MessageType, serial: u32, status: MessageStatus) -> Self {
        Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_PROTOCOL_VERSION,
            proc_,
            type_,
            serial,
            status,
        }
    }

    /// True for the REMOTE program at version 1.
    pub fn is_remote(&self) -> bool {
        self.prog == REMOTE_PROGRAM && self.vers == REMOTE_PROTOCOL_VERSION
    }

    /// True for the KEEPALIVE program at version 1.
    pub fn is_keepalive(&self) -> bool {
        self.prog == KEEPALIVE_PROGRAM && self.vers == KEEPALIVE_PROTOCOL_VERSION
    }
}

impl Xdr for Header {
    fn encode(&self, out: &mut Vec<u8>) {
        self.prog.encode(out);
        self.vers.encode(out);
        self.proc_.encode(out);
        (self.type_ as u32).encode(out);
        self.serial.encode(out);
        (self.status as u32).encode(out);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let prog = r.read_u32()?;
        let vers = r.read_u32()?;
        let proc_ = i32::decode(r)?;
        let t = r.read_u32()?;
        let type_ = MessageType::from_u32(t).ok_or(XdrError::BadValue {
            what: "message type",
            value: i64::from(t),
        })?;
        let serial = r.read_u32()?;
        let s = r.read_u32()?;
        let status = MessageStatus::from_u32(s).ok_or(XdrError::BadValue {
            what: "message status",
            value: i64::from(s),
        })?;
        Ok(Header {
            prog,
            vers,
            proc_,
            type_,
            serial,
            status,
        })
    }
}

/// A whole message: header plus its still-encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payload: Vec<u8>,
}

impl Message {
    /// A message whose payload is the encoding of `body`.
    pub fn new<T: Xdr>(header: Header, body: &T) -> Self {
        let mut payload = Vec::new();
        body.encode(&mut payload);
        Message { header, payload }
    }

    /// The wire bytes, length word included. Fails when the result would
    /// exceed `VIR_NET_MESSAGE_MAX`, which the peer would refuse.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameError> {
        let total = VIR_NET_MESSAGE_MIN as usize + self.payload.len();
        if total > VIR_NET_MESSAGE_MAX as usize {
            return Err(FrameError::TooLarge(total));
        }
        let mut out = Vec::with_capacity(total);
        (total as u32).encode(&mut out);
        self.header.encode(&mut out);
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Parses one complete frame (length word included), as returned by
    /// [`crate::frame::FrameDecoder`].
    pub fn from_frame(frame: &[u8]) -> Result<Self, FrameError> {
        let mut r = Reader::new(frame);
        let len = r.read_u32().map_err(FrameError::Header)?;
        if len as usize != frame.len() {
            return Err(FrameError::BadLength(len));
        }
        crate::frame::check_length(len)?;
        let header = Header::decode(&mut r).map_err(FrameError::Header)?;
        Ok(Message {
            header,
            payload: frame[VIR_NET_MESSAGE_MIN as usize..].to_vec(),
        })
    }

    /// Decodes the payload as a `T`, refusing trailing bytes.
    pub fn body<T: Xdr>(&self) -> Result<T, XdrError> {
        crate::xdr::from_bytes(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_virsh_sends() {
        let m = Message {
            header: Header::remote(66, MessageType::Call, 0, MessageStatus::Ok),
            payload: vec![],
        };
        let b = m.to_bytes().unwrap();
        assert_eq!(
            b,
            [
                0, 0, 0, 0x1c, 0x20, 0, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 0x42, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0
            ]
        );
        assert_eq!(Message::from_frame(&b).unwrap(), m);
    }

    #[test]
    fn oversized_payload_is_refused() {
        let m = Message {
            header: Header::remote(1, MessageType::Reply, 0, MessageStatus::Ok),
            payload: vec![0; VIR_NET_MESSAGE_MAX as usize],
        };
        assert!(matches!(m.to_bytes(), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn unknown_type_or_status_is_refused() {
        let mut b = Message {
            header: Header::remote(1, MessageType::Call, 0, MessageStatus::Ok),
            payload: vec![],
        }
        .to_bytes()
        .unwrap();
        b[19] = 9;
        assert!(Message::from_frame(&b).is_err());
        b[19] = 0;
        b[27] = 7;
        assert!(Message::from_frame(&b).is_err());
    }
}
