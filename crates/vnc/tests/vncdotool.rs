//! The server against a real VNC client (PyPI vncdotool): screens captured
//! and compared pixel by pixel with the framebuffer, input arriving at the
//! sink, password authentication, incremental updates after changes.

mod common;

use common::{assert_same, read_ppm, Fixture, Input};
use rvirt_testkit::{run, try_run, wait_for, Spawned};
use rvirt_vnc::{KeyEvent, Options, PointerEvent, Rect};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

const LIMIT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/vnc_client.py")
}

/// vncdotool is installed by scripts/setup.sh; without it the tests skip
/// unless RVIRT_REQUIRE_REFERENCE says everything must run.
fn have_vncdotool() -> bool {
    let ok = try_run(
        Command::new("python3").args(["-c", "import vncdotool"]),
        LIMIT,
    )
    .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("python3 with vncdotool is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh");
        }
        eprintln!("skipped: vncdotool not available (pip install vncdotool)");
    }
    ok
}

fn client(server: &str, args: &[&str]) -> Output {
    run(
        Command::new("python3").arg(script()).arg(server).args(args),
        LIMIT,
    )
}

fn assert_refused(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Authentication failed"),
        "{what}: not refused as expected:\n{}\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "vnc_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tcp_screen_keys_and_pointer() {
    if !have_vncdotool() {
        return;
    }
    let fx = Fixture::new(Options::default());
    let port = fx.listen_tcp();
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.ppm");
    let out = client(
        &format!("127.0.0.1::{port}"),
        &[
            "capture",
            shot.to_str().unwrap(),
            "key",
            "a",
            "key",
            "enter",
            "move",
            "100",
            "50",
            "click",
            "1",
        ],
    );
    assert_ok(&out);
    assert_same("tcp capture", &read_ppm(&shot), &fx.fb.rgb(), 0);
    let key = |keysym, down| {
        Input::Key(KeyEvent {
            keysym,
            down,
            keycode: None,
        })
    };
    let ptr = |buttons| {
        Input::Pointer(PointerEvent {
            x: 100,
            y: 50,
            buttons,
            width: 640,
            height: 480,
        })
    };
    let events = fx.input.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            key(0x61, true),
            key(0x61, false),
            key(0xff0d, true),
            key(0xff0d, false),
            ptr(0),
            ptr(1),
            ptr(0)
        ]
    );
    // The monitor's events, in order, for the one client.
    wait_for("the client's disconnection", LIMIT, || {
        fx.server.clients().is_empty()
    });
    let kinds: Vec<_> = fx
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            rvirt_vnc::Event::Connected { server, client } => {
                ("connected", server.clone(), client.family)
            }
            rvirt_vnc::Event::Initialized { server, client } => {
                ("initialized", server.clone(), client.family)
            }
            rvirt_vnc::Event::Disconnected { server, client } => {
                ("disconnected", server.clone(), client.family)
            }
        })
        .collect();
    let listener = fx.server.listening();
    assert_eq!(
        kinds,
        [
            ("connected", listener.clone(), "ipv4"),
            ("initialized", listener.clone(), "ipv4"),
            ("disconnected", listener, "ipv4")
        ]
    );
}

#[test]
fn unix_socket_zrle_and_16_bit_pixels() {
    if !have_vncdotool() {
        return;
    }
    let fx = Fixture::new(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let addr = fx.server.listen(
        std::os::unix::net::UnixListener::bind(&sock)
            .unwrap()
            .into(),
    );
    assert_eq!(
        (addr.family, addr.service.as_str()),
        ("unix", sock.to_str().unwrap())
    );
    let zrle = dir.path().join("zrle.ppm");
    assert_ok(&client(
        sock.to_str().unwrap(),
        &["--encoding", "zrle", "capture", zrle.to_str().unwrap()],
    ));
    assert_same("zrle over unix", &read_ppm(&zrle), &fx.fb.rgb(), 0);
    // r5g6b5: each channel within its lost low bits.
    let small = dir.path().join("rgb565.ppm");
    assert_ok(&client(
        sock.to_str().unwrap(),
        &["--format", "rgb565", "capture", small.to_str().unwrap()],
    ));
    assert_same("rgb565 over unix", &read_ppm(&small), &fx.fb.rgb(), 8);
    // (vncdotool's ZRLE decodes 3-byte compressed pixels only.)
}

#[test]
fn password_right_wrong_unset_and_expired() {
    if !have_vncdotool() {
        return;
    }
    let fx = Fixture::new(Options {
        password_auth: true,
        ..Options::default()
    });
    let server = format!("127.0.0.1::{}", fx.listen_tcp());
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("s.ppm");
    let capture = ["capture", shot.to_str().unwrap()];
    // No password set yet: nothing gets in (QEMU's password=on).
    let none = client(&server, &[&["--password", "s3cret"][..], &capture].concat());
    assert_refused("no password set", &none);
    fx.server.set_password("s3cret").unwrap();
    let wrong = client(
        &server,
        &[&["--password", "s3cret!"][..], &capture].concat(),
    );
    assert_refused("wrong password", &wrong);
    let right = client(&server, &[&["--password", "s3cret"][..], &capture].concat());
    assert_ok(&right);
    assert_same("after auth", &read_ppm(&shot), &fx.fb.rgb(), 0);
    fx.server.expire_password(Some(SystemTime::now()));
    let expired = client(&server, &[&["--password", "s3cret"][..], &capture].concat());
    assert_refused("expired password", &expired);
    fx.server.expire_password(None);
    assert_ok(&client(
        &server,
        &[&["--password", "s3cret"][..], &capture].concat(),
    ));
}

/// Steps the client through `sync` points, changing the framebuffer at
/// each.
fn with_syncs(server: &str, args: &[&str], mut at_sync: impl FnMut(usize)) -> String {
    let mut child = Spawned::start(
        Command::new("python3")
            .arg(script())
            .arg(server)
            .args(args)
            .stdin(Stdio::piped()),
    );
    let mut n = 0;
    let mut copies = String::new();
    loop {
        let line = child.line(LIMIT).unwrap_or_else(|| child.fail("no line"));
        match line.trim() {
            "sync" => {
                at_sync(n);
                n += 1;
                use std::io::Write;
                child.stdin().write_all(b"go\n").unwrap();
            }
            "ok" => break,
            l if l.starts_with("copyrects ") => copies = l.to_string(),
            other => child.fail(&format!("unexpected line {other:?}")),
        }
    }
    assert!(child.wait(LIMIT).success());
    copies
}

#[test]
fn changes_reach_incremental_updates_copyrect_and_resize() {
    if !have_vncdotool() {
        return;
    }
    let fx = Fixture::new(Options::default());
    let server = format!("127.0.0.1::{}", fx.listen_tcp());
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (a, b, c, d, e) = (p("a.ppm"), p("b.ppm"), p("c.ppm"), p("d.ppm"), p("e.ppm"));
    let mut expect = Vec::new();
    let fb = fx.fb.clone();
    let copies = with_syncs(
        &server,
        &[
            "--encoding",
            "copyrect",
            "capture",
            &a,
            "sync",
            "refresh",
            &b,
            "sync",
            "refresh",
            &c,
            "sync",
            "refresh",
            &d,
            "capture",
            &e,
        ],
        |n| {
            expect.push(fb.rgb());
            match n {
                0 => fb.fill(Rect::new(100, 100, 50, 40), [255, 0, 0]),
                1 => fb.scroll_up(16),
                _ => fb.resize(800, 600, 9),
            }
        },
    );
    expect.push(fx.fb.rgb());
    // The scroll went as one CopyRect (and the exposed rows as pixels).
    assert_eq!(copies, "copyrects 1");
    assert_same("first capture", &read_ppm(Path::new(&a)), &expect[0], 0);
    assert_same(
        "after a fill, incremental",
        &read_ppm(Path::new(&b)),
        &expect[1],
        0,
    );
    assert_same(
        "after a scroll (CopyRect)",
        &read_ppm(Path::new(&c)),
        &expect[2],
        0,
    );
    // The incremental update after the mode change carries the new size.
    let resized = read_ppm(Path::new(&d));
    assert_eq!((resized.0, resized.1), (800, 600));
    assert_same(
        "after resize, full",
        &read_ppm(Path::new(&e)),
        &expect[3],
        0,
    );
}
