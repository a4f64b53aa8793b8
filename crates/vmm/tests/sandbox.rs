//! `-sandbox on` and `-runas` by hand (no daemon, no jail): every thread
//! filtered; a forbidden call from each kind of thread ends the VMM with
//! a log line naming the thread and the call; Landlock refuses a file the
//! command line does not name; `x-log=on` logs instead of killing;
//! `-netdev user` (passt, which it could not run) is refused in one line;
//! the VNC server's threads are filtered too, serving a real client and one
//! passed over QMP.
//!
//! The probe (crates/vmm/src/sandbox/probe.rs, in debug builds) makes the
//! chosen thread try the call when the test sends SIGUSR1.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rvirt_testkit::{read_exact, read_until, run, threads, try_run};

use common::*;

const LIBVIRT_SANDBOX: &str =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// A ticking guest with every kind of thread: vCPU, device loop, a
/// monitor, a chardev input (pty), disk workers, signals.
fn start(dir: &std::path::Path, sandbox: &str, probe: Option<&str>, extra: &[&str]) -> Spawned {
    let disk = dir.join("d.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let qmp = dir.join("qmp.sock");
    let drive = format!(
        "file={},format=raw,if=none,id=d0,aio=threads",
        disk.display()
    );
    let qmp_opt = format!("unix:{},server=on,wait=off", qmp.display());
    let kernel = Guest::Ticker.path();
    let mut cmd = Command::new(vmm());
    cmd.args([
        "-name",
        "probed",
        "-M",
        "microvm",
        "-m",
        "64",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "pty",
        "-qmp",
        &qmp_opt,
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
        "-kernel",
        kernel.to_str().unwrap(),
        "-sandbox",
        sandbox,
    ])
    .args(extra)
    .stdin(std::process::Stdio::null());
    match probe {
        Some(p) => cmd.env("RVIRT_SANDBOX_PROBE", format!("probed={p}")),
        None => cmd.env_remove("RVIRT_SANDBOX_PROBE"),
    };
    Spawned::start(die_with_test(&mut cmd))
}

/// Waits until every kind of thread runs.
fn wait_threads(vm: &Spawned) {
    wait_threads_and(vm, &[]);
}

/// Waits until every kind of thread runs, and those named `more`, each
/// under its filter: a thread records itself as its kind's probe target
/// just before its filter goes on, and its name is there from its
/// creation, before that (a probe fired in between finds no target).
fn wait_threads_and(vm: &Spawned, more: &[&str]) {
    let pid = vm.pid();
    poll("every kind of thread", Duration::from_secs(30), || {
        let all = threads(pid);
        let names: Vec<String> = all
            .iter()
            .filter(|(tid, n)| {
                n.starts_with("kvm-")
                    || status_field(&format!("/proc/{pid}/task/{tid}/status"), "Seccomp:") == "2"
            })
            .map(|(_, n)| n.clone())
            .collect();
        let mut want = vec![
            "CPU 0/KVM",
            "devices",
            "qmp-",
            "chardev serial0",
            "blk-io-0",
            "signals",
        ];
        want.extend_from_slice(more);
        let missing: Vec<&&str> = want
            .iter()
            .filter(|w| !names.iter().any(|n| n.starts_with(**w)))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing {missing:?} among the filtered {names:?}\n{}",
                vm.describe()
            ))
        }
    });
}

fn status_field(path: &str, field: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// Every thread of `pid` (but KVM's own worker, which belongs to the
/// process and never runs user code) runs under a seccomp filter with
/// no_new_privs.
fn assert_all_filtered(pid: i32) {
    for (tid, name) in threads(pid) {
        let status = format!("/proc/{pid}/task/{tid}/status");
        if name.starts_with("kvm-") {
            continue;
        }
        assert_eq!(status_field(&status, "Seccomp:"), "2", "thread {name}");
        assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "thread {name}");
    }
}

#[test]
fn every_thread_is_filtered_and_the_guest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = start(dir.path(), LIBVIRT_SANDBOX, None, &[]);
    wait_threads(&vm);
    let pid = vm.pid();
    assert_all_filtered(pid);
    // One filter for the whole process, one for the thread's kind (and the
    // clone3 one under spawn=deny).
    let vcpu = threads(pid)
        .into_iter()
        .find(|(_, n)| n == "CPU 0/KVM")
        .unwrap()
        .0;
    let filters: u32 = status_field(
        &format!("/proc/{pid}/task/{vcpu}/status"),
        "Seccomp_filters:",
    )
    .parse()
    .unwrap();
    assert!(filters >= 3, "{filters}");
    assert!(vm.try_wait().is_none(), "{}", vm.describe());
    vm.signal(libc::SIGTERM);
    let st = vm.wait(Duration::from_secs(30));
    assert!(st.success(), "{st:?}\n{}", vm.describe());
}

/// Fires the probe and returns the VMM's exit status and stderr.
fn probe(spec: &str, sandbox: &str) -> (std::process::ExitStatus, String, Spawned) {
    let dir = tempfile::tempdir().unwrap();
    // The VNC server's threads, one of them serving a client that is in
    // its handshake while the probe fires.
    let vnc = format!("unix:{}", dir.path().join("vnc.sock").display());
    let mut vm = start(dir.path(), sandbox, Some(spec), &["-vnc", &vnc]);
    wait_threads_and(&vm, &["vnc-accept", "vnc-refresh"]);
    let mut client = connect_unix(&dir.path().join("vnc.sock"));
    assert_eq!(read_exact(&mut client, 12, T), b"RFB 003.008\n");
    wait_threads_and(&vm, &["vnc-client-"]);
    vm.signal(libc::SIGUSR1);
    let st = match poll("the probe's effect", Duration::from_secs(20), || {
        if let Some(st) = vm.try_wait() {
            return Ok(Some(st));
        }
        if vm.stderr_text().contains("rvirt-vmm: probe:") {
            return Ok(None);
        }
        Err(vm.describe())
    }) {
        Some(st) => st,
        None => {
            vm.signal(libc::SIGTERM);
            vm.wait(Duration::from_secs(30))
        }
    };
    let err = vm.stderr_text();
    (st, err, vm)
}

#[test]
fn a_forbidden_call_from_each_kind_of_thread_ends_the_vmm_and_is_named() {
    let cases = [
        ("vcpu:ptrace", "vcpu", "ptrace"),
        ("devices:execve", "devices", "execve"),
        ("monitor:socket", "monitor", "socket"),
        ("chardev:mount", "chardev", "mount"),
        ("blk-io:open:/etc/passwd", "blk-io", "openat"),
        ("vnc:execve", "vnc", "execve"),
        ("vnc:open:/etc/passwd", "vnc", "openat"),
        ("vnc-client:socket", "vnc-client", "socket"),
        ("vnc-client:open:/etc/passwd", "vnc-client", "openat"),
        ("signals:socket", "signals", "socket"),
        ("main:mount", "main", "mount"),
        ("main:execve", "main", "execve"),
        ("main:ptrace", "main", "ptrace"),
        ("main:socket", "main", "socket"),
    ];
    for (spec, kind, call) in cases {
        let (st, err, _vm) = probe(spec, LIBVIRT_SANDBOX);
        let line =
            format!("rvirt-vmm: seccomp: the {kind} thread made a forbidden system call: {call} (");
        assert!(err.contains(&line), "{spec}: {st:?}\n{err}");
        assert_eq!(st.code(), Some(128 + libc::SIGSYS), "{spec}: {err}");
    }
}

#[test]
fn landlock_refuses_a_file_the_command_line_does_not_name() {
    // The main thread may open files (a reboot reads the kernel again), but
    // only those named: /etc/passwd is not.
    let (st, err, _vm) = probe("main:open:/etc/passwd", LIBVIRT_SANDBOX);
    assert!(
        err.contains("rvirt-vmm: probe: main open: errno 13"),
        "{st:?}\n{err}"
    );
    assert!(
        st.success(),
        "the VMM went on and stopped on SIGTERM: {st:?}\n{err}"
    );
}

#[test]
fn the_log_mode_lets_the_call_through() {
    let (st, err, _vm) = probe("main:socket", &format!("{LIBVIRT_SANDBOX},x-log=on"));
    assert!(
        err.contains("rvirt-vmm: probe: main socket: errno 0"),
        "{st:?}\n{err}"
    );
    assert!(!err.contains("forbidden system call"), "{err}");
    assert!(st.success(), "{st:?}\n{err}");
}

#[test]
fn runas_drops_every_thread_to_the_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The pty and the monitor socket are made as root, before the drop.
    let mut vm = start(
        dir.path(),
        LIBVIRT_SANDBOX,
        None,
        &["-runas", "65534:65534"],
    );
    wait_threads(&vm);
    let pid = vm.pid();
    for (tid, name) in threads(pid) {
        let status = format!("/proc/{pid}/task/{tid}/status");
        if name.starts_with("kvm-") {
            continue;
        }
        assert!(
            status_field(&status, "Uid:").starts_with("65534\t65534\t65534"),
            "{name}"
        );
        assert!(
            status_field(&status, "Gid:").starts_with("65534\t65534\t65534"),
            "{name}"
        );
        assert_eq!(
            status_field(&status, "CapEff:"),
            "0000000000000000",
            "{name}"
        );
    }
    vm.signal(libc::SIGTERM);
    let st = vm.wait(Duration::from_secs(30));
    assert!(st.success(), "{st:?}\n{}", vm.describe());
}

#[test]
fn user_networking_is_refused_under_the_sandbox_in_one_line() {
    // A sandboxed VMM cannot execute passt: -netdev user is refused before
    // anything starts, naming the netdev (rvirtd runs passt itself).
    let out = rvirt_testkit::run(
        Command::new(vmm()).args([
            "-M",
            "microvm",
            "-nodefaults",
            "-kernel",
            Guest::Ticker.path().to_str().unwrap(),
            "-netdev",
            "user,id=un0",
            "-device",
            "virtio-net-device,netdev=un0",
            "-sandbox",
            LIBVIRT_SANDBOX,
        ]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("-netdev user 'un0' needs passt"), "{err}");
}

const T: Duration = Duration::from_secs(60);

fn connect_unix(path: &Path) -> UnixStream {
    poll("a unix socket", T, || {
        UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))
    })
}

/// vncdotool (installed by scripts/setup.sh) through rvirt-vnc's own
/// driver script; without it the capture is skipped unless
/// RVIRT_REQUIRE_REFERENCE says everything must run.
fn vncdotool_script() -> Option<PathBuf> {
    let ok = try_run(Command::new("python3").args(["-c", "import vncdotool"]), T)
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("python3 with vncdotool is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("vncdotool not available: the capture did not run");
        return None;
    }
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../vnc/tests/python/vnc_client.py"))
}

/// One QMP command over `qmp`, `fds` passed with it (SCM_RIGHTS); returns
/// what arrived up to its reply.
fn qmp(qmp: &mut UnixStream, cmd: &str, fds: &[std::os::fd::BorrowedFd<'_>]) -> String {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let line = format!("{cmd}\n");
    let sent = rustix::net::sendmsg(
        &*qmp,
        &[std::io::IoSlice::new(line.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(sent, line.len());
    let reply = read_until(qmp, "\"return\"", T);
    assert!(!reply.contains("\"error\""), "{cmd}: {reply}");
    reply
}

/// An RFB 3.8 handshake without authentication up to ServerInit: the
/// blank 640x480 screen.
fn handshake(c: &mut UnixStream) {
    assert_eq!(read_exact(c, 12, T), b"RFB 003.008\n");
    c.write_all(b"RFB 003.008\n").unwrap();
    assert_eq!(read_exact(c, 2, T), [1, 1]);
    c.write_all(&[1]).unwrap();
    assert_eq!(read_exact(c, 4, T), [0, 0, 0, 0]);
    c.write_all(&[1]).unwrap();
    let init = read_exact(c, 24, T);
    assert_eq!(&init[..4], &[2, 128, 1, 224], "640x480");
    let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
    assert_eq!(read_exact(c, name_len, T), b"rvirt (probed)");
}

/// A PPM (P6) of a blank 640x480 screen.
fn assert_blank_ppm(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let header = b"P6\n640 480\n255\n";
    assert!(
        data.starts_with(header),
        "{:?}",
        &data[..data.len().min(20)]
    );
    let pixels = &data[header.len()..];
    assert_eq!(pixels.len(), 640 * 480 * 3);
    assert!(pixels.iter().all(|&b| b == 0), "the screen is not blank");
}

/// `-vnc` under libvirt's `-sandbox`: the accept, refresh and client
/// threads all filtered, vncdotool captures the screen, and a client
/// passed with getfd and add_client over the monitor is served.
fn vnc_under_the_sandbox(tcp: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc.sock");
    let (vnc, server) = if tcp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        (
            format!("127.0.0.1:{}", port - 5900),
            format!("127.0.0.1::{port}"),
        )
    } else {
        let path = sock.display().to_string();
        (format!("unix:{path}"), path)
    };
    let mut vm = start(dir.path(), LIBVIRT_SANDBOX, None, &["-vnc", &vnc]);
    wait_threads_and(&vm, &["vnc-accept", "vnc-refresh"]);
    let pid = vm.pid();

    // A client by descriptor: the monitor thread receives it (recvmsg,
    // SCM_RIGHTS), the refresh thread starts its thread.
    let mut monitor = connect_unix(&dir.path().join("qmp.sock"));
    read_until(&mut monitor, "\"QMP\"", T);
    qmp(&mut monitor, r#"{"execute":"qmp_capabilities"}"#, &[]);
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    use std::os::fd::AsFd;
    qmp(
        &mut monitor,
        r#"{"execute":"getfd","arguments":{"fdname":"c1"}}"#,
        &[theirs.as_fd()],
    );
    drop(theirs);
    qmp(
        &mut monitor,
        r#"{"execute":"add_client","arguments":{"protocol":"vnc","fdname":"c1"}}"#,
        &[],
    );
    handshake(&mut ours);
    wait_threads_and(&vm, &["vnc-client-"]);
    assert_all_filtered(pid);

    // A real client over the listener while that one stays connected.
    if let Some(script) = vncdotool_script() {
        let shot = dir.path().join("shot.ppm");
        let out = run(
            Command::new("python3")
                .arg(script)
                .arg(&server)
                .args(["capture", shot.to_str().unwrap()]),
            T,
        );
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
            "vncdotool: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            vm.describe()
        );
        assert_blank_ppm(&shot);
    }
    // The passed client is still served: a full update of the screen.
    ours.write_all(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224]).unwrap();
    let head = read_exact(&mut ours, 16, T);
    assert_eq!(&head[..4], &[0, 0, 0, 1]);
    read_exact(&mut ours, 640 * 480 * 4, T);
    assert_all_filtered(pid);
    assert!(vm.try_wait().is_none(), "{}", vm.describe());
    vm.signal(libc::SIGTERM);
    let st = vm.wait(Duration::from_secs(30));
    assert!(st.success(), "{st:?}\n{}", vm.describe());
}

#[test]
fn vnc_over_tcp_under_the_sandbox() {
    vnc_under_the_sandbox(true);
}

#[test]
fn vnc_over_a_unix_socket_under_the_sandbox() {
    vnc_under_the_sandbox(false);
}
