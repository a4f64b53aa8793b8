//! Rules that span several elements, checked after parsing.

use std::collections::HashMap;

use crate::error::Problems;
use crate::model::Domain;

/// The most vCPUs a guest may have: KVM's limit on x86.
pub const MAX_VCPUS: u32 = 1024;

pub(crate) fn check(d: &Domain, p: &mut Problems) {
    memory(d, p);
    vcpus(d, p);
    disks(d, p);
    macs(d, p);
    user_interfaces(d, p);
    pci_addresses(d, p);
    boot(d, p);
}

/// `<interface type='user'>`'s back-end, addresses and forwards.
fn user_interfaces(d: &Domain, p: &mut Problems) {
    for iface in d
        .devices
        .interfaces
        .iter()
        .filter(|i| i.iface_type == "user")
    {
        if let Err((line, message)) = crate::usernet::UserNet::of(iface) {
            p.push(line, "interface", None, message);
        }
    }
}

fn memory(d: &Domain, p: &mut Problems) {
    // currentMemory above memory is clamped when parsed, as libvirt does.
    if let Some(max) = &d.max_memory {
        if max.kib < d.memory_kib {
            p.push(
                d.lines.max_memory.0,
                "maxMemory",
                None,
                format!(
                    "maximum memory ({} KiB) is smaller than memory ({} KiB)",
                    max.kib, d.memory_kib
                ),
            );
        }
    }
}

fn vcpus(d: &Domain, p: &mut Problems) {
    let line = d.lines.vcpu.0;
    let v = &d.vcpu;
    if v.count == 0 {
        p.push(
            line,
            "vcpu",
            None,
            "vCPU count must be greater than zero".into(),
        );
    } else if v.count > MAX_VCPUS {
        p.push(
            line,
            "vcpu",
            None,
            format!("{} vCPUs is more than the maximum of {MAX_VCPUS}", v.count),
        );
    }
    match v.current {
        Some(0) => p.push(
            line,
            "vcpu",
            Some("current"),
            "current vCPU count must be greater than zero".into(),
        ),
        Some(c) if c > v.count => p.push(
            line,
            "vcpu",
            Some("current"),
            format!("current vCPU count {c} is above the maximum {}", v.count),
        ),
        _ => {}
    }
    if let Some(t) = d.cpu.as_ref().and_then(|c| c.topology.as_ref()) {
        let product = t.product();
        if product != u64::from(v.count) && v.count > 0 {
            p.push(
                t.line.0,
                "cpu/topology",
                None,
                format!(
                    "topology gives {product} vCPUs but <vcpu> asks for {}",
                    v.count
                ),
            );
        }
    }
}

fn disks(d: &Domain, p: &mut Problems) {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for disk in &d.devices.disks {
        if disk.target_dev.is_empty() {
            continue;
        }
        if let Some(&first) = seen.get(disk.target_dev.as_str()) {
            p.push(
                disk.line.0,
                "disk/target",
                Some("dev"),
                format!(
                    "target '{}' is already used by the disk on line {first}",
                    disk.target_dev
                ),
            );
        } else {
            seen.insert(&disk.target_dev, disk.line.0);
        }
    }
}

fn macs(d: &Domain, p: &mut Problems) {
    let mut seen = HashMap::new();
    for iface in &d.devices.interfaces {
        if let Some(mac) = iface.mac {
            if let Some(&first) = seen.get(&mac) {
                p.push(
                    iface.line.0,
                    "interface/mac",
                    Some("address"),
                    format!("MAC address {mac} is already used by the interface on line {first}"),
                );
            } else {
                seen.insert(mac, iface.line.0);
            }
        }
    }
}

/// Every `<address type='pci'>` in range (domain 0, bus 0-0xff, slot
/// 0-0x1f, function 0-7), and no two devices on one function.
fn pci_addresses(d: &Domain, p: &mut Problems) {
    let devs = &d.devices;
    let addresses = devs
        .disks
        .iter()
        .map(|x| &x.info)
        .chain(devs.interfaces.iter().map(|x| &x.info))
        .chain(devs.serials.iter().map(|x| &x.info))
        .chain(devs.consoles.iter().map(|x| &x.info))
        .chain(devs.channels.iter().map(|x| &x.info))
        .filter_map(|i| i.address.as_ref())
        .chain(
            devs.others
                .iter()
                .filter_map(|o| o.element.child("address")),
        )
        .filter(|a| a.attr("type") == Some("pci"));
    let mut seen = HashMap::new();
    for a in addresses {
        let line = a.line.0;
        let mut ok = true;
        for (attr, max) in [
            ("domain", 0),
            ("bus", 0xff),
            ("slot", 0x1f),
            ("function", 7),
        ] {
            let Some(v) = a.attr(attr) else { continue };
            let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(h) => u32::from_str_radix(h, 16).ok(),
                None => v.parse().ok(),
            };
            if n.is_none_or(|n| n > max) {
                p.push(
                    line,
                    "address",
                    Some(attr),
                    format!("PCI address {attr}='{v}' must be a number up to {max:#x}"),
                );
                ok = false;
            }
        }
        let Some(at) = crate::pci::PciAddress::read(a).filter(|_| ok) else {
            continue;
        };
        // An empty address asks for one to be assigned.
        if (at.bus, at.slot, at.function) == (0, 0, 0) {
            continue;
        }
        let key = (at.bus, at.slot, at.function);
        if let Some(&first) = seen.get(&key) {
            p.push(
                line,
                "address",
                None,
                format!(
                    "PCI address {:02x}:{:02x}.{:x} is already used by the device on line {first}",
                    at.bus, at.slot, at.function
                ),
            );
        } else {
            seen.insert(key, line);
        }
    }
}

/// `<bootmenu timeout>` and `<bios rebootTimeout useserial>` in libvirt's
/// ranges (both kept whole in `<os>`'s extra part).
fn boot(d: &Domain, p: &mut Problems) {
    if let Some(m) = d.os.extra.child("bootmenu") {
        if let Some(t) = m.attr("timeout") {
            if !t.parse::<u32>().is_ok_and(|t| t <= 0xffff) {
                p.push(
                    m.line.0,
                    "os/bootmenu",
                    Some("timeout"),
                    format!("invalid boot menu timeout '{t}', must be in range [0,65535]"),
                );
            }
        }
    }
    let Some(bios) = d.os.extra.child("bios") else {
        return;
    };
    if let Some(t) = bios.attr("rebootTimeout") {
        if !t.parse::<i32>().is_ok_and(|t| (-1..=0xffff).contains(&t)) {
            p.push(
                bios.line.0,
                "os/bios",
                Some("rebootTimeout"),
                format!("invalid value '{t}' for rebootTimeout, must be in range [-1,65535]"),
            );
        }
    }
    if let Some(v) = bios.attr("useserial") {
        if !matches!(v, "yes" | "no") {
            p.push(
                bios.line.0,
                "os/bios",
                Some("useserial"),
                format!("invalid value '{v}' for useserial, must be yes or no"),
            );
        }
    }
}
