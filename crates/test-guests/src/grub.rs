//! A real GRUB disk, built unprivileged from Debian packages only
//! (`grub-pc-bin`, `e2fsprogs`): an MBR partition table with one ext2
//! partition holding a kernel and `grub.cfg`, GRUB's i386-pc boot sector
//! in the MBR and its core image in the gap before the partition, as
//! `grub-install` lays them out on a BIOS disk.
//!
//! `grub-install` needs the disk as a block device (a loop device, root);
//! its two steps are done here by hand instead: `grub-mkimage` builds the
//! core image, and the boot sector's defaults already point where it goes
//! (boot.img loads sector 1, whose diskboot.img loads sectors 2.., the
//! lengths filled in by grub-mkimage), so nothing in either is patched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where Debian's `grub-pc-bin` installs GRUB's i386-pc images and modules.
pub const GRUB_I386_PC: &str = "/usr/lib/grub/i386-pc";

/// The first partition starts at 1 MiB, as partitioning tools put it; GRUB's
/// core image lives in the sectors before it.
const PART_START_LBA: u64 = 2048;
const SECTOR: u64 = 512;
/// boot.img's code ends where the MBR's disk signature begins.
const MBR_CODE_END: usize = 0x1b8;
const PART_TABLE: usize = 0x1be;

/// The modules built into the core image: enough to read the partition,
/// run `grub.cfg` on the serial console and load a Linux bzImage.
const MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "ext2",
    "normal",
    "configfile",
    "echo",
    "serial",
    "terminal",
    "linux",
];

/// Why the disk could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrubError {
    #[error("GRUB for i386-pc is not installed ({GRUB_I386_PC}: install grub-pc-bin)")]
    NoGrub,
    #[error("{0} failed: {1}")]
    Tool(&'static str, String),
    #[error("GRUB's core image is {0} bytes, more than the gap before the partition")]
    CoreTooLarge(usize),
    #[error("i/o on {0}")]
    Io(PathBuf, #[source] std::io::Error),
}

/// Whether GRUB's i386-pc files are installed.
pub fn grub_available() -> bool {
    Path::new(GRUB_I386_PC).join("boot.img").exists()
}

fn tool(name: &'static str, cmd: &mut Command) -> Result<(), GrubError> {
    let out = rvirt_testkit::try_run(cmd, Duration::from_secs(120))
        .map_err(|e| GrubError::Tool(name, e.to_string()))?;
    if !out.status.success() {
        return Err(GrubError::Tool(
            name,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Builds `out`: a raw disk whose first partition (ext2) holds
/// `/boot/vmlinuz` (a copy of `kernel`) and `/boot/grub/grub.cfg` (`cfg`),
/// booted by GRUB from the MBR. `work` is a scratch directory.
pub fn build_grub_disk(kernel: &Path, cfg: &str, work: &Path, out: &Path) -> Result<(), GrubError> {
    if !grub_available() {
        return Err(GrubError::NoGrub);
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| GrubError::Io(p, e)
    };
    let tree = work.join("tree");
    let grub_dir = tree.join("boot/grub");
    std::fs::create_dir_all(&grub_dir).map_err(io(&grub_dir))?;
    let vmlinuz = tree.join("boot/vmlinuz");
    std::fs::copy(kernel, &vmlinuz).map_err(io(&vmlinuz))?;
    let cfg_path = grub_dir.join("grub.cfg");
    std::fs::write(&cfg_path, cfg).map_err(io(&cfg_path))?;

    // The file system from the tree, unprivileged (mkfs.ext2 -d); 4 KiB
    // blocks so GRUB reads the kernel in few, large pieces.
    let kernel_len = std::fs::metadata(kernel).map_err(io(kernel))?.len();
    let part_mib = kernel_len / (1 << 20) + 8;
    let part = work.join("part.img");
    let _ = std::fs::remove_file(&part);
    tool(
        "mkfs.ext2",
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", "4096", "-L", "rvirtboot", "-d"])
            .arg(&tree)
            .arg(&part)
            .arg(format!("{part_mib}M")),
    )?;
    let core = work.join("core.img");
    tool(
        "grub-mkimage",
        Command::new("grub-mkimage")
            .args([
                "-O",
                "i386-pc",
                "-d",
                GRUB_I386_PC,
                "-p",
                "(hd0,msdos1)/boot/grub",
            ])
            .arg("-o")
            .arg(&core)
            .args(MODULES),
    )?;

    let boot = std::fs::read(Path::new(GRUB_I386_PC).join("boot.img"))
        .map_err(io(&Path::new(GRUB_I386_PC).join("boot.img")))?;
    let core = std::fs::read(&core).map_err(io(&core))?;
    let part = std::fs::read(&part).map_err(io(&part))?;
    let gap = ((PART_START_LBA - 1) * SECTOR) as usize;
    if core.len() > gap {
        return Err(GrubError::CoreTooLarge(core.len()));
    }
    let mut disk = vec![0u8; (PART_START_LBA * SECTOR) as usize];
    disk[..MBR_CODE_END].copy_from_slice(&boot[..MBR_CODE_END]);
    // Partition 1: active, Linux (0x83), by LBA (the CHS fields say
    // "beyond 1024 cylinders", as for any disk partitioned by LBA).
    let sectors = (part.len() as u64 / SECTOR) as u32;
    let entry = &mut disk[PART_TABLE..PART_TABLE + 16];
    entry[0] = 0x80;
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[4] = 0x83;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&(PART_START_LBA as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk[SECTOR as usize..SECTOR as usize + core.len()].copy_from_slice(&core);
    disk.extend_from_slice(&part);
    std::fs::write(out, &disk).map_err(io(out))
}
