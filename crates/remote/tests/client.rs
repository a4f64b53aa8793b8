//! The blocking client against (a) a replay of libvirtd's side of real
//! virsh sessions, which checks that the client sends virsh's bytes
//! exactly, and (b) a small daemon built on the server helpers, which
//! checks keepalive, events and refusals.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use common::{sessions, Captured};
use rvirt_remote::calls::*;
use rvirt_remote::error::code;
use rvirt_remote::frame::{read_message, write_message};
use rvirt_remote::handshake::{connection_reply, ServerFeatures};
use rvirt_remote::keepalive::KeepaliveProc;
use rvirt_remote::server::{decode_incoming, event, reply, stream_data, stream_eof, Incoming};
use rvirt_remote::uri::Mode;
use rvirt_remote::{
    procs, Args, Async, Client, ClientError, MessageStatus, NonnullDomain, Procedure, RemoteError,
};

/// A connected pair, the client's end and the server's. The server's end
/// gives up waiting after a while: its thread then fails and hangs up, so
/// a client that waits for it fails too instead of hanging the test.
fn pair() -> (UnixStream, UnixStream) {
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let limit = Some(Duration::from_secs(30));
    server_end.set_read_timeout(limit).unwrap();
    server_end.set_write_timeout(limit).unwrap();
    (client_end, server_end)
}

/// Plays libvirtd's side of a captured session: every message the
/// client sends must equal virsh's captured bytes.
fn replay(sub: &str, prefix: &str) -> (UnixStream, thread::JoinHandle<()>) {
    let (_, msgs): (String, Vec<Captured>) = sessions(sub)
        .into_iter()
        .find(|(n, _)| n.starts_with(prefix))
        .expect("trace");
    let (client_end, mut server_end) = pair();
    let h = thread::spawn(move || {
        for c in msgs {
            if c.to_server {
                let got = read_message(&mut server_end)
                    .unwrap()
                    .unwrap_or_else(|| panic!("client hung up before serial {}", c.serial));
                assert_eq!(
                    got.to_bytes().unwrap(),
                    c.bytes(),
                    "client bytes differ from virsh's at proc {} serial {}",
                    c.proc_,
                    c.serial
                );
            } else {
                server_end.write_all(&c.bytes()).unwrap();
            }
        }
    });
    (client_end, h)
}

#[test]
fn error_session_matches_virsh_byte_for_byte() {
    let (sock, server) = replay("full-hex", "j-error-missing");
    let c = Client::handshake(sock, "qemu:///system").unwrap();
    assert!(c.features().keepalive && c.features().event_callback && c.features().close_callback);
    let err = c
        .call::<procs::DomainLookupByName>(&DomainLookupByNameArgs {
            name: "nosuchdomain".into(),
        })
        .unwrap_err();
    match err {
        ClientError::Remote(e) => {
            assert_eq!(e.code, code::NO_DOMAIN);
            assert_eq!(
                e.to_string(),
                "Domain not found: no domain with matching name 'nosuchdomain'"
            );
        }
        other => panic!("{other:?}"),
    }
    c.close().unwrap();
    server.join().unwrap();
}

#[test]
fn start_session_matches_virsh_byte_for_byte() {
    let (sock, server) = replay("full-hex", "c-start");
    let c = Client::handshake(sock, "qemu:///system").unwrap();
    let dom = c
        .call::<procs::DomainLookupByName>(&DomainLookupByNameArgs {
            name: "rpcdemo".into(),
        })
        .unwrap()
        .dom;
    assert_eq!(dom.id, -1);
    c.call::<procs::DomainCreate>(&DomainArgs { dom: dom.clone() })
        .unwrap();
    let after = c
        .call::<procs::DomainLookupByUuid>(&DomainLookupByUuidArgs { uuid: dom.uuid })
        .unwrap()
        .dom;
    assert!(after.id > 0, "running domains get an id");
    c.close().unwrap();
    server.join().unwrap();
}

#[test]
fn event_session_matches_virsh_byte_for_byte() {
    let (sock, server) = replay("summary", "33-event");
    let c = Client::handshake(sock, "qemu:///system").unwrap();
    let dom = c
        .call::<procs::DomainLookupByName>(&DomainLookupByNameArgs {
            name: "rpcdemo".into(),
        })
        .unwrap()
        .dom;
    let id = c
        .call::<procs::ConnectDomainEventCallbackRegisterAny>(
            &ConnectDomainEventCallbackRegisterAnyArgs {
                event_id: 0,
                dom: Some(dom),
            },
        )
        .unwrap()
        .callback_id;
    let mut seen = Vec::new();
    for _ in 0..4 {
        match c.next_async(Some(Duration::from_secs(5))).unwrap() {
            Some(Async::Event(Args::DomainEventCallbackLifecycle(m))) => {
                assert_eq!(m.callback_id, id);
                seen.push((m.msg.event, m.msg.detail));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, vec![(4, 0), (2, 0), (6, 2), (5, 1)]);
    c.call::<procs::ConnectDomainEventCallbackDeregisterAny>(&CallbackIdArgs { callback_id: id })
        .unwrap();
    c.close().unwrap();
    server.join().unwrap();
}

/// A tiny daemon on the server helpers: auth none, keepalive only, and
/// CONNECT_GET_HOSTNAME preceded by a PING and an event.
fn fake_daemon(mut s: UnixStream) {
    let dom = NonnullDomain {
        name: "d".into(),
        uuid: Default::default(),
        id: 1,
    };
    while let Some(m) = read_message(&mut s).unwrap() {
        let (serial, args) = match decode_incoming(&m) {
            Ok(Incoming::Call { serial, args }) => (serial, args),
            Ok(Incoming::Keepalive(k)) => panic!("unexpected {k:?}"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(refused) => {
                write_message(&mut s, &refused.reply().unwrap()).unwrap();
                continue;
            }
        };
        // Session mode, keepalive only: no event or close callbacks.
        let features = ServerFeatures {
            keepalive: true,
            event_callback: false,
            close_callback: false,
        };
        if let Some(r) = connection_reply(&m.header, &args, Mode::Session, &features) {
            write_message(&mut s, &r).unwrap();
            continue;
        }
        let out = match args {
            Args::ConnectGetHostname(()) => {
                write_message(&mut s, &KeepaliveProc::Ping.message()).unwrap();
                let pong = read_message(&mut s).unwrap().unwrap();
                assert_eq!(KeepaliveProc::of(&pong), Some(KeepaliveProc::Pong));
                let ev = Args::DomainEventCallbackLifecycle(DomainEventCallbackLifecycleMsg {
                    callback_id: 1,
                    msg: DomainEventLifecycleMsg {
                        dom: dom.clone(),
                        event: 2,
                        detail: 0,
                    },
                });
                write_message(&mut s, &event(&ev)).unwrap();
                reply(
                    Procedure::ConnectGetHostname,
                    serial,
                    &ConnectGetHostnameRet {
                        hostname: "host".into(),
                    },
                )
            }
            Args::DomainOpenConsole(a) => {
                assert_eq!(a.dev_name, None);
                // Console output may arrive before the reply to 201.
                write_message(&mut s, &stream_data(201, serial, b"boot\n")).unwrap();
                write_message(&mut s, &reply(Procedure::DomainOpenConsole, serial, &())).unwrap();
                let input = read_message(&mut s).unwrap().unwrap();
                match decode_incoming(&input).unwrap() {
                    Incoming::Stream {
                        serial: sr,
                        status,
                        data,
                        ..
                    } => {
                        assert_eq!(
                            (sr, status, data),
                            (serial, MessageStatus::Continue, b"ls\n".to_vec())
                        );
                    }
                    other => panic!("{other:?}"),
                }
                let close = read_message(&mut s).unwrap().unwrap();
                assert!(matches!(
                    decode_incoming(&close).unwrap(),
                    Incoming::Stream { status: MessageStatus::Ok, ref data, .. } if data.is_empty()
                ));
                stream_eof(201, serial)
            }
            Args::ConnectClose(()) => {
                write_message(&mut s, &reply(Procedure::ConnectClose, serial, &())).unwrap();
                return;
            }
            other => rvirt_remote::server::error_reply(
                &m.header,
                &RemoteError::no_support(&other.procedure().api_name()),
            ),
        };
        write_message(&mut s, &out).unwrap();
    }
}

#[test]
fn keepalive_events_and_unsupported_calls() {
    let (a, b) = pair();
    let daemon = thread::spawn(move || fake_daemon(b));
    let c = Client::handshake(a, "qemu:///session").unwrap();
    assert!(c.features().keepalive);
    assert!(!c.features().close_callback);

    let host = c.call::<procs::ConnectGetHostname>(&()).unwrap();
    assert_eq!(host.hostname, "host");
    // The event that arrived during the call was queued, not lost.
    match c.next_async(Some(Duration::from_millis(100))).unwrap() {
        Some(Async::Event(Args::DomainEventCallbackLifecycle(m))) => assert_eq!(m.msg.event, 2),
        other => panic!("{other:?}"),
    }
    // Nothing more: the wait times out instead of blocking.
    assert_eq!(c.next_async(Some(Duration::from_millis(50))).unwrap(), None);

    match c.call::<procs::DomainShutdown>(&DomainArgs {
        dom: NonnullDomain {
            name: "d".into(),
            uuid: Default::default(),
            id: 1,
        },
    }) {
        Err(ClientError::Remote(e)) => {
            assert_eq!(e.code, code::NO_SUPPORT);
            assert_eq!(
                e.to_string(),
                "this function is not supported by the connection driver: virDomainShutdown"
            );
        }
        other => panic!("{other:?}"),
    }

    // Console: output that raced ahead of the reply is kept; input goes
    // through the sender; the daemon ends with an empty CONTINUE.
    let console = c.open_console(dom(), None, 0).unwrap();
    let out = c.next_async(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        out,
        Some(Async::Stream {
            serial: console.serial(),
            status: MessageStatus::Continue,
            data: b"boot\n".to_vec()
        })
    );
    let sender = console.clone();
    thread::spawn(move || {
        sender.send(b"ls\n").unwrap();
        sender.finish().unwrap();
    })
    .join()
    .unwrap();
    match c.next_async(Some(Duration::from_secs(5))).unwrap() {
        Some(Async::Stream {
            status: MessageStatus::Continue,
            data,
            ..
        }) => assert!(data.is_empty()),
        other => panic!("{other:?}"),
    }
    c.close().unwrap();
    daemon.join().unwrap();
}

fn dom() -> NonnullDomain {
    NonnullDomain {
        name: "d".into(),
        uuid: Default::default(),
        id: 1,
    }
}

#[test]
fn connect_failure_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.sock");
    let err = Client::connect_path(&path, "qemu:///system").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("Failed to connect socket to '"), "{text}");
    assert!(text.contains("nothing-here.sock"));
}

#[test]
fn daemon_hanging_up_is_an_error_not_a_hang() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    assert!(matches!(
        Client::handshake(a, "qemu:///system"),
        Err(ClientError::Closed) | Err(ClientError::Frame(_))
    ));
}
