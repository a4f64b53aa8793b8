//! Shared by the tests: a real rvirtd on a temporary tree, the real
//! `virsh` pointed at it, domain XML for the test guests, and waits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvirt_test_guests::Guest;

/// A running rvirtd with its own tree.
pub struct Rvirtd {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Extra daemon options.
    pub args: Vec<String>,
}

/// rvirt-vmm from the same target directory (`cargo build -p rvirt-vmm`),
/// or `$RVIRT_VMM`.
pub fn vmm() -> PathBuf {
    if let Some(p) = std::env::var_os("RVIRT_VMM") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_BIN_EXE_rvirtd"))
        .parent()
        .expect("target dir")
        .join("rvirt-vmm");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p rvirt-vmm` first (or set RVIRT_VMM)",
        p.display()
    );
    p
}

impl Rvirtd {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Rvirtd {
            dir,
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.root().join("run/rvirt/rvirt-sock")
    }

    pub fn uri(&self) -> String {
        format!("qemu+unix:///system?socket={}", self.socket().display())
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join(format!("var/log/rvirt/qemu/{name}.log")))
            .unwrap_or_default()
    }

    /// Starts (or restarts) the daemon and waits for its socket.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new(env!("CARGO_BIN_EXE_rvirtd"))
            .arg("--root")
            .arg(self.root())
            .arg("--vmm")
            .arg(vmm())
            .arg("--destroy-grace")
            .arg("3")
            .args(&self.args)
            .env("RVIRTD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.root().join("rvirtd.stderr"))
                    .expect("daemon log"),
            )
            .spawn()
            .expect("start rvirtd");
        self.child = Some(child);
        wait_for("the rvirtd socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
        });
    }

    /// `kill -9` the daemon (its VMs keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs the real virsh against this daemon.
    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .env("LC_ALL", "C")
            .output()
            .expect("run virsh")
    }

    /// virsh that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed: {}{}\ndaemon: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// virsh that must fail with exit status 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "virsh {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, name: &str) -> String {
        self.ok(&["domstate", "--reason", name]).trim().to_string()
    }

    pub fn wait_state(&self, name: &str, want: &str) {
        wait_for(
            &format!("{name} to be {want}"),
            Duration::from_secs(15),
            || self.state(name) == want,
        );
    }

    pub fn wait_log(&self, name: &str, needle: &str) {
        wait_for(
            &format!("'{needle}' in the log of {name}"),
            Duration::from_secs(15),
            || self.log(name).contains(needle),
        );
    }

    /// Writes `xml` to a file in the tree and returns its path.
    pub fn xml_file(&self, file: &str, xml: &str) -> String {
        let p = self.root().join(file);
        std::fs::write(&p, xml).expect("write xml");
        p.to_string_lossy().into_owned()
    }

    pub fn daemon_log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.root().join("rvirtd.stderr")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Rvirtd {
    fn drop(&mut self) {
        // Leave no VM behind: every runtime record names a pid.
        let state = self.root().join("run/rvirt/qemu");
        for e in std::fs::read_dir(state).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path().join("vmm.pid")) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    // SAFETY: kill sends a signal to one positive pid.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        self.kill9();
    }
}

/// Polls `f` until it holds, failing the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the real virsh is installed. Without it the tests are skipped,
/// unless RVIRT_REQUIRE_REFERENCE is set, which makes them fail.
pub fn have_virsh() -> bool {
    let found = Command::new("virsh")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "virsh (Debian package libvirt-clients) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virsh not installed: test skipped");
    }
    found
}

/// A microvm domain booting `guest` with its serial on the VMM's stdout
/// (so the guest's output lands in the domain log).
pub fn domain_xml(name: &str, guest: Guest) -> String {
    kernel_xml(name, &guest.path().to_string_lossy())
}

pub fn kernel_xml(name: &str, kernel: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"
    )
}

/// The last `COUNT n` the counter guest printed.
pub fn last_count(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("COUNT ").and_then(|n| n.trim().parse().ok()))
}
