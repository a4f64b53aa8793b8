//! The client with several calls in flight, against fake daemons built on
//! the server helpers: replies matched by serial whatever their order,
//! events and stream messages taken by whoever waits for them, keepalive
//! answered and sent, and every waiter failed when the connection ends.
//!
//! Every client wait in these tests has a deadline (`wait_timeout`, a
//! `next_*` timeout or a channel's `recv_timeout`), and every fake daemon
//! gives up reading or writing after one, so a broken client fails a test
//! instead of hanging it.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rvirt_remote::calls::*;
use rvirt_remote::client::WINDOW;
use rvirt_remote::error::code;
use rvirt_remote::frame::{read_message, write_message, FrameError};
use rvirt_remote::handshake::{connection_reply, ServerFeatures};
use rvirt_remote::keepalive::KeepaliveProc;
use rvirt_remote::server::{decode_incoming, error_reply, event, reply, stream_data, Incoming};
use rvirt_remote::uri::Mode;
use rvirt_remote::{
    procs, Args, Async, Client, ClientError, ClientOptions, Header, Message, MessageStatus,
    NonnullDomain, Procedure, RemoteError,
};

/// The longest any single wait in these tests may take.
const LIMIT: Duration = Duration::from_secs(20);

fn dom(name: &str, id: i32) -> NonnullDomain {
    NonnullDomain {
        name: name.into(),
        uuid: Default::default(),
        id,
    }
}

/// The daemon's end of a connection.
struct Fake {
    sock: UnixStream,
    /// PINGs and PONGs the client sent.
    pings: usize,
    pongs: usize,
}

impl Fake {
    /// Reads the next CALL, counting (and not answering) keepalive
    /// messages; `None` when the client hung up.
    fn next_call(&mut self) -> Option<(Header, Args)> {
        loop {
            let m = read_message(&mut self.sock).ok()??;
            match decode_incoming(&m) {
                Ok(Incoming::Call { args, .. }) => return Some((m.header, args)),
                Ok(Incoming::Keepalive(KeepaliveProc::Ping)) => self.pings += 1,
                Ok(Incoming::Keepalive(KeepaliveProc::Pong)) => self.pongs += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn send(&mut self, m: &Message) {
        write_message(&mut self.sock, m).unwrap();
    }
}

/// A connected client and the daemon's end, after the handshake (auth
/// none; keepalive as `keepalive` says; no event or close callbacks).
fn connect(keepalive: bool, opts: ClientOptions) -> (Client, Fake) {
    let (a, b) = UnixStream::pair().unwrap();
    // The daemon's end gives up after LIMIT, so its thread ends and hangs
    // up instead of waiting forever for a client that went wrong.
    b.set_read_timeout(Some(LIMIT)).unwrap();
    b.set_write_timeout(Some(LIMIT)).unwrap();
    let features = ServerFeatures {
        keepalive,
        event_callback: false,
        close_callback: false,
    };
    let daemon = thread::spawn(move || {
        let mut f = Fake {
            sock: b,
            pings: 0,
            pongs: 0,
        };
        // The client's last handshake question is whether close callbacks
        // are supported.
        loop {
            let (h, args) = f.next_call().expect("handshake");
            let last = matches!(&args, Args::ConnectSupportsFeature(s) if s.feature == 15);
            let r = connection_reply(&h, &args, Mode::Session, &features).expect("handshake call");
            f.send(&r);
            if last {
                return f;
            }
        }
    });
    let c = Client::handshake_with(a, "qemu:///session", &opts).unwrap();
    (c, daemon.join().unwrap())
}

fn no_pings() -> ClientOptions {
    ClientOptions {
        ping_interval: None,
        ..Default::default()
    }
}

fn state_reply(h: &Header, args: &Args) -> Message {
    match args {
        Args::DomainGetState(a) if a.dom.id >= 0 => reply(
            Procedure::DomainGetState,
            h.serial,
            &DomainGetStateRet {
                state: a.dom.id,
                reason: 0,
            },
        ),
        Args::DomainGetState(a) => error_reply(h, &RemoteError::no_domain_name(&a.dom.name)),
        other => panic!("unexpected {other:?}"),
    }
}

fn get_state(id: i32) -> DomainFlagsArgs {
    DomainFlagsArgs {
        dom: dom(&format!("d{id}"), id),
        flags: 0,
    }
}

#[test]
fn replies_in_any_order_reach_their_calls() {
    let (c, mut f) = connect(true, no_pings());
    let (got_all, got_all_rx) = mpsc::channel();
    let daemon = thread::spawn(move || {
        // All ten calls arrive before the first reply is sent: the client
        // did not wait in between.
        let calls: Vec<_> = (0..10).map(|_| f.next_call().unwrap()).collect();
        got_all.send(()).unwrap();
        for (h, args) in calls.iter().rev() {
            f.send(&state_reply(h, args));
        }
        f
    });
    let pending: Vec<_> = (0..10)
        .map(|i| c.start::<procs::DomainGetState>(&get_state(i)).unwrap())
        .collect();
    got_all_rx.recv_timeout(LIMIT).expect("ten calls in flight");
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.wait_timeout(LIMIT).unwrap().state, i as i32);
    }
    drop(daemon.join().unwrap());
}

#[test]
fn call_many_keeps_order_and_per_call_errors_within_the_window() {
    let (c, f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        // Reads whatever has arrived, then answers it in one burst.
        let Fake { mut sock, .. } = f;
        let mut frames = rvirt_remote::FrameDecoder::new();
        let mut buf = [0u8; 4096];
        let (mut received, mut answered, mut most) = (0usize, 0usize, 0usize);
        loop {
            let n = match std::io::Read::read(&mut sock, &mut buf) {
                Ok(0) | Err(_) => return most,
                Ok(n) => n,
            };
            frames.push(&buf[..n]);
            let mut out = Vec::new();
            while let Some(m) = frames.next_message().unwrap() {
                let Ok(Incoming::Call { args, .. }) = decode_incoming(&m) else {
                    continue;
                };
                received += 1;
                let r = match args {
                    Args::ConnectClose(()) => reply(Procedure::ConnectClose, m.header.serial, &()),
                    a => state_reply(&m.header, &a),
                };
                out.extend(r.to_bytes().unwrap());
            }
            most = most.max(received - answered);
            answered = received;
            if sock.write_all(&out).is_err() {
                return most;
            }
        }
    });
    let args: Vec<_> = (0..700)
        .map(|i| get_state(if i == 500 { -1 } else { i }))
        .collect();
    let r = c.call_many::<procs::DomainGetState>(&args).unwrap();
    assert_eq!(r.len(), 700);
    assert_eq!(r[3].as_ref().unwrap().state, 3);
    assert_eq!(r[699].as_ref().unwrap().state, 699);
    assert_eq!(r[500].as_ref().unwrap_err().code, code::NO_DOMAIN);
    c.close().unwrap();
    let most = daemon.join().unwrap();
    assert!(
        (2..=WINDOW).contains(&most),
        "{most} calls were in flight at once"
    );
}

#[test]
fn threads_share_one_connection() {
    let (c, mut f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        while let Some((h, args)) = f.next_call() {
            let r = match args {
                Args::DomainLookupByName(a) => reply(
                    Procedure::DomainLookupByName,
                    h.serial,
                    &DomainRet {
                        dom: dom(&a.name, 1),
                    },
                ),
                Args::ConnectClose(()) => reply(Procedure::ConnectClose, h.serial, &()),
                other => panic!("unexpected {other:?}"),
            };
            f.send(&r);
        }
    });
    thread::scope(|s| {
        for t in 0..8 {
            let c = &c;
            s.spawn(move || {
                for i in 0..50 {
                    let name = format!("t{t}-{i}");
                    let p = c
                        .start::<procs::DomainLookupByName>(&DomainLookupByNameArgs {
                            name: name.clone(),
                        })
                        .unwrap();
                    assert_eq!(p.wait_timeout(LIMIT).unwrap().dom.name, name);
                }
            });
        }
    });
    c.close().unwrap();
    daemon.join().unwrap();
}

#[test]
fn events_and_stream_messages_go_to_whoever_waits_for_them() {
    let (c, mut f) = connect(true, no_pings());
    let lifecycle = |event| {
        Args::DomainEventCallbackLifecycle(DomainEventCallbackLifecycleMsg {
            callback_id: 1,
            msg: DomainEventLifecycleMsg {
                dom: dom("d", 1),
                event,
                detail: 0,
            },
        })
    };
    let (e1, e2) = (lifecycle(2), lifecycle(5));
    let (ev1, ev2) = (e1.clone(), e2.clone());
    let daemon = thread::spawn(move || {
        let (h, _) = f.next_call().unwrap();
        let p = Procedure::DomainOpenConsole.number();
        // Output before the reply, events in between.
        f.send(&stream_data(p, h.serial, b"one"));
        f.send(&event(&ev1));
        f.send(&reply(Procedure::DomainOpenConsole, h.serial, &()));
        f.send(&stream_data(p, h.serial, b"two"));
        f.send(&event(&ev2));
        // A call made while all that is still queued is answered.
        let (h2, _) = f.next_call().unwrap();
        f.send(&reply(
            Procedure::ConnectGetHostname,
            h2.serial,
            &ConnectGetHostnameRet {
                hostname: "host".into(),
            },
        ));
        f.send(&stream_data(p, h.serial, b""));
        // The client's input, then its close.
        let input = read_message(&mut f.sock).unwrap().unwrap();
        assert_eq!(input.payload, b"in");
        let close = read_message(&mut f.sock).unwrap().unwrap();
        assert_eq!(close.header.status, MessageStatus::Ok);
        f
    });
    let console = c.open_console(dom("d", 1), None, 0).unwrap();
    let host = c.call::<procs::ConnectGetHostname>(&()).unwrap();
    assert_eq!(host.hostname, "host");
    let data = |a: Option<Async>| match a {
        Some(Async::Stream {
            serial,
            status: MessageStatus::Continue,
            data,
        }) => {
            assert_eq!(serial, console.serial());
            data
        }
        other => panic!("{other:?}"),
    };
    // The stream's messages, in order, skipping the events...
    let s = console.serial();
    assert_eq!(data(c.next_stream(s, Some(LIMIT)).unwrap()), b"one");
    assert_eq!(data(c.next_stream(s, Some(LIMIT)).unwrap()), b"two");
    assert_eq!(data(c.next_stream(s, Some(LIMIT)).unwrap()), b"");
    // ...which are still there, in order.
    assert_eq!(c.next_event(Some(LIMIT)).unwrap(), Some(e1));
    assert_eq!(c.next_async(Some(LIMIT)).unwrap(), Some(Async::Event(e2)));
    assert_eq!(c.next_async(Some(Duration::from_millis(20))).unwrap(), None);
    console.send(b"in").unwrap();
    console.finish().unwrap();
    drop(daemon.join().unwrap());
}

#[test]
fn stream_errors_decode() {
    let err = RemoteError::operation_failed("console gone");
    let a = Async::Stream {
        serial: 3,
        status: MessageStatus::Error,
        data: rvirt_remote::xdr::to_bytes(&err),
    };
    assert_eq!(a.stream_error().unwrap().unwrap(), err);
    let data = Async::Stream {
        serial: 3,
        status: MessageStatus::Continue,
        data: vec![1],
    };
    assert!(data.stream_error().is_none());
}

#[test]
fn pings_are_answered_while_nobody_calls() {
    let (c, mut f) = connect(true, no_pings());
    for _ in 0..3 {
        f.send(&KeepaliveProc::Ping.message());
        f.sock.set_read_timeout(Some(LIMIT)).unwrap();
        let pong = read_message(&mut f.sock).unwrap().expect("an answer");
        assert_eq!(KeepaliveProc::of(&pong), Some(KeepaliveProc::Pong));
    }
    drop(c);
}

#[test]
fn a_dead_connection_fails_every_waiter() {
    let (c, mut f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        let calls: Vec<_> = (0..3).map(|_| f.next_call().unwrap()).collect();
        // One answer, then the daemon goes away.
        f.send(&reply(
            Procedure::ConnectGetHostname,
            calls[0].0.serial,
            &ConnectGetHostnameRet {
                hostname: "x".into(),
            },
        ));
    });
    let hostname = c.start::<procs::ConnectGetHostname>(&()).unwrap();
    let a = c.start::<procs::DomainGetState>(&get_state(1)).unwrap();
    let b = c.start::<procs::DomainGetState>(&get_state(2)).unwrap();
    let started = Instant::now();
    thread::scope(|s| {
        let w1 = s.spawn(move || a.wait_timeout(LIMIT));
        let w2 = s.spawn(move || b.wait_timeout(LIMIT));
        let w3 = s.spawn(|| c.next_async(Some(LIMIT)));
        let w4 = s.spawn(|| c.next_stream(7, Some(LIMIT)));
        daemon.join().unwrap();
        assert!(matches!(w1.join().unwrap(), Err(ClientError::Closed)));
        assert!(matches!(w2.join().unwrap(), Err(ClientError::Closed)));
        assert!(matches!(w3.join().unwrap(), Err(ClientError::Closed)));
        assert!(matches!(w4.join().unwrap(), Err(ClientError::Closed)));
    });
    assert!(
        started.elapsed() < LIMIT,
        "waiters woke at the end, not at their deadline"
    );
    // The reply that came before the end is still there.
    assert_eq!(hostname.wait_timeout(LIMIT).unwrap().hostname, "x");
    // Later calls fail at once.
    assert!(matches!(
        c.call::<procs::ConnectGetHostname>(&()),
        Err(ClientError::Closed)
    ));
}

#[test]
fn a_silent_daemon_ends_the_connection_by_keepalive() {
    let opts = ClientOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ping_count: 2,
        ..Default::default()
    };
    let (c, mut f) = connect(true, opts);
    let daemon = thread::spawn(move || {
        // Reads everything, answers nothing.
        while f.next_call().is_some() {}
        f.pings
    });
    let started = Instant::now();
    let err = c
        .start::<procs::ConnectGetHostname>(&())
        .unwrap()
        .wait_timeout(LIMIT)
        .unwrap_err();
    assert!(started.elapsed() < LIMIT);
    assert_eq!(
        err.to_string(),
        "internal error: connection closed due to keepalive timeout"
    );
    drop(c);
    assert_eq!(daemon.join().unwrap(), 2, "two PINGs before giving up");
}

#[test]
fn a_daemon_that_answers_pings_keeps_the_connection() {
    let opts = ClientOptions {
        ping_interval: Some(Duration::from_millis(20)),
        ping_count: 1,
        ..Default::default()
    };
    let (c, f) = connect(true, opts);
    let Fake { mut sock, .. } = f;
    let daemon = thread::spawn(move || {
        let mut pings = 0;
        while let Ok(Some(m)) = read_message(&mut sock) {
            if KeepaliveProc::of(&m) == Some(KeepaliveProc::Ping) {
                pings += 1;
                write_message(&mut sock, &KeepaliveProc::Pong.message()).unwrap();
            }
        }
        pings
    });
    // Idle for many intervals: still connected.
    assert_eq!(
        c.next_async(Some(Duration::from_millis(300))).unwrap(),
        None
    );
    drop(c);
    assert!(daemon.join().unwrap() >= 3);
}

#[test]
fn a_late_reply_to_an_abandoned_call_is_dropped() {
    let (c, mut f) = connect(true, no_pings());
    let (late, late_rx) = mpsc::channel::<()>();
    let daemon = thread::spawn(move || {
        let (h1, a1) = f.next_call().unwrap();
        late_rx.recv_timeout(LIMIT).unwrap();
        f.send(&state_reply(&h1, &a1));
        let (h2, a2) = f.next_call().unwrap();
        f.send(&state_reply(&h2, &a2));
        f
    });
    let err = c
        .start::<procs::DomainGetState>(&get_state(1))
        .unwrap()
        .wait_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::TimedOut {
            proc_: Procedure::DomainGetState,
            ..
        }
    ));
    late.send(()).unwrap();
    let p = c.start::<procs::DomainGetState>(&get_state(2)).unwrap();
    assert_eq!(p.wait_timeout(LIMIT).unwrap().state, 2);
    drop(daemon.join().unwrap());
}

#[test]
fn garbage_from_the_daemon_fails_the_call_instead_of_hanging() {
    let (c, mut f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        f.next_call().unwrap();
        f.sock.write_all(&u32::MAX.to_be_bytes()).unwrap();
        f
    });
    let err = c
        .start::<procs::ConnectGetHostname>(&())
        .unwrap()
        .wait_timeout(LIMIT)
        .unwrap_err();
    match err {
        ClientError::Lost(e) => {
            assert!(
                matches!(*e, ClientError::Frame(FrameError::BadLength(_))),
                "{e:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    drop(daemon.join().unwrap());
}

#[test]
fn an_undecodable_event_is_dropped_not_fatal() {
    let (c, mut f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        let (h, _) = f.next_call().unwrap();
        let mut bad = event(&Args::DomainEventCallbackReboot(
            DomainEventCallbackRebootMsg {
                callback_id: 1,
                msg: DomainEventRebootMsg { dom: dom("d", 1) },
            },
        ));
        bad.payload.truncate(3);
        f.send(&bad);
        f.send(&reply(
            Procedure::ConnectGetHostname,
            h.serial,
            &ConnectGetHostnameRet {
                hostname: "h".into(),
            },
        ));
        f
    });
    assert_eq!(
        c.call::<procs::ConnectGetHostname>(&()).unwrap().hostname,
        "h"
    );
    assert_eq!(c.next_event(Some(Duration::from_millis(20))).unwrap(), None);
    drop(daemon.join().unwrap());
}

/// libvirtd stops reading a client's calls while its replies to that
/// client are unsent. Here both directions fill: the client blocks writing
/// calls while the daemon blocks writing replies and a PING. A reader that
/// waited for the writer to answer the PING would deadlock; ours keeps
/// reading and leaves the PONG to the writer.
#[test]
fn no_deadlock_when_both_directions_are_full() {
    let (c, mut f) = connect(true, no_pings());
    let daemon = thread::spawn(move || {
        let reply_text = "r".repeat(64 * 1024);
        loop {
            let mut batch = Vec::new();
            while batch.len() < 5 {
                match f.next_call() {
                    Some((h, Args::ConnectDomainXmlToNative(_))) => batch.push(h),
                    Some((h, Args::ConnectClose(()))) => {
                        f.send(&reply(Procedure::ConnectClose, h.serial, &()));
                        return f.pongs;
                    }
                    Some(other) => panic!("unexpected {other:?}"),
                    None => return f.pongs,
                }
            }
            f.send(&KeepaliveProc::Ping.message());
            for h in batch {
                f.send(&reply(
                    Procedure::ConnectDomainXmlToNative,
                    h.serial,
                    &ConnectDomainXmlToNativeRet {
                        native_config: reply_text.clone(),
                    },
                ));
            }
        }
    });
    let (done, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let args: Vec<_> = (0..100)
            .map(|_| ConnectDomainXmlToNativeArgs {
                native_format: "qemu-argv".into(),
                domain_xml: "x".repeat(16 * 1024),
                flags: 0,
            })
            .collect();
        let r = c.call_many::<procs::ConnectDomainXmlToNative>(&args);
        done.send(r.map(|v| v.len())).unwrap();
        c.close().unwrap();
    });
    let n = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("call_many finished (no deadlock)");
    assert_eq!(n.unwrap(), 100);
    worker.join().unwrap();
    assert!(daemon.join().unwrap() >= 1, "the PINGs were answered");
}
