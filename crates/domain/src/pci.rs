//! PCI addresses and controllers of pc and q35 domains, filled in at define
//! time as libvirt 9.0's qemu driver fills them in
//! (`src/qemu/qemu_domain_address.c`, `src/conf/domain_addr.c`), so that
//! `virsh dumpxml` after `define` shows what libvirt shows and the guest
//! finds each device where it would under libvirt and QEMU.
//!
//! The rules, in libvirt's order:
//! - the default controllers: a USB controller (`piix3-uhci` on pc,
//!   `qemu-xhci` on q35), q35's SATA controller, the root bus (`pci-root`,
//!   `pcie-root`), and the controllers disks and virtio consoles imply;
//! - the chipset's own functions: PIIX3's ISA bridge, IDE, USB and PM at
//!   00:01.0-3 on pc; ICH9's LPC, SATA and SMBus at 00:1f.0/2/3 (USB2 at
//!   00:1d, HD audio at 00:1b) on q35; the primary video at slot 2 (pc) or
//!   1 (q35);
//! - every other device at the first free address that takes it, by kind:
//!   PCI controllers, filesystems, NICs, sound, other controllers, virtio
//!   disks, host devices, the balloon, RNGs, watchdogs, videos, shared
//!   memory, virtio inputs, PCI serial ports, then the rarer virtio kinds;
//! - on q35 a PCI Express endpoint never sits on the root bus: each gets a
//!   `pcie-root-port` of its own (added as needed, plus one spare for
//!   hot-plug when the definition named no PCI controller), the ports
//!   sharing slots function by function from the first free slot;
//! - multifunction='on' on function 0 of a slot that has others, and each
//!   root port's `<model name>`, chassis (its index) and port (slot << 3 |
//!   function).
//!
//! - on q35 the first conventional PCI device (i6300esb, e1000, …) that
//!   finds no PCI slot gets a `pcie-to-pci-bridge` and a `pcie-root-port`
//!   for it (`virDomainPCIAddressSetGrow`); in the real pass the bridge,
//!   a controller placed before the endpoints, takes the first root port.
//!
//! Not done (libvirt would add a bridge): a pc domain that fills all 29
//! free slots of bus 0, or a q35 one that fills its pcie-to-pci-bridge;
//! such a device is left without an address and derivation refuses it.

use crate::model::{Domain, OtherDevice};
use crate::xml::Element;

/// The PC chipsets with a PCI bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chipset {
    /// `pc`, `pc-i440fx-*`: devices on `pci.0`.
    I440fx,
    /// `q35`, `pc-q35-*`: endpoints behind `pcie-root-port`s on `pcie.0`.
    Q35,
}

impl Chipset {
    /// The chipset of a domain's machine type (`pc` when it names none);
    /// `None` for machines without PCI (microvm) and non-x86 guests.
    pub fn of(dom: &Domain) -> Option<Chipset> {
        if !matches!(dom.os.arch.as_deref(), None | Some("x86_64" | "i686")) {
            return None;
        }
        use rvirt_vmm_config::Chipset as C;
        match C::of(dom.os.machine.as_deref().unwrap_or("pc"))? {
            C::I440fx => Some(Chipset::I440fx),
            C::Q35 => Some(Chipset::Q35),
            C::Microvm => None,
        }
    }

    /// The `bus=` name of a PCI bus: the root bus's, or `pci.N`, the alias
    /// of the controller with index N.
    pub fn bus_id(self, bus: u8) -> String {
        match (self, bus) {
            (Chipset::I440fx, 0) => "pci.0".into(),
            (Chipset::Q35, 0) => "pcie.0".into(),
            (_, n) => format!("pci.{n}"),
        }
    }
}

/// A `<address type='pci'>` in domain 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
    /// `multifunction='on'|'off'`, when written.
    pub multifunction: Option<bool>,
}

/// libvirt's numbers: hexadecimal with `0x`, decimal otherwise.
fn number(v: &str) -> Option<u32> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

impl PciAddress {
    pub fn new(bus: u8, slot: u8, function: u8) -> Self {
        PciAddress {
            bus,
            slot,
            function,
            multifunction: None,
        }
    }

    /// Reads a `type='pci'` address; `None` for other types and for
    /// values out of range (validation reports those).
    pub fn read(e: &Element) -> Option<Self> {
        if e.attr("type") != Some("pci") {
            return None;
        }
        let n = |k: &str| e.attr(k).map_or(Some(0), number);
        if n("domain")? != 0 {
            return None;
        }
        let bus = u8::try_from(n("bus")?).ok()?;
        let slot = u8::try_from(n("slot")?).ok().filter(|s| *s < 32)?;
        let function = u8::try_from(n("function")?).ok().filter(|f| *f < 8)?;
        let multifunction = match e.attr("multifunction") {
            Some("on") => Some(true),
            Some("off") => Some(false),
            _ => None,
        };
        Some(PciAddress {
            bus,
            slot,
            function,
            multifunction,
        })
    }

    /// The element as libvirt writes it.
    pub fn element(&self) -> Element {
        Element::new("address")
            .with_attr("type", Some("pci"))
            .with_attr("domain", Some("0x0000"))
            .with_attr("bus", Some(format!("0x{:02x}", self.bus)))
            .with_attr("slot", Some(format!("0x{:02x}", self.slot)))
            .with_attr("function", Some(format!("0x{:x}", self.function)))
            .with_attr(
                "multifunction",
                self.multifunction.map(|m| if m { "on" } else { "off" }),
            )
    }

    /// QEMU's `addr=`: `0x4`, or `0x2.0x1` for a function other than 0.
    pub fn qemu_addr(&self) -> String {
        if self.function == 0 {
            format!("{:#x}", self.slot)
        } else {
            format!("{:#x}.{:#x}", self.slot, self.function)
        }
    }
}

/// Whether a device still wants a PCI address: it has no address, or an
/// empty `type='pci'` one (libvirt's `virDeviceInfoPCIAddressIsWanted`).
fn wanted(a: Option<&Element>) -> bool {
    match a {
        None => true,
        Some(e) => {
            e.attr("type") == Some("pci")
                && ["domain", "bus", "slot", "function"]
                    .iter()
                    .all(|k| e.attr(k).is_none_or(|v| number(v) == Some(0)))
        }
    }
}

/// What a device plugs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plug {
    /// A conventional PCI slot: pc's root bus or a PCI bridge.
    Pci,
    /// A PCI Express slot below the root bus: a root port's.
    Pcie,
    /// A function of a root bus slot (root ports share slots).
    RootPort,
    /// A `pcie-to-pci-bridge`: behind a root port.
    PcieToPciBridge,
}

impl Plug {
    /// A virtio device: PCI Express on q35 unless transitional.
    fn virtio(chipset: Chipset, model: Option<&str>) -> Plug {
        match (chipset, model) {
            (Chipset::Q35, Some("virtio-transitional")) | (Chipset::I440fx, _) => Plug::Pci,
            (Chipset::Q35, _) => Plug::Pcie,
        }
    }

    /// A PCI Express device: on pc, a conventional one.
    fn pcie(chipset: Chipset) -> Plug {
        match chipset {
            Chipset::I440fx => Plug::Pci,
            Chipset::Q35 => Plug::Pcie,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BusKind {
    PciRoot,
    PcieRoot,
    RootPort,
    PciBridge,
    /// A `pcie-to-pci-bridge`: conventional slots 1-31 on q35.
    PcieToPciBridge,
    /// A root port the probe pass adds for a pcie-to-pci-bridge only, so
    /// that the spare port is another one (libvirt's comment in
    /// `virDomainPCIAddressSetGrow`); a plain root port after it.
    BridgePort,
    /// A controller rvirt places nothing on by itself.
    Other,
}

impl BusKind {
    fn of_model(model: Option<&str>) -> BusKind {
        match model {
            Some("pci-root") => BusKind::PciRoot,
            Some("pcie-root") => BusKind::PcieRoot,
            Some("pcie-root-port") => BusKind::RootPort,
            Some("pci-bridge") => BusKind::PciBridge,
            Some("pcie-to-pci-bridge") => BusKind::PcieToPciBridge,
            _ => BusKind::Other,
        }
    }

    fn accepts(self, plug: Plug) -> bool {
        matches!(
            (self, plug),
            (
                BusKind::PciRoot | BusKind::PciBridge | BusKind::PcieToPciBridge,
                Plug::Pci
            ) | (BusKind::RootPort, Plug::Pcie | Plug::PcieToPciBridge)
                | (BusKind::BridgePort, Plug::PcieToPciBridge)
                | (BusKind::PcieRoot, Plug::RootPort)
        )
    }

    fn slots(self) -> std::ops::RangeInclusive<u8> {
        match self {
            BusKind::RootPort | BusKind::BridgePort => 0..=0,
            _ => 1..=31,
        }
    }
}

#[derive(Debug, Clone)]
struct Bus {
    kind: BusKind,
    /// Functions in use, a bit per function, per slot.
    used: [u8; 32],
    /// Slots whose functions are handed out one by one (root ports).
    aggregate: u32,
}

/// The address set: what is taken on each bus.
#[derive(Debug)]
struct Addrs {
    buses: Vec<Bus>,
    /// The first pass may add root ports for endpoints that find no slot.
    grow: bool,
}

impl Addrs {
    /// Buses for the domain's PCI controllers (the missing indices as root
    /// ports on q35, bridges on pc), with every address already given
    /// marked as taken.
    fn new(d: &Domain, chipset: Chipset, grow: bool) -> Addrs {
        let pci: Vec<(usize, Option<&str>)> = controllers(d, "pci")
            .map(|o| (index(o).unwrap_or(0) as usize, o.model()))
            .collect();
        let n = pci.iter().map(|(i, _)| i + 1).max().unwrap_or(1);
        let default = match chipset {
            Chipset::I440fx => BusKind::PciBridge,
            Chipset::Q35 => BusKind::RootPort,
        };
        let mut buses: Vec<Bus> = (0..n.min(256))
            .map(|i| Bus {
                kind: match i {
                    0 if chipset == Chipset::Q35 => BusKind::PcieRoot,
                    0 => BusKind::PciRoot,
                    _ => default,
                },
                used: [0; 32],
                aggregate: 0,
            })
            .collect();
        for (i, model) in pci {
            if let Some(b) = buses.get_mut(i) {
                b.kind = BusKind::of_model(model);
            }
        }
        let mut addrs = Addrs { buses, grow };
        for a in all_addresses(d) {
            addrs.reserve(a);
        }
        addrs
    }

    /// A q35 machine with no bus yet for conventional PCI devices: the
    /// first one gets a pcie-to-pci-bridge on a root port of its own.
    fn needs_pcie_to_pci_bridge(&self) -> bool {
        self.buses.first().map(|b| b.kind) == Some(BusKind::PcieRoot)
            && self.buses.len() < 255
            && !self.buses.iter().any(|b| b.kind.accepts(Plug::Pci))
    }

    fn slot_in_use(&self, bus: u8, slot: u8) -> bool {
        self.buses
            .get(usize::from(bus))
            .is_some_and(|b| b.used[usize::from(slot)] != 0)
    }

    fn reserve(&mut self, a: PciAddress) {
        if let Some(b) = self.buses.get_mut(usize::from(a.bus)) {
            b.used[usize::from(a.slot)] |= 1 << a.function;
        }
    }

    /// The first free address for `plug` (any function, or `function` of
    /// a free slot), taken; on the first pass a new root port when an
    /// endpoint finds none.
    fn next(&mut self, plug: Plug, function: Option<u8>) -> Option<PciAddress> {
        let found = self.buses.iter().enumerate().find_map(|(i, b)| {
            if !b.kind.accepts(plug) {
                return None;
            }
            b.kind.slots().find_map(|s| {
                let used = b.used[usize::from(s)];
                match function {
                    None if plug == Plug::RootPort && b.aggregate & (1 << s) != 0 => {
                        (0..8u8).find(|f| used & (1 << f) == 0).map(|f| (i, s, f))
                    }
                    None => (used == 0).then_some((i, s, 0)),
                    Some(f) => (used == 0).then_some((i, s, f)),
                }
            })
        });
        let (bus, slot, function) = match found {
            Some(x) => x,
            None if self.grow && plug == Plug::Pcie && self.buses.len() < 256 => {
                self.buses.push(Bus {
                    kind: BusKind::RootPort,
                    used: [0; 32],
                    aggregate: 0,
                });
                (self.buses.len() - 1, 0, function.unwrap_or(0))
            }
            None if self.grow && plug == Plug::Pci && self.needs_pcie_to_pci_bridge() => {
                for kind in [BusKind::BridgePort, BusKind::PcieToPciBridge] {
                    self.buses.push(Bus {
                        kind,
                        used: [0; 32],
                        aggregate: 0,
                    });
                }
                (self.buses.len() - 1, 1, function.unwrap_or(0))
            }
            None => return None,
        };
        let b = &mut self.buses[bus];
        b.used[usize::from(slot)] |= 1 << function;
        if plug == Plug::RootPort {
            b.aggregate |= 1 << slot;
        }
        Some(PciAddress::new(bus as u8, slot, function))
    }
}

fn controllers<'a>(d: &'a Domain, ty: &'a str) -> impl Iterator<Item = &'a OtherDevice> {
    d.devices
        .others
        .iter()
        .filter(move |o| o.kind() == "controller" && o.dev_type() == Some(ty))
}

fn index(o: &OtherDevice) -> Option<u32> {
    o.element.attr("index").and_then(number)
}

/// Every PCI address the definition gives, for the address set.
fn all_addresses(d: &Domain) -> Vec<PciAddress> {
    let devs = &d.devices;
    let infos = devs
        .disks
        .iter()
        .map(|x| &x.info)
        .chain(devs.interfaces.iter().map(|x| &x.info))
        .chain(devs.serials.iter().map(|x| &x.info))
        .chain(devs.consoles.iter().map(|x| &x.info))
        .chain(devs.channels.iter().map(|x| &x.info));
    infos
        .filter_map(|i| i.address.as_ref())
        .chain(
            devs.others
                .iter()
                .filter_map(|o| o.element.child("address")),
        )
        .filter_map(PciAddress::read)
        .collect()
}

/// A device the assignment walks over.
#[derive(Debug, Clone, Copy)]
enum Dev {
    Disk(usize),
    Net(usize),
    Serial(usize),
    Other(usize),
}

fn address(d: &Domain, dev: Dev) -> Option<&Element> {
    let devs = &d.devices;
    match dev {
        Dev::Disk(i) => devs.disks[i].info.address.as_ref(),
        Dev::Net(i) => devs.interfaces[i].info.address.as_ref(),
        Dev::Serial(i) => devs.serials[i].info.address.as_ref(),
        Dev::Other(i) => devs.others[i].element.child("address"),
    }
}

fn set_address(d: &mut Domain, dev: Dev, a: PciAddress) {
    let devs = &mut d.devices;
    let el = a.element();
    match dev {
        Dev::Disk(i) => devs.disks[i].info.address = Some(el),
        Dev::Net(i) => devs.interfaces[i].info.address = Some(el),
        Dev::Serial(i) => devs.serials[i].info.address = Some(el),
        Dev::Other(i) => {
            let e = &mut devs.others[i].element;
            e.take_child("address");
            e.push(el);
        }
    }
}

/// Gives `dev` the next free address for `plug` if it still wants one.
fn place(d: &mut Domain, addrs: &mut Addrs, dev: Dev, plug: Plug) {
    if !wanted(address(d, dev)) {
        return;
    }
    if let Some(a) = addrs.next(plug, None) {
        set_address(d, dev, a);
    }
}

/// Indices into `others` of the devices of one element name.
fn others_of(d: &Domain, kind: &str) -> Vec<usize> {
    (0..d.devices.others.len())
        .filter(|&i| d.devices.others[i].kind() == kind)
        .collect()
}

fn video_model(o: &OtherDevice) -> Option<&str> {
    o.element.child("model").and_then(|m| m.attr("type"))
}

fn video_is_pci(o: &OtherDevice) -> bool {
    !matches!(video_model(o), Some("none" | "ramfb"))
}

/// The USB2 controllers QEMU groups as functions of one slot, with each
/// one's function and multifunction setting.
fn usb2_function(model: Option<&str>) -> Option<(u8, Option<bool>)> {
    Some(match model? {
        "ich9-ehci1" => (7, None),
        "ich9-uhci1" => (0, Some(true)),
        "ich9-uhci2" => (1, None),
        "ich9-uhci3" => (2, None),
        _ => return None,
    })
}

/// Where the chipset's own functions are, and the places QEMU gives the
/// primary video and (q35) ICH9's USB2 and HD audio when they are free
/// (`qemuDomainValidateDevicePCISlotsPIIX3`/`Q35`).
fn chipset_slots(d: &mut Domain, chipset: Chipset, addrs: &mut Addrs) {
    let fixed = |a: PciAddress, multi: Option<bool>| PciAddress {
        multifunction: multi,
        ..a
    };
    let ctrls = others_of(d, "controller");
    match chipset {
        Chipset::I440fx => {
            for &i in &ctrls {
                let o = &d.devices.others[i];
                let at = match (o.dev_type(), index(o).unwrap_or(0), o.model()) {
                    (Some("ide"), 0, _) => PciAddress::new(0, 1, 1),
                    (Some("usb"), 0, None | Some("piix3-uhci")) => PciAddress::new(0, 1, 2),
                    _ => continue,
                };
                if wanted(o.element.child("address")) {
                    set_address(d, Dev::Other(i), at);
                }
                addrs.reserve(at);
            }
            addrs.reserve(PciAddress::new(0, 1, 0));
            addrs.reserve(PciAddress::new(0, 1, 3));
        }
        Chipset::Q35 => {
            for &i in &ctrls {
                let o = &d.devices.others[i];
                let no_address = o.element.child("address").is_none();
                match (o.dev_type(), index(o).unwrap_or(0), o.model()) {
                    (Some("sata"), 0, _) => {
                        let at = PciAddress::new(0, 0x1f, 2);
                        if wanted(o.element.child("address")) {
                            set_address(d, Dev::Other(i), at);
                        }
                        addrs.reserve(at);
                    }
                    (Some("usb"), _, Some("ich9-uhci1")) if no_address => {
                        let slot = [0x1d, 0x1a].into_iter().find(|&s| !addrs.slot_in_use(0, s));
                        if let Some(s) = slot {
                            let at = PciAddress::new(0, s, 0);
                            addrs.reserve(at);
                            set_address(d, Dev::Other(i), fixed(at, Some(true)));
                        }
                    }
                    _ => {}
                }
            }
            addrs.reserve(PciAddress::new(0, 0x1f, 0));
            addrs.reserve(PciAddress::new(0, 0x1f, 3));
        }
    }
    // The primary video: QEMU's first free slot after the chipset's.
    let video_slot = match chipset {
        Chipset::I440fx => 2,
        Chipset::Q35 => 1,
    };
    if let Some(&v) = others_of(d, "video").first() {
        let o = &d.devices.others[v];
        if video_is_pci(o) && wanted(o.element.child("address")) {
            if addrs.slot_in_use(0, video_slot) {
                let plug = video_plug(chipset, o);
                place(d, addrs, Dev::Other(v), plug);
            } else {
                let at = PciAddress::new(0, video_slot, 0);
                addrs.reserve(at);
                set_address(d, Dev::Other(v), at);
            }
        }
    }
    if chipset == Chipset::Q35 && !addrs.slot_in_use(0, 0x1b) {
        let sound = others_of(d, "sound").into_iter().find(|&i| {
            let o = &d.devices.others[i];
            o.model() == Some("ich9") && wanted(o.element.child("address"))
        });
        if let Some(i) = sound {
            let at = PciAddress::new(0, 0x1b, 0);
            addrs.reserve(at);
            set_address(d, Dev::Other(i), at);
        }
    }
}

fn video_plug(chipset: Chipset, o: &OtherDevice) -> Plug {
    match video_model(o) {
        Some("virtio") => Plug::virtio(chipset, None),
        Some("bochs") => Plug::pcie(chipset),
        _ => Plug::Pci,
    }
}

fn nic_plug(chipset: Chipset, model: Option<&str>) -> Plug {
    match model {
        Some("virtio" | "virtio-non-transitional") => Plug::virtio(chipset, None),
        Some("virtio-transitional") => Plug::Pci,
        Some("e1000e" | "igb") => Plug::pcie(chipset),
        _ => Plug::Pci,
    }
}

fn controller_plug(chipset: Chipset, o: &OtherDevice) -> Option<Plug> {
    let model = o.model();
    Some(match o.dev_type()? {
        "pci" => match model {
            Some("pcie-root-port") => Plug::RootPort,
            Some("pci-bridge") => Plug::Pci,
            Some("pcie-to-pci-bridge") => Plug::PcieToPciBridge,
            _ => return None,
        },
        "usb" => match model {
            Some("qemu-xhci" | "nec-xhci") => Plug::pcie(chipset),
            Some("none") => return None,
            _ => Plug::Pci,
        },
        "scsi" => match model {
            Some("virtio-scsi" | "virtio-non-transitional") => Plug::virtio(chipset, None),
            Some("ncr53c90") => return None,
            _ => Plug::Pci,
        },
        "virtio-serial" => Plug::virtio(chipset, model),
        "sata" => Plug::pcie(chipset),
        "ide" => Plug::Pci,
        _ => return None,
    })
}

/// One pass of `qemuDomainAssignDevicePCISlots`: every device that wants an
/// address gets the next free one, kind by kind in libvirt's order.
fn assign_devices(d: &mut Domain, chipset: Chipset, addrs: &mut Addrs) {
    let ctrls = others_of(d, "controller");
    // PCI controllers first: the root ports take their slots before any
    // device looks for one.
    for &i in &ctrls {
        let o = &d.devices.others[i];
        if o.dev_type() == Some("pci") && !matches!(o.model(), Some("pci-root" | "pcie-root")) {
            if let Some(plug) = controller_plug(chipset, o) {
                place(d, addrs, Dev::Other(i), plug);
            }
        }
    }
    for i in others_of(d, "filesystem") {
        place(d, addrs, Dev::Other(i), Plug::virtio(chipset, None));
    }
    for i in 0..d.devices.interfaces.len() {
        let iface = &d.devices.interfaces[i];
        if iface.iface_type != "hostdev" {
            let plug = nic_plug(chipset, iface.model.as_deref());
            place(d, addrs, Dev::Net(i), plug);
        }
    }
    for i in others_of(d, "sound") {
        if !matches!(d.devices.others[i].model(), Some("sb16" | "pcspk" | "usb")) {
            place(d, addrs, Dev::Other(i), Plug::Pci);
        }
    }
    for &i in &ctrls {
        let o = &d.devices.others[i];
        let ty = o.dev_type();
        if ty == Some("pci") || (ty == Some("ide") && index(o).unwrap_or(0) == 0) {
            continue;
        }
        let Some(plug) = controller_plug(chipset, o) else {
            continue;
        };
        if !wanted(o.element.child("address")) {
            continue;
        }
        match usb2_function(o.model()).filter(|_| ty == Some("usb")) {
            Some((function, multi)) => usb2(d, addrs, i, plug, function, multi),
            None => place(d, addrs, Dev::Other(i), plug),
        }
    }
    for i in 0..d.devices.disks.len() {
        if d.devices.disks[i].bus() == "virtio" {
            place(d, addrs, Dev::Disk(i), Plug::virtio(chipset, None));
        }
    }
    for i in others_of(d, "hostdev") {
        let e = &d.devices.others[i].element;
        let subsys = e.attr("mode").is_none_or(|m| m == "subsystem");
        if subsys && matches!(e.attr("type"), Some("pci" | "scsi_host" | "mdev")) {
            place(d, addrs, Dev::Other(i), Plug::pcie(chipset));
        }
    }
    if let Some(&i) = others_of(d, "memballoon").first() {
        let model = d.devices.others[i].model();
        if model.is_some_and(|m| m.starts_with("virtio")) {
            place(d, addrs, Dev::Other(i), Plug::virtio(chipset, model));
        }
    }
    for i in others_of(d, "rng") {
        let model = d.devices.others[i].model();
        place(d, addrs, Dev::Other(i), Plug::virtio(chipset, model));
    }
    for i in others_of(d, "watchdog") {
        if d.devices.others[i].model() == Some("i6300esb") {
            place(d, addrs, Dev::Other(i), Plug::Pci);
        }
    }
    for i in others_of(d, "video") {
        let o = &d.devices.others[i];
        if video_is_pci(o) {
            let plug = video_plug(chipset, o);
            place(d, addrs, Dev::Other(i), plug);
        }
    }
    for i in others_of(d, "shmem") {
        place(d, addrs, Dev::Other(i), Plug::Pci);
    }
    for i in others_of(d, "input") {
        if d.devices.others[i].element.attr("bus") == Some("virtio") {
            let model = d.devices.others[i].model();
            place(d, addrs, Dev::Other(i), Plug::virtio(chipset, model));
        }
    }
    for i in 0..d.devices.serials.len() {
        if d.devices.serials[i].target_type() == Some("pci-serial") {
            place(d, addrs, Dev::Serial(i), Plug::Pci);
        }
    }
    for kind in ["iommu", "vsock", "memory", "crypto", "panic"] {
        for i in others_of(d, kind) {
            let o = &d.devices.others[i];
            let plug = match (kind, o.model()) {
                ("iommu", Some("virtio")) | ("vsock", Some("virtio")) => {
                    Plug::virtio(chipset, None)
                }
                ("memory", Some("virtio-pmem" | "virtio-mem")) => Plug::virtio(chipset, None),
                ("crypto", Some("virtio")) | ("panic", Some("pvpanic")) => Plug::Pci,
                _ => continue,
            };
            place(d, addrs, Dev::Other(i), plug);
        }
    }
}

/// A USB2 controller joins the slot of its companions with the same index,
/// at its own function; the first of them takes a free slot.
fn usb2(d: &mut Domain, addrs: &mut Addrs, i: usize, plug: Plug, f: u8, multi: Option<bool>) {
    let o = &d.devices.others[i];
    let idx = index(o).unwrap_or(0);
    let companion = d.devices.others.iter().find_map(|c| {
        let same = c.kind() == "controller"
            && c.dev_type() == Some("usb")
            && usb2_function(c.model()).is_some()
            && index(c).unwrap_or(0) == idx;
        same.then(|| c.element.child("address").and_then(PciAddress::read))
            .flatten()
    });
    let at = match companion {
        Some(c) => {
            let at = PciAddress::new(c.bus, c.slot, f);
            addrs.reserve(at);
            Some(at)
        }
        None => addrs.next(plug, Some(f)),
    };
    if let Some(at) = at {
        set_address(
            d,
            Dev::Other(i),
            PciAddress {
                multifunction: multi,
                ..at
            },
        );
    }
}

/// multifunction='on' for the function 0 of every slot where the
/// definition has another function (`virDomainPCIAddressSetAllMulti`),
/// unless it says otherwise.
fn mark_multifunction(d: &mut Domain) {
    let shared: Vec<(u8, u8)> = all_addresses(d)
        .into_iter()
        .filter(|a| a.function != 0)
        .map(|a| (a.bus, a.slot))
        .collect();
    let fix = |e: &mut Element| {
        if let Some(a) = PciAddress::read(e) {
            if a.function == 0 && a.multifunction.is_none() && shared.contains(&(a.bus, a.slot)) {
                e.set_attr("multifunction", "on");
            }
        }
    };
    let devs = &mut d.devices;
    for info in devs
        .disks
        .iter_mut()
        .map(|x| &mut x.info)
        .chain(devs.interfaces.iter_mut().map(|x| &mut x.info))
        .chain(devs.serials.iter_mut().map(|x| &mut x.info))
    {
        if let Some(e) = info.address.as_mut() {
            fix(e);
        }
    }
    for o in &mut devs.others {
        if let Some(e) = o.element.children.iter_mut().find_map(|n| match n {
            crate::xml::Node::Element(e) if e.name == "address" => Some(e),
            _ => None,
        }) {
            fix(e);
        }
    }
}

/// Child order of a controller as libvirt writes it.
fn controller_rank(name: &str) -> usize {
    ["model", "driver", "master", "target", "alias", "address"]
        .iter()
        .position(|n| *n == name)
        .unwrap_or(6)
}

/// Each PCI controller's `<model name>` (the QEMU device) and `<target>`:
/// a root port's chassis is its index and its port slot << 3 | function;
/// a bridge's chassisNr its index.
fn controller_defaults(d: &mut Domain) {
    for o in &mut d.devices.others {
        if o.kind() != "controller" || o.dev_type() != Some("pci") {
            continue;
        }
        let model = o.model().map(str::to_string);
        let idx = index(o).unwrap_or(0);
        let at = o.element.child("address").and_then(PciAddress::read);
        let e = &mut o.element;
        let name = match model.as_deref() {
            Some(m @ ("pcie-root-port" | "pci-bridge")) => m.to_string(),
            // QEMU's name; libvirt writes no <target> for it.
            Some("pcie-to-pci-bridge") => {
                if e.child("model").is_none() {
                    e.push(Element::new("model").with_attr("name", Some("pcie-pci-bridge")));
                    e.sort_children(controller_rank);
                }
                continue;
            }
            _ => continue,
        };
        if e.child("model").is_none() {
            e.push(Element::new("model").with_attr("name", Some(name.clone())));
        }
        if e.child("target").is_none() {
            e.push(Element::new("target"));
        }
        let mut target = e
            .take_child("target")
            .unwrap_or_else(|| Element::new("target"));
        if name == "pci-bridge" {
            if target.attr("chassisNr").is_none() {
                target.set_attr("chassisNr", idx.to_string());
            }
        } else {
            if target.attr("chassis").is_none() {
                target.set_attr("chassis", idx.to_string());
            }
            if let (None, Some(a)) = (target.attr("port"), at) {
                target.set_attr("port", format!("{:#x}", (a.slot << 3) | a.function));
            }
        }
        e.push(target);
        e.sort_children(controller_rank);
    }
}

/// The default and implicit controllers libvirt adds to a pc or q35
/// domain, then the PCI addresses, as `qemuDomainAssignPCIAddresses`.
pub(crate) fn fill_in(d: &mut Domain) {
    let Some(chipset) = Chipset::of(d) else {
        return;
    };
    default_controllers(d, chipset);
    // A probe pass, as libvirt's dry run, learns how many root ports the
    // endpoints need; they are added, then the real pass places everything.
    let max_idx = controllers(d, "pci").filter_map(index).max();
    let mut probe = d.clone();
    let mut addrs = Addrs::new(&probe, chipset, true);
    let known = addrs.buses.len();
    chipset_slots(&mut probe, chipset, &mut addrs);
    assign_devices(&mut probe, chipset, &mut addrs);
    // A definition that leaves PCI controllers to libvirt gets one spare
    // root port, for hot-plug or a device added later.
    if chipset == Chipset::Q35 && max_idx.unwrap_or(0) == 0 && addrs.buses.len() > known {
        addrs.next(Plug::Pcie, None);
    }
    for (i, b) in addrs.buses.iter().enumerate().skip(1) {
        let model = match b.kind {
            BusKind::RootPort | BusKind::BridgePort => "pcie-root-port",
            BusKind::PciBridge => "pci-bridge",
            BusKind::PcieToPciBridge => "pcie-to-pci-bridge",
            _ => continue,
        };
        if !has_controller(d, "pci", i as u32) {
            add_controller(d, "pci", i as u32, Some(model));
        }
    }
    let mut addrs = Addrs::new(d, chipset, false);
    chipset_slots(d, chipset, &mut addrs);
    assign_devices(d, chipset, &mut addrs);
    mark_multifunction(d);
    controller_defaults(d);
}

/// The PCI address a virtio device hot-plugged into running `d` gets, as
/// libvirt 9.0's `qemuDomainEnsurePCIAddress`: the one its definition
/// gives (`given`) if free, else the first free slot that takes it (on
/// q35 an empty `pcie-root-port`; no port is added to a running
/// machine). `transitional`: `model='virtio-transitional'`. Errors are
/// libvirt's texts.
pub fn hotplug_address(
    d: &Domain,
    given: Option<&Element>,
    transitional: bool,
) -> Result<PciAddress, String> {
    let Some(chipset) = Chipset::of(d) else {
        return Err("the machine has no PCI bus".into());
    };
    let mut addrs = Addrs::new(d, chipset, false);
    let plug = Plug::virtio(chipset, transitional.then_some("virtio-transitional"));
    if let Some(a) = given
        .filter(|g| !wanted(Some(g)))
        .and_then(PciAddress::read)
    {
        let bus = addrs.buses.get(usize::from(a.bus));
        if bus.is_none_or(|b| !b.kind.accepts(plug) || !b.kind.slots().contains(&a.slot)) {
            return Err(format!(
                "PCI bus {:#04x} cannot take the device at slot {:#04x}",
                a.bus, a.slot
            ));
        }
        if addrs.slot_in_use(a.bus, a.slot) {
            return Err(format!(
                "Attempted double use of PCI Address {:04x}:{:02x}:{:02x}.{:x}",
                0, a.bus, a.slot, a.function
            ));
        }
        return Ok(a);
    }
    addrs
        .next(plug, None)
        .ok_or_else(|| "No more available PCI slots".to_string())
}

/// Adds `<controller type index model>` after the last controller, where
/// libvirt appends the controllers it adds (`virDomainDefAddController`).
pub(crate) fn add_controller(d: &mut Domain, ty: &str, idx: u32, model: Option<&str>) {
    let others = &mut d.devices.others;
    let el = Element::new("controller")
        .with_attr("type", Some(ty.to_string()))
        .with_attr("index", Some(idx.to_string()))
        .with_attr("model", model.map(str::to_string));
    let rank = |o: &OtherDevice| crate::order::rank(crate::order::DEVICES, o.kind());
    let controller = crate::order::rank(crate::order::DEVICES, "controller");
    let pos = others
        .iter()
        .position(|o| rank(o) > controller)
        .unwrap_or(others.len());
    others.insert(pos, OtherDevice { element: el });
}

fn has_controller(d: &Domain, ty: &str, idx: u32) -> bool {
    controllers(d, ty).any(|o| index(o).unwrap_or(0) == idx)
}

/// The controllers libvirt adds by default (`qemuDomainDefAddDefaultDevices`)
/// and those the disks and virtio consoles imply
/// (`virDomainDefAddImplicitControllers`), in the order it adds them.
fn default_controllers(d: &mut Domain, chipset: Chipset) {
    if !has_controller(d, "usb", 0) {
        let model = match chipset {
            Chipset::I440fx => "piix3-uhci",
            Chipset::Q35 => "qemu-xhci",
        };
        add_controller(d, "usb", 0, Some(model));
    }
    if chipset == Chipset::Q35 && !has_controller(d, "sata", 0) {
        add_controller(d, "sata", 0, None);
    }
    if !has_controller(d, "pci", 0) {
        let model = match chipset {
            Chipset::I440fx => "pci-root",
            Chipset::Q35 => "pcie-root",
        };
        add_controller(d, "pci", 0, Some(model));
    }
    for (ty, bus) in [
        ("scsi", "scsi"),
        ("ide", "ide"),
        ("fdc", "fdc"),
        ("sata", "sata"),
    ] {
        let mut wanted: Vec<u32> = d
            .devices
            .disks
            .iter()
            .filter(|x| x.bus() == bus)
            .filter_map(|x| x.info.address.as_ref())
            .filter(|a| a.attr("type") == Some("drive"))
            .map(|a| a.attr("controller").and_then(number).unwrap_or(0))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        for idx in wanted {
            if !has_controller(d, ty, idx) {
                // QEMU's default SCSI controller for x86 guests.
                let model = (ty == "scsi").then_some("lsilogic");
                add_controller(d, ty, idx, model);
            }
        }
    }
    let virtio_serial = d
        .devices
        .consoles
        .iter()
        .chain(&d.devices.channels)
        .any(|c| c.target_type() == Some("virtio"));
    if virtio_serial && !has_controller(d, "virtio-serial", 0) {
        add_controller(d, "virtio-serial", 0, None);
    }
}

/// Gives controllers without an `index` the one libvirt gives
/// (`virDomainAssignControllerIndexes`): the lowest free of their type; a
/// USB2 companion (`<master>`) its master's. A PCI controller other than
/// the root starts after the root bus, whose index 0 is the root's even
/// when the definition leaves the root to the fill-in.
pub(crate) fn controller_indices(d: &mut Domain) {
    for i in 0..d.devices.others.len() {
        let o = &d.devices.others[i];
        if o.kind() != "controller" || o.element.attr("index").is_some() {
            continue;
        }
        let ty = o.dev_type().unwrap_or_default().to_string();
        let companion = o.element.child("master").is_some();
        let before = d.devices.others[..i]
            .iter()
            .filter(|c| c.kind() == "controller" && c.dev_type() == Some(ty.as_str()));
        let idx = if companion {
            before.rev().find_map(index).unwrap_or(0)
        } else {
            let root = matches!(o.model(), Some("pci-root" | "pcie-root"));
            let first = u32::from(ty == "pci" && !root);
            let used: Vec<u32> = d
                .devices
                .others
                .iter()
                .filter(|c| c.kind() == "controller" && c.dev_type() == Some(ty.as_str()))
                .filter_map(index)
                .collect();
            (first..).find(|i| !used.contains(i)).unwrap_or(first)
        };
        let e = &mut d.devices.others[i].element;
        // After `type`, where libvirt writes it.
        let at = e
            .attrs
            .iter()
            .position(|(k, _)| k == "type")
            .map_or(0, |p| p + 1);
        e.attrs.insert(
            at,
            (
                crate::xml::intern("index"),
                crate::xml::intern(&idx.to_string()),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_and_write_as_libvirt() {
        let a = PciAddress::new(0, 2, 1);
        let e = a.element();
        assert_eq!(e.attr("bus"), Some("0x00"));
        assert_eq!(e.attr("slot"), Some("0x02"));
        assert_eq!(e.attr("function"), Some("0x1"));
        assert_eq!(PciAddress::read(&e), Some(a));
        assert_eq!(a.qemu_addr(), "0x2.0x1");
        assert_eq!(PciAddress::new(0, 0x1f, 0).qemu_addr(), "0x1f");
        let bad = Element::new("address")
            .with_attr("type", Some("pci"))
            .with_attr("slot", Some("0x20"));
        assert_eq!(PciAddress::read(&bad), None);
        assert!(wanted(Some(
            &Element::new("address").with_attr("type", Some("pci"))
        )));
        assert!(!wanted(Some(&e)));
    }
}
