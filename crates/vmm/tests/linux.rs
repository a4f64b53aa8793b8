//! Debian's stock kernel boots on rvirt-vmm as far as this host allows, and
//! its own boot log is checked: the banner, the command line, the e820 map,
//! the hypervisor and TSC, the ACPI tables, the CPU count and the memory
//! total are Linux's reading of what rvirt hands it.
//!
//! The kernel comes from Debian's registry (scripts/fetch-debian-kernel.sh),
//! cached under the target directory, never from this repository.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{vmm, Spawned};

use rvirt_machine::layout::{RamLayout, E820_RAM};

/// Options for this workplace's emulating host only. Its KVM (the kvm_pvm
/// module) runs guest ring-0 code in an instruction emulator that stops on
/// cmpxchg16b and on xsave/xrstor, so the guest is told not to use them. On
/// real hardware the default machine needs none of this, and it is applied
/// only when that module is loaded.
fn emulating_host() -> Option<(&'static str, &'static str)> {
    std::path::Path::new("/sys/module/kvm_pvm")
        .exists()
        .then_some(("host,-cx16,-xsave", "noxsave"))
}

fn kernel_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debian-kernel");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-debian-kernel.sh");
    // A download from Debian's registry the first time, then a cache hit.
    let out = rvirt_testkit::run(Command::new(script).arg(&dir), Duration::from_secs(240));
    if out.status.success() {
        return Some(dir);
    }
    let why = String::from_utf8_lossy(&out.stderr).into_owned();
    if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("cannot fetch Debian's kernel (RVIRT_REQUIRE_REFERENCE is set): {why}");
    }
    eprintln!("Debian's kernel could not be fetched; the Linux boot test did not run: {why}");
    None
}

/// Whether a complete line of `console` (one whose newline has arrived)
/// contains `text`.
fn has_line(console: &str, text: &str) -> bool {
    let complete = match console.rfind('\n') {
        Some(end) => &console[..end],
        None => "",
    };
    complete
        .lines()
        .any(|l| l.contains(text.trim_end_matches('\n')))
}

struct Expect {
    mem_mib: u64,
    smp: &'static str,
    /// More options (devices).
    extra: Vec<String>,
    /// Lines that must appear before the bound.
    required: Vec<String>,
    /// Whether `Memory:` must be checked if it appears.
    memory: bool,
    bound: Duration,
}

const FORBIDDEN: &[&str] = &[
    "Incorrect checksum",
    "ACPI BIOS Error",
    "ACPI BIOS Warning",
    "ACPI Error",
    "ACPI Warning",
    "Firmware Bug",
    "BIOS bug",
    "WARNING:",
    "Call Trace",
];

fn parse_hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// The usable ranges of the `BIOS-e820` lines, as (start, end inclusive).
fn e820_usable(console: &str) -> Vec<(u64, u64)> {
    console
        .lines()
        .filter(|l| l.contains("BIOS-e820: [mem ") && l.trim_end().ends_with("usable"))
        .map(|l| {
            let range = l.split("[mem ").nth(1).unwrap().split(']').next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (parse_hex(a), parse_hex(b))
        })
        .collect()
}

/// What Linux reports as its RAM total in `Memory: …K/<total>K`: whole
/// pages of the usable ranges, less page 0, which Linux always reserves.
fn expected_memory_kib(ram: &RamLayout) -> u64 {
    let pages: u64 = ram
        .memory_map()
        .iter()
        .filter(|r| r.kind == E820_RAM)
        .map(|r| (r.start + r.size) / 4096 - r.start.div_ceil(4096))
        .sum();
    (pages - 1) * 4
}

/// One kernel boot at a time: each is a single emulated vCPU that wants a
/// whole host core, and the bounds below assume it has one. (This lock
/// holds within one process; under cargo nextest, .config/nextest.toml's
/// test group does the same across processes.)
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn boot_linux(kernel: &str, e: Expect) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dir) = kernel_dir() else { return };
    let (cpu, extra_append) = emulating_host().unwrap_or(("host", ""));
    let append = format!("console=ttyS0 earlyprintk=ttyS0 {extra_append}")
        .trim()
        .to_string();
    let mem = e.mem_mib.to_string();
    let mut child = Spawned::start(
        common::die_with_test(&mut Command::new(vmm()))
            .args([
                "-m", &mem, "-smp", e.smp, "-cpu", cpu, "-serial", "stdio", "-append", &append,
                "-kernel",
            ])
            .arg(dir.join(kernel))
            .args(&e.extra)
            .stdin(Stdio::null()),
    );
    let start = Instant::now();
    // The serial console ends lines with CR LF.
    let console = |c: &Spawned| c.stdout_text().replace('\r', "");
    let mut banner_at = None;
    // Done when every required line is complete (its newline has arrived)
    // and, where asked, the whole `Memory:` line too. The bound is not a
    // failure by itself: what arrived by then is checked below.
    let done = |c: &str| {
        e.required.iter().all(|l| has_line(c, l)) && (!e.memory || has_line(c, "] Memory: "))
    };
    while start.elapsed() < e.bound && !done(&console(&child)) && child.try_wait().is_none() {
        if banner_at.is_none() && console(&child).contains("Linux version ") {
            banner_at = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = start.elapsed();
    child.kill();
    let status = child.wait(Duration::from_secs(10));
    let console = console(&child);
    let stderr = child.stderr_text();
    let tail: String = {
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    };
    let report = |what: &str| {
        format!(
            "{what} after {elapsed:?} ({status}); rvirt-vmm said: {stderr}\nconsole tail:\n{tail}"
        )
    };
    eprintln!(
        "{kernel} -m {} -smp {}: banner after {banner_at:?}, {} lines in {elapsed:?}",
        e.mem_mib,
        e.smp,
        console.lines().count()
    );

    for line in &e.required {
        assert!(
            has_line(&console, line),
            "{}",
            report(&format!("missing '{line}'"))
        );
    }
    // Exactly what -append passed, nothing added (no virtio devices here).
    let cmd = console
        .lines()
        .find_map(|l| l.split("] Command line: ").nth(1));
    assert_eq!(cmd, Some(append.as_str()), "{}", report("command line"));
    for bad in FORBIDDEN {
        if let Some(l) = console.lines().find(|l| l.contains(bad)) {
            panic!("{}", report(&format!("forbidden line: {l}")));
        }
    }
    let ram = RamLayout::new(e.mem_mib << 20);
    let want: Vec<(u64, u64)> = ram
        .memory_map()
        .iter()
        .filter(|r| r.kind == E820_RAM)
        .map(|r| (r.start, r.start + r.size - 1))
        .collect();
    assert_eq!(
        e820_usable(&console),
        want,
        "{}",
        report("e820 differs from rvirt's layout")
    );
    if let Some(line) = console.lines().find(|l| l.contains("] Memory: ")) {
        let total = line
            .split('/')
            .nth(1)
            .and_then(|t| t.split('K').next())
            .unwrap();
        assert_eq!(
            total.parse::<u64>().unwrap(),
            expected_memory_kib(&ram),
            "{line}"
        );
    } else if e.memory {
        eprintln!(
            "{kernel}: the run did not reach 'Memory:' within {:?}",
            e.bound
        );
    }
}

fn pvh_expect(mem_mib: u64, cpus: u32, smp: &'static str) -> Expect {
    let extra = emulating_host().map_or("", |e| e.1);
    let cmdline = format!(
        "Command line: {}",
        format!("console=ttyS0 earlyprintk=ttyS0 {extra}").trim()
    );
    Expect {
        mem_mib,
        smp,
        extra: Vec::new(),
        required: vec![
            "Linux version ".into(),
            cmdline,
            "BIOS-e820: ".into(),
            "Hypervisor detected: KVM".into(),
            "tsc: Detected ".into(),
            "ACPI: RSDP 0x00000000000E0000".into(),
            "ACPI: XSDT ".into(),
            "ACPI: FACP ".into(),
            "ACPI: DSDT ".into(),
            "ACPI: APIC ".into(),
            format!("smpboot: Allowing {cpus} CPUs, 0 hotplug CPUs"),
        ],
        memory: true,
        bound: Duration::from_secs(150),
    }
}

#[test]
fn debian_vmlinux_through_pvh_512m_2_cpus() {
    boot_linux("vmlinux", pvh_expect(512, 2, "2"));
}

/// `pc` with virtio-pci devices on its root bus (MSI-X, BARs placed by
/// rvirt as firmware would): the early boot is as clean, and as far as
/// the kernel gets its PCI scan finds them.
#[test]
fn debian_vmlinux_on_pc_with_pci_devices() {
    let disk = tempfile::NamedTempFile::new().unwrap();
    disk.as_file().set_len(1 << 20).unwrap();
    let mut e = pvh_expect(512, 2, "2");
    e.extra = [
        "-machine",
        "pc-i440fx-7.2",
        "-drive",
        &format!("file={},format=raw,if=none,id=d0", disk.path().display()),
        "-device",
        "virtio-blk-pci,drive=d0,bus=pci.0,addr=0x4",
        "-object",
        "rng-random,id=r0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=r0,bus=pci.0,addr=0x5",
        "-device",
        "virtio-balloon-pci,bus=pci.0,addr=0x6",
    ]
    .map(String::from)
    .to_vec();
    boot_linux("vmlinux", e);
}

#[test]
fn debian_vmlinux_through_pvh_5000m_4_cpus() {
    let mut e = pvh_expect(5000, 4, "4,sockets=2,cores=2,threads=1");
    // Linux initialises a struct page per 4 KiB before it reads the MADT;
    // emulated, ten times the memory takes about ten times as long.
    e.bound = Duration::from_secs(300);
    e.memory = false;
    boot_linux("vmlinux", e);
}

#[test]
fn debian_bzimage_through_the_64bit_boot_protocol() {
    let mut e = pvh_expect(512, 2, "2");
    // The kernel's own LZ4 decompressor runs first, emulated and silent.
    // Banner, command line, the e820 map, and the line after the map.
    e.required.truncate(4);
    e.memory = false;
    e.bound = Duration::from_secs(300);
    boot_linux("vmlinuz", e);
}
