//! `-device qemu-xhci` and `-device usb-tablet|usb-kbd|usb-mouse`,
//! collected as they come; devices are put on their controllers at the end
//! as QEMU 7.2 does (a device needs a controller created before it).

use crate::config::{PciAddr, PciBus};
use crate::opts::Opts;
use crate::usb::{UsbControllerConfig, UsbDeviceConfig, UsbDeviceModel};
use crate::ConfigError;

/// QEMU's `XHCI_MAXPORTS_2` and `_3`.
const MAX_PORTS: u32 = 15;

#[derive(Default)]
pub(super) struct UsbSpecs {
    pub(super) controllers: Vec<UsbControllerConfig>,
    pub(super) devices: Vec<UsbDeviceConfig>,
}

fn port_count(o: &mut Opts, key: &str) -> Result<u8, ConfigError> {
    match o.get_u32(key)? {
        // QEMU clamps to its maximum.
        Some(n) => Ok(n.min(MAX_PORTS) as u8),
        None => Ok(4),
    }
}

impl UsbSpecs {
    /// `-device qemu-xhci`: its own options (the PCI placement ones were
    /// taken by [`super::pci::PciSpecs::xhci`]).
    pub(super) fn controller(
        &mut self,
        id: Option<String>,
        o: &mut Opts,
    ) -> Result<(), ConfigError> {
        let p2 = port_count(o, "p2")?;
        let p3 = port_count(o, "p3")?;
        // QEMU's defaults for qemu-xhci; other values change nothing
        // rvirt models.
        o.ignore(&["streams", "intrs", "slots", "msi", "msix"]);
        self.controllers.push(UsbControllerConfig {
            id,
            p2,
            p3,
            addr: PciAddr {
                bus: PciBus::Root,
                slot: 0,
                function: 0,
                multifunction: false,
            },
        });
        Ok(())
    }

    /// `-device usb-tablet|usb-kbd|usb-mouse,id=,bus=,port=`.
    pub(super) fn device(
        &mut self,
        model: UsbDeviceModel,
        o: &mut Opts,
    ) -> Result<(), ConfigError> {
        let driver = model.driver();
        let id = o.get("id");
        let controller = match o.get("bus") {
            Some(bus) => self
                .controllers
                .iter()
                .enumerate()
                .position(|(i, c)| c.bus_name(i) == bus)
                .ok_or_else(|| o.error(format!("Bus '{bus}' not found")))?,
            None if self.controllers.is_empty() => {
                return Err(o.error(format!("No 'usb-bus' bus found for device '{driver}'")))
            }
            None => 0,
        };
        let c = &self.controllers[controller];
        let bus_name = c.bus_name(controller);
        let taken = |p: u8| {
            self.devices
                .iter()
                .any(|d| d.controller == controller && d.port == p)
        };
        let port = match o.get("port") {
            Some(p) => {
                let n: u8 = p.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    o.error(format!(
                        "port '{p}': rvirt has no USB hubs, a port is a number from 1"
                    ))
                })?;
                if n > c.p2.max(c.p3) {
                    return Err(o.error(format!(
                        "Error: usb port {p} (bus {bus_name}) not found (in use?)"
                    )));
                }
                // A high-speed device on a port that has only its USB 3
                // half: QEMU's speed mismatch.
                if n > c.p2 {
                    return Err(o.error(format!(
                        "Warning: speed mismatch trying to attach usb device \"{}\" (high speed) to bus \"{bus_name}\", port \"{p}\" (super speed)",
                        product(model)
                    )));
                }
                if taken(n) {
                    return Err(o.error(format!(
                        "Error: usb port {p} (bus {bus_name}) not found (in use?)"
                    )));
                }
                n
            }
            None => (1..=c.p2)
                .find(|&p| !taken(p))
                .ok_or_else(|| o.error(format!("Error: no free usb port on bus {bus_name}")))?,
        };
        // `display`, `head` and `usb_version` as QEMU's defaults (the one
        // console; USB 2.0).
        if let Some(v) = o.get("usb_version") {
            if v != "2" {
                return Err(o.error(format!("usb_version={v} is not supported (only 2)")));
            }
        }
        o.ignore(&["display", "head", "serial", "msos-desc", "pcap", "attached"]);
        self.devices.push(UsbDeviceConfig {
            model,
            id,
            controller,
            port,
        });
        Ok(())
    }
}

fn product(model: UsbDeviceModel) -> &'static str {
    match model {
        UsbDeviceModel::Tablet => "QEMU USB Tablet",
        UsbDeviceModel::Keyboard => "QEMU USB Keyboard",
        UsbDeviceModel::Mouse => "QEMU USB Mouse",
    }
}
