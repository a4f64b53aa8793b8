//! Firmware boot through rvirtd: the real virt-install imports a disk with
//! a boot loader (`--import`, no `<kernel>`), rvirtd starts it and SeaBIOS
//! boots the disk; what the boot sector prints reaches the domain's serial
//! log.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have_virsh, have_virt_install, qemu_img_ok, Rvirtd};
use rvirt_testkit::run;

/// What the boot disk prints: from its boot sector, then after reading the
/// rest of itself through int 13h (SeaBIOS's disk services).
const MBR_LINES: [&str; 2] = ["MBR real mode", "MBR long mode, boot drive 0x80"];

/// `virt-install --import` as a user runs it for a disk image, against
/// rvirtd. `--osinfo generic` would pick an IDE disk and an e1000, which
/// rvirt does not emulate, so the disk asks for virtio and there is no NIC.
fn virt_install(d: &Rvirtd, name: &str, disk: &str) -> std::process::Output {
    virt_install_with(d, name, disk, &[])
}

/// [`virt_install`] with more of virt-install's options.
fn virt_install_with(d: &Rvirtd, name: &str, disk: &str, extra: &[&str]) -> std::process::Output {
    run(
        Command::new("virt-install")
            .args(["--connect", &d.uri(), "--name", name, "--import"])
            .args(extra)
            .args(["--disk", disk, "--osinfo", "generic", "--memory", "128"])
            .args(["--noautoconsole", "--graphics", "none", "--serial", "pty"])
            .args(["--network", "none"])
            .env("HOME", d.root())
            .stdin(Stdio::null()),
        Duration::from_secs(300),
    )
}

/// The raw boot disk: defined by virt-install with no `<kernel>` and
/// `<boot dev='hd'/>`, started through firmware (no `-kernel`, the disk at
/// bootindex 1), SeaBIOS boots it and it powers the guest off.
#[test]
fn virt_install_imports_a_raw_boot_disk_and_seabios_boots_it() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let disk = d.root().join("boot.img");
    std::fs::copy(rvirt_test_guests::boot_disk(), &disk).unwrap();
    let out = virt_install(
        &d,
        "fw1",
        &format!("{},format=raw,bus=virtio", disk.display()),
    );
    assert!(
        out.status.success(),
        "virt-install: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    let xml = d.ok(&["dumpxml", "--inactive", "fw1"]);
    assert!(!xml.contains("<kernel>"), "{xml}");
    assert!(xml.contains("<boot dev='hd'/>"), "{xml}");
    for line in MBR_LINES {
        d.wait_log("fw1", line);
    }
    // The guest powers itself off once booted.
    d.wait_log("fw1", "DONE");
    d.wait_state("fw1", "shut off (shutdown)");
    let log = d.log("fw1");
    let cmd = log
        .lines()
        .find(|l| l.contains("rvirt-vmm ") && l.contains(" -name "))
        .unwrap_or_else(|| panic!("no command line in the log:\n{log}"));
    assert!(!cmd.contains("-kernel"), "{cmd}");
    assert!(cmd.contains(r#""bootindex":1"#), "{cmd}");
    // SeaBIOS's own banner came first, on the same serial port.
    let seabios = log.find("SeaBIOS (version").expect("SeaBIOS banner");
    assert!(seabios < log.find(MBR_LINES[0]).unwrap(), "{log}");
}

/// The same disk as qcow2: booted once rvirt-vmm reads qcow2, refused at
/// start with the format named until then, and left undefined by
/// virt-install.
#[test]
fn virt_install_imports_a_qcow2_boot_disk() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let disk = d.root().join("boot.qcow2");
    let src = rvirt_test_guests::boot_disk();
    let (src, dst) = (src.to_string_lossy(), disk.to_string_lossy());
    qemu_img_ok(&["convert", "-f", "raw", "-O", "qcow2", &src, &dst]);
    let out = virt_install(&d, "fw2", &format!("{dst},format=qcow2,bus=virtio"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if rvirt_domain::argv::support::disk_format("qcow2") {
        assert!(out.status.success(), "virt-install: {said}");
        for line in MBR_LINES {
            d.wait_log("fw2", line);
        }
        d.wait_state("fw2", "shut off (shutdown)");
    } else {
        assert!(
            said.contains("image format 'qcow2' is not supported"),
            "virt-install: {said}"
        );
        // virt-install undefines what it could not start.
        let names = d.ok(&["list", "--all", "--name"]);
        assert!(!names.contains("fw2"), "{names}");
    }
}

/// The raw boot disk on SATA of a q35 machine (`--machine q35`,
/// `bus=sata`, as virt-install writes a disk for most installers): rvirtd
/// derives libvirt's `ide-hd` on port `ide.0` of the built-in AHCI, and
/// SeaBIOS boots it through the AHCI controller.
#[test]
fn a_sata_boot_disk_on_q35_boots_through_seabios() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let disk = d.root().join("boot-sata.img");
    std::fs::copy(rvirt_test_guests::boot_disk(), &disk).unwrap();
    let out = virt_install_with(
        &d,
        "fw-sata",
        &format!("{},format=raw,bus=sata", disk.display()),
        &["--machine", "q35"],
    );
    assert!(
        out.status.success(),
        "virt-install: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    let xml = d.ok(&["dumpxml", "--inactive", "fw-sata"]);
    assert!(xml.contains("bus='sata'"), "{xml}");
    assert!(
        xml.contains("<address type='drive' controller='0' bus='0' target='0' unit='0'/>"),
        "{xml}"
    );
    for line in MBR_LINES {
        d.wait_log("fw-sata", line);
    }
    d.wait_log("fw-sata", "DONE");
    d.wait_state("fw-sata", "shut off (shutdown)");
    let log = d.log("fw-sata");
    let cmd = log
        .lines()
        .find(|l| l.contains("rvirt-vmm ") && l.contains(" -name "))
        .unwrap_or_else(|| panic!("no command line in the log:\n{log}"));
    assert!(
        cmd.contains(r#""driver":"ide-hd","bus":"ide.0","drive":"libvirt-1-format","id":"sata0-0-0","bootindex":1"#),
        "{cmd}"
    );
}

/// `virt-install --cdrom` on q35: an El Torito ISO (the boot disk as a
/// no-emulation boot image, built with xorriso) on a SATA CD-ROM, which
/// rvirtd derives as libvirt's `ide-cd` on the built-in AHCI; SeaBIOS
/// boots it (drive 0xe0) and the guest powers off.
#[test]
fn virt_install_cdrom_boots_an_iso_from_a_sata_cdrom() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let xorriso = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("xorriso"))
            .find(|f| f.is_file())
    });
    let Some(xorriso) = xorriso else {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "xorriso is required (RVIRT_REQUIRE_REFERENCE is set): run scripts/setup.sh"
        );
        return;
    };
    let d = Rvirtd::start();
    let tree = d.root().join("iso");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(rvirt_test_guests::boot_disk(), tree.join("boot.img")).unwrap();
    let iso = d.root().join("boot.iso");
    let out = run(
        Command::new(xorriso)
            .args(["-as", "mkisofs", "-quiet", "-o"])
            .arg(&iso)
            .args(["-b", "boot.img", "-no-emul-boot", "-boot-load-size", "128"])
            .arg(&tree),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "xorriso: {out:?}");
    let out = run(
        Command::new("virt-install")
            .args(["--connect", &d.uri(), "--name", "fw-cd", "--machine", "q35"])
            .args(["--cdrom", &iso.display().to_string(), "--disk", "none"])
            .args(["--osinfo", "generic", "--memory", "128", "--noautoconsole"])
            .args(["--graphics", "none", "--serial", "pty", "--network", "none"])
            .env("HOME", d.root())
            .stdin(Stdio::null()),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "virt-install: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    d.wait_log("fw-cd", "MBR long mode, boot drive 0xe0");
    d.wait_state("fw-cd", "shut off (shutdown)");
    let log = d.log("fw-cd");
    let cmd = log
        .lines()
        .find(|l| l.contains("rvirt-vmm ") && l.contains(" -name "))
        .unwrap_or_else(|| panic!("no command line in the log:\n{log}"));
    assert!(cmd.contains(r#""driver":"ide-cd","bus":"ide."#), "{cmd}");
    assert!(cmd.contains(r#""bootindex":1"#), "{cmd}");
}
