//! USB through the real binary: the `usb` test guest drives the qemu-xhci
//! as a driver does (port reset, Enable Slot, Address Device, the
//! descriptors, SET_CONFIGURATION, SET_IDLE, a STALL and its recovery,
//! the interrupt endpoint) and prints what a usb-tablet and a usb-kbd
//! answer, then the HID reports a real VNC client (vncdotool) causes.
//! QEMU 7.2 with the same command line must print the same lines.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_testkit::wait_listening;

const T: Duration = Duration::from_secs(90);

/// One step of the client and the reports it causes; the next step waits
/// for them, so the order of the two devices' reports is fixed.
const STEPS: &[(&[&str], usize)] = &[
    (&["key", "a"], 2),
    (&["move", "100", "50"], 1),
    (&["click", "1"], 2),
    (&["key", "esc"], 2),
];

/// The options both VMMs get. QEMU's VNC sends keys only from a graphical
/// console, hence the std VGA; the controller's slot is fixed, as the
/// devices' serial numbers name it.
fn args(vnc: &Path) -> Vec<String> {
    let reports: usize = STEPS.iter().map(|s| s.1).sum();
    [
        "-M",
        "pc",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-vga",
        "std",
        "-serial",
        "stdio",
        "-device",
        "qemu-xhci,id=usb,addr=0x4",
        "-device",
        "usb-tablet,id=input0,bus=usb.0,port=1",
        "-device",
        "usb-kbd,id=input1,bus=usb.0,port=2",
        "-kernel",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        Guest::Usb.path().display().to_string(),
        "-append".into(),
        format!("usb.reports={reports}"),
        "-vnc".into(),
        format!("unix:{}", vnc.display()),
    ])
    .collect()
}

/// The tablet's report bytes for the client's (100, 50) on a `w` x `h`
/// console: QEMU's scaling to 0..0x7fff (`100 * 0x7fff / w`).
fn position(w: u32, h: u32) -> String {
    let (x, y) = (100 * 0x7fff / w, 50 * 0x7fff / h);
    format!(
        "{:02x} {:02x} {:02x} {:02x}",
        x & 0xff,
        x >> 8,
        y & 0xff,
        y >> 8
    )
}

/// The lines with the tablet's position masked: the consoles differ in
/// size (QEMU's SeaBIOS leaves the std VGA in 80x25 text mode, 720x400,
/// before it loads the kernel; rvirt boots the kernel itself and the VGA
/// shows 640x480), so each VMM's position is checked against its own.
fn masked(lines: &[String], pos: &str) -> Vec<String> {
    lines.iter().map(|l| l.replace(pos, "<position>")).collect()
}

fn reports(out: &str) -> usize {
    out.lines().filter(|l| l.starts_with("REPORT ")).count()
}

/// Boots the guest with `start(args)`, drives the client through
/// [`STEPS`] and returns the guest's serial lines.
fn enumerated(start: impl FnOnce(&[String]) -> Spawned) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let mut vm = start(&args(&sock));
    wait_listening(&sock, T);
    vm.line_with("READY 2", T);
    drive_vnc_steps(&mut vm, &sock, STEPS, "reports", reports, T);
    let status = vm.wait(T);
    let text = vm.stdout_text();
    assert!(status.success(), "{status}: {text}\n{}", vm.stderr_text());
    text.lines()
        .take_while(|l| !l.starts_with("POWEROFF"))
        .map(str::to_string)
        .collect()
}

/// rvirt-vmm confined as rvirtd runs it: the doorbells on the vCPU
/// threads and the input's wake-ups on the device thread pass its seccomp
/// filters.
fn rvirt(args: &[String]) -> Spawned {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend([
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]);
    spawn(&args)
}

fn qemu(args: &[String]) -> Spawned {
    Spawned::start(
        die_with_test(&mut Command::new("qemu-system-x86_64"))
            .args(["-enable-kvm", "-cpu", "qemu64,-pni"])
            .args(args)
            .stdin(Stdio::null()),
    )
}

#[test]
fn usb_tablet_and_keyboard_from_a_vnc_client_as_qemu() {
    if !have_vncdotool() {
        return;
    }
    let ours = enumerated(rvirt);
    let text = ours.join("\n");
    for want in [
        "XHCI bus=0 class=0c0330 rev=1 subsystem=11001af4 bar0_type=4",
        // HCIVERSION 1.0, 8 ports, 16 interrupters, 64 slots; the USB 2
        // ports after the 4 USB 3 ones.
        "CAPS 01000040 08001040 0000000f 00087001 00002000 00001000",
        "PROTOCOLS 02000402 20425355 00000405 03000002 20425355 00000401",
        // usb port 1 is xHCI port 5 (p3 + 1), high speed.
        "PORT 5 portsc=00020ee1 speed=3",
        "PORT 5 RESET event=34 port=5 portsc=00220e03",
        "ADDRESS_DEVICE cc=1 state=2 address=1",
        "DEVICE 18 12 01 00 02 00 00 00 40 27 06 01 00 00 00 01 03 0a 01",
        "CONFIG 34 09 02 22 00 01 01 07 a0 32 09 04 00 00 01 03 00 00 00 09 21 01 00 00 01 22 4a 00 07 05 81 03 08 00 04",
        "STRING 3 cc=1 QEMU USB Tablet",
        "STRING 10 cc=1 28754-0000:00:04.0-1",
        "STRING 4 cc=1 QEMU USB Keyboard",
        "STRING 11 cc=1 68284-0000:00:04.0-2",
        // The tablet has no boot protocol: a STALL, then recovered.
        "GET_PROTOCOL cc=6 value=0",
        "STALL ep0_state=2 reset=1 set_dequeue=1",
        "SET_REPORT leds cc=1",
        "CONFIGURE_ENDPOINT cc=1 state=3 ep=1",
        "READY 2",
    ] {
        assert!(ours.iter().any(|l| l == want), "{want:?} missing:\n{text}");
    }
    // Slot 2 (the keyboard): 'a' pressed (usage 4) and released; slot 1
    // (the tablet): the position, scaled to 0..0x7fff over the console,
    // the left button pressed and released there; Escape (usage 0x29).
    let got: Vec<&str> = ours
        .iter()
        .filter(|l| l.starts_with("REPORT "))
        .map(String::as_str)
        .collect();
    assert_eq!(got.len(), 7, "{text}");
    assert_eq!(got[0], "REPORT 2 cc=1 8 00 00 04 00 00 00 00 00");
    assert_eq!(got[1], "REPORT 2 cc=1 8 00 00 00 00 00 00 00 00");
    let pos = position(640, 480);
    assert_eq!(got[2], format!("REPORT 1 cc=13 6 00 {pos} 00"), "{text}");
    assert_eq!(got[3], format!("REPORT 1 cc=13 6 01 {pos} 00"));
    assert_eq!(got[4], format!("REPORT 1 cc=13 6 00 {pos} 00"));
    assert_eq!(got[5], "REPORT 2 cc=1 8 00 00 29 00 00 00 00 00");
    assert_eq!(ours.last().map(String::as_str), Some("DONE 7"), "{text}");

    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let theirs = enumerated(qemu);
    let their_pos = position(720, 400);
    assert!(
        theirs.iter().any(|l| l.contains(&their_pos)),
        "{}",
        theirs.join("\n")
    );
    assert_eq!(
        masked(&ours, &pos),
        masked(&theirs, &their_pos),
        "rvirt (left) and QEMU (right)"
    );
}

/// libvirt's q35 placement: the controller alone behind a root port.
fn behind_a_root_port() -> Vec<String> {
    [
        "-M",
        "q35",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","multifunction":true,"addr":"0x2"}"#,
        "-device",
        r#"{"driver":"qemu-xhci","p2":15,"p3":15,"id":"usb","bus":"pci.1","addr":"0x0"}"#,
        "-device",
        r#"{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}"#,
        "-append",
        "usb.reports=0",
        "-kernel",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([Guest::Usb.path().display().to_string()])
    .collect()
}

#[test]
fn a_controller_behind_a_root_port_as_qemu() {
    let run = |vm: Spawned| -> Vec<String> {
        let out = vm.output(T);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        text.lines()
            .take_while(|l| !l.starts_with("POWEROFF"))
            .map(str::to_string)
            .collect()
    };
    let ours = run(rvirt(&behind_a_root_port()));
    let text = ours.join("\n");
    for want in [
        "XHCI bus=1 class=0c0330 rev=1 subsystem=11001af4 bar0_type=4",
        // 15 + 15 ports: usb port 1 is xHCI port 16.
        "CAPS 01000040 1e001040 0000000f 00087001 00002000 00001000",
        "PORT 16 portsc=00020ee1 speed=3",
        "STRING 10 cc=1 28754-0000:00:02.0:00.0-1",
        "READY 1",
        "DONE 0",
    ] {
        assert!(ours.iter().any(|l| l == want), "{want:?} missing:\n{text}");
    }
    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        return;
    }
    let theirs = run(qemu(&behind_a_root_port()));
    assert_eq!(ours, theirs, "rvirt (left) and QEMU (right)");
}

#[test]
fn query_pci_shows_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let qmp = dir.path().join("qmp.sock");
    let mut vm = spawn(&[
        "-M",
        "q35",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "none",
        "-S",
        "-qmp",
        &format!("unix:{},server=on,wait=off", qmp.display()),
        "-device",
        r#"{"driver":"qemu-xhci","p2":15,"p3":15,"id":"usb","bus":"pcie.0","addr":"0x5"}"#,
        "-device",
        r#"{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}"#,
        "-kernel",
        Guest::Hello.path().to_str().unwrap(),
    ]);
    wait_listening(&qmp, T);
    let reply = qmp_command(&qmp, r#"{"execute":"query-pci"}"#);
    let devices = reply["return"][0]["devices"].as_array().unwrap().clone();
    let x = devices
        .iter()
        .find(|d| d["slot"] == 5)
        .unwrap_or_else(|| panic!("no function in slot 5: {reply}"));
    assert_eq!(x["qdev_id"], "usb");
    assert_eq!(x["id"]["vendor"], 0x1b36);
    assert_eq!(x["id"]["device"], 0x000d);
    assert_eq!(x["class_info"]["class"], 0x0c03);
    assert_eq!(x["class_info"]["desc"], "USB controller");
    assert_eq!(x["regions"][0]["size"], 0x4000);
    assert_eq!(x["regions"][0]["mem_type_64"], true);
    vm.kill();
}

/// One QMP command after the greeting and capabilities: its reply.
fn qmp_command(path: &Path, command: &str) -> serde_json::Value {
    use std::io::{BufRead, BufReader};
    let s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    writeln!(w, r#"{{"execute":"qmp_capabilities"}}"#).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    writeln!(w, "{command}").unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("return").is_some() || v.get("error").is_some() {
            return v;
        }
    }
}
