//! Tiny x86_64 guests for testing `rvirt-vmm`, built from source (C and GNU
//! assembler in `guests/`) by this crate's build script.
//!
//! Each guest proves one thing by what it prints on COM1, one fact per line
//! as `KEY value...` (numbers in hex with `0x`, or decimal), and then, unless
//! its purpose says otherwise, powers the machine off through ACPI, printing
//! `POWEROFF ...` and `DONE` as its last two lines. See the crate's README
//! for every guest's exact output, and [`output`] for parsing it.
//!
//! ```no_run
//! use rvirt_test_guests::Guest;
//! let kernel = Guest::Hello.path(); // pass as `-kernel`
//! assert!(kernel.exists());
//! ```

use std::path::PathBuf;

mod abi;
pub mod grub;
pub mod image;
pub mod output;

pub use abi::{EXIT_COUNT, EXIT_PORT, TRAMPOLINE_ADDR};
pub use image::{inspect, Format, ImageError, ImageInfo};

/// What the `hello` guest prints (its whole first line).
pub const GREETING: &str = "Hello from the rvirt demo guest!";
/// QEMU's pvpanic ISA port, written with 0x01 by the `panic` guest.
pub const PVPANIC_PORT: u16 = 0x505;
/// QEMU's isa-debug-exit port, written by `oneline` and `exits` (with 0) before they reset.
pub const DEBUG_EXIT_PORT: u16 = 0x501;

/// The boot disk: a raw 1 MiB disk image whose boot sector firmware loads
/// and runs. It prints `MBR real mode` on COM1 from the boot sector, reads
/// the rest of itself through int 13h, enters long mode, prints
/// `MBR long mode, boot drive 0x80` and powers off through ACPI like the
/// other guests (`POWEROFF …`, `DONE`). Give it to a VM as its disk, with
/// no `-kernel`.
pub fn boot_disk() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/guests/boot-disk.img"))
}

/// A boot disk like [`boot_disk`] whose 64-bit part is the
/// [`Guest::Fwcfg`] guest: it prints the fw_cfg files as that guest does
/// (after `MBR real mode`), then powers off.
pub fn fwcfg_disk() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/guests/fwcfg-disk.img"))
}

/// One test guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guest {
    /// PVH: prints [`GREETING`] and powers off (the README's demo).
    Hello,
    /// PVH: prints every `hvm_start_info` memory map entry and the RAM total.
    Memmap,
    /// PVH: prints the command line it was handed, exactly.
    Cmdline,
    /// PVH: prints the initrd's address, size and [`fnv1a32`] checksum.
    Initrd,
    /// PVH: prints the MADT's CPUs and the CPUID topology leaves.
    Cpus,
    /// PVH: starts every MADT AP with INIT-SIPI-SIPI; each prints `AP <id> up`.
    Smp,
    /// PVH: resets through the i8042 (0xFE to port 0x64).
    Reset,
    /// PVH: prints the CMOS date and time as `RTC YYYY-MM-DD HH:MM:SS`.
    Rtc,
    /// ELF64 without the PVH note (64-bit entry): prints the boot_params it was handed.
    Elf64,
    /// bzImage (64-bit entry): as [`Guest::Elf64`], plus the setup header checks.
    BzImage,
    /// PVH: prints `COUNT n` every ~50 ms forever.
    Counter,
    /// PVH: prints `TICK n` every ~2 s forever.
    Ticker,
    /// PVH: writes 0x01 to the pvpanic port [`PVPANIC_PORT`] and halts.
    Panic,
    /// PVH: [`EXIT_COUNT`] writes to [`EXIT_PORT`], prints `EXITS DONE`, then leaves like `Oneline`.
    Exits,
    /// PVH: prints `ONELINE`, then isa-debug-exit, i8042 reset, triple fault.
    Oneline,
    /// PVH: prints 320 KiB of lines as fast as the UART takes them, then
    /// `FLOOD_DONE`, and powers off.
    Flood,
    /// PVH: arms the ACPI fixed power button, waits for a press, prints
    /// whether the SCI reached the PIC, acknowledges and powers off.
    Powerbtn,
    /// PVH: prints `CHAT n` every ~20 ms with the ACPI power button armed;
    /// a press prints `CHAT_POWERBTN` and powers off.
    Chatter,
    /// PVH: a minimal virtio-mmio driver; finds the devices on its command
    /// line, reads 32 bytes from virtio-rng, reads, writes, flushes and
    /// identifies a virtio-blk disk, sends and receives a frame on
    /// virtio-net, writes and echoes a line on virtio-console, and inflates
    /// and deflates the balloon as asked (see the README).
    Virtio,
    /// PVH: enumerates PCI through CF8 and ECAM, walks capabilities,
    /// sizes (and where unassigned assigns) BARs, drives a virtio-blk
    /// through modern virtio-pci with MSI-X seen in the local APIC's IRR,
    /// and moves its BAR (see the README).
    Pci,
    /// PVH: its own polling virtio-net driver (transport in a file of its
    /// own) takes a DHCP lease, prints the address, router and DNS servers,
    /// and sends a UDP datagram to `net.udp=ADDR:PORT` (`router:PORT`: the
    /// lease's router); `net.bench=N` then sends N more from ring 3 (see
    /// the README).
    Dhcp,
    /// `IDLE`, then halted with interrupts off for good (bench/density).
    Idle,
    /// PVH: finds the first 1234:1111 function, sets 800x600x32 through
    /// the Bochs DISPI registers in BAR 2 and draws bands and a box, then
    /// (each step after a byte on COM1) programs an impossible mode and
    /// moves BAR 0, then draws a stripe through the moved BAR (see the
    /// README).
    Display,
    /// PVH: bench/display's guest: 1024x768x32 drawn whole, then a 64x64
    /// box for each byte on COM1 (see the README).
    DisplayBench,
    /// PVH: finds an e1000 on PCI bus 0, reads its MAC from the EEPROM
    /// (EERD and bit-banged EECD) with the checksum, sends a broadcast
    /// frame and waits for one to its MAC, polling (see the README).
    E1000,
    /// PVH: finds an e1000e (82574L) on PCI buses 0-7, reads its MAC from
    /// the EEPROM with the checksum, turns on MSI-X with masked vectors,
    /// sends a broadcast frame and waits for one to its MAC on extended
    /// descriptors, the causes seen in the PBA (see the README).
    E1000e,
    /// PVH: sets up the i8042 as Linux does (printing every answer), then
    /// echoes each byte it delivers as `KBD xx` or `AUX xx` until the
    /// Escape key's release (see the README).
    Ps2,
    /// PVH: drives the virtio-input devices (virtio-mmio) on its command
    /// line: prints their configuration answers, sets Caps Lock through
    /// the status queue and prints each event as `EV dev type code value`
    /// until Escape's release (see the README).
    Vinput,
    /// PVH: finds the i6300esb on PCI (behind bridges too), programs ~96 ms stages on the
    /// 1 MHz scale and enables it; `wdt.keep=MS` pings it that long then
    /// disables it and powers off, else it stops pinging and waits 3 s;
    /// a boot after a watchdog reset clears the flag and powers off;
    /// `wdt.nmi` prints the NMIs it takes (see the README).
    Wdt,
    /// PVH: prints `lpt.msg=WORD` (or a fixed line) through the parallel
    /// port at 0x378 with the BUSY/STROBE handshake (see the README).
    Lpt,
    /// PVH: finds a virtio-scsi function on PCI, prints its queue count,
    /// MSI-X table size and configuration, reads a block on every request
    /// queue and writes one on the last (see the README).
    Scsimq,
    /// PVH: prints the fw_cfg files `etc/smbios/smbios-anchor` and
    /// `etc/smbios/smbios-tables` as `FILE name size` and `HEX` lines
    /// (`FILE name absent` when missing), then `FWCFG DONE`.
    Fwcfg,
    /// PVH: finds a qemu-xhci on PCI bus 0 and drives it as a driver
    /// does, polling: enumerates the USB devices on its ports (port reset,
    /// Enable Slot, Address Device, descriptors, SET_CONFIGURATION,
    /// SET_IDLE, a STALL and its recovery, the interrupt endpoint) and
    /// prints each HID report until `usb.reports=N` (see the README).
    Usb,
    /// PVH: takes NMIs (IDT vector 2, LINT1 in NMI mode; `nmi.masked`:
    /// masked, then unmasked) and prints `NMI n` for each (see the
    /// README).
    Nmi,
    /// PVH: bench/ahci's guest: 4 KiB READ DMA EXTs at random places of
    /// the disk on port 0 of the first AHCI function, one at a time from
    /// ring 3, timed by PHASE lines (see the README).
    AhciBench,
}

impl Guest {
    /// Every guest.
    pub const ALL: [Guest; 35] = [
        Guest::Hello,
        Guest::Memmap,
        Guest::Cmdline,
        Guest::Initrd,
        Guest::Cpus,
        Guest::Smp,
        Guest::Reset,
        Guest::Rtc,
        Guest::Elf64,
        Guest::BzImage,
        Guest::Counter,
        Guest::Ticker,
        Guest::Panic,
        Guest::Exits,
        Guest::Oneline,
        Guest::Flood,
        Guest::Powerbtn,
        Guest::Chatter,
        Guest::Virtio,
        Guest::Pci,
        Guest::Dhcp,
        Guest::Idle,
        Guest::Display,
        Guest::DisplayBench,
        Guest::E1000,
        Guest::E1000e,
        Guest::Ps2,
        Guest::Vinput,
        Guest::Wdt,
        Guest::Lpt,
        Guest::Scsimq,
        Guest::Fwcfg,
        Guest::Usb,
        Guest::Nmi,
        Guest::AhciBench,
    ];

    /// The guest's name, as in the README and the build script.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Hello => "hello",
            Guest::Memmap => "memmap",
            Guest::Cmdline => "cmdline",
            Guest::Initrd => "initrd",
            Guest::Cpus => "cpus",
            Guest::Smp => "smp",
            Guest::Reset => "reset",
            Guest::Rtc => "rtc",
            Guest::Elf64 => "elf64",
            Guest::BzImage => "bzimage",
            Guest::Counter => "counter",
            Guest::Ticker => "ticker",
            Guest::Panic => "panic",
            Guest::Exits => "exits",
            Guest::Oneline => "oneline",
            Guest::Flood => "flood",
            Guest::Powerbtn => "powerbtn",
            Guest::Chatter => "chatter",
            Guest::Virtio => "virtio",
            Guest::Pci => "pci",
            Guest::Dhcp => "dhcp",
            Guest::Idle => "idle",
            Guest::Display => "display",
            Guest::DisplayBench => "displaybench",
            Guest::E1000 => "e1000",
            Guest::E1000e => "e1000e",
            Guest::Ps2 => "ps2",
            Guest::Vinput => "vinput",
            Guest::Wdt => "wdt",
            Guest::Lpt => "lpt",
            Guest::Scsimq => "scsimq",
            Guest::Fwcfg => "fwcfg",
            Guest::Usb => "usb",
            Guest::Nmi => "nmi",
            Guest::AhciBench => "ahcibench",
        }
    }

    /// The boot format the guest's file is in.
    pub fn format(self) -> Format {
        match self {
            Guest::Elf64 => Format::Elf64,
            Guest::BzImage => Format::BzImage,
            _ => Format::PvhElf,
        }
    }

    /// The built guest file (in this crate's `OUT_DIR`).
    pub fn path(self) -> PathBuf {
        let ext = match self.format() {
            Format::BzImage => "bzImage",
            Format::PvhElf | Format::Elf64 => "elf",
        };
        PathBuf::from(concat!(env!("OUT_DIR"), "/guests")).join(format!("{}.{ext}", self.name()))
    }

    /// Whether the guest ends by ACPI power-off after printing `DONE`.
    pub fn powers_off(self) -> bool {
        !matches!(
            self,
            Guest::Reset
                | Guest::Counter
                | Guest::Ticker
                | Guest::Panic
                | Guest::Exits
                | Guest::Oneline
                | Guest::Idle
                | Guest::AhciBench
        )
    }
}

/// A name that is not one of [`Guest::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no test guest is called {0:?}")]
pub struct UnknownGuest(pub String);

impl std::str::FromStr for Guest {
    type Err = UnknownGuest;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Guest::ALL
            .into_iter()
            .find(|g| g.name() == name)
            .ok_or_else(|| UnknownGuest(name.to_owned()))
    }
}

/// FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193, xor then
/// multiply per byte): the checksum the `initrd`, `elf64` and `bzimage`
/// guests print for the initrd. Hand-written because it is four lines and
/// must match the guest's C exactly.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_published_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn names_parse_back() {
        for guest in Guest::ALL {
            assert_eq!(guest.name().parse(), Ok(guest));
        }
        assert_eq!("nope".parse::<Guest>(), Err(UnknownGuest("nope".into())));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Guest::ALL.iter().map(|g| g.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Guest::ALL.len());
    }
}
