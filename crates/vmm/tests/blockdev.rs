//! QMP's block graph commands through the real binary, against QEMU 7.2
//! with the same sequence: `blockdev-add` of file, raw and qcow2 nodes
//! (`backing` null or a node), by path and from an fd set (`add-fd`),
//! `blockdev-del`, and QEMU's answers to the mistakes (a duplicate node
//! name, a malformed one, a missing file, an unknown node, a node in use).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rvirt_testkit::run;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// A QMP connection on a raw socket, so commands can carry a descriptor
/// (`add-fd`), as libvirt sends them.
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// Events read while waiting for answers, oldest first.
    events: Vec<Value>,
}

impl Raw {
    fn connect(sock: &Path) -> Raw {
        let stream = poll("the QMP socket", T, || {
            UnixStream::connect(sock).map_err(|e| e.to_string())
        });
        stream.set_read_timeout(Some(T)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut raw = Raw {
            stream,
            reader,
            events: Vec::new(),
        };
        raw.line();
        raw.cmd(json!({"execute": "qmp_capabilities"}), None);
        raw
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("a QMP line in time");
        if l.is_empty() {
            // The other end closed: the caller's assertion says what was
            // expected (and may show the process's output).
            return json!({"closed": true});
        }
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
    }

    /// Sends `cmd` (with `fd` attached) and returns its answer, events
    /// skipped.
    fn cmd(&mut self, cmd: Value, fd: Option<std::os::fd::BorrowedFd>) -> Value {
        let text = format!("{cmd}\n");
        match fd {
            None => self.stream.write_all(text.as_bytes()).unwrap(),
            Some(fd) => {
                use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
                let fds = [fd];
                let mut space =
                    [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut anc = SendAncillaryBuffer::new(&mut space);
                assert!(anc.push(SendAncillaryMessage::ScmRights(&fds)));
                let n = rustix::net::sendmsg(
                    self.stream.as_fd(),
                    &[std::io::IoSlice::new(text.as_bytes())],
                    &mut anc,
                    SendFlags::empty(),
                )
                .unwrap();
                assert_eq!(n, text.len());
            }
        }
        loop {
            let v = self.line();
            if v.get("event").is_none() {
                return v;
            }
            self.events.push(v);
        }
    }

    /// The first event called `name` not taken yet (reading on, each read
    /// bounded by the socket's timeout); the events before it are kept.
    fn wait_event(&mut self, name: &str) -> Value {
        loop {
            if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
                return self.events.remove(i);
            }
            let v = self.line();
            assert!(v.get("closed").is_none(), "the VMM ended before {name}");
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn qemu_img_ok(args: &[&str]) {
    let out = run(Command::new("qemu-img").args(args), T);
    assert!(out.status.success(), "qemu-img {args:?}: {out:?}");
}

/// The answer without what differs between two processes: descriptor
/// numbers in `add-fd` and `query-fdsets`.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("fd") {
                    m.insert("fd".into(), json!("N"));
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The sequence, on the monitor at `sock`; the answers in order.
fn transcript(sock: &Path, dir: &Path) -> Vec<(String, Value)> {
    let mut q = Raw::connect(sock);
    let base = dir.join("base.qcow2");
    let ov = dir.join("ov.qcow2");
    let raw = dir.join("disk.raw");
    let passed = dir.join("passed.qcow2");
    let mut out = Vec::new();
    let mut step = |q: &mut Raw, name: &str, cmd: Value, fd: Option<std::os::fd::BorrowedFd>| {
        let answer = comparable(q.cmd(cmd, fd));
        out.push((name.to_string(), answer));
    };
    let add = |args: Value| json!({"execute": "blockdev-add", "arguments": args});
    let del = |name: &str| json!({"execute": "blockdev-del", "arguments": {"node-name": name}});
    let file = |name: &str, path: &Path| {
        add(
            json!({"driver": "file", "filename": s(path), "node-name": name,
                   "auto-read-only": true, "discard": "unmap"}),
        )
    };
    step(&mut q, "file node", file("f0", &base), None);
    step(&mut q, "duplicate", file("f0", &base), None);
    step(&mut q, "bad name", file("1bad", &base), None);
    step(
        &mut q,
        "missing file",
        file("f1", &dir.join("missing")),
        None,
    );
    step(
        &mut q,
        "unknown file node",
        add(json!({"driver": "qcow2", "file": "nosuch", "node-name": "q1"})),
        None,
    );
    step(
        &mut q,
        "qcow2 node",
        add(json!({"driver": "qcow2", "file": "f0", "node-name": "q0", "backing": null})),
        None,
    );
    step(
        &mut q,
        "file taken",
        add(json!({"driver": "qcow2", "file": "f0", "node-name": "q2", "backing": null})),
        None,
    );
    step(&mut q, "del file in use", del("f0"), None);
    step(&mut q, "del unknown", del("nosuch"), None);
    step(&mut q, "overlay file", file("f2", &ov), None);
    step(
        &mut q,
        "unknown backing",
        add(json!({"driver": "qcow2", "file": "f2", "node-name": "ov", "backing": "nosuch"})),
        None,
    );
    step(
        &mut q,
        "overlay on q0",
        add(json!({"driver": "qcow2", "file": "f2", "node-name": "ov", "backing": "q0"})),
        None,
    );
    step(&mut q, "del backing", del("q0"), None);
    step(&mut q, "del overlay", del("ov"), None);
    step(&mut q, "del its file", del("f2"), None);
    step(&mut q, "del q0", del("q0"), None);
    step(&mut q, "del f0", del("f0"), None);
    step(&mut q, "del f0 again", del("f0"), None);
    step(
        &mut q,
        "raw inline",
        add(json!({"driver": "raw", "node-name": "r0",
                   "file": {"driver": "file", "filename": s(&raw)}})),
        None,
    );
    step(&mut q, "del raw", del("r0"), None);
    step(
        &mut q,
        "fdsets before",
        json!({"execute": "query-fdsets"}),
        None,
    );
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&passed)
        .unwrap();
    step(
        &mut q,
        "add-fd",
        json!({"execute": "add-fd", "arguments": {"fdset-id": 3, "opaque": "rdwr:passed"}}),
        Some(image.as_fd()),
    );
    step(&mut q, "fdsets", json!({"execute": "query-fdsets"}), None);
    // Without auto-read-only: QEMU would open the set read-only first, and
    // takes only a descriptor of exactly that mode (rvirt takes any that
    // allows the access).
    let passed_file =
        |name: &str, set: &str| add(json!({"driver": "file", "filename": set, "node-name": name}));
    step(
        &mut q,
        "passed file",
        passed_file("p0", "/dev/fdset/3"),
        None,
    );
    step(
        &mut q,
        "remove-fd",
        json!({"execute": "remove-fd", "arguments": {"fdset-id": 3}}),
        None,
    );
    step(
        &mut q,
        "remove-fd again",
        json!({"execute": "remove-fd", "arguments": {"fdset-id": 3}}),
        None,
    );
    step(
        &mut q,
        "passed qcow2",
        add(json!({"driver": "qcow2", "file": "p0", "node-name": "pq", "backing": null})),
        None,
    );
    step(
        &mut q,
        "missing set",
        passed_file("p1", "/dev/fdset/9"),
        None,
    );
    step(&mut q, "del passed", del("pq"), None);
    step(
        &mut q,
        "not an image",
        add(
            json!({"driver": "qcow2", "node-name": "bad", "backing": null,
                   "file": {"driver": "file", "filename": s(&raw)}}),
        ),
        None,
    );
    out
}

fn images(dir: &Path) {
    qemu_img_ok(&["create", "-f", "qcow2", s(&dir.join("base.qcow2")), "16M"]);
    qemu_img_ok(&["create", "-f", "qcow2", s(&dir.join("ov.qcow2")), "16M"]);
    qemu_img_ok(&["create", "-f", "qcow2", s(&dir.join("passed.qcow2")), "16M"]);
    std::fs::write(dir.join("disk.raw"), vec![0u8; 1 << 20]).unwrap();
}

#[test]
fn blockdev_add_and_del_answer_as_qemu_does() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    images(dir.path());
    let sock = dir.path().join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let kernel = Guest::Virtio.path();
    let vmm = spawn(&["-S", "-qmp", &qmp, "-kernel", s(&kernel)]);
    let ours = transcript(&sock, dir.path());
    drop(vmm);
    // What must hold whether or not QEMU is here to compare with.
    let answer = |name: &str| &ours.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(answer("file node"), &json!({"return": {}}));
    assert_eq!(answer("overlay on q0"), &json!({"return": {}}));
    assert_eq!(
        answer("passed qcow2"),
        &json!({"return": {}}),
        "the node kept its descriptor"
    );
    assert_eq!(
        answer("duplicate")["error"]["desc"],
        "Duplicate nodes with node-name='f0'"
    );
    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let qdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    images(qdir.path());
    let qsock = qdir.path().join("qmp.sock");
    let qqmp = format!("unix:{},server=on,wait=off", qsock.display());
    let qemu = Spawned::start(
        die_with_test(&mut Command::new("qemu-system-x86_64"))
            .args(["-machine", "none", "-nodefaults", "-display", "none"])
            .args(["-qmp", &qqmp]),
    );
    let theirs = transcript(&qsock, qdir.path());
    drop(qemu);
    assert_eq!(ours.len(), theirs.len());
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        let (a, b) = (
            a.to_string().replace(s(dir.path()), "DIR"),
            b.to_string().replace(s(qdir.path()), "DIR"),
        );
        // Which image a node refuses is said in rvirt's words: only that
        // both refuse.
        if name == "not an image" {
            assert!(
                a.contains("error") && b.contains("error"),
                "{name}: {a} / {b}"
            );
            continue;
        }
        assert_eq!(a, b, "{name}: rvirt (left) and QEMU (right) differ");
    }
}

/// libvirt's two nodes for `path` (qcow2, `backing: null`).
fn libvirt_disk(n: u32, path: &Path, read_only: bool) -> [Value; 2] {
    [
        json!({"driver": "file", "filename": s(path), "node-name": format!("libvirt-{n}-storage"),
               "auto-read-only": true, "discard": "unmap"}),
        json!({"node-name": format!("libvirt-{n}-format"), "read-only": read_only,
               "driver": "qcow2", "file": format!("libvirt-{n}-storage"), "backing": null}),
    ]
}

fn qemu_img_out(args: &[&str]) -> String {
    let out = run(Command::new("qemu-img").args(args), T);
    assert!(out.status.success(), "qemu-img {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-img check` is clean (exit 0).
fn assert_clean(image: &Path) {
    let out = run(Command::new("qemu-img").args(["check", s(image)]), T);
    assert_eq!(
        out.status.code(),
        Some(0),
        "qemu-img check {}: {out:?}",
        image.display()
    );
}

/// The blkbench guest (4 KiB reads and writes, 16 in flight) writing a
/// qcow2 disk given as libvirt gives it; a `transaction` puts an overlay
/// under it while it writes. No request is lost (the guest finishes every
/// phase without an error or a re-kick), the base takes no write after
/// the snapshot answered, the overlay holds the writes since, both images
/// are clean, and `query-block` shows the new chain.
#[test]
fn a_snapshot_taken_while_the_guest_writes_loses_nothing() {
    snapshot_while_writing(&[]);
    // Confined as rvirtd runs it: the switch runs on the main thread,
    // the overlay's workers under their own filter.
    snapshot_while_writing(&[
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]);
}

fn snapshot_while_writing(extra: &[&str]) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let base = d.join("base.qcow2");
    let ov = d.join("overlay.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        s(&base),
        "64M",
    ]);
    // As libvirt (and rvirtd) create it: the base named in its header.
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        "-b",
        s(&base),
        "-F",
        "qcow2",
        s(&ov),
    ]);
    let log = d.join("serial.log");
    let sock = d.join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let serial = format!("file:{}", log.display());
    let guest = Guest::Virtio.path().with_file_name("blkbench.elf");
    let [file, fmt] = libvirt_disk(1, &base, false);
    let (file, fmt) = (file.to_string(), fmt.to_string());
    let mut args = extra.to_vec();
    args.extend([
        "-kernel",
        s(&guest),
        "-append",
        "blkbench.n=20000",
        "-serial",
        &serial,
        "-qmp",
        &qmp,
        "-blockdev",
        &file,
        "-blockdev",
        &fmt,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]);
    let mut vmm = spawn(&args);
    let mut q = Raw::connect(&sock);
    for node in libvirt_disk(2, &ov, false) {
        let r = q.cmd(json!({"execute": "blockdev-add", "arguments": node}), None);
        assert_eq!(r, json!({"return": {}}));
    }
    wait_file(&log, "PHASE seqwrite START", T, || vmm.describe());
    std::thread::sleep(Duration::from_millis(20));
    let r = q.cmd(
        json!({"execute": "transaction", "arguments": {"actions": [
            {"type": "blockdev-snapshot",
             "data": {"node": "libvirt-1-format", "overlay": "libvirt-2-format"}}]}}),
        None,
    );
    assert_eq!(r, json!({"return": {}}), "{}", vmm.describe());
    let base_then = std::fs::read(&base).unwrap();
    let info = q.cmd(json!({"execute": "query-block"}), None);
    let inserted = &info["return"][0]["inserted"];
    assert_eq!(inserted["node-name"], "libvirt-2-format", "{info}");
    assert_eq!(inserted["file"], s(&ov), "{info}");
    assert_eq!(inserted["backing_file_depth"], 1, "{info}");
    assert_eq!(
        inserted["image"]["backing-image"]["filename"],
        s(&base),
        "{info}"
    );
    // The old active layer is now a backing image: not deletable, not
    // snapshotted again.
    let r = q.cmd(
        json!({"execute": "blockdev-del", "arguments": {"node-name": "libvirt-1-format"}}),
        None,
    );
    assert_eq!(
        r["error"]["desc"],
        "Node 'libvirt-1-format' is busy: node is used as backing hd of 'libvirt-2-format'"
    );
    wait_file(&log, "BLKBENCH DONE", Duration::from_secs(300), || {
        vmm.describe()
    });
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(!out.contains("BLKBENCH_FAILED"), "{out}");
    for line in out.lines().filter(|l| l.starts_with("PHASE_STATS")) {
        assert!(
            line.contains(" errors=0 ") && line.contains(" rekicks=0 "),
            "{line}"
        );
    }
    q.cmd(json!({"execute": "quit"}), None);
    vmm.wait(T);
    assert!(
        std::fs::read(&base).unwrap() == base_then,
        "the base was written after the snapshot"
    );
    assert_clean(&base);
    assert_clean(&ov);
    let map: Value =
        serde_json::from_str(&qemu_img_out(&["map", "--output=json", s(&ov)])).unwrap();
    assert!(
        map.as_array()
            .unwrap()
            .iter()
            .any(|e| e["depth"] == 0 && e["data"] == true),
        "nothing written to the overlay: {map}"
    );
}

/// Snapshots QEMU refuses are refused, and the disk keeps its image.
#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let base = d.join("base.qcow2");
    let ov = d.join("ov.qcow2");
    let ro = d.join("ro.qcow2");
    for p in [&base, &ov, &ro] {
        qemu_img_ok(&["create", "-f", "qcow2", s(p), "16M"]);
    }
    let sock = d.join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let kernel = Guest::Virtio.path();
    let [file, fmt] = libvirt_disk(1, &base, false);
    let (file, fmt) = (file.to_string(), fmt.to_string());
    let _vmm = spawn(&[
        "-S",
        "-qmp",
        &qmp,
        "-kernel",
        s(&kernel),
        "-blockdev",
        &file,
        "-blockdev",
        &fmt,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]);
    let mut q = Raw::connect(&sock);
    let add = |q: &mut Raw, v: Value| {
        let r = q.cmd(json!({"execute": "blockdev-add", "arguments": v}), None);
        assert_eq!(r, json!({"return": {}}), "{v}");
    };
    for n in libvirt_disk(2, &ov, false) {
        add(&mut q, n);
    }
    for n in libvirt_disk(3, &ro, true) {
        add(&mut q, n);
    }
    let before = q.cmd(json!({"execute": "query-block"}), None);
    let snap = |q: &mut Raw, node: &str, overlay: &str| {
        let r = q.cmd(
            json!({"execute": "blockdev-snapshot", "arguments": {"node": node, "overlay": overlay}}),
            None,
        );
        r["error"]["desc"]
            .as_str()
            .unwrap_or_else(|| panic!("accepted: {r}"))
            .to_string()
    };
    assert_eq!(
        snap(&mut q, "nosuch", "libvirt-2-format"),
        "Cannot find device='nosuch' nor node-name='nosuch'"
    );
    assert_eq!(
        snap(&mut q, "libvirt-1-format", "nosuch"),
        "Cannot find device='nosuch' nor node-name='nosuch'"
    );
    assert_eq!(
        snap(&mut q, "libvirt-1-format", "libvirt-1-format"),
        "The overlay is already in use"
    );
    assert_eq!(
        snap(&mut q, "libvirt-1-format", "libvirt-3-format"),
        "The overlay 'libvirt-3-format' is read-only"
    );
    // An overlay that already has a backing image.
    add(
        &mut q,
        json!({"driver": "file", "filename": s(&ov), "node-name": "f4"}),
    );
    add(
        &mut q,
        json!({"driver": "qcow2", "file": "f4", "node-name": "q4", "backing": "libvirt-3-format"}),
    );
    assert_eq!(
        snap(&mut q, "libvirt-1-format", "q4"),
        "The overlay already has a backing image"
    );
    assert_eq!(
        snap(&mut q, "libvirt-1-format", "libvirt-2-storage"),
        "The overlay does not support backing images"
    );
    assert_eq!(
        snap(&mut q, "libvirt-2-format", "libvirt-3-format"),
        "node 'libvirt-2-format' is not the active layer of a disk"
    );
    // A transaction with an action rvirt does not run does nothing.
    let r = q.cmd(
        json!({"execute": "transaction", "arguments": {"actions": [
            {"type": "blockdev-snapshot", "data": {"node": "libvirt-1-format", "overlay": "libvirt-2-format"}},
            {"type": "drive-backup", "data": {}}]}}),
        None,
    );
    assert!(
        r["error"]["desc"]
            .as_str()
            .unwrap()
            .contains("drive-backup"),
        "{r}"
    );
    assert_eq!(
        q.cmd(json!({"execute": "query-block"}), None),
        before,
        "a refused snapshot changed the disk"
    );
    // And the good one still works afterwards.
    let r = q.cmd(
        json!({"execute": "blockdev-snapshot", "arguments": {"node": "libvirt-1-format", "overlay": "libvirt-2-format"}}),
        None,
    );
    assert_eq!(r, json!({"return": {}}));
}

/// The snapshot, then `block-commit` of the overlay into the base while
/// the guest writes (libvirt's arguments), `BLOCK_JOB_READY`, the pivot
/// once the guest is done, `job-dismiss`: the jobs' events in QEMU's
/// order, the base holds everything the overlay had (`qemu-img compare`),
/// both images clean, the disk on the base again and the overlay's nodes
/// free to delete.
#[test]
fn an_active_commit_while_the_guest_writes_lands_everything_in_the_base() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let base = d.join("base.qcow2");
    let ov = d.join("overlay.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        s(&base),
        "64M",
    ]);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        "-b",
        s(&base),
        "-F",
        "qcow2",
        s(&ov),
    ]);
    let log = d.join("serial.log");
    let sock = d.join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let serial = format!("file:{}", log.display());
    let guest = Guest::Virtio.path().with_file_name("blkbench.elf");
    let [file, fmt] = libvirt_disk(1, &base, false);
    let (file, fmt) = (file.to_string(), fmt.to_string());
    // Kept after the guest is done (its exit is a reset: -no-reboot makes
    // it a shutdown, -no-shutdown keeps the VMM), for the pivot.
    let mut vmm = spawn(&[
        "-no-reboot",
        "-no-shutdown",
        "-kernel",
        s(&guest),
        "-append",
        "blkbench.n=20000",
        "-serial",
        &serial,
        "-qmp",
        &qmp,
        "-blockdev",
        &file,
        "-blockdev",
        &fmt,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]);
    let mut q = Raw::connect(&sock);
    for node in libvirt_disk(2, &ov, false) {
        let r = q.cmd(json!({"execute": "blockdev-add", "arguments": node}), None);
        assert_eq!(r, json!({"return": {}}));
    }
    wait_file(&log, "PHASE seqwrite START", T, || vmm.describe());
    let r = q.cmd(
        json!({"execute": "blockdev-snapshot",
               "arguments": {"node": "libvirt-1-format", "overlay": "libvirt-2-format"}}),
        None,
    );
    assert_eq!(r, json!({"return": {}}), "{}", vmm.describe());
    // Wrong commits change nothing.
    let commit = |q: &mut Raw, args: Value| {
        q.cmd(json!({"execute": "block-commit", "arguments": args}), None)
    };
    let err = |v: Value| {
        v["error"]["desc"]
            .as_str()
            .unwrap_or_else(|| panic!("accepted: {v}"))
            .to_string()
    };
    assert_eq!(
        err(commit(&mut q, json!({"device": "nosuch"}))),
        "Cannot find device='nosuch' nor node-name='nosuch'"
    );
    assert_eq!(
        err(commit(
            &mut q,
            json!({"device": "libvirt-2-format", "base-node": "libvirt-2-storage"})
        )),
        "'libvirt-2-storage' is not in this backing file chain"
    );
    assert_eq!(
        err(commit(
            &mut q,
            json!({"device": "libvirt-2-format", "base-node": "libvirt-2-format"})
        )),
        "cannot commit an image into itself"
    );
    assert_eq!(
        q.cmd(json!({"execute": "query-block-jobs"}), None),
        json!({"return": []})
    );
    wait_file(
        &log,
        "PHASE randwrite START",
        Duration::from_secs(300),
        || vmm.describe(),
    );
    // libvirt 9.0's block-commit for `virsh blockcommit --active`.
    let r = commit(
        &mut q,
        json!({"job-id": "commit-vda-libvirt-1-format", "device": "libvirt-2-format",
               "top-node": "libvirt-2-format", "base-node": "libvirt-1-format",
               "auto-finalize": true, "auto-dismiss": false}),
    );
    assert_eq!(r, json!({"return": {}}), "{}", vmm.describe());
    assert_eq!(
        err(commit(
            &mut q,
            json!({"job-id": "other", "device": "libvirt-2-format"})
        )),
        "Node 'libvirt-2-format' is busy: block device is in use by block job: commit"
    );
    // The disk's image must not change under the job.
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        s(&ov),
        "-F",
        "qcow2",
        s(&d.join("third.qcow2")),
    ]);
    for node in libvirt_disk(3, &d.join("third.qcow2"), false) {
        let r = q.cmd(json!({"execute": "blockdev-add", "arguments": node}), None);
        assert_eq!(r, json!({"return": {}}));
    }
    let r = q.cmd(
        json!({"execute": "blockdev-snapshot",
               "arguments": {"node": "libvirt-2-format", "overlay": "libvirt-3-format"}}),
        None,
    );
    assert_eq!(
        r["error"]["desc"],
        "Node 'libvirt-2-format' is busy: block device is in use by block job: commit"
    );
    let ready = q.wait_event("BLOCK_JOB_READY");
    assert_eq!(
        ready["data"]["device"], "commit-vda-libvirt-1-format",
        "{ready}"
    );
    assert_eq!(ready["data"]["type"], "commit", "{ready}");
    let jobs = q.cmd(json!({"execute": "query-block-jobs"}), None);
    assert_eq!(jobs["return"][0]["ready"], true, "{jobs}");
    assert_eq!(jobs["return"][0]["status"], "ready", "{jobs}");
    wait_file(&log, "BLKBENCH DONE", Duration::from_secs(300), || {
        vmm.describe()
    });
    let out = std::fs::read_to_string(&log).unwrap();
    for line in out.lines().filter(|l| l.starts_with("PHASE_STATS")) {
        assert!(
            line.contains(" errors=0 ") && line.contains(" rekicks=0 "),
            "{line}"
        );
    }
    q.wait_event("SHUTDOWN");
    let r = q.cmd(
        json!({"execute": "block-job-complete", "arguments": {"device": "commit-vda-libvirt-1-format"}}),
        None,
    );
    assert_eq!(r, json!({"return": {}}), "{}", vmm.describe());
    let done = q.wait_event("BLOCK_JOB_COMPLETED");
    assert!(done["data"].get("error").is_none(), "{done}");
    let r = q.cmd(
        json!({"execute": "job-dismiss", "arguments": {"id": "commit-vda-libvirt-1-format"}}),
        None,
    );
    assert_eq!(r, json!({"return": {}}));
    q.wait_event("JOB_STATUS_CHANGE");
    let statuses: Vec<Value> = std::iter::once(q.events.clone())
        .flatten()
        .filter(|e| e["event"] == "JOB_STATUS_CHANGE")
        .map(|e| e["data"]["status"].clone())
        .collect();
    // `created` was taken by the wait above; what follows, in QEMU's order.
    assert_eq!(
        statuses,
        [
            "running",
            "ready",
            "waiting",
            "pending",
            "concluded",
            "null"
        ]
        .map(|s| json!(s))
        .to_vec(),
        "{:?}",
        q.events
    );
    let info = q.cmd(json!({"execute": "query-block"}), None);
    let inserted = &info["return"][0]["inserted"];
    assert_eq!(inserted["node-name"], "libvirt-1-format", "{info}");
    assert_eq!(inserted["file"], s(&base), "{info}");
    assert_eq!(inserted["backing_file_depth"], 0, "{info}");
    for node in ["libvirt-2-format", "libvirt-2-storage"] {
        let r = q.cmd(
            json!({"execute": "blockdev-del", "arguments": {"node-name": node}}),
            None,
        );
        assert_eq!(r, json!({"return": {}}), "{node}");
    }
    q.cmd(json!({"execute": "quit"}), None);
    vmm.wait(T);
    assert_clean(&base);
    assert_clean(&ov);
    let cmp = qemu_img_out(&["compare", "-f", "qcow2", "-F", "qcow2", s(&ov), s(&base)]);
    assert!(cmp.contains("Images are identical"), "{cmp}");
}

/// The snapshot and commit commands' answers to one sequence (libvirt's
/// arguments, and mistakes) on a VM that has not started, against QEMU
/// 7.2 with the same disk: every reply, and `query-block-jobs` at each
/// step, are the same.
#[test]
fn snapshot_and_commit_answer_as_qemu_does() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ours = commit_transcript(dir.path(), |qmp, file, fmt| {
        let kernel = Guest::Virtio.path();
        spawn(&[
            "-S",
            "-qmp",
            qmp,
            "-kernel",
            s(&kernel),
            "-blockdev",
            file,
            "-blockdev",
            fmt,
            "-device",
            r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
        ])
    });
    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let qdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let theirs = commit_transcript(qdir.path(), |qmp, file, fmt| {
        Spawned::start(
            die_with_test(&mut Command::new("qemu-system-x86_64"))
                .args(["-machine", "q35", "-S", "-nodefaults", "-display", "none"])
                .args(["-qmp", qmp, "-blockdev", file, "-blockdev", fmt])
                .args([
                    "-device",
                    "virtio-blk-pci,drive=libvirt-1-format,id=virtio-disk0",
                ]),
        )
    });
    assert_eq!(ours.len(), theirs.len());
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "{name}: rvirt (left) and QEMU (right) differ");
    }
}

fn commit_transcript(
    d: &Path,
    start: impl FnOnce(&str, &str, &str) -> Spawned,
) -> Vec<(String, Value)> {
    let base = d.join("base.qcow2");
    let ov = d.join("overlay.qcow2");
    qemu_img_ok(&["create", "-f", "qcow2", s(&base), "16M"]);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        s(&base),
        "-F",
        "qcow2",
        s(&ov),
    ]);
    let sock = d.join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let [file, fmt] = libvirt_disk(1, &base, false);
    let vmm = start(&qmp, &file.to_string(), &fmt.to_string());
    let mut q = Raw::connect(&sock);
    let mut out = Vec::new();
    let mut step = |q: &mut Raw, name: &str, execute: &str, args: Value| {
        let r = q.cmd(json!({"execute": execute, "arguments": args}), None);
        out.push((name.to_string(), r));
    };
    let [f2, q2] = libvirt_disk(2, &ov, false);
    step(&mut q, "add file", "blockdev-add", f2);
    step(&mut q, "add qcow2", "blockdev-add", q2);
    step(
        &mut q,
        "snapshot",
        "transaction",
        json!({"actions": [{"type": "blockdev-snapshot",
            "data": {"node": "libvirt-1-format", "overlay": "libvirt-2-format"}}]}),
    );
    step(&mut q, "jobs before", "query-block-jobs", json!({}));
    step(
        &mut q,
        "base not in chain",
        "block-commit",
        json!({"device": "libvirt-2-format", "base-node": "libvirt-2-storage"}),
    );
    step(
        &mut q,
        "into itself",
        "block-commit",
        json!({"device": "libvirt-2-format", "base-node": "libvirt-2-format"}),
    );
    let id = "commit-vda-libvirt-1-format";
    step(
        &mut q,
        "commit",
        "block-commit",
        json!({"job-id": id, "device": "libvirt-2-format", "top-node": "libvirt-2-format",
               "base-node": "libvirt-1-format", "auto-finalize": true, "auto-dismiss": false}),
    );
    q.wait_event("BLOCK_JOB_READY");
    step(&mut q, "jobs ready", "query-block-jobs", json!({}));
    step(
        &mut q,
        "dismiss too early",
        "job-dismiss",
        json!({"id": id}),
    );
    step(
        &mut q,
        "complete",
        "block-job-complete",
        json!({"device": id}),
    );
    let concluded = poll("the job to conclude", T, || {
        let r = q.cmd(json!({"execute": "query-block-jobs"}), None);
        if r["return"][0]["status"] == "concluded" {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    });
    step(&mut q, "jobs concluded", "query-block-jobs", json!({}));
    assert_eq!(concluded["return"][0]["status"], "concluded");
    step(&mut q, "dismiss", "job-dismiss", json!({"id": id}));
    step(&mut q, "dismiss again", "job-dismiss", json!({"id": id}));
    step(
        &mut q,
        "complete unknown",
        "block-job-complete",
        json!({"device": "nosuch"}),
    );
    step(
        &mut q,
        "cancel unknown",
        "block-job-cancel",
        json!({"device": "nosuch"}),
    );
    step(
        &mut q,
        "del overlay",
        "blockdev-del",
        json!({"node-name": "libvirt-2-format"}),
    );
    step(
        &mut q,
        "del its file",
        "blockdev-del",
        json!({"node-name": "libvirt-2-storage"}),
    );
    let info = q.cmd(json!({"execute": "query-block"}), None);
    out.push((
        "disk on the base".into(),
        info["return"][0]["inserted"]["file"].clone(),
    ));
    // A second snapshot, its commit cancelled once ready: the disk stays
    // on the overlay.
    let ov3 = d.join("overlay3.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        s(&base),
        "-F",
        "qcow2",
        s(&ov3),
    ]);
    let [f3, q3] = libvirt_disk(3, &ov3, false);
    let mut step = |q: &mut Raw, name: &str, execute: &str, args: Value| {
        let r = q.cmd(json!({"execute": execute, "arguments": args}), None);
        out.push((name.to_string(), r));
    };
    step(&mut q, "add file 3", "blockdev-add", f3);
    step(&mut q, "add qcow2 3", "blockdev-add", q3);
    step(
        &mut q,
        "snapshot 3",
        "blockdev-snapshot",
        json!({"node": "libvirt-1-format", "overlay": "libvirt-3-format"}),
    );
    step(
        &mut q,
        "commit 3",
        "block-commit",
        json!({"job-id": "j3", "device": "libvirt-3-format", "auto-dismiss": false}),
    );
    q.wait_event("BLOCK_JOB_READY");
    step(
        &mut q,
        "cancel ready",
        "block-job-cancel",
        json!({"device": "j3"}),
    );
    let concluded = poll("the job to conclude", T, || {
        let r = q.cmd(json!({"execute": "query-block-jobs"}), None);
        if r["return"][0]["status"] == "concluded" {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    });
    assert_eq!(concluded["return"][0]["ready"], false, "{concluded}");
    step(&mut q, "cancelled", "query-block-jobs", json!({}));
    step(&mut q, "dismiss 3", "job-dismiss", json!({"id": "j3"}));
    let info = q.cmd(json!({"execute": "query-block"}), None);
    out.push((
        "disk on the overlay".into(),
        info["return"][0]["inserted"]["file"].clone(),
    ));
    drop(vmm);
    for (_, v) in &mut out {
        *v = serde_json::from_str(&v.to_string().replace(s(d), "DIR")).unwrap();
    }
    out
}

/// rvirt-qmp's client passes a descriptor with `add-fd` (as rvirtd passes
/// an overlay to a confined VMM), and a node opens it by its fd set.
#[test]
fn the_client_passes_an_image_by_descriptor() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let img = dir.path().join("passed.qcow2");
    qemu_img_ok(&["create", "-f", "qcow2", s(&img), "16M"]);
    let sock = dir.path().join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let kernel = Guest::Virtio.path();
    let _vmm = spawn(&["-S", "-qmp", &qmp, "-kernel", s(&kernel)]);
    let c = qmp_connect(&sock, T);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let added = c
        .execute_with_fd("add-fd", Some(json!({"opaque": "overlay"})), file.as_fd())
        .unwrap();
    let set = added["fdset-id"].as_i64().unwrap();
    let sets = c.execute("query-fdsets", None).unwrap();
    assert_eq!(sets[0]["fdset-id"], set, "{sets}");
    assert_eq!(sets[0]["fds"][0]["opaque"], "overlay", "{sets}");
    let path = format!("/dev/fdset/{set}");
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "file", "filename": path, "node-name": "f0"})),
    )
    .unwrap();
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "file": "f0", "node-name": "q0", "backing": null})),
    )
    .unwrap();
    c.execute("remove-fd", Some(json!({"fdset-id": set})))
        .unwrap();
}
