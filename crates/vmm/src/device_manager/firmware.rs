//! What firmware reads through fw_cfg, assembled from the configuration
//! and the booted machine, as QEMU's x86 machines serve it: the legacy keys
//! SeaBIOS reads (RAM size, CPUs, NUMA, boot menu, no graphics), and the
//! files `etc/e820`, `etc/acpi/tables` + `etc/acpi/rsdp` + `etc/table-loader`
//! (rvirt's ACPI tables, linked by the firmware), `bootorder`,
//! `etc/boot-fail-wait`, `etc/boot-menu-wait`, QEMU's default SMBIOS
//! structures (`etc/smbios/smbios-anchor`, `etc/smbios/smbios-tables`) and
//! the `-fw_cfg` items.
//! SeaBIOS reads `etc/show-boot-menu` from the legacy boot-menu key, as on
//! QEMU.

use rvirt_devices::fw_cfg::loader::{self, Command, Zone};
use std::sync::Arc;

use rvirt_devices::fw_cfg::{e820_entry, keys, FwCfg, FwCfgBuilder, FwCfgError};
use rvirt_machine::acpi::{AcpiConfig, Blob, LinkedTables};
use rvirt_machine::smbios::{SmbiosConfig, SmbiosTables};
use rvirt_machine::FirmwareTables;
use rvirt_vmm_config::{Chipset, FwCfgSource, PciAddr, PciBus, VmConfig};

/// QEMU's names for the ACPI blobs and the loader script.
pub(crate) const ACPI_TABLES_FILE: &str = "etc/acpi/tables";
pub(crate) const ACPI_RSDP_FILE: &str = "etc/acpi/rsdp";
pub(crate) const TABLE_LOADER_FILE: &str = "etc/table-loader";

/// Errors assembling the items (each names its `-fw_cfg` item or file).
#[derive(Debug, thiserror::Error)]
pub enum FirmwareItemsError {
    #[error("could not read '{path}'")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Item(#[from] FwCfgError),
}

/// A boot device's firmware path, and the index that orders it.
pub(crate) struct BootDevice {
    pub(crate) index: u32,
    pub(crate) path: String,
}

/// QEMU's firmware path of a virtio device at `addr` with `name` under it
/// (`/pci@i0cf8/scsi@4/disk@0,0`; behind a root port
/// `/pci@i0cf8/pci-bridge@1c/scsi@0/disk@0,0`): SeaBIOS matches its own
/// path of the function against it, with the device's kind left out.
pub(crate) fn pci_boot_path(cfg: &VmConfig, addr: PciAddr, name: &str) -> String {
    // QEMU names a PCI node by its class: mass storage is `scsi`, a NIC
    // `ethernet`, whose PHY is the boot device.
    let (node, leaf) = match name {
        n if n.starts_with("ethernet") => ("ethernet", "ethernet-phy@0"),
        n => ("scsi", n),
    };
    pci_path(cfg, addr, node, leaf)
}

/// QEMU's firmware path of `leaf` under the PCI function at `addr` named
/// `node`, through the root ports above it.
pub(crate) fn pci_path(cfg: &VmConfig, addr: PciAddr, node: &str, leaf: &str) -> String {
    let mut path = format!("/{}/{leaf}", node_name(node, addr));
    let mut bus = addr.bus;
    // Root ports sit on the root bus, but follow the chain whatever it is;
    // the parser keeps the indices in range and acyclic.
    for _ in 0..cfg.root_ports.len() {
        let PciBus::Port(i) = bus else { break };
        let Some(port) = cfg.root_ports.get(i) else {
            break;
        };
        path = format!("/{}{path}", node_name("pci-bridge", port.addr));
        bus = port.addr.bus;
    }
    format!("/pci@i0cf8{path}")
}

/// `NAME@SLOT[,FUNCTION]`, as QEMU and SeaBIOS spell a PCI node.
fn node_name(name: &str, addr: PciAddr) -> String {
    match addr.function {
        0 => format!("{name}@{:x}", addr.slot),
        f => format!("{name}@{:x},{f:x}", addr.slot),
    }
}

/// The `bootorder` file: device paths by boot index, one a line, NUL
/// terminated, with `HALT` last under `-boot strict=on` (QEMU's format).
pub(crate) fn bootorder(devices: &mut [BootDevice], strict: bool) -> Vec<u8> {
    devices.sort_by_key(|d| d.index);
    let mut lines: Vec<&str> = devices.iter().map(|d| d.path.as_str()).collect();
    if strict && !lines.is_empty() {
        lines.push("HALT");
    }
    if lines.is_empty() {
        return Vec::new();
    }
    let mut out = lines.join("\n").into_bytes();
    out.push(0);
    out
}

/// The loader script for `tables`: allocate both blobs (the tables in high
/// memory, 64-byte aligned for the FACS; the RSDP in the F segment), then
/// every pointer, then every checksum.
pub(crate) fn table_loader(tables: &LinkedTables) -> Vec<u8> {
    let name = |b: Blob| match b {
        Blob::Rsdp => ACPI_RSDP_FILE.to_string(),
        Blob::Tables => ACPI_TABLES_FILE.to_string(),
    };
    let mut commands = vec![
        Command::Allocate {
            file: ACPI_TABLES_FILE.into(),
            align: rvirt_machine::acpi::TABLES_ALIGN as u32,
            zone: Zone::High,
        },
        Command::Allocate {
            file: ACPI_RSDP_FILE.into(),
            align: rvirt_machine::acpi::RSDP_ALIGN as u32,
            zone: Zone::FSeg,
        },
    ];
    commands.extend(tables.pointers.iter().map(|p| Command::AddPointer {
        dest: name(p.blob),
        src: name(p.target),
        offset: p.offset,
        size: p.size,
    }));
    commands.extend(tables.checksums.iter().map(|c| Command::AddChecksum {
        file: name(c.blob),
        offset: c.offset,
        start: c.start,
        length: c.len,
    }));
    loader::encode(&commands)
}

/// What the ACPI tables blob is padded to a multiple of, as QEMU's
/// `ACPI_BUILD_TABLE_SIZE`: firmware learns the files' sizes from the
/// directory before they are rebuilt ([`acpi_files`] on first read), so a
/// rebuild that grows a table by a few bytes keeps the blob's size.
pub(crate) const ACPI_TABLES_PAD: usize = 0x2_0000;

/// The three ACPI files for `tables`: the tables blob (padded), the RSDP
/// and the loader script. A rebuild of the same tables has the same sizes
/// (same tables, same commands), the values in them aside.
pub(crate) fn acpi_files(tables: &LinkedTables) -> Vec<(String, Vec<u8>)> {
    let mut blob = tables.tables.clone();
    blob.resize(blob.len().next_multiple_of(ACPI_TABLES_PAD), 0);
    vec![
        (ACPI_TABLES_FILE.into(), blob),
        (ACPI_RSDP_FILE.into(), tables.rsdp.clone()),
        (TABLE_LOADER_FILE.into(), table_loader(tables)),
    ]
}

/// Has `device` rebuild the three ACPI files from `platform` when firmware
/// first selects one of them, after it placed the BARs: the root bridge's
/// 64-bit window is then where it put them, as QEMU's `acpi_build_update`
/// makes it.
pub(crate) fn refresh_acpi(device: &mut FwCfg, platform: Arc<AcpiConfig>) {
    device.refresh_on_first_select(
        &[ACPI_TABLES_FILE, ACPI_RSDP_FILE, TABLE_LOADER_FILE],
        Box::new(move || acpi_files(&rvirt_machine::acpi::build_linked(&platform))),
    );
}

/// QEMU 7.2's default SMBIOS structures for pc and q35 (microvm serves
/// none): the product is the board's, the version the machine type's full
/// name (`pc` is QEMU's alias of `pc-i440fx-7.2`).
fn smbios(cfg: &VmConfig, tables: &FirmwareTables, uuid: &[u8; 16]) -> Option<SmbiosTables> {
    let (product, version) = match cfg.chipset {
        Chipset::I440fx => (
            "Standard PC (i440FX + PIIX, 1996)",
            match cfg.machine.as_str() {
                "pc" | "none" => "pc-i440fx-7.2",
                m => m,
            },
        ),
        Chipset::Q35 => (
            "Standard PC (Q35 + ICH9, 2009)",
            match cfg.machine.as_str() {
                "q35" => "pc-q35-7.2",
                m => m,
            },
        ),
        Chipset::Microvm => return None,
    };
    let smp = &cfg.smp;
    Some(rvirt_machine::smbios::build(&SmbiosConfig {
        product: product.to_owned(),
        version: version.to_owned(),
        uuid: *uuid,
        sockets: smp.sockets,
        cores: smp.dies * smp.cores,
        threads: smp.dies * smp.cores * smp.threads,
        cpuid_1: tables.cpuid_1,
        ram_size: cfg.mem_size,
        ram_ranges: tables.ram_ranges.clone(),
    }))
}

/// Everything fw_cfg serves for one boot.
pub(crate) fn items(
    cfg: &VmConfig,
    tables: &FirmwareTables,
    max_cpus: u16,
    boot_devices: &mut [BootDevice],
) -> Result<FwCfgBuilder, FirmwareItemsError> {
    let mut b = FwCfgBuilder::new();
    let mut uuid = [0u8; 16];
    if let Some(u) = &cfg.uuid {
        let hex: Vec<u8> = u
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
            .collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            uuid[i] = pair[0] << 4 | pair.get(1).copied().unwrap_or(0);
        }
    }
    b.legacy(keys::UUID, uuid.to_vec());
    b.legacy(keys::RAM_SIZE, cfg.mem_size.to_le_bytes().to_vec());
    b.legacy(
        keys::NOGRAPHIC,
        u16::from(!cfg.graphics).to_le_bytes().to_vec(),
    );
    b.legacy(keys::NB_CPUS, (cfg.smp.cpus as u16).to_le_bytes().to_vec());
    b.legacy(keys::MAX_CPUS, max_cpus.to_le_bytes().to_vec());
    // No NUMA nodes: a zero count, then each CPU's node (all 0).
    b.legacy(keys::NUMA, vec![0u8; 8 + 8 * usize::from(max_cpus)]);
    b.legacy(
        keys::BOOT_MENU,
        u16::from(cfg.boot.menu).to_le_bytes().to_vec(),
    );
    // The PIT's IRQ 0 arrives on GSI 2 (the MADT says so too).
    b.legacy(keys::IRQ0_OVERRIDE, 1u32.to_le_bytes().to_vec());
    // The legacy e820 reservations and -acpitable lists: both empty.
    b.legacy(keys::E820_TABLE, 0u32.to_le_bytes().to_vec());
    b.legacy(keys::ACPI_TABLES, 0u16.to_le_bytes().to_vec());

    let e820: Vec<u8> = tables
        .memory_map
        .iter()
        .flat_map(|r| e820_entry(r.start, r.size, r.kind))
        .collect();
    b.file("etc/e820", e820)?;
    if let Some(acpi) = &tables.acpi {
        for (name, data) in acpi_files(acpi) {
            b.file(&name, data)?;
        }
    }
    if let Some(smbios) = smbios(cfg, tables, &uuid) {
        b.file("etc/smbios/smbios-anchor", smbios.anchor)?;
        b.file("etc/smbios/smbios-tables", smbios.tables)?;
    }
    b.file("bootorder", bootorder(boot_devices, cfg.boot.strict))?;
    let fail_wait = cfg.boot.reboot_timeout.unwrap_or(-1) as u32;
    b.file("etc/boot-fail-wait", fail_wait.to_le_bytes().to_vec())?;
    if let (true, Some(t)) = (cfg.boot.menu, cfg.boot.splash_time) {
        b.file("etc/boot-menu-wait", (t as u16).to_le_bytes().to_vec())?;
    }
    for item in &cfg.fw_cfg {
        let data = match &item.source {
            FwCfgSource::String(s) => s.clone().into_bytes(),
            FwCfgSource::File(path) => {
                std::fs::read(path).map_err(|source| FirmwareItemsError::Read {
                    path: path.clone(),
                    source,
                })?
            }
        };
        b.file(&item.name, data)?;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rvirt_machine::acpi::build_linked;
    use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};

    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    /// The table loader run as SeaBIOS runs it, then every table found from
    /// the RSDP the way a guest finds them, each with a valid checksum (q35's
    /// MCFG among them).
    #[test]
    fn seabios_links_the_tables_into_valid_acpi() {
        let cfg = AcpiConfig {
            apic_ids: vec![0, 1],
            devices: vec![Box::new(AcpiDevice {
                name: "VR00".into(),
                hid: HardwareId::String("LNRO0005"),
                uid: 0,
                resources: vec![
                    Resource::Memory32 {
                        base: 0xd000_0000,
                        len: 0x1000,
                    },
                    Resource::EdgeIrq(5),
                ],
            })],
            ecam: Some((0xb000_0000, 0xff)),
            gpe0: None,
        };
        let linked = build_linked(&cfg);
        let files = BTreeMap::from([
            (ACPI_TABLES_FILE.to_string(), linked.tables.clone()),
            (ACPI_RSDP_FILE.to_string(), linked.rsdp.clone()),
        ]);
        let (high, fseg) = (0x7ffe_0000u64, 0xf_5a30u64);
        let placed = loader::execute(&table_loader(&linked), &files, |zone, _, align| {
            Some(match zone {
                Zone::High => high.next_multiple_of(align),
                Zone::FSeg => fseg.next_multiple_of(align),
            })
        })
        .unwrap();
        let rsdp = &placed[ACPI_RSDP_FILE];
        let tables = &placed[ACPI_TABLES_FILE];
        assert_eq!((rsdp.address, tables.address), (0xf_5a30, high));
        let r = &rsdp.bytes;
        assert_eq!(&r[0..8], b"RSD PTR ");
        assert_eq!(sum(&r[0..20]), 0);
        assert_eq!(sum(&r[0..36]), 0);
        let t = &tables.bytes;
        let at = |addr: u64| {
            assert!(addr >= high, "{addr:#x} is not in the tables blob");
            (addr - high) as usize
        };
        let table = |addr: u64| {
            let o = at(addr);
            let len = u32_at(t, o + 4) as usize;
            let b = &t[o..o + len];
            assert_eq!(sum(b), 0, "{} checksum", String::from_utf8_lossy(&b[0..4]));
            b
        };
        let xsdt = table(u64_at(r, 24));
        assert_eq!(&xsdt[0..4], b"XSDT");
        let sigs: Vec<&[u8]> = (0..(xsdt.len() - 36) / 8)
            .map(|i| &table(u64_at(xsdt, 36 + 8 * i))[0..4])
            .collect();
        assert_eq!(sigs, [b"FACP", b"APIC", b"MCFG"]);
        let mcfg = table(u64_at(xsdt, 36 + 16));
        assert_eq!(
            u64_at(mcfg, 44),
            0xb000_0000,
            "the ECAM base is not relocated"
        );
        let fadt = table(u64_at(xsdt, 36));
        let dsdt = table(u64_at(fadt, 140));
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert!(dsdt.windows(8).any(|w| w == b"LNRO0005"));
        let facs = u64::from(u32_at(fadt, 36));
        assert_eq!(&t[at(facs)..at(facs) + 4], b"FACS");
        assert_eq!(facs % 64, 0, "FACS alignment");
    }

    /// Firmware's first read of `etc/acpi/tables` gets tables rebuilt from
    /// where it placed the BARs: here a root port's prefetchable window at
    /// 8 GiB moves the root bridge's 64-bit window from the floor (5 GiB)
    /// to 8 GiB-10 GiB, QEMU's pci-hole64 rule.
    #[test]
    fn the_tables_are_rebuilt_from_the_live_bars_on_first_read() {
        use std::sync::Mutex;

        use rvirt_bus::{Bus, BusDevice};
        use rvirt_pci::acpi::{LiveRootBridge, RootBridge, PC_HOLE64_SIZE};
        use rvirt_pci::bridge::RootPort;
        use rvirt_pci::{FunctionInfo, SegmentBuilder};
        const G: u64 = 1 << 30;

        let mut b = SegmentBuilder::new();
        let port = FunctionInfo {
            id: None,
            parent: None,
            slot: 2,
            function: 0,
        };
        b.add(
            port,
            Arc::new(Mutex::new(RootPort::new(16, 1, false))),
            true,
        )
        .unwrap();
        let pio = Arc::new(Bus::new("pio"));
        let seg = Arc::new(b.build(pio, Arc::new(Bus::new("mmio")), None));
        let platform = Arc::new(AcpiConfig {
            apic_ids: vec![0],
            devices: vec![Box::new(LiveRootBridge {
                bridge: RootBridge {
                    express: false,
                    mem32: (0xc000_0000, 0xfebf_ffff),
                    mem64: None,
                    routes: Vec::new(),
                    ecam: None,
                },
                segment: Arc::downgrade(&seg),
                floor: 5 * G,
                size: PC_HOLE64_SIZE,
            })],
            ..Default::default()
        });
        let mut items = FwCfgBuilder::new();
        let first = acpi_files(&build_linked(&platform));
        for (name, data) in &first {
            items.file(name, data.clone()).unwrap();
        }
        let has = |blob: &[u8], v: u64| blob.windows(8).any(|w| w == v.to_le_bytes());
        assert!(has(&first[0].1, 5 * G) && has(&first[0].1, 7 * G - 1));
        let key = items.file_key(ACPI_TABLES_FILE).unwrap();
        let memory = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(
            vm_memory::GuestAddress(0),
            0x1_0000,
        )])
        .unwrap();
        let mut fw = items.build(memory);
        refresh_acpi(&mut fw, platform);
        // Firmware: the port's prefetchable window at 8 GiB (1 MiB), decode on.
        let port_devfn = 2 << 3;
        seg.write_config(0, port_devfn, 0x24, &0u32.to_le_bytes());
        seg.write_config(0, port_devfn, 0x28, &2u32.to_le_bytes());
        seg.write_config(0, port_devfn, 0x2c, &2u32.to_le_bytes());
        seg.write_config(0, port_devfn, 0x04, &2u16.to_le_bytes());
        fw.write(0, &key.to_le_bytes());
        let mut blob = vec![0u8; first[0].1.len()];
        fw.read(1, &mut blob);
        assert!(
            has(&blob, 8 * G) && has(&blob, 10 * G - 1),
            "the live window"
        );
        assert!(!has(&blob, 5 * G), "the floor is gone");
    }

    #[test]
    fn bootorder_is_by_index_with_halt_when_strict() {
        let mut devs = vec![
            BootDevice {
                index: 2,
                path: "/b".into(),
            },
            BootDevice {
                index: 0,
                path: "/a".into(),
            },
        ];
        assert_eq!(bootorder(&mut devs, false), b"/a\n/b\0");
        assert_eq!(bootorder(&mut devs, true), b"/a\n/b\nHALT\0");
        assert_eq!(bootorder(&mut [], true), b"");
    }
}
