//! virtio-rng and virtio-blk through the real binary: the `virtio` test
//! guest drives each device with its own minimal virtio-mmio driver
//! (ioeventfd kicks, served by the device loop) and prints what it got.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rvirt_qmp::QmpClient;
use rvirt_test_guests::fnv1a32;
use rvirt_testkit::try_run;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

/// 64 KiB (128 sectors) of a pattern no two sectors share.
fn image(path: &Path) -> Vec<u8> {
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(31) + i / 512) as u8)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

/// The bytes the guest writes to sector 9.
fn written_sector() -> Vec<u8> {
    (0..512u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// The guest's output split per device, `VIRTIO_DEVICE` lines included.
fn per_device(out: &str) -> Vec<String> {
    let mut devs: Vec<String> = Vec::new();
    for line in out.lines() {
        if line.starts_with("VIRTIO_DEVICE ") {
            devs.push(String::new());
        }
        if let Some(d) = devs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    devs
}

#[test]
fn rng_and_blk_read_write_flush_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw.img");
    let ro = dir.path().join("ro.img");
    let data = image(&rw);
    image(&ro);
    let drive = format!("file={},format=raw,if=none,id=drive0", rw.display());
    let storage = format!(
        r#"{{"driver":"file","filename":"{}","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}}"#,
        ro.display()
    );
    let run = boot(
        Guest::Virtio,
        &[
            "-no-reboot",
            "-object",
            "rng-random,id=rng0,filename=/dev/urandom",
            "-device",
            "virtio-rng-device,rng=rng0",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=drive0,serial=RVIRT-SER-1",
            "-blockdev",
            &storage,
            "-blockdev",
            r#"{"node-name":"libvirt-1-format","read-only":true,"driver":"raw","file":"libvirt-1-storage"}"#,
            "-device",
            r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
        ],
    );
    let out = &run.stdout;
    assert!(output::done(out), "{out}");
    assert_eq!(output::number_of(out, "VIRTIO_DEVICES"), Some(3), "{out}");
    let devs = per_device(out);
    assert_eq!(devs.len(), 3, "{out}");
    assert!(!out.contains("VIRTIO_FAILED"), "{out}");

    // Slots in command-line order, one IRQ each from GSI 5.
    let ids: Vec<&str> = output::values(out, "VIRTIO_DEVICE").collect();
    assert_eq!(ids, ["0xd0000000 4 5", "0xd0001000 2 6", "0xd0002000 2 7"]);

    let rng = &devs[0];
    assert_eq!(output::number_of(rng, "RNG_LEN"), Some(32), "{rng}");
    let bytes = output::value(rng, "RNG_BYTES").unwrap();
    assert_eq!(bytes.len(), 64, "{rng}");
    assert_ne!(bytes, "0".repeat(64), "the buffer was never filled: {rng}");

    let sum = format!("{:#010x}", fnv1a32(&data[..4096]));
    let disk = &devs[1];
    assert_eq!(output::number_of(disk, "BLK_CAPACITY"), Some(128), "{disk}");
    assert_eq!(output::value(disk, "BLK_RO"), Some("0"));
    assert_eq!(output::value(disk, "BLK_READ_STATUS"), Some("0"), "{disk}");
    assert_eq!(output::value(disk, "BLK_READ_FNV1A32"), Some(sum.as_str()));
    assert_eq!(output::value(disk, "BLK_WRITE_STATUS"), Some("0"), "{disk}");
    assert_eq!(output::value(disk, "BLK_FLUSH_STATUS"), Some("0"), "{disk}");
    assert_eq!(output::value(disk, "BLK_ID"), Some("RVIRT-SER-1"), "{disk}");
    let after = std::fs::read(&rw).unwrap();
    assert_eq!(&after[9 * 512..10 * 512], written_sector().as_slice());
    assert_eq!(&after[..9 * 512], &data[..9 * 512], "only sector 9 changed");
    assert_eq!(&after[10 * 512..], &data[10 * 512..]);

    let rodisk = &devs[2];
    assert_eq!(output::value(rodisk, "BLK_RO"), Some("1"), "{rodisk}");
    assert_eq!(
        output::value(rodisk, "BLK_READ_FNV1A32"),
        Some(sum.as_str())
    );
    // VIRTIO_BLK_S_IOERR, and the file is untouched.
    assert_eq!(
        output::value(rodisk, "BLK_WRITE_STATUS"),
        Some("1"),
        "{rodisk}"
    );
    assert_eq!(std::fs::read(&ro).unwrap(), data);
}

/// Every I/O path a `-drive` can choose, through the guest: O_DIRECT with
/// io_uring (`aio=io_uring`, and `native`, which rvirt also serves with
/// io_uring), the worker pool with O_DSYNC (`writethrough`), and `unsafe`
/// (flush is a no-op) on io_uring. Each disk reads the pattern back and
/// writes its sector 9 to its own file.
#[test]
fn every_cache_and_aio_mode_reads_writes_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let modes = [
        "cache=none,aio=io_uring",
        "cache=none,aio=native",
        "cache=directsync,aio=threads",
        "cache=writethrough,aio=threads",
        "cache=unsafe,aio=io_uring",
    ];
    let mut args: Vec<String> = vec!["-no-reboot".into()];
    let mut files = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let path = dir.path().join(format!("d{i}.img"));
        let data = image(&path);
        args.push("-drive".into());
        args.push(format!(
            "file={},format=raw,if=none,id=d{i},{mode}",
            path.display()
        ));
        args.push("-device".into());
        args.push(format!("virtio-blk-device,drive=d{i}"));
        files.push((path, data));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = boot(Guest::Virtio, &args);
    let out = &run.stdout;
    assert!(output::done(out), "{out}");
    assert!(!out.contains("VIRTIO_FAILED"), "{out}");
    let devs = per_device(out);
    assert_eq!(devs.len(), modes.len(), "{out}");
    for ((disk, (path, data)), mode) in devs.iter().zip(&files).zip(modes) {
        let sum = format!("{:#010x}", fnv1a32(&data[..4096]));
        assert_eq!(
            output::value(disk, "BLK_READ_STATUS"),
            Some("0"),
            "{mode}: {disk}"
        );
        assert_eq!(
            output::value(disk, "BLK_READ_FNV1A32"),
            Some(sum.as_str()),
            "{mode}"
        );
        assert_eq!(
            output::value(disk, "BLK_WRITE_STATUS"),
            Some("0"),
            "{mode}: {disk}"
        );
        assert_eq!(
            output::value(disk, "BLK_FLUSH_STATUS"),
            Some("0"),
            "{mode}: {disk}"
        );
        // writethrough and directsync: no volatile cache for the guest.
        let wce = if mode.contains("cache=writethrough") || mode.contains("cache=directsync") {
            "0"
        } else {
            "1"
        };
        assert_eq!(output::value(disk, "BLK_WCE"), Some(wce), "{mode}: {disk}");
        let after = std::fs::read(path).unwrap();
        assert_eq!(
            &after[9 * 512..10 * 512],
            written_sector().as_slice(),
            "{mode}"
        );
        assert_eq!(
            &after[..9 * 512],
            &data[..9 * 512],
            "{mode}: only sector 9 changed"
        );
    }
}

/// A loop device (`losetup`), detached when the test ends.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Loop {
        let out = rvirt_testkit::run(
            std::process::Command::new("losetup")
                .args(["--find", "--show"])
                .arg(file),
            T,
        );
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Err(why) = try_run(
            std::process::Command::new("losetup").args(["-d", &self.0]),
            T,
        ) {
            eprintln!("cannot detach {}: {why}", self.0);
        }
    }
}

/// A host block device (libvirt's `<disk type='block'>`: `driver=host_device`),
/// buffered and with O_DIRECT: the capacity is the device's size (its
/// metadata says 0), and what the guest writes reaches the backing file.
#[test]
fn a_host_block_device_is_a_disk() {
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: no loop devices here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["-no-reboot".into()];
    let mut disks = Vec::new();
    for (i, direct) in [false, true].into_iter().enumerate() {
        let path = dir.path().join(format!("b{i}.img"));
        let data = image(&path);
        let dev = Loop::attach(&path);
        args.push("-blockdev".into());
        args.push(format!(
            r#"{{"driver":"host_device","filename":"{}","node-name":"s{i}","cache":{{"direct":{direct}}}}}"#,
            dev.0
        ));
        args.push("-blockdev".into());
        args.push(format!(
            r#"{{"node-name":"f{i}","driver":"raw","file":"s{i}"}}"#
        ));
        args.push("-device".into());
        args.push(format!("virtio-blk-device,drive=f{i}"));
        disks.push((dev, path, data));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = boot(Guest::Virtio, &argv);
    let out = &run.stdout;
    assert!(output::done(out), "{out}");
    let devs = per_device(out);
    assert_eq!(devs.len(), 2, "{out}");
    for (disk, (dev, path, data)) in devs.iter().zip(&disks) {
        let sum = format!("{:#010x}", fnv1a32(&data[..4096]));
        assert_eq!(output::number_of(disk, "BLK_CAPACITY"), Some(128), "{disk}");
        assert_eq!(
            output::value(disk, "BLK_READ_FNV1A32"),
            Some(sum.as_str()),
            "{disk}"
        );
        assert_eq!(output::value(disk, "BLK_WRITE_STATUS"), Some("0"), "{disk}");
        assert_eq!(output::value(disk, "BLK_FLUSH_STATUS"), Some("0"), "{disk}");
        // Through the loop device into its file.
        rvirt_testkit::run(
            std::process::Command::new("blockdev").args(["--flushbufs", &dev.0]),
            T,
        );
        let after = std::fs::read(path).unwrap();
        assert_eq!(
            &after[9 * 512..10 * 512],
            written_sector().as_slice(),
            "{}",
            dev.0
        );
    }
}

#[test]
fn missing_or_unusable_backends_fail_cleanly() {
    let k = Guest::Virtio.path();
    let k = k.to_str().unwrap();
    for (args, msg) in [
        (
            vec![
                "-drive",
                "file=/nonexistent/x.img,format=raw,if=none,id=d0",
                "-device",
                "virtio-blk-device,drive=d0",
            ],
            "-drive: Could not open '/nonexistent/x.img': No such file or directory",
        ),
        (
            vec!["-drive", "file=/x.vmdk,format=vmdk,if=none,id=d0"],
            "format 'vmdk' is not supported yet",
        ),
        (
            vec![
                "-drive",
                "file=/dev/null,format=qcow2,if=none,id=d0",
                "-device",
                "virtio-blk-device,drive=d0",
            ],
            "-drive: '/dev/null'",
        ),
        (
            vec!["-device", "virtio-net-device,netdev=n0"],
            "Property 'virtio-net-device.netdev' can't find value 'n0'",
        ),
        // spawn() gives the VMM /dev/null as fd 0.
        (
            vec![
                "-netdev",
                "tap,id=n0,fd=0",
                "-device",
                "virtio-net-device,netdev=n0",
            ],
            "fd 0 is not a tap device",
        ),
        (
            vec!["-netdev", "socket,id=n0,connect=127.0.0.1:1"],
            "type 'socket' is not supported yet",
        ),
        (
            vec!["-device", "virtconsole,chardev=c0"],
            "No 'virtio-serial-bus' bus found for device 'virtconsole'",
        ),
        (
            vec![
                "-chardev",
                "file,id=c0,path=/nonexistent/con.log",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=c0",
            ],
            "could not open '/nonexistent/con.log'",
        ),
    ] {
        let mut all = vec!["-kernel", k];
        all.extend(args.iter().copied());
        let run = wait(spawn(&all), T);
        assert_eq!(run.status.code(), Some(1), "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(msg), "{all:?}: {}", run.stderr);
    }
}

fn connect(sock: &Path) -> QmpClient {
    qmp_connect(sock, T)
}

fn wait_serial(vmm: &Spawned, log: &Path, what: &str, times: usize) -> String {
    poll(&format!("{times}x '{what}' on the serial port"), T, || {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.matches(what).count() >= times {
            Ok(s)
        } else {
            Err(format!("{s}\n{}", vmm.describe()))
        }
    })
}

/// `query-block` lists the disk; after the guest powers off (kept by
/// `-no-shutdown`) a `system_reset` boots a fresh machine whose devices,
/// reset and re-attached, serve the guest again.
#[test]
fn query_block_and_devices_survive_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    let data = image(&img);
    let sock = dir.path().join("qmp.sock");
    let log = dir.path().join("serial.log");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let serial = format!("file:{}", log.display());
    let drive = format!(
        "file={},format=raw,if=none,id=drive0,readonly=on",
        img.display()
    );
    let kernel = Guest::Virtio.path();
    let child = spawn(&[
        "-S",
        "-no-shutdown",
        "-qmp",
        &qmp,
        "-serial",
        &serial,
        "-kernel",
        kernel.to_str().unwrap(),
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=drive0,id=disk0",
    ]);
    let c = connect(&sock);
    let blocks = c.execute("query-block", None).unwrap();
    assert_eq!(blocks[0]["device"], "drive0", "{blocks}");
    assert_eq!(blocks[0]["qdev"], "disk0");
    assert_eq!(blocks[0]["inserted"]["ro"], true);
    assert_eq!(blocks[0]["inserted"]["drv"], "raw");
    assert_eq!(
        blocks[0]["inserted"]["file"],
        Value::String(img.display().to_string())
    );
    // Nothing ran under -S.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "");
    c.execute("cont", None).unwrap();
    wait_serial(&child, &log, "DONE", 1);
    c.wait_event("SHUTDOWN", T).unwrap();
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        json!("shutdown")
    );
    c.execute("system_reset", None).unwrap();
    c.execute("cont", None).unwrap();
    let s = wait_serial(&child, &log, "DONE", 2);
    let sum = format!("BLK_READ_FNV1A32 {:#010x}", fnv1a32(&data[..4096]));
    assert_eq!(s.matches(&sum).count(), 2, "{s}");
    assert_eq!(s.matches("BLK_WRITE_STATUS 1").count(), 2, "{s}");
    assert!(!s.contains("VIRTIO_FAILED"), "{s}");
    drop(child);
}

/// The libvirt form: `query-block` names the disk by its format node and
/// its guest device's id, with `device` empty, as QEMU does.
#[test]
fn query_block_for_a_blockdev_disk() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    image(&img);
    let sock = dir.path().join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let storage = format!(
        r#"{{"driver":"file","filename":"{}","node-name":"libvirt-1-storage"}}"#,
        img.display()
    );
    let kernel = Guest::Virtio.path();
    let vm = spawn(&[
        "-S",
        "-qmp",
        &qmp,
        "-kernel",
        kernel.to_str().unwrap(),
        "-blockdev",
        &storage,
        "-blockdev",
        r#"{"node-name":"libvirt-1-format","read-only":false,"driver":"raw","file":"libvirt-1-storage"}"#,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
    ]);
    let c = connect(&sock);
    let blocks = c.execute("query-block", None).unwrap();
    assert_eq!(blocks.as_array().map(Vec::len), Some(1), "{blocks}");
    assert_eq!(blocks[0]["device"], "");
    assert_eq!(blocks[0]["qdev"], "virtio-disk0");
    assert_eq!(blocks[0]["inserted"]["node-name"], "libvirt-1-format");
    assert_eq!(blocks[0]["inserted"]["ro"], false);
    drop(vm);
}

/// `query-blockstats` as QEMU 7.2 shapes it, counting what the guest did:
/// one 4 KiB read, one 512-byte write at sector 9, one flush; a -blockdev
/// disk named by its nodes, the file node below with its highest write.
#[test]
fn query_blockstats_counts_the_guests_requests() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    image(&img);
    let sock = dir.path().join("qmp.sock");
    let log = dir.path().join("serial.log");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let serial = format!("file:{}", log.display());
    let storage = format!(
        r#"{{"driver":"file","filename":"{}","node-name":"libvirt-1-storage","cache":{{"direct":false,"no-flush":false}},"auto-read-only":true,"discard":"unmap"}}"#,
        img.display()
    );
    let kernel = Guest::Virtio.path();
    let vmm = spawn(&[
        "-S",
        "-no-shutdown",
        "-qmp",
        &qmp,
        "-serial",
        &serial,
        "-kernel",
        kernel.to_str().unwrap(),
        "-blockdev",
        &storage,
        "-blockdev",
        r#"{"node-name":"libvirt-1-format","read-only":false,"cache":{"direct":false,"no-flush":false},"driver":"raw","file":"libvirt-1-storage"}"#,
        "-device",
        r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0","write-cache":"on"}"#,
    ]);
    let c = connect(&sock);
    let before = c.execute("query-blockstats", None).unwrap();
    assert_eq!(before[0]["stats"]["rd_operations"], 0, "{before}");
    assert!(before[0]["stats"].get("idle_time_ns").is_none(), "{before}");
    c.execute("cont", None).unwrap();
    let out = wait_serial(&vmm, &log, "DONE", 1);
    assert_eq!(output::value(&out, "BLK_WCE"), Some("1"), "{out}");
    let all = c.execute("query-blockstats", None).unwrap();
    let e = &all[0];
    assert_eq!(e["device"], "", "{all}");
    assert_eq!(e["node-name"], "libvirt-1-format");
    assert_eq!(e["qdev"], "virtio-disk0");
    let s = &e["stats"];
    assert_eq!(s["rd_operations"], 1, "{s}");
    assert_eq!(s["rd_bytes"], 4096);
    assert_eq!(s["wr_operations"], 1);
    assert_eq!(s["wr_bytes"], 512);
    assert_eq!(s["flush_operations"], 1);
    assert_eq!(s["wr_highest_offset"], 10 * 512);
    assert_eq!(s["account_invalid"], true);
    assert!(s["idle_time_ns"].as_u64().is_some(), "{s}");
    let p = &e["parent"];
    assert_eq!(p["node-name"], "libvirt-1-storage");
    assert_eq!(p["stats"]["wr_highest_offset"], 10 * 512);
    assert_eq!(
        p["stats"]["wr_operations"], 0,
        "node level: QEMU counts at the device"
    );
    assert_eq!(p["driver-specific"]["driver"], "file");
    let nodes = c
        .execute("query-blockstats", Some(json!({"query-nodes": true})))
        .unwrap();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node-name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["libvirt-1-format", "libvirt-1-storage"], "{nodes}");
    drop(vmm);
}
