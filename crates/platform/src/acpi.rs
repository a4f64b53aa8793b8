//! How a device describes itself to an ACPI guest: a node of the DSDT's
//! `\_SB_` scope with its hardware ID and resources. Devices build these
//! and the machine puts them in the DSDT without knowing what they are.

use acpi_tables::{aml, Aml, AmlSink};

/// A device's hardware ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HardwareId {
    /// A compressed EISA ID such as `PNP0501`.
    Eisa(&'static str),
    /// A string ID such as `LNRO0005`.
    String(&'static str),
}

/// A resource in a device's `_CRS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `len` I/O ports at `base`.
    Io { base: u16, len: u8 },
    /// A fixed 32-bit memory range, read-write.
    Memory32 { base: u32, len: u32 },
    /// An edge-triggered, active-high, exclusive interrupt.
    EdgeIrq(u32),
}

/// A device node: `Device (NAME) { _HID, _UID, _CRS }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiDevice {
    /// The four-character AML name, such as `COM1`.
    pub name: String,
    pub hid: HardwareId,
    pub uid: u8,
    pub resources: Vec<Resource>,
}

impl Aml for AcpiDevice {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let resources: Vec<Box<dyn Aml>> = self
            .resources
            .iter()
            .map(|r| -> Box<dyn Aml> {
                match *r {
                    Resource::Io { base, len } => Box::new(aml::IO::new(base, base, 1, len)),
                    Resource::Memory32 { base, len } => {
                        Box::new(aml::Memory32Fixed::new(true, base, len))
                    }
                    Resource::EdgeIrq(n) => {
                        Box::new(aml::Interrupt::new(true, true, false, false, n))
                    }
                }
            })
            .collect();
        let refs: Vec<&dyn Aml> = resources.iter().map(|r| r.as_ref()).collect();
        let hid: Box<dyn Aml> = match self.hid {
            HardwareId::Eisa(id) => Box::new(aml::EISAName::new(id)),
            HardwareId::String(id) => Box::new(id),
        };
        let hid = aml::Name::new("_HID".into(), hid.as_ref());
        let uid = aml::Name::new("_UID".into(), &self.uid);
        let crs = aml::Name::new("_CRS".into(), &aml::ResourceTemplate::new(refs));
        aml::Device::new(self.name.as_str().into(), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_encodes_its_name_ids_and_resources() {
        let d = AcpiDevice {
            name: "COM1".into(),
            hid: HardwareId::Eisa("PNP0501"),
            uid: 1,
            resources: vec![
                Resource::Io {
                    base: 0x3f8,
                    len: 8,
                },
                Resource::EdgeIrq(4),
            ],
        };
        let mut b = Vec::new();
        d.to_aml_bytes(&mut b);
        assert_eq!(b[0..2], [0x5b, 0x82], "DeviceOp");
        let find = |n: &[u8]| b.windows(n.len()).any(|w| w == n);
        assert!(find(b"COM1") && find(b"_HID") && find(b"_UID") && find(b"_CRS"));
        // IO descriptor: 0x47, decode16, min 0x3f8, max 0x3f8, align 1, len 8.
        assert!(find(&[0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8]));
    }
}
