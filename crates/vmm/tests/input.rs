//! The console's input reaching the guest: a real VNC client (vncdotool)
//! types and moves the pointer, the `ps2` guest echoes what its i8042
//! delivers; QEMU 7.2 with the same command line must deliver the same
//! bytes.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_testkit::wait_listening;

const T: Duration = Duration::from_secs(90);

/// One step of the client and the bytes the guest gets from it; the next
/// step waits until they have all arrived, so no event outruns the guest's
/// polling (a controller hands keyboard bytes out before mouse bytes, and
/// a full queue drops events, in QEMU as in rvirt).
const STEPS: &[(&[&str], usize)] = &[
    (&["key", "a"], 2),
    (&["key", "enter"], 2),
    (&["key", "up"], 4),
    // The first position is no motion and reports nothing.
    (&["move", "100", "50", "move", "110", "45"], 4),
    (&["click", "1"], 8),
    (&["click", "3"], 8),
    (&["key", "esc"], 2),
];

/// The `KBD`/`AUX` lines after `PS2_READY`.
fn delivered(out: &str) -> usize {
    out.lines()
        .skip_while(|l| *l != "PS2_READY")
        .filter(|l| l.starts_with("KBD ") || l.starts_with("AUX "))
        .count()
}

/// Boots the `ps2` guest with `start(vnc_socket)`, drives the client
/// through [`STEPS`] and returns the guest's serial lines.
fn typed(start: impl FnOnce(&Path) -> Spawned) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let mut vm = start(&sock);
    vm.line_with("PS2_READY", T);
    drive_vnc_steps(&mut vm, &sock, STEPS, "bytes", delivered, T);
    let status = vm.wait(T);
    let text = vm.stdout_text();
    assert!(status.success(), "{status}: {text}\n{}", vm.stderr_text());
    text.lines()
        .take_while(|l| !l.starts_with("POWEROFF"))
        .map(str::to_string)
        .collect()
}

fn rvirt(sock: &Path) -> Spawned {
    let vnc = format!("unix:{}", sock.display());
    let guest = Guest::Ps2.path();
    let s = spawn(&[
        "-M",
        "pc",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-vnc",
        &vnc,
        "-serial",
        "stdio",
        "-kernel",
        guest.to_str().unwrap(),
    ]);
    wait_listening(sock, T);
    s
}

fn qemu(sock: &Path) -> Spawned {
    let vnc = format!("unix:{}", sock.display());
    let s = Spawned::start(
        die_with_test(&mut Command::new("qemu-system-x86_64"))
            .args(["-M", "pc", "-enable-kvm", "-cpu", "qemu64,-pni"])
            .args(["-m", "128", "-nodefaults", "-display", "none"])
            // QEMU's VNC sends keys to the guest only from a graphical
            // console (a text console keeps them); rvirt's console takes
            // no display device for that.
            .args(["-vga", "std"])
            .args(["-vnc", &vnc, "-serial", "stdio", "-kernel"])
            .arg(Guest::Ps2.path())
            .stdin(Stdio::null()),
    );
    wait_listening(sock, T);
    s
}

#[test]
fn ps2_keys_and_pointer_from_a_vnc_client_as_qemu() {
    if !have_vncdotool() {
        return;
    }
    let ours = typed(rvirt);
    let expect_in_order = [
        "SELFTEST 55",
        "CTR 44",
        "KBD_RESET fa aa",
        "KBD_ID fa ab 41",
        "KBD_SET_ARG fa 41",
        "KBD_ENABLE fa",
        "AUX_RESET fa aa 0",
        "AUX_ID fa 3",
        "AUX_STATUS fa 0 3 50",
        "PS2_READY",
        // a, Enter, Up (E0 48), translated to set 1.
        "KBD 1e",
        "KBD 9e",
        "KBD 1c",
        "KBD 9c",
        "KBD e0",
        "KBD 48",
        "KBD e0",
        "KBD c8",
        // The first position is no motion; then 10 right, 5 up, in
        // IntelliMouse packets (four bytes).
        "AUX 8",
        "AUX a",
        "AUX 5",
        "AUX 0",
        // Left pressed and released, then right.
        "AUX 9",
        "AUX 0",
        "AUX 0",
        "AUX 0",
        "AUX 8",
        "AUX 0",
        "AUX 0",
        "AUX 0",
        "AUX a",
    ];
    let mut at = 0;
    for want in expect_in_order {
        match ours[at..].iter().position(|l| l == want) {
            Some(i) => at += i + 1,
            None => panic!("{want:?} missing after line {at}:\n{ours:#?}"),
        }
    }
    assert_eq!(ours.last().map(String::as_str), Some("KBD 81"), "{ours:#?}");

    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let theirs = typed(qemu);
    assert_eq!(ours, theirs, "rvirt (left) and QEMU (right)");
}

/// The `EV` lines the `vinput` guest printed.
fn events(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("EV "))
        .map(str::to_string)
        .collect()
}

#[test]
fn virtio_keyboard_and_tablet_from_a_vnc_client() {
    if !have_vncdotool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let vnc = format!("unix:{}", sock.display());
    let guest = Guest::Vinput.path();
    let mut vm = spawn(&[
        "-m",
        "128",
        "-vnc",
        &vnc,
        "-serial",
        "stdio",
        "-device",
        "virtio-keyboard-device,id=kbd",
        "-device",
        "virtio-tablet-device,id=tablet",
        "-device",
        "virtio-mouse-device,id=mouse",
        "-kernel",
        guest.to_str().unwrap(),
    ]);
    vm.line_with("VINPUT_READY 3", T);
    // The configuration answers, as QEMU 7.2's devices give them.
    let out = vm.stdout_text();
    for want in [
        "INPUT 0 NAME QEMU Virtio Keyboard",
        "INPUT 0 SERIAL 0",
        "  DEVIDS 8 6 0 27 6 1 0 1 0",
        "  EV_BITS 11 size 1 bits 3",
        "  EV_BITS 14 size 1 bits 0",
        "INPUT 1 NAME QEMU Virtio Tablet",
        "  DEVIDS 8 6 0 27 6 3 0 2 0",
        "  EV_BITS 1 size 43 bits 7",
        "  EV_BITS 2 size 2 bits 1",
        "  EV_BITS 3 size 1 bits 2",
        "  ABS 0 min 0 max 32767",
        "  ABS 1 min 0 max 32767",
        "INPUT 2 NAME QEMU Virtio Mouse",
        "  DEVIDS 8 6 0 27 6 2 0 2 0",
        "  EV_BITS 2 size 2 bits 3",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} missing:\n{out}");
    }
    let steps: &[(&[&str], usize)] = &[
        (&["key", "a"], 4),
        (&["move", "100", "50"], 3),
        (&["click", "1"], 8),
        // The guest stops at Escape's release, before its SYN_REPORT.
        (&["key", "esc"], 3),
    ];
    drive_vnc_steps(&mut vm, &sock, steps, "events", |out| events(out).len(), T);
    assert!(vm.wait(T).success(), "{}", vm.stderr_text());
    // Keys on the keyboard (KEY_A 30, KEY_ESC 1), the pointer on the
    // tablet scaled to 0..32767 over 640x480 (100 -> 5119, 50 -> 3413),
    // nothing on the mouse while the tablet runs.
    assert_eq!(
        events(&vm.stdout_text()),
        [
            "EV 0 1 1e 1",
            "EV 0 0 0 0",
            "EV 0 1 1e 0",
            "EV 0 0 0 0",
            "EV 1 3 0 13ff",
            "EV 1 3 1 d55",
            "EV 1 0 0 0",
            "EV 1 1 110 1",
            "EV 1 3 0 13ff",
            "EV 1 3 1 d55",
            "EV 1 0 0 0",
            "EV 1 1 110 0",
            "EV 1 3 0 13ff",
            "EV 1 3 1 d55",
            "EV 1 0 0 0",
            "EV 0 1 1 1",
            "EV 0 0 0 0",
            "EV 0 1 1 0",
        ]
    );
    // The Caps Lock LED the guest set came back through the status queue.
    assert_eq!(
        vm.stdout_text()
            .lines()
            .filter(|l| l.starts_with("STATUS"))
            .count(),
        3
    );
}

#[test]
fn virtio_input_pci_on_pc() {
    if !have_vncdotool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let vnc = format!("unix:{}", sock.display());
    let guest = Guest::Vinput.path();
    let mut vm = spawn(&[
        "-M",
        "pc",
        "-m",
        "128",
        "-vnc",
        &vnc,
        "-serial",
        "stdio",
        "-device",
        r#"{"driver":"virtio-tablet-pci","id":"input0","bus":"pci.0","addr":"0x5"}"#,
        "-device",
        "virtio-keyboard-pci,id=input1",
        "-kernel",
        guest.to_str().unwrap(),
    ]);
    vm.line_with("VINPUT_READY 2", T);
    let out = vm.stdout_text();
    // In PCI scan order: the keyboard took slot 2, the tablet is at 5.
    assert!(out.contains("INPUT 0 NAME QEMU Virtio Keyboard"), "{out}");
    assert!(out.contains("INPUT 1 NAME QEMU Virtio Tablet"), "{out}");
    let mut client = Spawned::start(
        die_with_test(&mut Command::new("python3"))
            .arg(vnc_client_script())
            .args([
                sock.to_str().unwrap(),
                "move",
                "320",
                "240",
                "sync",
                "key",
                "esc",
            ])
            .stdin(Stdio::piped()),
    );
    vm.line_with("EV 1 0 0 0", T);
    client.line_with("sync", T);
    client.stdin().write_all(b"\n").unwrap();
    client.line_with("ok", T);
    assert!(vm.wait(T).success(), "{}", vm.stderr_text());
    assert_eq!(
        events(&vm.stdout_text()),
        [
            "EV 1 3 0 3fff",
            "EV 1 3 1 3fff",
            "EV 1 0 0 0",
            "EV 0 1 1 1",
            "EV 0 0 0 0",
            "EV 0 1 1 0",
        ]
    );
}
