//! virtio-scsi through rvirtd: the real virt-install imports the boot disk
//! on a virtio-scsi controller (`<disk bus='scsi'>`), rvirtd derives the
//! controller and its `scsi-hd` as libvirt 9.0 does, and SeaBIOS boots the
//! disk from it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have_virsh, have_virt_install, Rvirtd};
use rvirt_testkit::run;

#[test]
fn virt_install_imports_a_boot_disk_on_virtio_scsi_and_seabios_boots_it() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let disk = d.root().join("boot.img");
    std::fs::copy(rvirt_test_guests::boot_disk(), &disk).unwrap();
    let out = run(
        Command::new("virt-install")
            .args(["--connect", &d.uri(), "--name", "scsi1", "--import"])
            .arg("--disk")
            .arg(format!("{},format=raw,bus=scsi", disk.display()))
            .args(["--controller", "type=scsi,model=virtio-scsi"])
            .args(["--osinfo", "generic", "--memory", "128"])
            .args(["--noautoconsole", "--graphics", "none", "--serial", "pty"])
            .args(["--network", "none"])
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
    let xml = d.ok(&["dumpxml", "--inactive", "scsi1"]);
    assert!(xml.contains("model='virtio-scsi'"), "{xml}");
    assert!(xml.contains("bus='scsi'"), "{xml}");
    d.wait_log("scsi1", "MBR long mode, boot drive 0x80");
    d.wait_log("scsi1", "DONE");
    d.wait_state("scsi1", "shut off (shutdown)");
    let log = d.log("scsi1");
    let cmd = log
        .lines()
        .find(|l| l.contains("rvirt-vmm ") && l.contains(" -name "))
        .unwrap_or_else(|| panic!("no command line in the log:\n{log}"));
    assert!(
        cmd.contains(r#""driver":"virtio-scsi-pci","id":"scsi0""#),
        "{cmd}"
    );
    assert!(
        cmd.contains(r#""driver":"scsi-hd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":0,"device_id":"drive-scsi0-0-0-0""#),
        "{cmd}"
    );
}
