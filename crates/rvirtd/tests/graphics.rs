//! The graphical console through rvirtd with the real clients: VNC ports
//! from 5900 in the live XML, virsh vncdisplay/domdisplay/screenshot, a
//! VNC client (vncdotool) capturing the screen virsh's screenshot also
//! shows, libvirt-python's openGraphicsFD speaking RFB, graphics rvirt
//! does not serve refused with one line.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{display_pattern, display_xml, domain_xml, first_difference, have_virsh, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{run, try_run};

const LIMIT: Duration = Duration::from_secs(60);

/// A ticking microvm guest with a VNC console (`graphics` inside
/// `<devices>`) and no display device: the VNC server shows its blank
/// screen until display devices exist.
fn vnc_xml(name: &str, graphics: &str) -> String {
    domain_xml(name, Guest::Ticker).replace(
        "<memballoon model='none'/>",
        &format!(
            "<memballoon model='none'/>\n    {graphics}\n    <video><model type='none'/></video>"
        ),
    )
}

/// The VNC port a live definition shows.
fn vnc_port(live: &str) -> u16 {
    live.split("<graphics type='vnc' port='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no VNC port in {live}"))
}

/// The pixels of a binary PPM (P6, maxval 255): width, height, RGB.
fn read_ppm(p: &Path) -> (usize, usize, Vec<u8>) {
    let data = std::fs::read(p).unwrap();
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, data[i + 1..].to_vec())
}

fn have_vncdotool() -> bool {
    let found = try_run(
        Command::new("python3").args(["-c", "import vncdotool"]),
        LIMIT,
    )
    .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "vncdotool is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh"
        );
        eprintln!("vncdotool not installed: its capture is skipped");
    }
    found
}

/// A Python with libvirt-python (Debian's, when a pyenv one is first).
fn python_with_libvirt() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        try_run(Command::new(py).args(["-c", "import libvirt"]), LIMIT)
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "python3-libvirt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
    }
    found
}

/// vncdotool's command line (`vncdo`) captures PNG only: the capture is
/// saved as PNG, then written as PPM by PIL (vncdotool's own dependency).
const CAPTURE: &str = r#"
import subprocess, sys
from PIL import Image
server, password, out = sys.argv[1:4]
png = out + ".png"
cmd = ["vncdo", "-s", server, "--timeout", "30"]
if password:
    cmd += ["-p", password]
subprocess.run(cmd + ["capture", png], check=True, timeout=50)
Image.open(png).convert("RGB").save(out, "PPM")
"#;

const OPEN_GRAPHICS_FD: &str = r#"
import libvirt, socket, sys
c = libvirt.open(sys.argv[1])
d = c.lookupByName(sys.argv[2])
fd = d.openGraphicsFD(0, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
s = socket.socket(fileno=fd)
s.settimeout(20)
def exact(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        assert chunk, "closed"
        b += chunk
    return b
version = exact(12)
s.sendall(version)
n = exact(1)[0]
types = list(exact(n))
print(version.decode().strip(), types)
try:
    d.openGraphicsFD(1, 0)
except libvirt.libvirtError as e:
    print(e.get_error_message())
"#;

/// openGraphics (DOMAIN_OPEN_GRAPHICS, 249): the client's own socket,
/// passed with the call, becomes a VNC client (SKIPAUTH as asked); then
/// the errors libvirt gives: a missing graphics index, unknown flags.
/// Prints the version, the security types and the screen's size.
const OPEN_GRAPHICS: &str = r#"
import libvirt, socket, struct, sys
c = libvirt.open(sys.argv[1])
d = c.lookupByName(sys.argv[2])
if sys.argv[3] == "stopped":
    a, b = socket.socketpair()
    try:
        d.openGraphics(0, b.fileno(), 0)
    except libvirt.libvirtError as e:
        print(e.get_error_code(), e.get_error_message())
    sys.exit(0)
s, theirs = socket.socketpair()
d.openGraphics(0, theirs.fileno(), libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
theirs.close()
s.settimeout(20)
def exact(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        assert chunk, "closed"
        b += chunk
    return b
version = exact(12)
s.sendall(version)
n = exact(1)[0]
types = list(exact(n))
s.sendall(bytes([types[0]]))
assert exact(4) == b"\0\0\0\0", "security result"
s.sendall(b"\x01")
w, h = struct.unpack(">HH", exact(4))
print(version.decode().strip(), types, f"{w}x{h}")
for idx, flags in ((1, 0), (0, 2)):
    a, b = socket.socketpair()
    try:
        d.openGraphics(idx, b.fileno(), flags)
    except libvirt.libvirtError as e:
        print(e.get_error_code(), e.get_error_message())
"#;

/// A VNC client on the TCP port (security None), seen through
/// libvirt-python's graphics event callback.
const GRAPHICS_EVENTS: &str = r#"
import libvirt, socket, sys, threading, time
libvirt.virEventRegisterDefaultImpl()
c = libvirt.open(sys.argv[1])
seen = []
def on_graphics(conn, dom, phase, local, remote, auth, subject, opaque):
    seen.append((dom.name(), phase, local["family"], local["node"], local["service"], remote["node"], auth, subject))
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_GRAPHICS, on_graphics, None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=20)
v = s.recv(12); s.sendall(v)
assert s.recv(2) == b"\x01\x01"
s.sendall(b"\x01")
assert s.recv(4) == b"\x00\x00\x00\x00"
s.sendall(b"\x01")
s.recv(24)
s.close()
deadline = time.time() + 20
while len(seen) < 3 and time.time() < deadline:
    time.sleep(0.05)
for e in seen:
    print(*e)
"#;

#[test]
fn vnc_console_through_virsh_a_vnc_client_and_libvirt_python() {
    if !have_virsh() {
        return;
    }
    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let a = d.xml_file(
        "a.xml",
        &vnc_xml("gfx-a", "<graphics type='vnc' port='-1' autoport='yes'/>"),
    );
    let b = d.xml_file(
        "b.xml",
        &vnc_xml(
            "gfx-b",
            "<graphics type='vnc' autoport='yes' passwd='s3cret'><listen type='address' address='127.0.0.1'/></graphics>",
        ),
    );
    d.ok(&["define", &a]);
    d.ok(&["define", &b]);
    d.ok(&["start", "gfx-a"]);
    d.ok(&["start", "gfx-b"]);

    // Each VM its port, the lowest free from 5900 (all free in this
    // test's namespace), shown in the live XML as libvirt's.
    let live_a = d.ok(&["dumpxml", "gfx-a"]);
    let (pa, pb) = (vnc_port(&live_a), vnc_port(&d.ok(&["dumpxml", "gfx-b"])));
    assert_eq!((pa, pb), (5900, 5901));
    assert!(
        live_a.contains(&format!(
            "<graphics type='vnc' port='{pa}' autoport='yes' listen='127.0.0.1'>\n      <listen type='address' address='127.0.0.1'/>\n    </graphics>"
        )),
        "{live_a}"
    );
    let inactive = d.ok(&["dumpxml", "--inactive", "gfx-a"]);
    assert!(
        inactive.contains("<graphics type='vnc' port='-1' autoport='yes'"),
        "{inactive}"
    );

    // virsh's own formatting of what the XML says.
    let disp = |p: u16| format!("127.0.0.1:{}", p - 5900);
    assert_eq!(d.ok(&["vncdisplay", "gfx-a"]).trim(), disp(pa));
    assert_eq!(
        d.ok(&["domdisplay", "gfx-a"]).trim(),
        format!("vnc://{}", disp(pa))
    );
    assert_eq!(
        d.ok(&["domdisplay", "gfx-b"]).trim(),
        format!("vnc://{}", disp(pb))
    );
    // The password only with --security-info (--include-password asks it).
    assert!(!d.ok(&["dumpxml", "gfx-b"]).contains("s3cret"));
    assert!(d
        .ok(&["dumpxml", "--security-info", "gfx-b"])
        .contains("passwd='s3cret'"));
    assert_eq!(
        d.ok(&["domdisplay", "--include-password", "gfx-b"]).trim(),
        format!("vnc://:s3cret@{}", disp(pb))
    );

    // virsh screenshot: a PPM of the screen.
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("virsh.ppm");
    let out = d.ok(&["screenshot", "gfx-a", shot.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        format!(
            "Screenshot saved to {}, with type of image/x-portable-pixmap",
            shot.display()
        )
    );
    let (w, h, ours) = read_ppm(&shot);
    assert_eq!((w, h), (640, 480));

    // A real VNC client on the port sees the same picture.
    if have_vncdotool() {
        let client = dir.path().join("client.ppm");
        let server = format!("127.0.0.1::{pa}");
        let capture = |server: &str, password: &str, out: &Path| {
            run(
                Command::new("python3")
                    .args(["-c", CAPTURE, server, password])
                    .arg(out),
                LIMIT,
            )
        };
        let out = capture(&server, "", &client);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(read_ppm(&client), (w, h, ours.clone()));
        // The password protects gfx-b.
        let b_server = format!("127.0.0.1::{pb}");
        let wrong = capture(&b_server, "wrong", &dir.path().join("no.ppm"));
        assert!(!wrong.status.success());
        let right = capture(&b_server, "s3cret", &dir.path().join("b.ppm"));
        assert!(
            right.status.success(),
            "{}",
            String::from_utf8_lossy(&right.stderr)
        );
        // passwdValidTo in the past: expired at start, as libvirt sets it.
        let x = d.xml_file(
            "x.xml",
            &vnc_xml(
                "gfx-x",
                "<graphics type='vnc' autoport='yes' passwd='s3cret' passwdValidTo='2001-01-01T00:00:00'/>",
            ),
        );
        d.ok(&["define", &x]);
        d.ok(&["start", "gfx-x"]);
        let px = vnc_port(&d.ok(&["dumpxml", "gfx-x"]));
        let expired = capture(
            &format!("127.0.0.1::{px}"),
            "s3cret",
            &dir.path().join("x.ppm"),
        );
        assert!(!expired.status.success());
        d.ok(&["destroy", "gfx-x"]);
    }

    // openGraphics: the client's socket, without authentication (SKIPAUTH)
    // even where a password is set.
    if let Some(py) = python_with_libvirt() {
        let out = run(
            Command::new(py).args(["-c", OPEN_GRAPHICS, &d.uri(), "gfx-b", "running"]),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.report()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "RFB 003.008 [1] 640x480",
                "8 invalid argument: No graphics backend with index 1",
                "8 unsupported flags (0x2) in function qemuDomainOpenGraphics",
            ],
            "{text}"
        );
    }

    // openGraphicsFD: a socket speaking RFB, without authentication
    // (SKIPAUTH) even where a password is set.
    if let Some(py) = python_with_libvirt() {
        let out = run(
            Command::new(py).args(["-c", OPEN_GRAPHICS_FD, &d.uri(), "gfx-b"]),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.report()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "RFB 003.008 [1]",
                "invalid argument: No graphics backend with index 1"
            ],
        );
    }

    // VNC clients reach libvirt's graphics event: connect, initialize,
    // disconnect, with the server's and the client's addresses.
    if let Some(py) = python_with_libvirt() {
        let out = run(
            Command::new(py).args(["-c", GRAPHICS_EVENTS, &d.uri(), &pa.to_string()]),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let phases: Vec<String> = (0..3)
            .map(|p| format!("gfx-a {p} 0 127.0.0.1 {pa} 127.0.0.1 none []"))
            .collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), phases);
    }

    // Stopping gives the port back: the next VM gets it again.
    d.ok(&["destroy", "gfx-a"]);
    let c = d.xml_file(
        "c.xml",
        &vnc_xml("gfx-c", "<graphics type='vnc' autoport='yes'/>"),
    );
    d.ok(&["define", &c]);
    d.ok(&["start", "gfx-c"]);
    assert_eq!(vnc_port(&d.ok(&["dumpxml", "gfx-c"])), pa);
    d.ok(&["destroy", "gfx-b"]);
    d.ok(&["destroy", "gfx-c"]);
}

#[test]
fn graphics_rvirt_does_not_serve_are_refused_with_one_line() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let x = d.xml_file(
        "s.xml",
        &vnc_xml("gfx-spice", "<graphics type='spice' autoport='yes'/>"),
    );
    d.ok(&["define", &x]);
    // The line is the stored definition's (fill-in adds controllers).
    let stored = d.ok(&["dumpxml", "--inactive", "gfx-spice"]);
    let at = 1 + stored
        .lines()
        .position(|l| l.contains("<graphics type='spice'"))
        .expect("the stored definition keeps <graphics>");
    let e = d.fails(&["start", "gfx-spice"]);
    let lines: Vec<&str> = e.trim().lines().collect();
    assert_eq!(
        lines,
        [
            "error: Failed to start domain 'gfx-spice'".to_string(),
            format!("error: unsupported configuration: The guest needs devices rvirt-vmm does not emulate: line {at}: graphics: type 'spice' is not supported: rvirt serves VNC only"),
        ],
        "{e}"
    );
    // A domain without graphics has no display, as libvirt says.
    let n = d.xml_file("n.xml", &domain_xml("gfx-none", Guest::Ticker));
    d.ok(&["define", &n]);
    d.ok(&["start", "gfx-none"]);
    assert_eq!(
        d.fails(&["vncdisplay", "gfx-none"]).trim(),
        "error: Failed to get VNC port. Is this domain using VNC?"
    );
    let e = d.fails(&["screenshot", "gfx-none", "/nonexistent/x.ppm"]);
    assert!(e.contains("no screens to take screenshot from"), "{e}");
    d.ok(&["destroy", "gfx-none"]);
}

/// Garbage, unknown flags, a stopped domain and a screen that does not
/// exist: each answered with libvirt's error, the daemon and the VM on.
#[test]
fn graphics_procedures_refuse_bad_input() {
    use rvirt_remote::calls::{DomainDefineXmlArgs, DomainOpenGraphicsArgs, DomainScreenshotArgs};
    use rvirt_remote::error::code;
    use rvirt_remote::{procs, ClientError, Procedure};
    if !have_virsh() {
        return;
    }
    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let c = d.client();
    let dom = c
        .call::<procs::DomainDefineXml>(&DomainDefineXmlArgs {
            xml: vnc_xml("bad", "<graphics type='vnc' autoport='yes'/>"),
        })
        .unwrap()
        .dom;
    for p in [
        Procedure::DomainScreenshot,
        Procedure::DomainOpenGraphicsFd,
        Procedure::DomainOpenGraphics,
    ] {
        match c.call_raw(p, vec![0xff; 7]) {
            Err(ClientError::Remote(e)) => assert_eq!(e.code, code::RPC, "{p:?}: {e}"),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let err = |r: Result<_, ClientError>| match r {
        Err(ClientError::Remote(e)) => (e.code, e.message.unwrap_or_default()),
        Ok(_) => panic!("accepted"),
        Err(other) => panic!("{other:?}"),
    };
    let shot = |screen, flags| {
        c.call::<procs::DomainScreenshot>(&DomainScreenshotArgs {
            dom: dom.clone(),
            screen,
            flags,
        })
        .map(drop)
    };
    let fd = |idx, flags| {
        c.call::<procs::DomainOpenGraphicsFd>(&DomainOpenGraphicsArgs {
            dom: dom.clone(),
            idx,
            flags,
        })
    };
    let not_running = (
        code::OPERATION_INVALID,
        "Requested operation is not valid: domain is not running".to_string(),
    );
    assert_eq!(err(shot(0, 0)), not_running);
    assert_eq!(err(fd(0, 1)), not_running);
    c.call::<procs::DomainCreate>(&rvirt_remote::calls::DomainArgs { dom: dom.clone() })
        .unwrap();
    assert_eq!(
        err(shot(0, 4)),
        (
            code::INVALID_ARG,
            "unsupported flags (0x4) in function qemuDomainScreenshot".into()
        )
    );
    assert_eq!(
        err(shot(1, 0)),
        (
            code::INVALID_ARG,
            "invalid argument: no screen with index 1".into()
        )
    );
    assert_eq!(
        err(fd(0, 2)),
        (
            code::INVALID_ARG,
            "unsupported flags (0x2) in function qemuDomainOpenGraphicsFD".into()
        )
    );
    assert_eq!(
        err(fd(7, 0)),
        (
            code::INVALID_ARG,
            "invalid argument: No graphics backend with index 7".into()
        )
    );
    // OPEN_GRAPHICS as a plain CALL, without the descriptor it needs:
    // libvirt's dispatcher error, before anything else is looked at.
    let passed = |idx, flags| {
        c.call::<procs::DomainOpenGraphics>(&DomainOpenGraphicsArgs {
            dom: dom.clone(),
            idx,
            flags,
        })
    };
    for (idx, flags) in [(0, 0), (7, 2)] {
        assert_eq!(
            err(passed(idx, flags)),
            (
                code::INTERNAL_ERROR,
                "internal error: No FD available at slot 0".into()
            )
        );
    }
    assert_eq!(d.state("bad"), "running (booted)");
}

/// `<listen type='socket'/>`: a unix socket in the domain's directory,
/// named in the live XML, speaking RFB; virsh's URI for it.
#[test]
fn vnc_on_a_unix_socket() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let x = d.xml_file(
        "u.xml",
        &vnc_xml(
            "gfx-unix",
            "<graphics type='vnc'><listen type='socket'/></graphics>",
        ),
    );
    d.ok(&["define", &x]);
    d.ok(&["start", "gfx-unix"]);
    let live = d.ok(&["dumpxml", "gfx-unix"]);
    let path = live
        .split("<listen type='socket' socket='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no socket in {live}"))
        .to_string();
    assert!(path.ends_with("/vnc.sock"), "{path}");
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert_eq!(
        rvirt_testkit::read_exact(&mut s, 12, LIMIT),
        b"RFB 003.008\n"
    );
    let uri = d.ok(&["domdisplay", "gfx-unix"]);
    assert!(
        uri.trim().starts_with("vnc+unix://") && uri.contains(&path),
        "{uri}"
    );
    d.ok(&["destroy", "gfx-unix"]);
}

/// A guest that draws: `virsh screenshot` writes the picture the guest
/// drew on its bochs-display, and a VNC client on the socket `domdisplay`
/// names captures the same pixels.
#[test]
fn virsh_screenshot_and_a_vnc_client_show_what_the_guest_drew() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    // On a unix socket: this test's VM takes no port from 5900, which the
    // port test next to it counts on having to itself.
    let xml = display_xml("gfx-draw").replace(
        "<graphics type='vnc' autoport='yes'/>",
        "<graphics type='vnc'><listen type='socket'/></graphics>",
    );
    let x = d.xml_file("display.xml", &xml);
    d.ok(&["define", &x]);
    d.ok(&["start", "gfx-draw"]);
    d.wait_log("gfx-draw", "DRAWN");
    let want = display_pattern();

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("virsh.ppm");
    d.ok(&["screenshot", "gfx-draw", shot.to_str().unwrap()]);
    let ours = read_ppm(&shot);
    if let Some(diff) = first_difference(&ours, &want) {
        panic!("virsh screenshot: {diff}");
    }

    if have_vncdotool() {
        let uri = d.ok(&["domdisplay", "gfx-draw"]);
        let sock = uri
            .trim()
            .strip_prefix("vnc+unix://")
            .unwrap_or_else(|| panic!("domdisplay: {uri}"));
        let client = dir.path().join("client.ppm");
        let out = run(
            Command::new("python3")
                .args(["-c", CAPTURE, sock, ""])
                .arg(&client),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(read_ppm(&client), ours, "vncdotool's capture");
    }

    // openGraphics hands the client's socket to the same server.
    let python = python_with_libvirt();
    if let Some(py) = python {
        let out = run(
            Command::new(py).args(["-c", OPEN_GRAPHICS, &d.uri(), "gfx-draw", "running"]),
            LIMIT,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().next(),
            Some("RFB 003.008 [1] 800x600"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    d.ok(&["destroy", "gfx-draw"]);
    if let Some(py) = python {
        let out = run(
            Command::new(py).args(["-c", OPEN_GRAPHICS, &d.uri(), "gfx-draw", "stopped"]),
            LIMIT,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "55 Requested operation is not valid: domain is not running",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
