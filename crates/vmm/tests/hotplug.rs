//! PCI Express native hot-plug through the real binary, side by side with
//! QEMU 7.2: the `pci` test guest in its `pci.hotplug=` mode finds an empty
//! `pcie-root-port`, enables its hot-plug interrupts (MSI-X) and waits; the
//! test adds a back-end and a virtio-net-pci over QMP (`netdev_add`,
//! `device_add`, as libvirt does); the guest sees presence (and the
//! interrupt), powers the slot on, assigns the device's BARs in the port's
//! windows and reads its MAC; `device_del` presses the attention button,
//! the guest powers the slot off, the device goes and DEVICE_DELETED
//! follows. A guest that never answers keeps the device. The guest's
//! lines must agree with QEMU's.

mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

/// Whether QEMU can run here; where it must (CI) its absence fails.
fn qemu_available() -> bool {
    let ok = which("qemu-system-x86_64").is_some() && Path::new("/dev/kvm").exists();
    if !ok && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    ok
}

/// The command line both VMMs run: q35, one empty hot-plug root port, a
/// QMP socket, the guest in hot-plug mode `mode`.
fn args(sock: &Path, mode: u32) -> Vec<String> {
    let kernel = Guest::Pci.path();
    [
        "-machine",
        "q35",
        "-m",
        "128",
        "-no-reboot",
        "-no-shutdown",
        "-nodefaults",
        // QEMU 7.2's q35 signals hot-plug through ACPI unless told not to;
        // rvirt's q35 has native PCI Express hot-plug only.
        "-global",
        "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
        "-serial",
        "stdio",
        "-kernel",
        kernel.to_str().unwrap(),
        "-append",
        &format!("pci.hotplug={mode}"),
        "-device",
        r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","addr":"0x2"}"#,
        "-chardev",
        &format!("socket,id=mon,path={},server=on,wait=off", sock.display()),
        "-mon",
        "chardev=mon,id=monitor,mode=control",
    ]
    .map(String::from)
    .to_vec()
}

fn start(qemu: bool, args: &[String]) -> Spawned {
    let mut cmd = if qemu {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-accel", "kvm", "-cpu", "qemu64,-pni", "-display", "none"]);
        c
    } else {
        Command::new(vmm())
    };
    cmd.args(args).stdin(Stdio::null());
    Spawned::start(die_with_test(&mut cmd))
}

fn error(r: Result<Value, rvirt_qmp::ClientError>) -> String {
    match r {
        Err(rvirt_qmp::ClientError::Command { error, .. }) => error.desc,
        other => panic!("expected a QMP error, got {other:?}"),
    }
}

/// The device `id` in `query-pci`, behind the root port.
fn behind_port(qmp: &rvirt_qmp::QmpClient, id: &str) -> Option<Value> {
    let pci = qmp.execute("query-pci", None).ok()?;
    pci[0]["devices"]
        .as_array()?
        .iter()
        .filter_map(|d| d["pci_bridge"]["devices"].as_array())
        .flatten()
        .find(|d| d["qdev_id"] == id)
        .cloned()
}

const MAC: &str = "52:54:00:12:ab:cd";

/// libvirt's `-sandbox` for QEMU.
const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The whole exchange on one VMM; returns the guest's HP_ lines.
fn plug_and_unplug(qemu: bool, dir: &Path) -> Vec<String> {
    let sock = dir.join(if qemu { "qemu.sock" } else { "rvirt.sock" });
    let net: PathBuf = dir.join(if qemu { "qnet.sock" } else { "rnet.sock" });
    let _peer = UnixListener::bind(&net).unwrap();
    let mut vm = start(qemu, &args(&sock, 1));
    let qmp = qmp_connect(&sock, T);
    vm.line_with("HP_READY", T);
    qmp.execute(
        "netdev_add",
        Some(json!({"type": "stream", "id": "hostnet1", "server": false,
                    "addr": {"type": "unix", "path": net}})),
    )
    .unwrap();
    let nic = json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net1",
                     "mac": MAC, "bus": "pci.1", "addr": "0x0"});
    qmp.execute("device_add", Some(nic.clone()))
        .unwrap_or_else(|e| panic!("device_add: {e}\n{}", vm.stderr_text()));
    // The slot is taken now; the root bus does not hot-plug.
    let again = json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net2",
                       "bus": "pci.1"});
    error(qmp.execute("device_add", Some(again)));
    let root = json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net3"});
    error(qmp.execute("device_add", Some(root)));
    vm.line_with("HP_ARMED", T);
    let dev = behind_port(&qmp, "net1").unwrap_or_else(|| {
        panic!(
            "net1 in query-pci\n{}\n{}",
            vm.stdout_text(),
            vm.stderr_text()
        )
    });
    assert_eq!(dev["id"]["device"], 0x1041, "{dev}");
    qmp.execute("device_del", Some(json!({"id": "net1"})))
        .unwrap();
    let deleted = qmp.wait_event("DEVICE_DELETED", T).unwrap();
    // QEMU first reports the virtio back-end (no `device`), then the NIC.
    let deleted = if deleted
        .data
        .as_ref()
        .is_some_and(|d| d.get("device").is_none())
    {
        qmp.wait_event("DEVICE_DELETED", T).unwrap()
    } else {
        deleted
    };
    let data = deleted.data.unwrap_or_default();
    assert_eq!(data["device"], "net1", "{data}");
    assert_eq!(data["path"], "/machine/peripheral/net1", "{data}");
    vm.until("the guest's last line", T, |o, _| o.contains("\nDONE"));
    assert!(behind_port(&qmp, "net1").is_none(), "net1 is gone");
    qmp.execute("netdev_del", Some(json!({"id": "hostnet1"})))
        .unwrap();
    assert!(error(qmp.execute("device_del", Some(json!({"id": "net1"})))).contains("net1"));
    let out = vm.stdout_text().replace('\r', "");
    let want = |k: &str, v: &str| assert_eq!(output::value(&out, k), Some(v), "{k} in\n{out}");
    want("HP_PRESENT", "1");
    want("HP_PDC", "1");
    want("HP_IRR", "01");
    want("HP_LINK_ACTIVE", "1");
    want("HP_DEVICE", "1af4:1041");
    want("HP_MAC", MAC);
    want("HP_BUTTON", "1");
    want("HP_BUTTON_IRR", "01");
    want("HP_GONE", "1");
    want("HP_GONE_PDC", "1");
    want("HP_AFTER", "0xffffffff");
    want("HP_LINK_AFTER", "0");
    out.lines()
        .filter(|l| l.starts_with("HP_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn q35_nic_hotplug_and_unplug_as_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let ours = plug_and_unplug(false, dir.path());
    if !qemu_available() {
        return;
    }
    let theirs = plug_and_unplug(true, dir.path());
    assert_eq!(ours, theirs, "rvirt:\n{ours:#?}\nQEMU:\n{theirs:#?}");
}

/// Hot-plug under libvirt's `-sandbox`: every system call the main loop
/// and the device thread make for it is in their lists (a stream
/// back-end's connect, the new irqfds, ioeventfds and routes, the event
/// loop taking in and dropping a subscriber).
///
/// The back-end is a connected socket passed with `getfd` (a sandboxed
/// VMM connects none itself: a path is refused with a reply, not a
/// crash), over a raw monitor connection, since the names `getfd` gives
/// belong to the connection that passed them.
#[test]
fn hotplug_under_the_sandbox() {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mon.sock");
    let mut a = args(&sock, 1);
    a.extend(["-sandbox".to_string(), SANDBOX.to_string()]);
    let mut vm = start(false, &a);
    let mut m = RawMonitor::connect(&sock);
    m.ok(&vm, json!({"execute": "qmp_capabilities"}), None);
    vm.line_with("HP_READY", T);
    let refused = m.cmd(
        json!({"execute": "netdev_add", "arguments": {"type": "stream", "id": "n0",
               "server": false, "addr": {"type": "unix", "path": "/nonexistent"}}}),
        None,
    );
    let why = refused["error"]["desc"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("sandboxed"), "{refused}\n{}", vm.stderr_text());
    let (_ours, theirs) = UnixStream::pair().unwrap();
    m.ok(
        &vm,
        json!({"execute": "getfd", "arguments": {"fdname": "net1fd"}}),
        Some(theirs.as_fd()),
    );
    drop(theirs);
    m.ok(
        &vm,
        json!({"execute": "netdev_add", "arguments": {"type": "stream", "id": "hostnet1",
               "server": false, "addr": {"type": "fd", "str": "net1fd"}}}),
        None,
    );
    m.ok(
        &vm,
        json!({"execute": "device_add", "arguments": {"driver": "virtio-net-pci",
               "netdev": "hostnet1", "id": "net1", "mac": MAC, "bus": "pci.1"}}),
        None,
    );
    vm.line_with("HP_ARMED", T);
    m.ok(
        &vm,
        json!({"execute": "device_del", "arguments": {"id": "net1"}}),
        None,
    );
    vm.until("the guest's last line", T, |o, _| o.contains("\nDONE"));
    m.ok(&vm, json!({"execute": "query-status"}), None);
    // The event may come after that reply (queries do not pass the main
    // loop, which posts it).
    let deleted = |m: &RawMonitor| {
        m.seen
            .iter()
            .any(|e| e["event"] == "DEVICE_DELETED" && e["data"]["device"] == "net1")
    };
    while !deleted(&m) {
        let e = m.next_event();
        assert!(
            e.is_some(),
            "no DEVICE_DELETED: {:?}\n{}",
            m.seen,
            vm.stderr_text()
        );
    }
    let out = vm.stdout_text();
    assert_eq!(output::value(&out, "HP_MAC"), Some(MAC), "{out}");
    assert_eq!(output::value(&out, "HP_GONE"), Some("1"), "{out}");
    assert!(
        !vm.stderr_text().contains("seccomp"),
        "{}",
        vm.stderr_text()
    );
}

/// A monitor connection that passes descriptors (SCM_RIGHTS) with a
/// command, and keeps the events that arrive on the way.
struct RawMonitor {
    stream: std::os::unix::net::UnixStream,
    lines: std::io::BufReader<std::os::unix::net::UnixStream>,
    seen: Vec<Value>,
}

impl RawMonitor {
    fn connect(sock: &Path) -> Self {
        let stream = poll("the monitor", T, || {
            std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())
        });
        stream.set_read_timeout(Some(T)).unwrap();
        let lines = std::io::BufReader::new(stream.try_clone().unwrap());
        RawMonitor {
            stream,
            lines,
            seen: Vec::new(),
        }
    }

    /// Sends `c` (with `fd`); its reply, or `{"closed": true}`.
    fn cmd(&mut self, c: Value, fd: Option<std::os::fd::BorrowedFd<'_>>) -> Value {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        use std::io::BufRead;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = fd.map(|f| [f]);
        if let Some(f) = &fds {
            assert!(control.push(SendAncillaryMessage::ScmRights(f)));
        }
        let line = format!("{c}\n");
        let io = [std::io::IoSlice::new(line.as_bytes())];
        if rustix::net::sendmsg(&self.stream, &io, &mut control, SendFlags::empty()).is_err() {
            return json!({"closed": true});
        }
        loop {
            let mut l = String::new();
            if self.lines.read_line(&mut l).unwrap_or(0) == 0 {
                return json!({"closed": true});
            }
            let v: Value = serde_json::from_str(&l).unwrap();
            if v.get("event").is_some() {
                self.seen.push(v);
            } else if v.get("QMP").is_none() {
                return v;
            }
        }
    }

    /// The next event (kept in `seen` too), or `None` at the end of the
    /// stream or past the read timeout.
    fn next_event(&mut self) -> Option<Value> {
        use std::io::BufRead;
        loop {
            let mut l = String::new();
            if self.lines.read_line(&mut l).unwrap_or(0) == 0 {
                return None;
            }
            let v: Value = serde_json::from_str(&l).ok()?;
            if v.get("event").is_some() {
                self.seen.push(v.clone());
                return Some(v);
            }
        }
    }

    /// `cmd`, which must succeed.
    fn ok(&mut self, vm: &Spawned, c: Value, fd: Option<std::os::fd::BorrowedFd<'_>>) {
        let r = self.cmd(c.clone(), fd);
        assert!(r.get("return").is_some(), "{c}: {r}\n{}", vm.stderr_text());
    }
}

/// A guest that never answers the attention button keeps the device, and
/// a second `device_del` says the first is still pending, as QEMU's.
#[test]
fn a_guest_that_never_answers_keeps_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mon.sock");
    let net = dir.path().join("net.sock");
    let _peer = UnixListener::bind(&net).unwrap();
    let mut vm = start(false, &args(&sock, 2));
    let qmp = qmp_connect(&sock, T);
    vm.line_with("HP_READY", T);
    qmp.execute(
        "netdev_add",
        Some(json!({"type": "stream", "id": "hostnet1", "server": false,
                    "addr": {"type": "unix", "path": net}})),
    )
    .unwrap();
    qmp.execute(
        "device_add",
        Some(
            json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net1",
                    "bus": "pci.1"}),
        ),
    )
    .unwrap();
    vm.line_with("HP_ARMED", T);
    qmp.execute("device_del", Some(json!({"id": "net1"})))
        .unwrap();
    let e = error(qmp.execute("device_del", Some(json!({"id": "net1"}))));
    assert!(e.contains("already in the process of unplug"), "{e}");
    vm.until("the guest's last line", T, |o, _| o.contains("\nDONE"));
    // Past QEMU's 5 s the request may be repeated (the button pressed
    // again).
    std::thread::sleep(Duration::from_millis(5200));
    qmp.execute("device_del", Some(json!({"id": "net1"})))
        .unwrap();
    let out = vm.stdout_text();
    assert_eq!(output::value(&out, "HP_STILL_THERE"), Some("1"), "{out}");
    assert!(
        qmp.wait_event("DEVICE_DELETED", Duration::from_secs(2))
            .is_err(),
        "no DEVICE_DELETED without the guest's answer"
    );
    assert!(behind_port(&qmp, "net1").is_some(), "net1 stays");
    // A netdev in use cannot go; an unknown one is not found.
    assert!(error(qmp.execute("netdev_del", Some(json!({"id": "hostnet1"})))).contains("in use"));
    assert!(error(qmp.execute("netdev_del", Some(json!({"id": "nope"})))).contains("nope"));
}

/// A hot-plugged NIC is part of the machine from then on: after a reset
/// the guest finds it behind the port at boot (as on QEMU), and the
/// port is no longer empty.
#[test]
fn a_hotplugged_nic_stays_across_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mon.sock");
    let net = dir.path().join("net.sock");
    let _peer = UnixListener::bind(&net).unwrap();
    let args: Vec<String> = args(&sock, 2)
        .into_iter()
        .filter(|a| a != "-no-reboot")
        .collect();
    let mut vm = start(false, &args);
    let qmp = qmp_connect(&sock, T);
    vm.line_with("HP_READY", T);
    qmp.execute(
        "netdev_add",
        Some(json!({"type": "stream", "id": "hostnet1", "server": false,
                    "addr": {"type": "unix", "path": net}})),
    )
    .unwrap();
    qmp.execute(
        "device_add",
        Some(
            json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net1",
                    "mac": MAC, "bus": "pci.1"}),
        ),
    )
    .unwrap();
    vm.line_with("HP_ARMED", T);
    qmp.execute("system_reset", None).unwrap();
    vm.line_with("HP_FAILED no empty hot-plug port", T);
    let out = vm.stdout_text();
    let second = &out[out.rfind("ECAM_BUSES").unwrap()..];
    assert!(
        second.contains("PCI 01:00.0 1af4:1041"),
        "the NIC at boot:\n{second}"
    );
    let dev = behind_port(&qmp, "net1").expect("net1 in query-pci");
    assert!(
        dev["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["address"].as_i64().unwrap() > 0),
        "placed as firmware would: {dev}"
    );
    // Its back-end is in use; the monitor refuses what does not fit.
    let e = error(qmp.execute(
        "device_add",
        Some(
            json!({"driver": "virtio-net-pci", "netdev": "hostnet1", "id": "net9",
                    "bus": "pci.1"}),
        ),
    ));
    assert!(e.contains("hostnet1") || e.contains("not available"), "{e}");
    for (cmd, args, want) in [
        (
            "device_add",
            json!({"driver": "nonsense", "bus": "pci.1", "id": "x"}),
            "nonsense",
        ),
        (
            "device_add",
            json!({"driver": "virtio-net-pci", "id": "x"}),
            "hotplugging",
        ),
        (
            "device_add",
            json!({"driver": "virtio-net-pci", "bus": "pci.1"}),
            "netdev",
        ),
        ("device_del", json!({"id": "nope"}), "nope"),
        (
            "netdev_add",
            json!({"type": "tap", "id": "t0", "fd": "unnamed"}),
            "unnamed",
        ),
        ("netdev_add", json!({"type": "user", "id": "u0"}), "user"),
        (
            "netdev_add",
            json!({"type": "stream", "id": "hostnet1", "server": false,
                              "addr": {"type": "unix", "path": "/nonexistent"}}),
            "Duplicate",
        ),
    ] {
        let e = error(qmp.execute(cmd, Some(args.clone())));
        assert!(e.contains(want), "{cmd} {args}: {e}");
    }
    // None of that hurt the VMM (the guest may have powered off by now).
    qmp.query_status().unwrap();
}

/// How many `query-block` and `query-blockstats` entries are device
/// `id`'s (its `qdev` path names it) on top node `d1`.
fn block_of(qmp: &rvirt_qmp::QmpClient, id: &str) -> (usize, usize) {
    let mine = |e: &Value, node: &Value| {
        e["qdev"]
            .as_str()
            .is_some_and(|q| q.split('/').any(|p| p == id))
            && node == "d1"
    };
    let count = |cmd: &str, node: fn(&Value) -> &Value| {
        let v = qmp.execute(cmd, None).unwrap();
        v.as_array()
            .unwrap_or_else(|| panic!("{cmd}: {v}"))
            .iter()
            .filter(|e| mine(e, node(e)))
            .count()
    };
    (
        count("query-block", |e| &e["inserted"]["node-name"]),
        count("query-blockstats", |e| &e["node-name"]),
    )
}

/// A disk the way libvirt hot-plugs one: `blockdev-add` of its file and
/// raw nodes, `device_add` of a virtio-blk-pci on the top node; the guest
/// reads its capacity and first sector through the new function; after
/// `device_del` and the guest's answer the nodes are free for
/// `blockdev-del`. Returns the guest's HP_ lines.
fn disk_plug_and_unplug(qemu: bool, dir: &Path) -> Vec<String> {
    let sock = dir.join(if qemu { "qemu-d.sock" } else { "rvirt-d.sock" });
    let image = dir.join(if qemu { "qemu.img" } else { "rvirt.img" });
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(13) + i / 512) as u8)
        .collect();
    std::fs::write(&image, &data).unwrap();
    let mut vm = start(qemu, &args(&sock, 1));
    let qmp = qmp_connect(&sock, T);
    vm.line_with("HP_READY", T);
    qmp.execute(
        "blockdev-add",
        Some(json!({"driver": "file", "filename": image, "node-name": "f1"})),
    )
    .unwrap();
    qmp.execute(
        "blockdev-add",
        Some(json!({"driver": "raw", "file": "f1", "node-name": "d1"})),
    )
    .unwrap();
    qmp.execute(
        "device_add",
        Some(
            json!({"driver": "virtio-blk-pci", "drive": "d1", "id": "disk1",
                    "bus": "pci.1", "addr": "0x0"}),
        ),
    )
    .unwrap_or_else(|e| panic!("device_add: {e}\n{}", vm.stderr_text()));
    // The disk is a block device now (domblkstat, snapshots).
    assert_eq!(block_of(&qmp, "disk1"), (1, 1), "after device_add");
    // In use now: neither another device nor blockdev-del takes it.
    assert!(!error(qmp.execute("blockdev-del", Some(json!({"node-name": "d1"})))).is_empty());
    vm.line_with("HP_ARMED", T);
    qmp.execute("device_del", Some(json!({"id": "disk1"})))
        .unwrap();
    let deleted = qmp.wait_event("DEVICE_DELETED", T).unwrap();
    let deleted = if deleted
        .data
        .as_ref()
        .is_some_and(|d| d.get("device").is_none())
    {
        qmp.wait_event("DEVICE_DELETED", T).unwrap()
    } else {
        deleted
    };
    assert_eq!(deleted.data.unwrap_or_default()["device"], "disk1");
    assert_eq!(block_of(&qmp, "disk1"), (0, 0), "after DEVICE_DELETED");
    vm.until("the guest's last line", T, |o, _| o.contains("\nDONE"));
    qmp.execute("blockdev-del", Some(json!({"node-name": "d1"})))
        .unwrap();
    qmp.execute("blockdev-del", Some(json!({"node-name": "f1"})))
        .unwrap();
    let out = vm.stdout_text().replace('\r', "");
    let want = |k: &str, v: &str| assert_eq!(output::value(&out, k), Some(v), "{k} in\n{out}");
    want("HP_DEVICE", "1af4:1042");
    want("HP_CAPACITY", "128");
    want("HP_READ_STATUS", "0");
    let fnv = format!("{:#010x}", rvirt_test_guests::fnv1a32(&data[..512]));
    want("HP_READ_FNV1A32", &fnv);
    want("HP_GONE", "1");
    out.lines()
        .filter(|l| l.starts_with("HP_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn q35_disk_hotplug_and_unplug_as_on_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let ours = disk_plug_and_unplug(false, dir.path());
    if !qemu_available() {
        return;
    }
    let theirs = disk_plug_and_unplug(true, dir.path());
    assert_eq!(ours, theirs, "rvirt:\n{ours:#?}\nQEMU:\n{theirs:#?}");
}
