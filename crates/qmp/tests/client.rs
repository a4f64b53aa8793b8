//! The client against rvirt's own monitor, against a server that never
//! answers, against qemu-system-x86_64 when it is installed, and the
//! qemu.qmp Python client against rvirt's monitor when it is installed.

mod common;

use common::Fixture;
use rvirt_qmp::{ClientError, ErrorClass, MonitorBackend, QmpClient, RunState};
use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rvirt_testkit::{try_run, wait_listening, within, Spawned};

const T: Duration = Duration::from_secs(5);

/// The checks every QMP server must pass, rvirt's or QEMU's (started -S).
fn exercise(c: &QmpClient) {
    assert_eq!(c.greeting().qmp.version.qemu.major, 7);
    let s = c.execute("query-status", None).unwrap();
    assert_eq!(
        s,
        json!({"running": false, "singlestep": false, "status": "prelaunch"})
    );
    c.execute("cont", None).unwrap();
    let ev = c.wait_event("RESUME", T).unwrap();
    assert!(ev.timestamp.seconds > 0);
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        "running"
    );
    c.execute("stop", None).unwrap();
    assert_eq!(c.next_event(T).unwrap().event, "STOP");
    match c.execute("no-such-command", None) {
        Err(ClientError::Command { error, .. }) => {
            assert_eq!(error.class, ErrorClass::CommandNotFound);
            assert_eq!(error.desc, "The command no-such-command has not been found");
        }
        other => panic!("unexpected {other:?}"),
    }
    let args = json!({"command-line": "info status"});
    let text = c.execute("human-monitor-command", Some(args)).unwrap();
    assert_eq!(text, "VM status: paused\r\n");
    // Replies are matched by id even when commands come from many threads.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(c.execute("query-kvm", None).unwrap()["enabled"], true);
                }
            });
        }
    });
}

#[test]
fn client_against_rvirt() {
    let fx = Fixture::new(RunState::Prelaunch);
    let c = QmpClient::connect(&fx.path, T).unwrap();
    exercise(&c);
    c.execute("quit", None).unwrap();
    assert_eq!(
        c.wait_event("SHUTDOWN", T).unwrap().data.unwrap()["reason"],
        "host-qmp-quit"
    );
}

#[test]
fn client_times_out_and_reports_disconnects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (hang_up, told) = std::sync::mpsc::channel::<()>();
    // Waits for the client's connection without a limit of its own: the
    // test bounds it with `within` below.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\r\n").unwrap();
        // Never answers; hangs up once the client has given up (not after
        // a fixed time, which a client slowed by a loaded machine could
        // outlast and then see the hang-up instead of its timeout).
        let _ = told.recv();
    });
    let start = Instant::now();
    let p = path.clone();
    let got = within("a client with a 300 ms limit", 6 * T, move || {
        QmpClient::connect(&p, Duration::from_millis(300)).map(drop)
    });
    match got {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Its own limit ended the wait, not `within`'s: 300 ms is far from
    // both bounds, whatever the load.
    assert!(start.elapsed() < 2 * T, "{:?}", start.elapsed());
    hang_up.send(()).unwrap();
    within("the mute server", T, move || server.join().unwrap());
    assert!(matches!(
        QmpClient::connect(&path, T),
        Err(ClientError::Connect { .. })
    ));
}

#[test]
fn client_sees_server_exit() {
    let mut fx = Fixture::new(RunState::Running);
    let c = QmpClient::connect(&fx.path, T).unwrap();
    fx.server.take().unwrap().shutdown();
    let deadline = Instant::now() + T;
    loop {
        match c.execute("query-status", None) {
            Err(ClientError::Disconnected) | Err(ClientError::Io(_)) => break,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn have(cmd: &str, arg: &str) -> bool {
    try_run(Command::new(cmd).arg(arg), Duration::from_secs(30)).is_ok_and(|o| o.status.success())
}

/// Starts QEMU paused with a QMP socket, as the golden data was recorded.
/// It is killed when dropped.
fn qemu(sock: &Path) -> Option<Spawned> {
    if !have("qemu-system-x86_64", "--version") || std::fs::File::open("/dev/kvm").is_err() {
        missing("qemu-system-x86_64 or /dev/kvm");
        return None;
    }
    let child = Spawned::try_start(
        Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "microvm",
                "-enable-kvm",
                "-cpu",
                "qemu64,-pni",
                "-m",
                "64",
            ])
            .args(["-nodefaults", "-display", "none", "-S", "-qmp"])
            .arg(format!("unix:{},server=on,wait=off", sock.display())),
    )
    .ok()?;
    wait_listening(sock, T);
    Some(child)
}

#[test]
fn client_against_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qemu.sock");
    let Some(mut child) = qemu(&sock) else { return };
    let c = QmpClient::connect(&sock, T).unwrap();
    exercise(&c);
    c.execute("quit", None).unwrap();
    drop(c);
    // QEMU did quit.
    child.wait(T);
}

fn python_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/qmp_client_test.py")
}

fn have_qemu_qmp() -> bool {
    let ok = try_run(
        Command::new("python3").args(["-c", "import qemu.qmp"]),
        Duration::from_secs(30),
    )
    .is_ok_and(|o| o.status.success());
    if !ok {
        missing("python3 with qemu.qmp (pip install qemu.qmp)");
    }
    ok
}

/// A reference tool is missing: skip, unless the suite was told (as
/// scripts/test.sh and CI tell it) that everything must run.
fn missing(what: &str) {
    if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("{what} is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh");
    }
    eprintln!("skipped: {what} not available");
}

#[test]
fn qemu_qmp_python_client_against_rvirt() {
    if !have_qemu_qmp() {
        return;
    }
    let fx = Fixture::new(RunState::Prelaunch);
    let expected = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/python-qemu-7.2.json");
    let out = rvirt_testkit::run(
        Command::new("python3")
            .arg(python_script())
            .arg(&fx.path)
            .arg("--expect-shape")
            .arg(&expected),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "qmp_client_test.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fx.vm.status(), RunState::Running);
    assert_eq!(fx.vm.quits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
