//! Golden tests over wire captures of the real virsh 9.0 talking to the
//! real libvirtd 9.0 (tests/traces, copied from the project's shared
//! captures): every message parses into typed values that re-encode to
//! the same bytes, and each session starts and ends as virsh does.

mod common;

use common::{sessions, Captured};
use rvirt_remote::calls::{
    ConnectListAllDomainsRet, DomainEventCallbackLifecycleMsg, DomainGetInfoRet,
    NodeGetSecurityModelRet,
};
use rvirt_remote::keepalive::KeepaliveProc;
use rvirt_remote::{
    Args, FrameDecoder, Message, MessageStatus, MessageType, Procedure, RemoteError, Ret,
};

/// Decodes a message's payload into its typed form and re-encodes it.
fn typed_roundtrip(c: &Captured, m: &Message) -> Vec<u8> {
    let h = m.header;
    if let Some(k) = KeepaliveProc::of(m) {
        assert!(m.payload.is_empty());
        return k.message().payload;
    }
    assert!(h.is_remote(), "{}: program", c.file);
    let p = Procedure::from_i32(h.proc_)
        .unwrap_or_else(|| panic!("{}: procedure {} not in the table", c.file, h.proc_));
    match (h.type_, h.status) {
        (MessageType::Call | MessageType::Message, MessageStatus::Ok) => {
            let a = Args::decode(p, &m.payload)
                .unwrap_or_else(|e| panic!("{}: args of {p}: {e}", c.file));
            assert_eq!(a.procedure(), p);
            a.encode()
        }
        (MessageType::Reply, MessageStatus::Ok) => {
            let r = Ret::decode(p, &m.payload)
                .unwrap_or_else(|e| panic!("{}: ret of {p}: {e}", c.file));
            r.encode()
        }
        (MessageType::Reply, MessageStatus::Error) => {
            let e: RemoteError = m
                .body()
                .unwrap_or_else(|e| panic!("{}: error of {p}: {e}", c.file));
            assert!(e.message.is_some());
            rvirt_remote::xdr::to_bytes(&e)
        }
        other => panic!("{}: unexpected {other:?}", c.file),
    }
}

fn check_all(sub: &str) -> usize {
    let mut checked = 0;
    for (_, msgs) in sessions(sub) {
        for c in msgs.iter().filter(|c| c.payload.is_some()) {
            let bytes = c.bytes();
            assert_eq!(bytes.len(), c.len as usize, "{}: len word", c.file);
            let m = Message::from_frame(&bytes).unwrap();
            assert_eq!(m.header.proc_, c.proc_);
            assert_eq!(m.header.serial, c.serial);
            assert_eq!(m.header.type_, c.type_);
            assert_eq!(m.header.status, c.status);
            assert_eq!(
                m.to_bytes().unwrap(),
                bytes,
                "{}: frame re-encoding",
                c.file
            );
            assert_eq!(
                typed_roundtrip(c, &m),
                m.payload,
                "{}: typed re-encoding of proc {} serial {}",
                c.file,
                c.proc_,
                c.serial
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn full_hex_messages_roundtrip_byte_for_byte() {
    assert!(check_all("full-hex") >= 200);
}

#[test]
fn complete_summary_messages_roundtrip_byte_for_byte() {
    assert!(check_all("summary") >= 1000);
}

#[test]
fn each_direction_reframes_from_one_byte_stream() {
    for (name, msgs) in sessions("full-hex") {
        for to_server in [true, false] {
            let dir: Vec<_> = msgs.iter().filter(|c| c.to_server == to_server).collect();
            let stream: Vec<u8> = dir.iter().flat_map(|c| c.bytes()).collect();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            // Odd-sized chunks exercise partial reads of length and header.
            for chunk in stream.chunks(7) {
                d.push(chunk);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), dir.len(), "{name}");
            assert_eq!(d.buffered(), 0);
        }
    }
}

#[test]
fn every_session_starts_and_ends_like_virsh() {
    let features = |msgs: &[&Captured]| -> Vec<i32> {
        msgs.iter()
            .filter(|c| c.proc_ == 60)
            .map(|c| i32::from_be_bytes(c.payload.as_ref().unwrap()[..4].try_into().unwrap()))
            .collect()
    };
    for sub in ["full-hex", "summary"] {
        for (name, msgs) in sessions(sub) {
            let calls: Vec<&Captured> = msgs
                .iter()
                .filter(|c| c.type_ == MessageType::Call)
                .collect();
            let procs: Vec<i32> = calls.iter().map(|c| c.proc_).collect();
            assert_eq!(&procs[..6], &[66, 60, 1, 60, 60, 360], "{name}");
            assert_eq!(features(&calls[..6]), vec![10, 14, 15], "{name}");
            assert_eq!(&procs[procs.len() - 2..], &[361, 2], "{name}");
            for (i, c) in calls.iter().enumerate() {
                assert_eq!(c.serial, i as u32, "{name}: serials count from 0");
            }
            let open = Message::from_frame(&calls[2].bytes()).unwrap();
            match Args::decode(Procedure::ConnectOpen, &open.payload).unwrap() {
                Args::ConnectOpen(a) => {
                    assert_eq!(a.name.as_deref(), Some("qemu:///system"), "{name}");
                    assert_eq!(a.flags, 0);
                }
                other => panic!("{other:?}"),
            }
            // Every call is answered by a reply with its serial and procedure.
            for c in &calls {
                assert!(
                    msgs.iter().any(|r| r.type_ == MessageType::Reply
                        && r.serial == c.serial
                        && r.proc_ == c.proc_),
                    "{name}: no reply to serial {}",
                    c.serial
                );
            }
        }
    }
}

fn find(sub: &str, file_prefix: &str, proc_: i32, type_: MessageType) -> Message {
    let (_, msgs) = sessions(sub)
        .into_iter()
        .find(|(n, _)| n.starts_with(file_prefix))
        .expect("file");
    let c = msgs
        .iter()
        .find(|c| c.proc_ == proc_ && c.type_ == type_ && c.payload.is_some())
        .expect("message");
    Message::from_frame(&c.bytes()).unwrap()
}

#[test]
fn decoded_values_are_the_ones_virsh_printed() {
    let list: ConnectListAllDomainsRet = find("full-hex", "b-list-all", 273, MessageType::Reply)
        .body()
        .unwrap();
    assert_eq!(list.ret as usize, list.domains.len());
    assert!(list.domains.iter().any(|d| d.name == "rpcdemo"));

    let info: DomainGetInfoRet = find("full-hex", "d-dominfo", 16, MessageType::Reply)
        .body()
        .unwrap();
    assert!(info.max_mem >= info.memory);
    assert!(info.nr_virt_cpu >= 1);

    // `char model<257>` arrives as one 4-byte int per character, NUL included.
    let sec: NodeGetSecurityModelRet = find("full-hex", "d-dominfo", 122, MessageType::Reply)
        .body()
        .unwrap();
    assert_eq!(sec.model.to_string_lossy(), "none");
    assert_eq!(sec.doi.to_string_lossy(), "0");
    assert_eq!(sec.model.0, b"none\0");

    let err: RemoteError = find("full-hex", "j-error", 23, MessageType::Reply)
        .body()
        .unwrap();
    assert_eq!(err, RemoteError::no_domain_name("nosuchdomain"));

    let ev: DomainEventCallbackLifecycleMsg =
        find("summary", "33-event", 318, MessageType::Message)
            .body()
            .unwrap();
    assert_eq!(ev.msg.dom.name, "rpcdemo");
    assert_eq!((ev.msg.event, ev.msg.detail), (4, 0));
}

#[test]
fn truncated_captures_never_decode_as_whole_messages() {
    // Cutting any captured frame short must give an error, never a panic.
    for (_, msgs) in sessions("full-hex") {
        for c in msgs.iter().take(20) {
            let b = c.bytes();
            for cut in 0..b.len() {
                assert!(Message::from_frame(&b[..cut]).is_err());
            }
            let m = Message::from_frame(&b).unwrap();
            if let Some(p) = Procedure::from_i32(m.header.proc_) {
                for cut in 0..m.payload.len() {
                    let _ = Args::decode(p, &m.payload[..cut]);
                    let _ = Ret::decode(p, &m.payload[..cut]);
                }
            }
        }
    }
}

#[test]
fn server_handshake_answers_equal_libvirtds_bytes() {
    use rvirt_remote::handshake::{connection_reply, ServerFeatures};
    use rvirt_remote::server::decode_incoming;
    use rvirt_remote::server::Incoming;
    use rvirt_remote::uri::Mode;

    let mut answered = 0;
    for sub in ["full-hex", "summary"] {
        for (name, msgs) in sessions(sub) {
            let complete_calls = msgs
                .iter()
                .filter(|c| c.type_ == MessageType::Call && c.payload.is_some());
            for c in complete_calls {
                let call = Message::from_frame(&c.bytes()).unwrap();
                let Ok(Incoming::Call { args, .. }) = decode_incoming(&call) else {
                    panic!("{name}: call {} refused", c.proc_);
                };
                let Some(ours) = connection_reply(
                    &call.header,
                    &args,
                    Mode::System,
                    &ServerFeatures::default(),
                ) else {
                    continue;
                };
                let theirs = msgs
                    .iter()
                    .find(|r| r.type_ == MessageType::Reply && r.serial == c.serial)
                    .unwrap();
                assert_eq!(
                    ours.to_bytes().unwrap(),
                    theirs.bytes(),
                    "{name}: proc {}",
                    c.proc_
                );
                answered += 1;
            }
        }
    }
    // AUTH_LIST, three features, OPEN and two close-callback calls per session.
    assert!(answered >= 7 * 40, "{answered}");
}
