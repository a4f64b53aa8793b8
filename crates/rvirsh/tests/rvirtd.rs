//! rvirsh against rvirtd, next to the real virsh: rvirsh drives the
//! lifecycle of real VMs (the test guests), and after every step every
//! read-only command prints the same through both tools. The console is
//! driven through a pseudo-terminal (`script`).
//!
//! Needs `target/.../rvirtd` and `rvirt-vmm` built next to rvirsh (any
//! `cargo test --workspace` or `cargo build -p rvirtd -p rvirt-vmm` does
//! that), the real virsh, and /dev/kvm. Skips without them unless
//! `RVIRT_REQUIRE_REFERENCE` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_same, raw, Run, LIMIT};
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, try_run, Spawned};

struct Daemon {
    dir: tempfile::TempDir,
    child: Spawned,
}

impl Daemon {
    fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.dir.path().join("run/rvirt/rvirt-sock").display()
        )
    }

    fn virsh(&self, args: &[&str]) -> Run {
        let u = self.uri();
        let mut a = vec!["-c", u.as_str()];
        a.extend_from_slice(args);
        raw("virsh", &a, &[])
    }

    fn rvirsh(&self, args: &[&str]) -> Run {
        let u = self.uri();
        let mut a = vec!["-c", u.as_str()];
        a.extend_from_slice(args);
        raw(common::rvirsh_bin(), &a, &[])
    }

    /// rvirsh that must succeed.
    fn ok(&self, args: &[&str]) -> Run {
        let r = self.rvirsh(args);
        assert_eq!(r.code, 0, "rvirsh {args:?}: {r:?}");
        r
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let state = self.dir.path().join("run/rvirt/qemu");
        for e in std::fs::read_dir(state).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path().join("vmm.pid")) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    if pid > 0 {
                        // SAFETY: kill sends a signal to one positive pid,
                        // a VMM this test started through rvirtd.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        // The daemon itself goes with `child`.
    }
}

fn unavailable(why: &str) -> Option<Daemon> {
    if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("RVIRT_REQUIRE_REFERENCE is set but {why}");
    }
    eprintln!("skipping: {why}");
    None
}

fn sibling(name: &str) -> PathBuf {
    Path::new(common::rvirsh_bin())
        .parent()
        .expect("target dir")
        .join(name)
}

/// Starts rvirtd on a fresh tree; `None` (skip) when a piece is missing.
fn daemon() -> Option<Daemon> {
    daemon_with(&[])
}

/// [`daemon`] with more rvirtd arguments.
fn daemon_with(extra: &[&str]) -> Option<Daemon> {
    let (rvirtd, vmm) = (sibling("rvirtd"), sibling("rvirt-vmm"));
    for p in [&rvirtd, &vmm] {
        if !p.exists() {
            return unavailable(&format!(
                "{} is not built (cargo build -p rvirtd -p rvirt-vmm)",
                p.display()
            ));
        }
    }
    if !Path::new("/dev/kvm").exists() {
        return unavailable("/dev/kvm is missing");
    }
    if !try_run(Command::new("virsh").arg("--version"), LIMIT).is_ok_and(|o| o.status.success()) {
        return unavailable("virsh is not installed");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Spawned::start(
        Command::new(&rvirtd)
            .arg("--root")
            .arg(dir.path())
            .arg("--vmm")
            .arg(&vmm)
            .arg("--destroy-grace")
            .arg("3")
            .args(extra)
            .stdin(Stdio::null()),
    );
    let d = Daemon { dir, child };
    let sock = d.dir.path().join("run/rvirt/rvirt-sock");
    poll("the rvirtd socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock)
            .map(drop)
            .map_err(|e| format!("{e}; rvirtd said:\n{}", d.child.stderr_text()))
    });
    Some(d)
}

fn domain_xml(name: &str, guest: Guest) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <uuid>5eeba110-836d-4645-9d66-{:012x}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        name.bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b))
                .wrapping_mul(0x100_0000_01b3))
            & 0xffff_ffff_ffff,
        guest.path().display()
    )
}

/// Every read-only command, through both tools, must print the same.
fn compare_views(d: &Daemon, name: &str, step: &str) {
    for args in [
        vec!["list"],
        vec!["list", "--all"],
        vec!["list", "--all", "--name"],
        vec!["list", "--all", "--uuid"],
        vec!["dominfo", name],
        vec!["domstate", name, "--reason"],
        vec!["domid", name],
        vec!["domuuid", name],
        vec!["dumpxml", name],
        vec!["dumpxml", name, "--inactive"],
        vec!["vcpuinfo", name],
        vec!["domblklist", name],
        vec!["domiflist", name],
    ] {
        let v = d.virsh(&args);
        let r = d.rvirsh(&args);
        assert_same(&format!("after {step}: {}", args.join(" ")), &v, &r, &[]);
    }
}

#[test]
fn rvirsh_drives_rvirtd_and_sees_what_virsh_sees() {
    let Some(d) = daemon() else { return };
    let file = d.dir.path().join("ctr.xml");
    std::fs::write(&file, domain_xml("ctr", Guest::Counter)).expect("xml");
    let f = file.to_str().unwrap();
    assert_eq!(
        d.ok(&["define", f]).stdout,
        format!("Domain 'ctr' defined from {f}\n\n")
    );
    compare_views(&d, "ctr", "define");
    // Enough domains for list's pipelined state queries.
    let many: Vec<String> = (0..24).map(|i| format!("many-{i:02}")).collect();
    for n in &many {
        let p = d.dir.path().join(format!("{n}.xml"));
        std::fs::write(&p, domain_xml(n, Guest::Counter)).expect("xml");
        d.ok(&["define", p.to_str().unwrap()]);
    }
    d.ok(&["start", "many-07"]);
    d.ok(&["suspend", "many-07"]);
    for args in [
        vec!["list", "--all"],
        vec!["list"],
        vec!["list", "--inactive"],
    ] {
        assert_same(&args.join(" "), &d.virsh(&args), &d.rvirsh(&args), &[]);
    }
    assert!(d.ok(&["list"]).stdout.contains(" many-07   paused\n"));
    d.ok(&["destroy", "many-07"]);
    for n in &many {
        d.ok(&["undefine", n]);
    }
    assert_eq!(d.ok(&["start", "ctr"]).stdout, "Domain 'ctr' started\n\n");
    compare_views(&d, "ctr", "start");
    for (args, msg) in [
        (vec!["suspend", "ctr"], "Domain 'ctr' suspended\n\n"),
        (vec!["resume", "ctr"], "Domain 'ctr' resumed\n\n"),
        (
            vec!["autostart", "ctr"],
            "Domain 'ctr' marked as autostarted\n\n",
        ),
    ] {
        assert_eq!(d.ok(&args).stdout, msg);
        compare_views(&d, "ctr", &args.join(" "));
    }
    assert_eq!(
        d.ok(&["domstate", "ctr", "--reason"]).stdout,
        "running (unpaused)\n\n"
    );
    // Failures print what virsh prints.
    for args in [
        vec!["start", "ctr"],
        vec!["dominfo", "nosuch"],
        vec!["undefine", "nosuch"],
    ] {
        let v = d.virsh(&args);
        let r = d.rvirsh(&args);
        assert_same(&args.join(" "), &v, &r, &[]);
        assert_eq!(r.code, 1);
    }
    assert_eq!(
        d.ok(&["destroy", "ctr"]).stdout,
        "Domain 'ctr' destroyed\n\n"
    );
    compare_views(&d, "ctr", "destroy");
    assert_eq!(
        d.ok(&["domstate", "ctr", "--reason"]).stdout,
        "shut off (destroyed)\n\n"
    );
    let v = d.virsh(&["destroy", "ctr"]);
    let r = d.rvirsh(&["destroy", "ctr"]);
    assert_same("destroy of a shut-off domain", &v, &r, &[]);
    assert_eq!(
        d.ok(&["start", "--paused", "ctr"]).stdout,
        "Domain 'ctr' started\n\n"
    );
    assert_eq!(d.ok(&["domstate", "ctr"]).stdout, "paused\n\n");
    compare_views(&d, "ctr", "start --paused");
    d.ok(&["destroy", "ctr"]);
    d.ok(&["autostart", "--disable", "ctr"]);
    assert_eq!(
        d.ok(&["undefine", "ctr"]).stdout,
        "Domain 'ctr' has been undefined\n\n"
    );
    assert_eq!(d.ok(&["list", "--all", "--name"]).stdout, "\n");
    for args in [
        vec!["version"],
        vec!["version", "--daemon"],
        vec!["hostname"],
        vec!["nodeinfo"],
        vec!["uri"],
    ] {
        assert_same(&args.join(" "), &d.virsh(&args), &d.rvirsh(&args), &[]);
    }
    let v = d.virsh(&["domxml-to-native", "qemu-argv", f]);
    let r = d.rvirsh(&["domxml-to-native", "qemu-argv", f]);
    assert_same("domxml-to-native", &v, &r, &[]);
}

#[test]
fn console_shows_the_guest_and_leaves_on_ctrl_bracket() {
    let Some(d) = daemon() else { return };
    let file = d.dir.path().join("con.xml");
    std::fs::write(&file, domain_xml("con", Guest::Counter)).expect("xml");
    d.ok(&["define", file.to_str().unwrap()]);
    d.ok(&["start", "con"]);
    // `script` gives rvirsh a terminal; after a second of output the
    // escape character ends the session.
    let text = through_pty(&format!(
        "{} -c '{}' console con",
        common::rvirsh_bin(),
        d.uri()
    ));
    assert!(
        text.starts_with("Connected to domain 'con'\r\nEscape character is ^] (Ctrl + ])\r\n"),
        "{text:?}"
    );
    assert!(text.contains("COUNT"), "no guest output in {text:?}");
    // Still running: leaving the console does not touch the domain.
    assert_eq!(d.ok(&["domstate", "con"]).stdout, "running\n\n");
    // Without a terminal, virsh's refusal.
    let v = d.virsh(&["console", "con"]);
    let r = d.rvirsh(&["console", "con"]);
    assert_same("console without a tty", &v, &r, &[]);
    d.ok(&["destroy", "con"]);
    // start --console: started, then attached.
    let text = through_pty(&format!(
        "{} -c '{}' start --console con",
        common::rvirsh_bin(),
        d.uri()
    ));
    assert!(
        text.starts_with("Domain 'con' started\r\nConnected to domain 'con'\r\n"),
        "{text:?}"
    );
    assert!(text.contains("COUNT"), "no guest output in {text:?}");
    d.ok(&["destroy", "con"]);
}

/// Runs a shell command in a pseudo-terminal (`script`), types `Ctrl+]`
/// once the guest's output (`COUNT`) shows, and returns what the terminal
/// showed; the command must end by itself and exit 0. (The console is in
/// raw mode by then: typed sooner, a loaded machine's console could still
/// be connecting, and the key waited in the line discipline to be
/// flushed by the switch to raw mode.)
fn through_pty(cmd: &str) -> String {
    let mut child = Spawned::start(
        Command::new("script")
            .args(["-qefc", cmd, "/dev/null"])
            .stdin(Stdio::piped()),
    );
    child.until("the guest's output on the console", LIMIT, |o, _| {
        o.contains("COUNT")
    });
    {
        use std::io::Write;
        let stdin = child.stdin();
        stdin.write_all(&[0x1d]).expect("send Ctrl+]");
        stdin.flush().expect("flush");
    }
    // It must end on Ctrl+].
    let out = child.output(Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "`{cmd}`: {text:?}");
    text
}

#[test]
fn events_from_rvirtd_print_as_in_virsh() {
    let Some(d) = daemon() else { return };
    let file = d.dir.path().join("ev.xml");
    std::fs::write(&file, domain_xml("ev", Guest::Counter)).expect("xml");
    let probe_file = d.dir.path().join("evprobe.xml");
    std::fs::write(&probe_file, domain_xml("evprobe", Guest::Counter)).expect("xml");
    let u = d.uri();
    let spawn = |prog: &str| {
        Spawned::start(Command::new(prog).args(["-c", &u, "event", "--all", "--loop"]))
    };
    let mut loops = [spawn("virsh"), spawn(common::rvirsh_bin())];
    common::until_loops_listen(&[&loops[0], &loops[1]], "evprobe", || {
        d.ok(&["define", probe_file.to_str().unwrap()]);
        d.ok(&["undefine", "evprobe"]);
    });
    for args in [
        vec!["define", file.to_str().unwrap()],
        vec!["start", "ev"],
        vec!["suspend", "ev"],
        vec!["resume", "ev"],
        vec!["destroy", "ev"],
        vec!["undefine", "ev"],
    ] {
        d.ok(&args);
    }
    // Ended with Ctrl+C once the last event is in.
    let last = "event 'lifecycle' for domain 'ev': Undefined Removed";
    for l in &mut loops {
        l.until(last, LIMIT, |o, _| o.contains(last));
        l.signal(libc::SIGINT);
    }
    let outs: Vec<Run> = loops
        .into_iter()
        .map(|c| common::without_probe(&c.output(LIMIT).into(), "evprobe"))
        .collect();
    assert_same("event --all --loop on rvirtd", &outs[0], &outs[1], &[]);
    assert!(
        outs[1]
            .stdout
            .contains("event 'lifecycle' for domain 'ev': Started Booted\n"),
        "{}",
        outs[1].stdout
    );
}

/// rvirtd drops a client that stays silent past its keepalive limit (here
/// about 2 s); an editor left open longer than that must not lose the
/// edit: the client's reader thread answers the PINGs meanwhile.
#[test]
fn edit_outlives_the_daemons_keepalive_limit() {
    let Some(d) = daemon_with(&["--keepalive-interval", "1", "--keepalive-count", "1"]) else {
        return;
    };
    let file = d.dir.path().join("ka.xml");
    let xml = domain_xml("ka", Guest::Counter)
        .replace("  <vcpu", "  <description>before</description>\n  <vcpu");
    std::fs::write(&file, xml).expect("xml");
    d.ok(&["define", file.to_str().unwrap()]);
    let r = raw(
        common::rvirsh_bin(),
        &["-c", &d.uri(), "edit", "ka"],
        &[
            ("VISUAL", ""),
            ("EDITOR", "sleep 4; sed -i -e s/before/after/"),
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Domain 'ka' XML configuration edited.\n\n"),
        "{r:?}"
    );
    let dump = d.ok(&["dumpxml", "ka", "--inactive"]).stdout;
    assert!(dump.contains("<description>after</description>"), "{dump}");
}
