//! virtio-scsi through the firmware: SeaBIOS (Debian's, as QEMU uses it)
//! finds a `scsi-hd` and a `scsi-cd` on a virtio-scsi-pci controller (its
//! REPORT LUNS, INQUIRY, TEST UNIT READY, READ CAPACITY, READ(10)) and
//! boots the boot disk of crates/test-guests from the disk and an El
//! Torito ISO from the CD-ROM, on pc and q35, with the command line
//! libvirt 9.0 writes; against QEMU 7.2 with the same firmware and command
//! line: the same serial lines and the same boot order.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_test_guests::boot_disk;

const LIMIT: Duration = Duration::from_secs(60);

/// The controller in slot 4 of the root bus, a disk at 0:0 and (with an
/// ISO) a CD-ROM at 1:0, in libvirt 9.0's JSON; the boot index on
/// `boot_cd`'s choice.
fn scsi_args(
    machine: &str,
    disk: &Path,
    iso: Option<&Path>,
    boot_cd: bool,
    serial: &Path,
) -> Vec<String> {
    let root = if machine.contains("q35") {
        "pcie.0"
    } else {
        "pci.0"
    };
    let mut a: Vec<String> = vec![
        "-M".into(),
        machine.into(),
        "-m".into(),
        "128".into(),
        "-nodefaults".into(),
        "-no-reboot".into(),
        "-serial".into(),
        format!("file:{}", serial.display()),
        "-device".into(),
        format!(r#"{{"driver":"virtio-scsi-pci","id":"scsi0","bus":"{root}","addr":"0x4"}}"#),
        "-blockdev".into(),
        format!(
            r#"{{"node-name":"hd","read-only":false,"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
            disk.display()
        ),
        "-device".into(),
        format!(
            r#"{{"driver":"scsi-hd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":0,"device_id":"drive-scsi0-0-0-0","drive":"hd","id":"scsi0-0-0-0"{}}}"#,
            if boot_cd { "" } else { r#","bootindex":1"# }
        ),
        "-debugcon".into(),
        format!("file:{}", serial.with_extension("debug").display()),
        "-global".into(),
        "isa-debugcon.iobase=0x402".into(),
    ];
    if let Some(iso) = iso {
        a.push("-blockdev".into());
        a.push(format!(
            r#"{{"node-name":"cd","read-only":true,"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
            iso.display()
        ));
        a.push("-device".into());
        a.push(format!(
            r#"{{"driver":"scsi-cd","bus":"scsi0.0","channel":0,"scsi-id":1,"lun":0,"device_id":"drive-scsi0-0-1-0","drive":"cd","id":"scsi0-0-1-0"{}}}"#,
            if boot_cd { r#","bootindex":1"# } else { "" }
        ));
    }
    a
}

/// SeaBIOS boots the boot disk from a scsi-hd and an El Torito ISO from a
/// scsi-cd on virtio-scsi-pci, on pc and q35, as on QEMU 7.2.
#[test]
fn boot_disk_and_iso_from_virtio_scsi_as_on_qemu() {
    let bios = Path::new("/usr/share/seabios/bios-256k.bin");
    if !bios.exists() && !require("SeaBIOS") {
        return;
    }
    let qemu = which("qemu-system-x86_64");
    if qemu.is_none() && !require("qemu-system-x86_64") {
        eprintln!("rvirt runs alone");
    }
    let dir = tempfile::tempdir().unwrap();
    let iso = boot_iso(dir.path());
    let mut cases = vec![("pc-i440fx-7.2", false), ("pc-q35-7.2", false)];
    if iso.is_some() {
        cases.push(("pc-i440fx-7.2", true));
        cases.push(("pc-q35-7.2", true));
    }
    for (machine, boot_cd) in cases {
        let (path, booted) = if boot_cd {
            (
                "1: /pci@i0cf8/scsi@4/channel@0/disk@1,0",
                "MBR long mode, boot drive 0xe0",
            )
        } else {
            (
                "1: /pci@i0cf8/scsi@4/channel@0/disk@0,0",
                "MBR long mode, boot drive 0x80",
            )
        };
        let found = [
            "virtio-scsi vendor='QEMU' product='QEMU HARDDISK' rev='2.5+' type=0 removable=0",
            "Searching bootorder for: /pci@i0cf8/*@4/*@0/*@0,0",
        ];
        let disk = |name: &str| {
            let p = dir.path().join(name);
            std::fs::copy(boot_disk(), &p).unwrap();
            p
        };
        let tag = format!("{machine}-{boot_cd}");
        let serial = dir.path().join(format!("rvirt-{tag}.serial"));
        let a = scsi_args(
            machine,
            &disk("rvirt.img"),
            iso.as_deref(),
            boot_cd,
            &serial,
        );
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let run = wait(spawn(&refs), LIMIT);
        assert!(
            run.status.success(),
            "rvirt-vmm {a:?}: {}\n{}",
            run.status,
            run.stderr
        );
        let ours = seabios_lines(&serial);
        let log = std::fs::read_to_string(serial.with_extension("debug")).unwrap();
        assert!(ours.contains(&booted.to_string()), "{tag}: {ours:?}\n{log}");
        assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");
        for want in found.iter().chain([&path]) {
            assert!(
                log.contains(want),
                "{tag}: {want:?} not in SeaBIOS's log:\n{log}"
            );
        }

        let Some(qemu) = &qemu else { continue };
        let qserial = dir.path().join(format!("qemu-{tag}.serial"));
        let mut q = scsi_args(
            machine,
            &disk("qemu.img"),
            iso.as_deref(),
            boot_cd,
            &qserial,
        );
        q.extend(["-enable-kvm", "-nographic", "-bios"].map(String::from));
        q.push(bios.display().to_string());
        let run = Spawned::start(
            die_with_test(&mut Command::new(qemu))
                .args(&q)
                .stdin(Stdio::null()),
        )
        .output(LIMIT);
        assert!(run.status.success(), "QEMU: {run:?}");
        assert_eq!(
            ours,
            seabios_lines(&qserial),
            "{tag}: rvirt's serial lines vs QEMU's"
        );
        let qlog = std::fs::read_to_string(qserial.with_extension("debug")).unwrap();
        for want in found.iter().chain([&path]) {
            assert!(
                qlog.contains(want),
                "{tag}: {want:?} not in QEMU's SeaBIOS log"
            );
        }
    }
}
