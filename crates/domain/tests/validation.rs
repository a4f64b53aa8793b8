//! Hand-written edge cases: one per validation rule, each checking the
//! element, attribute, line and message of the error.

use rvirt_domain::{Domain, Error, Problem};

const BASE: &str = "<domain type='kvm'>
  <name>edge</name>
  <uuid>6f1c9f34-7a8e-4e4c-9d6a-2b8f0c1d2e3f</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu>2</vcpu>
  <cpu mode='custom'>
    <model>qemu64</model>
    <topology sockets='1' cores='2' threads='1'/>
  </cpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <on_reboot>restart</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <source file='/a.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:01'/>
      <source bridge='br0'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
";

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "template lacks {from}");
    BASE.replacen(from, to, 1)
}

fn only_problem(doc: &str) -> Problem {
    match Domain::from_xml(doc) {
        Err(Error::Invalid(p)) => {
            assert_eq!(p.len(), 1, "{p:?}");
            p[0].clone()
        }
        other => panic!("expected one validation error, got {other:?}"),
    }
}

fn check(doc: &str, line: u32, element: &str, attribute: Option<&str>, needle: &str) {
    let p = only_problem(doc);
    assert_eq!(p.line, line, "{p:?}");
    assert_eq!(p.element, element, "{p:?}");
    assert_eq!(p.attribute.as_deref(), attribute, "{p:?}");
    assert!(
        p.message.contains(needle),
        "{:?} lacks {needle:?}",
        p.message
    );
}

#[test]
fn base_document_is_valid() {
    let d = Domain::from_xml(BASE).unwrap();
    assert_eq!(d.memory_kib, 512 * 1024);
    assert_eq!(d.vcpu.count, 2);
}

#[test]
fn malformed_xml_reports_line_and_column() {
    let doc = with("<vcpu>2</vcpu>", "<vcpu>2</vcpux>");
    match Domain::from_xml(&doc) {
        Err(Error::Malformed(e)) => {
            assert_eq!(e.line, 6);
            assert!(e.column > 1);
        }
        other => panic!("{other:?}"),
    }
    let p = Domain::from_xml("<domain type='kvm'>\n<name>x")
        .unwrap_err()
        .problems();
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("malformed XML"));
}

#[test]
fn missing_name() {
    check(
        &with("  <name>edge</name>\n", ""),
        1,
        "name",
        None,
        "missing domain name",
    );
}

#[test]
fn empty_name() {
    check(
        &with("<name>edge</name>", "<name></name>"),
        2,
        "name",
        None,
        "must not be empty",
    );
}

#[test]
fn name_with_slash() {
    check(
        &with("<name>edge</name>", "<name>a/b</name>"),
        2,
        "name",
        None,
        "'/'",
    );
}

#[test]
fn name_with_control_character() {
    check(
        &with("<name>edge</name>", "<name>a&#x7;b</name>"),
        2,
        "name",
        None,
        "control",
    );
}

#[test]
fn invalid_uuid() {
    check(
        &with("6f1c9f34-7a8e-4e4c-9d6a-2b8f0c1d2e3f", "6f1c9f34-zzzz"),
        3,
        "uuid",
        None,
        "not a valid UUID",
    );
}

#[test]
fn missing_memory() {
    check(
        &with("  <memory unit='MiB'>512</memory>\n", ""),
        1,
        "memory",
        None,
        "missing memory",
    );
}

#[test]
fn zero_memory() {
    check(
        &with(
            "<memory unit='MiB'>512</memory>",
            "<memory unit='MiB'>0</memory>",
        ),
        4,
        "memory",
        None,
        "greater than zero",
    );
}

#[test]
fn current_memory_above_memory_is_clamped_as_libvirt_does() {
    for cur in ["513", "0"] {
        let xml = with(
            "<currentMemory unit='MiB'>512",
            &format!("<currentMemory unit='MiB'>{cur}"),
        );
        let d = rvirt_domain::Domain::from_xml(&xml).expect("clamped, not refused");
        assert_eq!(d.current_memory_kib, Some(d.memory_kib), "{cur}");
    }
}

#[test]
fn unknown_unit() {
    check(
        &with("<memory unit='MiB'>", "<memory unit='MiBs'>"),
        4,
        "memory",
        Some("unit"),
        "unknown unit 'MiBs'",
    );
}

#[test]
fn memory_not_a_number() {
    check(
        &with(">512</memory>", ">lots</memory>"),
        4,
        "memory",
        None,
        "not a valid size",
    );
}

#[test]
fn zero_vcpus() {
    check(
        &with("<vcpu>2</vcpu>", "<vcpu>0</vcpu>"),
        6,
        "vcpu",
        None,
        "greater than zero",
    );
}

#[test]
fn vcpus_above_maximum() {
    let doc = with("<vcpu>2</vcpu>", "<vcpu>5000</vcpu>").replace(
        "<topology sockets='1' cores='2' threads='1'/>",
        "<topology sockets='1' cores='5000' threads='1'/>",
    );
    check(&doc, 6, "vcpu", None, "more than the maximum");
}

#[test]
fn current_vcpus_above_maximum() {
    check(
        &with("<vcpu>2</vcpu>", "<vcpu current='3'>2</vcpu>"),
        6,
        "vcpu",
        Some("current"),
        "above the maximum",
    );
}

#[test]
fn topology_product_differs_from_vcpus() {
    check(
        &with("cores='2' threads='1'", "cores='2' threads='2'"),
        9,
        "cpu/topology",
        None,
        "topology gives 4 vCPUs",
    );
}

#[test]
fn duplicate_disk_targets() {
    let disk = "    <disk type='file' device='disk'>\n      <source file='/a.raw'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n";
    let doc = with(disk, &format!("{disk}{}", disk.replace("/a.raw", "/b.raw")));
    check(
        &doc,
        20,
        "disk/target",
        Some("dev"),
        "already used by the disk on line 16",
    );
}

#[test]
fn invalid_mac() {
    check(
        &with("52:54:00:00:00:01", "52:54:00:00:00"),
        21,
        "interface/mac",
        Some("address"),
        "not a MAC address",
    );
    check(
        &with("52:54:00:00:00:01", "01:54:00:00:00:01"),
        21,
        "interface/mac",
        Some("address"),
        "multicast",
    );
}

#[test]
fn duplicate_macs() {
    let nic = "    <interface type='bridge'>\n      <mac address='52:54:00:00:00:01'/>\n      <source bridge='br0'/>\n      <model type='virtio'/>\n    </interface>\n";
    let doc = with(nic, &format!("{nic}{nic}"));
    check(
        &doc,
        25,
        "interface/mac",
        Some("address"),
        "already used by the interface on line 20",
    );
}

#[test]
fn unknown_lifecycle_action() {
    check(
        &with("<on_reboot>restart", "<on_reboot>explode"),
        14,
        "on_reboot",
        None,
        "unknown action 'explode'",
    );
    // coredump-* is valid for crashes only.
    check(
        &with(
            "<on_reboot>restart</on_reboot>",
            "<on_reboot>coredump-restart</on_reboot>",
        ),
        14,
        "on_reboot",
        None,
        "unknown action",
    );
    let ok = with(
        "<on_reboot>restart</on_reboot>",
        "<on_crash>coredump-restart</on_crash>",
    );
    assert!(Domain::from_xml(&ok).is_ok());
}

#[test]
fn all_problems_are_reported_in_line_order() {
    let doc = with("<name>edge</name>", "<name>a/b</name>")
        .replace("<vcpu>2</vcpu>", "<vcpu>0</vcpu>")
        .replace("unit='MiB'>512</memory>", "unit='XB'>512</memory>");
    let Err(Error::Invalid(p)) = Domain::from_xml(&doc) else {
        panic!()
    };
    let lines: Vec<u32> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 4, 6], "{p:?}");
}

#[test]
fn wrong_root_element() {
    let p = only_problem(
        &BASE
            .replace("<domain type='kvm'>", "<network type='kvm'>")
            .replace("</domain>", "</network>"),
    );
    assert!(p.message.contains("expected root element <domain>"));
}

#[test]
fn unknown_content_is_kept_verbatim() {
    let doc = with(
        "  </devices>\n",
        "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\n  </devices>\n  <seclabel type='dynamic' model='selinux'/>\n",
    )
    .replace("<disk type='file' device='disk'>", "<disk type='file' device='disk' snapshot='no'>")
    .replace("<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='virtio' rotation_rate='1'/>\n      <iotune><total_bytes_sec>1000</total_bytes_sec></iotune>")
    .replace("<memory unit='MiB'>", "<memory unit='MiB' dumpCore='on'>")
    .replace("<mac address='52:54:00:00:00:01'/>", "<mac address='52:54:00:00:00:01' type='static'/>\n      <boot order='1' loadparm='X1'/>")
    .replace("<topology sockets='1'", "<topology books='1' sockets='1'");
    let out = Domain::from_xml(&doc).unwrap().to_xml();
    for kept in [
        "<tpm model='tpm-crb'>",
        "<backend type='emulator' version='2.0'/>",
        "<seclabel type='dynamic' model='selinux'/>",
        "snapshot='no'",
        "rotation_rate='1'",
        "<total_bytes_sec>1000</total_bytes_sec>",
        "<memory unit='KiB' dumpCore='on'>524288</memory>",
        "<mac address='52:54:00:00:00:01' type='static'/>",
        "<boot order='1' loadparm='X1'/>",
        "books='1'",
    ] {
        assert!(out.contains(kept), "lost {kept}:\n{out}");
    }
    // iotune sits after target, as libvirt writes it.
    assert!(out.find("<target").unwrap() < out.find("<iotune>").unwrap());
}

#[test]
fn huge_topology_does_not_overflow() {
    check(
        &with(
            "<topology sockets='1' cores='2' threads='1'/>",
            "<topology sockets='4294967295' dies='4294967295' clusters='4294967295' cores='4294967295' threads='4294967295'/>",
        ),
        9,
        "cpu/topology",
        None,
        "topology gives 18446744073709551615 vCPUs",
    );
}

#[test]
fn unknown_domain_type() {
    check(
        &with("<domain type='kvm'>", "<domain type='kvmm'>"),
        1,
        "domain",
        Some("type"),
        "unknown domain type 'kvmm'",
    );
}

#[test]
fn pci_addresses_out_of_range_or_shared_are_refused() {
    let doc = with(
        "<target dev='vda' bus='virtio'/>",
        "<target dev='vda' bus='virtio'/>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x20' function='0x0'/>",
    );
    check(
        &doc,
        19,
        "address",
        Some("slot"),
        "slot='0x20' must be a number up to 0x1f",
    );
    let doc = with(
        "<target dev='vda' bus='virtio'/>",
        "<target dev='vda' bus='virtio'/>\n      <address type='pci' bus='0x00' slot='0x03' function='eight'/>",
    );
    check(&doc, 19, "address", Some("function"), "function='eight'");
    let doc = with(
        "<target dev='vda' bus='virtio'/>",
        "<target dev='vda' bus='virtio'/>\n      <address type='pci' bus='0x00' slot='0x03' function='0x0'/>",
    );
    let doc = doc.replacen(
        "<model type='virtio'/>",
        "<model type='virtio'/>\n      <address type='pci' bus='0' slot='3' function='0'/>",
        1,
    );
    check(
        &doc,
        25,
        "address",
        None,
        "00:03.0 is already used by the device on line 19",
    );
}

#[test]
fn boot_menu_timeout_out_of_range() {
    let os = "<type arch='x86_64' machine='pc'>hvm</type>";
    check(
        &with(
            os,
            &format!("{os}\n    <bootmenu enable='yes' timeout='65536'/>"),
        ),
        13,
        "os/bootmenu",
        Some("timeout"),
        "must be in range [0,65535]",
    );
}

#[test]
fn bios_reboot_timeout_and_useserial() {
    let os = "<type arch='x86_64' machine='pc'>hvm</type>";
    check(
        &with(os, &format!("{os}\n    <bios rebootTimeout='-2'/>")),
        13,
        "os/bios",
        Some("rebootTimeout"),
        "must be in range [-1,65535]",
    );
    check(
        &with(os, &format!("{os}\n    <bios useserial='on'/>")),
        13,
        "os/bios",
        Some("useserial"),
        "must be yes or no",
    );
    // -1 (never reboot) and the top of the range are libvirt's own values.
    let ok = with(
        os,
        &format!("{os}\n    <bios useserial='yes' rebootTimeout='-1'/>"),
    );
    Domain::from_xml(&ok).unwrap();
}
