//! Loading a kernel and describing the machine to it: ELF vmlinux through the
//! PVH entry (hvm_start_info) or the 64-bit entry (boot_params), and bzImage
//! through the 64-bit boot protocol. linux-loader does the image parsing and
//! writes the structures; this module decides what goes in them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info, XEN_HVM_START_MAGIC_VALUE,
};
use linux_loader::loader::{self, BzImage, Cmdline, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{self, RamLayout};
use crate::regs::EntryMode;

/// Errors loading a kernel.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("could not open '{path}'")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read '{path}'")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{0}' is neither an ELF vmlinux nor a bzImage")]
    UnknownFormat(PathBuf),
    #[error("could not load '{path}'")]
    Load {
        path: PathBuf,
        source: loader::Error,
    },
    #[error("'{0}' is a bzImage without a 64-bit entry point (XLF_KERNEL_64)")]
    No64BitEntry(PathBuf),
    #[error("kernel command line is {len} bytes; the limit is {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("invalid kernel command line: {0}")]
    Cmdline(linux_loader::cmdline::Error),
    #[error("could not open '{path}'")]
    InitrdOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read '{path}'")]
    InitrdRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("initrd '{path}' ({size} bytes) does not fit in guest memory below {limit:#x}")]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("failed to write {0} to guest memory")]
    Write(&'static str),
}

/// Which protocol a kernel is entered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ELF with a XEN_ELFNOTE_PHYS32_ENTRY note.
    Pvh,
    /// ELF without the note: 64-bit entry at e_entry.
    Elf64,
    /// bzImage: 64-bit entry at the payload's start + 0x200.
    BzImage,
}

/// What to boot.
#[derive(Debug, Clone, Default)]
pub struct BootConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

/// Where and how the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPoint {
    pub protocol: Protocol,
    pub mode: EntryMode,
    pub address: u64,
}

/// Where the initrd was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdPlacement {
    pub address: u64,
    pub size: u64,
}

/// Offset of the 64-bit entry point inside a bzImage's protected-mode code.
const BZIMAGE_64BIT_ENTRY: u64 = 0x200;
const XLF_KERNEL_64: u16 = 1 << 0;
/// Linux's x86 COMMAND_LINE_SIZE, used when the kernel does not say.
const DEFAULT_CMDLINE_MAX: usize = 2048;
/// Where initrds may go when the kernel does not say (boot protocol < 2.03).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
const KERNEL_ALIGNMENT: u32 = 0x100_0000;
const BOOT_FLAG: u16 = 0xaa55;
const HDRS: u32 = 0x5372_6448;
/// "Undefined" boot loader type: not one of the registered loader IDs.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;

fn open(path: &Path) -> Result<File, BootError> {
    File::open(path).map_err(|source| BootError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Tells an ELF from a bzImage by their magic numbers.
fn sniff(file: &mut File, path: &Path) -> Result<bool, BootError> {
    let read_err = |source| BootError::Read {
        path: path.to_owned(),
        source,
    };
    let mut elf = [0u8; 4];
    let mut hdrs = [0u8; 4];
    let len = file.metadata().map_err(read_err)?.len();
    if len >= 4 {
        file.read_exact(&mut elf).map_err(read_err)?;
    }
    if &elf == b"\x7fELF" {
        file.rewind().map_err(read_err)?;
        return Ok(true);
    }
    if len >= 0x206 {
        file.seek(SeekFrom::Start(0x202)).map_err(read_err)?;
        file.read_exact(&mut hdrs).map_err(read_err)?;
    }
    file.rewind().map_err(read_err)?;
    if u32::from_le_bytes(hdrs) == HDRS {
        return Ok(false);
    }
    Err(BootError::UnknownFormat(path.to_owned()))
}

/// Loads the kernel, initrd and command line and writes the boot structures.
/// `rsdp` is the guest address of the ACPI RSDP.
pub fn load(
    mem: &GuestMemoryMmap,
    ram: &RamLayout,
    cfg: &BootConfig,
    rsdp: u64,
) -> Result<EntryPoint, BootError> {
    let mut kernel = open(&cfg.kernel)?;
    let is_elf = sniff(&mut kernel, &cfg.kernel)?;
    let load_err = |source| BootError::Load {
        path: cfg.kernel.clone(),
        source,
    };
    let himem = Some(GuestAddress(layout::HIGH_RAM_START));
    let loaded = if is_elf {
        Elf::load(mem, None, &mut kernel, himem).map_err(load_err)?
    } else {
        BzImage::load(mem, None, &mut kernel, himem).map_err(load_err)?
    };

    let (protocol, entry) = match (loaded.setup_header, loaded.pvh_boot_cap) {
        (Some(hdr), _) => {
            if hdr.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(BootError::No64BitEntry(cfg.kernel.clone()));
            }
            (
                Protocol::BzImage,
                loaded.kernel_load.raw_value() + BZIMAGE_64BIT_ENTRY,
            )
        }
        (None, PvhBootCapability::PvhEntryPresent(addr)) => (Protocol::Pvh, addr.raw_value()),
        (None, _) => (Protocol::Elf64, loaded.kernel_load.raw_value()),
    };

    let cmdline_max = match loaded.setup_header {
        Some(h) if h.version >= 0x0206 && h.cmdline_size > 0 => h.cmdline_size as usize + 1,
        _ => DEFAULT_CMDLINE_MAX,
    };
    write_cmdline(mem, &cfg.cmdline, cmdline_max)?;

    let initrd_limit = match loaded.setup_header {
        Some(h) if h.version >= 0x0203 => u64::from(h.initrd_addr_max),
        Some(_) => DEFAULT_INITRD_ADDR_MAX,
        // PVH and the 64-bit ELF entry accept an initrd anywhere in low RAM.
        None => u64::from(u32::MAX),
    };
    let initrd = match &cfg.initrd {
        Some(path) => Some(load_initrd(
            mem,
            ram,
            path,
            loaded.kernel_end,
            initrd_limit,
        )?),
        None => None,
    };

    let cmdline_size = cfg.cmdline.len() as u32 + 1;
    match protocol {
        Protocol::Pvh => write_start_info(mem, ram, initrd, rsdp)?,
        Protocol::Elf64 | Protocol::BzImage => {
            write_zero_page(mem, ram, loaded.setup_header, initrd, cmdline_size, rsdp)?
        }
    }
    let mode = match protocol {
        Protocol::Pvh => EntryMode::Protected32,
        _ => EntryMode::Long64,
    };
    Ok(EntryPoint {
        protocol,
        mode,
        address: entry,
    })
}

fn write_cmdline(mem: &GuestMemoryMmap, text: &str, max: usize) -> Result<(), BootError> {
    let max = max.min(layout::CMDLINE_MAX);
    if text.len() + 1 > max {
        return Err(BootError::CmdlineTooLong {
            len: text.len(),
            max: max - 1,
        });
    }
    let cmdline = Cmdline::try_from(text, max).map_err(BootError::Cmdline)?;
    loader::load_cmdline(mem, GuestAddress(layout::CMDLINE_START), &cmdline)
        .map_err(|_| BootError::Write("the command line"))
}

/// Places the initrd page-aligned at the top of low RAM, below `limit` and
/// above the kernel, where Linux and QEMU put it.
fn load_initrd(
    mem: &GuestMemoryMmap,
    ram: &RamLayout,
    path: &Path,
    kernel_end: u64,
    limit: u64,
) -> Result<InitrdPlacement, BootError> {
    let read_err = |source| BootError::InitrdRead {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(|source| BootError::InitrdOpen {
        path: path.to_owned(),
        source,
    })?;
    let size = file.metadata().map_err(read_err)?.len();
    let top = ram.low.min(limit.saturating_add(1));
    let too_large = || BootError::InitrdTooLarge {
        path: path.to_owned(),
        size,
        limit: top,
    };
    let address = top.checked_sub(size).ok_or_else(too_large)? & !0xfff;
    if address < kernel_end.max(layout::HIGH_RAM_START) {
        return Err(too_large());
    }
    mem.read_exact_volatile_from(GuestAddress(address), &mut file, size as usize)
        .map_err(|_| BootError::Write("the initrd"))?;
    Ok(InitrdPlacement { address, size })
}

/// The hvm_start_info, module list and memory map for the PVH entry.
pub fn start_info(ram: &RamLayout, initrd: Option<InitrdPlacement>, rsdp: u64) -> StartInfo {
    let memmap: Vec<hvm_memmap_table_entry> = ram
        .memory_map()
        .iter()
        .map(|r| hvm_memmap_table_entry {
            addr: r.start,
            size: r.size,
            type_: r.kind,
            reserved: 0,
        })
        .collect();
    let modules: Vec<hvm_modlist_entry> = initrd
        .iter()
        .map(|i| hvm_modlist_entry {
            paddr: i.address,
            size: i.size,
            ..Default::default()
        })
        .collect();
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        flags: 0,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            layout::PVH_MODLIST
        },
        cmdline_paddr: layout::CMDLINE_START,
        rsdp_paddr: rsdp,
        memmap_paddr: layout::PVH_MEMMAP,
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    StartInfo {
        info,
        memmap,
        modules,
    }
}

/// The PVH boot structures.
pub struct StartInfo {
    pub info: hvm_start_info,
    pub memmap: Vec<hvm_memmap_table_entry>,
    pub modules: Vec<hvm_modlist_entry>,
}

fn write_start_info(
    mem: &GuestMemoryMmap,
    ram: &RamLayout,
    initrd: Option<InitrdPlacement>,
    rsdp: u64,
) -> Result<(), BootError> {
    let s = start_info(ram, initrd, rsdp);
    let mut params = BootParams::new(&s.info, GuestAddress(layout::PVH_START_INFO));
    params.set_sections(&s.memmap, GuestAddress(layout::PVH_MEMMAP));
    if !s.modules.is_empty() {
        params.set_modules(&s.modules, GuestAddress(layout::PVH_MODLIST));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|_| BootError::Write("the PVH start info"))
}

/// The Linux zero page. `image_header` is the bzImage's own setup header,
/// kept as the boot protocol asks, with the loader's fields filled in.
pub fn zero_page(
    ram: &RamLayout,
    image_header: Option<setup_header>,
    initrd: Option<InitrdPlacement>,
    cmdline_size: u32,
    rsdp: u64,
) -> boot_params {
    let mut p = boot_params::default();
    if let Some(h) = image_header {
        p.hdr = h;
    }
    p.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    p.hdr.boot_flag = BOOT_FLAG;
    p.hdr.header = HDRS;
    p.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    p.hdr.cmdline_size = cmdline_size;
    if p.hdr.kernel_alignment == 0 {
        p.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    }
    if let Some(i) = initrd {
        p.hdr.ramdisk_image = i.address as u32;
        p.hdr.ramdisk_size = i.size as u32;
        p.ext_ramdisk_image = (i.address >> 32) as u32;
        p.ext_ramdisk_size = (i.size >> 32) as u32;
    }
    p.acpi_rsdp_addr = rsdp;
    let map = ram.memory_map();
    for (slot, r) in p.e820_table.iter_mut().zip(map.iter()) {
        *slot = boot_e820_entry {
            addr: r.start,
            size: r.size,
            r#type: r.kind,
        };
    }
    p.e820_entries = map.len().min(p.e820_table.len()) as u8;
    p
}

fn write_zero_page(
    mem: &GuestMemoryMmap,
    ram: &RamLayout,
    image_header: Option<setup_header>,
    initrd: Option<InitrdPlacement>,
    cmdline_size: u32,
    rsdp: u64,
) -> Result<(), BootError> {
    let p = zero_page(ram, image_header, initrd, cmdline_size, rsdp);
    let params = BootParams::new(&p, GuestAddress(layout::ZERO_PAGE));
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|_| BootError::Write("the zero page"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vm_memory::ByteValued;

    fn mem(ram: &RamLayout) -> GuestMemoryMmap {
        let regions: Vec<(GuestAddress, usize)> = ram
            .regions()
            .iter()
            .map(|&(a, s)| (GuestAddress(a), s as usize))
            .collect();
        GuestMemoryMmap::from_ranges(&regions).unwrap()
    }

    #[test]
    fn start_info_matches_the_pvh_spec() {
        let ram = RamLayout::new(5000 << 20);
        let initrd = InitrdPlacement {
            address: 0x7000_0000,
            size: 1234,
        };
        let s = start_info(&ram, Some(initrd), layout::ACPI_START);
        let i = s.info;
        assert_eq!({ i.magic }, 0x336e_c578);
        assert_eq!({ i.version }, 1);
        assert_eq!({ i.nr_modules }, 1);
        assert_eq!({ i.modlist_paddr }, layout::PVH_MODLIST);
        assert_eq!({ i.cmdline_paddr }, layout::CMDLINE_START);
        assert_eq!({ i.rsdp_paddr }, layout::ACPI_START);
        assert_eq!({ i.memmap_paddr }, layout::PVH_MEMMAP);
        assert_eq!(i.memmap_entries as usize, ram.memory_map().len());
        assert_eq!(std::mem::size_of::<hvm_start_info>(), 56);
        assert_eq!(std::mem::size_of::<hvm_memmap_table_entry>(), 24);
        let top = s.memmap.last().unwrap();
        assert_eq!(
            ({ top.addr }, { top.size }, { top.type_ }),
            (1 << 32, (5000 << 20) - (3 << 30), 1)
        );
        assert_eq!(
            ({ s.modules[0].paddr }, { s.modules[0].size }),
            (0x7000_0000, 1234)
        );
    }

    #[test]
    fn zero_page_matches_the_boot_protocol() {
        let ram = RamLayout::new(128 << 20);
        let initrd = InitrdPlacement {
            address: 0x7ff_f000,
            size: 4096,
        };
        let p = zero_page(&ram, None, Some(initrd), 10, layout::ACPI_START);
        let bytes = p.as_slice();
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        // Offsets from Documentation/arch/x86/zero-page.rst and boot.rst.
        assert_eq!(u64_at(0x070), layout::ACPI_START, "acpi_rsdp_addr");
        assert_eq!(
            bytes[0x1e8] as usize,
            ram.memory_map().len(),
            "e820_entries"
        );
        assert_eq!(u16_at(0x1fe), 0xaa55, "boot_flag");
        assert_eq!(u32_at(0x202), 0x5372_6448, "HdrS");
        assert_eq!(bytes[0x210], 0xff, "type_of_loader");
        assert_eq!(u32_at(0x218), 0x7ff_f000, "ramdisk_image");
        assert_eq!(u32_at(0x21c), 4096, "ramdisk_size");
        assert_eq!(u32_at(0x228), layout::CMDLINE_START as u32, "cmd_line_ptr");
        assert_eq!(u32_at(0x238), 10, "cmdline_size");
        // First e820 entry: 0..EBDA, RAM.
        assert_eq!(
            (u64_at(0x2d0), u64_at(0x2d8), u32_at(0x2e0)),
            (0, layout::EBDA_START, 1)
        );
    }

    #[test]
    fn bzimage_header_fields_are_kept() {
        let hdr = setup_header {
            setup_sects: 27,
            version: 0x020f,
            initrd_addr_max: 0x7fff_ffff,
            xloadflags: 0x7f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let p = zero_page(&RamLayout::new(64 << 20), Some(hdr), None, 1, 0);
        assert_eq!(({ p.hdr.setup_sects }, { p.hdr.version }), (27, 0x020f));
        assert_eq!({ p.hdr.kernel_alignment }, 0x20_0000);
        assert_eq!({ p.hdr.xloadflags }, 0x7f);
        assert_eq!({ p.hdr.type_of_loader }, 0xff);
    }

    #[test]
    fn initrd_goes_to_the_top_of_low_ram() {
        let ram = RamLayout::new(64 << 20);
        let m = mem(&ram);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0xab; 5000]).unwrap();
        let p = load_initrd(&m, &ram, f.path(), 0x20_0000, u64::from(u32::MAX)).unwrap();
        assert_eq!(p.address, ((64 << 20) - 5000) & !0xfff);
        assert_eq!(
            m.read_obj::<u8>(GuestAddress(p.address + 4999)).unwrap(),
            0xab
        );
        // A limit below the kernel leaves no room.
        let e = load_initrd(&m, &ram, f.path(), 0x20_0000, 0x20_0fff).unwrap_err();
        assert!(matches!(e, BootError::InitrdTooLarge { .. }));
    }

    #[test]
    fn rejects_unknown_formats_and_long_cmdlines() {
        let ram = RamLayout::new(16 << 20);
        let m = mem(&ram);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"this is not a kernel").unwrap();
        let cfg = BootConfig {
            kernel: f.path().to_owned(),
            ..Default::default()
        };
        assert!(matches!(
            load(&m, &ram, &cfg, 0),
            Err(BootError::UnknownFormat(_))
        ));
        let long = "a".repeat(DEFAULT_CMDLINE_MAX);
        assert!(matches!(
            write_cmdline(&m, &long, DEFAULT_CMDLINE_MAX),
            Err(BootError::CmdlineTooLong { .. })
        ));
        write_cmdline(&m, "console=ttyS0", DEFAULT_CMDLINE_MAX).unwrap();
        let mut buf = [0u8; 14];
        m.read_slice(&mut buf, GuestAddress(layout::CMDLINE_START))
            .unwrap();
        assert_eq!(&buf, b"console=ttyS0\0");
    }
}
