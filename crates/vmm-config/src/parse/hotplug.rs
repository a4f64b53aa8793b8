//! `device_add`'s arguments: the same driver names and properties as
//! `-device`, read by the same parsers, for a virtio-*-pci device going
//! into an empty hot-plug capable `pcie-root-port` of a running q35
//! machine (the pc machine's ACPI hot-plug of the root bus is not
//! emulated).

use super::pci::parse_addr;
use super::virtio::VirtioSpecs;
use super::{virtio_pci_base, virtio_pci_options};
use crate::config::{Chipset, Netdev, PciAddr, PciBus, RootPortConfig, VirtioConfig};
use crate::disk::FormatNode;
use crate::opts::Opts;
use crate::ConfigError;

/// A device to hot-plug, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotplugDevice {
    /// The driver as given (`virtio-net-pci`).
    pub driver: String,
    pub device: VirtioConfig,
    /// Its place: behind `root_ports[i]`, slot 0.
    pub addr: PciAddr,
}

/// Parses `device_add`'s arguments (`value`: its JSON object, or the
/// key=value form) for a machine of `chipset` with `ports`; `netdevs` are
/// the back-ends a NIC may name and `nodes` the format nodes a disk may
/// (those not in use).
pub fn parse_device_add(
    value: &str,
    chipset: Chipset,
    ports: &[RootPortConfig],
    netdevs: Vec<(String, Netdev)>,
    nodes: Vec<(String, FormatNode)>,
) -> Result<HotplugDevice, ConfigError> {
    let mut o = Opts::parse("device_add", value, Some("driver"))?;
    let driver = o.require("driver")?;
    let Some(base) = virtio_pci_base(&driver) else {
        return Err(o.error(format!("device '{driver}' cannot be hot-plugged")));
    };
    let Some(root) = chipset.root_bus() else {
        return Err(o.error(format!("No 'PCI' bus found for device '{driver}'")));
    };
    virtio_pci_options(&mut o)?;
    let bus = o.get("bus").unwrap_or_else(|| root.to_string());
    let (slot, function) = match o.get("addr") {
        Some(a) => parse_addr(&o, &driver, &a)?,
        None => (0, 0),
    };
    let multifunction = o.get_bool("multifunction")?.unwrap_or(false);
    let port = if bus == root {
        None
    } else {
        Some(
            ports
                .iter()
                .position(|p| p.id == bus)
                .ok_or_else(|| o.error(format!("Bus '{bus}' not found")))?,
        )
    };
    let Some(port) = port.filter(|&p| ports[p].hotplug) else {
        return Err(o.error(format!("Bus '{bus}' does not support hotplugging")));
    };
    if slot != 0 {
        return Err(o.error(format!(
            "PCI: slot {slot} is not valid for {driver}, parent device only allows plugging into slot 0."
        )));
    }
    if function != 0 {
        return Err(o.error(format!(
            "{driver}: only function 0 is hot-plugged (no multifunction hot-plug)"
        )));
    }
    let mut specs = VirtioSpecs::with_backends(netdevs, nodes);
    if !specs.device(&base, &mut o)? {
        return Err(o.error(format!("device '{driver}' cannot be hot-plugged")));
    }
    o.finish()?;
    let chardev = |id: &str| {
        Err(ConfigError::new(
            "device_add",
            format!("chardev '{id}' not found"),
        ))
    };
    let finished = specs.finish(&chardev)?;
    // A NIC that is not virtio (e1000) is not a virtio-pci function.
    let mut devices = finished.devices;
    if !finished.nics.is_empty() {
        devices.clear();
    }
    let device = devices.pop().ok_or_else(|| {
        ConfigError::new(
            "device_add",
            format!("device '{driver}' cannot be hot-plugged"),
        )
    })?;
    // A NIC without `mac=` gets QEMU's first default address (QEMU counts
    // on from the NICs it made; libvirt always gives one).
    if !matches!(device, VirtioConfig::Net(_) | VirtioConfig::Blk(_)) {
        return Err(ConfigError::new(
            "device_add",
            format!("device '{driver}' cannot be hot-plugged"),
        ));
    }
    Ok(HotplugDevice {
        driver,
        device,
        addr: PciAddr {
            bus: PciBus::Port(port),
            slot,
            function,
            multifunction,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TapSource;

    fn ports() -> Vec<RootPortConfig> {
        let port = |id: &str, slot: u8, hotplug: bool| RootPortConfig {
            model: crate::config::PortModel::RootPort,
            id: id.into(),
            port: 16,
            chassis: 1,
            slot: 1,
            addr: PciAddr {
                bus: PciBus::Root,
                slot,
                function: 0,
                multifunction: false,
            },
            hotplug,
        };
        vec![port("pci.1", 1, true), port("pci.2", 2, false)]
    }

    fn tap() -> Vec<(String, Netdev)> {
        vec![("hostnet1".into(), Netdev::Tap(TapSource::Fd(7)))]
    }

    fn add(v: &str) -> Result<HotplugDevice, String> {
        parse_device_add(v, Chipset::Q35, &ports(), tap(), Vec::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn libvirts_nic_in_json_and_key_value() {
        let json = r#"{"driver":"virtio-net-pci","netdev":"hostnet1","id":"net1","mac":"52:54:00:aa:bb:cc","bus":"pci.1","addr":"0x0"}"#;
        let d = add(json).unwrap();
        assert_eq!(d.addr.bus, PciBus::Port(0));
        let VirtioConfig::Net(n) = &d.device else {
            panic!("{d:?}")
        };
        assert_eq!(n.id.as_deref(), Some("net1"));
        assert_eq!(n.mac, [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
        assert_eq!(n.backend, Netdev::Tap(TapSource::Fd(7)));
        let kv = add("virtio-net-pci,netdev=hostnet1,id=net1,bus=pci.1").unwrap();
        assert_eq!(kv.addr, d.addr);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let e = add(r#"{"driver":"virtio-net-pci","netdev":"hostnet1"}"#).unwrap_err();
        assert!(
            e.contains("Bus 'pcie.0' does not support hotplugging"),
            "{e}"
        );
        let e =
            add(r#"{"driver":"virtio-net-pci","netdev":"hostnet1","bus":"pci.2"}"#).unwrap_err();
        assert!(
            e.contains("Bus 'pci.2' does not support hotplugging"),
            "{e}"
        );
        let e =
            add(r#"{"driver":"virtio-net-pci","netdev":"hostnet1","bus":"pci.9"}"#).unwrap_err();
        assert!(e.contains("Bus 'pci.9' not found"), "{e}");
        let e = add(r#"{"driver":"virtio-net-pci","netdev":"nope","bus":"pci.1"}"#).unwrap_err();
        assert!(e.contains("can't find value 'nope'"), "{e}");
        let e =
            add(r#"{"driver":"virtio-net-pci","netdev":"hostnet1","bus":"pci.1","addr":"0x3"}"#)
                .unwrap_err();
        assert!(e.contains("only allows plugging into slot 0"), "{e}");
        let e = add(r#"{"driver":"e1000","bus":"pci.1"}"#).unwrap_err();
        assert!(e.contains("cannot be hot-plugged"), "{e}");
        let e = add(r#"{"driver":"virtio-net-pci","netdev":"hostnet1","bus":"pci.1","bogus":"1"}"#)
            .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = add(r#"{"driver":"virtio-blk-pci","drive":"d0","bus":"pci.1"}"#).unwrap_err();
        assert!(e.contains("d0"), "{e}");
        let e = parse_device_add(
            "virtio-net-pci,netdev=hostnet1",
            Chipset::Microvm,
            &[],
            tap(),
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("No 'PCI' bus"), "{e}");
    }
}
