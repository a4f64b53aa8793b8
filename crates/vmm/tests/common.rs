//! Running rvirt-vmm as a process, the way a user or a daemon does, with a
//! deadline on every wait (rvirt-testkit).

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

pub use rvirt_test_guests::{output, Guest};
pub use rvirt_testkit::{poll, wait_for, Spawned};

pub fn vmm() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvirt-vmm"))
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Makes the process started by `cmd` die with the test thread that starts
/// it, so a VM outlives neither a failing test nor a test process killed
/// from outside (where no `Drop` runs).
pub fn die_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Spawns rvirt-vmm with `args`, its stdout and stderr collected; it is
/// killed when the returned child is dropped.
pub fn spawn(args: &[&str]) -> Spawned {
    Spawned::start(
        die_with_test(&mut Command::new(vmm()))
            .args(args)
            .stdin(Stdio::null()),
    )
}

/// Waits for `child` to exit; past `limit` the test fails with its output
/// and state.
pub fn wait(child: Spawned, limit: Duration) -> Run {
    let out = child.output(limit);
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a guest to completion with `-serial stdio` and extra `args`.
pub fn boot(guest: Guest, args: &[&str]) -> Run {
    let kernel = guest.path();
    let mut all = vec!["-serial", "stdio", "-kernel", kernel.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = wait(spawn(&all), Duration::from_secs(60));
    assert!(
        run.status.success(),
        "{} {args:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        guest.name(),
        run.status,
        run.stdout,
        run.stderr
    );
    run
}

pub fn sigterm(child: &Spawned) {
    child.signal(libc::SIGTERM);
}

/// Waits until `log` (a serial port's file) holds `what`; returns all of
/// it. Past `limit` the test fails with what the file held and `vmm`'s
/// report (the state of the process writing it).
pub fn wait_file(
    log: &std::path::Path,
    what: &str,
    limit: Duration,
    vmm: impl Fn() -> String,
) -> String {
    poll(&format!("{what:?} in {}", log.display()), limit, || {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.contains(what) {
            Ok(s)
        } else {
            Err(format!("{s}\n{}", vmm()))
        }
    })
}

/// Connects the QMP client to `sock`, retrying while the VMM starts.
pub fn qmp_connect(sock: &std::path::Path, limit: Duration) -> rvirt_qmp::QmpClient {
    poll(&format!("QMP on {}", sock.display()), limit, || {
        rvirt_qmp::QmpClient::connect(sock, limit).map_err(|e| e.to_string())
    })
}

/// Whether the reference tools must be there (CI sets
/// `RVIRT_REQUIRE_REFERENCE`): a missing one then fails the test.
pub fn required() -> bool {
    std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some()
}

/// Says that `what` is missing: a failure when [`required`], else a line
/// on stderr and false (the test does not run in full).
pub fn require(what: &str) -> bool {
    if required() {
        panic!("{what} is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh");
    }
    eprintln!("{what} not installed: the test did not run in full");
    false
}

/// The RFB client the display and input tests drive (vncdotool's API).
pub fn vnc_client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vnc/tests/python/vnc_client.py")
}

/// Drives the VNC client on `sock` through `steps`, each a list of client
/// commands and how many items (`what`, counted in the VM's stdout by
/// `count`) it makes the guest print; the next step starts once they have
/// all arrived, so no event outruns the guest's polling. The client stays
/// connected until the guest has the last step's items too: QEMU sends
/// keys through a delayed queue, and a client that hung up at once lost
/// the last key there under load. Ends once the client said `ok`.
pub fn drive_vnc_steps(
    vm: &mut Spawned,
    sock: &std::path::Path,
    steps: &[(&[&str], usize)],
    what: &str,
    count: impl Fn(&str) -> usize,
    limit: Duration,
) {
    let mut args: Vec<&str> = Vec::new();
    for (step, _) in steps {
        args.extend_from_slice(step);
        args.push("sync");
    }
    let mut client = Spawned::start(
        die_with_test(&mut Command::new("python3"))
            .arg(vnc_client_script())
            .arg(sock)
            .args(&args)
            .stdin(Stdio::piped()),
    );
    let mut seen = 0;
    for (step, n) in steps {
        seen += n;
        vm.until(&format!("{seen} {what} after {step:?}"), limit, |out, _| {
            count(out) >= seen
        });
        client.line_with("sync", limit);
        std::io::Write::write_all(client.stdin(), b"\n").unwrap();
    }
    client.line_with("ok", limit);
}

/// Whether python3 has vncdotool (scripts/setup.sh installs it): without
/// it a test skips, unless [`required`].
pub fn have_vncdotool() -> bool {
    let ok = rvirt_testkit::try_run(
        Command::new("python3").args(["-c", "import vncdotool"]),
        Duration::from_secs(90),
    )
    .is_ok_and(|o| o.status.success());
    ok || require("python3 with vncdotool")
}

/// `cmd` on the PATH.
pub fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|f| f.is_file())
    })
}

/// Debian's SeaBIOS image `name` (`bios-256k.bin`, `bios-microvm.bin`),
/// or None when the package is missing (see [`require`]).
pub fn seabios(name: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new("/usr/share/seabios").join(name);
    if p.exists() {
        return Some(p);
    }
    require(&p.display().to_string());
    None
}

/// An El Torito ISO (no emulation) in `dir` whose boot image is the test
/// boot disk, made with xorriso; None when xorriso is missing.
pub fn boot_iso(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let Some(xorriso) = which("xorriso") else {
        require("xorriso");
        return None;
    };
    let tree = dir.join("iso");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(rvirt_test_guests::boot_disk(), tree.join("boot.img")).unwrap();
    let iso = dir.join("boot.iso");
    let mut cmd = Command::new(xorriso);
    cmd.args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args(["-b", "boot.img", "-no-emul-boot", "-boot-load-size", "128"])
        .arg(&tree);
    let run = Spawned::start(&mut cmd).output(Duration::from_secs(60));
    assert!(run.status.success(), "xorriso: {run:?}");
    Some(iso)
}

/// A firmware boot's serial lines, comparable between VMMs. SeaBIOS's
/// serial console buffers its output and sends it when the UART can take
/// it, also from its timer interrupt: the dots after "Booting from Hard
/// Disk" (or "DVD/CD") and their line end come whenever that is — before
/// the boot sector's first line, after it, or (on QEMU, whose UART is
/// paced at the line's baud rate) never, when the boot sector took over
/// first. Those dots are left out, and the power-off line; every other
/// byte of both sides is compared.
pub fn seabios_lines(serial: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(serial)
        .unwrap()
        .replace("Booting from Hard Disk", "Booting from Hard Disk\n")
        .replace("Booting from DVD/CD", "Booting from DVD/CD\n")
        .lines()
        .map(|l| l.trim_start_matches('.'))
        .filter(|l| !l.is_empty() && !l.starts_with("POWEROFF"))
        .map(String::from)
        .collect()
}
