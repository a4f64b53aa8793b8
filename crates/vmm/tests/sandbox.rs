//! `-sandbox on` and `-runas` by hand (no daemon, no jail): every thread
//! filtered; a forbidden call from each kind of thread ends the VMM with
//! a log line naming the thread and the call; Landlock refuses a file the
//! command line does not name; `x-log=on` logs instead of killing;
//! `-netdev user` (passt, which it could not run) is refused in one line.
//!
//! The probe (crates/vmm/src/sandbox/probe.rs, in debug builds) makes the
//! chosen thread try the call when the test sends SIGUSR1.

mod common;

use std::process::Command;
use std::time::Duration;

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

/// The names of `pid`'s threads.
fn threads(pid: i32) -> Vec<(i32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim().to_string()))
        })
        .collect()
}

/// Waits until every kind of thread runs.
fn wait_threads(vm: &Spawned) {
    let pid = vm.pid();
    poll("every kind of thread", Duration::from_secs(30), || {
        let names: Vec<String> = threads(pid).into_iter().map(|(_, n)| n).collect();
        let want = [
            "CPU 0/KVM",
            "devices",
            "qmp-",
            "chardev serial0",
            "blk-io-0",
            "signals",
        ];
        let missing: Vec<&&str> = want
            .iter()
            .filter(|w| !names.iter().any(|n| n.starts_with(**w)))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing {missing:?} among {names:?}\n{}",
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

#[test]
fn every_thread_is_filtered_and_the_guest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = start(dir.path(), LIBVIRT_SANDBOX, None, &[]);
    wait_threads(&vm);
    let pid = vm.pid();
    for (tid, name) in threads(pid) {
        let status = format!("/proc/{pid}/task/{tid}/status");
        // KVM's own worker thread belongs to the process too; it never
        // runs user code.
        if name.starts_with("kvm-") {
            continue;
        }
        assert_eq!(status_field(&status, "Seccomp:"), "2", "thread {name}");
        assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "thread {name}");
    }
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
    let mut vm = start(dir.path(), sandbox, Some(spec), &[]);
    wait_threads(&vm);
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
