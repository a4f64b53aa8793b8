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
