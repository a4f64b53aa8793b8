//! CONNECT_GET_CAPABILITIES and CONNECT_GET_DOMAIN_CAPABILITIES: what the
//! host and rvirt-vmm offer, in libvirt's XML layouts, built as XML trees.
//! virt-manager refuses a connection without the first (it reads the host
//! arch, the guest's arch, domain type and machine types) and reads the
//! second for the VM window. The machines and CPU models are rvirt-vmm's
//! own table (`rvirt_vmm_config::caps`).

use std::path::Path;

use rvirt_domain::xml::{self, Element};
use rvirt_remote::calls::ConnectGetDomainCapabilitiesArgs;
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;
use rvirt_vmm_config::caps::{self, MACHINES, NAMED_CPU_MODELS};

use super::info::{self as hostinfo, CpuInfo};

/// `<name>text</name>`.
fn text(name: &'static str, t: impl Into<String>) -> Element {
    Element::new(name).with_text(t)
}

/// `<name a='v' …/>`.
fn empty(name: &'static str, attrs: &[(&str, &str)]) -> Element {
    let mut e = Element::new(name);
    for (k, v) in attrs {
        e.set_attr(k, *v);
    }
    e
}

/// `<name>` holding `children`.
fn with(name: &'static str, children: impl IntoIterator<Item = Element>) -> Element {
    let mut e = Element::new(name);
    for c in children {
        e.push(c);
    }
    e
}

/// `<enum name='N'><value>v</value>…</enum>`.
fn enumeration(name: &str, values: &[&str]) -> Element {
    let mut e = empty("enum", &[("name", name)]);
    for v in values {
        e.push(text("value", *v));
    }
    e
}

fn document(root: &Element) -> String {
    let mut out = String::new();
    xml::write(&mut out, root, 0);
    out
}

fn host_cpu(arch: &str, cpu: &CpuInfo) -> Element {
    let mut e = with("cpu", [text("arch", arch)]);
    if let Some(m) = &cpu.model {
        e.push(text("model", m.clone()));
    }
    if let Some(v) = &cpu.vendor {
        e.push(text("vendor", v.clone()));
    }
    let (sockets, cores, threads) = (
        cpu.sockets.to_string(),
        cpu.cores.to_string(),
        cpu.threads.to_string(),
    );
    e.push(empty(
        "topology",
        &[
            ("sockets", &sockets),
            ("dies", "1"),
            ("cores", &cores),
            ("threads", &threads),
        ],
    ));
    e.push(empty("pages", &[("unit", "KiB"), ("size", "4")]));
    e.push(empty("pages", &[("unit", "KiB"), ("size", "2048")]));
    e
}

/// The `<cpus>` of the one NUMA cell: every logical CPU with its socket,
/// core and the CPUs sharing that core.
fn cell_cpus(cpu: &CpuInfo) -> Element {
    let mut e = empty("cpus", &[("num", &cpu.cpus.len().to_string())]);
    for c in &cpu.cpus {
        let siblings: Vec<String> = cpu
            .cpus
            .iter()
            .filter(|o| o.socket == c.socket && o.core == c.core)
            .map(|o| o.id.to_string())
            .collect();
        e.push(empty(
            "cpu",
            &[
                ("id", &c.id.to_string()),
                ("socket_id", &c.socket.to_string()),
                ("die_id", "0"),
                ("core_id", &c.core.to_string()),
                ("siblings", &siblings.join(",")),
            ],
        ));
    }
    e
}

pub fn capabilities_xml(vmm: &Path) -> String {
    capabilities_for(vmm, &hostinfo::cpu_info(), hostinfo::memory_kib())
}

fn capabilities_for(vmm: &Path, cpu: &CpuInfo, mem_kib: u64) -> String {
    let arch = std::env::consts::ARCH;
    let mut host = Element::new("host");
    if let Some(u) = hostinfo::host_uuid() {
        host.push(text("uuid", u));
    }
    host.push(host_cpu(arch, cpu));
    host.push(Element::new("power_management"));
    host.push(empty("iommu", &[("support", "no")]));
    host.push(with("migration_features", [Element::new("live")]));
    let mut cell = with(
        "cell",
        [
            text("memory", mem_kib.to_string()).with_attr("unit", Some("KiB")),
            cell_cpus(cpu),
        ],
    );
    cell.set_attr("id", "0");
    host.push(with(
        "topology",
        [with("cells", [cell]).with_attr("num", Some("1"))],
    ));
    host.push(with("secmodel", [text("model", "none"), text("doi", "0")]));

    let max = rvirt_domain::MAX_VCPUS.to_string();
    let mut guest_arch = with(
        "arch",
        [
            text("wordsize", "64"),
            text("emulator", vmm.to_string_lossy()),
        ],
    );
    guest_arch.set_attr("name", arch);
    for m in MACHINES {
        guest_arch.push(text("machine", *m).with_attr("maxCpus", Some(max.as_str())));
    }
    guest_arch.push(empty("domain", &[("type", "kvm")]));
    let guest = with(
        "guest",
        [
            text("os_type", "hvm"),
            guest_arch,
            with(
                "features",
                [
                    empty("acpi", &[("default", "on"), ("toggle", "yes")]),
                    empty("apic", &[("default", "on"), ("toggle", "no")]),
                    Element::new("cpuselection"),
                    Element::new("deviceboot"),
                ],
            ),
        ],
    );
    document(&with("capabilities", [host, guest]))
}

fn unsupported(msg: &str) -> RemoteError {
    RemoteError::new(code::INVALID_ARG, from::QEMU, Some(msg))
}

/// CONNECT_GET_DOMAIN_CAPABILITIES: what a domain of the given emulator,
/// arch, machine and virt type may contain. Each argument may be absent
/// (the defaults: rvirt-vmm, the host arch, `pc`, kvm); one that names
/// something rvirt-vmm is not gets libvirt's error.
pub fn domain_capabilities_xml(
    vmm: &Path,
    a: &ConnectGetDomainCapabilitiesArgs,
) -> Result<String, RemoteError> {
    let arch = std::env::consts::ARCH;
    let vmm_path = vmm.to_string_lossy();
    if let Some(e) = a.emulatorbin.as_deref() {
        if e != vmm_path {
            return Err(unsupported(&format!(
                "unable to find any emulator to serve '{e}' (rvirt serves {vmm_path})"
            )));
        }
    }
    if let Some(x) = a.arch.as_deref() {
        if x != arch {
            return Err(unsupported(&format!(
                "unable to find any emulator to serve '{x}' architecture"
            )));
        }
    }
    let virttype = a.virttype.as_deref().unwrap_or("kvm");
    if virttype != "kvm" {
        return Err(unsupported(&format!(
            "KVM is the only virttype rvirt serves, not '{virttype}'"
        )));
    }
    let machine = a.machine.as_deref().unwrap_or(MACHINES[0]);
    if !caps::is_known_machine(machine) || machine == "none" {
        return Err(unsupported(&format!(
            "the machine '{machine}' is not supported by emulator '{vmm_path}'"
        )));
    }
    let mode =
        |name: &str, supported: &str| empty("mode", &[("name", name), ("supported", supported)]);
    let mut passthrough = mode("host-passthrough", "yes");
    passthrough.push(enumeration("hostPassthroughMigratable", &["off"]));
    let mut maximum = mode("maximum", "yes");
    maximum.push(enumeration("maximumMigratable", &["off"]));
    let mut custom = mode("custom", "yes");
    for m in NAMED_CPU_MODELS {
        custom.push(
            text("model", *m)
                .with_attr("usable", Some("yes"))
                .with_attr("vendor", Some("unknown")),
        );
    }
    let unsupported_el = |name: &'static str| empty(name, &[("supported", "no")]);
    let mut os = with(
        "os",
        [
            empty("enum", &[("name", "firmware")]),
            unsupported_el("loader"),
        ],
    );
    os.set_attr("supported", "yes");
    let mut disk = with(
        "disk",
        [
            enumeration("diskDevice", &["disk"]),
            enumeration("bus", &["virtio"]),
            empty("enum", &[("name", "model")]),
        ],
    );
    disk.set_attr("supported", "yes");
    let mut devices = with("devices", [disk]);
    for d in [
        "graphics",
        "video",
        "hostdev",
        "rng",
        "filesystem",
        "tpm",
        "redirdev",
        "channel",
        "crypto",
    ] {
        devices.push(unsupported_el(d));
    }
    let root = with(
        "domainCapabilities",
        [
            text("path", vmm_path.clone()),
            text("domain", "kvm"),
            text("machine", machine),
            text("arch", arch),
            empty("vcpu", &[("max", &rvirt_domain::MAX_VCPUS.to_string())]),
            empty("iothreads", &[("supported", "no")]),
            os,
            with(
                "cpu",
                [passthrough, maximum, mode("host-model", "no"), custom],
            ),
            unsupported_el("memoryBacking"),
            devices,
            with(
                "features",
                [
                    "gic",
                    "vmcoreinfo",
                    "genid",
                    "backingStoreInput",
                    "backup",
                    "sev",
                ]
                .into_iter()
                .map(unsupported_el),
            ),
        ],
    );
    Ok(document(&root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::host::info::parse_cpuinfo;

    #[test]
    fn capabilities_carry_host_cpu_cell_and_machines() {
        let cpu = parse_cpuinfo(
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 1\n\n\
             processor\t: 1\nvendor_id\t: AuthenticAMD\nphysical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 1\n",
            2,
        );
        let x = capabilities_for(std::path::Path::new("/opt/rvirt-vmm"), &cpu, 4_000_000);
        for want in [
            "<model>AMD EPYC</model>",
            "<vendor>AMD</vendor>",
            "<topology sockets='1' dies='1' cores='1' threads='2'/>",
            "<memory unit='KiB'>4000000</memory>",
            "<cpu id='1' socket_id='0' die_id='0' core_id='0' siblings='0,1'/>",
            "<emulator>/opt/rvirt-vmm</emulator>",
            ">q35</machine>",
            ">microvm</machine>",
            "<domain type='kvm'/>",
        ] {
            assert!(x.contains(want), "{want} missing:\n{x}");
        }
    }

    fn args(
        emulator: Option<&str>,
        machine: Option<&str>,
        virttype: Option<&str>,
    ) -> ConnectGetDomainCapabilitiesArgs {
        ConnectGetDomainCapabilitiesArgs {
            emulatorbin: emulator.map(Into::into),
            arch: None,
            machine: machine.map(Into::into),
            virttype: virttype.map(Into::into),
            flags: 0,
        }
    }

    #[test]
    fn domain_capabilities_check_their_arguments() {
        let vmm = std::path::Path::new("/opt/rvirt-vmm");
        let x = domain_capabilities_xml(vmm, &args(None, None, None)).unwrap();
        assert!(x.contains("<machine>pc</machine>") && x.contains("<domain>kvm</domain>"));
        let x = domain_capabilities_xml(vmm, &args(Some("/opt/rvirt-vmm"), Some("microvm"), None))
            .unwrap();
        assert!(x.contains("<machine>microvm</machine>"), "{x}");
        assert!(domain_capabilities_xml(vmm, &args(None, Some("virt"), None)).is_err());
        assert!(domain_capabilities_xml(vmm, &args(None, None, Some("xen"))).is_err());
        assert!(domain_capabilities_xml(vmm, &args(Some("/usr/bin/qemu"), None, None)).is_err());
    }
}
