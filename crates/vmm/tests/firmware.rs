//! Firmware boot: SeaBIOS (Debian's, as QEMU uses it) boots the boot disk
//! of crates/test-guests from a virtio-mmio disk, through fw_cfg, from
//! virtio-blk-pci, and from a SATA disk and an El Torito CD-ROM on q35's
//! AHCI controller; against QEMU 7.2 with the same firmware and command
//! line. The SMBIOS structures fw_cfg serves SeaBIOS, byte for byte
//! against QEMU 7.2's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_test_guests::{boot_disk, fwcfg_disk};

const LIMIT: Duration = Duration::from_secs(60);

/// A private copy of the boot disk (a guest may write to its disk).
fn disk_copy(dir: &Path) -> PathBuf {
    let p = dir.join("boot.img");
    std::fs::copy(boot_disk(), &p).unwrap();
    p
}

/// The shared command line: the machine, RAM, the disk, the serial port
/// in a file; the firmware is the machine's default.
fn args(machine: &str, disk: &Path, serial: &Path) -> Vec<String> {
    [
        "-M",
        machine,
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        &format!("file:{}", serial.display()),
        "-drive",
        &format!("file={},format=raw,if=none,id=d0", disk.display()),
        "-device",
        "virtio-blk-device,drive=d0,bootindex=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_rvirt(args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = wait(spawn(&refs), LIMIT);
    assert!(
        run.status.success(),
        "rvirt-vmm {args:?}: {}\n{}",
        run.status,
        run.stderr
    );
    run
}

#[test]
fn boot_disk_through_seabios_on_microvm_as_on_qemu() {
    let Some(bios) = seabios("bios-microvm.bin") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("rvirt.serial");
    run_rvirt(&args("microvm", &disk_copy(dir.path()), &serial));
    let ours = seabios_lines(&serial);
    assert!(
        ours.iter().any(|l| l.contains("Booting from Hard Disk")),
        "SeaBIOS's console on COM1: {ours:?}"
    );
    assert!(
        ours.iter().any(|l| l.ends_with("MBR real mode")),
        "{ours:?}"
    );
    assert!(
        ours.contains(&"MBR long mode, boot drive 0x80".to_string()),
        "{ours:?}"
    );
    assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");

    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let qserial = dir.path().join("qemu.serial");
    let qdisk = dir.path().join("qemu.img");
    std::fs::copy(boot_disk(), &qdisk).unwrap();
    let mut q = args("microvm", &qdisk, &qserial);
    // QEMU shows SeaBIOS's console on the serial port under -nographic;
    // rvirt, which has no display, always does.
    q.extend(["-enable-kvm", "-nographic", "-bios"].map(String::from));
    q.push(bios.display().to_string());
    let qemu = Spawned::start(
        die_with_test(&mut Command::new("qemu-system-x86_64"))
            .args(&q)
            .stdin(Stdio::null()),
    )
    .output(LIMIT);
    assert!(qemu.status.success(), "QEMU: {qemu:?}");
    assert_eq!(
        ours,
        seabios_lines(&qserial),
        "rvirt's serial lines vs QEMU's"
    );
}

#[test]
fn boot_disk_through_bios_256k_on_pc() {
    if seabios("bios-256k.bin").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial");
    let debug = dir.path().join("debug");
    let mut a = args("pc", &disk_copy(dir.path()), &serial);
    a.extend([
        "-debugcon".into(),
        format!("file:{}", debug.display()),
        "-global".into(),
        "isa-debugcon.iobase=0x402".into(),
        "-boot".into(),
        "strict=on,reboot-timeout=0".into(),
    ]);
    run_rvirt(&a);
    let out = seabios_lines(&serial);
    assert!(
        out.contains(&"MBR long mode, boot drive 0x80".to_string()),
        "{out:?}"
    );
    // SeaBIOS's own log, through the debug console: fw_cfg with DMA, the
    // boot order from bootindex, the disk found through the DSDT.
    let log = std::fs::read_to_string(&debug).unwrap();
    for want in [
        "Found QEMU fw_cfg",
        "QEMU fw_cfg DMA interface supported",
        "qemu/e820: addr 0x0000000000000000 len 0x0000000008000000 [RAM]",
        "1: /virtio-mmio@00000000d0000000/disk@0,0",
        "ACPI: virtio-mmio device VR00 at 0xd0000000, irq 5",
        "found virtio-blk-mmio at 0xd0000000",
    ] {
        assert!(log.contains(want), "{want:?} not in SeaBIOS's log:\n{log}");
    }
}

/// The command line of `args` with the disk on PCI instead: on pc at
/// 00:04.0, on q35 behind a root port at 00:02.0 (which SeaBIOS numbers
/// and opens itself), as libvirt writes them.
fn pci_args(machine: &str, disk: &Path, serial: &Path) -> Vec<String> {
    let mut a = args(machine, disk, serial);
    a.truncate(a.len() - 2);
    let devices: &[&str] = match machine {
        "q35" => &[
            "-device",
            "pcie-root-port,port=16,chassis=1,id=pci.1,bus=pcie.0,multifunction=on,addr=0x2",
            "-device",
            "virtio-blk-pci,drive=d0,bus=pci.1,addr=0x0,bootindex=1",
        ],
        _ => &[
            "-device",
            "virtio-blk-pci,drive=d0,bus=pci.0,addr=0x4,bootindex=1",
        ],
    };
    a.extend(devices.iter().map(|s| s.to_string()));
    a.extend([
        "-debugcon".into(),
        format!("file:{}", serial.with_extension("debug").display()),
        "-global".into(),
        "isa-debugcon.iobase=0x402".into(),
    ]);
    a
}

/// SeaBIOS (bios-256k.bin) on pc and q35 shadows itself through the host
/// bridge's PAM registers, enumerates PCI, and boots the boot disk from a
/// virtio-blk-pci disk named by bootindex, with the same serial lines as
/// QEMU 7.2 with the same command line; the boot order it is handed names
/// the disk by its PCI path, as QEMU's does.
#[test]
fn boot_disk_from_virtio_blk_pci_on_pc_and_q35_as_on_qemu() {
    let Some(bios) = seabios("bios-256k.bin") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    if qemu.is_none() && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    for (machine, path) in [
        ("pc", "1: /pci@i0cf8/scsi@4/disk@0,0"),
        ("q35", "1: /pci@i0cf8/pci-bridge@2/scsi@0/disk@0,0"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("rvirt.serial");
        run_rvirt(&pci_args(machine, &disk_copy(dir.path()), &serial));
        let ours = seabios_lines(&serial);
        assert!(
            ours.contains(&"MBR long mode, boot drive 0x80".to_string()),
            "{machine}: {ours:?}"
        );
        assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");
        let log = std::fs::read_to_string(serial.with_extension("debug")).unwrap();
        for want in [
            path,
            "found virtio-blk at ",
            "using modern (1.0) virtio mode",
        ] {
            assert!(
                log.contains(want),
                "{machine}: {want:?} not in SeaBIOS's log:\n{log}"
            );
        }

        if qemu.is_none() {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let qserial = dir.path().join("qemu.serial");
        let qdisk = dir.path().join("qemu.img");
        std::fs::copy(boot_disk(), &qdisk).unwrap();
        let mut q = pci_args(machine, &qdisk, &qserial);
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
            "{machine}: rvirt's serial lines vs QEMU's"
        );
        let qlog = std::fs::read_to_string(qserial.with_extension("debug")).unwrap();
        assert!(qlog.contains(path), "{machine}: QEMU's boot order:\n{qlog}");
    }
}

#[test]
fn without_a_bootable_disk_seabios_says_so() {
    if seabios("bios-microvm.bin").is_none() {
        return;
    }
    // An empty disk, strict boot order and no retry: SeaBIOS reports that
    // nothing boots, then resets (which -no-reboot turns into an exit).
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("empty.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let serial = dir.path().join("serial");
    let mut a = args("microvm", &disk, &serial);
    a.extend(["-boot".into(), "strict=on,reboot-timeout=0".into()]);
    run_rvirt(&a);
    let s = std::fs::read_to_string(&serial).unwrap();
    assert!(s.contains("Boot failed: not a bootable disk"), "{s:?}");
    assert!(s.contains("No bootable device."), "{s:?}");
}

#[test]
fn bad_firmware_is_named() {
    let run = wait(spawn(&["-bios", "/nonexistent/bios.bin"]), LIMIT);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr
            .contains("rvirt-vmm: -bios: could not read '/nonexistent/bios.bin'"),
        "{}",
        run.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.bin");
    std::fs::write(&odd, vec![0u8; 1000]).unwrap();
    let run = wait(spawn(&["-bios", odd.to_str().unwrap()]), LIMIT);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("a BIOS image is a multiple of 64 KiB"),
        "{}",
        run.stderr
    );
}

/// q35 with the boot medium on the built-in AHCI controller: a disk on
/// port 0 or a CD-ROM on port 2, as libvirt 9.0 writes `<disk bus='sata'>`.
/// On pc (`pc_ahci`), the disk is on port 3 of a `-device ahci` in slot 7
/// instead, as libvirt writes a `<controller type='sata'>` there.
fn sata_args(medium: &Path, cdrom: bool, pc_ahci: bool, serial: &Path) -> Vec<String> {
    let (blockdev, device) = if cdrom {
        (
            format!(
                r#"{{"node-name":"cd","read-only":true,"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
                medium.display()
            ),
            r#"{"driver":"ide-cd","bus":"ide.2","drive":"cd","id":"sata0-0-2","bootindex":1}"#,
        )
    } else {
        (
            format!(
                r#"{{"node-name":"hd","read-only":false,"driver":"raw","file":{{"driver":"file","filename":"{}"}}}}"#,
                medium.display()
            ),
            if pc_ahci {
                r#"{"driver":"ide-hd","bus":"sata0.3","drive":"hd","id":"sata0-0-3","bootindex":1}"#
            } else {
                r#"{"driver":"ide-hd","bus":"ide.0","drive":"hd","id":"sata0-0-0","bootindex":1}"#
            },
        )
    };
    let mut a: Vec<String> = [
        "-M",
        if pc_ahci {
            "pc-i440fx-7.2"
        } else {
            "pc-q35-7.2"
        },
        "-m",
        "128",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        &format!("file:{}", serial.display()),
        "-blockdev",
        &blockdev,
        "-device",
        device,
        "-debugcon",
        &format!("file:{}", serial.with_extension("debug").display()),
        "-global",
        "isa-debugcon.iobase=0x402",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if pc_ahci {
        // Before the drive on it, as QEMU wants (and libvirt writes).
        a.splice(
            0..0,
            [
                "-device".to_string(),
                r#"{"driver":"ahci","id":"sata0","bus":"pci.0","addr":"0x7"}"#.to_string(),
            ],
        );
    }
    a
}

/// SeaBIOS boots the boot disk from a SATA disk and an El Torito ISO from
/// a SATA CD-ROM on q35's AHCI controller, and a disk on a `-device ahci`
/// on pc (finding them through its IDENTIFY and ATAPI commands, reading
/// through PRDs), with the same
/// serial lines as QEMU 7.2 with the same firmware and command line; the
/// boot order names each drive by QEMU's path.
#[test]
fn boot_disk_and_iso_from_ahci_as_on_qemu() {
    let Some(bios) = seabios("bios-256k.bin") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    if qemu.is_none() && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    let dir = tempfile::tempdir().unwrap();
    let iso = boot_iso(dir.path());
    let mut cases = vec![
        (
            false,
            false,
            "1: /pci@i0cf8/pci8086,2922@1f,2/drive@0/disk@0",
            "MBR long mode, boot drive 0x80",
            "AHCI/0: registering: \"AHCI/0: QEMU HARDDISK ATA-7 Hard-Disk (1 MiBytes)\"",
        ),
        (
            false,
            true,
            "1: /pci@i0cf8/pci8086,2922@7/drive@3/disk@0",
            "MBR long mode, boot drive 0x80",
            "AHCI/3: registering: \"AHCI/3: QEMU HARDDISK ATA-7 Hard-Disk (1 MiBytes)\"",
        ),
    ];
    if iso.is_some() {
        cases.push((
            true,
            false,
            "1: /pci@i0cf8/pci8086,2922@1f,2/drive@2/disk@0",
            "MBR long mode, boot drive 0xe0",
            "AHCI/2: registering: \"DVD/CD [AHCI/2: QEMU DVD-ROM ATAPI-4 DVD/CD]\"",
        ));
    }
    for (cdrom, pc_ahci, path, booted, found) in cases {
        let medium = |name: &str| match &iso {
            Some(iso) if cdrom => iso.clone(),
            _ => {
                let p = dir.path().join(name);
                std::fs::copy(boot_disk(), &p).unwrap();
                p
            }
        };
        let serial = dir.path().join(format!("rvirt-{cdrom}-{pc_ahci}.serial"));
        run_rvirt(&sata_args(&medium("rvirt.img"), cdrom, pc_ahci, &serial));
        let ours = seabios_lines(&serial);
        assert!(ours.contains(&booted.to_string()), "{ours:?}");
        assert_eq!(ours.last().map(String::as_str), Some("DONE"), "{ours:?}");
        let log = std::fs::read_to_string(serial.with_extension("debug")).unwrap();
        for want in [path, found] {
            assert!(log.contains(want), "{want:?} not in SeaBIOS's log:\n{log}");
        }

        if qemu.is_none() {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let qserial = dir.path().join(format!("qemu-{cdrom}-{pc_ahci}.serial"));
        let mut q = sata_args(&medium("qemu.img"), cdrom, pc_ahci, &qserial);
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
            "rvirt's serial lines vs QEMU's"
        );
        let qlog = std::fs::read_to_string(qserial.with_extension("debug")).unwrap();
        for want in [path, found] {
            assert!(qlog.contains(want), "{want:?} not in QEMU's SeaBIOS log");
        }
    }
}

/// The `HEX` lines of the fw_cfg files the fwcfg disk printed, checked
/// present.
fn fwcfg_dump(lines: &[String], what: &str) -> Vec<String> {
    assert_eq!(
        lines.last().map(String::as_str),
        Some("DONE"),
        "{what}: {lines:?}"
    );
    let dump: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("FILE ") || l.starts_with("HEX "))
        .cloned()
        .collect();
    assert!(
        dump.iter().filter(|l| l.starts_with("FILE ")).count() == 2
            && !dump
                .iter()
                .any(|l| l.ends_with("absent") || l.ends_with("no fw_cfg")),
        "{what}: {lines:?}"
    );
    dump
}

/// QEMU 7.2's pc and q35 serve SeaBIOS their SMBIOS structures
/// (`etc/smbios/smbios-anchor`, `etc/smbios/smbios-tables`: system with
/// the `-uuid`, chassis, a processor per socket with the vCPUs' CPUID
/// signature, the memory array, DIMMs and mapped ranges, boot info); rvirt
/// serves the same bytes, read by the fwcfg disk after SeaBIOS booted it.
#[test]
fn smbios_tables_are_qemus_on_pc_and_q35() {
    let Some(bios) = seabios("bios-256k.bin") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    if qemu.is_none() && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    // RAM in one range and one DIMM, then above 4 GiB too (two ranges) and
    // over 16 GiB (two DIMMs), with one socket and with two; one vCPU and
    // no -uuid. `-cpu host` on both: type 4 carries the CPUID signature,
    // and rvirt's named models (qemu64, the default) keep the host's.
    const UUID: &str = "3a1efbe8-7cc4-4061-a50a-9a7b30ccd6b6";
    for (machine, mem, smp, uuid) in [
        ("pc", "128", "2", Some(UUID)),
        ("q35", "1024", "2", Some(UUID)),
        ("pc", "5120", "4,sockets=2,cores=2,threads=1", Some(UUID)),
        ("q35", "17408", "8,sockets=2,cores=2,threads=2", Some(UUID)),
        ("pc", "256", "1", None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let line = |who: &str| {
            let disk = dir.path().join(format!("{who}.img"));
            std::fs::copy(fwcfg_disk(), &disk).unwrap();
            let serial = dir.path().join(format!("{who}.serial"));
            let mut a = args(machine, &disk, &serial);
            a.truncate(a.len() - 2);
            a.extend(
                [
                    "-device",
                    "virtio-blk-pci,drive=d0,bootindex=1",
                    "-smp",
                    smp,
                    "-cpu",
                    "host",
                ]
                .map(String::from),
            );
            if let Some(u) = uuid {
                a.extend(["-uuid".to_string(), u.to_string()]);
            }
            a[3] = mem.to_string();
            (a, serial)
        };
        let (a, serial) = line("rvirt");
        run_rvirt(&a);
        let ours = fwcfg_dump(&seabios_lines(&serial), machine);

        if qemu.is_none() {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let (mut q, qserial) = line("qemu");
        q.extend(["-enable-kvm", "-nographic", "-bios"].map(String::from));
        q.push(bios.display().to_string());
        let run = Spawned::start(
            die_with_test(&mut Command::new("qemu-system-x86_64"))
                .args(&q)
                .stdin(Stdio::null()),
        )
        .output(LIMIT);
        assert!(run.status.success(), "QEMU: {run:?}");
        let theirs = fwcfg_dump(&seabios_lines(&qserial), machine);
        assert_eq!(ours, theirs, "{machine}: rvirt's SMBIOS files vs QEMU's");
    }
}
