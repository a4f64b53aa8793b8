//! qcow2 disks through the real binary, with qemu-img (and QEMU 7.2 for
//! `query-block`) as the oracle: a guest reads a base image's data through
//! an overlay and its write lands in the overlay only, in libvirt's
//! `-blockdev` form and with `-drive`, on several cache and aio modes;
//! `query-block` shows the chain as QEMU does; the image is clean after
//! every orderly end (guest power-off, QMP quit, SIGTERM) and has no
//! corruption after SIGKILL in the middle of allocating writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use rvirt_test_guests::fnv1a32;
use rvirt_testkit::run;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn qemu_img(args: &[&str]) -> std::process::Output {
    run(Command::new("qemu-img").args(args), T)
}

fn qemu_img_ok(args: &[&str]) -> String {
    let out = qemu_img(args);
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// 64 KiB (128 sectors) of a pattern no two sectors share, as the virtio
/// guest's tests use.
fn data() -> Vec<u8> {
    (0..65536u32)
        .map(|i| (i.wrapping_mul(31) + i / 512) as u8)
        .collect()
}

/// The bytes the virtio guest writes to sector 9.
fn written_sector() -> Vec<u8> {
    (0..512u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// A qcow2 base holding [`data`] and an empty qcow2 overlay on it.
fn chain(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = dir.join("base.raw");
    std::fs::write(&raw, data()).unwrap();
    let base = dir.join("base.qcow2");
    qemu_img_ok(&["convert", "-O", "qcow2", s(&raw), s(&base)]);
    // Small clusters, so the write and what stays below are apart.
    let top = dir.join("top.qcow2");
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
        s(&top),
    ]);
    (base, top)
}

/// libvirt 9.0's nodes for the chain: base read-only with `backing: null`,
/// the overlay naming it; `cache` goes on every node.
fn libvirt_nodes(base: &Path, top: &Path, cache: &str) -> Vec<String> {
    vec![
        "-blockdev".into(),
        format!(
            r#"{{"driver":"file","filename":"{}","node-name":"libvirt-2-storage",{cache}"auto-read-only":true,"discard":"unmap"}}"#,
            base.display()
        ),
        "-blockdev".into(),
        format!(
            r#"{{"node-name":"libvirt-2-format","read-only":true,{cache}"driver":"qcow2","file":"libvirt-2-storage","backing":null}}"#
        ),
        "-blockdev".into(),
        format!(
            r#"{{"driver":"file","filename":"{}","node-name":"libvirt-1-storage",{cache}"auto-read-only":true,"discard":"unmap"}}"#,
            top.display()
        ),
        "-blockdev".into(),
        format!(
            r#"{{"node-name":"libvirt-1-format","read-only":false,{cache}"driver":"qcow2","file":"libvirt-1-storage","backing":"libvirt-2-format"}}"#
        ),
    ]
}

/// `qemu-img check` exits 0 on a clean image, 3 with leaks only, 2 with
/// corruptions.
fn check(image: &Path) -> (i32, String) {
    let out = qemu_img(&["check", s(image)]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What the guest must have seen and done, and where it landed.
fn assert_overlay_took_the_write(out: &str, base: &Path, top: &Path, base_before: &[u8]) {
    let sum = format!("{:#010x}", fnv1a32(&data()[..4096]));
    assert_eq!(output::number_of(out, "BLK_CAPACITY"), Some(128), "{out}");
    assert_eq!(output::value(out, "BLK_READ_STATUS"), Some("0"), "{out}");
    assert_eq!(
        output::value(out, "BLK_READ_FNV1A32"),
        Some(sum.as_str()),
        "the base's data through the overlay: {out}"
    );
    assert_eq!(output::value(out, "BLK_WRITE_STATUS"), Some("0"), "{out}");
    assert_eq!(output::value(out, "BLK_FLUSH_STATUS"), Some("0"), "{out}");
    // The base is byte for byte what it was.
    assert!(
        std::fs::read(base).unwrap() == base_before,
        "the base changed"
    );
    // The write is in the overlay (depth 0), the rest still below.
    let map: Value = serde_json::from_str(&qemu_img_ok(&["map", "--output=json", s(top)])).unwrap();
    let at = |off: u64| {
        map.as_array()
            .unwrap()
            .iter()
            .find(|e| {
                let start = e["start"].as_u64().unwrap();
                start <= off && off < start + e["length"].as_u64().unwrap()
            })
            .cloned()
            .unwrap()
    };
    let written = at(9 * 512);
    assert_eq!(written["depth"], 0, "{map}");
    assert_eq!(written["data"], true, "{map}");
    assert_eq!(at(65536 - 512)["depth"], 1, "{map}");
    let (code, text) = check(top);
    assert_eq!(code, 0, "{text}");
    let mut want = data();
    want[9 * 512..10 * 512].copy_from_slice(&written_sector());
    let expect = top.with_file_name("expect.raw");
    std::fs::write(&expect, want).unwrap();
    let cmp = qemu_img_ok(&["compare", "-f", "qcow2", "-F", "raw", s(top), s(&expect)]);
    assert!(cmp.contains("Images are identical"), "{cmp}");
}

#[test]
fn a_guest_reads_the_base_through_an_overlay_and_writes_only_the_overlay() {
    let caches = [
        "",
        r#""cache":{"direct":true,"no-flush":false},"aio":"io_uring","#,
        r#""cache":{"direct":false,"no-flush":true},"#,
    ];
    for cache in caches {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (base, top) = chain(dir.path());
        let before = std::fs::read(&base).unwrap();
        // "aio" belongs to the file nodes only.
        let nodes: Vec<String> = libvirt_nodes(&base, &top, cache)
            .into_iter()
            .map(|n| {
                if n.contains(r#""driver":"qcow2""#) {
                    n.replace(r#""aio":"io_uring","#, "")
                } else {
                    n
                }
            })
            .collect();
        let mut args: Vec<&str> = vec!["-no-reboot"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend([
            "-device",
            r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
        ]);
        let run = boot(Guest::Virtio, &args);
        assert_overlay_took_the_write(&run.stdout, &base, &top, &before);
    }
    // -drive: the chain comes from the overlay's header, as in QEMU.
    for mode in [
        "cache=writeback",
        "cache=writethrough,aio=threads",
        "cache=none,aio=native",
    ] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (base, top) = chain(dir.path());
        let before = std::fs::read(&base).unwrap();
        let drive = format!("file={},format=qcow2,if=none,id=d0,{mode}", top.display());
        let run = boot(
            Guest::Virtio,
            &[
                "-no-reboot",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        );
        assert_overlay_took_the_write(&run.stdout, &base, &top, &before);
    }
}

/// Under libvirt's `-sandbox` (seccomp per thread kind, Landlock on the
/// files the command line names): imago's metadata I/O and allocating
/// writes pass the `devices` and `blk-io` filters on every engine, and
/// the chain is within Landlock's rules, named as nodes or only in the
/// overlay's header.
#[test]
fn a_chain_works_under_the_sandbox() {
    const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
    for aio in ["threads", "io_uring"] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (base, top) = chain(dir.path());
        let before = std::fs::read(&base).unwrap();
        let cache = format!(r#""aio":"{aio}","#);
        let nodes: Vec<String> = libvirt_nodes(&base, &top, &cache)
            .into_iter()
            // "aio" belongs to the file nodes only.
            .map(|n| {
                if n.contains(r#""driver":"qcow2""#) {
                    n.replace(&cache, "")
                } else {
                    n
                }
            })
            .collect();
        let mut args: Vec<&str> = vec!["-no-reboot", "-sandbox", SANDBOX];
        args.extend(nodes.iter().map(String::as_str));
        args.extend([
            "-device",
            r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
        ]);
        let run = boot(Guest::Virtio, &args);
        assert_overlay_took_the_write(&run.stdout, &base, &top, &before);

        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (base, top) = chain(dir.path());
        let before = std::fs::read(&base).unwrap();
        let drive = format!(
            "file={},format=qcow2,if=none,id=d0,aio={aio},cache=none",
            top.display()
        );
        let run = boot(
            Guest::Virtio,
            &[
                "-no-reboot",
                "-sandbox",
                SANDBOX,
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        );
        assert_overlay_took_the_write(&run.stdout, &base, &top, &before);
    }
}

/// `-blockdev` with `backing: null` opens nothing but the image: the base
/// can be gone, the guest reads zeroes where the base had data.
#[test]
fn backing_null_opens_no_other_file() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (base, top) = chain(dir.path());
    std::fs::remove_file(&base).unwrap();
    let storage = format!(
        r#"{{"driver":"file","filename":"{}","node-name":"s"}}"#,
        top.display()
    );
    let run = boot(
        Guest::Virtio,
        &[
            "-no-reboot",
            "-blockdev",
            &storage,
            "-blockdev",
            r#"{"node-name":"f","driver":"qcow2","file":"s","backing":null}"#,
            "-device",
            "virtio-blk-device,drive=f",
        ],
    );
    let zeroes = format!("{:#010x}", fnv1a32(&[0u8; 4096]));
    assert_eq!(
        output::value(&run.stdout, "BLK_READ_FNV1A32"),
        Some(zeroes.as_str()),
        "{}",
        run.stdout
    );
    // Without `backing`, the header's base is needed (QEMU's rule), and
    // its absence is named.
    let spawned = spawn(&[
        "-kernel",
        s(&Guest::Virtio.path()),
        "-blockdev",
        &storage,
        "-blockdev",
        r#"{"node-name":"f","driver":"qcow2","file":"s"}"#,
        "-device",
        "virtio-blk-device,drive=f",
    ]);
    let out = wait(spawned, T);
    assert!(!out.status.success());
    assert!(out.stderr.contains("base.qcow2"), "{}", out.stderr);
}

/// QEMU 7.2's `query-block` on the same chain, with the fields rvirt does
/// not produce (`format-specific`) left out.
fn qemu_query_block(nodes: &[String]) -> Value {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-S",
        "-machine",
        "pc,accel=tcg",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        "stdio",
    ])
    .args(nodes)
    .args([
        "-device",
        "virtio-blk-pci,drive=libvirt-1-format,id=virtio-disk0",
    ]);
    let mut qemu = Spawned::start(cmd.stdin(std::process::Stdio::piped()));
    use std::io::Write;
    qemu.line(T).expect("QEMU's greeting");
    writeln!(
        qemu.stdin(),
        r#"{{"execute":"qmp_capabilities"}}{{"execute":"query-block"}}{{"execute":"quit"}}"#
    )
    .unwrap();
    qemu.line(T).expect("qmp_capabilities' reply");
    let reply = qemu.line(T).expect("query-block's reply");
    qemu.wait(T);
    serde_json::from_str::<Value>(&reply).unwrap()["return"].clone()
}

fn strip_format_specific(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("format-specific");
            o.values_mut().for_each(strip_format_specific);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_format_specific),
        _ => {}
    }
}

#[test]
fn query_block_shows_the_chain_as_qemu_does() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (base, top) = chain(dir.path());
    let nodes = libvirt_nodes(&base, &top, "");
    let sock = dir.path().join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let mut args: Vec<&str> = vec!["-S", "-qmp", &qmp];
    let kernel = Guest::Virtio.path();
    args.extend(["-kernel", s(&kernel)]);
    args.extend(nodes.iter().map(String::as_str));
    args.extend([
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]);
    let vmm = spawn(&args);
    let c = qmp_connect(&sock, T);
    let ours = c.execute("query-block", None).unwrap();
    drop(vmm);
    let mut theirs = qemu_query_block(&nodes);
    strip_format_specific(&mut theirs);
    let (o, t) = (&ours[0]["inserted"], &theirs[0]["inserted"]);
    for key in [
        "image",
        "backing_file",
        "backing_file_depth",
        "drv",
        "ro",
        "file",
        "node-name",
        "cache",
        "detect_zeroes",
    ] {
        assert_eq!(o[key], t[key], "{key}: rvirt {o}\nQEMU {t}");
    }
    assert_eq!(o["image"]["backing-image"]["filename"], s(&base));
}

/// The blkbench guest (4 KiB writes, 16 in flight) on a fresh qcow2 with
/// small clusters, so nearly every write allocates.
fn writer(dir: &Path, extra: &[&str]) -> (Spawned, PathBuf, PathBuf) {
    let img = dir.join("fresh.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        s(&img),
        "64M",
    ]);
    let log = dir.join("serial.log");
    let guest = Guest::Virtio.path().with_file_name("blkbench.elf");
    let serial = format!("file:{}", log.display());
    let drive = format!("file={},format=qcow2,if=none,id=d0", img.display());
    let mut args = vec![
        "-kernel",
        s(&guest),
        "-append",
        "blkbench.n=20000",
        "-serial",
        &serial,
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
    ];
    args.extend_from_slice(extra);
    let vmm = spawn(&args);
    (vmm, img, log)
}

#[test]
fn sigkill_while_writing_leaves_no_corruption() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut vmm, img, log) = writer(dir.path(), &[]);
    wait_file(&log, "PHASE seqwrite START", T, || vmm.describe());
    std::thread::sleep(Duration::from_millis(500));
    vmm.signal(libc::SIGKILL);
    vmm.wait(T);
    let (code, text) = check(&img);
    assert!(code == 0 || code == 3, "qemu-img check exit {code}: {text}");
    assert!(!text.contains("ERROR"), "{text}");
}

/// Every orderly end of a VMM writing: QMP quit, SIGTERM, SIGINT, and a
/// reset under -no-reboot (the guest's own power-off and reset end the
/// boots above, whose images are checked too).
#[test]
fn quit_signals_and_reset_close_the_image_cleanly() {
    for how in ["quit", "SIGTERM", "SIGINT", "system_reset"] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let sock = dir.path().join("qmp.sock");
        let qmp = format!("unix:{},server=on,wait=off", sock.display());
        let (mut vmm, img, log) = writer(dir.path(), &["-no-reboot", "-qmp", &qmp]);
        let c = qmp_connect(&sock, T);
        wait_file(&log, "PHASE seqwrite START", T, || vmm.describe());
        std::thread::sleep(Duration::from_millis(300));
        match how {
            "SIGTERM" => sigterm(&vmm),
            "SIGINT" => vmm.signal(libc::SIGINT),
            _ => {
                c.execute(how, None).unwrap();
            }
        }
        let status = vmm.wait(T);
        assert!(status.success(), "{how}: {status}");
        let (code, text) = check(&img);
        assert_eq!(code, 0, "{how}: {text}");
        // The guest's writes are there: the image is not empty.
        let map: Value =
            serde_json::from_str(&qemu_img_ok(&["map", "--output=json", s(&img)])).unwrap();
        let data = map.as_array().unwrap().iter().any(|e| e["data"] == true);
        assert!(data, "{how}: nothing written: {map}");
    }
}
