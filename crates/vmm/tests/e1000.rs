//! The e1000 and e1000e NICs through the real binary, end to end: the `e1000` test
//! guest finds the card on PCI, reads its MAC from the EEPROM, sends a
//! broadcast frame and waits for one to its MAC, while the test plays the
//! network: a `-netdev stream` peer on a UNIX socket (QEMU's framing), and
//! a tap in a private network namespace. Over the stream the same command
//! line runs under QEMU 7.2 too, and both must print the same and put the
//! same frame on the wire. The `e1000e` guest does the same on an 82574L
//! behind a q35 root port as libvirt places it, with MSI-X on and
//! extended receive descriptors.

mod common;

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_hostnet::testing::{check, contains, link_up, packet_socket};
use rvirt_hostnet::{NetBackend, Tap};

/// The guest's waits are bounded by 20 s; the test waits longer so that
/// the guest's own report is what a failure shows.
const T: Duration = Duration::from_secs(60);
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const GUEST_PAYLOAD: &[u8] = b"hello from the e1000 guest";
const HOST_PAYLOAD: &[u8] = b"hello from the host";

/// The options both VMMs get (QEMU's reference form in the test-guests
/// README), before the network.
fn base_args(serial: &Path) -> Vec<String> {
    base_args_for(serial, "pc", Guest::E1000)
}

/// The options both VMMs get for `guest` on `machine`.
fn base_args_for(serial: &Path, machine: &str, guest: Guest) -> Vec<String> {
    [
        "-M",
        machine,
        "-enable-kvm",
        "-cpu",
        "qemu64,-pni",
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("file:{}", serial.display()),
        "-kernel".into(),
        guest.path().display().to_string(),
    ])
    .collect()
}

/// The frame the test sends the guest.
fn host_frame() -> Vec<u8> {
    let mut f = GUEST_MAC.to_vec();
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&ETHERTYPE);
    f.extend_from_slice(HOST_PAYLOAD);
    f.resize(60, 0);
    f
}

/// The guest's lines about the card (from `E1000` on), what firmware
/// printed before them left out.
fn card_lines(serial: &str) -> String {
    let start = serial
        .find("E1000 ")
        .or_else(|| serial.find("E1000E "))
        .unwrap_or(0);
    serial[start..]
        .lines()
        .take_while(|l| !l.starts_with("POWEROFF"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_guest(lines: &str) {
    assert_eq!(
        output::value(lines, "MAC"),
        Some("52:54:00:12:34:56"),
        "{lines}"
    );
    assert_eq!(output::value(lines, "MAC_EECD"), Some("52:54:00:12:34:56"));
    assert_eq!(output::value(lines, "EEPROM_SUM"), Some("0xbaba"));
    assert_eq!(output::value(lines, "LINK"), Some("1"));
    assert_eq!(output::value(lines, "TX_DONE"), Some("1 TDH=1"));
    assert_eq!(output::value(lines, "RX_LEN"), Some("60 EOP 1"), "{lines}");
    assert_eq!(output::value(lines, "RX_FROM"), Some("02:00:00:00:00:01"));
    assert_eq!(
        output::value(lines, "RX_PAYLOAD").map(str::as_bytes),
        Some(HOST_PAYLOAD)
    );
    assert_eq!(output::value(lines, "ICR_TXDW"), Some("1 ICR_RXT0 1"));
}

fn check_guest_frame(frame: &[u8]) {
    assert_eq!(&frame[..6], &[0xff; 6], "{frame:02x?}");
    assert_eq!(&frame[6..12], &GUEST_MAC, "the source is the EEPROM's MAC");
    assert_eq!(&frame[12..14], &ETHERTYPE);
    assert_eq!(&frame[14..14 + GUEST_PAYLOAD.len()], GUEST_PAYLOAD);
    assert_eq!(frame.len(), 60);
}

fn read_exact_by(s: &mut UnixStream, n: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// Plays the stream's far end: accepts the VMM, reads frames (4-byte
/// big-endian length first) until the guest's, answers with the host's,
/// and returns the guest's frame and the connection (kept open until the
/// VMM is done).
fn stream_peer(listener: &UnixListener, vm: &Spawned) -> (Vec<u8>, UnixStream) {
    listener.set_nonblocking(true).unwrap();
    let mut conn = poll("the VMM's stream connection", T, || {
        match listener.accept() {
            Ok((c, _)) => Ok(c),
            Err(e) => Err(format!("{e}\n{}", vm.describe())),
        }
    });
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    let frame = loop {
        let len = read_exact_by(&mut conn, 4).expect("a frame length");
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        assert!(len <= 65536, "frame length {len}");
        let f = read_exact_by(&mut conn, len).expect("a frame");
        if f.len() >= 14 && f[12..14] == ETHERTYPE {
            break f;
        }
    };
    let reply = host_frame();
    conn.write_all(&(reply.len() as u32).to_be_bytes()).unwrap();
    conn.write_all(&reply).unwrap();
    (frame, conn)
}

/// Runs `program` with the base options and a `-netdev stream` to a peer
/// played by the test: the guest's card lines and its frame.
fn over_stream(program: &Path, dir: &Path) -> (String, Vec<u8>) {
    over_stream_with(
        program,
        dir,
        "pc",
        Guest::E1000,
        &["e1000,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,romfile="],
    )
}

/// [`over_stream`] for `guest` on `machine` with `devices`.
fn over_stream_with(
    program: &Path,
    dir: &Path,
    machine: &str,
    guest: Guest,
    devices: &[&str],
) -> (String, Vec<u8>) {
    let sock = dir.join("net.sock");
    let serial = dir.join("serial.log");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();
    let mut args = base_args_for(&serial, machine, guest);
    args.extend([
        "-netdev".into(),
        format!(
            "stream,id=hostnet0,server=off,addr.type=unix,addr.path={}",
            sock.display()
        ),
    ]);
    for d in devices {
        args.extend(["-device".to_string(), d.to_string()]);
    }
    let vm = Spawned::start(
        die_with_test(&mut Command::new(program))
            .args(&args)
            .stdin(Stdio::null()),
    );
    let (frame, conn) = stream_peer(&listener, &vm);
    let out = vm.output(T);
    drop(conn);
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(
        out.status.success() && output::done(&serial),
        "{}: {}\nserial:\n{serial}\nstderr:\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (card_lines(&serial), frame)
}

fn qemu() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("qemu-system-x86_64"))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)"
        );
        eprintln!("qemu-system-x86_64 not found: the QEMU half is skipped");
    }
    found
}

#[test]
fn frames_both_ways_over_a_stream_as_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, frame) = over_stream(&vmm(), dir.path());
    check_guest(&lines);
    check_guest_frame(&frame);
    let Some(qemu) = qemu() else { return };
    let (q_lines, q_frame) = over_stream(&qemu, dir.path());
    check_guest(&q_lines);
    assert_eq!(lines, q_lines, "the guest saw the same card");
    assert_eq!(frame, q_frame, "the same frame on the wire");
}

/// libvirt's form: the tap opened by the management layer and handed down
/// as `-netdev tap,fd=N`, in a private network namespace.
#[test]
fn frames_both_ways_on_a_tap() {
    rvirt_testkit::netns::in_netns(|| {
        let name = "rve1000";
        let tap = Tap::open(name).expect("tap");
        link_up(name).expect("link up");
        let pkt: OwnedFd = packet_socket(name).expect("packet socket");
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial.log");
        let fd: RawFd = tap.raw_fd().expect("a tap has a descriptor");
        let mut args = base_args(&serial);
        args.extend([
            "-netdev".into(),
            format!("tap,id=hostnet0,fd={fd}"),
            "-device".into(),
            "e1000,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pci.0,addr=0x5".into(),
        ]);
        let mut cmd = Command::new(vmm());
        die_with_test(&mut cmd);
        // SAFETY: the hook only calls fcntl, which is async-signal-safe;
        // it clears FD_CLOEXEC on the tap so that rvirt-vmm inherits it.
        unsafe {
            cmd.pre_exec(move || check(libc::fcntl(fd, libc::F_SETFD, 0)).map(|_| ()));
        }
        let vm = Spawned::start(cmd.args(&args).stdin(Stdio::null()));
        drop(tap);
        let mut buf = vec![0u8; 2048];
        let frame = poll("the guest's frame on the tap", T, || {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && contains(&buf[..n as usize], GUEST_PAYLOAD) {
                Ok(buf[..n as usize].to_vec())
            } else {
                Err(format!(
                    "serial:\n{}\n{}",
                    std::fs::read_to_string(&serial).unwrap_or_default(),
                    vm.describe()
                ))
            }
        });
        check_guest_frame(&frame);
        let eth = host_frame();
        // SAFETY: send reads eth.len() bytes from eth.
        let sent = unsafe { libc::send(pkt.as_raw_fd(), eth.as_ptr().cast(), eth.len(), 0) };
        assert_eq!(sent, eth.len() as isize, "{}", io::Error::last_os_error());
        let out = vm.output(T);
        let serial = std::fs::read_to_string(&serial).unwrap_or_default();
        assert!(out.status.success() && output::done(&serial), "{serial}");
        let lines = card_lines(&serial);
        check_guest(&lines);
        assert!(lines.starts_with("E1000 slot=5 "), "{lines}");
    });
}

/// QMP `set_link` reaches the card by its id or its netdev: a guest started
/// with the link down sees STATUS.LU clear and its frame goes nowhere;
/// set up again, the link carries the host's frame to it.
#[test]
fn set_link_takes_the_link_down_and_up() {
    use rvirt_qmp::QmpClient;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("net.sock");
    let qmp_sock = dir.path().join("qmp.sock");
    let serial = dir.path().join("serial.log");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut args = base_args(&serial);
    args.extend([
        "-S".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp_sock.display()),
        "-netdev".into(),
        format!(
            "stream,id=hostnet0,server=off,addr.type=unix,addr.path={}",
            sock.display()
        ),
        "-device".into(),
        "e1000,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56".into(),
    ]);
    let vm = Spawned::start(
        die_with_test(&mut Command::new(vmm()))
            .args(&args)
            .stdin(Stdio::null()),
    );
    listener.set_nonblocking(true).unwrap();
    let mut conn = poll("the VMM's stream connection", T, || {
        listener
            .accept()
            .map(|(c, _)| c)
            .map_err(|e| format!("{e}\n{}", vm.describe()))
    });
    conn.set_nonblocking(false).unwrap();
    let qmp = poll("the monitor", T, || {
        QmpClient::connect(&qmp_sock, T).map_err(|e| e.to_string())
    });
    let link = |name: &str, up: bool| {
        qmp.execute(
            "set_link",
            Some(serde_json::json!({ "name": name, "up": up })),
        )
    };
    assert!(link("nope", false).is_err(), "an unknown NIC is an error");
    link("hostnet0", false).expect("set_link by netdev");
    qmp.execute("cont", None).unwrap();
    let serial_text = || std::fs::read_to_string(&serial).unwrap_or_default();
    let seen = poll("the guest's transmit", T, || {
        let s = serial_text();
        if s.contains("TX_DONE") {
            Ok(s)
        } else {
            Err(format!("serial:\n{s}"))
        }
    });
    assert_eq!(output::value(&seen, "LINK"), Some("0"), "{seen}");
    // Down: the guest's frame went nowhere.
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 4];
    assert!(
        conn.read(&mut b).is_err(),
        "a frame crossed a link that is down"
    );
    link("net0", true).expect("set_link by device id");
    let reply = host_frame();
    conn.write_all(&(reply.len() as u32).to_be_bytes()).unwrap();
    conn.write_all(&reply).unwrap();
    let out = vm.output(T);
    let s = serial_text();
    assert!(out.status.success() && output::done(&s), "{s}");
    assert_eq!(
        output::value(&s, "RX_PAYLOAD").map(str::as_bytes),
        Some(HOST_PAYLOAD),
        "{s}"
    );
}

/// The e1000e guest's lines on either VMM.
fn check_e1000e_guest(lines: &str) {
    assert_eq!(
        output::value(lines, "E1000E"),
        Some("subsystem=0x00008086 class=0x020000 bar0_type=0"),
        "{lines}"
    );
    assert_eq!(
        output::value(lines, "CAPS"),
        Some("01@c8 05@d0 10@e0 11@a0")
    );
    assert_eq!(output::value(lines, "MAC"), Some("52:54:00:12:34:56"));
    assert_eq!(output::value(lines, "EEPROM_SUM"), Some("0xbaba"));
    assert_eq!(output::value(lines, "PHY_ID"), Some("0141:0cb1"));
    assert_eq!(output::value(lines, "LINK"), Some("1"));
    assert_eq!(output::value(lines, "MSIX_CTRL"), Some("0x8004 PBA 0"));
    // The transmit cause on vector 1, then the receive cause on vector 0.
    assert_eq!(
        output::value(lines, "TX_DONE"),
        Some("1 TDH=1 VEC1_PENDING 1"),
        "{lines}"
    );
    assert_eq!(output::value(lines, "RX_LEN"), Some("60 STATUS 0x00000003"));
    assert_eq!(output::value(lines, "RX_FROM"), Some("02:00:00:00:00:01"));
    assert_eq!(
        output::value(lines, "RX_PAYLOAD").map(str::as_bytes),
        Some(&b"hello from the host"[..])
    );
    assert!(lines.contains("\nPBA 3\n"), "{lines}");
    assert_eq!(output::value(lines, "ICR_TXQ0"), Some("1 ICR_RXQ0 1"));
    assert_eq!(output::value(lines, "ICR_AFTER"), Some("0"));
}

/// libvirt 9.0's q35 placement: the card behind a `pcie-root-port`, as
/// JSON; the same command line on QEMU 7.2 must give the same lines and
/// put the same frame on the wire.
const E1000E_DEVICES: [&str; 2] = [
    r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","multifunction":true,"addr":"0x2"}"#,
    r#"{"driver":"e1000e","netdev":"hostnet0","id":"net0","mac":"52:54:00:12:34:56","bus":"pci.1","addr":"0x0","romfile":""}"#,
];

#[test]
fn e1000e_frames_both_ways_behind_a_root_port_as_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, frame) =
        over_stream_with(&vmm(), dir.path(), "q35", Guest::E1000e, &E1000E_DEVICES);
    check_e1000e_guest(&lines);
    assert_eq!(&frame[6..12], &GUEST_MAC);
    assert_eq!(&frame[14..14 + 27], b"hello from the e1000e guest");
    let Some(qemu) = qemu() else { return };
    let (q_lines, q_frame) =
        over_stream_with(&qemu, dir.path(), "q35", Guest::E1000e, &E1000E_DEVICES);
    check_e1000e_guest(&q_lines);
    assert_eq!(lines, q_lines, "the guest saw the same card");
    assert_eq!(frame, q_frame, "the same frame on the wire");
}

/// The e1000e on the root bus of q35 over a tap handed down as `fd=N` in
/// a private network namespace.
#[test]
fn e1000e_frames_both_ways_on_a_tap() {
    rvirt_testkit::netns::in_netns(|| {
        let name = "rve1000e";
        let tap = Tap::open(name).expect("tap");
        link_up(name).expect("link up");
        let pkt: OwnedFd = packet_socket(name).expect("packet socket");
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial.log");
        let fd: RawFd = tap.raw_fd().expect("a tap has a descriptor");
        let mut args = base_args_for(&serial, "q35", Guest::E1000e);
        args.extend([
            "-netdev".into(),
            format!("tap,id=hostnet0,fd={fd}"),
            "-device".into(),
            "e1000e,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pcie.0,addr=0x5".into(),
        ]);
        let mut cmd = Command::new(vmm());
        die_with_test(&mut cmd);
        // SAFETY: the hook only calls fcntl, which is async-signal-safe;
        // it clears FD_CLOEXEC on the tap so that rvirt-vmm inherits it.
        unsafe {
            cmd.pre_exec(move || check(libc::fcntl(fd, libc::F_SETFD, 0)).map(|_| ()));
        }
        let vm = Spawned::start(cmd.args(&args).stdin(Stdio::null()));
        drop(tap);
        let mut buf = vec![0u8; 2048];
        let payload = b"hello from the e1000e guest";
        let frame = poll("the guest's frame on the tap", T, || {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && contains(&buf[..n as usize], payload) {
                Ok(buf[..n as usize].to_vec())
            } else {
                Err(format!(
                    "serial:\n{}\n{}",
                    std::fs::read_to_string(&serial).unwrap_or_default(),
                    vm.describe()
                ))
            }
        });
        assert_eq!(&frame[6..12], &GUEST_MAC);
        let eth = host_frame();
        // SAFETY: send reads eth.len() bytes from eth.
        let sent = unsafe { libc::send(pkt.as_raw_fd(), eth.as_ptr().cast(), eth.len(), 0) };
        assert_eq!(sent, eth.len() as isize, "{}", io::Error::last_os_error());
        let out = vm.output(T);
        let serial = std::fs::read_to_string(&serial).unwrap_or_default();
        assert!(out.status.success() && output::done(&serial), "{serial}");
        check_e1000e_guest(&card_lines(&serial));
    });
}
