//! rvirt-vmm as a process: bad input, serial backends, signals, -S,
//! pidfiles and -daemonize.

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use rvirt_test_guests::GREETING;
use rvirt_testkit::{read_to_end, run, KillOnDrop};

fn fails_with(args: &[&str], message: &str) {
    let run = wait(spawn(args), Duration::from_secs(20));
    assert_eq!(run.status.code(), Some(1), "{args:?}: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(
        run.stderr.starts_with("rvirt-vmm: ") && run.stderr.contains(message),
        "{args:?}: expected '{message}' in {}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn bad_input_gets_one_line_and_status_1() {
    let hello = Guest::Hello.path();
    let k = hello.to_str().unwrap();
    fails_with(
        &["-kernel", "/nonexistent/vmlinux"],
        "-kernel: could not open '/nonexistent/vmlinux'",
    );
    fails_with(
        &["-kernel", "/etc/hostname"],
        "neither an ELF vmlinux nor a bzImage",
    );
    fails_with(
        &["-kernel", k, "-m", "lots"],
        "-m: invalid memory size 'lots'",
    );
    fails_with(&["-kernel", k, "-smp", "0"], "-smp: Invalid CPU topology");
    fails_with(
        &["-kernel", k, "-smp", "4,sockets=3,cores=1"],
        "product of the hierarchy must match maxcpus",
    );
    fails_with(&["-kernel", k, "-smp", "300"], "-smp: Invalid SMP CPUs 300");
    fails_with(&["-kernel", k, "-m", "100T"], "-m: cannot map");
    fails_with(
        &["-kernel", k, "-cpu", "host,+frobnicate"],
        "-cpu: unknown CPU feature 'frobnicate'",
    );
    fails_with(
        &["-kernel", k, "-initrd", "/nonexistent"],
        "-initrd: could not open",
    );
    fails_with(
        &["-kernel", k, "-frobnicate"],
        "-frobnicate: invalid option",
    );
    fails_with(
        &["-kernel", k, "-device", "ne2k_pci,netdev=n0"],
        "-device: device 'ne2k_pci' is not supported",
    );
    fails_with(
        &["-kernel", k, "-serial", "file:/nonexistent/dir/out"],
        "-serial: could not open",
    );
    fails_with(
        &["-kernel", k, "-append", &"x".repeat(5000)],
        "-append: kernel command line is 5000 bytes",
    );
}

#[test]
fn serial_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("console.log");
    let spec = format!("file:{}", out.display());
    let run = wait(
        spawn(&[
            "-serial",
            &spec,
            "-kernel",
            Guest::Hello.path().to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert!(run.status.success());
    assert!(std::fs::read_to_string(&out).unwrap().starts_with(GREETING));
}

#[test]
fn serial_on_a_unix_socket_waits_for_its_client() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("serial.sock");
    let spec = format!("unix:{},server=on,wait=on", sock.display());
    let child = spawn(&[
        "-serial",
        &spec,
        "-kernel",
        Guest::Hello.path().to_str().unwrap(),
    ]);
    let mut s = poll("the serial socket", Duration::from_secs(5), || {
        UnixStream::connect(&sock).map_err(|e| format!("no socket: {e}"))
    });
    let got = read_to_end(&mut s, Duration::from_secs(30));
    assert!(got.starts_with(GREETING), "{got}");
    let run = wait(child, Duration::from_secs(30));
    assert!(run.status.success());
    assert!(!sock.exists(), "the socket file is removed at exit");
}

#[test]
fn serial_on_a_pty_is_announced_like_qemu() {
    let mut child = spawn(&[
        "-serial",
        "pty",
        "-S",
        "-kernel",
        Guest::Counter.path().to_str().unwrap(),
    ]);
    child.until(
        "the pty's announcement",
        Duration::from_secs(10),
        |_, err| err.contains('\n'),
    );
    let err = child.stderr_text();
    let name = err
        .strip_prefix("char device redirected to ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(err.contains("(label serial0)"), "{err}");
    assert!(std::path::Path::new(name).exists(), "{name}");
    sigterm(&child);
    assert!(child.wait(Duration::from_secs(10)).success());
}

#[test]
fn sigterm_stops_the_vm_cleanly() {
    let mut child = spawn(&[
        "-serial",
        "stdio",
        "-kernel",
        Guest::Counter.path().to_str().unwrap(),
    ]);
    child.until("COUNT 2", Duration::from_secs(30), |out, _| {
        out.contains("COUNT 2")
    });
    let out = child.stdout_text();
    assert!(out.contains("COUNT 1"), "{out}");
    sigterm(&child);
    let run = wait(child, Duration::from_secs(10));
    assert_eq!(run.status.code(), Some(0));
    assert!(
        run.stderr.contains("terminating on signal 15"),
        "{}",
        run.stderr
    );
}

#[test]
fn start_paused_runs_no_guest_code() {
    let mut child = spawn(&[
        "-S",
        "-serial",
        "stdio",
        "-kernel",
        Guest::Counter.path().to_str().unwrap(),
    ]);
    // Whatever it would print comes within this pause.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(child.stdout_text(), "", "a paused VM printed");
    assert!(
        child.try_wait().is_none(),
        "still running, waiting for cont"
    );
    sigterm(&child);
    assert!(child.wait(Duration::from_secs(10)).success());
}

#[test]
fn pidfile_daemonize_and_logfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("vm.pid");
    let log = dir.path().join("vm.log");
    let out = dir.path().join("serial.log");
    let serial = format!("file:{}", out.display());
    let run = wait(
        spawn(&[
            "-daemonize",
            "-pidfile",
            pidfile.to_str().unwrap(),
            "-D",
            log.to_str().unwrap(),
            "-serial",
            &serial,
            "-kernel",
            Guest::Counter.path().to_str().unwrap(),
        ]),
        Duration::from_secs(20),
    );
    // The parent returns once the VM runs.
    assert!(run.status.success(), "{}", run.stderr);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Not our child: killed when the test ends, whichever way.
    let daemon = KillOnDrop::new(pid);
    assert!(log.exists());
    wait_file(&out, "COUNT 1", Duration::from_secs(15), || {
        rvirt_testkit::process_state(pid)
    });
    // SAFETY: signalling the daemon we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_for("the daemon to exit", Duration::from_secs(10), || {
        !daemon.alive()
    });
    assert!(!pidfile.exists(), "pidfile removed at exit");
}

#[test]
fn daemonize_reports_start_failures() {
    let run = wait(
        spawn(&["-daemonize", "-serial", "null", "-kernel", "/nonexistent"]),
        Duration::from_secs(20),
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("-kernel: could not open"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_permission_on_dev_kvm_is_one_clear_line() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can drop to another user; as a non-root user without
        // access to /dev/kvm every boot test fails with the same message.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("hello.elf");
    std::fs::copy(Guest::Hello.path(), &kernel).unwrap();
    // The temporary directory is root's 0700; let `nobody` read the kernel.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = run(
        die_with_test(&mut std::process::Command::new(vmm()))
            .args(["-serial", "null", "-kernel", kernel.to_str().unwrap()])
            .uid(65534)
            .gid(65534),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied opening /dev/kvm"), "{err}");
}
