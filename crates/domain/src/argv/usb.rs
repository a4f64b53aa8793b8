//! `<controller type='usb' model='qemu-xhci'>` and `<input bus='usb'>` as
//! libvirt 9.0 writes them (qemu_command.c):
//! `-device {"driver":"qemu-xhci","p2":N,"p3":N,"id":"usb","bus":…,"addr":…}`
//! (`p2`/`p3` only with `ports=`), and
//! `-device {"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}`.
//!
//! Other USB controller models (pc's default `piix3-uhci`, the ICH9 EHCI
//! with its UHCI companions, `nec-xhci`) are not emulated: left off with
//! a warning, and so are the devices on their buses.

use serde::Serialize;

use super::pci::{self, PciPlace};
use super::Builder;
use crate::model::{Domain, OtherDevice};

/// The one controller model rvirt-vmm emulates.
pub const MODEL: &str = "qemu-xhci";

#[derive(Serialize)]
struct Controller<'a> {
    driver: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    p2: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p3: Option<u32>,
    id: &'a str,
    #[serde(flatten)]
    pci: PciPlace,
}

#[derive(Serialize)]
struct Device<'a> {
    driver: &'static str,
    id: &'a str,
    bus: &'a str,
    port: &'a str,
}

fn index(o: &OtherDevice) -> u32 {
    o.element
        .attr("index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

fn alias(o: &OtherDevice) -> Option<String> {
    o.element
        .child("alias")
        .and_then(|a| a.attr("name"))
        .map(str::to_string)
}

/// libvirt's alias of USB controller `index`.
fn controller_id(index: u32) -> String {
    match index {
        0 => "usb".to_string(),
        n => format!("usb{n}"),
    }
}

/// The USB controllers rvirt-vmm gets, by index.
fn emulated(dom: &Domain) -> Vec<u32> {
    dom.devices
        .others
        .iter()
        .filter(|o| o.kind() == "controller" && o.dev_type() == Some("usb"))
        .filter(|o| o.model() == Some(MODEL))
        .map(index)
        .collect()
}

/// A `<controller type='usb'>`.
pub(super) fn controller(dom: &Domain, o: &OtherDevice, b: &mut Builder) {
    match o.model() {
        Some(MODEL) => {}
        // No controller at all: libvirt writes `usb=off` and nothing else.
        Some("none") => return,
        // The message the other left-off devices get (argv/devices.rs).
        _ => {
            b.warn("controller (usb) left off: not emulated; only a display user needs it".into());
            return;
        }
    }
    let line = o.line();
    let Some(place) = pci::place(dom, o.element.child("address"), line, "usb controller", b) else {
        b.refuse(line, "usb controller", "qemu-xhci needs a PCI address");
        return;
    };
    let ports = o.element.attr("ports").and_then(|p| p.parse::<u32>().ok());
    let id = alias(o).unwrap_or_else(|| controller_id(index(o)));
    b.opt(
        "-device",
        super::blockdev::json(&Controller {
            driver: MODEL,
            p2: ports,
            p3: ports,
            id: &id,
            pci: place,
        }),
    );
}

/// An `<input bus='usb'>`, the `n`th input of the domain.
pub(super) fn input(
    dom: &Domain,
    o: &OtherDevice,
    n: usize,
    used: &mut Vec<(u32, u32)>,
    b: &mut Builder,
) {
    let ty = o.dev_type().unwrap_or_default();
    let driver = match ty {
        "tablet" => "usb-tablet",
        "keyboard" => "usb-kbd",
        "mouse" => "usb-mouse",
        _ => {
            b.refuse(o.line(), "input", format!("usb '{ty}' is not emulated"));
            return;
        }
    };
    let address = o
        .element
        .child("address")
        .filter(|a| a.attr("type") == Some("usb"));
    let bus: u32 = address
        .and_then(|a| a.attr("bus"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if !emulated(dom).contains(&bus) {
        b.warn("input (usb) left off: not emulated; only a display user needs it".into());
        return;
    }
    // libvirt gives each device a port at define; a definition without
    // one takes the next free port, as QEMU would.
    let port = match address.and_then(|a| a.attr("port")) {
        Some(p) => p.to_string(),
        None => {
            let next = (1..).find(|p| !used.contains(&(bus, *p))).unwrap_or(1);
            next.to_string()
        }
    };
    if let Ok(p) = port.parse::<u32>() {
        used.push((bus, p));
    }
    let id = alias(o).unwrap_or_else(|| format!("input{n}"));
    let bus_id = format!("{}.0", controller_id(bus));
    b.opt(
        "-device",
        super::blockdev::json(&Device {
            driver,
            id: &id,
            bus: &bus_id,
            port: &port,
        }),
    );
}
