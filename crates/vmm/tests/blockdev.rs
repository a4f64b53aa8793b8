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
}

impl Raw {
    fn connect(sock: &Path) -> Raw {
        let stream = poll("the QMP socket", T, || {
            UnixStream::connect(sock).map_err(|e| e.to_string())
        });
        stream.set_read_timeout(Some(T)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut raw = Raw { stream, reader };
        raw.line();
        raw.cmd(json!({"execute": "qmp_capabilities"}), None);
        raw
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("a QMP line in time");
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

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
}
