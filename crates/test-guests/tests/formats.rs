//! Every guest file exists and is in the format its loader path expects.

use rvirt_test_guests::{inspect, Format, Guest};

#[test]
fn every_guest_is_built_in_its_format() {
    for guest in Guest::ALL {
        let path = guest.path();
        let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let info = inspect(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(info.format, guest.format(), "{}", guest.name());
        // Loaded at 1 MiB, as linux-loader requires (entry >= high memory start).
        assert!(
            (0x10_0000..0x20_0000).contains(&info.entry),
            "{}: entry {:#x}",
            guest.name(),
            info.entry
        );
        match info.format {
            Format::PvhElf => assert_eq!(info.pvh_entry.map(u64::from), Some(info.entry)),
            Format::Elf64 => assert_eq!(info.pvh_entry, None),
            Format::BzImage => {
                assert_eq!(info.entry, 0x10_0200);
                assert_eq!(info.setup_sects, Some(1));
                assert_eq!(info.protocol, Some(0x020c));
                assert_eq!(&file[0x1fe..0x200], &[0x55, 0xaa]);
                // syssize (0x1f4) covers the payload that follows the setup sectors.
                let syssize = u32::from_le_bytes(file[0x1f4..0x1f8].try_into().unwrap());
                assert_eq!(syssize as usize, (file.len() - 1024).div_ceil(16));
            }
        }
        assert!(
            file.len() < 256 * 1024,
            "{} is {} bytes: guests must stay tiny",
            guest.name(),
            file.len()
        );
    }
}

#[test]
fn elf_guests_are_little_endian_x86_64() {
    for guest in Guest::ALL
        .into_iter()
        .filter(|g| g.format() != Format::BzImage)
    {
        let file = std::fs::read(guest.path()).unwrap();
        assert_eq!(&file[..6], b"\x7fELF\x02\x01", "{}", guest.name());
        assert_eq!(
            u16::from_le_bytes([file[0x12], file[0x13]]),
            62,
            "{}",
            guest.name()
        );
    }
}
