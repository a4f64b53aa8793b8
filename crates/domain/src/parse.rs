//! Builds the typed model from the XML tree, collecting every problem with
//! its line. Each reader takes the parts it understands out of the element;
//! what is left becomes the struct's `extra`.

use crate::error::Problems;
use crate::mac::Mac;
use crate::model::*;
use crate::units::{to_kib, SizeError};
use crate::xml::{Element, Line, Node};

/// What is left of an element, in the order the writer will put it, so
/// that a re-read of the output compares equal.
fn in_order(mut e: Element, table: &[&str]) -> Element {
    // Text has no place in these elements: a stray run is kept trimmed,
    // as it reads back once the writer puts elements beside it.
    e.children.retain_mut(|n| match n {
        Node::Text(t) => {
            let trimmed = t.trim();
            if trimmed.len() != t.len() {
                *t = trimmed.to_string();
            }
            !t.is_empty()
        }
        Node::Element(_) => true,
    });
    e.sort_children(|n| crate::order::rank(table, n));
    e
}

/// Takes the first `<name>` child when it is exactly `<name attr='…'/>`
/// and returns the value; anything richer stays in `extra`, written back
/// whole, so nothing the model does not understand is lost.
fn take_plain_attr(e: &mut Element, name: &str, attr: &str) -> Option<String> {
    let c = e.child(name)?;
    if c.attrs.len() != 1 || !c.children.is_empty() || c.attr(attr).is_none() {
        return None;
    }
    e.take_child(name)?.take_attr(attr)
}

fn opt_text(parent: &mut Element, name: &str) -> Option<String> {
    parent.take_child(name).map(|mut e| e.take_text())
}

/// Reads a memory-sized element into KiB.
fn size(p: &mut Problems, e: &mut Element) -> Option<u64> {
    let line = e.line.0;
    let unit = e.take_attr("unit");
    let text = e.take_text();
    match to_kib(&text, unit.as_deref()) {
        Ok(kib) => Some(kib),
        Err(SizeError::UnknownUnit) => {
            p.push(
                line,
                &e.name,
                Some("unit"),
                format!("unknown unit '{}'", unit.unwrap_or_default()),
            );
            None
        }
        Err(SizeError::NotANumber) => {
            p.push(
                line,
                &e.name,
                None,
                format!("'{}' is not a valid size", text.trim()),
            );
            None
        }
        Err(SizeError::TooLarge) => {
            p.push(
                line,
                &e.name,
                None,
                format!("size '{}' is too large", text.trim()),
            );
            None
        }
    }
}

fn yes_no(p: &mut Problems, e: &Element, attr: &str, v: &str) -> Option<bool> {
    match v {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => {
            p.push(
                e.line.0,
                &e.name,
                Some(attr),
                format!("expected 'yes' or 'no', not '{v}'"),
            );
            None
        }
    }
}

pub(crate) fn domain(mut root: Element, p: &mut Problems) -> Domain {
    let line = root.line;
    if root.name != "domain" {
        p.push(
            line.0,
            &root.name,
            None,
            format!("expected root element <domain>, found <{}>", root.name),
        );
    }
    let kind = root.take_attr("type").unwrap_or_default();
    // The hypervisor types libvirt knows; rvirt runs only `kvm`, which
    // derivation checks, but a definition may name any of them.
    const TYPES: &[&str] = &[
        "qemu",
        "kqemu",
        "kvm",
        "xen",
        "lxc",
        "uml",
        "openvz",
        "test",
        "vmware",
        "hyperv",
        "vbox",
        "phyp",
        "parallels",
        "bhyve",
        "vz",
        "none",
    ];
    if kind.is_empty() {
        p.push(line.0, "domain", Some("type"), "missing domain type".into());
    } else if !TYPES.contains(&kind.as_str()) {
        p.push(
            line.0,
            "domain",
            Some("type"),
            format!("unknown domain type '{kind}'"),
        );
    }
    let mut lines = Lines {
        domain: line,
        ..Default::default()
    };

    let name = match root.take_child("name") {
        Some(mut e) => {
            lines.name = e.line;
            Some(e.take_text())
        }
        None => None,
    };
    let name = match name {
        None => {
            p.push(line.0, "name", None, "missing domain name".into());
            String::new()
        }
        Some(n) => {
            check_name(p, lines.name.0, &n);
            n
        }
    };

    let uuid = root.take_child("uuid").and_then(|mut e| {
        let text = e.take_text();
        match uuid::Uuid::parse_str(text.trim()) {
            Ok(u) => Some(u),
            Err(_) => {
                p.push(
                    e.line.0,
                    "uuid",
                    None,
                    format!("'{text}' is not a valid UUID"),
                );
                None
            }
        }
    });
    let genid = opt_text(&mut root, "genid");
    let title = opt_text(&mut root, "title");
    if title.as_deref().is_some_and(|t| t.contains('\n')) {
        p.push(
            line.0,
            "title",
            None,
            "title must not contain a newline".into(),
        );
    }
    let description = opt_text(&mut root, "description");
    let metadata = root.take_child("metadata");

    let mut memory_attrs = Vec::new();
    let memory_kib = match root.take_child("memory") {
        Some(mut e) => {
            lines.memory = e.line;
            let kib = size(p, &mut e);
            if kib == Some(0) {
                p.push(
                    e.line.0,
                    "memory",
                    None,
                    "memory size must be greater than zero".into(),
                );
            }
            memory_attrs = e.attrs;
            kib.unwrap_or(0)
        }
        None => {
            p.push(line.0, "memory", None, "missing memory size".into());
            0
        }
    };
    let mut current_memory_attrs = Vec::new();
    let current_memory_kib = root.take_child("currentMemory").and_then(|mut e| {
        lines.current_memory = e.line;
        let kib = size(p, &mut e);
        current_memory_attrs = e.attrs;
        // libvirt's post-parse: a balloon target of zero or above the
        // memory is the memory, so a `virsh edit` that lowers <memory>
        // below <currentMemory> is not an error.
        kib.map(|k| {
            if k == 0 || k > memory_kib {
                memory_kib
            } else {
                k
            }
        })
    });
    let max_memory = root.take_child("maxMemory").and_then(|mut e| {
        lines.max_memory = e.line;
        let slots = e
            .take_attr("slots")
            .and_then(|s| p.number(e.line.0, "maxMemory", Some("slots"), &s));
        let kib = size(p, &mut e);
        kib.map(|kib| MaxMemory {
            kib,
            slots,
            attrs: e.attrs,
        })
    });
    let memory_backing = root.take_child("memoryBacking");
    let vcpu = match root.take_child("vcpu") {
        Some(e) => {
            lines.vcpu = e.line;
            vcpu(p, e)
        }
        // libvirt defaults to one vCPU.
        // Named as the writer will name it, so a re-read compares equal.
        None => Vcpu {
            count: 1,
            extra: Element::new("vcpu"),
            ..Default::default()
        },
    };
    let cputune = root.take_child("cputune");
    let cpu = root.take_child("cpu").map(|e| cpu(p, e));
    let os = match root.take_child("os") {
        Some(e) => os(p, e),
        None => {
            p.push(line.0, "os", None, "missing <os> element".into());
            Os::default()
        }
    };
    let features = root.take_child("features");
    let clock = root.take_child("clock").map(|mut e| Clock {
        offset: e.take_attr("offset"),
        extra: e,
    });
    let mut action = |name: &str, crash: bool| {
        let e = root.take_child(name)?;
        let text = e.text();
        let a = LifecycleAction::parse(text.trim());
        let allowed = match a {
            Some(LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart) => crash,
            Some(_) => true,
            None => false,
        };
        if !allowed {
            p.push(
                e.line.0,
                name,
                None,
                format!("unknown action '{}'", text.trim()),
            );
            return None;
        }
        a
    };
    let on_poweroff = action("on_poweroff", false);
    let on_reboot = action("on_reboot", false);
    let on_crash = action("on_crash", true);
    let pm = root.take_child("pm");
    let devices = root
        .take_child("devices")
        .map(|e| devices(p, e))
        .unwrap_or_else(|| Devices {
            extra: Element::new("devices"),
            ..Default::default()
        });

    Domain {
        kind,
        name,
        uuid,
        genid,
        title,
        description,
        metadata,
        memory_kib,
        memory_attrs,
        current_memory_kib,
        current_memory_attrs,
        max_memory,
        memory_backing,
        vcpu,
        cputune,
        cpu,
        os,
        features,
        clock,
        on_poweroff,
        on_reboot,
        on_crash,
        pm,
        devices,
        extra: in_order(root, crate::order::DOMAIN),
        lines,
    }
}

/// libvirt refuses names that are empty, contain `/` (they become file
/// names) or control characters.
fn check_name(p: &mut Problems, line: u32, name: &str) {
    if name.is_empty() {
        p.push(line, "name", None, "domain name must not be empty".into());
    } else if name.contains('/') {
        p.push(
            line,
            "name",
            None,
            format!("name '{name}' must not contain '/'"),
        );
    } else if name.chars().any(char::is_control) {
        p.push(
            line,
            "name",
            None,
            "name must not contain control characters".into(),
        );
    }
}

fn vcpu(p: &mut Problems, mut e: Element) -> Vcpu {
    let line = e.line.0;
    let placement = e.take_attr("placement");
    if let Some(pl) = &placement {
        if pl != "static" && pl != "auto" {
            p.push(
                line,
                "vcpu",
                Some("placement"),
                format!("unknown placement '{pl}'"),
            );
        }
    }
    let cpuset = e.take_attr("cpuset");
    let current = e
        .take_attr("current")
        .and_then(|c| p.number(line, "vcpu", Some("current"), &c));
    let count = p.number(line, "vcpu", None, &e.take_text()).unwrap_or(1);
    Vcpu {
        count,
        placement,
        cpuset,
        current,
        extra: e,
    }
}

fn cpu(p: &mut Problems, mut e: Element) -> Cpu {
    let line = e.line;
    let mode = e.take_attr("mode");
    if let Some(m) = &mode {
        if !matches!(
            m.as_str(),
            "custom" | "host-model" | "host-passthrough" | "maximum"
        ) {
            p.push(
                line.0,
                "cpu",
                Some("mode"),
                format!("unknown CPU mode '{m}'"),
            );
        }
    }
    let match_ = e.take_attr("match");
    let check = e.take_attr("check");
    let model = e.take_child("model").map(|mut m| CpuModel {
        fallback: m.take_attr("fallback"),
        vendor_id: m.take_attr("vendor_id"),
        name: m.take_text(),
        attrs: std::mem::take(&mut m.attrs),
    });
    let vendor = opt_text(&mut e, "vendor");
    let topology = e.take_child("topology").map(|mut t| {
        let tl = t.line.0;
        let mut count = |attr: &str| {
            t.take_attr(attr).map(|v| {
                let n: u32 = p.number(tl, "cpu/topology", Some(attr), &v).unwrap_or(1);
                if n == 0 {
                    p.push(
                        tl,
                        "cpu/topology",
                        Some(attr),
                        format!("{attr} must be greater than zero"),
                    );
                }
                n
            })
        };
        let (sockets, dies, clusters) = (count("sockets"), count("dies"), count("clusters"));
        let (cores, threads) = (count("cores"), count("threads"));
        Topology {
            sockets: sockets.unwrap_or(1),
            dies,
            clusters,
            cores: cores.unwrap_or(1),
            threads: threads.unwrap_or(1),
            attrs: std::mem::take(&mut t.attrs),
            line: Line(tl),
        }
    });
    let features = e
        .take_children("feature")
        .into_iter()
        .filter_map(|mut f| {
            let policy = f.take_attr("policy");
            if let Some(pol) = &policy {
                if !matches!(
                    pol.as_str(),
                    "force" | "require" | "optional" | "disable" | "forbid"
                ) {
                    p.push(
                        f.line.0,
                        "cpu/feature",
                        Some("policy"),
                        format!("unknown policy '{pol}'"),
                    );
                }
            }
            match f.take_attr("name") {
                Some(name) => Some(CpuFeature { policy, name }),
                None => {
                    p.push(
                        f.line.0,
                        "cpu/feature",
                        Some("name"),
                        "missing feature name".into(),
                    );
                    None
                }
            }
        })
        .collect();
    Cpu {
        mode,
        match_,
        check,
        model,
        vendor,
        topology,
        features,
        extra: in_order(e, crate::order::CPU),
        line,
    }
}

fn os(p: &mut Problems, mut e: Element) -> Os {
    let line = e.line;
    let (os_type, arch, machine) = match e.take_child("type") {
        Some(mut t) => {
            let arch = t.take_attr("arch");
            let machine = t.take_attr("machine");
            (t.take_text(), arch, machine)
        }
        None => {
            p.push(line.0, "os/type", None, "missing OS type".into());
            (String::new(), None, None)
        }
    };
    let kernel = opt_text(&mut e, "kernel");
    let initrd = opt_text(&mut e, "initrd");
    let cmdline = opt_text(&mut e, "cmdline");
    let boot_devs = e
        .take_children("boot")
        .into_iter()
        .filter_map(|mut b| {
            let dev = b.take_attr("dev");
            match dev.as_deref() {
                Some("hd" | "cdrom" | "fd" | "network") => dev,
                Some(d) => {
                    p.push(
                        b.line.0,
                        "os/boot",
                        Some("dev"),
                        format!("unknown boot device '{d}'"),
                    );
                    None
                }
                None => {
                    p.push(
                        b.line.0,
                        "os/boot",
                        Some("dev"),
                        "missing boot device".into(),
                    );
                    None
                }
            }
        })
        .collect();
    let bootmenu = match e.child("bootmenu") {
        // Only a bare `enable` is modelled; timeouts keep the element whole.
        Some(b) if b.attrs.len() == 1 && b.children.is_empty() => {
            let b = e.take_child("bootmenu").unwrap_or_default();
            let v = b.attr("enable").unwrap_or_default().to_string();
            yes_no(p, &b, "enable", &v)
        }
        _ => None,
    };
    Os {
        os_type,
        arch,
        machine,
        kernel,
        initrd,
        cmdline,
        boot_devs,
        bootmenu,
        extra: in_order(e, crate::order::OS),
        line,
    }
}

fn devices(p: &mut Problems, mut e: Element) -> Devices {
    let emulator = opt_text(&mut e, "emulator");
    let mut d = Devices {
        emulator,
        ..Default::default()
    };
    for child in e.take_all_elements() {
        match child.name.as_ref() {
            "disk" => d.disks.push(disk(p, child)),
            "interface" => d.interfaces.push(interface(p, child)),
            "serial" => d.serials.push(chardev(p, child, ChardevKind::Serial)),
            "console" => d.consoles.push(chardev(p, child, ChardevKind::Console)),
            "channel" => d.channels.push(chardev(p, child, ChardevKind::Channel)),
            _ => d.others.push(OtherDevice { element: child }),
        }
    }
    // Kept in libvirt's order, as the writer will lay them out.
    d.others
        .sort_by_cached_key(|o| crate::order::rank(crate::order::DEVICES, o.kind()));
    d.extra = in_order(e, crate::order::DEVICES);
    d
}

fn device_info(p: &mut Problems, e: &mut Element) -> DeviceInfo {
    let mut boot_attrs = Vec::new();
    let boot_order = e.take_child("boot").and_then(|mut b| {
        let line = b.line.0;
        let order = b.take_attr("order");
        boot_attrs = std::mem::take(&mut b.attrs);
        let n: u32 = p.number(line, "boot", Some("order"), &order?)?;
        if n == 0 {
            p.push(
                line,
                "boot",
                Some("order"),
                "boot order must be greater than zero".into(),
            );
        }
        Some(n)
    });
    let alias = take_plain_attr(e, "alias", "name");
    DeviceInfo {
        boot_order,
        boot_attrs,
        alias,
        address: e.take_child("address"),
    }
}

fn disk(p: &mut Problems, mut e: Element) -> Disk {
    let line = e.line;
    let disk_type = e.take_attr("type").unwrap_or_else(|| "file".into());
    let device = e.take_attr("device").unwrap_or_else(|| "disk".into());
    if !matches!(device.as_str(), "disk" | "cdrom" | "floppy" | "lun") {
        p.push(
            line.0,
            "disk",
            Some("device"),
            format!("unknown disk device '{device}'"),
        );
    }
    let driver = e.take_child("driver").map(|mut d| DiskDriver {
        name: d.take_attr("name"),
        format: d.take_attr("type"),
        cache: d.take_attr("cache"),
        io: d.take_attr("io"),
        discard: d.take_attr("discard"),
        detect_zeroes: d.take_attr("detect_zeroes"),
        extra: d,
    });
    if let Some(drv) = &driver {
        let checks: [(&str, &Option<String>, &[&str]); 4] = [
            (
                "cache",
                &drv.cache,
                &[
                    "default",
                    "none",
                    "writethrough",
                    "writeback",
                    "directsync",
                    "unsafe",
                ],
            ),
            ("io", &drv.io, &["default", "native", "threads", "io_uring"]),
            ("discard", &drv.discard, &["default", "unmap", "ignore"]),
            (
                "detect_zeroes",
                &drv.detect_zeroes,
                &["default", "off", "on", "unmap"],
            ),
        ];
        for (attr, value, allowed) in checks {
            if let Some(v) = value {
                if !allowed.contains(&v.as_str()) {
                    p.push(
                        line.0,
                        "disk/driver",
                        Some(attr),
                        format!("unknown {attr} mode '{v}'"),
                    );
                }
            }
        }
    }
    let source = e.take_child("source");
    let backing_store = e.take_child("backingStore");
    let (target_dev, target_bus, target_extra) = match e.take_child("target") {
        Some(mut t) => {
            let dev = t.take_attr("dev").unwrap_or_default();
            if dev.is_empty() {
                p.push(
                    t.line.0,
                    "disk/target",
                    Some("dev"),
                    "missing target device name".into(),
                );
            }
            (dev, t.take_attr("bus"), t)
        }
        None => {
            p.push(
                line.0,
                "disk/target",
                None,
                "missing <target> element".into(),
            );
            (String::new(), None, Element::default())
        }
    };
    let readonly = e.take_child("readonly").is_some();
    let shareable = e.take_child("shareable").is_some();
    let serial = opt_text(&mut e, "serial");
    let info = device_info(p, &mut e);
    Disk {
        disk_type,
        device,
        driver,
        source,
        backing_store,
        target_dev,
        target_bus,
        target_extra,
        readonly,
        shareable,
        serial,
        info,
        extra: in_order(e, crate::order::DISK),
        line,
    }
}

fn interface(p: &mut Problems, mut e: Element) -> Interface {
    let line = e.line;
    let iface_type = e.take_attr("type").unwrap_or_default();
    if iface_type.is_empty() {
        p.push(
            line.0,
            "interface",
            Some("type"),
            "missing interface type".into(),
        );
    }
    let mut mac_attrs = Vec::new();
    let mac = e.take_child("mac").and_then(|mut m| {
        let addr = m.take_attr("address").unwrap_or_default();
        mac_attrs = std::mem::take(&mut m.attrs);
        match addr.parse::<Mac>() {
            Ok(mac) => Some(mac),
            Err(err) => {
                p.push(m.line.0, "interface/mac", Some("address"), err.to_string());
                None
            }
        }
    });
    let source = e.take_child("source");
    let model = take_plain_attr(&mut e, "model", "type");
    let target_dev = take_plain_attr(&mut e, "target", "dev");
    let info = device_info(p, &mut e);
    Interface {
        iface_type,
        mac,
        mac_attrs,
        source,
        model,
        target_dev,
        info,
        extra: in_order(e, crate::order::INTERFACE),
        line,
    }
}

/// A `<parallel>` (kept whole among the other devices) read as the
/// character device it is, for the derivation of its host side.
pub(crate) fn parallel_chardev(e: &Element) -> Chardev {
    let mut p = Problems::default();
    // Its kind only names the element in messages the derivation does not
    // write.
    chardev(&mut p, e.clone(), ChardevKind::Serial)
}

fn chardev(p: &mut Problems, mut e: Element, kind: ChardevKind) -> Chardev {
    let line = e.line;
    let dev_type = e.take_attr("type").unwrap_or_else(|| "pty".into());
    let source = e.take_child("source");
    let protocol = take_plain_attr(&mut e, "protocol", "type");
    let target = e.take_child("target");
    let info = device_info(p, &mut e);
    Chardev {
        kind,
        dev_type,
        source,
        protocol,
        target,
        info,
        extra: in_order(e, crate::order::CHARDEV),
        line,
    }
}
