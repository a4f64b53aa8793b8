//! Defaults libvirt fills in when a domain is defined.

use std::collections::HashSet;

use crate::mac::Mac;
use crate::model::{Chardev, ChardevKind, DeviceInfo, Domain, LifecycleAction, OtherDevice};
use crate::names;
use crate::xml::{Element, Node};

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
    // libvirt gives QEMU guests a virtio balloon unless told otherwise.
    if !d.devices.others.iter().any(|o| o.kind() == "memballoon") {
        d.devices.others.push(OtherDevice {
            element: Element::new("memballoon").with_attr("model", Some("virtio")),
        });
        d.devices
            .others
            .sort_by_cached_key(|o| crate::order::rank(crate::order::DEVICES, o.kind()));
    }
    implicit_ps2(d);
    serial_console(d);
    macs(d, rng);
    drive_addresses(d);
    crate::pci::controller_indices(d);
    crate::pci::fill_in(d);
    aliases_and_addresses(d);
}

/// The PS/2 mouse and keyboard libvirt 9.0 adds to every x86 guest (its
/// `qemuDomainDefAddImplicitInputDevice`: the i8042 is part of the
/// machine, microvm included), unless `<features><ps2 state='off'/>`;
/// each only when no input of that type is on PS/2 already, after the
/// inputs the definition has.
fn implicit_ps2(d: &mut Domain) {
    let x86 = matches!(d.os.arch.as_deref(), None | Some("x86_64" | "i686"));
    let ps2_off = d
        .features
        .as_ref()
        .and_then(|f| f.child("ps2"))
        .is_some_and(|p| p.attr("state") == Some("off"));
    if d.os.os_type != "hvm" || !x86 || ps2_off {
        return;
    }
    for ty in ["mouse", "keyboard"] {
        let present = d.devices.others.iter().any(|o| {
            o.kind() == "input" && o.dev_type() == Some(ty) && o.element.attr("bus") == Some("ps2")
        });
        if present {
            continue;
        }
        // After the last input (or where inputs go in libvirt's order).
        let at = d
            .devices
            .others
            .iter()
            .rposition(|o| o.kind() == "input")
            .map(|i| i + 1);
        let input = OtherDevice {
            element: Element::new("input")
                .with_attr("type", Some(ty))
                .with_attr("bus", Some("ps2")),
        };
        match at {
            Some(i) => d.devices.others.insert(i, input),
            None => {
                d.devices.others.push(input);
                d.devices
                    .others
                    .sort_by_cached_key(|o| crate::order::rank(crate::order::DEVICES, o.kind()));
            }
        }
    }
}

fn macs(d: &mut Domain, rng: &mut dyn Random) {
    let mut used: HashSet<Mac> = d.devices.interfaces.iter().filter_map(|i| i.mac).collect();
    for iface in &mut d.devices.interfaces {
        if iface.mac.is_some() {
            continue;
        }
        // A random start, then the next free address: always ends, even
        // with a poor random source.
        let b = rng.bytes16();
        let start = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let free = (0..1u32 << 24)
            .map(|k| {
                let [_, x, y, z] = ((start + k) & 0xff_ffff).to_be_bytes();
                Mac::with_qemu_prefix([x, y, z])
            })
            .find(|m| !used.contains(m));
        if let Some(mac) = free {
            used.insert(mac);
            iface.mac = Some(mac);
        }
    }
}

fn is_serial_console(c: &Chardev) -> bool {
    matches!(c.target_type(), None | Some("serial"))
}

/// libvirt pairs the first serial port and the first console: a serial
/// console with no serial port gets one, and a serial port gets a console
/// in front of the others (console0 is then the same device as serial0).
fn serial_console(d: &mut Domain) {
    let devs = &mut d.devices;
    let first_console_is_serial = devs.consoles.first().is_some_and(is_serial_console);
    if devs.serials.is_empty() && first_console_is_serial {
        let c = &devs.consoles[0];
        let mut extra = c.extra.clone();
        extra.name = "serial".into();
        devs.serials.push(Chardev {
            kind: ChardevKind::Serial,
            target: Some(
                Element::new("target")
                    .with_attr("type", Some("isa-serial"))
                    .with_attr("port", Some("0")),
            ),
            info: DeviceInfo::default(),
            extra,
            ..c.clone()
        });
    } else if !devs.serials.is_empty() && !first_console_is_serial {
        let s = &devs.serials[0];
        let mut extra = s.extra.clone();
        extra.name = "console".into();
        devs.consoles.insert(
            0,
            Chardev {
                kind: ChardevKind::Console,
                target: Some(
                    Element::new("target")
                        .with_attr("type", Some("serial"))
                        .with_attr("port", Some("0")),
                ),
                info: DeviceInfo::default(),
                extra,
                ..s.clone()
            },
        );
    }
}

/// The bus libvirt infers from a disk's target name, and the drive
/// address on its controller (before the controllers they imply are
/// added).
fn drive_addresses(d: &mut Domain) {
    for disk in &mut d.devices.disks {
        // libvirt writes the bus it inferred from the target name.
        if disk.target_bus.is_none() && disk.bus() != "none" {
            disk.target_bus = Some(disk.bus().to_string());
        }
        if disk.info.address.is_none() {
            let bus = disk.bus().to_string();
            disk.info.address = names::disk_index(&disk.target_dev)
                .and_then(|i| names::drive_address(&bus, i))
                .map(names::drive_address_element);
        }
    }
}

fn virtio_mmio() -> Element {
    Element::new("address").with_attr("type", Some("virtio-mmio"))
}

fn aliases_and_addresses(d: &mut Domain) {
    // pc and q35 devices have their PCI addresses by now (`pci.rs`);
    // machines without PCI put virtio devices on virtio-mmio.
    let mmio = crate::pci::Chipset::of(d).is_none();
    let devs = &mut d.devices;
    for disk in &mut devs.disks {
        if disk.info.address.is_none() && disk.bus() == "virtio" && mmio {
            disk.info.address = Some(virtio_mmio());
        }
        if disk.info.alias.is_none() {
            disk.info.alias = Some(names::disk_alias(disk));
        }
    }
    for (i, iface) in devs.interfaces.iter_mut().enumerate() {
        iface.info.alias.get_or_insert_with(|| format!("net{i}"));
        if mmio && iface.info.address.is_none() && iface.model.as_deref() == Some("virtio") {
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
    let mut counts = std::collections::HashMap::<crate::xml::Text, usize>::new();
    for o in &mut devs.others {
        let n = counts.entry(o.element.name.clone()).or_default();
        let alias = other_alias(o, *n);
        *n += 1;
        let virtio = o.model() == Some("virtio")
            || (o.kind() == "input" && o.element.attr("bus") == Some("virtio"));
        let e = &mut o.element;
        if let Some(alias) = alias {
            if e.child("alias").is_none() {
                e.insert_before(
                    "address",
                    Element::new("alias").with_attr("name", Some(alias)),
                );
            }
        }
        if mmio
            && virtio
            && matches!(e.name.as_ref(), "memballoon" | "rng" | "input")
            && e.child("address").is_none()
        {
            e.insert_before("", virtio_mmio());
        }
    }
}

fn is_user_alias(alias: &str) -> bool {
    alias.starts_with("ua-")
}

/// Removes every alias but user aliases (`ua-…`), as libvirt does when it
/// writes a definition for storage.
pub(crate) fn drop_runtime_aliases(d: &mut Domain) {
    let devs = &mut d.devices;
    let infos = devs
        .disks
        .iter_mut()
        .map(|x| &mut x.info)
        .chain(devs.interfaces.iter_mut().map(|x| &mut x.info))
        .chain(devs.serials.iter_mut().map(|x| &mut x.info))
        .chain(devs.consoles.iter_mut().map(|x| &mut x.info))
        .chain(devs.channels.iter_mut().map(|x| &mut x.info));
    for info in infos {
        if !info.alias.as_deref().is_some_and(is_user_alias) {
            info.alias = None;
        }
    }
    for o in &mut devs.others {
        o.element.children.retain(|n| match n {
            Node::Element(e) if e.name == "alias" => e.attr("name").is_some_and(is_user_alias),
            _ => true,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Constant;

    impl Random for Constant {
        fn bytes16(&mut self) -> [u8; 16] {
            [7; 16]
        }
    }

    const XML: &str = "<domain type='kvm'><name>f</name><memory>1024</memory>\
        <os><type>hvm</type></os><devices>\
        <interface type='bridge'><mac address='52:54:00:07:07:07'/></interface>\
        <interface type='bridge'/><interface type='bridge'/>\
        <disk type='file'><source file='/x'/><target dev='hdc'/></disk>\
        <disk type='file'><source file='/y'/><target dev='sdb' bus='sata'/></disk>\
        <disk type='file'><source file='/z'/><target dev='vdb' bus='virtio'/></disk>\
        </devices></domain>";

    #[test]
    fn inactive_xml_keeps_only_user_aliases() {
        let xml = XML.replace(
            "<target dev='vdb' bus='virtio'/>",
            "<target dev='vdb' bus='virtio'/><alias name='ua-data'/>",
        );
        let mut d = Domain::from_xml(&xml).unwrap();
        fill_in(&mut d, &mut Constant);
        let live = d.to_xml();
        assert!(live.contains("<alias name='net0'/>"));
        assert!(live.contains("<alias name='balloon0'/>"));
        let inactive = d.to_inactive_xml();
        assert!(!inactive.contains("<alias name='net0'/>"));
        assert!(!inactive.contains("<alias name='balloon0'/>"));
        assert!(inactive.contains("<alias name='ua-data'/>"));
        // Re-reading and filling in again gives the same live definition.
        let mut again = Domain::from_xml(&inactive).unwrap();
        fill_in(&mut again, &mut Constant);
        assert_eq!(again.to_xml(), live);
    }

    #[test]
    fn generated_macs_are_unique_and_use_the_qemu_prefix() {
        let mut d = Domain::from_xml(XML).unwrap();
        fill_in(&mut d, &mut Constant);
        let macs: Vec<String> = d
            .devices
            .interfaces
            .iter()
            .map(|i| i.mac.unwrap().to_string())
            .collect();
        assert_eq!(
            macs,
            [
                "52:54:00:07:07:07",
                "52:54:00:07:07:08",
                "52:54:00:07:07:09"
            ]
        );
    }

    #[test]
    fn fills_uuid_memory_and_libvirt_addresses() {
        let mut d = Domain::from_xml(XML).unwrap();
        fill_in(&mut d, &mut Constant);
        assert_eq!(
            d.uuid.unwrap().to_string(),
            "07070707-0707-4707-8707-070707070707"
        );
        assert_eq!(d.current_memory_kib, Some(1024));
        assert_eq!(d.os.boot_devs, ["hd"]);
        assert_eq!(d.devices.disks[0].target_bus.as_deref(), Some("ide"));
        let disks = &d.devices.disks;
        let alias = |i: usize| disks[i].info.alias.clone().unwrap();
        assert_eq!(alias(0), "ide0-1-0");
        assert_eq!(alias(1), "sata0-0-1");
        assert_eq!(alias(2), "virtio-disk1");
        let addr = disks[0].info.address.as_ref().unwrap();
        assert_eq!(addr.attr("bus"), Some("1"));
        assert_eq!(addr.attr("unit"), Some("0"));
        // pc: after the three NICs (slots 2-4) and the SATA controller
        // the disks imply (5).
        let virtio = disks[2].info.address.as_ref().unwrap();
        assert_eq!(virtio.attr("type"), Some("pci"));
        assert_eq!(virtio.attr("slot"), Some("0x06"));
        // microvm has no PCI: virtio devices go on virtio-mmio.
        let microvm = XML.replace("<type>hvm</type>", "<type machine='microvm'>hvm</type>");
        let mut d = Domain::from_xml(&microvm).unwrap();
        fill_in(&mut d, &mut Constant);
        let virtio = d.devices.disks[2].info.address.as_ref().unwrap();
        assert_eq!(virtio.attr("type"), Some("virtio-mmio"));
    }

    fn inputs(d: &Domain) -> Vec<(String, String)> {
        d.devices
            .others
            .iter()
            .filter(|o| o.kind() == "input")
            .map(|o| {
                (
                    o.dev_type().unwrap_or_default().to_string(),
                    o.element.attr("bus").unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn implicit_ps2_inputs_as_libvirt() {
        let base = "<domain type='kvm'><name>f</name><memory>1024</memory>\
                    <os><type>hvm</type></os><devices>DEVS</devices></domain>";
        let filled = |devs: &str, features: &str| {
            let xml = base
                .replace("DEVS", devs)
                .replace("<devices>", &format!("{features}<devices>"));
            let mut d = Domain::from_xml(&xml).unwrap();
            d.fill_in_with(&mut Constant);
            d
        };
        let pair = |t: &str, b: &str| (t.to_string(), b.to_string());
        let d = filled("<input type='tablet' bus='usb'/>", "");
        assert_eq!(
            inputs(&d),
            [
                pair("tablet", "usb"),
                pair("mouse", "ps2"),
                pair("keyboard", "ps2")
            ]
        );
        // After the other inputs, before what follows them.
        let xml = d.to_xml();
        let (tablet, keyboard, balloon) = (
            xml.find("'tablet'").unwrap(),
            xml.find("'keyboard'").unwrap(),
            xml.find("<memballoon").unwrap(),
        );
        assert!(tablet < keyboard && keyboard < balloon, "{xml}");
        // Filling in again adds nothing; a PS/2 keyboard of its own is kept.
        let mut again = d.clone();
        again.fill_in_with(&mut Constant);
        assert_eq!(inputs(&again), inputs(&d));
        let d = filled("<input type='keyboard' bus='ps2'/>", "");
        assert_eq!(inputs(&d), [pair("keyboard", "ps2"), pair("mouse", "ps2")]);
        let d = filled("", "<features><ps2 state='off'/></features>");
        assert!(inputs(&d).is_empty());
        let d = filled("", "");
        assert_eq!(inputs(&d), [pair("mouse", "ps2"), pair("keyboard", "ps2")]);
    }
}
