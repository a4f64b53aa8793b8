//! Running rvirt-vmm as a process, the way a user or a daemon does.

#![allow(dead_code, unused_imports)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use rvirt_test_guests::{output, Guest};

pub fn vmm() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvirt-vmm"))
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Makes the process started by `cmd` die with the test thread that starts
/// it, so a failing test never leaves a VM running.
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

/// Spawns rvirt-vmm with `args`, stdout and stderr piped.
pub fn spawn(args: &[&str]) -> Child {
    die_with_test(&mut Command::new(vmm()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rvirt-vmm")
}

/// Waits for `child` for at most `limit`, killing it past that.
pub fn wait(mut child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut out) = out {
            let _ = out.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut err) = err {
            let _ = err.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let s = child.wait().unwrap();
            let stdout = t_out.join().unwrap();
            panic!("rvirt-vmm did not exit within {limit:?}; stdout so far:\n{stdout}\nstatus {s}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
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

/// Reads lines from `r` until one satisfies `pred` or `limit` passes;
/// returns everything read.
pub fn read_until<R: Read + Send + 'static>(
    r: R,
    limit: Duration,
    pred: impl Fn(&str) -> bool + Send + 'static,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = r;
        let mut acc = String::new();
        let mut buf = [0u8; 512];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    acc.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if pred(&acc) {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(acc);
    });
    rx.recv_timeout(limit).unwrap_or_default()
}

pub fn sigterm(child: &Child) {
    // SAFETY: kill on a child PID we own and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}
