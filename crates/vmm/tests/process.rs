//! rvirt-vmm as a process: bad input, serial backends, signals, -S,
//! pidfiles and -daemonize.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use rvirt_test_guests::GREETING;

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
        &["-kernel", k, "-device", "virtio-blk-pci,drive=d0"],
        "not supported yet",
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
    let mut tries = 0;
    let mut s = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if tries < 500 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no socket: {e}"),
        }
    };
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
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
    let err = read_until(child.stderr.take().unwrap(), Duration::from_secs(10), |s| {
        s.contains('\n')
    });
    let name = err
        .strip_prefix("char device redirected to ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(err.contains("(label serial0)"), "{err}");
    assert!(std::path::Path::new(name).exists(), "{name}");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigterm_stops_the_vm_cleanly() {
    let mut child = spawn(&[
        "-serial",
        "stdio",
        "-kernel",
        Guest::Counter.path().to_str().unwrap(),
    ]);
    let out = read_until(child.stdout.take().unwrap(), Duration::from_secs(30), |s| {
        s.contains("COUNT 2")
    });
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
    let out = read_until(
        child.stdout.take().unwrap(),
        Duration::from_millis(1500),
        |s| !s.is_empty(),
    );
    assert_eq!(out, "", "a paused VM printed");
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running, waiting for cont"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
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
    assert!(log.exists());
    let mut waited = 0;
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("COUNT 1")
    {
        waited += 1;
        assert!(waited < 300, "daemon produced no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling the daemon we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut waited = 0;
    // SAFETY: kill with signal 0 only checks the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        waited += 1;
        assert!(waited < 200, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let out = die_with_test(&mut std::process::Command::new(vmm()))
        .args(["-serial", "null", "-kernel", kernel.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied opening /dev/kvm"), "{err}");
}
