//! `-device ich9-ahci|ahci`, `ide-hd` and `ide-cd` as libvirt 9.0 writes
//! them for `<disk bus='sata'>`.

use std::path::Path;

use super::*;

const Q35: &[&str] = &["-machine", "pc-q35-7.2"];

fn q35<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = with_kernel(Q35);
    v.extend_from_slice(extra);
    v
}

#[test]
fn q35_has_its_builtin_ahci_and_libvirts_sata_disks_land_on_its_ports() {
    let c = run(&q35(&[
        "-blockdev",
        r#"{"driver":"file","filename":"/a.raw","node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"}"#,
        "-blockdev",
        r#"{"node-name":"libvirt-2-format","read-only":false,"driver":"raw","file":"libvirt-2-storage"}"#,
        "-device",
        r#"{"driver":"ide-hd","bus":"ide.0","drive":"libvirt-2-format","id":"sata0-0-0","bootindex":1}"#,
        "-blockdev",
        r#"{"driver":"file","filename":"/cd.iso","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}"#,
        "-blockdev",
        r#"{"node-name":"libvirt-1-format","read-only":true,"driver":"raw","file":"libvirt-1-storage"}"#,
        "-device",
        r#"{"driver":"ide-cd","bus":"ide.2","drive":"libvirt-1-format","id":"sata0-0-2"}"#,
        "-device",
        r#"{"driver":"ide-cd","bus":"ide.3","id":"sata0-0-3"}"#,
    ]));
    assert_eq!(c.ahci.len(), 1);
    assert!(c.ahci[0].builtin);
    assert_eq!((c.ahci[0].addr.slot, c.ahci[0].addr.function), (31, 2));
    let d = &c.ata_drives;
    assert_eq!(d.len(), 3);
    assert_eq!(
        (d[0].kind, d[0].controller, d[0].port),
        (AtaKind::Disk, 0, 0)
    );
    assert_eq!(d[0].bootindex, Some(1));
    assert_eq!(d[0].disk.as_ref().unwrap().path(), Path::new("/a.raw"));
    assert_eq!((d[1].kind, d[1].port), (AtaKind::Cdrom, 2));
    assert!(d[1].disk.as_ref().unwrap().read_only());
    assert!(d[2].disk.is_none(), "an empty CD-ROM");
    assert!(c.virtio.is_empty());
}

#[test]
fn a_device_ahci_names_its_ports_by_its_id() {
    let c = run(&q35(&[
        "-device",
        r#"{"driver":"ahci","id":"sata0","bus":"pcie.0","addr":"0x7"}"#,
        "-drive",
        "file=/a.raw,format=raw,if=none,id=d0",
        "-device",
        "ide-hd,bus=sata0.5,drive=d0",
    ]));
    assert_eq!(c.ahci.len(), 2);
    assert_eq!(c.ahci[1].id.as_deref(), Some("sata0"));
    assert_eq!(c.ahci[1].addr.slot, 7);
    assert_eq!((c.ata_drives[0].controller, c.ata_drives[0].port), (1, 5));
}

#[test]
fn bad_ata_buses_and_shared_drives_are_refused() {
    let d = ["-drive", "file=/a.raw,format=raw,if=none,id=d0"];
    let with = |extra: &[&'static str]| {
        let mut v = d.to_vec();
        v.extend_from_slice(extra);
        v
    };
    assert!(
        err(&q35(&with(&["-device", "ide-hd,bus=ide.6,drive=d0"]))).contains("'ide.6' not found")
    );
    assert!(err(&q35(&with(&["-device", "ide-hd,bus=nope.0,drive=d0"]))).contains("not found"));
    assert!(err(&q35(&with(&[
        "-device",
        "ide-hd,bus=ide.0,unit=1,drive=d0"
    ])))
    .contains("unit 1"));
    assert!(err(&q35(&["-device", "ide-hd,bus=ide.0"])).contains("drive"));
    assert!(err(&q35(&with(&[
        "-device",
        "ide-hd,bus=ide.0,drive=d0",
        "-device",
        "virtio-blk-pci,drive=d0"
    ])))
    .contains("already in use"));
    assert!(err(&q35(&with(&[
        "-device",
        "ide-hd,bus=ide.0,drive=d0",
        "-device",
        "ide-cd,bus=ide.0"
    ])))
    .contains("in use"));
    // A drive before its controller: the bus does not exist yet (QEMU).
    let e = err(&q35(&with(&[
        "-device",
        "ide-hd,bus=sata1.0,drive=d0",
        "-device",
        "ahci,id=sata1",
    ])));
    assert!(e.contains("'sata1.0' not found"), "{e}");
    // A slot taken by the built-in controller.
    let e = err(&q35(&["-device", "ahci,id=s,addr=0x1f.2"]));
    assert!(e.contains("ich9-ahci"), "{e}");
}

#[test]
fn pc_drives_land_on_the_piix3_ide_channels_and_units() {
    let c = run(&with_kernel(&[
        "-blockdev",
        r#"{"driver":"file","filename":"/a.raw","node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"}"#,
        "-blockdev",
        r#"{"node-name":"libvirt-2-format","read-only":false,"driver":"raw","file":"libvirt-2-storage"}"#,
        "-device",
        r#"{"driver":"ide-hd","bus":"ide.0","unit":0,"drive":"libvirt-2-format","id":"ide0-0-0","bootindex":2}"#,
        "-blockdev",
        r#"{"driver":"file","filename":"/cd.iso","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}"#,
        "-blockdev",
        r#"{"node-name":"libvirt-1-format","read-only":true,"driver":"raw","file":"libvirt-1-storage"}"#,
        "-device",
        r#"{"driver":"ide-cd","bus":"ide.1","unit":1,"drive":"libvirt-1-format","id":"ide0-1-1","bootindex":1}"#,
        "-device",
        "ide-cd,bus=ide.0,id=empty",
    ]));
    assert!(c.ahci.is_empty(), "pc has no AHCI");
    let d = &c.ata_drives;
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|x| x.ide));
    assert_eq!((d[0].kind, d[0].port), (AtaKind::Disk, 0));
    assert_eq!(
        (d[1].kind, d[1].port, d[1].bootindex),
        (AtaKind::Cdrom, 3, Some(1))
    );
    // No unit given: the first free one of the bus.
    assert_eq!((d[2].port, d[2].disk.is_none()), (1, true));
    // No bus given: the first free unit of the first channel with one.
    let c = run(&with_kernel(&[
        "-device",
        "ide-cd,id=a",
        "-device",
        "ide-cd,id=b",
        "-device",
        "ide-cd,id=c",
    ]));
    let ports: Vec<u8> = c.ata_drives.iter().map(|x| x.port).collect();
    assert_eq!(ports, [0, 1, 2]);
}

#[test]
fn pc_ide_addresses_are_checked_as_qemu_checks_them() {
    let pc = |extra: &[&'static str]| err(&with_kernel(extra));
    let e = pc(&["-device", "ide-cd,bus=ide.2"]);
    assert!(e.contains("Bus 'ide.2' not found"), "{e}");
    let e = pc(&["-device", "ide-cd,bus=ide.0,unit=2"]);
    assert!(
        e.contains("Can't create IDE unit 2, bus supports only 2 units"),
        "{e}"
    );
    let e = pc(&[
        "-device",
        "ide-cd,bus=ide.1,unit=1",
        "-device",
        "ide-cd,bus=ide.1,unit=1",
    ]);
    assert!(e.contains("IDE unit 1 is in use"), "{e}");
    let four = ["-device", "ide-cd"].repeat(5);
    let e = pc(&four);
    assert!(
        e.contains("No 'IDE' bus found") || e.contains("No free bus"),
        "{e}"
    );
}
