//! QEMU's legacy drive options (`-drive if=ide`, `-cdrom`, `-hda`…) on pc
//! and q35, placed and named as QEMU 7.2 places and names them.

use super::*;

/// (on PIIX3 IDE, port, kind, drive name, read-only) of every ATA drive.
fn drives(c: &VmConfig) -> Vec<(bool, u8, AtaKind, Option<String>, bool)> {
    c.ata_drives
        .iter()
        .map(|d| {
            (
                d.ide,
                d.port,
                d.kind,
                d.disk.as_ref().map(|k| k.drive.clone()),
                d.disk.as_ref().is_some_and(|k| k.read_only()),
            )
        })
        .collect()
}

#[test]
fn drives_cdrom_and_hda_land_where_qemu_puts_them() {
    use AtaKind::{Cdrom, Disk};
    let args = [
        "-cdrom",
        "/x.iso",
        "-hda",
        "/x.img",
        "-drive",
        "file=/y.img,format=raw",
        "-drive",
        "file=/z.img,format=raw,media=cdrom",
    ];
    let name = |s: &str| Some(s.to_string());
    // pc: two units on each PIIX3 channel (port = bus * 2 + unit).
    let mut a = vec!["-M", "pc"];
    a.extend_from_slice(&args);
    assert_eq!(
        drives(&run(&with_kernel(&a))),
        [
            (true, 0, Disk, name("ide0-hd0"), false),
            (true, 1, Disk, name("ide0-hd1"), false),
            (true, 2, Cdrom, name("ide1-cd0"), true),
            (true, 3, Cdrom, name("ide1-cd1"), true),
        ]
    );
    // q35: one per AHCI port.
    let mut a = vec!["-M", "q35"];
    a.extend_from_slice(&args);
    let c = run(&with_kernel(&a));
    assert_eq!(
        drives(&c),
        [
            (false, 0, Disk, name("ide0-hd0"), false),
            (false, 1, Disk, name("ide1-hd0"), false),
            (false, 2, Cdrom, name("ide2-cd0"), true),
            (false, 3, Cdrom, name("ide3-cd0"), true),
        ]
    );
    assert!(c.ata_drives.iter().all(|d| d.controller == 0));
    // An id names the drive; bus and unit place it; a -device drive takes
    // the first free unit after the board's.
    let c = run(&with_kernel(&[
        "-drive",
        "file=/y.img,if=ide,bus=1,unit=1,id=mine",
        "-drive",
        "file=/z.img,if=none,id=d",
        "-device",
        "ide-hd,drive=d",
        "-cdrom",
        "",
    ]));
    assert_eq!(
        drives(&c),
        [
            (true, 2, Cdrom, None, false),
            (true, 3, Disk, name("mine"), false),
            (true, 0, Disk, name("d"), false),
        ]
    );
}

#[test]
fn what_qemu_refuses_and_what_rvirt_has_no_bus_for() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-drive", "file=/y.img,index=4"],
            "-drive: file=/y.img,index=4: machine type does not support if=ide,bus=2,unit=0",
        ),
        (
            &["-M", "q35", "-drive", "file=/y.img,index=6"],
            "machine type does not support if=ide,bus=6,unit=0",
        ),
        (
            &["-drive", "file=/y.img,bus=1,unit=2"],
            "unit 2 too big (max is 1)",
        ),
        (
            &["-M", "q35", "-drive", "file=/y.img,unit=1"],
            "unit 1 too big (max is 0)",
        ),
        (
            &["-hdc", "/y.img", "-cdrom", "/x.iso"],
            "-cdrom: /x.iso: drive with bus=1, unit=0 (index=2) exists",
        ),
        (
            &["-drive", "file=/y.img,index=1,unit=1"],
            "index cannot be used with bus and unit",
        ),
        (&["-drive", "file=/y.img,media=foo"], "'foo' invalid media"),
        (
            &["-drive", "file=/y.img,if=scsi"],
            "machine type does not support if=scsi,bus=0,unit=0",
        ),
        (
            &["-drive", "file=/y.img,if=floppy"],
            "if=floppy: there is no floppy controller",
        ),
        (&["-drive", "file=/y.img,if=pflash"], "flash firmware"),
        (&["-drive", "file=/y.img,if=sd"], "if=sd,bus=0,unit=0"),
        (
            &["-drive", "file=/y.img,if=bogus"],
            "invalid if option 'bogus'",
        ),
        (&["-hda", ""], "empty file name"),
        (
            &[
                "-drive",
                "file=/y.img,id=x",
                "-drive",
                "file=/z.img,if=none,id=x",
            ],
            "duplicate node name or id 'x'",
        ),
        (
            &["-drive", "file=/y.img,frob=1"],
            "invalid parameter 'frob'",
        ),
    ];
    for (extra, want) in cases {
        let e = err(&with_kernel(extra));
        assert!(e.contains(want), "{extra:?}: {e}");
    }
}
