//! One device derived for hot-plug: the address libvirt 9.0 gives it on
//! a running q35 domain, and the `-blockdev`/`-netdev`/`-device`
//! arguments the command line would have had, for QMP.

use rvirt_domain::pci::{hotplug_address, PciAddress};
use rvirt_domain::{derive_disk, derive_nic, Domain, FdPlan, RuntimePaths};

fn q35(devices: &str) -> Domain {
    let mut d = Domain::from_xml(&format!(
        "<domain type='kvm'>
  <name>hp</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>/k</kernel></os>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    {devices}
  </devices>
</domain>"
    ))
    .unwrap();
    d.fill_in();
    d
}

const DISK: &str = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
    <source file='/a.img'/><target dev='vda' bus='virtio'/></disk>";
const PORT: &str = "<controller type='pci' index='1' model='pcie-root-port'/>";
const PORT2: &str = "<controller type='pci' index='2' model='pcie-root-port'/>";

#[test]
fn the_first_empty_root_port_or_libvirts_error() {
    // The disk took port 1; the spare port libvirt added (2) is free.
    let d = q35(DISK);
    let a = hotplug_address(&d, None, false).unwrap();
    assert_eq!((a.bus, a.slot, a.function), (2, 0, 0));
    // One port, taken: none free, and no port is added to a running VM.
    let d = q35(&format!("{PORT}{DISK}"));
    assert_eq!(
        hotplug_address(&d, None, false).unwrap_err(),
        "No more available PCI slots"
    );
    // An address the definition gives: taken, or free.
    let d = q35(&format!("{PORT}{PORT2}{DISK}"));
    let taken = PciAddress::new(1, 0, 0).element();
    assert!(hotplug_address(&d, Some(&taken), false)
        .unwrap_err()
        .contains("Attempted double use of PCI Address 0000:01:00.0"));
    let free = PciAddress::new(2, 0, 0).element();
    assert_eq!(
        hotplug_address(&d, Some(&free), false).unwrap(),
        PciAddress::new(2, 0, 0)
    );
    // The root bus takes no PCI Express endpoint.
    let root = PciAddress::new(0, 5, 0).element();
    assert!(hotplug_address(&d, Some(&root), false).is_err());
}

fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.chunks(2)
        .filter(|c| c[0] == flag)
        .map(|c| c[1].as_str())
        .collect()
}

#[test]
fn a_disk_and_a_nic_derive_as_at_start() {
    let mut d = q35(&format!("{PORT}{PORT2}{DISK}"));
    let mut disk = d.devices.disks[0].clone();
    disk.target_dev = "vdb".into();
    disk.info.alias = Some("virtio-disk1".into());
    disk.info.address = Some(PciAddress::new(2, 0, 0).element());
    d.devices.disks.push(disk);
    let paths = RuntimePaths::in_dir("/run/x");
    let mut plan = FdPlan::default();
    plan.fdsets.insert("vdb".into(), 7);
    let a = derive_disk(&d, 1, 3, &plan, &paths).unwrap();
    assert_eq!(
        values(&a.args, "-blockdev"),
        [
            r#"{"driver":"file","filename":"/dev/fdset/7","node-name":"libvirt-3-storage","auto-read-only":true,"discard":"unmap"}"#,
            r#"{"node-name":"libvirt-3-format","read-only":false,"driver":"raw","file":"libvirt-3-storage"}"#,
        ]
    );
    assert_eq!(
        values(&a.args, "-device"),
        [
            r#"{"driver":"virtio-blk-pci","bus":"pci.2","addr":"0x0","drive":"libvirt-3-format","id":"virtio-disk1"}"#
        ]
    );
    assert!(values(&a.args, "-add-fd").is_empty());

    let mut d = q35(&format!(
        "{PORT}<interface type='ethernet'><mac address='52:54:00:00:00:09'/>\
         <model type='virtio'/></interface>"
    ));
    d.devices.interfaces[0].info.alias = Some("net3".into());
    let mut plan = FdPlan::default();
    plan.taps.insert("hostnet3".into(), 0);
    let a = derive_nic(&d, 0, 3, &plan, &paths).unwrap();
    assert_eq!(values(&a.args, "-netdev"), ["tap,id=hostnet3,fd=0"]);
    assert_eq!(
        values(&a.args, "-device"),
        [
            r#"{"driver":"virtio-net-pci","netdev":"hostnet3","id":"net3","mac":"52:54:00:00:00:09","bus":"pci.1","addr":"0x0"}"#
        ]
    );
    assert_eq!(a.taps.len(), 1);
}

#[test]
fn an_index_less_root_port_numbers_after_the_root_bus() {
    // libvirt gives it the lowest index the root (0, added by the
    // fill-in) leaves free, and its chassis from that index.
    let port = "<controller type='pci' model='pcie-root-port'/>";
    let d = q35(port);
    let ports: Vec<_> = d
        .devices
        .others
        .iter()
        .filter(|o| o.model() == Some("pcie-root-port"))
        .collect();
    let first = ports[0];
    assert_eq!(first.element.attr("index"), Some("1"));
    let target = first.element.child("target").unwrap();
    assert_eq!(target.attr("chassis"), Some("1"));
    assert!(d
        .devices
        .others
        .iter()
        .any(|o| o.model() == Some("pcie-root") && o.element.attr("index") == Some("0")));
    // The lowest free index: a gap is filled before the end.
    let d = q35(&format!("{PORT2}{port}"));
    let idx: Vec<_> = d
        .devices
        .others
        .iter()
        .filter(|o| o.model() == Some("pcie-root-port"))
        .filter_map(|o| o.element.attr("index"))
        .collect();
    assert_eq!(idx, ["2", "1"]);
}
