//! PCI through the real binary, side by side with QEMU 7.2: the `pci` test
//! guest enumerates the bus through CF8 and ECAM, walks capabilities,
//! sizes BARs, drives a virtio-blk through modern virtio-pci with MSI-X
//! (seen in the local APIC's IRR; a masked vector latches its PBA bit and
//! fires on unmask) and moves the virtio BAR; the same guest with the same
//! command line runs under QEMU (`-accel kvm -cpu qemu64,-pni`), and what
//! the two print must agree but for the addresses firmware and rvirt pick
//! and the chipset functions rvirt does not emulate (SMBus on q35). And the seed's own command line: paused, `cont` over
//! QMP, booted, `query-pci` in QEMU's shape.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_test_guests::fnv1a32;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

/// 64 KiB (128 sectors) of a pattern no two sectors share.
fn image(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(31) + i / 512) as u8)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// The bytes the guest writes to sector 9.
fn written_sector() -> Vec<u8> {
    (0..512u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// Whether QEMU can run here; where it must (CI) its absence fails.
fn qemu_available() -> bool {
    let ok = which("qemu-system-x86_64").is_some() && Path::new("/dev/kvm").exists();
    if !ok && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    if !ok {
        eprintln!("qemu-system-x86_64 not available: the comparison with QEMU did not run");
    }
    ok
}

/// The guest's machine and device options, for a disk at `disk`.
fn devices(machine: &str, place: &str, disk: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-machine".into(),
        machine.into(),
        "-m".into(),
        "128".into(),
        "-no-reboot".into(),
        "-nodefaults".into(),
        "-drive".into(),
        format!("file={},format=raw,if=none,id=d0", disk.display()),
    ];
    match place {
        "root" => a.extend([
            "-device".into(),
            "virtio-blk-pci,drive=d0,id=disk0,disable-legacy=on".into(),
        ]),
        // libvirt's pci-bridge, SHPC off on both (rvirt has none).
        "bridge" => a.extend(
            [
                "-device",
                r#"{"driver":"pci-bridge","chassis_nr":1,"shpc":false,"id":"pci.1","bus":"pci.0","addr":"0x5"}"#,
                "-device",
                r#"{"driver":"virtio-blk-pci","disable-legacy":"on","drive":"d0","id":"disk0","bus":"pci.1","addr":"0x3"}"#,
            ]
            .map(String::from),
        ),
        // libvirt's q35 line for a conventional slot: a root port, the
        // pcie-to-pci-bridge behind it, the device behind that.
        "pcie-pci" => a.extend(
            [
                "-device",
                r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","addr":"0x2"}"#,
                "-device",
                r#"{"driver":"pcie-pci-bridge","id":"pci.2","bus":"pci.1","addr":"0x0"}"#,
                "-device",
                r#"{"driver":"virtio-blk-pci","disable-legacy":"on","drive":"d0","id":"disk0","bus":"pci.2","addr":"0x1"}"#,
            ]
            .map(String::from),
        ),
        _ => a.extend(
            [
                "-device",
                r#"{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","multifunction":true,"addr":"0x2"}"#,
                "-device",
                r#"{"driver":"pcie-root-port","port":17,"chassis":2,"id":"pci.2","bus":"pcie.0","addr":"0x2.0x1"}"#,
                "-device",
                r#"{"driver":"virtio-blk-pci","drive":"d0","id":"disk0","bus":"pci.2","addr":"0x0"}"#,
            ]
            .map(String::from),
        ),
    }
    a
}

fn run_rvirt(args: &[String]) -> String {
    let kernel = Guest::Pci.path();
    let mut all = vec!["-serial", "stdio", "-kernel", kernel.to_str().unwrap()];
    all.extend(args.iter().map(String::as_str));
    let run = wait(spawn(&all), T);
    assert!(
        run.status.success(),
        "rvirt-vmm {all:?}: {}\n{}\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    run.stdout
}

fn run_qemu(args: &[String]) -> String {
    let kernel = Guest::Pci.path();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "kvm", "-cpu", "qemu64,-pni", "-display", "none"])
        .args(["-serial", "stdio", "-kernel"])
        .arg(&kernel)
        .args(args)
        .stdin(Stdio::null());
    let run = wait(Spawned::start(die_with_test(&mut cmd)), T);
    assert!(
        run.status.success(),
        "qemu {args:?}: {}\n{}\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    // SeaBIOS's banner and the option ROM's lines come first.
    let start = run.stdout.find("ECAM").unwrap_or(0);
    run.stdout[start..].replace('\r', "")
}

/// What the guest must have seen on either VMM.
fn check_guest(out: &str, disk: &[u8], ecam: bool) {
    let want = |k: &str, v: &str| {
        assert_eq!(output::value(out, k), Some(v), "{k} in\n{out}");
    };
    assert!(output::done(out), "{out}");
    if ecam {
        want("ECAM_AGREES", "1");
    } else {
        want("ECAM", "none");
    }
    want("BLK_READ_STATUS", "0");
    let fnv = format!("{:#010x}", fnv1a32(&disk[..4096]));
    want("BLK_READ_FNV1A32", &fnv);
    want("MSIX_IRR", "01");
    want("BLK_WRITE_STATUS", "0");
    want("MSIX_MASKED_IRR", "0");
    want("MSIX_MASKED_PBA", "1");
    want("MSIX_UNMASKED_IRR", "1");
    want("MSIX_UNMASKED_PBA", "0");
    want("BLK_FLUSH_STATUS", "0");
    want("MSIX_FLUSH_IRR", "1");
    want("INTX_READ_STATUS", "0");
    want("INTX_IRR", "01");
    want("INTX_STATUS_BIT", "1");
    want("INTX_ISR", "0x1");
    want("INTX_STATUS_BIT_AFTER_ISR", "0");
    want("MOVED_BAR_READS_BACK", "1");
    want("MOVED_READ_STATUS", "0");
    want("MOVED_READ_MATCH", "1");
    want("MSIX_MOVED_IRR", "1");
}

/// The lines two VMMs must agree on: not the addresses each picks, not
/// the functions only QEMU has, not the function counts (which include
/// those). The power-off line is compared: it carries `\_S5_`'s SLP_TYP.
fn comparable(out: &str, qemu_only: &[&str], differs: &[&str]) -> Vec<String> {
    out.lines()
        .filter(|l| {
            !differs.iter().any(|d| l.starts_with(d))
                && !l.starts_with("BAR_AT ")
                && !l.starts_with("INTX_LINE_AT ")
                && !l.starts_with("MOVE ")
                && !l.starts_with("CF8_FUNCTIONS")
                && !l.starts_with("ECAM_FUNCTIONS")
                && !qemu_only.iter().any(|f| l.contains(f))
        })
        .map(str::to_string)
        .collect()
}

/// `differs`: prefixes of lines known to differ (what rvirt leaves off).
fn differential(machine: &str, place: &str, qemu_only: &[&str], differs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (disk, data) = image(dir.path(), "rvirt.img");
    let ecam = machine.contains("q35");
    let out = run_rvirt(&devices(machine, place, &disk));
    check_guest(&out, &data, ecam);
    let written = std::fs::read(&disk).unwrap();
    assert_eq!(&written[9 * 512..10 * 512], written_sector().as_slice());
    // The VMM placed the BARs, so none was left for the guest to assign.
    assert!(!out.contains("BAR_ASSIGNED"), "{out}");
    if !qemu_available() {
        return;
    }
    let (qdisk, _) = image(dir.path(), "qemu.img");
    let theirs = run_qemu(&devices(machine, place, &qdisk));
    check_guest(&theirs, &data, ecam);
    let n = |o: &str, k: &str| output::number_of(o, k).unwrap_or(0);
    assert_eq!(
        n(&out, "CF8_FUNCTIONS") + qemu_only.len() as u64,
        n(&theirs, "CF8_FUNCTIONS"),
        "rvirt:\n{out}\nQEMU:\n{theirs}"
    );
    assert_eq!(
        comparable(&out, qemu_only, differs),
        comparable(&theirs, qemu_only, differs),
        "rvirt:\n{out}\nQEMU:\n{theirs}"
    );
}

#[test]
fn pc_virtio_blk_on_the_root_bus_as_on_qemu() {
    differential("pc", "root", &[], &[]);
}

#[test]
fn q35_virtio_blk_on_the_root_bus_as_on_qemu() {
    differential("pc-q35-7.2", "root", &["00:1f.3"], &[]);
}

#[test]
fn q35_virtio_blk_behind_a_root_port_as_on_qemu() {
    differential("q35", "port", &["00:1f.3"], &[]);
}

/// pc with libvirt's pci-bridge (QEMU's `shpc=off`: the SHPC is what rvirt
/// leaves off): the guest finds the bridge and the disk behind it, drives
/// it with MSI-X and INTx (swizzled through the bridge), all as on QEMU.
#[test]
fn pc_virtio_blk_behind_a_pci_bridge_as_on_qemu() {
    differential("pc-i440fx-7.2", "bridge", &[], &[]);
}

/// q35 with a pcie-pci-bridge behind a root port and the disk behind it:
/// the same but for the bridge's SHPC (its capability and BAR 0 on QEMU;
/// the capability chain's offsets move with it) and QEMU's AER.
#[test]
fn q35_virtio_blk_behind_a_pcie_pci_bridge_as_on_qemu() {
    differential(
        "q35",
        "pcie-pci",
        &["00:1f.3"],
        &["CAP 01:00.0", "BAR 01:00.0"],
    );
}

/// The seed's qemu-kvm line (a libvirt `pc` domain): starts paused, takes
/// `cont`, boots; `query-pci` shows its devices where libvirt put them.
#[test]
fn the_seed_command_line_starts_paused_and_boots_on_cont() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, data) = image(dir.path(), "seed.img");
    let sock = dir.path().join("monitor.sock");
    let kernel = Guest::Pci.path();
    let args: Vec<String> = [
        "-name",
        "guest=seed,debug-threads=on",
        "-machine",
        "pc,accel=kvm,usb=off,dump-guest-core=off",
        "-m",
        "5000",
        "-realtime",
        "mlock=off",
        "-smp",
        "4,sockets=4,cores=1,threads=1",
        "-uuid",
        "7a615914-ea0d-7dab-e709-0533c00b921f",
        "-no-user-config",
        "-nodefaults",
        "-S",
        "-chardev",
        &format!(
            "socket,id=charmonitor,path={},server=on,wait=off",
            sock.display()
        ),
        "-mon",
        "chardev=charmonitor,id=monitor,mode=control",
        "-rtc",
        "base=utc",
        "-no-shutdown",
        "-global",
        "PIIX4_PM.disable_s3=1",
        "-global",
        "PIIX4_PM.disable_s4=1",
        "-boot",
        "strict=on",
        "-drive",
        &format!(
            "file={},if=none,id=drive-virtio-disk0,format=raw,cache=none,aio=native",
            disk.display()
        ),
        "-device",
        "virtio-blk-pci,bus=pci.0,addr=0x4,drive=drive-virtio-disk0,id=virtio-disk0,bootindex=1",
        "-netdev",
        "tap,id=hostnet0,ifname=rvseed0,script=no,downscript=no",
        "-device",
        "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:5d:be:06,bus=pci.0,addr=0x3",
        "-device",
        "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x5",
        "-serial",
        "stdio",
        "-kernel",
        kernel.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let mut cmd = Command::new(vmm());
    cmd.args(&args).stdin(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: unshare in the child between fork and exec, async-signal
        // safe: the VMM gets a network namespace of its own for its tap,
        // which dies with it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    let mut vm = match Spawned::try_start(die_with_test(&mut cmd)) {
        Ok(vm) => vm,
        Err(e) if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none() => {
            eprintln!("skipped: no network namespace here ({e})");
            return;
        }
        Err(e) => panic!("cannot start rvirt-vmm in a network namespace: {e}"),
    };
    let qmp = qmp_connect(&sock, T);
    let status = qmp.execute("query-status", None).unwrap();
    assert_eq!(status["status"], "prelaunch", "{status}");
    assert!(vm.stdout_text().is_empty(), "nothing runs before cont");
    let pci = qmp.execute("query-pci", None).unwrap();
    let devices = pci[0]["devices"].as_array().unwrap();
    let at = |slot: u64| -> &Value {
        devices
            .iter()
            .find(|d| d["slot"] == slot && d["function"] == 0)
            .unwrap_or_else(|| panic!("nothing in slot {slot}: {pci}"))
    };
    assert_eq!(at(0)["id"]["device"], 0x1237);
    assert_eq!(at(1)["id"]["device"], 0x7000);
    assert_eq!(at(3)["id"]["device"], 0x1041, "virtio-net at 0x3");
    assert_eq!(at(3)["qdev_id"], "net0");
    assert_eq!(at(4)["id"]["device"], 0x1042, "virtio-blk at 0x4");
    assert_eq!(at(4)["qdev_id"], "virtio-disk0");
    assert_eq!(at(4)["class_info"]["desc"], "SCSI controller");
    assert_eq!(at(5)["id"]["device"], 0x1045);
    let regions = at(4)["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{regions:?}");
    assert!(regions.iter().all(|r| r["address"].as_i64().unwrap() > 0));
    qmp.execute("cont", None).unwrap();
    vm.until("the guest's last line", T, |o, _| o.contains("\nDONE"));
    let out = vm.stdout_text();
    check_guest(&out, &data, false);
    // The guest moved the disk's virtio BAR: query-pci follows.
    let moved = output::value(&out, "MOVE")
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .to_string();
    let pci = qmp.execute("query-pci", None).unwrap();
    let blk = pci[0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["slot"] == 4)
        .unwrap()
        .clone();
    let bar4 = blk["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["bar"] == 4)
        .unwrap()["address"]
        .as_i64()
        .unwrap();
    assert_eq!(format!("{bar4:#x}"), moved);
    qmp.execute("quit", None).unwrap();
    vm.wait(T);
}
