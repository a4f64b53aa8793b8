//! The daemon against misbehaving and concurrent clients, over the raw
//! socket and rvirt-remote's client (no virsh needed).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{domain_xml, Conn, Rvirtd};
use rvirt_remote::calls::{
    ConnectListAllDomainsArgs, DomainArgs, DomainDefineXmlArgs, DomainFlagsArgs,
    DomainLookupByNameArgs,
};
use rvirt_remote::error::code;
use rvirt_remote::frame::read_message;
use rvirt_remote::keepalive::KeepaliveProc;
use rvirt_remote::{
    procs, Client, ClientError, Header, Message, MessageStatus, MessageType, RemoteError,
};
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, run, wait_for, Spawned};

fn client(d: &Rvirtd) -> Conn {
    d.client()
}

fn count_domains(c: &mut Client) -> u32 {
    c.call::<procs::ConnectListAllDomains>(&ConnectListAllDomainsArgs {
        need_results: 1,
        flags: 3,
    })
    .expect("list")
    .ret
}

fn raw(d: &Rvirtd) -> UnixStream {
    let s = UnixStream::connect(d.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn call_bytes(prog: u32, proc_: i32, serial: u32, payload: Vec<u8>) -> Vec<u8> {
    let mut h = Header::remote(proc_, MessageType::Call, serial, MessageStatus::Ok);
    h.prog = prog;
    Message { header: h, payload }.to_bytes().unwrap()
}

/// True when the daemon closed `s` (EOF or reset).
fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn socket_is_private_and_one_daemon_per_tree() {
    let d = Rvirtd::start();
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_rvirtd"))
            .arg("--root")
            .arg(d.root()),
        Duration::from_secs(30),
    );
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another rvirtd is already running"));
    // The first one still serves.
    count_domains(&mut client(&d));
}

#[test]
fn bad_clients_only_hurt_themselves() {
    let d = Rvirtd::start();
    let mut good = client(&d);

    // Garbage: its length word is far beyond the limit.
    let mut g = raw(&d);
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed(&mut g));

    // Over libvirt's 16 MiB message limit.
    let mut big = raw(&d);
    big.write_all(&(16 * 1024 * 1024 + 1u32).to_be_bytes())
        .unwrap();
    assert!(closed(&mut big));

    // A client that stalls mid-message blocks nobody.
    let mut stall = raw(&d);
    let msg = call_bytes(rvirt_remote::consts::REMOTE_PROGRAM, 66, 0, vec![]);
    let mut partial = (100u32).to_be_bytes().to_vec();
    partial.extend_from_slice(&msg[4..]);
    stall.write_all(&partial).unwrap();

    // A client that never reads its replies blocks nobody either.
    let mut deaf = raw(&d);
    let list = call_bytes(
        rvirt_remote::consts::REMOTE_PROGRAM,
        273,
        1,
        vec![0, 0, 0, 1, 0, 0, 0, 3],
    );
    for _ in 0..200 {
        if deaf.write_all(&list).is_err() {
            break;
        }
    }

    assert_eq!(count_domains(&mut good), 0);
    let file = domain_xml("ok", Guest::Hello);
    good.call::<procs::DomainDefineXml>(&DomainDefineXmlArgs { xml: file })
        .unwrap();
    assert_eq!(count_domains(&mut client(&d)), 1);
    drop(stall);
}

#[test]
fn unknown_calls_get_errors_not_hangups() {
    let d = Rvirtd::start();
    let mut s = raw(&d);
    let prog = rvirt_remote::consts::REMOTE_PROGRAM;

    // A procedure number rvirt does not know: VIR_ERR_NO_SUPPORT.
    s.write_all(&call_bytes(prog, 9999, 1, vec![])).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(
        (r.header.serial, r.header.status),
        (1, MessageStatus::Error)
    );
    assert_eq!(r.body::<RemoteError>().unwrap().code, code::NO_SUPPORT);

    // A procedure rvirt knows but does not serve: VIR_ERR_NO_SUPPORT too.
    s.write_all(&call_bytes(prog, 56, 2, vec![0; 24])).unwrap(); // DOMAIN_GET_SCHEDULER_TYPE
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.body::<RemoteError>().unwrap().code, code::NO_SUPPORT);

    // Wrong program, wrong version, undecodable arguments: RPC errors.
    s.write_all(&call_bytes(prog + 1, 66, 3, vec![])).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.body::<RemoteError>().unwrap().code, code::RPC);
    let mut wrong_version = call_bytes(prog, 66, 3, vec![]);
    wrong_version[11] = 2;
    s.write_all(&wrong_version).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.header.status, MessageStatus::Error);
    assert!(r
        .body::<RemoteError>()
        .unwrap()
        .to_string()
        .contains("Cannot find program"));
    s.write_all(&call_bytes(prog, 60, 4, vec![0, 0])).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.body::<RemoteError>().unwrap().code, code::RPC);

    // Keepalive.
    s.write_all(&KeepaliveProc::Ping.message().to_bytes().unwrap())
        .unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(KeepaliveProc::of(&r), Some(KeepaliveProc::Pong));

    // Still the same connection: the handshake's first call works.
    s.write_all(&call_bytes(prog, 66, 5, vec![])).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!((r.header.serial, r.header.status), (5, MessageStatus::Ok));
    assert_eq!(r.payload, [0, 0, 0, 1, 0, 0, 0, 0]);
}

#[test]
fn unknown_domains_get_libvirts_error() {
    let d = Rvirtd::start();
    let c = client(&d);
    let err = c
        .call::<procs::DomainLookupByName>(&DomainLookupByNameArgs {
            name: "nosuch".into(),
        })
        .unwrap_err();
    match err {
        ClientError::Remote(e) => {
            assert_eq!(*e, RemoteError::no_domain_name("nosuch"));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn broken_definitions_are_skipped_not_deleted() {
    let mut d = Rvirtd::start();
    let c = client(&d);
    c.call::<procs::DomainDefineXml>(&DomainDefineXmlArgs {
        xml: domain_xml("fine", Guest::Hello),
    })
    .unwrap();
    drop(c);
    let broken = d.root().join("etc/rvirt/qemu/broken.xml");
    std::fs::write(&broken, "<domain type='kvm'><name>broken").unwrap();
    d.kill9();
    d.spawn();
    let mut c = client(&d);
    assert_eq!(count_domains(&mut c), 1);
    assert!(broken.exists());
}

#[test]
fn twenty_clients_start_and_destroy_twenty_domains() {
    let d = Rvirtd::start();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let sock = d.socket();
            std::thread::spawn(move || {
                let c = common::connect(&sock, "qemu:///system");
                let name = format!("vm{i}");
                let dom = c
                    .call::<procs::DomainDefineXml>(&DomainDefineXmlArgs {
                        xml: domain_xml(&name, Guest::Counter),
                    })
                    .unwrap()
                    .dom;
                c.call::<procs::DomainCreate>(&DomainArgs { dom: dom.clone() })
                    .unwrap();
                let st = c
                    .call::<procs::DomainGetState>(&DomainFlagsArgs {
                        dom: dom.clone(),
                        flags: 0,
                    })
                    .unwrap();
                assert_eq!(st.state, 1);
                c.call::<procs::DomainDestroy>(&DomainArgs { dom: dom.clone() })
                    .unwrap();
                let st = c
                    .call::<procs::DomainGetState>(&DomainFlagsArgs { dom, flags: 0 })
                    .unwrap();
                assert_eq!((st.state, st.reason), (5, 2));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = client(&d);
    assert_eq!(count_domains(&mut c), 20);
    for i in 0..20 {
        let text =
            std::fs::read_to_string(d.root().join(format!("etc/rvirt/qemu/vm{i}.xml"))).unwrap();
        let def = rvirt_domain::Domain::from_xml(&text).unwrap();
        assert_eq!(def.name, format!("vm{i}"));
    }
    wait_for("runtime state to be gone", Duration::from_secs(5), || {
        std::fs::read_dir(d.root().join("run/rvirt/qemu"))
            .map(|r| r.count() == 0)
            .unwrap_or(false)
    });
}

#[test]
fn silent_keepalive_clients_are_pinged_then_dropped() {
    let d = Rvirtd::start_with(&["--keepalive-interval", "1", "--keepalive-count", "2"]);
    let mut s = raw(&d);
    let prog = rvirt_remote::consts::REMOTE_PROGRAM;
    // CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE) starts it, as in libvirtd.
    s.write_all(&call_bytes(prog, 60, 1, vec![0, 0, 0, 10]))
        .unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.payload, [0, 0, 0, 1]);
    let start = std::time::Instant::now();
    let ping = read_message(&mut s).unwrap().unwrap();
    assert_eq!(KeepaliveProc::of(&ping), Some(KeepaliveProc::Ping));
    // Answering keeps it alive...
    s.write_all(&KeepaliveProc::Pong.message().to_bytes().unwrap())
        .unwrap();
    let again = read_message(&mut s).unwrap().unwrap();
    assert_eq!(KeepaliveProc::of(&again), Some(KeepaliveProc::Ping));
    // ...silence ends it.
    while let Ok(Some(m)) = read_message(&mut s) {
        assert_eq!(KeepaliveProc::of(&m), Some(KeepaliveProc::Ping));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // A client that never asked for keepalive is left alone.
    let mut quiet = raw(&d);
    quiet
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut b = [0u8; 4];
    let e = quiet.read(&mut b).unwrap_err();
    assert!(matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
}

#[test]
fn socket_group_and_session_mode() {
    // --socket-group: 0660 and the group's id.
    let d = Rvirtd::start_with(&["--socket-group", "daemon"]);
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 1);
    drop(d);

    // --session: the XDG tree, and only qemu:///session is accepted.
    let home = tempfile::tempdir().unwrap();
    let run = home.path().join("xdg-run");
    let daemon = Spawned::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_rvirtd"))
            .arg("--session")
            .arg("--vmm")
            .arg(common::vmm())
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", &run)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME"),
    );
    let sock = run.join("rvirt/rvirt-sock");
    poll("the session socket", Duration::from_secs(10), || {
        // rvirtd binds under a temporary name and renames the socket into
        // place once it listens: the file is the signal (and
        // /proc/net/unix keeps the name it was bound under).
        if sock.exists() {
            Ok(())
        } else {
            Err(daemon.stderr_text())
        }
    });
    let c = common::connect(&sock, "qemu:///session");
    c.call::<procs::DomainDefineXml>(&DomainDefineXmlArgs {
        xml: domain_xml("s", Guest::Hello),
    })
    .unwrap();
    assert!(home.path().join(".config/rvirt/qemu/s.xml").exists());
    assert!(common::try_connect(&sock, "qemu:///system").is_err());
    drop(daemon);
}

#[test]
fn read_only_connections_cannot_change_anything() {
    let d = Rvirtd::start();
    let mut s = raw(&d);
    let prog = rvirt_remote::consts::REMOTE_PROGRAM;
    // CONNECT_OPEN("qemu:///system", VIR_CONNECT_RO)
    let mut open = vec![0, 0, 0, 1, 0, 0, 0, 14];
    open.extend_from_slice(b"qemu:///system\0\0");
    open.extend_from_slice(&[0, 0, 0, 1]);
    s.write_all(&call_bytes(prog, 1, 1, open)).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.header.status, MessageStatus::Ok);
    // DOMAIN_DEFINE_XML is refused without being looked at...
    let mut define = Vec::new();
    rvirt_remote::Xdr::encode(&domain_xml("ro", Guest::Hello), &mut define);
    s.write_all(&call_bytes(prog, 11, 2, define)).unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    let e = r.body::<RemoteError>().unwrap();
    assert_eq!(e.code, code::OPERATION_DENIED);
    assert_eq!(
        e.to_string(),
        "operation forbidden: read only access prevents virDomainDefineXML"
    );
    // ...while reading works on the same connection.
    s.write_all(&call_bytes(prog, 273, 3, vec![0, 0, 0, 1, 0, 0, 0, 3]))
        .unwrap();
    let r = read_message(&mut s).unwrap().unwrap();
    assert_eq!(r.header.status, MessageStatus::Ok);
    assert_eq!(count_domains(&mut client(&d)), 0);
}
