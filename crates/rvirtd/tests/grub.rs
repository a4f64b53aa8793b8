//! A real disk, built in the test from Debian packages only (GRUB from
//! grub-pc-bin, ext2 from e2fsprogs, Debian's cloud kernel): SeaBIOS →
//! GRUB on the serial console → Linux's banner and the command line from
//! grub.cfg. On rvirt-vmm (pc, virtio-blk-pci) beside QEMU 7.2 with the
//! same disk, and through rvirtd with the real virsh from a domain XML
//! with no `<kernel>` (whose disk rvirtd's derivation still puts on
//! virtio-mmio, which SeaBIOS also boots, until it derives libvirt's PCI
//! addresses).
//!
//! Everything after SeaBIOS runs emulated on these hosts (GRUB reads the
//! 14 MiB kernel through int 13h, Linux decompresses itself): one boot
//! takes minutes, more on a loaded machine. The bounds are for that; the
//! test is in nextest's debian-kernel group, one at a time.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have_virsh, vmm, Rvirtd};
use rvirt_test_guests::grub::{build_grub_disk, grub_available};
use rvirt_testkit::{poll, Spawned};

/// The kernel command line grub.cfg passes: Linux prints it back as
/// `Command line: BOOT_IMAGE=/boot/vmlinuz …`.
const CMDLINE: &str = "console=ttyS0 earlyprintk=ttyS0 noxsave rvirt.boot=grub";
/// The three boots at once, GRUB's load of the kernel and Linux's
/// decompression included. Measured on this 2-core machine at a load of
/// 12-14: 24 minutes for rvirt-vmm and for QEMU 7.2 on virtio-blk-pci
/// (SeaBIOS reaches a modern-only virtio-pci disk through the PCI
/// configuration window, several exits per register, in both VMMs) and 8
/// minutes for the domain, whose disk rvirtd still puts on virtio-mmio.
const BOOT_BOUND: Duration = Duration::from_secs(2700);

fn grub_cfg() -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         echo 'GRUB: loading Debian kernel'\n\
         linux /boot/vmlinuz {CMDLINE}\n\
         echo 'GRUB: booting'\n\
         boot\n"
    )
}

/// What must appear on the console, in this order.
fn expected() -> Vec<String> {
    vec![
        "SeaBIOS (version".to_string(),
        "GRUB loading".to_string(),
        "GRUB: loading Debian kernel".to_string(),
        "GRUB: booting".to_string(),
        "Linux version ".to_string(),
        format!("Command line: BOOT_IMAGE=/boot/vmlinuz {CMDLINE}"),
    ]
}

/// Whether `console` has every expected line, in order.
fn all_in_order(console: &str) -> Result<(), String> {
    let mut at = 0;
    for want in expected() {
        match console[at..].find(&want) {
            Some(i) => at += i + want.len(),
            None => return Err(format!("no '{want}' (in order) yet")),
        }
    }
    // The command line's own line must be complete.
    if !console[at..].contains('\n') {
        return Err("the command line is not complete yet".to_string());
    }
    Ok(())
}

/// Debian's kernel, fetched once into the shared target tmp directory
/// (the same cache as rvirt-vmm's Linux tests).
fn debian_kernel() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debian-kernel");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-debian-kernel.sh");
    let out = rvirt_testkit::run(Command::new(script).arg(&dir), Duration::from_secs(240));
    if out.status.success() {
        return Some(dir.join("vmlinuz"));
    }
    let why = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
        "cannot fetch Debian's kernel (RVIRT_REQUIRE_REFERENCE is set): {why}"
    );
    eprintln!("Debian's kernel could not be fetched; test skipped: {why}");
    None
}

/// Whether `tool` runs (`flag` prints its version).
fn have(tool: &str, flag: &str, package: &str) -> bool {
    let found = Command::new(tool)
        .arg(flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "{tool} ({package}) is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("{tool} not installed: test skipped");
    }
    found
}

/// This host's instruction emulator (the kvm_pvm module) stops on
/// cmpxchg16b and xsave: the guest's CPU leaves them out (the command line
/// also says noxsave), as rvirt-vmm's Linux tests do.
fn emulating_host() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// Starts `program` with the arguments on `disk` (pc, virtio-blk-pci at
/// bootindex 1, the serial port on stdout).
fn spawn(program: &str, args: &[&str], disk: &std::path::Path) -> Spawned {
    let drive = format!("file={},format=raw,if=none,id=d0", disk.display());
    Spawned::start(
        Command::new(program)
            .args(args)
            .args(["-M", "pc", "-m", "256", "-nodefaults", "-serial", "stdio"])
            .args(["-drive", &drive])
            .args(["-device", "virtio-blk-pci,drive=d0,bootindex=1"])
            .args(["-no-reboot"])
            .stdin(Stdio::null()),
    )
}

/// Waits (from `start`, within [`BOOT_BOUND`]) until the child printed
/// every expected line, then kills it: its console and how long it took.
fn finish(mut child: Spawned, start: Instant) -> (String, Duration) {
    let left = BOOT_BOUND.saturating_sub(start.elapsed());
    child.until("GRUB and Linux's banner", left, |out, _| {
        all_in_order(&out.replace('\r', "")).is_ok()
    });
    let took = start.elapsed();
    let console = child.stdout_text().replace('\r', "");
    child.kill();
    (console, took)
}

/// The lines GRUB and Linux print up to the command line, without
/// timestamps and terminal escapes, for comparing two VMMs.
fn grub_and_banner(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| {
            ["GRUB: ", "Linux version ", "Command line: "]
                .iter()
                .find_map(|k| l.find(k).map(|i| l[i..].trim().to_string()))
        })
        .collect()
}

#[test]
fn grub_boots_debians_kernel_from_a_real_disk() {
    if !grub_available() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "grub-pc-bin is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("grub-pc-bin not installed: test skipped");
        return;
    }
    if !have("mkfs.ext2", "-V", "e2fsprogs")
        || !have("qemu-system-x86_64", "--version", "qemu-system-x86")
    {
        return;
    }
    if !have_virsh() {
        return;
    }
    let Some(kernel) = debian_kernel() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("grub.img");
    build_grub_disk(&kernel, &grub_cfg(), work.path(), &disk).unwrap();

    // rvirt-vmm, QEMU 7.2 on a copy (each VMM locks its image) and the
    // domain through rvirtd boot at the same time: minutes each, emulated,
    // and their output does not depend on the timing.
    let cpu = if emulating_host() {
        "host,-cx16,-xsave"
    } else {
        "host"
    };
    let start = Instant::now();
    let rvirt = spawn(&vmm().to_string_lossy(), &["-cpu", cpu], &disk);
    let qdisk = work.path().join("grub-qemu.img");
    std::fs::copy(&disk, &qdisk).unwrap();
    // QEMU's `host` model aborts on this host (MSR 0x10a): qemu64 as
    // /work/shared/REFERENCE-STACK.md says; GRUB and the banner need no more.
    let qemu = spawn(
        "qemu-system-x86_64",
        &[
            "-enable-kvm",
            "-cpu",
            "qemu64,-pni",
            "-display",
            "none",
            "-machine",
            "graphics=off",
        ],
        &qdisk,
    );
    let ddisk = work.path().join("grub-rvirtd.img");
    std::fs::copy(&disk, &ddisk).unwrap();
    // Through rvirtd and the real virsh: no <kernel>, the disk first.
    let d = Rvirtd::start();
    let features = if emulating_host() {
        "<feature policy='disable' name='cx16'/><feature policy='disable' name='xsave'/>"
    } else {
        ""
    };
    let xml = format!(
        "<domain type='kvm'>
  <name>grub</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'>{features}</cpu>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'/>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        ddisk.display()
    );
    let file = d.xml_file("grub.xml", &xml);
    d.ok(&["define", &file]);
    d.ok(&["start", "grub"]);

    let (rvirt, rvirt_took) = finish(rvirt, start);
    let (qemu, qemu_took) = finish(qemu, start);
    eprintln!("SeaBIOS to Linux's command line: rvirt-vmm {rvirt_took:?}, QEMU {qemu_took:?}");
    assert_eq!(
        grub_and_banner(&rvirt),
        grub_and_banner(&qemu),
        "rvirt-vmm:\n{rvirt}\nQEMU:\n{qemu}"
    );
    let left = BOOT_BOUND.saturating_sub(start.elapsed());
    let log = poll("GRUB and Linux's banner in the serial log", left, || {
        let log = d.log("grub").replace('\r', "");
        all_in_order(&log).map(|()| log.clone()).map_err(|e| {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            format!("{e}; log tail: {tail:?}")
        })
    });
    let cmd = log
        .lines()
        .find(|l| l.contains(" -name "))
        .unwrap_or_default();
    assert!(!cmd.contains("-kernel"), "{cmd}");
    assert_eq!(grub_and_banner(&log), grub_and_banner(&qemu), "{log}");
    // Linux finds no root file system and panics; with on_reboot=destroy
    // the domain may be off already.
    if d.state("grub").starts_with("running") {
        d.ok(&["destroy", "grub"]);
    }
}
