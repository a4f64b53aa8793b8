//! The guests load through linux-loader (the loader rvirt-vmm uses) in the
//! format each is meant for.

use std::fs::File;

use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{BzImage, KernelLoader};
use rvirt_test_guests::{Format, Guest};
use vm_memory::{GuestAddress, GuestMemoryMmap};

const HIMEM_START: GuestAddress = GuestAddress(0x10_0000);

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).expect("64 MiB of guest memory")
}

#[test]
fn elf_guests_load_with_or_without_the_pvh_entry() {
    let mem = memory();
    for guest in Guest::ALL
        .into_iter()
        .filter(|g| g.format() != Format::BzImage)
    {
        let mut file = File::open(guest.path()).expect("guest file");
        let loaded = Elf::load(&mem, None, &mut file, Some(HIMEM_START))
            .unwrap_or_else(|e| panic!("{}: {e}", guest.name()));
        assert!(
            loaded.kernel_end < 0x20_0000,
            "{}: ends at {:#x}",
            guest.name(),
            loaded.kernel_end
        );
        match guest.format() {
            Format::PvhElf => assert_eq!(
                loaded.pvh_boot_cap,
                PvhBootCapability::PvhEntryPresent(GuestAddress(0x10_0000)),
                "{}",
                guest.name()
            ),
            _ => {
                // No PT_NOTE at all: linux-loader reports the default, "ignored".
                assert!(
                    !matches!(loaded.pvh_boot_cap, PvhBootCapability::PvhEntryPresent(_)),
                    "{}: {:?}",
                    guest.name(),
                    loaded.pvh_boot_cap
                );
                assert_eq!(loaded.kernel_load, GuestAddress(0x10_0200), "64-bit entry");
            }
        }
    }
}

#[test]
fn bzimage_loads_at_one_mib_with_its_setup_header() {
    let mem = memory();
    let mut file = File::open(Guest::BzImage.path()).expect("bzImage");
    let loaded = BzImage::load(&mem, None, &mut file, Some(HIMEM_START)).expect("bzImage loads");
    assert_eq!(loaded.kernel_load, GuestAddress(0x10_0000));
    let hdr = loaded.setup_header.expect("a bzImage has a setup header");
    let (sects, version, xloadflags) = (hdr.setup_sects, hdr.version, hdr.xloadflags);
    assert_eq!((sects, version, xloadflags & 1), (1, 0x020c, 1));
    assert_eq!({ hdr.boot_flag }, 0xaa55);
}
