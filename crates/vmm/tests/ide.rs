//! pc's PIIX3 IDE through the real binary: SeaBIOS (Debian's, as QEMU
//! uses it) boots the boot disk of crates/test-guests from an IDE disk and
//! an El Torito ISO from an IDE CD-ROM, finding them through the legacy
//! ports (signatures, IDENTIFY, ATAPI over PIO), with the same serial
//! lines, the same drives found and the same boot order as QEMU 7.2 with
//! the same firmware and command line; and an IDE CD-ROM's media through
//! the monitor (`query-block`, `eject`, `blockdev-change-medium`, the
//! tray events). The register model's corner cases (DMA, hostile PRD
//! tables, SRST) are rvirt-ata's unit tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_test_guests::boot_disk;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// A drive as libvirt 9.0 writes `<disk bus='ide'>`: its blockdev and its
/// `-device` JSON.
struct Drive<'a> {
    cdrom: bool,
    bus: u8,
    unit: u8,
    medium: &'a Path,
    bootindex: Option<u32>,
}

fn ide_args(drives: &[Drive], serial: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "pc-i440fx-7.2",
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        &format!("file:{}", serial.display()),
        "-debugcon",
        &format!("file:{}", serial.with_extension("debug").display()),
        "-global",
        "isa-debugcon.iobase=0x402",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, d) in drives.iter().enumerate() {
        let node = format!("libvirt-{}-format", i + 1);
        a.push("-blockdev".into());
        a.push(
            json!({
                "node-name": node,
                "read-only": d.cdrom,
                "driver": "raw",
                "file": {"driver": "file", "filename": d.medium.display().to_string()},
            })
            .to_string(),
        );
        let mut dev = json!({
            "driver": if d.cdrom { "ide-cd" } else { "ide-hd" },
            "bus": format!("ide.{}", d.bus),
            "unit": d.unit,
            "drive": node,
            "id": format!("ide0-{}-{}", d.bus, d.unit),
        });
        if let Some(b) = d.bootindex {
            dev["bootindex"] = json!(b);
        }
        a.push("-device".into());
        a.push(dev.to_string());
    }
    a
}

/// SeaBIOS boots from an IDE disk (ide.0 master), from an IDE CD-ROM
/// (ide.1 master, the ISO), and, with a disk as ide.0's slave second in
/// the boot order and the CD-ROM first, from the CD-ROM; each with QEMU's
/// serial lines, the drives SeaBIOS finds and the boot order it reads.
#[test]
fn seabios_boots_ide_disks_and_cdroms_as_on_qemu() {
    let Some(bios) = seabios("bios-256k.bin") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    assert!(
        qemu.is_some() || !required(),
        "qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)"
    );
    let dir = tempfile::tempdir().unwrap();
    let iso = boot_iso(dir.path());
    let disk = |name: &str| {
        let p = dir.path().join(name);
        std::fs::copy(boot_disk(), &p).unwrap();
        p
    };
    // (name, drives: (cdrom, bus, unit, bootindex), booted, wanted in
    // SeaBIOS's log)
    type Case = (
        &'static str,
        Vec<(bool, u8, u8, Option<u32>)>,
        &'static str,
        Vec<&'static str>,
    );
    let mut cases: Vec<Case> = vec![(
        "disk",
        vec![(false, 0, 0, Some(1))],
        "MBR long mode, boot drive 0x80",
        vec![
            "1: /pci@i0cf8/ide@1,1/drive@0/disk@0",
            "ATA controller 1 at 1f0/3f4/0 (irq 14 dev 9)",
            "ATA controller 2 at 170/374/0 (irq 15 dev 9)",
            "ata0-0: QEMU HARDDISK ATA-7 Hard-Disk (1 MiBytes)",
        ],
    )];
    if iso.is_some() {
        cases.push((
            "cdrom",
            vec![(true, 1, 0, Some(1))],
            "MBR long mode, boot drive 0xe0",
            vec![
                "1: /pci@i0cf8/ide@1,1/drive@1/disk@0",
                "DVD/CD [ata1-0: QEMU DVD-ROM ATAPI-4 DVD/CD]",
            ],
        ));
        cases.push((
            "order",
            vec![(false, 0, 1, Some(2)), (true, 1, 0, Some(1))],
            "MBR long mode, boot drive 0xe0",
            vec![
                "1: /pci@i0cf8/ide@1,1/drive@1/disk@0",
                "2: /pci@i0cf8/ide@1,1/drive@0/disk@1",
                "ata0-1: QEMU HARDDISK ATA-7 Hard-Disk (1 MiBytes)",
                "DVD/CD [ata1-0: QEMU DVD-ROM ATAPI-4 DVD/CD]",
            ],
        ));
    }
    for (name, spec, booted, wanted) in cases {
        let media: Vec<PathBuf> = spec
            .iter()
            .enumerate()
            .map(|(i, s)| match (&iso, s.0) {
                (Some(iso), true) => iso.clone(),
                _ => disk(&format!("{name}-{i}.img")),
            })
            .collect();
        let drives: Vec<Drive> = spec
            .iter()
            .zip(&media)
            .map(|(&(cdrom, bus, unit, bootindex), medium)| Drive {
                cdrom,
                bus,
                unit,
                medium,
                bootindex,
            })
            .collect();
        let serial = dir.path().join(format!("rvirt-{name}.serial"));
        let args = ide_args(&drives, &serial);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = wait(spawn(&refs), LIMIT);
        assert!(run.status.success(), "rvirt-vmm {args:?}: {}", run.stderr);
        let ours = seabios_lines(&serial);
        assert!(ours.contains(&booted.to_string()), "{name}: {ours:?}");
        assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");
        let log = std::fs::read_to_string(serial.with_extension("debug")).unwrap();
        for want in &wanted {
            assert!(
                log.contains(want),
                "{name}: {want:?} not in SeaBIOS's log:\n{log}"
            );
        }

        if qemu.is_none() {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let qserial = dir.path().join(format!("qemu-{name}.serial"));
        let mut q = ide_args(&drives, &qserial);
        q.extend(["-enable-kvm", "-nographic", "-bios"].map(String::from));
        q.push(bios.display().to_string());
        let run = Spawned::start(
            die_with_test(&mut Command::new("qemu-system-x86_64"))
                .args(&q)
                .stdin(Stdio::null()),
        )
        .output(LIMIT);
        assert!(run.status.success(), "QEMU: {run:?}");
        assert_eq!(
            ours,
            seabios_lines(&qserial),
            "{name}: rvirt's serial lines vs QEMU's"
        );
        let qlog = std::fs::read_to_string(qserial.with_extension("debug")).unwrap();
        for want in &wanted {
            assert!(
                qlog.contains(want),
                "{name}: {want:?} not in QEMU's SeaBIOS log"
            );
        }
    }
}

const T: Duration = Duration::from_secs(30);

fn cd_entry(qmp: &rvirt_qmp::QmpClient) -> Value {
    let all = qmp.execute("query-block", None).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|b| b["qdev"] == "ide0-1-0")
        .cloned()
        .unwrap_or_else(|| panic!("no CD-ROM in {all}"))
}

fn tray_moved(qmp: &rvirt_qmp::QmpClient, open: bool) {
    let ev = qmp.wait_event("DEVICE_TRAY_MOVED", T).unwrap();
    assert_eq!(
        ev.data,
        Some(json!({"device": "", "id": "ide0-1-0", "tray-open": open}))
    );
}

/// An IDE CD-ROM's medium through the monitor, as for a SATA one:
/// `query-block` names it, `eject` opens the tray and takes the medium
/// out, `blockdev-change-medium` puts a new one in and closes the tray,
/// each move a DEVICE_TRAY_MOVED; a disk is not removable.
#[test]
fn an_ide_cdrom_changes_media_over_qmp() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.iso");
    let second = dir.path().join("second.iso");
    std::fs::write(&first, vec![0u8; 16 * 2048]).unwrap();
    std::fs::write(&second, vec![0u8; 32 * 2048]).unwrap();
    let hd = dir.path().join("hd.img");
    std::fs::write(&hd, vec![0u8; 1 << 20]).unwrap();
    let sock = dir.path().join("qmp.sock");
    let serial = dir.path().join("serial");
    let mut args = ide_args(
        &[
            Drive {
                cdrom: false,
                bus: 0,
                unit: 0,
                medium: &hd,
                bootindex: None,
            },
            Drive {
                cdrom: true,
                bus: 1,
                unit: 0,
                medium: &first,
                bootindex: None,
            },
        ],
        &serial,
    );
    args.extend([
        "-kernel".to_string(),
        Guest::Counter.path().display().to_string(),
        "-S".to_string(),
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=off", sock.display()),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _vm = spawn(&refs);
    let qmp = qmp_connect(&sock, T);
    let e = cd_entry(&qmp);
    assert_eq!(e["removable"], true);
    assert_eq!(e["tray_open"], false);
    assert_eq!(e["inserted"]["file"], first.display().to_string());
    qmp.execute("eject", Some(json!({"id": "ide0-1-0"})))
        .unwrap();
    tray_moved(&qmp, true);
    let e = cd_entry(&qmp);
    assert_eq!(e["tray_open"], true);
    assert!(e.get("inserted").is_none(), "{e}");
    qmp.execute(
        "blockdev-change-medium",
        Some(json!({"id": "ide0-1-0", "filename": second.display().to_string(), "format": "raw"})),
    )
    .unwrap();
    tray_moved(&qmp, false);
    let e = cd_entry(&qmp);
    assert_eq!(e["inserted"]["file"], second.display().to_string());
    let err = qmp
        .execute("eject", Some(json!({"id": "ide0-0-0"})))
        .unwrap_err();
    let err = format!("{err:?}");
    assert!(err.contains("is not removable"), "{err}");
    qmp.execute("quit", None).unwrap();
}

/// QEMU's legacy drive options: SeaBIOS boots an El Torito ISO given by
/// `-cdrom` (PIIX3 IDE's secondary master on pc, AHCI port 2 on q35) and
/// the boot disk given by `-hda`, with no `-device` and no boot index
/// (SeaBIOS's order from the CMOS, QEMU's default), with the same serial
/// lines as QEMU 7.2 given the same command line.
#[test]
fn seabios_boots_cdrom_and_hda_as_on_qemu() {
    let Some(bios) = seabios("bios-256k.bin") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    assert!(
        qemu.is_some() || !required(),
        "qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)"
    );
    let dir = tempfile::tempdir().unwrap();
    let iso = boot_iso(dir.path());
    let mut cases = Vec::new();
    for machine in ["pc-i440fx-7.2", "pc-q35-7.2"] {
        cases.push((machine, "-hda", "MBR long mode, boot drive 0x80"));
        if iso.is_some() {
            cases.push((machine, "-cdrom", "MBR long mode, boot drive 0xe0"));
        }
    }
    for (machine, opt, booted) in cases {
        let tag = format!("{machine}{opt}");
        let medium = |who: &str| match (opt, &iso) {
            ("-cdrom", Some(iso)) => iso.clone(),
            _ => {
                let p = dir.path().join(format!("{who}-{tag}.img"));
                std::fs::copy(boot_disk(), &p).unwrap();
                p
            }
        };
        let args = |who: &str| -> Vec<String> {
            let serial = dir.path().join(format!("{who}-{tag}.serial"));
            [
                "-M",
                machine,
                "-m",
                "128",
                "-nodefaults",
                "-no-reboot",
                "-serial",
                &format!("file:{}", serial.display()),
                opt,
                &medium(who).display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let a = args("rvirt");
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let run = wait(spawn(&refs), LIMIT);
        assert!(run.status.success(), "rvirt-vmm {a:?}: {}", run.stderr);
        let ours = seabios_lines(&dir.path().join(format!("rvirt-{tag}.serial")));
        assert!(ours.contains(&booted.to_string()), "{tag}: {ours:?}");
        assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");

        if qemu.is_none() {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let mut q = args("qemu");
        // Without it QEMU adds its kvmvapic option ROM, a legacy ROM
        // SeaBIOS tries first as a hard disk when no bootorder file says
        // otherwise ("Booting from Hard Disk", "Boot failed"); rvirt has
        // no such ROM.
        q.extend(["-global", "kvm-apic.vapic=false"].map(String::from));
        q.extend(["-enable-kvm", "-nographic", "-bios"].map(String::from));
        q.push(bios.display().to_string());
        let run = Spawned::start(
            die_with_test(&mut Command::new("qemu-system-x86_64"))
                .args(&q)
                .stdin(Stdio::null()),
        )
        .output(LIMIT);
        assert!(run.status.success(), "QEMU: {run:?}");
        assert_eq!(
            ours,
            seabios_lines(&dir.path().join(format!("qemu-{tag}.serial"))),
            "{tag}: rvirt's serial lines vs QEMU's"
        );
    }
}
