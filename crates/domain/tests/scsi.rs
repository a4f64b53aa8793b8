//! virtio-scsi derivation: the controller and its disks and CD-ROMs as
//! libvirt 9.0 writes them (its argv, byte for byte where JSON), the
//! implicit lsilogic controller's disks refused.

mod common;

use common::*;
use rvirt_domain::{derive_argv, DeriveError, Domain, RuntimePaths};

fn domain(machine: &str, controller: &str, extra_disk: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>s</name>
  <uuid>0f5a4b7e-1d2c-4e3f-9a8b-7c6d5e4f3a2b</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <boot dev='cdrom'/>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/x/a.qcow2'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/x/b.iso'/>
      <target dev='sdb' bus='scsi'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sdc' bus='scsi'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='2' unit='0'/>
    </disk>
    {extra_disk}
    {controller}
    <serial type='pty'/>
  </devices>
</domain>
"
    )
}

const VIRTIO_SCSI: &str = "<controller type='scsi' index='0' model='virtio-scsi'/>";

fn derive(xml: &str) -> Result<rvirt_domain::Argv, DeriveError> {
    let mut d = Domain::from_xml(xml).unwrap();
    d.fill_in();
    derive_argv(&d, &RuntimePaths::in_dir("/run/rvirt/x"))
}

#[test]
fn virtio_scsi_disks_and_cdroms_as_libvirt_writes_them() {
    for (machine, bus) in [("pc-i440fx-7.2", "pci.0"), ("pc-q35-7.2", "pci.1")] {
        let a = derive(&domain(machine, VIRTIO_SCSI, "")).unwrap();
        let devs = values(&a.args, "-device");
        let ctl = devs
            .iter()
            .find(|d| d.contains("virtio-scsi-pci"))
            .unwrap_or_else(|| panic!("{machine}: no controller in {devs:?}"));
        let p = props(ctl);
        assert_eq!(
            (p["id"].as_str(), p["bus"].as_str()),
            ("scsi0", bus),
            "{ctl}"
        );
        let luns: Vec<&str> = devs
            .iter()
            .copied()
            .filter(|d| d.contains("scsi0.0"))
            .collect();
        // sda and sdb are LUNs 0 and 1 of target 0 (libvirt's drive
        // addresses, 7 units per controller); the boot order puts the
        // CD-ROM first. The empty CD-ROM has no nodes but takes a number
        // (libvirt names every disk's source, empty or not).
        assert_eq!(
            luns,
            [
                r#"{"driver":"scsi-hd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":0,"device_id":"drive-scsi0-0-0-0","drive":"libvirt-3-format","id":"scsi0-0-0-0","bootindex":2,"write-cache":"on"}"#,
                r#"{"driver":"scsi-cd","bus":"scsi0.0","channel":0,"scsi-id":0,"lun":1,"device_id":"drive-scsi0-0-0-1","drive":"libvirt-2-format","id":"scsi0-0-0-1","bootindex":1}"#,
                r#"{"driver":"scsi-cd","bus":"scsi0.0","channel":0,"scsi-id":2,"lun":0,"device_id":"drive-scsi0-0-2-0","id":"scsi0-0-2-0"}"#,
            ],
            "{machine}"
        );
        // The controller comes before the disks, as libvirt orders it.
        let at = |s: &str| a.args.iter().position(|x| x.contains(s)).unwrap();
        assert!(at("virtio-scsi-pci") < at("libvirt-3-storage"));
        let bd = values(&a.args, "-blockdev");
        assert!(
            bd.iter()
                .any(|b| b.contains(r#""node-name":"libvirt-2-format","read-only":true"#)),
            "{bd:?}"
        );
    }
}

#[test]
fn disks_on_scsi_controllers_that_are_not_virtio_scsi_are_refused() {
    // No controller: libvirt adds an lsilogic one, which is not emulated.
    let Err(DeriveError::Unsupported(list)) = derive(&domain("pc-i440fx-7.2", "", "")) else {
        panic!("expected a refusal")
    };
    let text: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("disk 'sda'") && t.contains("model 'lsilogic'")),
        "{text:?}"
    );
    // A disk on a second controller that is not there in virtio-scsi
    // form, and more request queues than rvirt-vmm's controller has.
    let xml = domain(
        "pc-i440fx-7.2",
        "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='126'/></controller>",
        "<disk type='file' device='disk'><source file='/d'/><target dev='sdd' bus='scsi'/><address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>",
    );
    let Err(DeriveError::Unsupported(list)) = derive(&xml) else {
        panic!("expected a refusal")
    };
    let text: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("queues='126': at most 125 request queues")),
        "{text:?}"
    );
    assert!(text.iter().any(|t| t.contains("disk 'sdd'")), "{text:?}");
}

#[test]
fn driver_queues_become_num_queues_where_libvirt_puts_them() {
    for (machine, bus) in [("pc-i440fx-7.2", "pci.0"), ("pc-q35-7.2", "pci.1")] {
        let a = derive(&domain(
            machine,
            "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='4'/></controller>",
            "",
        ))
        .unwrap();
        let devs = values(&a.args, "-device");
        let ctl = devs
            .iter()
            .find(|d| d.contains("virtio-scsi-pci"))
            .unwrap_or_else(|| panic!("{machine}: no controller in {devs:?}"));
        let addr = props(ctl)["addr"].clone();
        assert_eq!(
            *ctl,
            format!(
                r#"{{"driver":"virtio-scsi-pci","id":"scsi0","num_queues":4,"bus":"{bus}","addr":"{addr}"}}"#
            ),
            "{machine}"
        );
    }
    // queues='0' is left out, as libvirt leaves it.
    let a = derive(&domain(
        "pc-i440fx-7.2",
        "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='0'/></controller>",
        "",
    ))
    .unwrap();
    assert!(
        values(&a.args, "-device")
            .iter()
            .any(|d| d.starts_with(r#"{"driver":"virtio-scsi-pci","id":"scsi0","bus""#)),
        "{:?}",
        a.args
    );
}
