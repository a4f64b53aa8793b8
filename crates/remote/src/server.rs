//! Server-side helpers for rvirtd: classify and decode what a client sent,
//! and build the REPLY, ERROR, event MESSAGE and STREAM messages to send.

use thiserror::Error;

use crate::calls::{DomainEventCallbackLifecycleMsg, DomainEventLifecycleMsg};
use crate::consts::VIR_NET_MESSAGE_NUM_FDS_MAX;
use crate::error::RemoteError;
use crate::keepalive::KeepaliveProc;
use crate::message::{Header, Message, MessageStatus, MessageType};
use crate::procedures::{Args, Procedure, Ret};
use crate::types::NonnullDomain;
use crate::xdr::{Reader, Xdr, XdrError};

/// The header serial libvirtd puts on event MESSAGEs (seen in the
/// captures: 1, not 0).
pub const EVENT_SERIAL: u32 = 1;

/// A client message a server acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A REMOTE CALL with its arguments decoded.
    Call { serial: u32, args: Args },
    /// A keepalive PING or PONG.
    Keepalive(KeepaliveProc),
    /// Stream data or a stream close from the client (consoles): status
    /// CONTINUE carries data, OK closes, ERROR aborts.
    Stream {
        proc_: i32,
        serial: u32,
        status: MessageStatus,
        data: Vec<u8>,
    },
}

/// A client message a server cannot act on. CALLs among them get an error
/// reply ([`Refused::reply`]); the connection stays up either way.
#[derive(Debug, Error)]
pub enum Refused {
    /// A program or version other than REMOTE 1 and KEEPALIVE 1.
    #[error("unknown program {:#x} version {}", .0.prog, .0.vers)]
    UnknownProgram(Header),
    /// A REMOTE procedure number rvirt does not know.
    #[error("unknown procedure {}", .0.proc_)]
    UnknownProcedure(Header),
    /// A CALL whose status is not OK.
    #[error("call with status {:?}", .0.status)]
    BadStatus(Header),
    /// Arguments that do not decode as the procedure's.
    #[error("bad arguments for procedure {}", .0.proc_)]
    BadArgs(Header, #[source] XdrError),
    /// A type a client must not send (REPLY, or a MESSAGE that is not a
    /// keepalive).
    #[error("unexpected message type {:?}", .0.type_)]
    UnexpectedType(Header),
}

impl Refused {
    /// The header of the refused message.
    pub fn header(&self) -> &Header {
        match self {
            Self::UnknownProgram(h)
            | Self::UnknownProcedure(h)
            | Self::BadStatus(h)
            | Self::BadArgs(h, _)
            | Self::UnexpectedType(h) => h,
        }
    }

    /// The error to send back, for CALLs only, as libvirtd answers them.
    pub fn reply(&self) -> Option<Message> {
        let h = self.header();
        if !matches!(h.type_, MessageType::Call | MessageType::CallWithFds) {
            return None;
        }
        let err = match self {
            Self::UnknownProgram(h) => RemoteError::unknown_program(h.prog, h.vers),
            Self::UnknownProcedure(h) => RemoteError::unknown_procedure(h.proc_),
            Self::BadStatus(h) => RemoteError::new(
                crate::error::code::RPC,
                crate::error::from::RPC,
                Some(&format!("Unexpected message status {}", h.status as u32)),
            ),
            Self::BadArgs(..) => RemoteError::undecodable_payload(),
            Self::UnexpectedType(_) => return None,
        };
        Some(error_reply(h, &err))
    }
}

/// Classifies a message from a client and decodes a CALL's arguments.
pub fn decode_incoming(m: &Message) -> Result<Incoming, Refused> {
    let h = m.header;
    if h.is_keepalive() {
        return match KeepaliveProc::of(m) {
            Some(k) => Ok(Incoming::Keepalive(k)),
            // Keepalive has no calls; answer one rather than leave it hanging.
            None if matches!(h.type_, MessageType::Call) => Err(Refused::UnknownProcedure(h)),
            None => Err(Refused::UnexpectedType(h)),
        };
    }
    if !h.is_remote() {
        return Err(Refused::UnknownProgram(h));
    }
    match h.type_ {
        MessageType::Call | MessageType::CallWithFds => {
            if h.status != MessageStatus::Ok {
                return Err(Refused::BadStatus(h));
            }
            let p = Procedure::from_i32(h.proc_).ok_or(Refused::UnknownProcedure(h))?;
            let payload = if h.type_ == MessageType::CallWithFds {
                skip_num_fds(&m.payload).map_err(|e| Refused::BadArgs(h, e))?
            } else {
                &m.payload[..]
            };
            let args = Args::decode(p, payload).map_err(|e| Refused::BadArgs(h, e))?;
            Ok(Incoming::Call {
                serial: h.serial,
                args,
            })
        }
        MessageType::Stream => Ok(Incoming::Stream {
            proc_: h.proc_,
            serial: h.serial,
            status: h.status,
            data: m.payload.clone(),
        }),
        _ => Err(Refused::UnexpectedType(h)),
    }
}

/// Skips the descriptor count that starts a `*_WITH_FDS` payload.
fn skip_num_fds(payload: &[u8]) -> Result<&[u8], XdrError> {
    let mut r = Reader::new(payload);
    let n = r.read_u32()?;
    if n > VIR_NET_MESSAGE_NUM_FDS_MAX {
        return Err(XdrError::TooLong {
            len: n,
            max: VIR_NET_MESSAGE_NUM_FDS_MAX,
        });
    }
    Ok(&payload[4..])
}

/// A successful REPLY to CALL `serial` of procedure `p`.
pub fn reply<T: Xdr>(p: Procedure, serial: u32, ret: &T) -> Message {
    Message::new(
        Header::remote(p.number(), MessageType::Reply, serial, MessageStatus::Ok),
        ret,
    )
}

/// A successful REPLY built from a typed [`Ret`].
pub fn reply_ret(serial: u32, ret: &Ret) -> Message {
    Message {
        header: Header::remote(
            ret.procedure().number(),
            MessageType::Reply,
            serial,
            MessageStatus::Ok,
        ),
        payload: ret.encode(),
    }
}

/// An ERROR reply to the call with header `call`; program, version,
/// procedure and serial are copied as libvirtd copies them.
pub fn error_reply(call: &Header, err: &RemoteError) -> Message {
    Message::new(
        Header {
            type_: MessageType::Reply,
            status: MessageStatus::Error,
            ..*call
        },
        err,
    )
}

/// An event MESSAGE (`Args::DomainEventCallbackLifecycle`, ...).
pub fn event(args: &Args) -> Message {
    Message {
        header: Header::remote(
            args.procedure().number(),
            MessageType::Message,
            EVENT_SERIAL,
            MessageStatus::Ok,
        ),
        payload: args.encode(),
    }
}

/// A DOMAIN_EVENT_CALLBACK_LIFECYCLE message for a client's callback.
pub fn lifecycle_event(callback_id: i32, dom: NonnullDomain, event: i32, detail: i32) -> Message {
    crate::server::event(&Args::DomainEventCallbackLifecycle(
        DomainEventCallbackLifecycleMsg {
            callback_id,
            msg: DomainEventLifecycleMsg { dom, event, detail },
        },
    ))
}

/// Stream data for the stream opened by call `serial` of `proc_`.
pub fn stream_data(proc_: i32, serial: u32, data: &[u8]) -> Message {
    Message {
        header: Header::remote(proc_, MessageType::Stream, serial, MessageStatus::Continue),
        payload: data.to_vec(),
    }
}

/// End of stream: an empty CONTINUE message, as libvirtd sends when the
/// console's source closes.
pub fn stream_eof(proc_: i32, serial: u32) -> Message {
    stream_data(proc_, serial, &[])
}

/// Confirms a client's stream close (its empty OK message) with an
/// empty OK message of our own, as libvirtd does.
pub fn stream_finish(proc_: i32, serial: u32) -> Message {
    Message {
        header: Header::remote(proc_, MessageType::Stream, serial, MessageStatus::Ok),
        payload: Vec::new(),
    }
}

/// Aborts a stream with an error (a second console opener forced it).
pub fn stream_error(proc_: i32, serial: u32, err: &RemoteError) -> Message {
    Message::new(
        Header::remote(proc_, MessageType::Stream, serial, MessageStatus::Error),
        err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet};
    use crate::consts::{KEEPALIVE_PROGRAM, REMOTE_PROGRAM};

    fn call(proc_: i32, payload: Vec<u8>) -> Message {
        Message {
            header: Header::remote(proc_, MessageType::Call, 7, MessageStatus::Ok),
            payload,
        }
    }

    #[test]
    fn decodes_a_call() {
        let m = call(60, vec![0, 0, 0, 10]);
        assert_eq!(
            decode_incoming(&m).unwrap(),
            Incoming::Call {
                serial: 7,
                args: Args::ConnectSupportsFeature(ConnectSupportsFeatureArgs { feature: 10 })
            }
        );
        let r = reply(
            Procedure::ConnectSupportsFeature,
            7,
            &ConnectSupportsFeatureRet { supported: 1 },
        );
        assert_eq!(r.to_bytes().unwrap().len(), 32);
    }

    #[test]
    fn refusals_get_error_replies() {
        let unknown = decode_incoming(&call(9999, vec![])).unwrap_err();
        let r = unknown.reply().unwrap();
        assert_eq!(r.header.status, MessageStatus::Error);
        assert_eq!(r.header.serial, 7);
        let e: RemoteError = r.body().unwrap();
        assert_eq!(e.code, crate::error::code::RPC);

        let bad = decode_incoming(&call(60, vec![0, 0])).unwrap_err();
        assert!(matches!(bad, Refused::BadArgs(..)));
        assert!(bad.reply().is_some());

        let mut wrong = call(1, vec![]);
        wrong.header.prog = REMOTE_PROGRAM + 1;
        let r = decode_incoming(&wrong).unwrap_err().reply().unwrap();
        assert_eq!(r.header.prog, REMOTE_PROGRAM + 1);
        assert!(r
            .body::<RemoteError>()
            .unwrap()
            .to_string()
            .contains("Cannot find program"));

        let mut bad_status = call(2, vec![]);
        bad_status.header.status = MessageStatus::Continue;
        let r = decode_incoming(&bad_status).unwrap_err().reply().unwrap();
        assert_eq!(
            r.body::<RemoteError>().unwrap().to_string(),
            "Unexpected message status 2"
        );

        let mut stray = call(1, vec![]);
        stray.header.type_ = MessageType::Reply;
        assert!(decode_incoming(&stray).unwrap_err().reply().is_none());
    }

    #[test]
    fn keepalive_and_streams() {
        let ping = KeepaliveProc::Ping.message();
        assert_eq!(ping.header.prog, KEEPALIVE_PROGRAM);
        assert_eq!(
            decode_incoming(&ping).unwrap(),
            Incoming::Keepalive(KeepaliveProc::Ping)
        );
        let s = stream_data(201, 9, b"hi");
        assert!(matches!(
            decode_incoming(&s).unwrap(),
            Incoming::Stream {
                serial: 9,
                status: MessageStatus::Continue,
                ..
            }
        ));
    }

    #[test]
    fn lifecycle_event_matches_the_capture() {
        // summary/33: the STARTED/BOOTED event libvirtd pushed.
        let dom = NonnullDomain {
            name: "rpcdemo".into(),
            uuid: "42cd5893-61e5-4321-b072-50c6997658c3".parse().unwrap(),
            id: 434,
        };
        let m = lifecycle_event(2, dom, 2, 0);
        let hex: String = m
            .to_bytes()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "0000004820008086000000010000013e0000000200000001000000000000000200000007\
             72706364656d6f0042cd589361e54321b07250c6997658c3000001b20000000200000000"
        );
    }

    #[test]
    fn call_with_fds_skips_the_count() {
        let mut m = call(60, vec![0, 0, 0, 0, 0, 0, 0, 10]);
        m.header.type_ = MessageType::CallWithFds;
        assert!(matches!(
            decode_incoming(&m).unwrap(),
            Incoming::Call { .. }
        ));
        m.payload[3] = 33;
        assert!(decode_incoming(&m).is_err());
    }
}
