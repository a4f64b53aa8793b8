//! CONNECT_GET_CAPABILITIES and CONNECT_GET_DOMAIN_CAPABILITIES: what the
//! host and rvirt-vmm offer, in libvirt's XML layouts, built as XML trees.
//! virt-manager refuses a connection without the first (it reads the host
//! arch, the guest's arch, domain type and machine types) and reads the
//! second for the VM window (virt-install for its default CPU). The
//! machines and CPU models are rvirt-vmm's own table
//! (`rvirt_vmm_config::caps`); which models this host runs, and which of
//! them the host CPU is, come from rvirt-vmm's probe (`cpu_probe`).

use std::path::Path;

use rvirt_domain::xml::{self, Element};
use rvirt_remote::calls::ConnectGetDomainCapabilitiesArgs;
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;
use rvirt_vmm_config::caps::{self, CPU_MODELS, MACHINES};

use super::cpu_probe::CpuFacts;
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

/// The host CPU as libvirt describes it: a model of the table (never the
/// brand string: clients copy it into `-cpu`), its vendor, the topology,
/// then the features the host has beyond the model.
fn host_cpu(arch: &str, cpu: &CpuInfo, facts: Option<&CpuFacts>) -> Element {
    let mut e = with("cpu", [text("arch", arch)]);
    let host_model = facts.map(|f| f.host_model(cpu.vendor.as_deref()));
    if let Some(m) = &host_model {
        e.push(text("model", m.model.name));
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
    for f in host_model.iter().flat_map(|m| &m.require) {
        e.push(empty("feature", &[("name", f)]));
    }
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

pub fn capabilities_xml(vmm: &Path, facts: Option<&CpuFacts>) -> String {
    capabilities_for(vmm, &hostinfo::cpu_info(), facts, hostinfo::memory_kib())
}

fn capabilities_for(vmm: &Path, cpu: &CpuInfo, facts: Option<&CpuFacts>, mem_kib: u64) -> String {
    let arch = std::env::consts::ARCH;
    let mut host = Element::new("host");
    if let Some(u) = hostinfo::host_uuid() {
        host.push(text("uuid", u));
    }
    host.push(host_cpu(arch, cpu, facts));
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

/// The domain capabilities' `<cpu>`: host-passthrough and maximum, each
/// migratable or not (`-cpu host|max,migratable=on|off`); host-model as
/// the model closest to the host with the features to add and take away
/// (`fallback='forbid'`: clients take host-model as safe only then); the
/// named models with their usability on this host. Without the probe's
/// facts host-model is unsupported and usability unknown.
fn domain_cpu(facts: Option<&CpuFacts>, vendor: Option<&str>) -> Element {
    let mode =
        |name: &str, supported: &str| empty("mode", &[("name", name), ("supported", supported)]);
    let mut passthrough = mode("host-passthrough", "yes");
    passthrough.push(enumeration("hostPassthroughMigratable", &["on", "off"]));
    let mut maximum = mode("maximum", "yes");
    maximum.push(enumeration("maximumMigratable", &["on", "off"]));
    let host_model = match facts {
        Some(f) => {
            let m = f.host_model(vendor);
            let mut e = mode("host-model", "yes");
            e.push(text("model", m.model.name).with_attr("fallback", Some("forbid")));
            if let Some(v) = vendor {
                e.push(text("vendor", v));
            }
            for (policy, names) in [("require", &m.require), ("disable", &m.disable)] {
                for n in names {
                    e.push(empty("feature", &[("policy", policy), ("name", n)]));
                }
            }
            e
        }
        None => mode("host-model", "no"),
    };
    let mut custom = mode("custom", "yes");
    for m in CPU_MODELS {
        let usable = match facts {
            Some(f) if f.usable(m.name) => "yes",
            Some(_) => "no",
            None => "unknown",
        };
        custom.push(
            text("model", m.name)
                .with_attr("usable", Some(usable))
                .with_attr("vendor", Some(m.vendor.unwrap_or("unknown"))),
        );
    }
    with("cpu", [passthrough, maximum, host_model, custom])
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
    facts: Option<&CpuFacts>,
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
    let cpu = domain_cpu(facts, hostinfo::cpu_info().vendor.as_deref());
    let unsupported_el = |name: &'static str| empty(name, &[("supported", "no")]);
    let mut os = with(
        "os",
        [
            empty("enum", &[("name", "firmware")]),
            // SeaBIOS only: a ROM image (`-bios`); UEFI cannot run on
            // these hosts, so no pflash and no firmware autoselection.
            {
                let mut l = with("loader", [enumeration("type", &["rom"])]);
                l.set_attr("supported", "yes");
                l
            },
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
    // What argv/graphics.rs derives: a VNC server, a VGA or bochs display
    // (libvirt's value order). virt-install then picks VNC and VGA.
    let mut graphics = with("graphics", [enumeration("type", &["vnc"])]);
    graphics.set_attr("supported", "yes");
    let mut video = with(
        "video",
        [enumeration("modelType", &["vga", "none", "bochs"])],
    );
    video.set_attr("supported", "yes");
    let mut devices = with("devices", [disk, graphics, video]);
    for d in [
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
            cpu,
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
        let facts = CpuFacts {
            models: Vec::new(),
            host_features: caps::cpu_model("kvm64")
                .unwrap()
                .features
                .iter()
                .chain(&["ss"])
                .map(|s| s.to_string())
                .collect(),
        };
        let x = capabilities_for(
            std::path::Path::new("/opt/rvirt-vmm"),
            &cpu,
            Some(&facts),
            4_000_000,
        );
        assert!(
            !x.contains("AMD EPYC"),
            "the brand string is no model:\n{x}"
        );
        for want in [
            "<model>kvm64</model>",
            "<feature name='ss'/>",
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
        let x = domain_capabilities_xml(vmm, &args(None, None, None), None).unwrap();
        assert!(x.contains("<machine>pc</machine>") && x.contains("<domain>kvm</domain>"));
        let x = domain_capabilities_xml(
            vmm,
            &args(Some("/opt/rvirt-vmm"), Some("microvm"), None),
            None,
        )
        .unwrap();
        assert!(x.contains("<machine>microvm</machine>"), "{x}");
        assert!(domain_capabilities_xml(vmm, &args(None, Some("virt"), None), None).is_err());
        assert!(domain_capabilities_xml(vmm, &args(None, None, Some("xen")), None).is_err());
        assert!(
            domain_capabilities_xml(vmm, &args(Some("/usr/bin/qemu"), None, None), None).is_err()
        );
    }

    #[test]
    fn domain_capabilities_cpu_modes() {
        let facts = CpuFacts {
            models: vec![
                ("kvm64".into(), Vec::new()),
                ("Nehalem".into(), vec!["pni".into()]),
            ],
            host_features: caps::cpu_model("kvm64")
                .unwrap()
                .features
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let mut out = String::new();
        xml::write(&mut out, &domain_cpu(Some(&facts), Some("Intel")), 0);
        for want in [
            "<enum name='hostPassthroughMigratable'>\n      <value>on</value>\n      <value>off</value>",
            "<mode name='host-model' supported='yes'>\n    <model fallback='forbid'>kvm64</model>\n    <vendor>Intel</vendor>",
            "<model usable='yes' vendor='unknown'>kvm64</model>",
            "<model usable='no' vendor='Intel'>Nehalem</model>",
        ] {
            assert!(out.contains(want), "{want} missing:\n{out}");
        }
        let mut out = String::new();
        xml::write(&mut out, &domain_cpu(None, Some("Intel")), 0);
        assert!(
            out.contains("<mode name='host-model' supported='no'/>"),
            "{out}"
        );
        assert!(out.contains("usable='unknown'"), "{out}");
    }
}
