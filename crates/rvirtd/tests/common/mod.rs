//! Shared by the tests: a real rvirtd on a temporary tree, the real
//! `virsh` and rvirt-remote's client pointed at it, domain XML for the test
//! guests, and waits, each with a deadline (rvirt-testkit) whose failure
//! shows the daemon's state and log.

#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rvirt_remote::Client;
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, process_state, SocketDeadline, Spawned};

/// How long one virsh command may take: a start boots a VMM and waits for
/// its monitor, a destroy may wait out the 3 s grace, on a loaded machine.
pub const VIRSH_LIMIT: Duration = Duration::from_secs(60);

/// How long a connection of rvirt-remote's client may stay open: its calls
/// block without a timeout, so the socket is shut down past this.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// A running rvirtd with its own tree.
pub struct Rvirtd {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Extra daemon options.
    pub args: Vec<String>,
    /// Extra environment for the daemon (and the VMMs it starts).
    pub env: Vec<(String, String)>,
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
    assert_fresh(&p);
    p
}

/// `cargo test -p rvirtd` builds rvirtd but not rvirt-vmm: a VMM built
/// before a rebase or an edit would be tested in place of the sources
/// (a disk_cache failure came from one that predated CONFIG_WCE). Its
/// dep-info file (cargo's `rvirt-vmm.d`, beside it) lists every source it
/// was built from; one newer than the binary means it is stale.
fn assert_fresh(vmm: &Path) {
    let Ok(deps) = std::fs::read_to_string(vmm.with_extension("d")) else {
        return;
    };
    let built = std::fs::metadata(vmm).and_then(|m| m.modified()).unwrap();
    let sources = deps.split_once(": ").map_or("", |(_, s)| s);
    // Make's syntax: a space inside a path is escaped.
    let sources = sources.replace("\\ ", "\0");
    for src in sources.split_whitespace() {
        let src = PathBuf::from(src.replace('\0', " "));
        let newer = std::fs::metadata(&src)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built);
        assert!(
            !newer,
            "{} is older than {}: run `cargo build -p rvirt-vmm` first (or set RVIRT_VMM)",
            vmm.display(),
            src.display()
        );
    }
}

impl Rvirtd {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// A daemon with `env` set in its environment, which its children
    /// (VMMs, passt) inherit.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Rvirtd {
            dir,
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RVIRT_LOG", "debug")
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
        poll("the rvirtd socket", Duration::from_secs(10), || {
            UnixStream::connect(self.socket())
                .map(drop)
                .map_err(|e| format!("{e}\n{}", self.report()))
        });
    }

    /// The daemon's state and the tail of its log, for failure reports.
    pub fn report(&self) -> String {
        report(self.root(), self.child.as_ref().map(|c| c.id() as i32))
    }

    /// [`Rvirtd::report`] for a closure that outlives this borrow.
    pub fn reporter(&self) -> impl Fn() -> String + Send + 'static {
        let root = self.root().to_path_buf();
        let pid = self.child.as_ref().map(|c| c.id() as i32);
        move || report(&root, pid)
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
        Spawned::start(
            Command::new("virsh")
                .arg("-c")
                .arg(self.uri())
                .args(args)
                .env("LC_ALL", "C")
                .stdin(Stdio::null()),
        )
        .on_fail(self.reporter())
        .output(VIRSH_LIMIT)
    }

    /// rvirt-remote's client, connected and opened, with a deadline whose
    /// report shows this daemon's state and log.
    pub fn client(&self) -> Conn {
        open(&self.socket(), "qemu:///system", self.reporter())
            .unwrap_or_else(|e| panic!("open qemu:///system: {e}"))
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
        poll(
            &format!("{name} to be {want}"),
            Duration::from_secs(15),
            || {
                let now = self.state(name);
                if now == want {
                    Ok(())
                } else {
                    Err(format!("{name} is {now}\n{}", self.report()))
                }
            },
        );
    }

    pub fn wait_log(&self, name: &str, needle: &str) {
        poll(
            &format!("'{needle}' in the log of {name}"),
            Duration::from_secs(15),
            || {
                let log = self.log(name);
                // The whole line: a marker's value may still be on its way.
                if log.find(needle).is_some_and(|i| log[i..].contains('\n')) {
                    Ok(())
                } else {
                    Err(format!("{name}'s log:\n{log}\n{}", self.report()))
                }
            },
        );
    }

    /// Writes `xml` to a file in the tree and returns its path.
    pub fn xml_file(&self, file: &str, xml: &str) -> String {
        let p = self.root().join(file);
        std::fs::write(&p, xml).expect("write xml");
        p.to_string_lossy().into_owned()
    }

    pub fn daemon_log_tail(&self) -> String {
        log_tail(self.root())
    }
}

fn log_tail(root: &Path) -> String {
    let s = std::fs::read_to_string(root.join("rvirtd.stderr")).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn report(root: &Path, pid: Option<i32>) -> String {
    let state = pid.map(process_state).unwrap_or_default();
    format!("rvirtd:\n{state}rvirtd's log:\n{}", log_tail(root))
}

/// rvirt-remote's client with a deadline on its connection: its calls
/// block without a timeout, so past [`CLIENT_LIMIT`] the socket is shut
/// down and the call in progress fails.
pub struct Conn {
    client: Client,
    _deadline: SocketDeadline,
}

/// Connects rvirt-remote's client to `sock` and opens `name`.
pub fn connect(sock: &Path, name: &str) -> Conn {
    try_connect(sock, name).unwrap_or_else(|e| panic!("open {name} on {}: {e}", sock.display()))
}

/// [`connect`] that returns the daemon's refusal.
pub fn try_connect(sock: &Path, name: &str) -> Result<Conn, rvirt_remote::ClientError> {
    open(sock, name, String::new)
}

fn open(
    sock: &Path,
    name: &str,
    report: impl FnOnce() -> String + Send + 'static,
) -> Result<Conn, rvirt_remote::ClientError> {
    let s =
        UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect to {}: {e}", sock.display()));
    let deadline = SocketDeadline::arm_reporting(&s, "rvirt-remote's client", CLIENT_LIMIT, report);
    let client = Client::handshake(s, name)?;
    Ok(Conn {
        client,
        _deadline: deadline,
    })
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
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
        // Nor a network's dnsmasq (nor what it forked: its process group),
        // which would keep a test's network namespace alive.
        let nets = self.root().join("run/rvirt/network");
        for e in std::fs::read_dir(nets).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                if let Ok(pid) = std::fs::read_to_string(e.path()) {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        if pid > 0 {
                            // SAFETY: kill sends a signal to one process
                            // group, dnsmasq's own (it runs in its session).
                            unsafe { libc::kill(-pid, libc::SIGKILL) };
                        }
                    }
                }
            }
        }
        self.kill9();
    }
}

/// Whether the real virsh is installed. Without it the tests are skipped,
/// unless RVIRT_REQUIRE_REFERENCE is set, which makes them fail.
pub fn have_virsh() -> bool {
    let found = rvirt_testkit::try_run(
        Command::new("virsh").arg("--version"),
        Duration::from_secs(30),
    )
    .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "virsh (Debian package libvirt-clients) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virsh not installed: test skipped");
    }
    found
}

/// Whether Debian's virt-install is installed (skipped without, unless
/// RVIRT_REQUIRE_REFERENCE is set).
pub fn have_virt_install() -> bool {
    let found = rvirt_testkit::try_run(
        Command::new("virt-install").arg("--version"),
        Duration::from_secs(60),
    )
    .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "virt-install (Debian package virtinst) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virt-install not installed: test skipped");
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

/// `xml` with a virtio console (`<console type='pty'><target
/// type='virtio'/>`) added to its devices.
pub fn with_virtio_console(xml: &str) -> String {
    xml.replace(
        "<memballoon model='none'/>",
        "<memballoon model='none'/>\n    <console type='pty'><target type='virtio'/></console>",
    )
}

/// The alias of the virtio console in a live definition (libvirt puts
/// serial0's mirror first, so it is `console1` when there is a serial).
pub fn virtio_console_alias(live: &str) -> String {
    live.split("<target type='virtio'")
        .nth(1)
        .and_then(|rest| rest.split("<alias name='").nth(1))
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no alias for the virtio console: {live}"))
        .to_string()
}

/// The `display` guest on a `pc` machine with a VNC console on a port
/// from 5900 and a bochs-display (`<video model='bochs'>`): it draws
/// [`display_pattern`] at 800x600, prints `DRAWN`, waits two minutes for a
/// byte on its serial that never comes (the serial is rvirtd's log) and
/// powers off.
pub fn display_xml(name: &str) -> String {
    domain_xml(name, Guest::Display)
        .replace("machine='microvm'", "machine='pc'")
        .replace(
            "<memballoon model='none'/>",
            "<memballoon model='none'/>\n    <graphics type='vnc' autoport='yes'/>\n    <video><model type='bochs'/></video>",
        )
}

/// What the display guest draws at its first step: four bands (red,
/// green, blue, white) and a yellow box, 800x600 RGB.
pub fn display_pattern() -> (usize, usize, Vec<u8>) {
    let (w, h) = (800, 600);
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let rgb = if (350..450).contains(&x) && (100..150).contains(&y) {
                [255, 255, 0]
            } else {
                [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]][y / 150]
            };
            px.extend_from_slice(&rgb);
        }
    }
    (w, h, px)
}

/// The first pixel where two RGB pictures differ, with both colours, or
/// their sizes when those differ.
pub fn first_difference(
    got: &(usize, usize, Vec<u8>),
    want: &(usize, usize, Vec<u8>),
) -> Option<String> {
    if (got.0, got.1) != (want.0, want.1) {
        return Some(format!("{}x{}, not {}x{}", got.0, got.1, want.0, want.1));
    }
    let i = got
        .2
        .chunks(3)
        .zip(want.2.chunks(3))
        .position(|(a, b)| a != b)?;
    Some(format!(
        "pixel ({}, {}) is {:?}, not {:?}",
        i % got.0,
        i / got.0,
        &got.2[i * 3..i * 3 + 3],
        &want.2[i * 3..i * 3 + 3]
    ))
}

/// qemu-img's exit code and its output (stdout then stderr), within 60 s.
pub fn qemu_img(args: &[&str]) -> (i32, String) {
    let out = rvirt_testkit::run(Command::new("qemu-img").args(args), Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// qemu-img that must succeed: its stdout.
pub fn qemu_img_ok(args: &[&str]) -> String {
    let out = rvirt_testkit::run(Command::new("qemu-img").args(args), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
