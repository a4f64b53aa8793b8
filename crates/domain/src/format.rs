//! Writes the model back as XML in `virsh dumpxml` layout: known parts
//! first, then what was kept from the input, sorted by libvirt's order.

use crate::model::*;
use crate::order;
use crate::xml::{self, Element};

fn text_el(name: &'static str, text: impl Into<String>) -> Element {
    Element::new(name).with_text(text)
}

fn push_opt_text(parent: &mut Element, name: &'static str, text: &Option<String>) {
    if let Some(t) = text {
        parent.push(text_el(name, t.clone()));
    }
}

fn kib_el(name: &'static str, kib: u64, kept: &KeptAttrs) -> Element {
    let mut e = Element::new(name).with_attr("unit", Some("KiB"));
    e.attrs.extend(kept.iter().cloned());
    e.with_text(kib.to_string())
}

/// Finishes an element: appends kept parts, then sorts children by `table`.
fn finish(mut el: Element, extra: &Element, table: &[&str]) -> Element {
    el.merge(extra);
    el.sort_children(|n| order::rank(table, n));
    el
}

pub(crate) fn domain(d: &Domain) -> Element {
    let mut e = Element::new("domain").with_attr("type", Some(d.kind.clone()));
    e.push(text_el("name", d.name.clone()));
    if let Some(u) = d.uuid {
        e.push(text_el("uuid", u.hyphenated().to_string()));
    }
    push_opt_text(&mut e, "genid", &d.genid);
    push_opt_text(&mut e, "title", &d.title);
    push_opt_text(&mut e, "description", &d.description);
    if let Some(m) = &d.metadata {
        e.push(m.clone());
    }
    if let Some(m) = &d.max_memory {
        let mut el = Element::new("maxMemory").with_attr("slots", m.slots.map(|s| s.to_string()));
        el.set_attr("unit", "KiB");
        el.attrs.extend(m.attrs.iter().cloned());
        e.push(el.with_text(m.kib.to_string()));
    }
    e.push(kib_el("memory", d.memory_kib, &d.memory_attrs));
    if let Some(c) = d.current_memory_kib {
        e.push(kib_el("currentMemory", c, &d.current_memory_attrs));
    }
    if let Some(m) = &d.memory_backing {
        e.push(m.clone());
    }
    e.push(vcpu(&d.vcpu));
    if let Some(c) = &d.cputune {
        e.push(c.clone());
    }
    if let Some(c) = &d.cpu {
        e.push(cpu(c));
    }
    e.push(os(&d.os));
    if let Some(f) = &d.features {
        e.push(f.clone());
    }
    if let Some(c) = &d.clock {
        let el = Element::new("clock").with_attr("offset", c.offset.clone());
        e.push(finish(el, &c.extra, &[]));
    }
    for (name, action) in [
        ("on_poweroff", d.on_poweroff),
        ("on_reboot", d.on_reboot),
        ("on_crash", d.on_crash),
    ] {
        if let Some(a) = action {
            e.push(text_el(name, a.as_str()));
        }
    }
    if let Some(p) = &d.pm {
        e.push(p.clone());
    }
    e.push(devices(&d.devices));
    finish(e, &d.extra, order::DOMAIN)
}

fn vcpu(v: &Vcpu) -> Element {
    let el = Element::new("vcpu")
        .with_attr("placement", v.placement.clone())
        .with_attr("cpuset", v.cpuset.clone())
        .with_attr("current", v.current.map(|c| c.to_string()));
    let mut el = finish(el, &v.extra, &[]);
    el.push_text(v.count.to_string());
    el
}

fn cpu(c: &Cpu) -> Element {
    let mut e = Element::new("cpu")
        .with_attr("mode", c.mode.clone())
        .with_attr("match", c.match_.clone())
        .with_attr("check", c.check.clone());
    if let Some(m) = &c.model {
        let mut el = Element::new("model")
            .with_attr("fallback", m.fallback.clone())
            .with_attr("vendor_id", m.vendor_id.clone());
        el.attrs.extend(m.attrs.iter().cloned());
        e.push(el.with_text(m.name.clone()));
    }
    push_opt_text(&mut e, "vendor", &c.vendor);
    if let Some(t) = &c.topology {
        let mut el = Element::new("topology")
            .with_attr("sockets", Some(t.sockets.to_string()))
            .with_attr("dies", t.dies.map(|n| n.to_string()))
            .with_attr("clusters", t.clusters.map(|n| n.to_string()))
            .with_attr("cores", Some(t.cores.to_string()))
            .with_attr("threads", Some(t.threads.to_string()));
        el.attrs.extend(t.attrs.iter().cloned());
        e.push(el);
    }
    for f in &c.features {
        e.push(
            Element::new("feature")
                .with_attr("policy", f.policy.clone())
                .with_attr("name", Some(f.name.clone())),
        );
    }
    finish(e, &c.extra, order::CPU)
}

fn os(o: &Os) -> Element {
    let mut e = Element::new("os");
    e.push(
        Element::new("type")
            .with_attr("arch", o.arch.clone())
            .with_attr("machine", o.machine.clone())
            .with_text(o.os_type.clone()),
    );
    push_opt_text(&mut e, "kernel", &o.kernel);
    push_opt_text(&mut e, "initrd", &o.initrd);
    push_opt_text(&mut e, "cmdline", &o.cmdline);
    for d in &o.boot_devs {
        e.push(Element::new("boot").with_attr("dev", Some(d.clone())));
    }
    if let Some(b) = o.bootmenu {
        e.push(Element::new("bootmenu").with_attr("enable", Some(if b { "yes" } else { "no" })));
    }
    finish(e, &o.extra, order::OS)
}

fn devices(d: &Devices) -> Element {
    let mut e = Element::new("devices");
    push_opt_text(&mut e, "emulator", &d.emulator);
    for disk in &d.disks {
        e.push(self::disk(disk));
    }
    for i in &d.interfaces {
        e.push(interface(i));
    }
    for c in d.serials.iter().chain(&d.consoles).chain(&d.channels) {
        e.push(chardev(c));
    }
    for o in &d.others {
        e.push(o.element.clone());
    }
    finish(e, &d.extra, order::DEVICES)
}

fn push_info(e: &mut Element, info: &DeviceInfo) {
    if info.boot_order.is_some() || !info.boot_attrs.is_empty() {
        let mut el =
            Element::new("boot").with_attr("order", info.boot_order.map(|b| b.to_string()));
        el.attrs.extend(info.boot_attrs.iter().cloned());
        e.push(el);
    }
    if let Some(a) = &info.alias {
        e.push(Element::new("alias").with_attr("name", Some(a.clone())));
    }
    if let Some(a) = &info.address {
        e.push(a.clone());
    }
}

fn disk(d: &Disk) -> Element {
    let mut e = Element::new("disk")
        .with_attr("type", Some(d.disk_type.clone()))
        .with_attr("device", Some(d.device.clone()));
    if let Some(drv) = &d.driver {
        let mut el = Element::new("driver")
            .with_attr("name", drv.name.clone())
            .with_attr("type", drv.format.clone())
            .with_attr("cache", drv.cache.clone())
            .with_attr("io", drv.io.clone())
            .with_attr("discard", drv.discard.clone())
            .with_attr("detect_zeroes", drv.detect_zeroes.clone());
        el.merge(&drv.extra);
        el.attrs
            .sort_by_key(|(k, _)| order::rank(order::DISK_DRIVER_ATTRS, k));
        e.push(el);
    }
    if let Some(s) = &d.source {
        e.push(s.clone());
    }
    if let Some(b) = &d.backing_store {
        e.push(b.clone());
    }
    let mut target = Element::new("target")
        .with_attr("dev", Some(d.target_dev.clone()))
        .with_attr("bus", d.target_bus.clone());
    target.merge(&d.target_extra);
    e.push(target);
    if d.readonly {
        e.push(Element::new("readonly"));
    }
    if d.shareable {
        e.push(Element::new("shareable"));
    }
    push_opt_text(&mut e, "serial", &d.serial);
    push_info(&mut e, &d.info);
    finish(e, &d.extra, order::DISK)
}

fn interface(i: &Interface) -> Element {
    let mut e = Element::new("interface").with_attr("type", Some(i.iface_type.clone()));
    if let Some(m) = i.mac {
        let mut el = Element::new("mac").with_attr("address", Some(m.to_string()));
        el.attrs.extend(i.mac_attrs.iter().cloned());
        e.push(el);
    }
    if let Some(s) = &i.source {
        e.push(s.clone());
    }
    if let Some(t) = &i.target_dev {
        e.push(Element::new("target").with_attr("dev", Some(t.clone())));
    }
    if let Some(m) = &i.model {
        e.push(Element::new("model").with_attr("type", Some(m.clone())));
    }
    push_info(&mut e, &i.info);
    finish(e, &i.extra, order::INTERFACE)
}

fn chardev(c: &Chardev) -> Element {
    let mut e = Element::new(c.kind.element()).with_attr("type", Some(c.dev_type.clone()));
    if let Some(s) = &c.source {
        e.push(s.clone());
    }
    if let Some(p) = &c.protocol {
        e.push(Element::new("protocol").with_attr("type", Some(p.clone())));
    }
    if let Some(t) = &c.target {
        e.push(t.clone());
    }
    push_info(&mut e, &c.info);
    finish(e, &c.extra, order::CHARDEV)
}

/// The whole document as text.
pub(crate) fn to_string(d: &Domain) -> String {
    let mut out = String::with_capacity(4096);
    xml::write(&mut out, &domain(d), 0);
    out
}
