//! ACPI tables: RSDP, XSDT, FADT (with FACS and DSDT) and MADT, built with
//! the acpi_tables crate and placed at `layout::ACPI_START`.
//!
//! What a guest gets from them: its CPUs (MADT), the interrupt routing
//! (MADT overrides: the PIT on GSI 2, the SCI level-triggered on GSI 9),
//! power-off through PM1a_CNT with the `\_S5_` sleep type, the fixed power
//! button (PM1 status/enable) for `system_powerdown`, reset through the
//! reset register at port 0xcf9, and in the DSDT the devices as each
//! describes itself ([`AcpiConfig::devices`]): the machine does not know
//! what they are.

use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::mcfg::MCFG;
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;

use crate::layout::{self, irqs, ports};

const OEM_ID: [u8; 6] = *b"RVIRT ";
const OEM_REVISION: u32 = 1;

fn table_id(sig: &[u8; 4]) -> [u8; 8] {
    let mut id = *b"RVIRT   ";
    id[4..].copy_from_slice(sig);
    id
}

/// What the tables describe.
#[derive(Default)]
pub struct AcpiConfig {
    /// APIC IDs of the vCPUs, in creation order.
    pub apic_ids: Vec<u32>,
    /// The devices' own descriptions, put in the DSDT's `\_SB_` scope in
    /// this order.
    pub devices: Vec<Box<dyn Aml + Send + Sync>>,
    /// The ECAM window for the MCFG table (q35): base and the last bus.
    pub ecam: Option<(u64, u8)>,
    /// The GPE0 block (port, length in bytes) for the FADT, where a
    /// device raises general-purpose events (pc's ACPI PCI hot-plug).
    pub gpe0: Option<(u16, u8)>,
}

impl std::fmt::Debug for AcpiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcpiConfig")
            .field("apic_ids", &self.apic_ids)
            .field("devices", &self.devices.len())
            .field("ecam", &self.ecam)
            .field("gpe0", &self.gpe0)
            .finish()
    }
}

/// The tables laid out for guest memory at `base`.
pub struct AcpiTables {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl AcpiTables {
    /// Guest address of the RSDP.
    pub fn rsdp(&self) -> u64 {
        self.base
    }
}

/// Appends `table` at the next `align`-byte boundary and returns its address.
fn place(out: &mut Vec<u8>, base: u64, table: &dyn Aml, align: usize) -> u64 {
    out.resize(out.len().next_multiple_of(align), 0);
    let addr = base + out.len() as u64;
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    out.extend_from_slice(&bytes);
    addr
}

fn io_gas(port: u16, bits: u8, access: AccessSize) -> GAS {
    GAS::new(AddressSpace::SystemIo, bits, 0, access, u64::from(port))
}

fn fadt(dsdt: u64, facs: u64, gpe0: Option<(u16, u8)>) -> acpi_tables::fadt::FADT {
    let mut f = FADTBuilder::new(OEM_ID, table_id(b"FACP"), OEM_REVISION)
        // WBINVD works, C1 is supported, there is no fixed sleep button,
        // the PM timer is 32 bits wide, and the reset register is valid.
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::SlpButton)
        .flag(Flags::TmrValExt)
        .flag(Flags::ResetRegSup);
    // Both DSDT pointers, as QEMU sets them: ACPI 2.0+ guests read the
    // 64-bit one, SeaBIOS (which finds virtio-mmio devices in the DSDT)
    // the 32-bit one. Only the 32-bit FACS pointer: setting both makes
    // Linux list the FACS twice.
    f.dsdt = (dsdt as u32).into();
    f.x_dsdt = dsdt.into();
    f.firmware_ctrl = (facs as u32).into();
    f.x_firmware_ctrl = 0.into();
    f.sci_int = (irqs::SCI as u16).into();
    // No SMI command port: the machine is always in ACPI mode.
    f.smi_cmd = 0.into();
    f.pm1a_evt_blk = u32::from(ports::ACPI_PM1A_EVT).into();
    f.pm1_evt_len = 4;
    f.x_pm1a_evt_blk = io_gas(ports::ACPI_PM1A_EVT, 32, AccessSize::WordAccess);
    f.pm1a_cnt_blk = u32::from(ports::ACPI_PM1A_CNT).into();
    f.pm1_cnt_len = 2;
    f.x_pm1a_cnt_blk = io_gas(ports::ACPI_PM1A_CNT, 16, AccessSize::WordAccess);
    f.pm_tmr_blk = u32::from(ports::ACPI_PM_TMR).into();
    f.pm_tmr_len = 4;
    f.x_pm_tmr_blk = io_gas(ports::ACPI_PM_TMR, 32, AccessSize::DwordAccess);
    if let Some((port, len)) = gpe0 {
        f.gpe0_blk = u32::from(port).into();
        f.gpe0_blk_len = len;
        f.x_gpe0_blk = io_gas(port, len * 8, AccessSize::ByteAccess);
    }
    f.reset_reg = io_gas(ports::RESET_CONTROL, 8, AccessSize::ByteAccess);
    f.reset_value = layout::RESET_VALUE;
    f.century = 0x32;
    // Legacy devices and an 8042 present, no VGA, and ASPM/MSI left alone.
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT).into();
    f.finalize()
}

const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
const IAPC_8042: u16 = 1 << 1;
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;

fn dsdt(cfg: &AcpiConfig) -> Sdt {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, table_id(b"DSDT"), OEM_REVISION);
    // The AML goes to a plain buffer, then into the table at once:
    // acpi_tables' `Sdt` sums the whole table again for every byte it is
    // fed as an `AmlSink`, which made a microvm's start-up spend ~0.4 ms of
    // CPU here (quadratic in the DSDT's size).
    let mut body = Vec::new();
    // \_S5_: SLP_TYPa, SLP_TYPb, reserved, reserved.
    let s5 = layout::S5_SLP_TYP;
    aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&s5, &s5, &0u8, &0u8]),
    )
    .to_aml_bytes(&mut body);

    let refs: Vec<&dyn Aml> = cfg.devices.iter().map(|d| d.as_ref() as &dyn Aml).collect();
    aml::Scope::new("\\_SB_".into(), refs).to_aml_bytes(&mut body);
    dsdt.append_slice(&body);
    dsdt
}

/// The MADT. Built on the generic `Sdt` because acpi_tables' MADT type has
/// no setter for the PC-AT compatibility flag and no interrupt source
/// override or local APIC NMI entries, all of which x86 guests need.
fn madt(cfg: &AcpiConfig) -> Sdt {
    let mut m = Sdt::new(*b"APIC", 44, 4, OEM_ID, table_id(b"APIC"), OEM_REVISION);
    m.write_u32(36, layout::LAPIC_START as u32);
    m.write_u32(40, 1); // PCAT_COMPAT: dual 8259s present.
    for (uid, &apic_id) in cfg.apic_ids.iter().enumerate() {
        if apic_id < 255 {
            // Processor Local APIC: type 0, length 8, enabled.
            m.append_slice(&[0, 8, uid as u8, apic_id as u8, 1, 0, 0, 0]);
        } else {
            // Processor Local x2APIC: type 9, length 16.
            let mut e = vec![9, 16, 0, 0];
            e.extend_from_slice(&apic_id.to_le_bytes());
            e.extend_from_slice(&1u32.to_le_bytes());
            e.extend_from_slice(&(uid as u32).to_le_bytes());
            m.append_slice(&e);
        }
    }
    // I/O APIC: type 1, length 12, id 0, address, GSI base 0.
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&(layout::IOAPIC_START as u32).to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    m.append_slice(&ioapic);
    // Interrupt source overrides: the PIT's IRQ 0 arrives on GSI 2 (KVM's
    // default routing), and the SCI is level-triggered, active high.
    for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (irqs::SCI as u8, irqs::SCI, 0x000d)] {
        let mut iso = vec![2, 10, 0, irq];
        iso.extend_from_slice(&gsi.to_le_bytes());
        iso.extend_from_slice(&flags.to_le_bytes());
        m.append_slice(&iso);
    }
    // Local APIC NMI on LINT1 of every processor.
    m.append_slice(&[4, 6, 0xff, 0, 0, 1]);
    m
}

/// Which of the two blobs firmware allocates a byte is in: the RSDP (in the
/// F segment, where an OS scans for it) or every other table (in high RAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    Rsdp,
    Tables,
}

/// A pointer field: `size` bytes at `offset` in `blob` hold an offset into
/// `target`, to which `target`'s guest address is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    pub blob: Blob,
    pub offset: u32,
    pub size: u8,
    pub target: Blob,
}

/// A checksum byte at `offset` in `blob`, over `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub blob: Blob,
    pub offset: u32,
    pub start: u32,
    pub len: u32,
}

/// The tables before placement, as firmware's table loader takes them:
/// two blobs whose pointers are offsets, and the fix-ups that place them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedTables {
    pub rsdp: Vec<u8>,
    pub tables: Vec<u8>,
    pub pointers: Vec<Pointer>,
    pub checksums: Vec<Checksum>,
}

/// How the tables blob must be aligned (the FACS wants 64 bytes).
pub const TABLES_ALIGN: u64 = 64;
/// How the RSDP must be aligned (an OS scans on 16-byte boundaries).
pub const RSDP_ALIGN: u64 = 16;

impl LinkedTables {
    /// Applies the fix-ups for the blobs at `rsdp` and `tables`: what a
    /// firmware's table loader does, for a VMM that places them itself.
    pub fn link(&self, rsdp: u64, tables: u64) -> (Vec<u8>, Vec<u8>) {
        let mut out = [self.rsdp.clone(), self.tables.clone()];
        let index = |b: Blob| match b {
            Blob::Rsdp => 0,
            Blob::Tables => 1,
        };
        let base = |b: Blob| match b {
            Blob::Rsdp => rsdp,
            Blob::Tables => tables,
        };
        for p in &self.pointers {
            let field = &mut out[index(p.blob)][p.offset as usize..][..usize::from(p.size)];
            let mut v = [0u8; 8];
            v[..field.len()].copy_from_slice(field);
            let sum = u64::from_le_bytes(v).wrapping_add(base(p.target));
            field.copy_from_slice(&sum.to_le_bytes()[..usize::from(p.size)]);
        }
        for c in &self.checksums {
            let b = &mut out[index(c.blob)];
            let sum = b[c.start as usize..(c.start + c.len) as usize]
                .iter()
                .fold(0u8, |a, x| a.wrapping_add(*x));
            b[c.offset as usize] = b[c.offset as usize].wrapping_sub(sum);
        }
        let [r, t] = out;
        (r, t)
    }
}

/// Appends a table whose checksum is at offset 9 and returns its offset.
fn place_sdt(
    out: &mut Vec<u8>,
    checksums: &mut Vec<Checksum>,
    table: &dyn Aml,
    align: usize,
) -> u64 {
    let at = place(out, 0, table, align);
    checksums.push(Checksum {
        blob: Blob::Tables,
        offset: at as u32 + 9,
        start: at as u32,
        len: (out.len() as u64 - at) as u32,
    });
    at
}

/// Builds the tables for firmware to place: the tables blob with every
/// pointer relative to its start, and the RSDP pointing into it.
pub fn build_linked(cfg: &AcpiConfig) -> LinkedTables {
    let mut tables = Vec::new();
    let mut checksums = Vec::new();
    let mut pointers = Vec::new();
    let mut ptr = |blob, offset: u64, size, target| {
        pointers.push(Pointer {
            blob,
            offset: offset as u32,
            size,
            target,
        })
    };
    let dsdt_addr = place_sdt(&mut tables, &mut checksums, &dsdt(cfg), 16);
    let facs_addr = place(&mut tables, 0, &FACS::new(), 64);
    let fadt_addr = place_sdt(
        &mut tables,
        &mut checksums,
        &fadt(dsdt_addr, facs_addr, cfg.gpe0),
        16,
    );
    ptr(Blob::Tables, fadt_addr + 36, 4, Blob::Tables); // FIRMWARE_CTRL
    ptr(Blob::Tables, fadt_addr + 40, 4, Blob::Tables); // DSDT
    ptr(Blob::Tables, fadt_addr + 140, 8, Blob::Tables); // X_DSDT
    let madt_addr = place_sdt(&mut tables, &mut checksums, &madt(cfg), 16);
    let mut xsdt = XSDT::new(OEM_ID, table_id(b"XSDT"), OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let mut entries = 2;
    if let Some((ecam, last_bus)) = cfg.ecam {
        let mut mcfg = MCFG::new(OEM_ID, table_id(b"MCFG"), OEM_REVISION);
        mcfg.add_ecam(ecam, 0, 0, last_bus);
        xsdt.add_entry(place_sdt(&mut tables, &mut checksums, &mcfg, 16));
        entries += 1;
    }
    let xsdt_addr = place_sdt(&mut tables, &mut checksums, &xsdt, 16);
    for i in 0..entries {
        ptr(Blob::Tables, xsdt_addr + 36 + 8 * i, 8, Blob::Tables);
    }
    let mut rsdp = Vec::new();
    Rsdp::new(OEM_ID, xsdt_addr).to_aml_bytes(&mut rsdp);
    ptr(Blob::Rsdp, 24, 8, Blob::Tables); // XsdtAddress
                                          // The ACPI 1.0 checksum over the first 20 bytes, then the extended one
                                          // over all 36, which covers the first.
    checksums.push(Checksum {
        blob: Blob::Rsdp,
        offset: 8,
        start: 0,
        len: 20,
    });
    checksums.push(Checksum {
        blob: Blob::Rsdp,
        offset: 32,
        start: 0,
        len: rsdp.len() as u32,
    });
    LinkedTables {
        rsdp,
        tables,
        pointers,
        checksums,
    }
}

/// Builds all tables for guest address `base`: the RSDP first, the other
/// tables after it, linked as a firmware would link them.
pub fn build(cfg: &AcpiConfig, base: u64) -> AcpiTables {
    let linked = build_linked(cfg);
    let tables_at = (base + linked.rsdp.len() as u64).next_multiple_of(TABLES_ALIGN);
    let (rsdp, tables) = linked.link(base, tables_at);
    let mut bytes = rsdp;
    bytes.resize((tables_at - base) as usize, 0);
    bytes.extend_from_slice(&tables);
    AcpiTables { base, bytes }
}

#[cfg(test)]
mod tests {
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

    /// Walks the tables the way a guest does, from the RSDP.
    fn tables(t: &AcpiTables) -> Vec<(String, Vec<u8>)> {
        let b = &t.bytes;
        let at = |addr: u64| (addr - t.base) as usize;
        assert_eq!(&b[0..8], b"RSD PTR ");
        assert_eq!(sum(&b[0..20]), 0, "RSDP checksum");
        assert_eq!(sum(&b[0..36]), 0, "RSDP extended checksum");
        assert_eq!(b[15], 2, "ACPI 2.0+ RSDP");
        let xsdt = at(u64_at(b, 24));
        let len = u32_at(b, xsdt + 4) as usize;
        let mut out = vec![("XSDT".to_string(), b[xsdt..xsdt + len].to_vec())];
        for i in 0..(len - 36) / 8 {
            let t = at(u64_at(b, xsdt + 36 + 8 * i));
            let l = u32_at(b, t + 4) as usize;
            out.push((
                String::from_utf8_lossy(&b[t..t + 4]).into(),
                b[t..t + l].to_vec(),
            ));
        }
        let fadt = out.iter().find(|(s, _)| s == "FACP").unwrap().1.clone();
        let dsdt = at(u64_at(&fadt, 140));
        assert_eq!(
            u64::from(u32_at(&fadt, 40)),
            u64_at(&fadt, 140),
            "DSDT = X_DSDT"
        );
        assert_eq!(u64_at(&fadt, 132), 0, "only FIRMWARE_CTRL is set");
        let l = u32_at(b, dsdt + 4) as usize;
        out.push(("DSDT".into(), b[dsdt..dsdt + l].to_vec()));
        let facs = at(u64::from(u32_at(&fadt, 36)));
        assert_eq!(&b[facs..facs + 4], b"FACS");
        assert_eq!((facs + t.base as usize) % 64, 0, "FACS alignment");
        out
    }

    fn cfg(n: u32) -> AcpiConfig {
        use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};
        let dev = |name: &str, hid, uid, resources| -> Box<dyn Aml + Send + Sync> {
            Box::new(AcpiDevice {
                name: name.into(),
                hid,
                uid,
                resources,
            })
        };
        AcpiConfig {
            apic_ids: (0..n).collect(),
            devices: vec![
                dev(
                    "COM1",
                    HardwareId::Eisa("PNP0501"),
                    1,
                    vec![
                        Resource::Io {
                            base: 0x3f8,
                            len: 8,
                        },
                        Resource::EdgeIrq(4),
                    ],
                ),
                dev(
                    "RTC_",
                    HardwareId::Eisa("PNP0B00"),
                    0,
                    vec![Resource::Io { base: 0x70, len: 2 }, Resource::EdgeIrq(8)],
                ),
                dev(
                    "VR00",
                    HardwareId::String("LNRO0005"),
                    0,
                    vec![
                        Resource::Memory32 {
                            base: 0xd000_0000,
                            len: 0x1000,
                        },
                        Resource::EdgeIrq(5),
                    ],
                ),
            ],
            ecam: None,
            gpe0: None,
        }
    }

    #[test]
    fn q35_gets_an_mcfg_for_its_ecam() {
        let mut c = cfg(1);
        c.ecam = Some((0xb000_0000, 0xff));
        let t = build(&c, layout::ACPI_START);
        let all = tables(&t);
        let (_, mcfg) = all.iter().find(|(s, _)| s == "MCFG").unwrap();
        assert_eq!(sum(mcfg), 0);
        // One allocation: base, segment 0, buses 0-255.
        assert_eq!(mcfg.len(), 44 + 16);
        assert_eq!(u64_at(mcfg, 44), 0xb000_0000);
        assert_eq!((mcfg[54], mcfg[55]), (0, 0xff));
    }

    #[test]
    fn every_table_is_present_with_a_valid_checksum() {
        let t = build(&cfg(4), layout::ACPI_START);
        assert!(t.bytes.len() as u64 <= layout::ACPI_MAX);
        let all = tables(&t);
        let names: Vec<&str> = all.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["XSDT", "FACP", "APIC", "DSDT"]);
        for (name, bytes) in &all {
            assert_eq!(sum(bytes), 0, "{name} checksum");
            assert_eq!(&bytes[10..16], b"RVIRT ", "{name} OEM ID");
        }
    }

    #[test]
    fn madt_lists_each_cpu_and_the_overrides() {
        let t = build(&cfg(3), layout::ACPI_START);
        let madt = tables(&t).into_iter().find(|(s, _)| s == "APIC").unwrap().1;
        assert_eq!(u32_at(&madt, 36), 0xfee0_0000);
        assert_eq!(u32_at(&madt, 40) & 1, 1);
        let mut off = 44;
        let (mut lapics, mut isos) = (vec![], vec![]);
        while off < madt.len() {
            match madt[off] {
                0 => lapics.push((madt[off + 3], madt[off + 4] & 1)),
                2 => isos.push((madt[off + 3], u32_at(&madt, off + 4))),
                _ => {}
            }
            off += madt[off + 1] as usize;
        }
        assert_eq!(off, madt.len());
        assert_eq!(lapics, vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(isos, vec![(0, 2), (9, 9)]);
    }

    #[test]
    fn fadt_points_at_the_pm_block() {
        let t = build(&cfg(1), layout::ACPI_START);
        let fadt = tables(&t).into_iter().find(|(s, _)| s == "FACP").unwrap().1;
        assert_eq!(fadt.len(), 276, "ACPI 6 FADT");
        assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), 9, "SCI_INT");
        assert_eq!(u32_at(&fadt, 48), 0, "SMI_CMD");
        assert_eq!(u32_at(&fadt, 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(&fadt, 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(u32_at(&fadt, 76), 0x608, "PM_TMR_BLK");
        assert_eq!((fadt[88], fadt[89], fadt[91]), (4, 2, 4));
        assert_eq!(fadt[108], 0x32, "CENTURY");
        assert_eq!(u32_at(&fadt, 112) & (1 << 4), 0, "fixed power button");
        assert_eq!(u32_at(&fadt, 112) & (1 << 20), 0, "not hardware-reduced");
        assert_eq!(u64_at(&fadt, 116 + 4), 0xcf9, "RESET_REG address");
        assert_eq!(fadt[128], 6, "RESET_VALUE");
        assert_eq!((u32_at(&fadt, 80), fadt[92]), (0, 0), "no GPE0 block");
    }

    /// pc's GPE0 block (ACPI PCI hot-plug) in GPE0_BLK, its length and
    /// X_GPE0_BLK, as QEMU's PIIX4 FADT.
    #[test]
    fn fadt_names_a_gpe0_block_when_one_is_given() {
        let mut c = cfg(1);
        c.gpe0 = Some((0xafe0, 4));
        let t = build(&c, layout::ACPI_START);
        let fadt = tables(&t).into_iter().find(|(s, _)| s == "FACP").unwrap().1;
        assert_eq!((u32_at(&fadt, 80), fadt[92]), (0xafe0, 4));
        // X_GPE0_BLK at 220: system I/O, 32 bits, the port.
        assert_eq!((fadt[220], fadt[221]), (1, 32));
        assert_eq!(u64_at(&fadt, 224), 0xafe0);
    }

    #[test]
    fn dsdt_has_s5_and_devices() {
        let t = build(&cfg(1), layout::ACPI_START);
        let dsdt = tables(&t).into_iter().find(|(s, _)| s == "DSDT").unwrap().1;
        let find = |needle: &[u8]| dsdt.windows(needle.len()).position(|w| w == needle);
        // NameOp "_S5_" PackageOp PkgLength NumElements(4) Zero Zero Zero
        // Zero: QEMU's pc and q35 package, SLP_TYP 0.
        let s5 = find(b"_S5_").unwrap();
        assert_eq!(dsdt[s5 - 1], 0x08);
        assert_eq!(
            &dsdt[s5 + 4..s5 + 10],
            &[0x12, 0x06, 0x04, 0x00, 0x00, 0x00]
        );
        assert_eq!(dsdt[s5 + 10], 0x00);
        assert!(find(b"COM1").is_some());
        assert!(find(b"LNRO0005").is_some());
        assert!(find(b"RTC_").is_some());
    }
}
