//! `virsh attach-device --live` and `detach-device --live` through
//! rvirtd with the real virsh: a q35 domain running the `pci` test guest
//! in its hot-plug mode (it enables an empty `pcie-root-port`'s hot-plug
//! interrupts, waits for a device, reads it, then answers the attention
//! button as Linux's pciehp). The disk is opened and passed to the
//! confined VMM (`add-fd`) and added as libvirt 9.0 adds it
//! (`blockdev-add`, `device_add`); the guest reads its capacity and first
//! sector; a second disk finds no free port (libvirt's error, nothing
//! changed); bad XML changes nothing; the detach ends with the device
//! gone from the guest and the live XML, the image given back to its
//! owner, and DEVICE_REMOVED (`virsh event`). A qcow2 overlay on a raw
//! base (every image passed open), a NIC on a bridge (its tap made and
//! passed with `getfd`, in a private network namespace); a microvm is
//! refused.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd};
use rvirt_test_guests::{fnv1a32, output, Guest};
use rvirt_testkit::Spawned;

const T: Duration = Duration::from_secs(60);

/// q35, the pci guest in hot-plug mode, one (empty) root port.
fn xml(name: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>pci.hotplug=1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <controller type='pci' index='1' model='pcie-root-port'/>
    <controller type='usb' model='none'/>
    <serial type='stdio'><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Pci.path().display()
    )
}

fn disk_xml(path: &Path, target: &str) -> String {
    format!(
        "<disk type='file' device='disk'>
  <driver name='qemu' type='raw'/>
  <source file='{}'/>
  <target dev='{target}' bus='virtio'/>
</disk>
",
        path.display()
    )
}

/// `virsh event` for one DEVICE_REMOVED of `name`, registered with the
/// daemon before it returns (a guest that answers at once is removed
/// before a slow virsh would have registered).
fn removed_event(d: &Rvirtd, name: &str) -> Spawned {
    let registered = || {
        std::fs::read_to_string(d.root().join("rvirtd.stderr"))
            .unwrap_or_default()
            .matches("event callback registered")
            .count()
    };
    let before = registered();
    let event = Spawned::start(
        Command::new("virsh")
            .arg("-c")
            .arg(d.uri())
            .args(["event", "--domain", name, "--event", "device-removed"])
            .args(["--timeout", "60"])
            .env("LC_ALL", "C")
            .stdin(Stdio::null()),
    )
    .on_fail(d.reporter());
    rvirt_testkit::wait_for("virsh event to register", Duration::from_secs(15), || {
        registered() > before
    });
    event
}

#[test]
fn a_disk_is_hot_plugged_and_unplugged_with_virsh() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let name = "hp-disk";
    let file = d.xml_file("dom.xml", &xml(name));
    d.ok(&["define", &file]);
    d.ok(&["start", name]);
    d.wait_log(name, "HP_READY");

    // 64 KiB of a pattern, owned by someone other than the VM's user.
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(7) + i / 512) as u8)
        .collect();
    let image = d.root().join("hot.img");
    std::fs::write(&image, &data).unwrap();
    rustix::fs::chown(
        &image,
        Some(rustix::process::Uid::from_raw(4321)),
        Some(rustix::process::Gid::from_raw(4321)),
    )
    .unwrap();
    let owner = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };

    // Bad XML, and a bus that does not hot-plug: refused, nothing changed.
    let before = d.ok(&["dumpxml", name]);
    let bad = d.xml_file("bad.xml", "<disk type='file'><target dev='vdb'");
    assert!(!d.fails(&["attach-device", name, &bad, "--live"]).is_empty());
    let sata = d.xml_file(
        "sata.xml",
        &disk_xml(&image, "sdb").replace("bus='virtio'", "bus='sata'"),
    );
    let why = d.fails(&["attach-device", name, &sata, "--live"]);
    assert!(why.contains("not supported"), "{why}");
    // An image that is not there: refused before the VMM is asked.
    let missing = d.xml_file(
        "missing.xml",
        &disk_xml(&d.root().join("nothing.img"), "vdb"),
    );
    let why = d.fails(&["attach-device", name, &missing, "--live"]);
    assert!(why.contains("nothing.img"), "{why}");
    assert_eq!(d.ok(&["dumpxml", name]), before);

    let disk = d.xml_file("disk.xml", &disk_xml(&image, "vdb"));
    // Not there yet: libvirt's error for a detach.
    let why = d.fails(&["detach-device", name, &disk, "--live"]);
    assert!(why.contains("no target device vdb"), "{why}");
    d.ok(&["attach-device", name, &disk, "--live"]);
    d.wait_log(name, "HP_READ_FNV1A32");
    let log = d.log(name);
    let want = |k: &str, v: &str| assert_eq!(output::value(&log, k), Some(v), "{k} in\n{log}");
    want("HP_DEVICE", "1af4:1042");
    want("HP_CAPACITY", "128");
    want("HP_READ_STATUS", "0");
    want(
        "HP_READ_FNV1A32",
        &format!("0x{:08x}", fnv1a32(&data[..512])),
    );
    let live = d.ok(&["dumpxml", name]);
    assert!(live.contains("<alias name='virtio-disk1'/>"), "{live}");
    assert!(
        live.contains(
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>"
        ),
        "{live}"
    );
    assert_ne!(owner(&image), (4321, 4321), "the VM's user has the image");
    // The persistent definition is untouched by --live.
    assert!(!d.ok(&["dumpxml", "--inactive", name]).contains("hot.img"));

    // The only port is taken: libvirt's error, nothing changed.
    let other = d.root().join("other.img");
    std::fs::write(&other, vec![0u8; 65536]).unwrap();
    let second = d.xml_file("second.xml", &disk_xml(&other, "vdc"));
    let why = d.fails(&["attach-device", name, &second, "--live"]);
    assert!(why.contains("No more available PCI slots"), "{why}");
    assert_eq!(d.ok(&["dumpxml", name]), live);
    // The same target again: libvirt's error.
    let why = d.fails(&["attach-device", name, &disk, "--live"]);
    assert!(why.contains("target vdb already exists"), "{why}");

    let mut event = removed_event(&d, name);
    d.ok(&["detach-device", name, &disk, "--live"]);
    let ev = event.line_with("device-removed", T);
    assert!(ev.contains("virtio-disk1"), "{ev}");
    d.wait_log(name, "HP_GONE");
    let log = d.log(name);
    assert_eq!(output::value(&log, "HP_GONE"), Some("1"), "{log}");
    // Gone from the live definition (and the guest may have powered off
    // since, leaving the persistent one, which never had it).
    let after = d.ok(&["dumpxml", name]);
    assert!(!after.contains("hot.img"), "{after}");
    assert_eq!(owner(&image), (4321, 4321), "the image is given back");
    // The guest may have powered off once done (<on_poweroff>destroy).
    let _ = d.virsh(&["destroy", name]);
}

#[test]
fn microvm_refuses_live_attach() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let name = "hp-microvm";
    let file = d.xml_file("dom.xml", &domain_xml(name, Guest::Ticker));
    d.ok(&["define", &file]);
    d.ok(&["start", name]);
    let image = d.root().join("m.img");
    std::fs::write(&image, vec![0u8; 65536]).unwrap();
    let disk = d.xml_file("disk.xml", &disk_xml(&image, "vdb"));
    let before = d.ok(&["dumpxml", name]);
    let why = d.fails(&["attach-device", name, &disk, "--live"]);
    assert!(
        why.contains("live attach of device 'disk' is not supported"),
        "{why}"
    );
    assert_eq!(d.ok(&["dumpxml", name]), before);
    d.ok(&["destroy", name]);
}

/// `ip -j link show dev NAME` succeeds: the link exists.
fn link_exists(name: &str) -> bool {
    rvirt_testkit::run(
        Command::new("ip").args(["-j", "link", "show", "dev", name]),
        T,
    )
    .status
    .success()
}

#[test]
fn a_nic_is_hot_plugged_on_a_bridge_and_unplugged_with_virsh() {
    if !have_virsh() {
        return;
    }
    // rvirtd, its VMMs and the taps in a private network namespace.
    rvirt_testkit::netns::in_netns(|| {
        rvirt_testkit::netns::ip(&["link", "add", "br0", "type", "bridge"]);
        let d = Rvirtd::start();
        let name = "hp-nic";
        let file = d.xml_file("dom.xml", &xml(name));
        d.ok(&["define", &file]);
        d.ok(&["start", name]);
        d.wait_log(name, "HP_READY");
        let nic = d.xml_file(
            "nic.xml",
            "<interface type='bridge'><mac address='52:54:00:12:ab:cd'/>\
             <source bridge='br0'/><model type='virtio'/></interface>",
        );
        d.ok(&["attach-device", name, &nic, "--live", "--config"]);
        d.wait_log(name, "HP_MAC");
        let log = d.log(name);
        assert_eq!(output::value(&log, "HP_DEVICE"), Some("1af4:1041"), "{log}");
        assert_eq!(
            output::value(&log, "HP_MAC"),
            Some("52:54:00:12:ab:cd"),
            "{log}"
        );
        let live = d.ok(&["dumpxml", name]);
        assert!(live.contains("<target dev='vnet0'/>"), "{live}");
        assert!(live.contains("<alias name='net0'/>"), "{live}");
        assert!(link_exists("vnet0"), "the tap is made");
        // --config too: the stored definition has it.
        assert!(d
            .ok(&["dumpxml", "--inactive", name])
            .contains("52:54:00:12:ab:cd"));

        let mut event = removed_event(&d, name);
        d.ok(&["detach-device", name, &nic, "--live"]);
        let ev = event.line_with("device-removed", T);
        assert!(ev.contains("net0"), "{ev}");
        d.wait_log(name, "HP_GONE");
        // The live definition lost it (DEVICE_REMOVED follows that); the
        // guest powers off once done, and then dumpxml shows the
        // persistent one, which keeps it (only --live was detached).
        let xml = d.ok(&["dumpxml", name]);
        if d.state(name).starts_with("running") {
            assert!(!xml.contains("52:54:00:12:ab:cd"), "{xml}");
        }
        assert!(d
            .ok(&["dumpxml", "--inactive", name])
            .contains("52:54:00:12:ab:cd"));
        rvirt_testkit::wait_for("the tap to go", T, || !link_exists("vnet0"));
        let _ = d.virsh(&["destroy", name]);
    });
}

/// A qcow2 overlay on a raw base, the chain read from its header and
/// every image passed open (the confined VMM opens none by name): the
/// guest reads the base's first sector through the overlay, and after
/// the detach the overlay is given back (the base, read-only, was never
/// taken).
#[test]
fn a_qcow2_disk_with_a_backing_image_is_hot_plugged() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let name = "hp-qcow2";
    let file = d.xml_file("dom.xml", &xml(name));
    d.ok(&["define", &file]);
    d.ok(&["start", name]);
    d.wait_log(name, "HP_READY");
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(13) ^ (i >> 9)) as u8)
        .collect();
    let base = d.root().join("base.raw");
    std::fs::write(&base, &data).unwrap();
    let top = d.root().join("top.qcow2");
    let out = rvirt_testkit::run(
        Command::new("qemu-img").args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "raw",
            top.to_str().unwrap(),
        ]),
        T,
    );
    assert!(out.status.success(), "{out:?}");
    let owner = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    let (top_owner, base_owner) = (owner(&top), owner(&base));
    let disk = d.xml_file(
        "disk.xml",
        &disk_xml(&top, "vdb").replace("type='raw'", "type='qcow2'"),
    );
    d.ok(&["attach-device", name, &disk, "--live"]);
    d.wait_log(name, "HP_READ_FNV1A32");
    let log = d.log(name);
    let want = |k: &str, v: &str| assert_eq!(output::value(&log, k), Some(v), "{k} in\n{log}");
    want("HP_CAPACITY", "128");
    want("HP_READ_STATUS", "0");
    want(
        "HP_READ_FNV1A32",
        &format!("0x{:08x}", fnv1a32(&data[..512])),
    );
    let live = d.ok(&["dumpxml", name]);
    assert!(live.contains("<backingStore type='file'>"), "{live}");
    assert_eq!(
        owner(&base),
        base_owner,
        "the read-only base keeps its owner"
    );

    let mut event = removed_event(&d, name);
    d.ok(&["detach-device", name, &disk, "--live"]);
    let ev = event.line_with("device-removed", T);
    assert!(ev.contains("virtio-disk1"), "{ev}");
    assert_eq!(owner(&top), top_owner, "the overlay is given back");
    let _ = d.virsh(&["destroy", name]);
}

/// A guest that answers the detach after libvirt's 5 s: the call still
/// succeeds with the device in place, and the removal (live XML,
/// DEVICE_REMOVED) happens when the guest lets go.
#[test]
fn a_late_answer_finishes_the_detach_later() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let name = "hp-late";
    let file = d.xml_file(
        "dom.xml",
        &xml(name).replace("pci.hotplug=1", "pci.hotplug=3"),
    );
    d.ok(&["define", &file]);
    d.ok(&["start", name]);
    d.wait_log(name, "HP_READY");
    let image = d.root().join("late.img");
    std::fs::write(&image, vec![7u8; 65536]).unwrap();
    let disk = d.xml_file("disk.xml", &disk_xml(&image, "vdb"));
    d.ok(&["attach-device", name, &disk, "--live"]);
    d.wait_log(name, "HP_ARMED");
    let mut event = removed_event(&d, name);
    let asked = std::time::Instant::now();
    d.ok(&["detach-device", name, &disk, "--live"]);
    assert!(
        asked.elapsed() >= Duration::from_secs(5),
        "the detach waited"
    );
    // Not answered yet: still there.
    let xml = d.ok(&["dumpxml", name]);
    assert!(xml.contains("late.img"), "{xml}");
    assert!(d.log(name).contains("HP_LATE"));
    assert!(!d.log(name).contains("HP_GONE"));
    let ev = event.line_with("device-removed", T);
    assert!(ev.contains("virtio-disk1"), "{ev}");
    d.wait_log(name, "HP_GONE");
    let xml = d.ok(&["dumpxml", name]);
    if d.state(name).starts_with("running") {
        assert!(!xml.contains("late.img"), "{xml}");
    }
    let _ = d.virsh(&["destroy", name]);
}

/// Whether process `pid` has `file` open.
fn holds(pid: i32, file: &Path) -> bool {
    let file = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == file))
}

/// rvirtd killed and restarted between the attach and the detach: the
/// restarted daemon still deletes the disk's block nodes (the VMM lets go
/// of the image) and gives the image back to its owner. The guest powers
/// off once done, so `<on_poweroff>restart` keeps the VMM (and what it
/// holds) to be looked at.
#[test]
fn a_restarted_daemon_detaches_what_the_previous_one_attached() {
    if !have_virsh() {
        return;
    }
    let mut d = Rvirtd::start();
    let name = "hp-restart";
    let file = d.xml_file(
        "dom.xml",
        &xml(name).replace(
            "<on_poweroff>destroy</on_poweroff>",
            "<on_poweroff>restart</on_poweroff>",
        ),
    );
    d.ok(&["define", &file]);
    d.ok(&["start", name]);
    d.wait_log(name, "HP_READY");
    let pid: i32 = std::fs::read_to_string(d.root().join(format!("run/rvirt/qemu/{name}/vmm.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let image = d.root().join("kept.img");
    std::fs::write(&image, vec![5u8; 65536]).unwrap();
    rustix::fs::chown(
        &image,
        Some(rustix::process::Uid::from_raw(4321)),
        Some(rustix::process::Gid::from_raw(4321)),
    )
    .unwrap();
    let owner = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    let disk = d.xml_file("disk.xml", &disk_xml(&image, "vdb"));
    d.ok(&["attach-device", name, &disk, "--live"]);
    d.wait_log(name, "HP_ARMED");
    assert!(holds(pid, &image), "the VMM has the image open");
    assert_ne!(owner(&image), (4321, 4321), "the VM's user has the image");

    d.kill9();
    d.spawn();
    assert!(d.state(name).starts_with("running"), "re-adopted");
    let mut event = removed_event(&d, name);
    d.ok(&["detach-device", name, &disk, "--live"]);
    let ev = event.line_with("device-removed", T);
    assert!(ev.contains("virtio-disk1"), "{ev}");
    assert!(!holds(pid, &image), "the nodes are deleted\n{}", d.report());
    assert_eq!(owner(&image), (4321, 4321), "the image is given back");
    // The same VMM throughout: what was seen is what it did.
    assert!(d.state(name).starts_with("running"));
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let after = d.ok(&["dumpxml", name]);
    assert!(!after.contains("kept.img"), "{after}");
    let _ = d.virsh(&["destroy", name]);
}
