//! rvirt-vmm's VNC console: `-vnc` on the command line, its QMP commands
//! and events compared with QEMU 7.2 doing the same, and the blank screen
//! served while no display device exists.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use rvirt_testkit::{read_exact, run};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/vnc_qmp.py")
}

/// A TCP port nobody listens on now (a display number for `-vnc`).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs the QMP script against a VMM started by `start(qmp, vnc)`, with
/// a TCP listener (`tcp`) or `-vnc none`.
fn transcript(tcp: bool, start: impl FnOnce(&str, &str) -> Spawned) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let port = free_port();
    let (vnc, arg) = match tcp {
        true => (
            format!("127.0.0.1:{},password=on", port - 5900),
            port.to_string(),
        ),
        false => ("none".to_string(), "none".to_string()),
    };
    let mut vmm = start(&format!("unix:{},server=on,wait=off", sock.display()), &vnc);
    let out = run(Command::new("python3").arg(script()).arg(&sock).arg(arg), T);
    assert!(
        out.status.success(),
        "vnc_qmp.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vmm.describe()
    );
    vmm.wait(T);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn qmp_vnc_commands_and_events_match_qemu() {
    compare_with_qemu(true);
}

#[test]
fn qmp_vnc_none_matches_qemu() {
    compare_with_qemu(false);
}

fn compare_with_qemu(tcp: bool) {
    let guest = Guest::Hello.path();
    let ours = transcript(tcp, |qmp, vnc| {
        spawn(&[
            "-S",
            "-qmp",
            qmp,
            "-vnc",
            vnc,
            "-kernel",
            guest.to_str().unwrap(),
        ])
    });
    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let theirs = transcript(tcp, |qmp, vnc| {
        Spawned::start(
            die_with_test(&mut Command::new("qemu-system-x86_64"))
                .args(["-machine", "none", "-nodefaults", "-display", "none"])
                .args(["-qmp", qmp, "-vnc", vnc]),
        )
    });
    for part in ["replies", "vnc", "events"] {
        let (a, b) = (&ours[part], &theirs[part]);
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x, y, "{part}[{i}]: rvirt (left) and QEMU (right) differ");
        }
        assert_eq!(
            a.len(),
            b.len(),
            "{part}: rvirt has {} entries, QEMU {}",
            a.len(),
            b.len()
        );
    }
}

#[test]
fn blank_screen_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    // A stale socket file is replaced, as QEMU does.
    std::fs::write(&sock, b"").unwrap();
    let guest = Guest::Hello.path();
    let vnc = format!("unix:{}", sock.display());
    let _vmm = spawn(&["-S", "-vnc", &vnc, "-kernel", guest.to_str().unwrap()]);
    let mut c = poll("the VNC socket", T, || {
        std::os::unix::net::UnixStream::connect(&sock).map_err(|e| e.to_string())
    });
    assert_eq!(read_exact(&mut c, 12, T), b"RFB 003.008\n");
    c.write_all(b"RFB 003.008\n").unwrap();
    assert_eq!(read_exact(&mut c, 2, T), [1, 1]);
    c.write_all(&[1]).unwrap();
    assert_eq!(read_exact(&mut c, 4, T), [0, 0, 0, 0]);
    c.write_all(&[1]).unwrap();
    let init = read_exact(&mut c, 24, T);
    assert_eq!(&init[..4], &[2, 128, 1, 224], "640x480");
    let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
    assert_eq!(read_exact(&mut c, name_len, T), b"rvirt");
    c.write_all(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224]).unwrap();
    let head = read_exact(&mut c, 16, T);
    assert_eq!(&head[..4], &[0, 0, 0, 1]);
    let pixels = read_exact(&mut c, 640 * 480 * 4, T);
    assert!(pixels.iter().all(|&b| b == 0), "the screen is not blank");
    let mut rest = [0u8; 1];
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c.read(&mut rest).is_err(), "more than one update");
}

#[test]
fn vnc_options_refused_with_one_line() {
    let guest = Guest::Hello.path();
    let kernel = guest.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = format!("127.0.0.1:{}", port - 5900);
    let cases = [
        (
            ":0,websocket=5700",
            "rvirt-vmm: -vnc: websocket is not supported".to_string(),
        ),
        (
            "localhost",
            "rvirt-vmm: -vnc: 'localhost': no display number (HOST:DISPLAY)".into(),
        ),
        (
            busy.as_str(),
            format!("rvirt-vmm: -vnc: cannot listen on 127.0.0.1:{port}: "),
        ),
    ];
    for (arg, line) in cases {
        let out = wait(spawn(&["-vnc", arg, "-kernel", kernel]), T);
        assert_eq!(out.status.code(), Some(1), "-vnc {arg}: {}", out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&line),
            "-vnc {arg}: {first:?} is not {line:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "-vnc {arg}: {}", out.stderr);
    }
}

/// `screendump` of the display the VNC server shows, into a path (written
/// atomically) or into a file passed with `add-fd`, which is how a
/// confined VMM gets it: under `-sandbox on` a path is refused.
#[test]
fn screendump_to_a_path_and_to_an_fd_set() {
    use std::os::fd::AsFd;
    let dir = tempfile::tempdir().unwrap();
    let guest = Guest::Hello.path();
    let mut ppm = b"P6\n640 480\n255\n".to_vec();
    ppm.resize(ppm.len() + 640 * 480 * 3, 0);
    for sandbox in ["off", "on"] {
        let sock = dir.path().join(format!("qmp-{sandbox}.sock"));
        let qmp = format!("unix:{},server=on,wait=off", sock.display());
        let _vmm = spawn(&[
            "-S",
            "-sandbox",
            sandbox,
            "-qmp",
            &qmp,
            "-vnc",
            "none",
            "-kernel",
            guest.to_str().unwrap(),
        ]);
        let c = qmp_connect(&sock, T);
        let err = |cmd: &str, args: Value| match c.execute(cmd, Some(args)) {
            Err(rvirt_qmp::ClientError::Command { error, .. }) => error.desc,
            other => panic!("{cmd}: {other:?}"),
        };
        let path = dir.path().join(format!("shot-{sandbox}.ppm"));
        let args = serde_json::json!({"filename": path});
        if sandbox == "off" {
            c.execute("screendump", Some(args)).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), ppm);
            let png = dir.path().join("shot.png");
            let args = serde_json::json!({"filename": png, "format": "png"});
            c.execute("screendump", Some(args)).unwrap();
            let png = std::fs::read(&png).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: width and height.
            assert_eq!(&png[16..24], &[0, 0, 2, 128, 0, 0, 1, 224]);
        } else {
            let e = err("screendump", args);
            assert!(e.contains("add-fd"), "{e}");
            assert!(!path.exists());
        }
        // Into a file the client opened, as rvirtd passes it.
        let file = std::fs::File::create(dir.path().join(format!("fd-{sandbox}.ppm"))).unwrap();
        let added = c.execute_with_fd("add-fd", None, file.as_fd()).unwrap();
        let set = added["fdset-id"].as_u64().unwrap();
        let target = format!("/dev/fdset/{set}");
        c.execute("screendump", Some(serde_json::json!({"filename": target})))
            .unwrap();
        let got = std::fs::read(dir.path().join(format!("fd-{sandbox}.ppm"))).unwrap();
        assert_eq!(got, ppm);
        c.execute("remove-fd", Some(serde_json::json!({"fdset-id": set})))
            .unwrap();
        let e = err("screendump", serde_json::json!({"filename": target}));
        assert!(e.starts_with(&format!("Could not open '{target}'")), "{e}");
        let e = err("remove-fd", serde_json::json!({"fdset-id": set}));
        assert_eq!(
            e,
            format!("File descriptor named 'fdset-id:{set}' not found")
        );
        // QEMU 7.2's answers to bad arguments.
        let e = err(
            "screendump",
            serde_json::json!({"filename": target, "format": "bmp"}),
        );
        assert_eq!(e, "Parameter 'format' does not accept value 'bmp'");
        let e = err(
            "screendump",
            serde_json::json!({"filename": target, "head": 1}),
        );
        assert_eq!(e, "'head' must be specified together with 'device'");
        let e = err("add-fd", serde_json::json!({}));
        assert_eq!(e, "No file descriptor supplied via SCM_RIGHTS");
    }
}

/// Without a display (no `-vnc`), QEMU's answer.
#[test]
fn screendump_without_a_display() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let guest = Guest::Hello.path();
    let _vmm = spawn(&["-S", "-qmp", &qmp, "-kernel", guest.to_str().unwrap()]);
    let c = qmp_connect(&sock, T);
    let path = dir.path().join("x.ppm");
    match c.execute("screendump", Some(serde_json::json!({"filename": path}))) {
        Err(rvirt_qmp::ClientError::Command { error, .. }) => {
            assert_eq!(error.desc, "There is no QemuConsole I can screendump from.")
        }
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
}
