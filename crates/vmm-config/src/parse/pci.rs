//! PCI placement: `-device pcie-root-port,…`, `pci-bridge,…`,
//! `pcie-pci-bridge,…`, and `bus=`, `addr=`,
//! `multifunction=` on the virtio-*-pci devices (their `bootindex=` is the
//! device's own, as on virtio-mmio), resolved
//! the way QEMU 7.2 realizes devices: in command-line order, an absent
//! `addr` taking the first slot whose function 0 is free, and QEMU's own
//! messages for a bus that does not exist, a slot taken, a function in a
//! single-function slot.

use crate::config::{Chipset, DeviceAddr, PciAddr, PciBus, PortModel, RootPortConfig};
use crate::opts::Opts;
use crate::ConfigError;

/// The virtio devices' PCI addresses (by index among the virtio devices),
/// the root ports, the `-device` AHCI controllers' addresses (by index
/// among them), the display device's address, the watchdog's, and the USB
/// controllers' (by index among them).
pub(super) type Resolved = (
    Vec<(usize, DeviceAddr)>,
    Vec<RootPortConfig>,
    Vec<(usize, PciAddr)>,
    Option<PciAddr>,
    Option<(Option<String>, PciAddr)>,
    Vec<(usize, PciAddr)>,
);

/// The placement options of one PCI device, before resolution.
struct Request {
    driver: String,
    id: Option<String>,
    kind: Kind,
    bus: Option<String>,
    addr: Option<(u8, u8)>,
    multifunction: bool,
}

enum Kind {
    /// The `n`th virtio device of the command line.
    Virtio(usize),
    /// The `n`th `-device ich9-ahci` of the command line.
    Ahci(usize),
    /// The display device.
    Display,
    /// The i6300esb watchdog.
    Watchdog,
    /// The `n`th `-device qemu-xhci`.
    Xhci(usize),
    Port {
        model: PortModel,
        port: u8,
        chassis: u8,
        slot: u16,
        hotplug: bool,
    },
}

/// The PCI devices seen so far, in command-line order.
#[derive(Default)]
pub(super) struct PciSpecs {
    requests: Vec<Request>,
}

/// A number as QEMU's integer properties take it: decimal or 0x-hex.
fn number(o: &Opts, key: &str, v: &str, max: u64) -> Result<u64, ConfigError> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.ok().filter(|&n| n <= max).ok_or_else(|| {
        o.error(format!(
            "Parameter '{key}' expects a number up to {max}, not '{v}'"
        ))
    })
}

/// `addr=SLOT[.FUNCTION]`, both hexadecimal with an optional 0x (QEMU's
/// PCI device address syntax).
pub(super) fn parse_addr(o: &Opts, driver: &str, v: &str) -> Result<(u8, u8), ConfigError> {
    let hex = |s: &str| {
        let s = s.strip_prefix("0x").unwrap_or(s);
        u8::from_str_radix(s, 16).ok()
    };
    let (slot, function) = match v.split_once('.') {
        Some((s, f)) => (hex(s), hex(f)),
        None => (hex(v), Some(0)),
    };
    match (slot, function) {
        (Some(s), Some(f)) if s < 32 && f < 8 => Ok((s, f)),
        _ => Err(o.error(format!("Property '{driver}.addr' doesn't take value '{v}'"))),
    }
}

impl PciSpecs {
    /// Takes `bus=`, `addr=` and `multifunction=` off a PCI
    /// device's options; `virtio` is its index among the virtio devices.
    pub(super) fn device(
        &mut self,
        driver: &str,
        o: &mut Opts,
        virtio: usize,
    ) -> Result<(), ConfigError> {
        let mut r = self.common(driver, o)?;
        r.kind = Kind::Virtio(virtio);
        self.requests.push(r);
        Ok(())
    }

    /// `-device ich9-ahci|ahci,id=,bus=,addr=`, the `n`th of them.
    pub(super) fn ahci(&mut self, driver: &str, o: &mut Opts, n: usize) -> Result<(), ConfigError> {
        let mut r = self.common(driver, o)?;
        r.kind = Kind::Ahci(n);
        self.requests.push(r);
        Ok(())
    }

    /// Takes the placement options (and `id=`) off the display device's;
    /// returns its id.
    pub(super) fn display(
        &mut self,
        driver: &str,
        o: &mut Opts,
    ) -> Result<Option<String>, ConfigError> {
        let mut r = self.common(driver, o)?;
        r.kind = Kind::Display;
        let id = r.id.clone();
        self.requests.push(r);
        Ok(id)
    }

    /// Takes the placement options (and `id=`) off `-device i6300esb`.
    pub(super) fn watchdog(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let mut r = self.common("i6300esb", o)?;
        r.kind = Kind::Watchdog;
        self.requests.push(r);
        Ok(())
    }

    /// Takes the placement options (and `id=`) off `-device qemu-xhci`,
    /// the `n`th of them; returns its id.
    pub(super) fn xhci(&mut self, o: &mut Opts, n: usize) -> Result<Option<String>, ConfigError> {
        let mut r = self.common("qemu-xhci", o)?;
        r.kind = Kind::Xhci(n);
        let id = r.id.clone();
        self.requests.push(r);
        Ok(id)
    }

    /// Moves the request just made to the front, so it takes the first
    /// free slot before every `-device` (`-vga std`, which QEMU makes
    /// with the machine).
    pub(super) fn first_is_last(&mut self) {
        if let Some(r) = self.requests.pop() {
            self.requests.insert(0, r);
        }
    }

    /// `-device pcie-root-port,port=,chassis=,slot=,id=,bus=,addr=`.
    pub(super) fn root_port(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let mut r = self.common("pcie-root-port", o)?;
        let num = |o: &mut Opts, key: &str, max: u64| -> Result<u64, ConfigError> {
            match o.get(key) {
                Some(v) => number(o, key, &v, max),
                None => Ok(0),
            }
        };
        let port = num(o, "port", 0xff)? as u8;
        let chassis = num(o, "chassis", 0xff)? as u8;
        let slot = num(o, "slot", 0x1fff)? as u16;
        let hotplug = o.get_bool("hotplug")?.unwrap_or(true);
        if r.id.is_none() {
            return Err(o.error(
                "pcie-root-port needs an id (devices behind it name it as their bus)".into(),
            ));
        }
        r.kind = Kind::Port {
            model: PortModel::RootPort,
            port,
            chassis,
            slot,
            hotplug,
        };
        self.requests.push(r);
        Ok(())
    }

    /// `-device pci-bridge,chassis_nr=,shpc=,msi=,id=,bus=,addr=` and
    /// `-device pcie-pci-bridge,msi=,id=,bus=,addr=`. Neither has QEMU's
    /// standard hot-plug controller (SHPC): `shpc=on` is refused, and
    /// without it QEMU's `pci-bridge` has no MSI either, so its `msi=` is
    /// moot. `pcie-pci-bridge` has MSI (registers only: nothing raises it),
    /// so `msi=off` is refused.
    pub(super) fn pci_bridge(&mut self, model: PortModel, o: &mut Opts) -> Result<(), ConfigError> {
        let driver = model.driver();
        let mut r = self.common(driver, o)?;
        let mut chassis = 0;
        if model == PortModel::PciBridge {
            chassis = match o.get("chassis_nr") {
                Some(v) => number(o, "chassis_nr", &v, 0xff)? as u8,
                None => 0,
            };
            if chassis == 0 {
                // QEMU's slotid_cap_init refuses it too.
                return Err(o.error(
                    "Bridge chassis not specified. Each bridge is required to be assigned a unique chassis id > 0.".into(),
                ));
            }
            if o.get_bool("shpc")? == Some(true) {
                return Err(o.error(
                    "pci-bridge has no standard hot-plug controller here: use shpc=off".into(),
                ));
            }
            o.ignore(&["msi"]);
        } else if o.get("msi").is_some_and(|v| v == "off") {
            return Err(
                o.error("pcie-pci-bridge always has MSI here: msi=off is not supported".into())
            );
        }
        if r.id.is_none() {
            return Err(o.error(format!(
                "{driver} needs an id (devices behind it name it as their bus)"
            )));
        }
        r.kind = Kind::Port {
            model,
            port: 0,
            chassis,
            slot: 0,
            // No standard hot-plug controller: nothing hot-plugs behind it.
            hotplug: false,
        };
        self.requests.push(r);
        Ok(())
    }

    fn common(&self, driver: &str, o: &mut Opts) -> Result<Request, ConfigError> {
        let addr = match o.get("addr") {
            Some(a) => Some(parse_addr(o, driver, &a)?),
            None => None,
        };
        Ok(Request {
            driver: driver.to_string(),
            id: o.get("id"),
            kind: Kind::Virtio(0),
            bus: o.get("bus"),
            addr,
            multifunction: o.get_bool("multifunction")?.unwrap_or(false),
        })
    }

    /// Resolves every request in order: the virtio devices' addresses as
    /// (index, address), and the root ports.
    pub(super) fn resolve(self, chipset: Chipset) -> Result<Resolved, ConfigError> {
        let err = |m: String| ConfigError::new("-device", m);
        let Some(root_name) = chipset.root_bus() else {
            return match self.requests.first() {
                Some(r) => Err(err(format!("No 'PCI' bus found for device '{}'", r.driver))),
                None => Ok((Vec::new(), Vec::new(), Vec::new(), None, None, Vec::new())),
            };
        };
        let mut slots = Slots::new(chipset);
        let mut devices = Vec::new();
        let mut display = None;
        let mut watchdog = None;
        let mut ports: Vec<RootPortConfig> = Vec::new();
        let mut ahci = Vec::new();
        let mut xhci = Vec::new();
        for r in self.requests {
            let bus = match r.bus.as_deref() {
                None => PciBus::Root,
                Some(b) if b == root_name => PciBus::Root,
                Some(b) => ports
                    .iter()
                    .position(|p| p.id == b)
                    .map(PciBus::Port)
                    .ok_or_else(|| err(format!("Bus '{b}' not found")))?,
            };
            let parent = match bus {
                PciBus::Root => None,
                PciBus::Port(i) => Some(ports[i].model),
            };
            if let Kind::Port { model, .. } = r.kind {
                let driver = model.driver();
                if model != PortModel::PciBridge && chipset != Chipset::Q35 {
                    return Err(err(format!(
                        "{driver} needs a PCI Express root complex: use machine q35"
                    )));
                }
                let fits = match model {
                    PortModel::RootPort => parent.is_none(),
                    // On the root complex or a root port.
                    PortModel::PcieToPciBridge => parent.is_none_or(|p| p == PortModel::RootPort),
                    // Anywhere a conventional device may sit.
                    PortModel::PciBridge => true,
                };
                if !fits {
                    let place = match model {
                        PortModel::PcieToPciBridge => format!("{root_name} or a pcie-root-port"),
                        _ => root_name.to_string(),
                    };
                    return Err(err(format!(
                        "{driver} '{}' must sit on {place}",
                        r.id.as_deref().unwrap_or_default()
                    )));
                }
            }
            // Behind a root port only slot 0 exists; behind a PCI bridge
            // all 32.
            let one_slot = parent == Some(PortModel::RootPort);
            let (slot, function) = match r.addr {
                Some(a) => a,
                None => (
                    slots.first_free(bus, one_slot).ok_or_else(|| {
                        err(format!(
                            "PCI: no slot/function available for {}, all in use or reserved",
                            r.driver
                        ))
                    })?,
                    0,
                ),
            };
            if one_slot && slot != 0 {
                return Err(err(format!(
                    "PCI: slot {slot} is not valid for {}, parent device only allows plugging into slot 0.",
                    r.driver
                )));
            }
            if matches!(r.kind, Kind::Display) && bus != PciBus::Root {
                return Err(err(format!(
                    "{} must sit on {root_name}: a bridge's window is too small for its video memory",
                    r.driver
                )));
            }
            slots.take(bus, slot, function, &r.driver, r.multifunction)?;
            let addr = PciAddr {
                bus,
                slot,
                function,
                multifunction: r.multifunction,
            };
            match r.kind {
                Kind::Virtio(i) => devices.push((i, DeviceAddr::Pci { addr })),
                Kind::Ahci(i) => ahci.push((i, addr)),
                Kind::Display => display = Some(addr),
                Kind::Watchdog => watchdog = Some((r.id.clone(), addr)),
                Kind::Xhci(i) => xhci.push((i, addr)),
                Kind::Port {
                    model,
                    port,
                    chassis,
                    slot,
                    hotplug,
                } => {
                    let id = r.id.unwrap_or_default();
                    if ports.iter().any(|p| p.id == id) {
                        return Err(err(format!("Duplicate device ID '{id}'")));
                    }
                    ports.push(RootPortConfig {
                        model,
                        id,
                        port,
                        chassis,
                        slot,
                        addr,
                        hotplug,
                    })
                }
            }
        }
        Ok((devices, ports, ahci, display, watchdog, xhci))
    }
}

/// Which functions are taken, by whom.
struct Slots {
    taken: Vec<(PciBus, u8, u8, String, bool)>,
}

impl Slots {
    /// The chipset's own functions taken.
    fn new(chipset: Chipset) -> Self {
        let own: &[(u8, u8, &str, bool)] = match chipset {
            Chipset::I440fx => &[
                (0, 0, "i440FX", false),
                (1, 0, "PIIX3", true),
                (1, 3, "PIIX4_PM", false),
            ],
            Chipset::Q35 => &[
                (0, 0, "mch", false),
                (31, 0, "ICH9-LPC", true),
                (31, 2, "ich9-ahci", false),
            ],
            Chipset::Microvm => &[],
        };
        Slots {
            taken: own
                .iter()
                .map(|&(s, f, name, mf)| (PciBus::Root, s, f, name.to_string(), mf))
                .collect(),
        }
    }

    fn at(&self, bus: PciBus, slot: u8, function: u8) -> Option<&(PciBus, u8, u8, String, bool)> {
        self.taken
            .iter()
            .find(|t| t.0 == bus && t.1 == slot && t.2 == function)
    }

    fn first_free(&self, bus: PciBus, one_slot: bool) -> Option<u8> {
        let last = if one_slot { 0 } else { 31 };
        (0..=last).find(|&s| self.at(bus, s, 0).is_none())
    }

    fn take(
        &mut self,
        bus: PciBus,
        slot: u8,
        function: u8,
        driver: &str,
        multifunction: bool,
    ) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError::new("-device", m);
        if let Some(t) = self.at(bus, slot, function) {
            return Err(err(format!(
                "PCI: slot {slot} function {function} not available for {driver}, in use by {}",
                t.3
            )));
        }
        if function > 0 {
            if self.at(bus, slot, 0).is_some_and(|f0| !f0.4) {
                return Err(err(format!(
                    "PCI: single function device can't be populated in function {slot:x}.{function:x}"
                )));
            }
        } else if !multifunction {
            if let Some(f) = self
                .taken
                .iter()
                .find(|t| t.0 == bus && t.1 == slot && t.2 > 0)
            {
                return Err(err(format!(
                    "PCI: {slot:x}.0 indicates single function, but {slot:x}.{:x} is already populated.",
                    f.2
                )));
            }
        }
        self.taken
            .push((bus, slot, function, driver.to_string(), multifunction));
        Ok(())
    }
}
