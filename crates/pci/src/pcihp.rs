//! ACPI PCI hot-plug as QEMU 7.2's `pc` machine has it (PIIX4 PM's
//! `acpi-pci-hotplug-with-bridge-support`, `hw/acpi/pcihp.c`), for the root
//! bus only: the register block at 0xae00 that the DSDT's methods read and
//! write, the GPE0 bit 1 event that calls them, and the DSDT's slot
//! devices (`S08`..`SF8`) with `_ADR`, `_SUN` and `_EJ0`.
//!
//! The registers (32 bits each, bus selected by `PCI_SEL`, only bus 0
//! here): `PCI_UP` (slots plugged since the last read; reading clears it,
//! as QEMU's non-legacy PIIX4), `PCI_DOWN` (slots whose removal was asked
//! for), `PCI_EJ` (a write ejects the lowest slot set, clearing its down
//! bit), `PCI_RMV` (the slots that hot-plug), `PCI_SEL`, `PCI_AIDX`
//! (acpi-index: none here, reads 0).
//!
//! The block is a pure state machine: the event and the ejection leave
//! through [`HotplugSignal`], which the VMM implements (GPE0 and SCI in the
//! ACPI PM device; taking the slot's functions out of the segment).

use std::sync::Arc;

use acpi_tables::aml::{self, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule};
use acpi_tables::{Aml, AmlSink};
use rvirt_bus::BusDevice;

/// QEMU's `ACPI_PCIHP_ADDR` and `ACPI_PCIHP_SIZE`.
pub const BASE: u16 = 0xae00;
pub const LEN: u16 = 0x18;
/// The GPE0 status bit of a hot-plug event (QEMU's
/// `ACPI_PCI_HOTPLUG_STATUS`), whose `_E01` calls `PCNT`.
pub const GPE_BIT: u16 = 1 << 1;

const PCI_UP: u64 = 0x00;
const PCI_DOWN: u64 = 0x04;
const PCI_EJ: u64 = 0x08;
const PCI_RMV: u64 = 0x0c;
const PCI_SEL: u64 = 0x10;
const PCI_AIDX: u64 = 0x14;

/// Where the block's news goes.
pub trait HotplugSignal: Send + Sync {
    /// Sets GPE0 status bit 1 ([`GPE_BIT`]); the SCI follows while the
    /// guest enables it.
    fn raise_gpe(&self);
    /// The guest ejected root-bus `slot`: take its functions out.
    fn eject(&self, slot: u8);
}

/// Why a plug or unplug request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HotplugError {
    #[error("slot {0} does not hot-plug")]
    NotHotpluggable(u8),
}

/// The register block for the root bus.
pub struct PciHotplug {
    up: u32,
    down: u32,
    /// `PCI_RMV`: the slots that hot-plug.
    removable: u32,
    select: u32,
    signal: Arc<dyn HotplugSignal>,
}

impl PciHotplug {
    /// `fixed`: the slots holding functions that cannot be unplugged (the
    /// chipset's), which never hot-plug.
    pub fn new(fixed: u32, signal: Arc<dyn HotplugSignal>) -> Self {
        PciHotplug {
            up: 0,
            down: 0,
            removable: !fixed,
            select: 0,
            signal,
        }
    }

    /// The slots that hot-plug (`PCI_RMV`).
    pub fn removable(&self) -> u32 {
        self.removable
    }

    fn check(&self, slot: u8) -> Result<u32, HotplugError> {
        let bit = 1u32.checked_shl(u32::from(slot)).unwrap_or(0);
        if self.removable & bit == 0 {
            return Err(HotplugError::NotHotpluggable(slot));
        }
        Ok(bit)
    }

    /// A function was plugged into `slot`: tell the guest.
    pub fn plug(&mut self, slot: u8) -> Result<(), HotplugError> {
        self.up |= self.check(slot)?;
        self.signal.raise_gpe();
        Ok(())
    }

    /// Asks the guest to let `slot` go (it ejects it through `_EJ0`).
    pub fn request_unplug(&mut self, slot: u8) -> Result<(), HotplugError> {
        self.down |= self.check(slot)?;
        self.signal.raise_gpe();
        Ok(())
    }

    fn read_reg(&mut self, reg: u64) -> u32 {
        // Only bus 0 is described; other selections read as nothing.
        if self.select != 0 && reg != PCI_SEL {
            return 0;
        }
        match reg {
            PCI_UP => std::mem::take(&mut self.up),
            PCI_DOWN => self.down,
            PCI_RMV => self.removable,
            PCI_SEL => self.select,
            // PCI_EJ reads 0 ("no feature defined"); no acpi-index.
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, value: u32) {
        match reg {
            PCI_SEL => self.select = value,
            PCI_EJ if self.select == 0 && value != 0 => {
                // One slot a write, the lowest, as QEMU's.
                let slot = value.trailing_zeros() as u8;
                self.down &= !(1 << slot);
                if self.removable & (1 << slot) != 0 {
                    self.signal.eject(slot);
                }
            }
            // PCI_AIDX selects a slot whose acpi-index a read returns:
            // none here.
            _ => {}
        }
    }
}

impl BusDevice for PciHotplug {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            PCI_UP | PCI_DOWN | PCI_EJ | PCI_RMV | PCI_SEL | PCI_AIDX if data.len() <= 4 => {
                self.read_reg(offset)
            }
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() > 4 || !offset.is_multiple_of(4) {
            return;
        }
        let mut bytes = [0u8; 4];
        bytes[..data.len()].copy_from_slice(data);
        self.write_reg(offset, u32::from_le_bytes(bytes));
    }
}

/// The DSDT's part, as QEMU 7.2 writes it for the root bus: in
/// `\_SB_.PCI0` the block's fields, `PCEJ` and the slot devices with
/// `DVNT`/`PCNT`, and `\_GPE._E01` calling `PCNT` under the lock. Goes in
/// the `\_SB_` scope after the root bridge's node.
pub struct HotplugAml {
    /// The slots that hot-plug (`Sxx` with `_SUN` and `_EJ0`).
    pub removable: u32,
    /// The slots with a fixed function (`Sxx` with `_ADR` only), as QEMU
    /// describes present non-hot-pluggable functions.
    pub fixed: u32,
}

/// QEMU's `S%.02X` of the devfn, as a full name segment (`S08` is
/// `S08_` in AML).
fn slot_name(slot: u8) -> String {
    format!("S{:02X}_", slot << 3)
}

/// Already serialized AML, to compose pieces built in loops (acpi_tables'
/// nodes borrow their children).
struct Raw(Vec<u8>);

impl Aml for Raw {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

fn bytes(node: &dyn Aml) -> Raw {
    let mut b = Vec::new();
    node.to_aml_bytes(&mut b);
    Raw(b)
}

fn dword(name: &str) -> FieldEntry {
    let mut n = *b"____";
    n.copy_from_slice(&name.as_bytes()[..4]);
    FieldEntry::Named(n, 32)
}

/// `OperationRegion(name, SystemIO, at, len)` and its DWord fields.
fn region(name: &str, at: u16, len: u16, fields: Vec<FieldEntry>) -> Raw {
    let (at, len) = (u32::from(at), u32::from(len));
    let mut b = bytes(&aml::OpRegion::new(
        name.into(),
        aml::OpRegionSpace::SystemIO,
        &at,
        &len,
    ))
    .0;
    aml::Field::new(
        name.into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        fields,
    )
    .to_aml_bytes(&mut b);
    Raw(b)
}

impl HotplugAml {
    fn slots(&self) -> impl Iterator<Item = u8> + '_ {
        (0..32u8).filter(|s| (self.removable | self.fixed) & (1 << s) != 0)
    }

    /// `Device(Sxx)`: `_ADR`, and for a hot-plug slot `_SUN` and `_EJ0`
    /// (which calls `PCEJ(BSEL, _SUN)`).
    fn slot_device(&self, slot: u8) -> Raw {
        let adr = aml::Name::new("_ADR".into(), &(u32::from(slot) << 16));
        let name = slot_name(slot);
        if self.removable & (1 << slot) == 0 {
            return bytes(&aml::Device::new(name.as_str().into(), vec![&adr]));
        }
        let sun = aml::Name::new("_SUN".into(), &u32::from(slot));
        let bsel: aml::Path = "BSEL".into();
        let sun_ref: aml::Path = "_SUN".into();
        let call = aml::MethodCall::new("PCEJ".into(), vec![&bsel, &sun_ref]);
        let ej0 = aml::Method::new("_EJ0".into(), 1, false, vec![&call]);
        bytes(&aml::Device::new(
            name.as_str().into(),
            vec![&adr, &sun, &ej0],
        ))
    }

    /// `Method(DVNT, 2)`: `Notify(Sxx, Arg1)` for each hot-plug slot whose
    /// bit is set in `Arg0`.
    fn dvnt(&self) -> Raw {
        let ifs: Vec<Raw> = self
            .slots()
            .filter(|s| self.removable & (1 << s) != 0)
            .map(|s| {
                let bit = 1u32 << s;
                let and = aml::And::new(&aml::ZERO, &aml::Arg(0), &bit);
                let dev: aml::Path = slot_name(s).as_str().into();
                let notify = aml::Notify::new(&dev, &aml::Arg(1));
                bytes(&aml::If::new(&and, vec![&notify]))
            })
            .collect();
        let body: Vec<&dyn Aml> = ifs.iter().map(|r| r as &dyn Aml).collect();
        bytes(&aml::Method::new("DVNT".into(), 2, false, body))
    }
}

impl Aml for HotplugAml {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let pcst = region("PCST", BASE, 8, vec![dword("PCIU"), dword("PCID")]);
        let sej = region("SEJ_", BASE + 8, 4, vec![dword("B0EJ")]);
        let bnmr = region("BNMR", BASE + 0x10, 8, vec![dword("BNUM"), dword("PIDX")]);
        let blck = aml::Mutex::new("BLCK".into(), 0);

        // Method(PCEJ, 2): select bus Arg0, eject slot Arg1.
        let acquire = aml::Acquire::new("BLCK".into(), 0xffff);
        let release = aml::Release::new("BLCK".into());
        let bnum: aml::Path = "BNUM".into();
        let b0ej: aml::Path = "B0EJ".into();
        let select = aml::Store::new(&bnum, &aml::Arg(0));
        let eject = aml::ShiftLeft::new(&b0ej, &aml::ONE, &aml::Arg(1));
        let ret = aml::Return::new(&aml::ZERO);
        let pcej = aml::Method::new(
            "PCEJ".into(),
            2,
            false,
            vec![&acquire, &select, &eject, &release, &ret],
        );

        let bsel = aml::Name::new("BSEL".into(), &aml::ZERO);
        let devices: Vec<Raw> = self.slots().map(|s| self.slot_device(s)).collect();
        let dvnt = self.dvnt();
        // Method(PCNT): bus 0, Notify 1 (check) for plugged slots, 3
        // (eject request) for those asked to leave.
        let select0 = aml::Store::new(&bnum, &aml::ZERO);
        let pciu: aml::Path = "PCIU".into();
        let pcid: aml::Path = "PCID".into();
        let dvnt_up = aml::MethodCall::new("DVNT".into(), vec![&pciu, &aml::ONE]);
        let three = 3u8;
        let dvnt_down = aml::MethodCall::new("DVNT".into(), vec![&pcid, &three]);
        let pcnt = aml::Method::new(
            "PCNT".into(),
            0,
            false,
            vec![&select0, &dvnt_up, &dvnt_down],
        );

        let mut children: Vec<&dyn Aml> = vec![&pcst, &sej, &bnmr, &blck, &pcej, &bsel];
        children.extend(devices.iter().map(|d| d as &dyn Aml));
        children.extend([&dvnt as &dyn Aml, &pcnt]);
        aml::Scope::new("PCI0".into(), children).to_aml_bytes(sink);

        // \_GPE._E01: the hot-plug event.
        let acquire = aml::Acquire::new("\\_SB_.PCI0.BLCK".into(), 0xffff);
        let call = aml::MethodCall::new("\\_SB_.PCI0.PCNT".into(), vec![]);
        let release = aml::Release::new("\\_SB_.PCI0.BLCK".into());
        let e01 = aml::Method::new("_E01".into(), 0, false, vec![&acquire, &call, &release]);
        aml::Scope::new("\\_GPE".into(), vec![&e01]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
#[path = "pcihp_tests.rs"]
mod tests;
