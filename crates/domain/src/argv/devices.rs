//! Device arguments: disks, NICs, serial ports and consoles, and the
//! smaller virtio devices, in libvirt's order and with libvirt's ids.

// `write!` into a String cannot fail, so its result is ignored below.
use std::fmt::Write as _;

use serde::Serialize;

use super::blockdev;
use super::pci::{self, PciPlace};
use super::support::{self, Support};
use super::{qv, Builder, PasstRequest, TapRequest};
use crate::model::{Chardev, Disk, Domain, Interface};
use crate::names;
use crate::pci::Chipset;
use crate::usernet::UserNet;

/// A small virtio device's `-device` on PCI, keys in libvirt's order.
#[derive(Serialize)]
struct VirtioDevice<'a> {
    driver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rng: Option<&'a str>,
    id: &'a str,
    #[serde(flatten)]
    pci: PciPlace,
}

/// `-device` for a virtio device with an id: libvirt's JSON on PCI, the
/// key=value form rvirt has always used on virtio-mmio.
pub(super) fn virtio_device(
    base: &str,
    id: &str,
    rng: Option<&str>,
    place: Option<PciPlace>,
) -> String {
    match place {
        Some(pci) => blockdev::json(&VirtioDevice {
            driver: pci::driver(base, &Some(pci.clone())),
            rng,
            id,
            pci,
        }),
        None => {
            let mut s = pci::driver(base, &None);
            if let Some(r) = rng {
                let _ = write!(s, ",rng={r}");
            }
            let _ = write!(s, ",id={id}");
            s
        }
    }
}

pub(super) fn all(dom: &Domain, b: &mut Builder) {
    let boot = super::boot::indices(dom);
    pci::root_ports(dom, b);
    // libvirt's controller order: SCSI, then SATA, then virtio-serial.
    super::scsi::controllers(dom, b);
    sata_controllers(dom, b);
    let needs_virtio_serial = dom
        .devices
        .consoles
        .iter()
        .any(|c| c.target_type() == Some("virtio"));
    // The controller libvirt adds for virtio consoles and channels: on
    // PCI the guest sees it whether or not a console uses it.
    let controller = dom.devices.others.iter().find(|o| {
        o.kind() == "controller"
            && o.dev_type() == Some("virtio-serial")
            && o.element.attr("index").is_none_or(|i| i == "0")
    });
    let serial_place = controller.and_then(|o| {
        let what = "controller (virtio-serial)";
        pci::place(dom, o.element.child("address"), o.line(), what, b)
    });
    if needs_virtio_serial || serial_place.is_some() {
        let dev = virtio_device(support::VIRTIO_SERIAL, "virtio-serial0", None, serial_place);
        b.opt("-device", dev);
    }
    // libvirt numbers block nodes from the last image of the last disk
    // up: every image of a chain has its own pair of nodes.
    let chains: Vec<Result<Chain, (u32, String)>> = dom.devices.disks.iter().map(chain).collect();
    let mut n: usize = chains
        .iter()
        .map(|c| c.as_ref().map_or(1, |c| 1 + c.below.len()))
        .sum();
    for (i, d) in dom.devices.disks.iter().enumerate() {
        let layers = chains[i].as_ref().map_or(1, |c| 1 + c.below.len());
        disk(dom, d, &chains[i], n, boot.disks[i], b);
        n -= layers;
    }
    for (i, iface) in dom.devices.interfaces.iter().enumerate() {
        nic(dom, iface, i, boot.nics[i], b);
    }
    chardevs(dom, b);
    super::graphics::all(dom, b);
    others(dom, b);
}

/// An image below a disk's own, from `<backingStore>`.
struct Backing {
    path: String,
    format: String,
    /// `file` or `block`.
    kind: String,
}

/// A disk's backing chain as its definition gives it.
pub(super) struct Chain {
    below: Vec<Backing>,
    /// How the chain ends: `None` when the last `<backingStore>` is absent
    /// (the image's header says, as in QEMU), `Some(())` when it is empty
    /// (`<backingStore/>`: nothing below).
    closed: bool,
}

impl Chain {
    /// How many images are below the disk's own.
    pub(super) fn below_len(&self) -> usize {
        self.below.len()
    }
}

/// Reads the `<backingStore>` chain of `d` (libvirt's nesting: each holds
/// its `<format>`, `<source>` and the next `<backingStore>`).
pub(super) fn chain(d: &Disk) -> Result<Chain, (u32, String)> {
    let mut below = Vec::new();
    let mut next = d.backing_store.as_ref();
    while let Some(e) = next {
        let line = e.line.0;
        let Some(kind) = e.attr("type") else {
            // `<backingStore/>`: the chain ends here.
            return Ok(Chain {
                below,
                closed: true,
            });
        };
        if kind != "file" && kind != "block" {
            return Err((
                line,
                format!("backing store type '{kind}' is not supported"),
            ));
        }
        let format = e
            .child("format")
            .and_then(|f| f.attr("type"))
            .ok_or((line, "backing store has no <format type>".to_string()))?;
        if !support::disk_format(format) {
            return Err((
                line,
                format!("backing image format '{format}' is not supported"),
            ));
        }
        let path = e
            .child("source")
            .and_then(|s| s.attr("file").or_else(|| s.attr("dev")))
            .ok_or((line, "backing store has no source".to_string()))?;
        below.push(Backing {
            path: path.to_string(),
            format: format.to_string(),
            kind: kind.to_string(),
        });
        if format == "raw" {
            // Nothing is below a raw image.
            return Ok(Chain {
                below,
                closed: true,
            });
        }
        next = e.child("backingStore");
    }
    Ok(Chain {
        below,
        closed: false,
    })
}

/// The images below disk `d`'s own that its definition names
/// (`<backingStore>`), top down: the `k`-th is opened read-only by the VMM
/// under [`backing_key`]`(target, k + 1)`. Empty when the chain is refused
/// (the derivation says why).
pub fn backing_paths(d: &Disk) -> Vec<String> {
    chain(d)
        .map(|c| c.below.into_iter().map(|b| b.path).collect())
        .unwrap_or_default()
}

/// The [`super::FdPlan::files`] key of the image `depth` levels below the
/// disk `target`'s own (`vda[1]` is the backing image of `vda`'s).
pub fn backing_key(target: &str, depth: usize) -> String {
    format!("{target}[{depth}]")
}

/// The drive address of a SATA or IDE disk: the one stored, or the one
/// libvirt gives its target name.
fn drive_address(d: &Disk) -> Option<(u32, u32, u32, u32)> {
    d.info
        .address
        .as_ref()
        .and_then(names::read_drive_address)
        .or_else(|| names::drive_address(d.bus(), names::disk_index(&d.target_dev)?))
}

/// The `<controller type='sata' index=…>` of a domain.
fn sata_controller(dom: &Domain, index: u32) -> Option<&crate::model::OtherDevice> {
    dom.devices.others.iter().find(|o| {
        o.kind() == "controller"
            && o.dev_type() == Some("sata")
            && o.element.attr("index").and_then(|i| i.parse().ok()) == Some(index)
    })
}

/// Whether a SATA controller is q35's built-in AHCI (00:1f.2, index 0),
/// which the machine has without a `-device`.
fn sata_builtin(dom: &Domain, index: u32) -> bool {
    index == 0 && Chipset::of(dom) == Some(Chipset::Q35)
}

/// Where a SATA or IDE disk plugs in, as libvirt 9.0 writes it
/// (`qemuBuildDeviceAddressDriveProps`); Err: why it cannot.
fn ata_place(dom: &Domain, d: &Disk) -> Result<blockdev::DrivePlace, String> {
    let Some(chipset) = Chipset::of(dom) else {
        return Err(format!("bus '{}' needs a pc or q35 machine", d.bus()));
    };
    let Some((c, bus, _, unit)) = drive_address(d) else {
        return Err("has no drive address".to_string());
    };
    match d.bus() {
        "sata" => {
            if bus != 0 || unit >= 6 {
                return Err(format!(
                    "SATA bus {bus} unit {unit} does not exist (one bus, units 0-5)"
                ));
            }
            if sata_builtin(dom, c) {
                // QEMU names the built-in controller's ports ide.0-ide.5.
                return Ok(blockdev::DrivePlace {
                    bus: format!("ide.{unit}"),
                    unit: None,
                });
            }
            let placed = sata_controller(dom, c)
                .and_then(|o| o.element.child("address"))
                .is_some_and(|a| a.attr("type") == Some("pci"));
            if !placed {
                return Err(format!("SATA controller {c} has no PCI address"));
            }
            Ok(blockdev::DrivePlace {
                bus: format!("{}.{unit}", sata_alias(dom, c)),
                unit: None,
            })
        }
        _ => {
            if chipset == Chipset::Q35 {
                return Err("q35 has no IDE controller (use bus='sata')".to_string());
            }
            ide_place((c, bus, unit))
        }
    }
}

/// pc's IDE port of a drive address (controller, bus, unit).
fn ide_place((c, bus, unit): (u32, u32, u32)) -> Result<blockdev::DrivePlace, String> {
    if c != 0 || bus >= 2 || unit >= 2 {
        return Err(format!(
            "IDE controller {c} bus {bus} unit {unit} does not exist (pc has one: buses 0-1, units 0-1)"
        ));
    }
    Ok(blockdev::DrivePlace {
        bus: format!("ide.{bus}"),
        unit: Some(unit),
    })
}

/// A SATA controller's id: its alias, or libvirt's `sataN`.
fn sata_alias(dom: &Domain, index: u32) -> String {
    sata_controller(dom, index)
        .and_then(|o| o.element.child("alias"))
        .and_then(|a| a.attr("name"))
        .map_or_else(|| format!("sata{index}"), str::to_string)
}

/// An AHCI controller's `-device`, keys in libvirt's order.
#[derive(Serialize)]
struct AhciDevice<'a> {
    driver: &'a str,
    id: &'a str,
    #[serde(flatten)]
    pci: PciPlace,
}

/// `-device ahci` for every SATA controller the machine does not have
/// built in (any on pc, the second and later on q35), before the disks
/// that name it, as libvirt emits its controllers.
fn sata_controllers(dom: &Domain, b: &mut Builder) {
    for o in &dom.devices.others {
        if o.kind() != "controller" || o.dev_type() != Some("sata") {
            continue;
        }
        let Some(index) = o.element.attr("index").and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        if sata_builtin(dom, index) {
            continue;
        }
        let what = "controller (sata)";
        // Without a PCI address (microvm) the disks on it are refused.
        let Some(pci) = pci::place(dom, o.element.child("address"), o.line(), what, b) else {
            continue;
        };
        let id = sata_alias(dom, index);
        b.opt(
            "-device",
            blockdev::json(&AhciDevice {
                driver: support::AHCI,
                id: &id,
                pci,
            }),
        );
    }
}

pub(super) fn disk(
    dom: &Domain,
    d: &Disk,
    chain: &Result<Chain, (u32, String)>,
    node: usize,
    bootindex: Option<u32>,
    b: &mut Builder,
) {
    let what = format!("disk '{}'", d.target_dev);
    let line = d.line.0;
    let mut ok = true;
    let bus = d.bus();
    let device_driver = support::disk_device_driver(bus, &d.device);
    if support::disk_driver(bus).is_none() {
        b.refuse(line, &what, format!("bus '{bus}' is not emulated"));
        ok = false;
    } else if device_driver.is_none() {
        b.refuse(
            line,
            &what,
            format!("device '{}' is not emulated on bus '{bus}'", d.device),
        );
        ok = false;
    }
    let ata = match bus {
        "sata" | "ide" => match ata_place(dom, d) {
            Ok(p) => Some(p),
            Err(why) => {
                b.refuse(line, &what, why);
                ok = false;
                None
            }
        },
        _ => None,
    };
    let alias = d.info.alias.clone().unwrap_or_else(|| names::disk_alias(d));
    // A CD-ROM with no medium: the drive alone, its tray empty (libvirt
    // still counts it in the node numbering).
    if d.device == "cdrom" && d.source_path().is_none() {
        if ok && bus == "scsi" {
            let lun = super::scsi::Lun {
                drive: None,
                id: &alias,
                bootindex,
                write_cache: None,
            };
            return super::scsi::device(dom, d, lun, b);
        }
        if let (true, Some(driver)) = (ok, device_driver) {
            b.opt(
                "-device",
                blockdev::json(&blockdev::BlockDevice {
                    driver,
                    pci: None,
                    ata,
                    share_rw: false,
                    drive: None,
                    id: &alias,
                    bootindex,
                    serial: d.serial.as_deref(),
                    write_cache: None,
                }),
            );
        }
        return;
    }
    let source_driver = support::disk_source_driver(&d.disk_type);
    if source_driver.is_none() {
        b.refuse(
            line,
            &what,
            format!("source type '{}' is not supported", d.disk_type),
        );
        ok = false;
    }
    let drv = d.driver.as_ref();
    let format = drv.and_then(|x| x.format.as_deref()).unwrap_or("raw");
    if !support::disk_format(format) {
        b.refuse(
            line,
            &what,
            format!("image format '{format}' is not supported"),
        );
        ok = false;
    }
    let path = d.source_path();
    if path.is_none() && ok {
        b.refuse(line, &what, "has no source".to_string());
        ok = false;
    }
    let chain = match chain {
        Ok(c) => Some(c),
        Err((l, why)) => {
            b.refuse(*l, &what, why.clone());
            ok = false;
            None
        }
    };
    if let Some(c) = chain {
        if format == "raw" && !c.below.is_empty() {
            b.refuse(line, &what, "a raw image has no backing image".to_string());
            ok = false;
        }
    }
    let (Some(device_driver), Some(source_driver), Some(path), Some(chain), true) =
        (device_driver, source_driver, path, chain, ok)
    else {
        return;
    };

    let cache = drv
        .and_then(|x| x.cache.as_deref())
        .and_then(blockdev::cache_mode);
    let io = drv
        .and_then(|x| x.io.as_deref())
        .filter(|io| *io != "default");
    let detect_zeroes = drv
        .and_then(|x| x.detect_zeroes.as_deref())
        .filter(|z| *z != "default");
    // The images below first, deepest first, each read-only with the
    // disk's cache and aio (libvirt passes them down the chain); then the
    // disk's own image on them.
    let top_node = node;
    let deepest = node - chain.below.len();
    for (k, below) in chain.below.iter().enumerate().rev() {
        let n = node - 1 - k;
        let storage = format!("libvirt-{n}-storage");
        let fmt_node = format!("libvirt-{n}-format");
        let lower = format!("libvirt-{}-format", n - 1);
        let below_path = b.file(&backing_key(&d.target_dev, k + 1), &below.path);
        b.opt(
            "-blockdev",
            blockdev::json(&blockdev::StorageNode {
                driver: if below.kind == "block" {
                    "host_device"
                } else {
                    "file"
                },
                filename: &below_path,
                aio: io,
                node_name: &storage,
                cache: cache.map(|c| c.0),
                auto_read_only: true,
                discard: "unmap",
            }),
        );
        let backing = if n > deepest {
            Some(Some(lower.as_str()))
        } else if chain.closed || below.format == "raw" {
            Some(None)
        } else {
            None
        };
        b.opt(
            "-blockdev",
            blockdev::json(&blockdev::FormatNode {
                node_name: &fmt_node,
                read_only: true,
                discard: None,
                cache: cache.map(|c| c.0),
                detect_zeroes: None,
                driver: &below.format,
                file: &storage,
                backing: (below.format != "raw").then_some(backing).flatten(),
            }),
        );
    }
    let storage = format!("libvirt-{top_node}-storage");
    let fmt_node = format!("libvirt-{top_node}-format");
    let lower = format!("libvirt-{}-format", top_node - 1);
    let path = b.file(&d.target_dev, path);
    b.opt(
        "-blockdev",
        blockdev::json(&blockdev::StorageNode {
            driver: source_driver,
            filename: &path,
            aio: io,
            node_name: &storage,
            cache: cache.map(|c| c.0),
            auto_read_only: true,
            discard: "unmap",
        }),
    );
    let backing = if format == "raw" {
        None
    } else if !chain.below.is_empty() {
        Some(Some(lower.as_str()))
    } else if chain.closed {
        Some(None)
    } else {
        None
    };
    b.opt(
        "-blockdev",
        blockdev::json(&blockdev::FormatNode {
            node_name: &fmt_node,
            // A CD-ROM is read-only whatever the definition says (libvirt
            // adds <readonly/> to every one).
            read_only: d.readonly || d.device == "cdrom",
            discard: drv
                .and_then(|x| x.discard.as_deref())
                .filter(|x| *x == "unmap"),
            cache: cache.map(|c| c.0),
            detect_zeroes,
            driver: format,
            file: &storage,
            backing,
        }),
    );
    if bus == "scsi" {
        let lun = super::scsi::Lun {
            drive: Some(&fmt_node),
            id: &alias,
            bootindex,
            write_cache: cache.map(|c| if c.1 { "on" } else { "off" }),
        };
        return super::scsi::device(dom, d, lun, b);
    }
    let (driver, place) = if ata.is_some() {
        (device_driver.to_string(), None)
    } else {
        let place = pci::place(dom, d.info.address.as_ref(), line, &what, b);
        (pci::driver(device_driver, &place), place)
    };
    b.opt(
        "-device",
        blockdev::json(&blockdev::BlockDevice {
            driver: &driver,
            pci: place,
            ata,
            share_rw: d.shareable,
            drive: Some(&fmt_node),
            id: &alias,
            bootindex,
            serial: d.serial.as_deref(),
            write_cache: cache.map(|c| if c.1 { "on" } else { "off" }),
        }),
    );
}

/// A NIC's `-device` on PCI, keys in libvirt's order.
#[derive(Serialize)]
struct NicDevice<'a> {
    driver: String,
    netdev: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(flatten)]
    pci: PciPlace,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootindex: Option<u32>,
}

pub(super) fn nic(
    dom: &Domain,
    iface: &Interface,
    i: usize,
    bootindex: Option<u32>,
    b: &mut Builder,
) {
    let line = iface.line.0;
    let what = format!("interface {i} (type '{}')", iface.iface_type);
    let model = iface.model.as_deref().unwrap_or("rtl8139");
    let driver = support::nic_driver(model);
    if driver.is_none() {
        b.refuse(line, &what, format!("NIC model '{model}' is not emulated"));
    }
    if !support::nic_backend(&iface.iface_type) {
        b.refuse(
            line,
            &what,
            "only tap backends (network, bridge, ethernet) and user are supported".to_string(),
        );
        return;
    }
    let Some(driver) = driver else { return };
    let netdev = format!("hostnet{i}");
    let id = iface
        .info
        .alias
        .clone()
        .unwrap_or_else(|| format!("net{i}"));
    if iface.iface_type == "user" {
        if !user_netdev(iface, &netdev, &id, &what, b) {
            return;
        }
    } else {
        tap_netdev(iface, &netdev, b);
    }
    let pci_only = support::nic_is_pci_only(model);
    let dev = match pci::place(dom, iface.info.address.as_ref(), line, &what, b) {
        Some(pci) => blockdev::json(&NicDevice {
            driver: if pci_only {
                driver.to_string()
            } else {
                pci::driver(driver, &Some(pci.clone()))
            },
            netdev: &netdev,
            id: &id,
            mac: iface.mac.map(|m| m.to_string()),
            pci,
            bootindex,
        }),
        None if pci_only => {
            b.refuse(
                line,
                &what,
                format!("NIC model '{model}' needs a PCI address"),
            );
            return;
        }
        None => {
            let mut dev = format!(
                "{},netdev={netdev},id={}",
                pci::driver(driver, &None),
                qv(&id)
            );
            if let Some(mac) = iface.mac {
                let _ = write!(dev, ",mac={mac}");
            }
            if let Some(i) = bootindex {
                let _ = write!(dev, ",bootindex={i}");
            }
            dev
        }
    };
    b.opt("-device", dev);
}

/// `-netdev user`, as libvirt 9.0 gives QEMU (`net=` from an IPv4 `<ip>`;
/// rvirt-vmm serves it with passt and slirp's addressing), or with
/// `<backend type='passt'/>` the `-netdev stream` that connects to the
/// passt the daemon starts; either as a stream on a passed socket when the
/// daemon runs passt for it (`FdPlan::streams`). False when the interface
/// is refused.
fn user_netdev(iface: &Interface, netdev: &str, alias: &str, what: &str, b: &mut Builder) -> bool {
    let user = match UserNet::of(iface) {
        Ok(u) => u,
        Err((line, message)) => {
            b.refuse(line, what, message);
            return false;
        }
    };
    let line = iface.line.0;
    let base = format!("{}-{alias}", b.name);
    let socket = b.paths.passt_dir.join(format!("{base}.socket"));
    let pidfile = b.paths.passt_dir.join(format!("{base}.pid"));
    let passed = b.fds.streams.get(netdev).copied();
    let mut slirp = None;
    if !user.passt {
        if user.ips.iter().any(|(a, _)| a.is_ipv6()) {
            b.refuse(
                line,
                what,
                "an IPv6 <ip> on user networking needs <backend type='passt'/>",
            );
            return false;
        }
        if user.mtu.is_some() || user.source_dev.is_some() {
            b.refuse(
                line,
                what,
                "<mtu> and <source dev> on user networking need <backend type='passt'/>",
            );
            return false;
        }
        let net = user.ips.first().map(|(a, p)| match p {
            Some(p) => format!("{a}/{p}"),
            None => a.to_string(),
        });
        let arg = json(&UserNetdevArg {
            kind: "user",
            net: net.as_deref(),
            id: netdev,
        });
        match rvirt_vmm_config::parse_netdev(&arg) {
            Ok((_, rvirt_vmm_config::Netdev::User(u))) => slirp = Some(u),
            Ok(_) => {}
            Err(e) => {
                b.refuse(line, what, e.to_string());
                return false;
            }
        }
        if passed.is_none() {
            b.opt("-netdev", arg);
        }
    }
    match passed {
        Some(fd) => b.opt(
            "-netdev",
            json(&StreamNetdev {
                kind: "stream",
                addr: StreamAddr::Fd {
                    kind: "fd",
                    str: &fd.to_string(),
                },
                server: false,
                id: netdev,
            }),
        ),
        None if user.passt => b.opt(
            "-netdev",
            json(&StreamNetdev {
                kind: "stream",
                addr: StreamAddr::Unix {
                    kind: "unix",
                    path: &socket.to_string_lossy(),
                },
                server: false,
                id: netdev,
            }),
        ),
        None => {}
    }
    b.argv.passt.push(PasstRequest {
        netdev_id: netdev.to_string(),
        alias: alias.to_string(),
        socket,
        pidfile,
        user,
        slirp,
    });
    true
}

#[derive(Serialize)]
struct UserNetdevArg<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    net: Option<&'a str>,
    id: &'a str,
}

#[derive(Serialize)]
struct StreamNetdev<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    addr: StreamAddr<'a>,
    server: bool,
    id: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum StreamAddr<'a> {
    Unix {
        #[serde(rename = "type")]
        kind: &'a str,
        path: &'a str,
    },
    Fd {
        #[serde(rename = "type")]
        kind: &'a str,
        str: &'a str,
    },
}

fn json(v: &impl Serialize) -> String {
    // Plain structs of strings and booleans always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

/// `-netdev tap`: by descriptor when the daemon opened the tap, else by
/// name; the daemon's tap request.
fn tap_netdev(iface: &Interface, netdev: &str, b: &mut Builder) {
    let mut nd = format!("tap,id={netdev}");
    match (b.fds.taps.get(netdev), &iface.target_dev) {
        // The daemon opened the tap: libvirt's form names only the fd.
        (Some(fd), _) => {
            let _ = write!(nd, ",fd={fd}");
        }
        (None, Some(t)) => {
            let _ = write!(nd, ",ifname={}", qv(t));
        }
        (None, None) => {}
    }
    b.opt("-netdev", nd);
    let attach = iface.source.as_ref().and_then(|s| {
        ["bridge", "network"]
            .iter()
            .find_map(|k| s.attr(k).map(|v| (k.to_string(), v.to_string())))
    });
    b.argv.taps.push(TapRequest {
        netdev_id: netdev.to_string(),
        ifname: iface.target_dev.clone(),
        attach,
    });
}

/// The `-chardev` backend for a character device, or why there is none.
pub(super) fn chardev_backend(c: &Chardev, id: &str, b: &mut Builder) -> Result<String, String> {
    support::chardev_backend(&c.dev_type, c.source_attr("mode"))?;
    let need = |attr: &str| {
        c.source_attr(attr)
            .ok_or_else(|| format!("'{}' source has no {attr}", c.dev_type))
    };
    let server = c.source_attr("mode") == Some("bind");
    let mut s = match c.dev_type.as_str() {
        "pty" => format!("pty,id={id}"),
        "null" => format!("null,id={id}"),
        "stdio" => format!("stdio,id={id}"),
        "file" => {
            let path = b.file(id, need("path")?);
            let mut s = format!("file,id={id},path={}", qv(&path));
            // A passed file is opened by the daemon, appending (libvirt's
            // form always says so).
            if c.source_attr("append") == Some("on") || path.starts_with("/dev/fdset/") {
                s.push_str(",append=on");
            }
            s
        }
        "unix" => format!("socket,id={id},path={}", qv(need("path")?)),
        "tcp" => {
            let mut s = format!(
                "socket,id={id},host={},port={}",
                qv(c.source_attr("host").unwrap_or("localhost")),
                qv(need("service")?)
            );
            if c.protocol.as_deref() == Some("telnet") {
                s.push_str(",telnet=on");
            }
            s
        }
        other => return Err(format!("host side '{other}' is not supported")),
    };
    if server && matches!(c.dev_type.as_str(), "unix" | "tcp") {
        s.push_str(",server=on,wait=off");
    }
    Ok(s)
}

fn chardevs(dom: &Domain, b: &mut Builder) {
    let devs = &dom.devices;
    // A serial console with no <serial> is the first serial port itself.
    let console_as_serial = devs.serials.is_empty()
        && devs
            .consoles
            .first()
            .is_some_and(|c| matches!(c.target_type(), None | Some("serial")));
    let serials: Vec<&Chardev> = if console_as_serial {
        devs.consoles.iter().take(1).collect()
    } else {
        devs.serials.iter().collect()
    };
    for (i, c) in serials.iter().enumerate() {
        let what = format!("serial {i}");
        let id = format!("charserial{i}");
        let backend = match chardev_backend(c, &id, b) {
            Ok(s) => s,
            Err(reason) => {
                b.refuse(c.line.0, what, reason);
                continue;
            }
        };
        let Some(driver) = support::serial_driver(c.target_type()) else {
            b.refuse(
                c.line.0,
                what,
                format!(
                    "target '{}' is not emulated",
                    c.target_type().unwrap_or_default()
                ),
            );
            continue;
        };
        // The port number picks the COM port (I/O base and IRQ) the guest sees.
        let port = c
            .target
            .as_ref()
            .and_then(|t| t.attr("port"))
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(i as u32);
        b.opt("-chardev", backend);
        b.opt(
            "-device",
            format!("{driver},chardev={id},id=serial{i},index={port}"),
        );
    }
    for (i, c) in devs.consoles.iter().enumerate() {
        match c.target_type() {
            Some("virtio") => {
                let id = format!("charconsole{i}");
                let backend = match chardev_backend(c, &id, b) {
                    Ok(s) => s,
                    Err(reason) => {
                        b.refuse(c.line.0, format!("console {i}"), reason);
                        continue;
                    }
                };
                b.opt("-chardev", backend);
                b.opt(
                    "-device",
                    format!("{},chardev={id},id=console{i}", support::VIRTCONSOLE),
                );
            }
            // Serial consoles are the serial ports emitted above.
            None | Some("serial") => {}
            Some(t) => b.refuse(
                c.line.0,
                format!("console {i}"),
                format!("target '{t}' is not emulated"),
            ),
        }
    }
    for (i, c) in devs.channels.iter().enumerate() {
        // The guest runs without its agent or spice channels; say so.
        let name = c.target.as_ref().and_then(|t| t.attr("name")).unwrap_or("");
        b.warn(format!(
            "channel {i} ({} {name}) left off: channels are not emulated yet",
            c.dev_type
        ));
    }
}

fn others(dom: &Domain, b: &mut Builder) {
    let mut rngs = 0;
    let mut inputs = 0;
    let mut isa = super::isa::Counters::default();
    let mut usb_ports = Vec::new();
    for o in &dom.devices.others {
        // libvirt numbers every input, whatever its bus, in its alias.
        let input = inputs;
        if o.kind() == "input" {
            inputs += 1;
        }
        let kind = o.kind();
        if matches!(kind, "graphics" | "video") {
            // argv/graphics.rs: derived or refused there.
            continue;
        }
        let variant = match kind {
            "input" => o.element.attr("bus"),
            "controller" if o.dev_type() == Some("pci") => Some(o.model().unwrap_or("pci-root")),
            "controller"
                if o.dev_type() == Some("scsi") && o.model() == Some(super::scsi::MODEL) =>
            {
                o.model()
            }
            "controller" | "graphics" => o.dev_type(),
            _ => o.model(),
        };
        match support::device(kind, variant) {
            Support::Implicit => {}
            Support::Omitted => b.warn(format!(
                "{kind} ({}) left off: not emulated; only a display user needs it",
                variant.unwrap_or("default")
            )),
            Support::Refused => b.refuse(
                o.line(),
                kind.to_string(),
                format!(
                    "'{}' is not emulated",
                    variant.or(o.dev_type()).unwrap_or("default")
                ),
            ),
            Support::Emulated => match kind {
                "memballoon" => {
                    let what = "memballoon";
                    let place = pci::place(dom, o.element.child("address"), o.line(), what, b);
                    let dev =
                        virtio_device(support::VIRTIO_BALLOON, support::BALLOON_ID, None, place);
                    b.opt("-device", dev);
                }
                "rng" => {
                    let backend = o.element.child("backend");
                    let model = backend.and_then(|x| x.attr("model"));
                    if model != Some("random") {
                        b.refuse(
                            o.line(),
                            "rng",
                            format!("backend '{}' is not supported", model.unwrap_or("")),
                        );
                        continue;
                    }
                    let file = backend.map(|x| x.text()).filter(|t| !t.is_empty());
                    let file = file.unwrap_or_else(|| "/dev/urandom".to_string());
                    b.opt(
                        "-object",
                        format!("rng-random,id=objrng{rngs},filename={}", qv(&file)),
                    );
                    let place = pci::place(dom, o.element.child("address"), o.line(), "rng", b);
                    let (obj, id) = (format!("objrng{rngs}"), format!("rng{rngs}"));
                    let dev = virtio_device(support::VIRTIO_RNG, &id, Some(&obj), place);
                    b.opt("-device", dev);
                    rngs += 1;
                }
                "controller" if o.dev_type() == Some("usb") => super::usb::controller(dom, o, b),
                "input" if o.element.attr("bus") == Some("usb") => {
                    super::usb::input(dom, o, input, &mut usb_ports, b)
                }
                "input" => {
                    let ty = o.dev_type().unwrap_or_default();
                    let Some(driver) = support::virtio_input_driver(ty) else {
                        b.refuse(o.line(), "input", format!("virtio '{ty}' is not emulated"));
                        continue;
                    };
                    let id = o
                        .element
                        .child("alias")
                        .and_then(|a| a.attr("name"))
                        .map_or_else(|| format!("input{input}"), str::to_string);
                    let place = pci::place(dom, o.element.child("address"), o.line(), "input", b);
                    b.opt("-device", virtio_device(driver, &id, None, place));
                }
                "watchdog" => super::isa::watchdog(dom, o, &mut isa, b),
                "parallel" => super::isa::parallel(o, &mut isa, b),
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pc's IDE drives of the recorded fixtures, each as libvirt 9.0
    /// wrote it: the driver, port and id that start its `-device` (the
    /// fixture test compares the whole line).
    #[test]
    fn ide_drives_are_placed_as_libvirt_places_them() {
        let fixtures = [
            (
                include_str!("../../tests/fixtures/dx-minimal.xml"),
                include_str!("../../tests/fixtures/dx-minimal.argv"),
            ),
            (
                include_str!("../../tests/fixtures/dx-boot-order.xml"),
                include_str!("../../tests/fixtures/dx-boot-order.argv"),
            ),
            (
                include_str!("../../tests/fixtures/dx-disk-buses.xml"),
                include_str!("../../tests/fixtures/dx-disk-buses.argv"),
            ),
        ];
        let mut seen = 0;
        for (xml, argv) in fixtures {
            let dom = Domain::from_xml(xml).unwrap();
            for d in dom.devices.disks.iter().filter(|d| d.bus() == "ide") {
                let (c, bus, _, unit) = drive_address(d).unwrap();
                let place = ide_place((c, bus, unit)).unwrap();
                let driver = support::disk_device_driver("ide", &d.device).unwrap();
                let place = blockdev::json(&place);
                let start = format!(r#"{{"driver":"{driver}",{}"#, &place[1..place.len() - 1]);
                let id = format!(r#""id":"{}""#, names::disk_alias(d));
                assert!(
                    argv.lines().any(|l| l.contains(&start) && l.contains(&id)),
                    "{}: no {start}…{id} in libvirt's argv",
                    d.target_dev
                );
                seen += 1;
            }
        }
        assert!(seen >= 4, "{seen}");
    }
}
