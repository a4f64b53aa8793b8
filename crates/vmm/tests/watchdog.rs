//! The i6300esb watchdog, NMIs and the parallel port through test guests,
//! each run on rvirt-vmm and on QEMU 7.2 with the same command line
//! (differential): the same QMP events in the same order, the same guest
//! output, the same bytes in the parallel port's file.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

fn qemu() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("qemu-system-x86_64"))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)"
        );
        eprintln!("qemu-system-x86_64 not found: the QEMU half is skipped");
    }
    found
}

/// The programs to run: rvirt-vmm, then QEMU if there is one.
fn programs() -> Vec<PathBuf> {
    let mut p = vec![vmm()];
    p.extend(qemu());
    p
}

fn base_args(guest: Guest, serial: &Path, append: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "pc",
        "-enable-kvm",
        "-cpu",
        "qemu64,-pni",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "-serial".into(),
        format!("file:{}", serial.display()),
        "-kernel".into(),
        guest.path().display().to_string(),
        "-append".into(),
        append.into(),
    ]);
    a
}

/// What one run showed: the events (name and data) from `cont` on, the
/// guest's `WDT`/`LPT` lines, whether the process ended with 0.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<(String, Option<Value>)>,
    lines: Vec<String>,
    success: bool,
}

/// Runs the `wdt` guest under `program` with `-watchdog-action action`,
/// stopped at start (`-S`) so no event is missed; `before` runs on the
/// monitor before `cont`, `stopped` once the VM stops on its own (the
/// pause action) and must end it.
fn run_wdt(
    program: &Path,
    action: &str,
    append: &str,
    extra: &[&str],
    before: &dyn Fn(&rvirt_qmp::QmpClient),
    stopped: &dyn Fn(&rvirt_qmp::QmpClient),
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.log");
    let sock = dir.path().join("qmp.sock");
    let mut args = base_args(Guest::Wdt, &serial, append);
    args.extend(
        [
            "-S",
            "-device",
            "i6300esb,id=watchdog0",
            "-watchdog-action",
            action,
            "-qmp",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(format!("unix:{},server=on,wait=off", sock.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let vm = Spawned::start(
        die_with_test(&mut Command::new(program))
            .args(&args)
            .stdin(Stdio::null()),
    );
    let qmp = qmp_connect(&sock, T);
    before(&qmp);
    qmp.execute("cont", None).expect("cont");
    let deadline = Instant::now() + T;
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{}: no end after {events:?}\n{}",
            program.display(),
            vm.describe()
        );
        let ev = match qmp.next_event(left) {
            Ok(ev) => ev,
            Err(rvirt_qmp::ClientError::Disconnected) => break,
            Err(e) => panic!("{}: {e} after {events:?}", program.display()),
        };
        let name = ev.event.clone();
        events.push((name.clone(), ev.data.clone()));
        if name == "STOP" {
            stopped(&qmp);
        }
        if name == "SHUTDOWN" {
            break;
        }
    }
    drop(qmp);
    let out = vm.output(T);
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    Outcome {
        events,
        lines: serial
            .lines()
            .filter(|l| l.starts_with("WDT"))
            .map(str::to_string)
            .collect(),
        success: out.status.success(),
    }
}

fn nothing(_: &rvirt_qmp::QmpClient) {}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Waits for a text in the guest's serial output; returns all of it.
type Until<'a> = &'a dyn Fn(&str) -> String;
/// What an nmi run does once the guest is ready: the monitor, a wait on
/// the serial output, and the guest's go.
type DriveNmi<'a> = &'a dyn Fn(&rvirt_qmp::QmpClient, Until, &dyn Fn());

/// Runs the `nmi` guest under `program` with `append`; `drive` runs on
/// the monitor once the guest is ready (its handler installed) with a way
/// to wait for its serial output and the guest's go (a byte on its COM2,
/// the VMM's stdin). Returns the guest's NMI lines and the events seen,
/// once the guest powered off.
fn run_nmi(program: &Path, append: &str, drive: DriveNmi) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.log");
    let sock = dir.path().join("qmp.sock");
    let mut args = base_args(Guest::Nmi, &serial, append);
    args.extend(["-no-reboot".into(), "-serial".into(), "stdio".into()]);
    args.extend(["-qmp".into()]);
    args.push(format!("unix:{},server=on,wait=off", sock.display()));
    let mut vm = Spawned::start(
        die_with_test(&mut Command::new(program))
            .args(&args)
            .stdin(Stdio::piped()),
    );
    let com2 = std::fs::File::from(vm.stdin().as_fd().try_clone_to_owned().unwrap());
    let go = || (&com2).write_all(b"g").expect("the guest's go on COM2");
    let qmp = qmp_connect(&sock, T);
    let pid = vm.pid();
    let until = |what: &str| wait_file(&serial, what, T, || rvirt_testkit::process_state(pid));
    until("NMI_READY");
    drive(&qmp, &until, &go);
    until("NMI_END");
    let mut events = Vec::new();
    loop {
        match qmp.next_event(T) {
            Ok(ev) => {
                let end = ev.event == "SHUTDOWN";
                events.push((ev.event.clone(), ev.data.clone()));
                if end {
                    break;
                }
            }
            Err(rvirt_qmp::ClientError::Disconnected) => break,
            Err(e) => panic!("{}: {e} after {events:?}", program.display()),
        }
    }
    drop(qmp);
    let success = vm.wait(T).success();
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    Outcome {
        events,
        lines: serial
            .lines()
            .filter(|l| l.starts_with("NMI"))
            .map(str::to_string)
            .collect(),
        success,
    }
}

fn inject_nmi(q: &rvirt_qmp::QmpClient) {
    let r = q.execute("inject-nmi", None).expect("inject-nmi");
    assert_eq!(r, json!({}));
}

/// Runs `case` on every program and checks they agree; returns rvirt's.
fn differential(case: impl Fn(&Path) -> Outcome) -> Outcome {
    let mut runs = programs().into_iter().map(|p| (name_of(&p), case(&p)));
    let (_, ours) = runs.next().unwrap();
    for (name, theirs) in runs {
        assert_eq!(ours, theirs, "rvirt-vmm and {name} differ");
    }
    ours
}

fn ev(name: &str, data: Option<Value>) -> (String, Option<Value>) {
    (name.to_string(), data)
}

fn shutdown(reason: &str) -> (String, Option<Value>) {
    let guest = reason.starts_with("guest");
    ev("SHUTDOWN", Some(json!({"guest": guest, "reason": reason})))
}

fn watchdog(action: &str) -> (String, Option<Value>) {
    ev("WATCHDOG", Some(json!({ "action": action })))
}

/// `o` with each run of identical RESET events as one: SeaBIOS, which
/// QEMU runs before the guest, resets the machine once more when it finds
/// itself booted after a reset (its shadowed copy is no longer pristine);
/// rvirt boots the guest directly.
fn one_reset_per_reset(mut o: Outcome) -> Outcome {
    o.events.dedup_by(|a, b| a.0 == "RESET" && a == b);
    o
}

#[test]
fn expiry_resets_and_the_next_boot_sees_the_flag() {
    // Under libvirt's sandbox: the vCPU arms the timer, the device loop
    // runs its stages, the main thread makes the next boot's timer.
    let sandbox = [
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ];
    let o = differential(|p| {
        one_reset_per_reset(run_wdt(p, "reset", "", &sandbox, &nothing, &nothing))
    });
    assert_eq!(
        o.events,
        [
            ev("RESUME", None),
            watchdog("reset"),
            ev(
                "RESET",
                Some(json!({"guest": true, "reason": "guest-reset"}))
            ),
            shutdown("guest-shutdown"),
        ]
    );
    assert!(o.success);
    assert!(o.lines.contains(&"WDT_ARMED".into()), "{:?}", o.lines);
    assert!(o.lines.contains(&"WDT_PREVIOUS 0x1200".into()));
    assert!(o.lines.contains(&"WDT_PREVIOUS_CLEARED 0x0000".into()));
    assert!(!o.lines.iter().any(|l| l.starts_with("WDT_SURVIVED")));
}

#[test]
fn expiry_under_no_reboot_shuts_down() {
    let o = differential(|p| run_wdt(p, "reset", "", &["-no-reboot"], &nothing, &nothing));
    assert_eq!(
        o.events,
        [
            ev("RESUME", None),
            watchdog("reset"),
            shutdown("guest-reset")
        ]
    );
    assert!(o.success);
}

#[test]
fn reloading_keeps_it_quiet() {
    let o = differential(|p| run_wdt(p, "reset", "wdt.keep=600", &[], &nothing, &nothing));
    assert_eq!(o.events, [ev("RESUME", None), shutdown("guest-shutdown")]);
    assert!(
        o.lines.contains(&"WDT_KEPT 600 WDT_LOCK 0x00".into()),
        "{:?}",
        o.lines
    );
    assert!(o.lines.contains(&"WDT_CONFIG 0x0004 WDT_LOCK 0x02".into()));
    assert!(o
        .lines
        .contains(&"WDT_CONFIG_RESET 0x0000 WDT_LOCK_RESET 0x00".into()));
}

#[test]
fn action_none_and_debug_let_the_guest_run() {
    for action in ["none", "debug"] {
        let o = differential(|p| run_wdt(p, action, "", &[], &nothing, &nothing));
        assert_eq!(
            o.events,
            [
                ev("RESUME", None),
                watchdog(action),
                shutdown("guest-shutdown")
            ]
        );
        // The watchdog reset itself after the action, as QEMU's does.
        assert!(
            o.lines.contains(&"WDT_SURVIVED WDT_LOCK 0x00".into()),
            "{:?}",
            o.lines
        );
    }
}

#[test]
fn action_shutdown_presses_the_power_button() {
    // The guest polls and ignores the button: it runs on to its own
    // power-off.
    let o = differential(|p| run_wdt(p, "shutdown", "", &[], &nothing, &nothing));
    assert_eq!(
        o.events,
        [
            ev("RESUME", None),
            watchdog("shutdown"),
            ev("POWERDOWN", None),
            shutdown("guest-shutdown")
        ]
    );
}

#[test]
fn action_pause_stops_in_state_watchdog() {
    let stopped = |q: &rvirt_qmp::QmpClient| {
        let s = q.execute("query-status", None).expect("query-status");
        assert_eq!(s["status"], "watchdog", "{s}");
        assert_eq!(s["running"], false);
        q.execute("quit", None).expect("quit");
    };
    let o = differential(|p| run_wdt(p, "pause", "", &[], &nothing, &stopped));
    assert_eq!(
        o.events,
        [
            ev("RESUME", None),
            watchdog("pause"),
            ev("STOP", None),
            shutdown("host-qmp-quit")
        ]
    );
}

#[test]
fn action_poweroff_ends_the_process() {
    let o = differential(|p| run_wdt(p, "poweroff", "", &[], &nothing, &nothing));
    assert_eq!(o.events, [ev("RESUME", None), watchdog("poweroff")]);
    assert!(o.success);
}

#[test]
fn action_inject_nmi_sends_the_guest_an_nmi() {
    // The guest takes it and runs on (the watchdog reset itself, as
    // QEMU's after any action); both spellings of the option.
    for extra in [&["-no-reboot"][..], &["-action", "watchdog=inject-nmi"]] {
        let action = if extra.len() == 1 {
            "inject-nmi"
        } else {
            "reset"
        };
        let o = differential(|p| run_wdt(p, action, "wdt.nmi", extra, &nothing, &nothing));
        assert_eq!(
            o.events,
            [
                ev("RESUME", None),
                watchdog("inject-nmi"),
                shutdown("guest-shutdown")
            ],
            "{extra:?}"
        );
        assert!(
            o.lines
                .ends_with(&["WDT_NMI 1".into(), "WDT_SURVIVED WDT_LOCK 0x00".into()]),
            "{extra:?}: {:?}",
            o.lines
        );
    }
    // Set over QMP too.
    let before = |q: &rvirt_qmp::QmpClient| {
        q.execute("watchdog-set-action", Some(json!({"action": "inject-nmi"})))
            .expect("watchdog-set-action");
    };
    let o = differential(|p| run_wdt(p, "reset", "wdt.nmi", &[], &before, &nothing));
    assert!(o.lines.contains(&"WDT_NMI 1".into()), "{:?}", o.lines);
}

#[test]
fn qmp_inject_nmi_reaches_the_guest_each_time() {
    let o = differential(|p| {
        run_nmi(p, "nmi.count=2", &|q, until, _| {
            inject_nmi(q);
            until("NMI 1");
            inject_nmi(q);
        })
    });
    assert_eq!(
        o.lines,
        [
            "NMI_READY lint1=0x00400",
            "NMI 1",
            "NMI 2",
            "NMI_END count=2"
        ]
    );
    assert_eq!(o.events, [shutdown("guest-shutdown")]);
    assert!(o.success);
}

#[test]
fn an_nmi_needs_lint1_unmasked_in_nmi_mode() {
    // As QEMU checks before KVM_NMI: with LINT1 masked the NMI is
    // dropped, not kept for later; unmasked, the next one gets through.
    let o = differential(|p| {
        run_nmi(p, "nmi.masked", &|q, until, go| {
            // Answered once every vCPU took it (QEMU: run_on_cpu), so the
            // NMI met the masked LINT1 before the go unmasks it.
            inject_nmi(q);
            go();
            until("NMI_UNMASKED");
            inject_nmi(q);
        })
    });
    assert_eq!(
        o.lines,
        [
            "NMI_READY lint1=0x10400",
            "NMI_UNMASKED lint1=0x00400 count=0 by=com2",
            "NMI 1",
            "NMI_END count=1"
        ]
    );
}

#[test]
fn watchdog_set_action_changes_the_action() {
    let before = |q: &rvirt_qmp::QmpClient| {
        let bad = q
            .execute("watchdog-set-action", Some(json!({"action": "explode"})))
            .expect_err("an unknown action");
        let rvirt_qmp::ClientError::Command { error, .. } = bad else {
            panic!("{bad}");
        };
        assert_eq!(error.class, rvirt_qmp::ErrorClass::GenericError);
        assert_eq!(
            error.desc,
            "Parameter 'action' does not accept value 'explode'"
        );
        q.execute("watchdog-set-action", Some(json!({"action": "none"})))
            .expect("watchdog-set-action");
    };
    let o = differential(|p| run_wdt(p, "reset", "", &["-no-reboot"], &before, &nothing));
    assert_eq!(
        o.events,
        [
            ev("RESUME", None),
            watchdog("none"),
            shutdown("guest-shutdown")
        ]
    );
}

/// Runs the `lpt` guest with the port on a file through `args` (`{}`: the
/// file's path); returns the guest's LPT lines and the file.
fn run_lpt(program: &Path, port: &[&str], word: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.log");
    let file = dir.path().join("lpt.out");
    let mut args = base_args(Guest::Lpt, &serial, &format!("lpt.msg={word}"));
    args.push("-no-reboot".into());
    args.extend(
        port.iter()
            .map(|a| a.replace("{}", &file.display().to_string())),
    );
    let vm = Spawned::start(
        die_with_test(&mut Command::new(program))
            .args(&args)
            .stdin(Stdio::null()),
    );
    let out = vm.output(T);
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(
        out.status.success() && output::done(&serial),
        "{}: {}\n{serial}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serial
            .lines()
            .filter(|l| l.starts_with("LPT"))
            .map(str::to_string)
            .collect(),
        std::fs::read_to_string(&file).unwrap_or_default(),
    )
}

#[test]
fn parallel_port_bytes_reach_a_file_chardev() {
    let forms: [&[&str]; 2] = [
        &[
            "-chardev",
            "file,id=charparallel0,path={}",
            "-device",
            r#"{"driver":"isa-parallel","chardev":"charparallel0","id":"parallel0"}"#,
        ],
        &["-parallel", "file:{}"],
    ];
    for form in forms {
        let mut runs = programs()
            .into_iter()
            .map(|p| (name_of(&p), run_lpt(&p, form, "printed-on-LPT1")));
        let (_, (lines, file)) = runs.next().unwrap();
        assert_eq!(file, "printed-on-LPT1\n", "{form:?}");
        assert_eq!(
            lines,
            [
                "LPT_RESET status=0xd9 control=0xcc",
                "LPT_SENT 16 stalls=0 status=0x59"
            ],
            "{form:?}"
        );
        for (name, theirs) in runs {
            assert_eq!((&lines, &file), (&theirs.0, &theirs.1), "{name} differs");
        }
    }
}

/// `query-chardev` with a parallel port on a pty and one on a file, as
/// libvirt writes them: the same labels and filenames on both (the pty's
/// own name aside), the pty a terminal.
fn chardevs_with_parallel_ports(program: &Path) -> Vec<(String, String, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.log");
    let file = dir.path().join("lpt2.out");
    let sock = dir.path().join("qmp.sock");
    let mut args = base_args(Guest::Hello, &serial, "");
    args.extend([
        "-S".into(),
        "-chardev".into(),
        "pty,id=charparallel0".into(),
        "-device".into(),
        r#"{"driver":"isa-parallel","chardev":"charparallel0","id":"parallel0"}"#.into(),
        "-chardev".into(),
        format!("file,id=charparallel1,path={}", file.display()),
        "-device".into(),
        r#"{"driver":"isa-parallel","chardev":"charparallel1","id":"parallel1"}"#.into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", sock.display()),
    ]);
    let mut vm = Spawned::start(
        die_with_test(&mut Command::new(program))
            .args(&args)
            .stdin(Stdio::null()),
    );
    let qmp = qmp_connect(&sock, T);
    let got = qmp.execute("query-chardev", None).expect("query-chardev");
    let mut out: Vec<(String, String, bool)> = got
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["label"].as_str().unwrap().starts_with("charparallel"))
        .map(|c| {
            let name = c["filename"].as_str().unwrap().to_string();
            // A pty's name differs between runs: its form and that it is a
            // terminal are what both must give.
            let pty = name
                .strip_prefix("pty:")
                .map(|p| std::io::IsTerminal::is_terminal(&std::fs::File::open(p).expect(p)));
            let name = if pty.is_some() { "pty:".into() } else { name };
            (
                c["label"].as_str().unwrap().to_string(),
                name,
                pty.unwrap_or(c["frontend-open"].as_bool().unwrap()),
            )
        })
        .collect();
    qmp.execute("quit", None).expect("quit");
    drop(qmp);
    vm.wait(T);
    out.sort();
    out
}

#[test]
fn query_chardev_lists_parallel_ports() {
    let mut runs = programs()
        .into_iter()
        .map(|p| (name_of(&p), chardevs_with_parallel_ports(&p)));
    let (_, ours) = runs.next().unwrap();
    assert_eq!(
        ours,
        [
            ("charparallel0".to_string(), "pty:".to_string(), true),
            ("charparallel1".to_string(), "file".to_string(), true),
        ]
    );
    for (name, theirs) in runs {
        assert_eq!(ours, theirs, "rvirt-vmm and {name} differ");
    }
}

#[test]
fn bad_watchdog_options_are_refused() {
    for (args, msg) in [
        (
            &["-watchdog-action", "explode"][..],
            "-watchdog-action: Parameter 'watchdog' does not accept value 'explode'",
        ),
        (
            &["-M", "microvm", "-device", "i6300esb"][..],
            "No 'PCI' bus found for device 'i6300esb'",
        ),
        (
            &["-device", "isa-parallel"][..],
            "parameter 'chardev' is missing",
        ),
    ] {
        let kernel = Guest::Hello.path();
        let mut all = vec!["-kernel", kernel.to_str().unwrap()];
        all.extend_from_slice(args);
        let run = wait(spawn(&all), T);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(msg), "{args:?}: {}", run.stderr);
    }
}
