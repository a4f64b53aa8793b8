//! pc and q35 domains through rvirtd with the real virsh: `define` fills
//! in PCI addresses and controllers as libvirt 9.0 does (the domain
//! crate's fixture tests compare them with libvirt's), `dumpxml` shows
//! them, the domain starts, and the `pci` test guest finds every virtio
//! device and root port at the function the XML gives and reads its disk
//! through virtio-blk-pci. A disk stored with a virtio-mmio address stays
//! on virtio-mmio beside them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{have_virsh, Rvirtd};
use rvirt_domain::pci::PciAddress;
use rvirt_domain::Domain;
use rvirt_test_guests::{fnv1a32, output, Guest};
use rvirt_testkit::poll;

/// A guest that boots the `pci` test guest directly, with its serial on
/// the VMM's stdout (the domain log), a virtio disk, an RNG, the default
/// balloon and USB controller, and on q35 a virtio console.
fn xml(name: &str, machine: &str, disk: &str, mmio_disk: &str) -> String {
    let console = if machine == "q35" {
        "<console type='pty'><target type='virtio'/></console>"
    } else {
        ""
    };
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{kernel}</kernel>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{mmio_disk}'/>
      <target dev='vdb' bus='virtio'/>
      <address type='virtio-mmio'/>
    </disk>
    <serial type='stdio'><target port='0'/></serial>
    {console}
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
",
        kernel = Guest::Pci.path().display()
    )
}

/// The PCI IDs the guest must find for a device of the definition.
fn ids(kind: &str, model: Option<&str>) -> Option<&'static str> {
    Some(match (kind, model) {
        ("disk", _) => "1af4:1042",
        ("memballoon", _) => "1af4:1045",
        ("rng", _) => "1af4:1044",
        ("controller", Some("pcie-root-port")) => "1b36:000c",
        ("controller", Some("virtio-serial")) => "1af4:1043",
        _ => return None,
    })
}

/// bb:ss.f → IDs of every device rvirt emulates, from a definition.
fn placed(dom: &Domain) -> BTreeMap<String, &'static str> {
    let bdf = |a: PciAddress| format!("{:02x}:{:02x}.{:x}", a.bus, a.slot, a.function);
    let mut m = BTreeMap::new();
    for d in &dom.devices.disks {
        if let Some(a) = d.info.address.as_ref().and_then(PciAddress::read) {
            m.insert(bdf(a), "1af4:1042");
        }
    }
    for o in &dom.devices.others {
        let model = match o.dev_type() {
            Some("virtio-serial") => Some("virtio-serial"),
            _ => o.model(),
        };
        let (Some(id), Some(a)) = (
            ids(o.kind(), model),
            o.element.child("address").and_then(PciAddress::read),
        ) else {
            continue;
        };
        m.insert(bdf(a), id);
    }
    m
}

fn pci_on(machine: &str, want: &[(&str, &str)]) {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let name = format!("pci-{machine}");
    // 64 KiB of a pattern no two sectors share.
    let data: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(31) + i / 512) as u8)
        .collect();
    let disk = d.root().join("disk.img");
    std::fs::write(&disk, &data).unwrap();
    let mmio_disk = d.root().join("mmio.img");
    std::fs::write(&mmio_disk, vec![0u8; 65536]).unwrap();
    let file = d.xml_file(
        "pci.xml",
        &xml(
            &name,
            machine,
            &disk.to_string_lossy(),
            &mmio_disk.to_string_lossy(),
        ),
    );
    d.ok(&["define", &file]);

    // dumpxml after define: the addresses libvirt would give.
    let inactive = d.ok(&["dumpxml", &name]);
    let dom = Domain::from_xml(&inactive).unwrap();
    let map = placed(&dom);
    for (bdf, id) in want {
        assert_eq!(map.get(*bdf), Some(id), "{bdf} in\n{inactive}");
    }
    assert!(
        inactive.contains("<address type='virtio-mmio'/>"),
        "the stored virtio-mmio disk moved:\n{inactive}"
    );
    let argv = d.ok(&["domxml-to-native", "qemu-argv", &file]);
    assert!(argv.contains("virtio-blk-pci"), "{argv}");
    assert!(argv.contains("virtio-blk-device"), "{argv}");

    // Started paused, the running definition shows the same addresses.
    d.ok(&["start", "--paused", &name]);
    let live = d.ok(&["dumpxml", &name]);
    assert!(live.contains("<alias name='virtio-disk0'/>"), "{live}");
    let live_dom = Domain::from_xml(&live).unwrap();
    assert_eq!(placed(&live_dom), map, "{live}");
    d.ok(&["resume", &name]);

    // The guest enumerates the bus, reads the disk and powers off.
    poll(
        &format!("the pci guest on {machine} to finish"),
        Duration::from_secs(120),
        || {
            let log = d.log(&name);
            if output::done(&log) {
                Ok(())
            } else {
                Err(format!("{name}'s log:\n{log}\n{}", d.report()))
            }
        },
    );
    let log = d.log(&name);
    let seen: BTreeMap<String, String> = output::values(&log, "PCI")
        .filter_map(|v| {
            let mut w = v.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    for (bdf, id) in &map {
        assert_eq!(
            seen.get(bdf).map(String::as_str),
            Some(*id),
            "the guest finds {bdf} elsewhere:\n{log}"
        );
    }
    let blk = map.iter().find(|(_, id)| **id == "1af4:1042").unwrap().0;
    assert_eq!(output::value(&log, "BLK"), Some(blk.as_str()), "{log}");
    assert_eq!(output::value(&log, "BLK_READ_STATUS"), Some("0"), "{log}");
    let fnv = format!("{:#010x}", fnv1a32(&data[..4096]));
    assert_eq!(
        output::value(&log, "BLK_READ_FNV1A32"),
        Some(fnv.as_str()),
        "{log}"
    );
    d.wait_state(&name, "shut off (shutdown)");
}

/// pc: the disk, balloon and RNG from slot 2 on bus 0 (PIIX3's USB at
/// 00:01.2 is not emulated).
#[test]
fn pc_domain_devices_sit_where_dumpxml_says() {
    pci_on(
        "pc",
        &[
            ("00:02.0", "1af4:1042"),
            ("00:03.0", "1af4:1045"),
            ("00:04.0", "1af4:1044"),
        ],
    );
}

/// q35: a root port per endpoint as functions of slot 1 (the first for
/// the USB controller rvirt does not emulate, the last spare), each
/// endpoint at slot 0 of its port's bus.
#[test]
fn q35_domain_devices_sit_where_dumpxml_says() {
    pci_on(
        "q35",
        &[
            ("00:01.0", "1b36:000c"),
            ("00:01.5", "1b36:000c"),
            ("02:00.0", "1af4:1043"),
            ("03:00.0", "1af4:1042"),
            ("04:00.0", "1af4:1045"),
            ("05:00.0", "1af4:1044"),
        ],
    );
}
