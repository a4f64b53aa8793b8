//! Defaults libvirt fills in when a domain is defined.

use std::collections::HashSet;

use crate::mac::Mac;
use crate::model::{Domain, LifecycleAction, OtherDevice};
use crate::names;
use crate::xml::Element;

/// Source of randomness for UUIDs and MACs; tests pass a fixed one.
pub trait Random {
    fn bytes16(&mut self) -> [u8; 16];
}

/// The operating system's generator (through the `uuid` crate).
pub struct OsRandom;

impl Random for OsRandom {
    fn bytes16(&mut self) -> [u8; 16] {
        uuid::Uuid::new_v4().into_bytes()
    }
}

pub(crate) fn fill_in(d: &mut Domain, rng: &mut dyn Random) {
    if d.uuid.is_none() {
        d.uuid = Some(uuid::Builder::from_random_bytes(rng.bytes16()).into_uuid());
    }
    if d.current_memory_kib.is_none() {
        d.current_memory_kib = Some(d.memory_kib);
    }
    if d.vcpu.placement.is_none() {
        d.vcpu.placement = Some("static".into());
    }
    if let Some(t) = d.cpu.as_mut().and_then(|c| c.topology.as_mut()) {
        t.dies.get_or_insert(1);
    }
    let per_device_boot = d.devices.disks.iter().any(|x| x.info.boot_order.is_some())
        || d.devices
            .interfaces
            .iter()
            .any(|x| x.info.boot_order.is_some());
    if d.os.os_type == "hvm" && d.os.boot_devs.is_empty() && !per_device_boot {
        d.os.boot_devs.push("hd".into());
    }
    d.on_poweroff.get_or_insert(LifecycleAction::Destroy);
    d.on_reboot.get_or_insert(LifecycleAction::Restart);
    d.on_crash.get_or_insert(LifecycleAction::Destroy);
    macs(d, rng);
    aliases_and_addresses(d);
}

fn macs(d: &mut Domain, rng: &mut dyn Random) {
    let mut used: HashSet<Mac> = d.devices.interfaces.iter().filter_map(|i| i.mac).collect();
    for iface in &mut d.devices.interfaces {
        if iface.mac.is_some() {
            continue;
        }
        loop {
            let b = rng.bytes16();
            let mac = Mac::with_qemu_prefix([b[0], b[1], b[2]]);
            if used.insert(mac) {
                iface.mac = Some(mac);
                break;
            }
        }
    }
}

fn virtio_mmio() -> Element {
    Element::new("address").with_attr("type", Some("virtio-mmio"))
}

fn aliases_and_addresses(d: &mut Domain) {
    let devs = &mut d.devices;
    for disk in &mut devs.disks {
        if disk.info.address.is_none() {
            let bus = disk.bus().to_string();
            disk.info.address = match names::disk_index(&disk.target_dev)
                .and_then(|i| names::drive_address(&bus, i))
            {
                Some(a) => Some(names::drive_address_element(a)),
                None if bus == "virtio" => Some(virtio_mmio()),
                None => None,
            };
        }
        if disk.info.alias.is_none() {
            disk.info.alias = Some(names::disk_alias(disk));
        }
    }
    for (i, iface) in devs.interfaces.iter_mut().enumerate() {
        iface.info.alias.get_or_insert_with(|| format!("net{i}"));
        if iface.info.address.is_none() && iface.model.as_deref() == Some("virtio") {
            iface.info.address = Some(virtio_mmio());
        }
    }
    for (list, prefix) in [
        (&mut devs.serials, "serial"),
        (&mut devs.consoles, "console"),
        (&mut devs.channels, "channel"),
    ] {
        for (i, c) in list.iter_mut().enumerate() {
            c.info.alias.get_or_insert_with(|| format!("{prefix}{i}"));
        }
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for o in &mut devs.others {
        let n = counts.entry(o.kind().to_string()).or_default();
        let alias = other_alias(o, *n);
        *n += 1;
        let virtio = o.model() == Some("virtio");
        let e = &mut o.element;
        if let Some(alias) = alias {
            if e.child("alias").is_none() {
                let pos = e
                    .children
                    .iter()
                    .position(|c| matches!(c, crate::xml::Node::Element(x) if x.name == "address"))
                    .unwrap_or(e.children.len());
                e.children.insert(
                    pos,
                    crate::xml::Node::Element(Element::new("alias").with_attr("name", Some(alias))),
                );
            }
        }
        if virtio && matches!(e.name.as_ref(), "memballoon" | "rng") && e.child("address").is_none()
        {
            e.push(virtio_mmio());
        }
    }
}

/// libvirt's alias for the `n`th device of this kind, if it gives one.
fn other_alias(o: &OtherDevice, n: usize) -> Option<String> {
    let ty = o.dev_type().unwrap_or_default();
    Some(match o.kind() {
        "controller" => {
            let index = o.element.attr("index").unwrap_or("0");
            match (ty, index) {
                ("usb", "0") => "usb".into(),
                ("pci", _) => format!("pci.{index}"),
                ("ide", "0") => "ide".into(),
                _ => format!("{ty}{index}"),
            }
        }
        "memballoon" if o.model() != Some("none") => "balloon0".into(),
        "rng" => format!("rng{n}"),
        "watchdog" => format!("watchdog{n}"),
        "video" => format!("video{n}"),
        "sound" => format!("sound{n}"),
        "input" => format!("input{n}"),
        "hostdev" => format!("hostdev{n}"),
        "filesystem" => format!("fs{n}"),
        "redirdev" => format!("redir{n}"),
        _ => return None,
    })
}
