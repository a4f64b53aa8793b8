//! Builds the test guests in `guests/` with the system gcc and GNU binutils
//! into `$OUT_DIR/guests/`. Nothing beyond Debian's gcc/binutils is needed.
//!
//! A failing tool is a broken checkout or toolchain, so this script panics
//! with the tool's own output, which is how cargo reports build-script errors.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod abi {
    include!("src/abi.rs");
}

/// How a guest is entered, which decides its entry stub and file format.
#[derive(Clone, Copy)]
enum Kind {
    /// ELF64 with the Xen PVH note, 32-bit entry.
    Pvh,
    /// ELF64 without the note, 64-bit Linux boot protocol entry.
    Elf64,
    /// bzImage: setup sectors + the 64-bit payload.
    BzImage,
}

/// (guest name, C source in guests/, kind, extra gcc flags).
const GUESTS: &[(&str, &str, Kind, &[&str])] = &[
    ("hello", "hello.c", Kind::Pvh, &[]),
    ("memmap", "memmap.c", Kind::Pvh, &[]),
    ("cmdline", "cmdline.c", Kind::Pvh, &[]),
    ("initrd", "initrd.c", Kind::Pvh, &[]),
    ("cpus", "cpus.c", Kind::Pvh, &[]),
    ("smp", "smp.c", Kind::Pvh, &[]),
    ("reset", "reset.c", Kind::Pvh, &[]),
    ("rtc", "rtc.c", Kind::Pvh, &[]),
    ("elf64", "linux.c", Kind::Elf64, &[]),
    ("bzimage", "linux.c", Kind::BzImage, &["-DBZIMAGE"]),
    ("counter", "counter.c", Kind::Pvh, &[]),
    ("ticker", "ticker.c", Kind::Pvh, &[]),
    ("panic", "panic.c", Kind::Pvh, &[]),
    ("exits", "exits.c", Kind::Pvh, &[]),
    ("oneline", "oneline.c", Kind::Pvh, &[]),
    ("flood", "flood.c", Kind::Pvh, &[]),
    ("powerbtn", "powerbtn.c", Kind::Pvh, &[]),
    ("chatter", "chatter.c", Kind::Pvh, &[]),
    ("virtio", "virtio.c", Kind::Pvh, &[]),
    ("blkbench", "blkbench.c", Kind::Pvh, &[]),
    ("pci", "pci.c", Kind::Pvh, &[]),
    ("dhcp", "dhcp.c", Kind::Pvh, &[]),
    ("idle", "idle.c", Kind::Pvh, &[]),
    ("display", "display.c", Kind::Pvh, &[]),
    ("displaybench", "displaybench.c", Kind::Pvh, &[]),
    ("e1000", "e1000.c", Kind::Pvh, &[]),
    ("e1000e", "e1000e.c", Kind::Pvh, &[]),
    ("ps2", "ps2.c", Kind::Pvh, &[]),
    ("vinput", "vinput.c", Kind::Pvh, &[]),
    ("wdt", "wdt.c", Kind::Pvh, &[]),
    ("lpt", "lpt.c", Kind::Pvh, &[]),
    ("scsimq", "scsimq.c", Kind::Pvh, &[]),
    ("fwcfg", "fwcfg.c", Kind::Pvh, &[]),
    ("usb", "usb.c", Kind::Pvh, &[]),
    ("nmi", "nmi.c", Kind::Pvh, &[]),
    ("ahcibench", "ahcibench.c", Kind::Pvh, &[]),
];

/// Sources in `guests/` some guests link besides their own and the runtime:
/// the network guests' driver, with its transport in a file of its own.
const GUEST_SOURCES: &[(&str, &[&str])] = &[
    (
        "dhcp",
        &["net/vdev_mmio.c", "net/vdev_pci.c", "net/netif.c"],
    ),
    ("vinput", &["net/vdev_mmio.c", "net/vdev_pci.c"]),
    ("scsimq", &["net/vdev_mmio.c", "net/vdev_pci.c"]),
    // The NMI handler and its IDT.
    ("nmi", &["rt/nmi.c"]),
    ("wdt", &["rt/nmi.c"]),
];

/// Runtime sources linked into every guest.
const RT: &[&str] = &["console.c", "acpi.c", "hw.c", "madt.c", "fnv.c", "ring3.c"];

const CFLAGS: &[&str] = &[
    "-m64",
    "-std=gnu11",
    "-ffreestanding",
    "-nostdlib",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-Os",
    "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none",
    // The guests read fixed physical addresses (0x40e, 0xe0000...) on purpose.
    "--param=min-pagesize=0",
    "-Wall",
    "-Wextra",
];

const LDFLAGS: &[&str] = &[
    "-m",
    "elf_x86_64",
    "-nostdlib",
    "-static",
    "--build-id=none",
    "-z",
    "max-page-size=4096",
    "-z",
    "noexecstack",
    "--no-warn-rwx-segments",
];

/// Where the bzImage payload is linked (code32_start).
const PAYLOAD_BASE: u64 = 0x10_0000;

fn main() {
    let src =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("guests");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests");
    let obj = out.join("obj");
    fs::create_dir_all(&obj).expect("create $OUT_DIR/guests/obj");
    println!("cargo:rerun-if-changed=guests");
    println!("cargo:rerun-if-changed=src/abi.rs");

    let defines = [
        format!("-DEXIT_PORT={:#x}", abi::EXIT_PORT),
        format!("-DEXIT_COUNT={}", abi::EXIT_COUNT),
        format!("-DTRAMPOLINE_ADDR={:#x}u", abi::TRAMPOLINE_ADDR),
    ];
    let cc = |source: &Path, object: &Path, extra: &[&str]| {
        let mut cmd = Command::new("gcc");
        cmd.args(CFLAGS).args(&defines).args(extra);
        cmd.arg("-I").arg(&src).arg("-I").arg(src.join("entry"));
        cmd.arg("-c").arg(source).arg("-o").arg(object);
        run(&mut cmd);
    };

    let rt: Vec<PathBuf> = RT
        .iter()
        .map(|f| {
            let o = obj.join(f.replace(".c", ".o"));
            cc(&src.join("rt").join(f), &o, &[]);
            o
        })
        .collect();
    let one = |dir: &str, file: &str| {
        let o = obj.join(file.replace(['.'], "_") + ".o");
        cc(&src.join(dir).join(file), &o, &[]);
        o
    };
    let paging = one("entry", "paging.S");
    let pvh = one("entry", "pvh.S");
    let linux64 = one("entry", "linux64.S");
    let start_pvh = one("rt", "start_pvh.c");
    let start_linux = one("rt", "start_linux.c");

    for &(name, source, kind, extra) in GUESTS {
        let main_obj = obj.join(format!("{name}.o"));
        cc(&src.join(source), &main_obj, extra);
        let sources: Vec<PathBuf> = GUEST_SOURCES
            .iter()
            .filter(|(guest, _)| *guest == name)
            .flat_map(|(_, files)| files.iter())
            .map(|f| {
                let o = obj.join(format!("{name}-{}.o", f.replace(['/', '.'], "_")));
                cc(&src.join(f), &o, extra);
                o
            })
            .collect();
        let (script, entry_objs) = match kind {
            Kind::Pvh => ("pvh.ld", [&pvh, &start_pvh]),
            Kind::Elf64 | Kind::BzImage => ("linux.ld", [&linux64, &start_linux]),
        };
        let elf = match kind {
            Kind::BzImage => obj.join(format!("{name}-payload.elf")),
            _ => out.join(format!("{name}.elf")),
        };
        let mut ld = Command::new("ld");
        ld.args(LDFLAGS)
            .arg("-T")
            .arg(src.join(script))
            .arg("-o")
            .arg(&elf);
        ld.args(entry_objs)
            .arg(&paging)
            .args(&rt)
            .arg(&main_obj)
            .args(&sources);
        run(&mut ld);
        if let Kind::BzImage = kind {
            build_bzimage(
                &src,
                &obj,
                &elf,
                &out.join(format!("{name}.bzImage")),
                &defines,
            );
        }
    }

    // The boot disk: a boot sector and the 64-bit runtime behind it, as a
    // flat image padded to 1 MiB (a disk firmware boots from).
    let mbr_entry = one("entry", "mbr.S");
    let disk = |c: &str, defines: &[&str], name: &str| {
        let main = obj.join(format!("{name}.o"));
        cc(&src.join(c), &main, defines);
        let elf = obj.join(format!("{name}.elf"));
        let mut ld = Command::new("ld");
        ld.args(LDFLAGS)
            .arg("-T")
            .arg(src.join("mbr.ld"))
            .arg("-o")
            .arg(&elf);
        ld.arg(&mbr_entry).arg(&paging).args(&rt).arg(&main);
        run(&mut ld);
        let bin = obj.join(format!("{name}.bin"));
        run(Command::new("objcopy")
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(&bin));
        let mut disk = fs::read(&bin).expect("read the boot disk's binary");
        assert_eq!(&disk[510..512], &[0x55, 0xaa], "boot signature at 510");
        disk.resize(1 << 20, 0);
        fs::write(out.join(format!("{name}.img")), disk).expect("write the boot disk");
    };
    disk("mbr.c", &[], "boot-disk");
    // The fwcfg guest behind the same boot sector: what fw_cfg serves
    // firmware, read after firmware booted (rvirt serves it only then).
    disk("fwcfg.c", &["-DMBR"], "fwcfg-disk");
}

/// Assembles the setup sectors and appends the flat payload, patching the
/// header fields that depend on the payload's size.
fn build_bzimage(src: &Path, obj: &Path, payload_elf: &Path, image: &Path, defines: &[String]) {
    let setup_o = obj.join("setup.o");
    let setup_bin = obj.join("setup.bin");
    let payload_bin = obj.join("payload.bin");
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(defines)
        .arg("-c")
        .arg(src.join("entry/setup.S"))
        .arg("-o")
        .arg(&setup_o));
    run(Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-Ttext=0",
            "-e",
            "_start",
            "--oformat=binary",
        ])
        .arg("-o")
        .arg(&setup_bin)
        .arg(&setup_o));
    run(Command::new("objcopy")
        .args(["-O", "binary"])
        .arg(payload_elf)
        .arg(&payload_bin));

    let mut setup = fs::read(&setup_bin).expect("read setup.bin");
    let payload = fs::read(&payload_bin).expect("read payload.bin");
    let setup_sects = usize::from(setup[0x1f1]);
    assert_eq!(
        setup.len(),
        (setup_sects + 1) * 512,
        "setup.S must fill exactly its setup sectors"
    );
    let syssize = u32::try_from(payload.len().div_ceil(16)).expect("payload fits the header");
    setup[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    // init_size covers .bss and the stacks too, which the flat file omits.
    let memsz = load_end(&fs::read(payload_elf).expect("read payload ELF")) - PAYLOAD_BASE;
    let init_size = u32::try_from(memsz).expect("payload fits 4 GiB");
    setup[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
    setup.extend_from_slice(&payload);
    fs::write(image, setup).expect("write bzImage");
}

/// Highest p_paddr + p_memsz over the PT_LOAD program headers of an ELF64 file.
fn load_end(elf: &[u8]) -> u64 {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes"));
    let phoff = usize::try_from(u64_at(0x20)).expect("small ELF");
    let (phentsize, phnum) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| elf[ph..ph + 4] == 1u32.to_le_bytes())
        .map(|ph| u64_at(ph + 0x18) + u64_at(ph + 0x28))
        .max()
        .expect("payload has a PT_LOAD segment")
}

/// Runs a tool, forwarding its warnings and failing the build on error.
fn run(cmd: &mut Command) {
    let output = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e} (install gcc and binutils)",
            cmd.get_program()
        )
    });
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        println!("cargo:warning={line}");
    }
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
