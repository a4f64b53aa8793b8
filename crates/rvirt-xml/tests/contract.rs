//! The contract between the domain layer and the VMM, checked so that it
//! cannot drift: for every domain XML fixture that derives, the derived
//! command line goes through rvirt-vmm's own parser
//! (`rvirt_vmm_config::parse`), and what the VMM will build is compared
//! with what the definition means: each disk's file, format, read-only,
//! cache semantics (O_DIRECT, flushes, the guest's write cache) and aio;
//! each NIC's MAC, model and back-end; serial ports and consoles; memory;
//! vCPUs and topology; machine; boot (the kernel, initrd and command line
//! of a direct boot, or firmware and each device's place in the boot
//! order); on pc and q35 each virtio device's PCI function (bus, slot,
//! function, multifunction) and each pcie-root-port's. A
//! definition the VMM would refuse must already be refused by the
//! derivation, with its line.
//!
//! The expected values are computed here from the XML model with libvirt's
//! documented meanings, not with the derivation's helpers, so that a wrong
//! table on either side shows.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rvirt_domain::model::{Chardev, Disk, Domain, Interface};
use rvirt_domain::xml::Element;
use rvirt_domain::{derive_argv, DeriveError, RuntimePaths};
use rvirt_vmm_config::{
    parse, Action, Aio, AtaDriveConfig, AtaKind, Backing, ChardevBackend, DeviceAddr, DiskConfig,
    FormatNode, ImageFormat, NetConfig, Netdev, NicModel, PciAddr, PciBus, StreamAddr,
    StreamNetdev, TapSource, UserNetdev, VirtioConfig, VmConfig,
};

thread_local! {
    /// Every disagreement found, so one run lists them all.
    static FOUND: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records a disagreement between the definition and the VMM's config.
macro_rules! same {
    ($got:expr, $want:expr, $($what:tt)+) => {{
        match (&$got, &$want) {
            (got, want) if got != want => {
                let what = format!($($what)+);
                let msg = format!("{what}: VMM has {got:?}, the definition means {want:?}");
                FOUND.with(|f| f.borrow_mut().push(msg));
            }
            _ => {}
        }
    }};
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the domain crate's fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    v
}

/// What a libvirt `cache=` mode means on the host and for the guest
/// (libvirt's formatdomain documentation, QEMU's `-drive cache=` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheMeaning {
    /// The image is opened with O_DIRECT.
    direct: bool,
    /// Guest flushes are not passed to the host.
    no_flush: bool,
    /// The guest sees a volatile write cache; without one, every write is
    /// durable when it completes.
    write_cache: bool,
}

fn libvirt_cache(mode: Option<&str>) -> CacheMeaning {
    let (direct, no_flush, write_cache) = match mode {
        None | Some("default") | Some("writeback") => (false, false, true),
        Some("none") => (true, false, true),
        Some("writethrough") => (false, false, false),
        Some("directsync") => (true, false, false),
        Some("unsafe") => (false, true, true),
        Some(other) => panic!("libvirt has no cache mode '{other}'"),
    };
    CacheMeaning {
        direct,
        no_flush,
        write_cache,
    }
}

fn vmm_cache(d: &DiskConfig) -> CacheMeaning {
    let cache = d.cache();
    CacheMeaning {
        direct: cache.direct,
        no_flush: cache.no_flush,
        write_cache: d.write_cache,
    }
}

fn libvirt_aio(io: Option<&str>) -> Aio {
    match io {
        None | Some("default") | Some("threads") => Aio::Threads,
        Some("native") => Aio::Native,
        Some("io_uring") => Aio::IoUring,
        Some(other) => panic!("libvirt has no io mode '{other}'"),
    }
}

fn check_disk(name: &str, d: &Disk, c: &DiskConfig) {
    let what = format!("{name}: disk '{}'", d.target_dev);
    let drv = d.driver.as_ref();
    same!(
        Some(c.path().to_string_lossy().as_ref()),
        d.source_path(),
        "{what}: file"
    );
    let format = drv.and_then(|x| x.format.as_deref()).unwrap_or("raw");
    same!(c.image.format.as_str(), format, "{what}: format");
    // A CD-ROM is read-only whatever the definition says (libvirt's too).
    same!(
        c.read_only(),
        d.readonly || d.device == "cdrom",
        "{what}: read-only"
    );
    same!(
        vmm_cache(c),
        libvirt_cache(drv.and_then(|x| x.cache.as_deref())),
        "{what}: cache semantics"
    );
    same!(
        c.aio(),
        libvirt_aio(drv.and_then(|x| x.io.as_deref())),
        "{what}: aio"
    );
    let unmap = drv.and_then(|x| x.discard.as_deref()) == Some("unmap");
    same!(c.discard(), unmap, "{what}: discard");
    same!(c.serial, d.serial, "{what}: serial");
    check_chain(&what, d.backing_store.as_ref(), &c.image);
}

/// `<backingStore>` as libvirt means it: absent, the image's header names
/// the chain (the VMM follows it); empty, nothing below; otherwise the
/// image below, read-only, with its own `<backingStore>`.
fn check_chain(what: &str, store: Option<&Element>, node: &FormatNode) {
    match (store, &node.backing) {
        (None, Backing::FromImage) => {}
        (Some(e), Backing::None) if e.attr("type").is_none() => {}
        (Some(e), Backing::Node(below)) if e.attr("type").is_some() => {
            let file = e
                .child("source")
                .and_then(|s| s.attr("file").or_else(|| s.attr("dev")));
            same!(
                Some(below.path().to_string_lossy().as_ref()),
                file,
                "{what}: backing file"
            );
            let format = e.child("format").and_then(|f| f.attr("type"));
            same!(
                Some(below.format.as_str()),
                format,
                "{what}: backing format"
            );
            same!(below.read_only(), true, "{what}: backing image read-only");
            if below.format == ImageFormat::Raw {
                same!(below.backing, Backing::FromImage, "{what}: below raw");
            } else {
                check_chain(what, e.child("backingStore"), below);
            }
        }
        (store, backing) => {
            let msg = format!(
                "{what}: backing chain: VMM has {backing:?}, the definition has {:?}",
                store.map(|e| e.attr("type"))
            );
            FOUND.with(|f| f.borrow_mut().push(msg));
        }
    }
}

/// An ATA drive as the definition means it: a disk or a CD-ROM, on pc's
/// PIIX3 IDE, or on the AHCI controller (index in `VmConfig::ahci`: q35's built-in one
/// first, then each `-device ahci`, whose id is libvirt's `sataN`) and
/// port its drive address names.
fn check_ata(name: &str, dom: &Domain, d: &Disk, a: &AtaDriveConfig, cfg: &VmConfig) {
    let what = format!("{name}: disk '{}'", d.target_dev);
    let kind = if d.device == "cdrom" {
        AtaKind::Cdrom
    } else {
        AtaKind::Disk
    };
    same!(a.kind, kind, "{what}: kind");
    let addr = d
        .info
        .address
        .as_ref()
        .filter(|x| x.attr("type") == Some("drive"))
        .expect("filled in");
    let n = |k: &str| addr.attr(k).map_or(0, number);
    // pc's IDE drives are on the PIIX3 (built in): channel * 2 + unit.
    same!(a.ide, d.bus() == "ide", "{what}: on the PIIX3 IDE");
    if d.bus() == "ide" {
        same!(u32::from(a.port), n("bus") * 2 + n("unit"), "{what}: port");
        match &a.disk {
            Some(c) => check_disk(name, d, c),
            None => same!(d.source_path(), None, "{what}: medium"),
        }
        return;
    }
    let q35 = cfg.ahci.first().is_some_and(|c| c.builtin);
    let controller = match n("controller") {
        0 if q35 => Some(0),
        c => cfg
            .ahci
            .iter()
            .position(|x| x.id.as_deref() == Some(&format!("sata{c}"))),
    };
    same!(Some(a.controller), controller, "{what}: controller");
    same!(u32::from(a.port), n("unit"), "{what}: port");
    if !q35 || n("controller") != 0 {
        let want = dom
            .devices
            .others
            .iter()
            .find(|o| {
                o.kind() == "controller"
                    && o.dev_type() == Some("sata")
                    && o.element.attr("index").map(number) == Some(n("controller"))
            })
            .and_then(|o| libvirt_place(o.element.child("address"), cfg));
        let got = cfg
            .ahci
            .get(a.controller)
            .map(|c| DeviceAddr::Pci { addr: c.addr });
        same!(got, want, "{what}: its controller's place");
    }
    match &a.disk {
        Some(c) => check_disk(name, d, c),
        None => same!(d.source_path(), None, "{what}: medium"),
    }
}

/// The VMM's NIC for a definition's interface: virtio-net or e1000.
enum VmmNic<'a> {
    Virtio(&'a NetConfig),
    Pci(&'a NetConfig, NicModel),
}

fn check_nic(name: &str, dom: &str, i: usize, iface: &Interface, v: &VmmNic) {
    let what = format!("{name}: interface {i}");
    // virtio and e1000 are the NIC models rvirt-vmm has; anything else
    // must have been refused.
    let (n, model) = match v {
        VmmNic::Virtio(n) => (*n, "virtio"),
        VmmNic::Pci(n, m) => (*n, m.driver()),
    };
    same!(iface.model.as_deref(), Some(model), "{what}: model");
    let mac = iface.mac.expect("filled in").to_string();
    let got = n
        .mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    same!(got, mac, "{what}: MAC");
    same!(
        n.backend,
        libvirt_nic_backend(dom, i, iface),
        "{what}: back-end"
    );
}

/// The back-end a libvirt interface asks for.
fn libvirt_nic_backend(dom: &str, i: usize, iface: &Interface) -> Netdev {
    if iface.iface_type != "user" {
        // A tap the daemon creates and opens (by name here; rvirtd passes
        // the open descriptor instead).
        return Netdev::Tap(TapSource::Name(iface.target_dev.clone()));
    }
    let passt = iface
        .extra
        .child("backend")
        .is_some_and(|b| b.attr("type") == Some("passt"));
    if passt {
        // The socket of the passt the daemon starts for this NIC.
        let alias = iface.info.alias.clone().unwrap_or(format!("net{i}"));
        let socket = format!("/run/rvirt/contract/passt/{dom}-{alias}.socket");
        return Netdev::Stream(StreamNetdev {
            addr: StreamAddr::Unix(PathBuf::from(socket)),
            reconnect: None,
        });
    }
    // slirp's network (10.0.2.0/24 unless an IPv4 <ip> moves it): the host
    // at .2, the DNS server at .3, the guest's lease at .15.
    let (net, prefix) = iface
        .extra
        .elements()
        .filter(|e| e.name == "ip")
        .filter_map(|e| {
            let a = e.attr("address")?.parse::<Ipv4Addr>().ok()?;
            Some((a, e.attr("prefix").map_or(24, |p| p.parse().unwrap())))
        })
        .next()
        .unwrap_or((Ipv4Addr::new(10, 0, 2, 0), 24));
    let base = u32::from(net) & (u32::MAX << (32 - prefix));
    Netdev::User(UserNetdev {
        guest: Ipv4Addr::from(base | 15),
        prefix,
        host: Ipv4Addr::from(base | 2),
        dns: Ipv4Addr::from(base | 3),
        hostfwd: Vec::new(),
        ipv4: true,
        ipv6: true,
    })
}

/// The host side a libvirt character device asks for.
fn libvirt_chardev(c: &Chardev) -> ChardevBackend {
    let path = |a: &str| PathBuf::from(c.source_attr(a).expect("source path"));
    match c.dev_type.as_str() {
        "pty" => ChardevBackend::Pty,
        "null" => ChardevBackend::Null,
        "stdio" => ChardevBackend::Stdio,
        "file" => ChardevBackend::File {
            path: path("path"),
            append: c.source_attr("append") == Some("on"),
        },
        "unix" => ChardevBackend::Socket {
            path: path("path"),
            server: c.source_attr("mode") == Some("bind"),
            wait: false,
        },
        other => panic!("a '{other}' character device should have been refused"),
    }
}

fn check_chardevs(name: &str, dom: &Domain, cfg: &VmConfig) {
    let devs = &dom.devices;
    // With no <serial>, a serial <console> is the first serial port.
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
    same!(cfg.serials.len(), serials.len(), "{name}: serial ports");
    for (i, c) in serials.iter().enumerate() {
        // The COM port the guest finds it on: `<target port>`, or its place.
        let port = c
            .target
            .as_ref()
            .and_then(|t| t.attr("port"))
            .map_or(i, |p| p.parse::<usize>().unwrap());
        let s = cfg.serials.iter().find(|s| s.index as usize == port);
        same!(
            s.map(|s| &s.backend),
            Some(&libvirt_chardev(c)),
            "{name}: serial {i} on COM{}",
            port + 1
        );
    }
    let virtio_consoles: Vec<&Chardev> = devs
        .consoles
        .iter()
        .filter(|c| c.target_type() == Some("virtio"))
        .collect();
    let ports: Vec<&ChardevBackend> = cfg
        .virtio
        .iter()
        .filter_map(|v| match v {
            VirtioConfig::Console(c) => c.port.as_ref().map(|p| &p.backend),
            _ => None,
        })
        .collect();
    let want: Vec<ChardevBackend> = virtio_consoles.iter().map(|c| libvirt_chardev(c)).collect();
    same!(
        ports,
        want.iter().collect::<Vec<_>>(),
        "{name}: virtio consoles"
    );
}

fn check_cpus(name: &str, dom: &Domain, cfg: &VmConfig) {
    let smp = cfg.smp;
    same!(smp.cpus, dom.boot_vcpus(), "{name}: vCPUs at boot");
    same!(smp.maxcpus, dom.vcpu.count, "{name}: most vCPUs");
    match dom.cpu.as_ref().and_then(|c| c.topology.as_ref()) {
        Some(t) => {
            same!(
                (smp.sockets, smp.dies, smp.cores, smp.threads),
                (t.sockets, t.dies.unwrap_or(1), t.cores, t.threads),
                "{name}: topology"
            );
            same!(t.clusters.unwrap_or(1), 1, "{name}: clusters");
        }
        // libvirt's default: one core per socket.
        None => same!(
            (smp.sockets, smp.dies, smp.cores, smp.threads),
            (dom.vcpu.count, 1, 1, 1),
            "{name}: topology"
        ),
    }
}

/// The boot order libvirt gives each disk and NIC: per-device `<boot
/// order>` if any device has one; otherwise each `<os><boot dev>`'s
/// position (hd when absent) on the first device of its kind, a kind named
/// twice at its last position (libvirt 9.0's
/// qemuProcessPrepareDeviceBootorder).
fn boot_order(dom: &Domain) -> (Vec<Option<u32>>, Vec<Option<u32>>) {
    let devs = &dom.devices;
    let mut disks: Vec<Option<u32>> = devs.disks.iter().map(|d| d.info.boot_order).collect();
    let mut nics: Vec<Option<u32>> = devs.interfaces.iter().map(|i| i.info.boot_order).collect();
    if disks.iter().chain(&nics).any(Option::is_some) {
        return (disks, nics);
    }
    let hd = ["hd".to_string()];
    let order = if dom.os.boot_devs.is_empty() {
        &hd[..]
    } else {
        &dom.os.boot_devs[..]
    };
    let mut cd_seen = false;
    let mut fd_seen = false;
    let mut hd_seen = false;
    for (i, d) in devs.disks.iter().enumerate() {
        let (kind, seen) = match d.device.as_str() {
            "cdrom" => ("cdrom", &mut cd_seen),
            "floppy" => ("fd", &mut fd_seen),
            _ => ("hd", &mut hd_seen),
        };
        if !std::mem::replace(seen, true) {
            disks[i] = order.iter().rposition(|o| o == kind).map(|p| p as u32 + 1);
        }
    }
    if let Some(n) = nics.first_mut() {
        *n = order
            .iter()
            .rposition(|o| o == "network")
            .map(|p| p as u32 + 1);
    }
    (disks, nics)
}

/// A libvirt number: `0x…` hexadecimal, decimal otherwise.
fn number(v: &str) -> u32 {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

/// Where the definition puts a device: the PCI function its `<address
/// type='pci'>` names (bus N being the root port with index N), or a
/// virtio-mmio slot for any other address.
fn libvirt_place(a: Option<&Element>, cfg: &VmConfig) -> Option<DeviceAddr> {
    let Some(a) = a.filter(|a| a.attr("type") == Some("pci")) else {
        return Some(DeviceAddr::Mmio);
    };
    let n = |k: &str| a.attr(k).map_or(0, number);
    let bus = match n("bus") {
        0 => PciBus::Root,
        b => PciBus::Port(
            cfg.root_ports
                .iter()
                .position(|p| p.id == format!("pci.{b}"))?,
        ),
    };
    Some(DeviceAddr::Pci {
        addr: PciAddr {
            bus,
            slot: n("slot") as u8,
            function: n("function") as u8,
            multifunction: a.attr("multifunction") == Some("on"),
        },
    })
}

/// Each virtio device's PCI function and each root port, as the
/// definition places them.
fn check_pci(name: &str, dom: &Domain, cfg: &VmConfig) {
    let addrs = |f: &dyn Fn(&VirtioConfig) -> bool| -> Vec<DeviceAddr> {
        cfg.virtio
            .iter()
            .zip(&cfg.virtio_addrs)
            .filter(|(v, _)| f(v))
            .map(|(_, a)| *a)
            .collect()
    };
    let devs = &dom.devices;
    let want = |a: Option<&Element>| libvirt_place(a, cfg);
    let disks: Vec<_> = devs
        .disks
        .iter()
        .filter(|d| d.bus() == "virtio")
        .map(|d| want(d.info.address.as_ref()))
        .collect();
    let got: Vec<_> = addrs(&|v| matches!(v, VirtioConfig::Blk(_)))
        .into_iter()
        .map(Some)
        .collect();
    same!(got, disks, "{name}: disks' places");
    let nics = |virtio: bool| -> Vec<_> {
        devs.interfaces
            .iter()
            .filter(|i| (i.model.as_deref() == Some("virtio")) == virtio)
            .map(|i| want(i.info.address.as_ref()))
            .collect()
    };
    let got: Vec<_> = addrs(&|v| matches!(v, VirtioConfig::Net(_)))
        .into_iter()
        .map(Some)
        .collect();
    same!(got, nics(true), "{name}: virtio NICs' places");
    let got: Vec<_> = cfg
        .nics
        .iter()
        .map(|n| Some(DeviceAddr::Pci { addr: n.addr }))
        .collect();
    same!(got, nics(false), "{name}: e1000 NICs' places");
    let others = |kind: &str| -> Vec<Option<DeviceAddr>> {
        devs.others
            .iter()
            .filter(|o| o.kind() == kind && o.model() == Some("virtio"))
            .map(|o| want(o.element.child("address")))
            .collect()
    };
    let got: Vec<_> = addrs(&|v| matches!(v, VirtioConfig::Balloon(_)))
        .into_iter()
        .map(Some)
        .collect();
    same!(got, others("memballoon"), "{name}: balloon's place");
    let got: Vec<_> = addrs(&|v| matches!(v, VirtioConfig::Rng { .. }))
        .into_iter()
        .map(Some)
        .collect();
    same!(got, others("rng"), "{name}: RNGs' places");
    // The virtio-serial controller, where the VMM has one.
    let serial = devs
        .others
        .iter()
        .find(|o| o.kind() == "controller" && o.dev_type() == Some("virtio-serial"));
    let got = addrs(&|v| matches!(v, VirtioConfig::Console(_)));
    if let (Some(c), Some(g)) = (serial, got.first()) {
        same!(
            Some(*g),
            want(c.element.child("address")),
            "{name}: virtio-serial's place"
        );
    }
    // Root ports and pcie-to-pci-bridges (no port or chassis), each bus
    // named by its position among them, as the VMM's list holds them.
    let bridges: Vec<&rvirt_domain::model::OtherDevice> = devs
        .others
        .iter()
        .filter(|o| {
            o.kind() == "controller"
                && matches!(o.model(), Some("pcie-root-port" | "pcie-to-pci-bridge"))
        })
        .collect();
    let ids: Vec<String> = bridges
        .iter()
        .map(|o| format!("pci.{}", o.element.attr("index").unwrap()))
        .collect();
    let bus_of = |a: &Element| match a.attr("bus").map_or(0, number) {
        0 => PciBus::Root,
        b => PciBus::Port(
            ids.iter()
                .position(|id| *id == format!("pci.{b}"))
                .unwrap_or(usize::MAX),
        ),
    };
    let ports: Vec<(String, u8, u8, PciAddr)> = bridges
        .iter()
        .zip(&ids)
        .map(|(o, id)| {
            let t = o.element.child("target");
            let a = o.element.child("address").expect("filled in");
            let n = |e: &Element, k: &str| e.attr(k).map_or(0, number);
            let addr = PciAddr {
                bus: bus_of(a),
                slot: n(a, "slot") as u8,
                function: n(a, "function") as u8,
                multifunction: a.attr("multifunction") == Some("on"),
            };
            let tn = |k: &str| t.map_or(0, |t| n(t, k)) as u8;
            (id.clone(), tn("port"), tn("chassis"), addr)
        })
        .collect();
    let got: Vec<(String, u8, u8, PciAddr)> = cfg
        .root_ports
        .iter()
        .map(|p| (p.id.clone(), p.port, p.chassis, p.addr))
        .collect();
    same!(got, ports, "{name}: root ports");
    // The watchdog's place, behind a pcie-to-pci-bridge on q35.
    let watchdog = devs
        .others
        .iter()
        .find(|o| o.kind() == "watchdog")
        .and_then(|o| o.element.child("address"))
        .map(|a| PciAddr {
            bus: bus_of(a),
            slot: a.attr("slot").map_or(0, number) as u8,
            function: a.attr("function").map_or(0, number) as u8,
            multifunction: a.attr("multifunction") == Some("on"),
        });
    same!(
        cfg.watchdog.as_ref().map(|w| w.addr),
        watchdog,
        "{name}: the watchdog's place"
    );
}

/// Checks one definition; false when the derivation refused it.
fn check(name: &str, dom: &mut Domain) -> bool {
    // virt-install's spice and qxl/virtio-gpu are refused at derivation
    // with one line (rvirt-domain's tests/argv.rs): the rest of each
    // fixture is compared without them. VGA derives as libvirt writes it
    // but rvirt-vmm has no std VGA yet: it is left out here until then.
    dom.devices.others.retain(|o| match o.kind() {
        "graphics" => o.dev_type() == Some("vnc"),
        "video" => matches!(o.model(), Some("none" | "bochs")),
        _ => true,
    });
    dom.fill_in();
    let argv = match derive_argv(dom, &RuntimePaths::in_dir("/run/rvirt/contract")) {
        Ok(a) => a,
        Err(DeriveError::Unsupported(list)) => {
            assert!(!list.is_empty(), "{name}");
            for u in &list {
                assert!(u.line > 0, "{name}: refusal without a line: {u}");
            }
            return false;
        }
        Err(e) => panic!("{name}: {e}"),
    };
    let cfg = match parse(&argv.args) {
        Ok(Action::Run(cfg)) => cfg,
        Ok(other) => panic!("{name}: the derived argv asks for {other:?}"),
        Err(e) => {
            let msg =
                format!("{name}: derived, but rvirt-vmm refuses it ({e}): refuse it at derivation");
            FOUND.with(|f| f.borrow_mut().push(msg));
            return true;
        }
    };

    same!(
        cfg.machine,
        dom.os.machine.as_deref().unwrap_or("pc"),
        "{name}: machine"
    );
    let bytes = dom.memory_kib * 1024;
    same!(cfg.mem_size, bytes.next_multiple_of(4096), "{name}: memory");
    check_cpus(name, dom, &cfg);
    let path = |p: &Option<String>| p.as_ref().map(PathBuf::from);
    same!(cfg.kernel, path(&dom.os.kernel), "{name}: kernel");
    // Without a kernel, the machine's firmware boots the guest.
    same!(
        cfg.bios.is_some(),
        dom.os.kernel.is_none(),
        "{name}: firmware boot"
    );
    if let Some(loader) = dom.os.extra.child("loader") {
        same!(
            cfg.bios,
            Some(PathBuf::from(loader.text().trim())),
            "{name}: firmware"
        );
    }
    let menu = dom.os.bootmenu == Some(true)
        || dom
            .os
            .extra
            .child("bootmenu")
            .is_some_and(|m| m.attr("enable") == Some("yes"));
    same!(cfg.boot.menu, menu, "{name}: boot menu");
    same!(cfg.initrd, path(&dom.os.initrd), "{name}: initrd");
    same!(cfg.append, dom.os.cmdline, "{name}: kernel command line");

    // virtio disks in their order, ATA drives (SATA, IDE) in theirs.
    let mut virtio_disks = cfg.virtio.iter().filter_map(|v| match v {
        VirtioConfig::Blk(d) => Some(d),
        _ => None,
    });
    let mut ata = cfg.ata_drives.iter();
    let n_disks = virtio_disks.clone().count() + cfg.ata_drives.len();
    same!(n_disks, dom.devices.disks.len(), "{name}: disks");
    let (disk_boot, nic_boot) = boot_order(dom);
    for (d, boot) in dom.devices.disks.iter().zip(disk_boot) {
        let bootindex = if matches!(d.bus(), "sata" | "ide") {
            let Some(a) = ata.next() else { break };
            check_ata(name, dom, d, a, &cfg);
            a.bootindex
        } else {
            let Some(c) = virtio_disks.next() else { break };
            check_disk(name, d, c);
            c.bootindex
        };
        same!(
            bootindex,
            boot,
            "{name}: disk '{}': boot order",
            d.target_dev
        );
    }
    // virtio NICs in their order, e1000s in theirs.
    let mut virtio_nics = cfg.virtio.iter().filter_map(|v| match v {
        VirtioConfig::Net(n) => Some(n),
        _ => None,
    });
    let mut pci_nics = cfg.nics.iter();
    let n_nics = virtio_nics.clone().count() + cfg.nics.len();
    same!(n_nics, dom.devices.interfaces.len(), "{name}: NICs");
    for (i, (iface, boot)) in dom.devices.interfaces.iter().zip(nic_boot).enumerate() {
        let v = if iface.model.as_deref() == Some("virtio") {
            let Some(n) = virtio_nics.next() else { break };
            VmmNic::Virtio(n)
        } else {
            let Some(n) = pci_nics.next() else { break };
            VmmNic::Pci(&n.net, n.model)
        };
        check_nic(name, &dom.name, i, iface, &v);
        let (VmmNic::Virtio(n) | VmmNic::Pci(n, _)) = v;
        same!(n.bootindex, boot, "{name}: interface {i}: boot order");
    }
    check_chardevs(name, dom, &cfg);
    check_pci(name, dom, &cfg);

    let balloon = dom
        .devices
        .others
        .iter()
        .any(|o| o.kind() == "memballoon" && o.model() == Some("virtio"));
    let has_balloon = cfg
        .virtio
        .iter()
        .any(|v| matches!(v, VirtioConfig::Balloon(_)));
    same!(has_balloon, balloon, "{name}: memory balloon");
    let rngs = dom
        .devices
        .others
        .iter()
        .filter(|o| o.kind() == "rng")
        .count();
    let vmm_rngs = cfg
        .virtio
        .iter()
        .filter(|v| matches!(v, VirtioConfig::Rng { .. }))
        .count();
    same!(vmm_rngs, rngs, "{name}: rng devices");
    true
}

#[test]
fn every_fixture_that_derives_means_the_same_to_the_vmm() {
    let (mut derived, mut refused) = (0, 0);
    for path in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut dom = Domain::from_xml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if check(&name, &mut dom) {
            derived += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!("contract: {derived} fixtures derived and compared, {refused} refused");
    let found = FOUND.with(|f| f.take());
    assert!(
        found.is_empty(),
        "{} disagreements:\n{}",
        found.len(),
        found.join("\n")
    );
    assert!(derived >= 30, "only {derived} fixtures derive");
}

/// The qcow2 fixture with `<backingStore>` chains as libvirt writes them
/// (an explicit chain two deep ending in `<backingStore/>`, one ending
/// where the header takes over, and an empty one), through the same
/// comparison.
#[test]
fn backing_chains_mean_the_same_to_the_vmm() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures/dx-disk-backing.xml");
    let text = std::fs::read_to_string(path).unwrap();
    let source = "<source file='/var/lib/rvirt-fx/a.qcow2'/>";
    assert!(text.contains(source));
    let chains = [
        "<backingStore type='file' index='1'><format type='qcow2'/><source file='/var/lib/rvirt-fx/b.qcow2'/><backingStore type='file' index='2'><format type='raw'/><source file='/var/lib/rvirt-fx/c.raw'/><backingStore/></backingStore></backingStore>",
        "<backingStore type='file' index='1'><format type='qcow2'/><source file='/var/lib/rvirt-fx/b.qcow2'/></backingStore>",
        "<backingStore type='block' index='1'><format type='qcow2'/><source dev='/dev/vg/base'/><backingStore/></backingStore>",
        "<backingStore/>",
    ];
    for (i, chain) in chains.iter().enumerate() {
        let xml = text.replace(source, &format!("{source}{chain}"));
        let mut dom = Domain::from_xml(&xml).unwrap();
        assert!(check(&format!("chain {i}"), &mut dom), "chain {i} refused");
    }
    let found = FOUND.with(|f| f.take());
    assert!(found.is_empty(), "{}", found.join("\n"));
}
