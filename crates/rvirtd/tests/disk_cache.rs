//! libvirt's disk cache modes keep their meaning on the daemon path: the
//! real virsh defines and starts, through rvirtd, a domain with one disk
//! per cache mode (none, writethrough, writeback, directsync, unsafe and
//! the default), each a loop device, and the `virtio` test guest writes
//! and flushes every disk. Durability is measured, not read off the code:
//! the open flags of the VMM's descriptor for each disk
//! (/proc/PID/fdinfo: O_DIRECT, O_DSYNC), the write cache the guest sees
//! (the virtio-blk `wce` byte), the guest's flushes as the VMM counted
//! them (`virsh domstats --block`, from QMP query-blockstats) and the
//! flushes that reached each device (the kernel's count in
//! /sys/block/loopN/stat).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have_virsh, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{run, wait_for};

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Option<Loop> {
        let out = run(
            Command::new("losetup").args(["--find", "--show"]).arg(file),
            Duration::from_secs(20),
        );
        out.status
            .success()
            .then(|| Loop(String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// Flush requests the block layer completed on the device (field 16).
    fn flushes(&self) -> u64 {
        let name = Path::new(&self.0).file_name().unwrap().to_string_lossy();
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
        stat.split_whitespace().nth(15).unwrap().parse().unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = run(
            Command::new("losetup").args(["-d", &self.0]),
            Duration::from_secs(20),
        );
    }
}

/// A libvirt cache mode (None: the attribute left out), the io mode the
/// disk also gets, and what it must mean: (O_DIRECT, every write durable,
/// flushes reach the device, the guest sees a write cache).
struct Mode {
    cache: Option<&'static str>,
    io: &'static str,
    direct: bool,
    durable_writes: bool,
    flushes: bool,
    wce: bool,
}

const MODES: [Mode; 6] = [
    Mode {
        cache: Some("none"),
        io: "native",
        direct: true,
        durable_writes: false,
        flushes: true,
        wce: true,
    },
    Mode {
        cache: Some("writethrough"),
        io: "io_uring",
        direct: false,
        durable_writes: true,
        flushes: true,
        wce: false,
    },
    Mode {
        cache: Some("writeback"),
        io: "threads",
        direct: false,
        durable_writes: false,
        flushes: true,
        wce: true,
    },
    Mode {
        cache: Some("directsync"),
        io: "threads",
        direct: true,
        durable_writes: true,
        flushes: true,
        wce: false,
    },
    Mode {
        cache: Some("unsafe"),
        io: "io_uring",
        direct: false,
        durable_writes: false,
        flushes: false,
        wce: true,
    },
    Mode {
        cache: None,
        io: "threads",
        direct: false,
        durable_writes: false,
        flushes: true,
        wce: true,
    },
];

fn domain(devs: &[String]) -> String {
    let mut disks = String::new();
    for (i, (m, dev)) in MODES.iter().zip(devs).enumerate() {
        let cache = m.cache.map(|c| format!(" cache='{c}'")).unwrap_or_default();
        disks += &format!(
            "    <disk type='block' device='disk'>\n      \
             <driver name='qemu' type='raw'{cache} io='{}'/>\n      \
             <source dev='{dev}'/>\n      \
             <target dev='vd{}' bus='virtio'/>\n    </disk>\n",
            m.io,
            (b'a' + i as u8) as char
        );
    }
    format!(
        "<domain type='kvm'>
  <name>caches</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0 virtio.hold=1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
{disks}    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Virtio.path().display()
    )
}

/// The guest's output per device, `VIRTIO_DEVICE` lines included.
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

/// The open flags of the VMM's descriptor for `dev` (fdinfo's octal).
fn open_flags(pid: i32, dev: &str) -> u32 {
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new(dev)) {
            let fd = e.file_name().to_string_lossy().into_owned();
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .unwrap()
                .trim();
            return u32::from_str_radix(flags, 8).unwrap();
        }
    }
    panic!("the VMM has no descriptor for {dev}");
}

/// `block.<i>.<key>` from `virsh domstats --block`.
fn stat(domstats: &str, i: usize, key: &str) -> u64 {
    let prefix = format!("block.{i}.{key}=");
    domstats
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {domstats}"))
        .parse()
        .unwrap()
}

#[test]
fn every_libvirt_cache_mode_keeps_its_durability_through_rvirtd() {
    if !have_virsh() {
        return;
    }
    if !Path::new("/dev/loop-control").exists() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "loop devices are required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("skipped: no loop devices here");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let mut loops = Vec::new();
    for i in 0..MODES.len() {
        let f = files.path().join(format!("d{i}.img"));
        std::fs::write(&f, vec![0x5au8; 1 << 20]).unwrap();
        match Loop::attach(&f) {
            Some(l) => loops.push(l),
            None => {
                assert!(
                    std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
                    "losetup failed with RVIRT_REQUIRE_REFERENCE set"
                );
                eprintln!("skipped: losetup failed (not root?)");
                return;
            }
        }
    }
    let devs: Vec<String> = loops.iter().map(|l| l.0.clone()).collect();
    let d = Rvirtd::start();
    let file = d.xml_file("caches.xml", &domain(&devs));
    d.ok(&["define", &file]);
    let before: Vec<u64> = loops.iter().map(Loop::flushes).collect();
    d.ok(&["start", "caches"]);
    wait_for(
        "the guest to finish with its disks",
        Duration::from_secs(60),
        || d.log("caches").contains("VIRTIO_HOLD"),
    );
    let log = d.log("caches");
    let out = &log[log.find("VIRTIO_DEVICE").unwrap_or(0)..];
    assert!(!out.contains("VIRTIO_FAILED"), "{out}");
    let guest = per_device(out);
    assert_eq!(guest.len(), MODES.len(), "{out}");
    let pid: i32 = std::fs::read_to_string(d.root().join("run/rvirt/qemu/caches/vmm.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let domstats = d.ok(&["domstats", "--block", "caches"]);
    assert!(
        domstats.contains(&format!("block.count={}", MODES.len())),
        "{domstats}"
    );

    for (i, m) in MODES.iter().enumerate() {
        let what = format!("cache={:?} io={}", m.cache, m.io);
        let g = &guest[i];
        for key in ["BLK_READ_STATUS", "BLK_WRITE_STATUS", "BLK_FLUSH_STATUS"] {
            assert_eq!(
                rvirt_test_guests::output::value(g, key),
                Some("0"),
                "{what}: {g}"
            );
        }
        // The guest's view.
        let wce = if m.wce { "1" } else { "0" };
        assert_eq!(
            rvirt_test_guests::output::value(g, "BLK_WCE"),
            Some(wce),
            "{what}: {g}"
        );
        // The host's open flags.
        let flags = open_flags(pid, &devs[i]);
        assert_eq!(
            flags & libc::O_DIRECT as u32 != 0,
            m.direct,
            "{what}: {flags:o}"
        );
        let dsync = libc::O_DSYNC as u32;
        assert_eq!(
            flags & dsync == dsync,
            m.durable_writes,
            "{what}: {flags:o}"
        );
        // What the VMM counted (QMP query-blockstats, through rvirtd) and
        // what reached the device.
        assert!(
            domstats.contains(&format!("block.{i}.path={}\n", devs[i])),
            "{domstats}"
        );
        assert_eq!(stat(&domstats, i, "rd.reqs"), 1, "{what}: {domstats}");
        let writes = stat(&domstats, i, "wr.reqs");
        let flushes = stat(&domstats, i, "fl.reqs");
        assert_eq!((writes, flushes), (1, 1), "{what}: {domstats}");
        let device = loops[i].flushes() - before[i];
        if !m.flushes {
            assert_eq!(device, 0, "{what}: the guest's flush reached the device");
        } else if m.durable_writes {
            assert!(
                device >= writes + flushes,
                "{what}: {device} device flushes for {writes} write(s) and {flushes} flush(es)"
            );
        } else {
            assert_eq!(
                device, flushes,
                "{what}: only the guest's flushes reach the device"
            );
        }
    }
    d.ok(&["destroy", "caches"]);
}
