//! `rvirt-test-guests grub-disk`, the GRUB disk builder as scripts (bench/grub)
//! call it: the disk it writes is laid out as `build_grub_disk` promises,
//! and bad arguments fail with a message naming what is wrong.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rvirt_test_guests::grub::{grub_available, GRUB_I386_PC};
use rvirt_test_guests::Guest;

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvirt-test-guests"))
}

fn have_grub() -> bool {
    let found = grub_available()
        && Command::new("mkfs.ext2")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "grub-pc-bin and e2fsprogs are required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("grub-pc-bin or e2fsprogs not installed: test skipped");
    }
    found
}

#[test]
fn grub_disk_writes_an_mbr_disk_with_grub_and_the_kernel() {
    if !have_grub() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("grub.cfg");
    std::fs::write(&cfg, "echo 'GRUB: first line'\n").unwrap();
    let disk = work.path().join("grub.img");
    let kernel = Guest::BzImage.path();
    let out = rvirt_testkit::run(
        tool().arg("grub-disk").arg(&disk).arg(&kernel).arg(&cfg),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{out:?}");
    let d = std::fs::read(&disk).unwrap();
    // GRUB's boot sector code, the boot signature, one active Linux
    // partition from LBA 2048 to the end of the disk.
    let boot = std::fs::read(Path::new(GRUB_I386_PC).join("boot.img")).unwrap();
    assert_eq!(d[..0x1b8], boot[..0x1b8]);
    assert_eq!(d[510..512], [0x55, 0xaa]);
    let entry = &d[0x1be..0x1ce];
    assert_eq!((entry[0], entry[4]), (0x80, 0x83));
    let lba = u32::from_le_bytes(entry[8..12].try_into().unwrap()) as usize;
    let sectors = u32::from_le_bytes(entry[12..16].try_into().unwrap()) as usize;
    assert_eq!(lba, 2048);
    assert_eq!((lba + sectors) * 512, d.len());
    // The core image right after the MBR (diskboot.img's first sector),
    // the ext2 superblock's magic in the partition, and the kernel and
    // grub.cfg in its files.
    assert_ne!(d[512..1024], [0u8; 512]);
    let part = &d[lba * 512..];
    assert_eq!(part[1024 + 0x38..1024 + 0x3a], [0x53, 0xef]);
    let k = std::fs::read(&kernel).unwrap();
    let find = |needle: &[u8]| part.windows(needle.len()).any(|w| w == needle);
    assert!(
        find(&k[..4096.min(k.len())]),
        "the kernel is not in the partition"
    );
    assert!(
        find(b"echo 'GRUB: first line'"),
        "grub.cfg is not in the partition"
    );
    // The scratch directory is gone.
    assert!(!disk.with_extension("work").exists());
}

#[test]
fn grub_disk_refuses_bad_arguments() {
    let out = rvirt_testkit::run(
        tool().args(["grub-disk", "only-one"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("usage: rvirt-test-guests grub-disk OUT KERNEL CFG"),
        "{err}"
    );

    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("no.cfg");
    let out = rvirt_testkit::run(
        tool()
            .arg("grub-disk")
            .arg(work.path().join("d.img"))
            .arg(Guest::BzImage.path())
            .arg(&missing),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read {}", missing.display())),
        "{err}"
    );
    assert!(!work.path().join("d.img").exists());
}
