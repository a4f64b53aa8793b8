//! Removable media through rvirtd with the real virsh: `change-media
//! --eject|--insert|--update` and `update-device --live` of a SATA
//! CD-ROM on q35, as libvirt 9.0 changes them over QMP (the tray opened,
//! the medium removed, the new image passed by descriptor and inserted,
//! the tray closed); the live and persistent XML follow, libvirt's
//! tray-change events reach `virsh event`, a missing image is an error
//! that changes nothing, and an image given to the VM's user is given
//! back once ejected.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use rvirt_test_guests::Guest;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn have_user() -> bool {
    let ok = rvirt_testkit::try_run(
        std::process::Command::new("getent").args(["passwd", "rvirt-qemu"]),
        Duration::from_secs(10),
    )
    .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
        "the rvirt-qemu user (scripts/setup.sh) is required"
    );
    ok
}

/// A q35 guest that ticks forever, with a SATA CD-ROM `sdb` holding `iso`
/// (none: an empty drive).
fn xml(name: &str, iso: Option<&Path>) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      {}
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <serial type='stdio'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        Guest::Ticker.path().display(),
        iso.map(|p| format!("<source file='{}'/>", p.display()))
            .unwrap_or_default()
    )
}

/// The `<disk>` element of a dumpxml.
fn disk_of(xml: &str) -> String {
    let a = xml.find("<disk ").expect("a disk");
    let b = xml[a..].find("</disk>").expect("its end") + a;
    xml[a..b + 7].to_string()
}

fn iso(dir: &Path, name: &str, blocks: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; blocks * 2048]).unwrap();
    p
}

/// The next tray-change event `virsh event` printed: the drive's alias
/// and `what` (opened, closed).
fn tray_event(watcher: &mut rvirt_testkit::Spawned, what: &str) {
    tray_event_of(watcher, "sata0-0-1", what);
}

fn tray_event_of(watcher: &mut rvirt_testkit::Spawned, alias: &str, what: &str) {
    let line = watcher.line_with("tray-change", Duration::from_secs(60));
    assert!(
        line.contains(&format!(
            "event 'tray-change' for domain 'media' disk {alias}"
        )) && line.contains(what),
        "{line}"
    );
}

#[test]
fn change_media_ejects_inserts_and_updates_a_sata_cdrom() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let first = iso(d.root(), "first.iso", 16);
    let second = iso(d.root(), "second.iso", 32);
    let third = iso(d.root(), "third.iso", 48);
    let f = d.xml_file("media.xml", &xml("media", Some(&first)));
    d.ok(&["define", &f]);
    d.ok(&["start", "media"]);
    d.wait_log("media", "TICK");
    let live = d.ok(&["dumpxml", "media"]);
    let disk = disk_of(&live);
    assert!(disk.contains("<alias name='sata0-0-1'/>"), "{disk}");
    let cmd = d.log("media");
    assert!(
        cmd.contains(
            r#""driver":"ide-cd","bus":"ide.1","drive":"libvirt-1-format","id":"sata0-0-1""#
        ),
        "{cmd}"
    );

    // virsh event sees libvirt's tray-change events.
    let registered = || {
        std::fs::read_to_string(d.root().join("rvirtd.stderr"))
            .unwrap_or_default()
            .matches("event callback registered")
            .count()
    };
    let before = registered();
    let mut watcher = rvirt_testkit::Spawned::start(
        std::process::Command::new("virsh")
            .args(["-c", &d.uri(), "event", "--domain", "media"])
            .args(["--event", "tray-change", "--loop", "--timeout", "120"])
            .env("LC_ALL", "C"),
    )
    .on_fail(d.reporter());
    rvirt_testkit::wait_for("virsh event to register", Duration::from_secs(15), || {
        registered() > before
    });

    // Eject: the tray opens, the medium goes (live only: the current
    // state of a running domain).
    let out = d.ok(&["change-media", "media", "sdb", "--eject"]);
    assert!(out.contains("Successfully ejected media"), "{out}");
    tray_event(&mut watcher, "opened");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(!live.contains("<source"), "{live}");
    // libvirt's live XML shows the open tray.
    assert!(
        live.contains("<target dev='sdb' bus='sata' tray='open'/>"),
        "{live}"
    );
    let config = disk_of(&d.ok(&["dumpxml", "--inactive", "media"]));
    assert!(config.contains(&s(&first)), "{config}");

    // Insert: the new image in, the tray closed.
    let out = d.ok(&["change-media", "media", "sdb", "--insert", &s(&second)]);
    assert!(out.contains("Successfully inserted media"), "{out}");
    tray_event(&mut watcher, "closed");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(
        live.contains(&format!("<source file='{}'", s(&second))),
        "{live}"
    );
    assert!(!live.contains("tray="), "{live}");
    let blk = d.ok(&["domblklist", "media"]);
    assert!(blk.contains(&s(&second)), "{blk}");
    // Given to the VM's user while it is in.
    let vm_uid = std::fs::metadata(&second).unwrap().uid();
    assert_ne!(vm_uid, 0, "the inserted image stayed root's");

    // A missing image: libvirt's error, nothing changed.
    let err = d.fails(&[
        "change-media",
        "media",
        "sdb",
        "--update",
        "/nonexistent.iso",
    ]);
    assert!(
        err.contains("Cannot access storage file '/nonexistent.iso'"),
        "{err}"
    );
    let after = disk_of(&d.ok(&["dumpxml", "media"]));
    assert_eq!(after, live);

    // Update, live and persistent: the second image is given back.
    let out = d.ok(&[
        "change-media",
        "media",
        "sdb",
        "--update",
        &s(&third),
        "--live",
        "--config",
    ]);
    assert!(out.contains("Successfully updated media"), "{out}");
    tray_event(&mut watcher, "opened");
    tray_event(&mut watcher, "closed");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(
        live.contains(&format!("<source file='{}'", s(&third))),
        "{live}"
    );
    let config = disk_of(&d.ok(&["dumpxml", "--inactive", "media"]));
    assert!(
        config.contains(&format!("<source file='{}'", s(&third))),
        "{config}"
    );
    assert_eq!(std::fs::metadata(&second).unwrap().uid(), 0);

    // update-device --live with the disk's XML: the same change.
    let dev = d.xml_file(
        "cd.xml",
        &format!(
            "<disk type='file' device='cdrom'>
  <driver name='qemu' type='raw'/>
  <source file='{}'/>
  <target dev='sdb' bus='sata'/>
  <readonly/>
</disk>
",
            s(&first)
        ),
    );
    let out = d.ok(&["update-device", "media", &dev, "--live"]);
    assert!(out.contains("Device updated successfully"), "{out}");
    tray_event(&mut watcher, "opened");
    tray_event(&mut watcher, "closed");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(
        live.contains(&format!("<source file='{}'", s(&first))),
        "{live}"
    );
    watcher.kill();

    // The guest ran on throughout.
    let ticks = d.log("media").matches("TICK").count();
    rvirt_testkit::wait_for("the guest to tick on", Duration::from_secs(30), || {
        d.log("media").matches("TICK").count() > ticks
    });
    d.ok(&["destroy", "media"]);
    for img in [&first, &second, &third] {
        assert_eq!(
            std::fs::metadata(img).unwrap().uid(),
            0,
            "{}",
            img.display()
        );
    }
    // Shut off, the current state is the definition.
    let out = d.ok(&["change-media", "media", "sdb", "--eject"]);
    assert!(out.contains("Successfully ejected media"), "{out}");
    let config = disk_of(&d.ok(&["dumpxml", "--inactive", "media"]));
    assert!(!config.contains("<source"), "{config}");
    d.ok(&["start", "media"]);
    let cmd = d.log("media");
    assert!(
        cmd.contains(r#""driver":"ide-cd","bus":"ide.1","id":"sata0-0-1"}"#),
        "{cmd}"
    );
    d.ok(&["destroy", "media"]);
}

/// A drive that starts empty (no `-blockdev`, the drive alone): a medium
/// inserted and ejected again, the image given to the VM's user and back.
#[test]
fn an_empty_cdrom_takes_a_medium_and_gives_it_back() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let img = iso(d.root(), "late.iso", 16);
    let f = d.xml_file("empty.xml", &xml("empty", None));
    d.ok(&["define", &f]);
    d.ok(&["start", "empty"]);
    d.wait_log("empty", "TICK");
    let cmd = d.log("empty");
    assert!(
        cmd.contains(r#""driver":"ide-cd","bus":"ide.1","id":"sata0-0-1""#),
        "{cmd}"
    );
    let out = d.ok(&["change-media", "empty", "sdb", "--insert", &s(&img)]);
    assert!(out.contains("Successfully inserted media"), "{out}");
    let live = disk_of(&d.ok(&["dumpxml", "empty"]));
    assert!(
        live.contains(&format!("<source file='{}'", s(&img))),
        "{live}"
    );
    assert_ne!(std::fs::metadata(&img).unwrap().uid(), 0);
    // Inserting over a medium is virsh's own refusal.
    let err = d.fails(&["change-media", "empty", "sdb", "--insert", &s(&img)]);
    assert!(err.contains("already has media"), "{err}");
    let out = d.ok(&["change-media", "empty", "sdb", "--eject"]);
    assert!(out.contains("Successfully ejected media"), "{out}");
    let live = disk_of(&d.ok(&["dumpxml", "empty"]));
    assert!(!live.contains("<source"), "{live}");
    assert_eq!(std::fs::metadata(&img).unwrap().uid(), 0);
    // A second insert takes new node names.
    d.ok(&["change-media", "empty", "sdb", "--insert", &s(&img)]);
    d.ok(&["destroy", "empty"]);
    assert_eq!(std::fs::metadata(&img).unwrap().uid(), 0);
}

/// The same on a `scsi-cd` on virtio-scsi: `virsh change-media` ejects
/// and inserts through the monitor's media commands, libvirt's
/// tray-change events name the LUN's alias.
#[test]
fn change_media_ejects_and_inserts_on_a_scsi_cdrom() {
    if !have_virsh() || !have_user() {
        return;
    }
    let d = Rvirtd::start();
    let first = iso(d.root(), "first.iso", 16);
    let second = iso(d.root(), "second.iso", 32);
    let def = xml("media", Some(&first))
        .replace(
            "<target dev='sdb' bus='sata'/>",
            "<target dev='sda' bus='scsi'/>",
        )
        .replace(
            "<memballoon",
            "<controller type='scsi' model='virtio-scsi'/>\n    <memballoon",
        );
    let f = d.xml_file("media.xml", &def);
    d.ok(&["define", &f]);
    d.ok(&["start", "media"]);
    d.wait_log("media", "TICK");
    let disk = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(disk.contains("<alias name='scsi0-0-0-0'/>"), "{disk}");
    let cmd = d.log("media");
    assert!(
        cmd.contains(r#""driver":"scsi-cd","bus":"scsi0.0""#),
        "{cmd}"
    );
    let registered = || {
        std::fs::read_to_string(d.root().join("rvirtd.stderr"))
            .unwrap_or_default()
            .matches("event callback registered")
            .count()
    };
    let before = registered();
    let mut watcher = rvirt_testkit::Spawned::start(
        std::process::Command::new("virsh")
            .args(["-c", &d.uri(), "event", "--domain", "media"])
            .args(["--event", "tray-change", "--loop", "--timeout", "120"])
            .env("LC_ALL", "C"),
    )
    .on_fail(d.reporter());
    rvirt_testkit::wait_for("virsh event to register", Duration::from_secs(15), || {
        registered() > before
    });

    let out = d.ok(&["change-media", "media", "sda", "--eject"]);
    assert!(out.contains("Successfully ejected media"), "{out}");
    tray_event_of(&mut watcher, "scsi0-0-0-0", "opened");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(!live.contains("<source"), "{live}");
    assert!(live.contains("tray='open'"), "{live}");

    let out = d.ok(&["change-media", "media", "sda", "--insert", &s(&second)]);
    assert!(out.contains("Successfully inserted media"), "{out}");
    tray_event_of(&mut watcher, "scsi0-0-0-0", "closed");
    let live = disk_of(&d.ok(&["dumpxml", "media"]));
    assert!(
        live.contains(&format!("<source file='{}'", s(&second))),
        "{live}"
    );
    let blk = d.ok(&["domblklist", "media"]);
    assert!(blk.contains(&s(&second)), "{blk}");
    d.ok(&["destroy", "media"]);
}
