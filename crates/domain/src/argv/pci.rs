//! The PCI side of the command line on pc and q35: each device's `bus=`
//! and `addr=` from its `<address type='pci'>`, and the `pcie-root-port`
//! and `pcie-to-pci-bridge` controllers, as libvirt 9.0 writes them (JSON,
//! keys in its order).
//!
//! A virtio device without a PCI address (microvm, or a definition
//! stored with `type='virtio-mmio'` before rvirt placed devices on PCI)
//! stays a `virtio-*-device` on virtio-mmio: its guest keeps the
//! hardware it was installed with.

use serde::Serialize;

use super::Builder;
use crate::model::{Domain, OtherDevice};
use crate::pci::{Chipset, PciAddress};
use crate::xml::Element;

/// `"bus":…,"multifunction":true,"addr":…`, flattened into a device's
/// JSON where libvirt puts it.
#[derive(Debug, Clone, Serialize)]
pub struct PciPlace {
    pub bus: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub multifunction: bool,
    pub addr: String,
}

/// The device's driver on its transport: `virtio-blk-pci` on PCI,
/// `virtio-blk-device` on virtio-mmio.
pub fn driver(base: &str, pci: &Option<PciPlace>) -> String {
    match pci {
        Some(_) => format!("{base}-pci"),
        None => format!("{base}-device"),
    }
}

/// The controller giving bus `bus` (a root port or a pcie-to-pci-bridge).
fn bus_controller(dom: &Domain, bus: u8) -> Option<&OtherDevice> {
    dom.devices.others.iter().find(|o| {
        o.kind() == "controller"
            && o.dev_type() == Some("pci")
            && matches!(o.model(), Some("pcie-root-port" | "pcie-to-pci-bridge"))
            && o.element.attr("index").and_then(|i| i.parse().ok()) == Some(bus)
    })
}

/// Where a device with `address` sits on PCI; `None` for virtio-mmio.
/// An address the machine cannot have is refused.
pub(super) fn place(
    dom: &Domain,
    address: Option<&Element>,
    line: u32,
    what: &str,
    b: &mut Builder,
) -> Option<PciPlace> {
    let a = address.and_then(PciAddress::read)?;
    let Some(chipset) = Chipset::of(dom) else {
        b.refuse(line, what, "a PCI address on a machine without PCI");
        return None;
    };
    if a.bus != 0 && bus_controller(dom, a.bus).is_none() {
        b.refuse(
            line,
            what,
            format!(
                "PCI bus {:#04x} is not a pcie-root-port or pcie-to-pci-bridge",
                a.bus
            ),
        );
        return None;
    }
    Some(PciPlace {
        bus: chipset.bus_id(a.bus),
        multifunction: a.multifunction == Some(true),
        addr: a.qemu_addr(),
    })
}

/// `-device pcie-root-port` as libvirt writes it.
#[derive(Serialize)]
struct RootPort {
    driver: &'static str,
    port: u32,
    chassis: u32,
    id: String,
    #[serde(flatten)]
    pci: PciPlace,
}

/// `-device pcie-pci-bridge` as libvirt writes it.
#[derive(Serialize)]
struct PcieToPciBridge {
    driver: &'static str,
    id: String,
    #[serde(flatten)]
    pci: PciPlace,
}

/// The root ports and pcie-to-pci-bridges, first among the devices and in
/// index order as libvirt emits its controllers, so that every device
/// behind one finds its bus.
pub(super) fn root_ports(dom: &Domain, b: &mut Builder) {
    for o in &dom.devices.others {
        if o.kind() != "controller" || o.dev_type() != Some("pci") {
            continue;
        }
        match o.model() {
            Some("pcie-root-port") => {}
            Some("pcie-to-pci-bridge") => {
                pcie_to_pci_bridge(dom, o, b);
                continue;
            }
            _ => continue,
        }
        let line = o.line();
        let what = "controller (pcie-root-port)";
        let index = o.element.attr("index").and_then(|i| i.parse::<u32>().ok());
        let target = o.element.child("target");
        let num = |k: &str| {
            target
                .and_then(|t| t.attr(k))
                .and_then(|v| match v.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => v.parse().ok(),
                })
        };
        let (Some(index), Some(port), Some(chassis)) = (index, num("port"), num("chassis")) else {
            b.refuse(line, what, "has no index, port or chassis");
            continue;
        };
        let Some(pci) = place(dom, o.element.child("address"), line, what, b) else {
            b.refuse(line, what, "has no PCI address");
            continue;
        };
        if pci.bus != "pcie.0" {
            b.refuse(line, what, "only plugs into the root bus (pcie.0)");
            continue;
        }
        let json = super::blockdev::json(&RootPort {
            driver: "pcie-root-port",
            port,
            chassis,
            id: format!("pci.{index}"),
            pci,
        });
        b.opt("-device", json);
    }
}

/// `-device pcie-pci-bridge`: on a root port (libvirt's place for it).
fn pcie_to_pci_bridge(dom: &Domain, o: &OtherDevice, b: &mut Builder) {
    let line = o.line();
    let what = "controller (pcie-to-pci-bridge)";
    let Some(index) = o.element.attr("index").and_then(|i| i.parse::<u32>().ok()) else {
        b.refuse(line, what, "has no index");
        return;
    };
    let Some(pci) = place(dom, o.element.child("address"), line, what, b) else {
        b.refuse(line, what, "has no PCI address");
        return;
    };
    let json = super::blockdev::json(&PcieToPciBridge {
        driver: "pcie-pci-bridge",
        id: format!("pci.{index}"),
        pci,
    });
    b.opt("-device", json);
}
