//! USB through rvirtd: the real virt-install defines a q35 domain with a
//! VNC display and a qemu-xhci, which gets a USB tablet and (at define)
//! its place on a root port; rvirtd derives both as libvirt 9.0 writes
//! them, and the `usb` test guest enumerates the tablet through the
//! controller.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have_virsh, have_virt_install, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::run;

#[test]
fn virt_install_q35_with_graphics_gets_a_usb_tablet_the_guest_enumerates() {
    if !have_virsh() || !have_virt_install() {
        return;
    }
    let d = Rvirtd::start();
    let boot = format!(
        "kernel={},kernel_args=console=ttyS0 usb.reports=0",
        Guest::Usb.path().display()
    );
    let out = run(
        Command::new("virt-install")
            .args(["--connect", &d.uri(), "--import", "--name", "usb1"])
            .args(["--machine", "q35", "--memory", "128", "--boot", &boot])
            .args([
                "--osinfo",
                "centos-stream9",
                "--network",
                "none",
                "--disk",
                "none",
            ])
            // virt-install picks qemu-xhci by itself only for a hypervisor
            // version from QEMU 2.9 on; rvirtd reports rvirt-vmm's own
            // (0.1.0), so it would pick the ICH9 USB 2 set, which rvirt
            // leaves off. Asked for, as libvirt's default q35 has it.
            .args(["--controller", "type=usb,model=qemu-xhci"])
            .args(["--noautoconsole", "--serial", "pty"])
            // The default display: VNC (rvirt-vmm's blank screen without a
            // video device).
            .args(["--video", "model.type=none"])
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
    let xml = d.ok(&["dumpxml", "--inactive", "usb1"]);
    assert!(
        xml.contains("<controller type='usb' index='0' model='qemu-xhci'"),
        "{xml}"
    );
    assert!(xml.contains("<input type='tablet' bus='usb'"), "{xml}");
    d.wait_log("usb1", "READY 1");
    let log = d.log("usb1");
    for want in [
        "STRING 3 cc=1 QEMU USB Tablet",
        "CONFIGURE_ENDPOINT cc=1 state=3 ep=1",
    ] {
        assert!(log.contains(want), "{want:?} missing:\n{log}");
    }
    let cmd = log
        .lines()
        .find(|l| l.contains("rvirt-vmm ") && l.contains(" -name "))
        .unwrap_or_else(|| panic!("no command line in the log:\n{log}"));
    assert!(cmd.contains(r#"{"driver":"qemu-xhci","#), "{cmd}");
    assert!(
        cmd.contains(r#"{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}"#),
        "{cmd}"
    );
}
