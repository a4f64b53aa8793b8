//! CONNECT_GET_CAPABILITIES and CONNECT_GET_DOMAIN_CAPABILITIES: what the
//! host and rvirt-vmm offer, in libvirt's XML layouts. virt-manager
//! refuses a connection without the first (it reads the host arch, the
//! guest's arch, domain type and machine types) and reads the second
//! for the VM window.

use rvirt_remote::calls::ConnectGetDomainCapabilitiesArgs;
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;

use super::info::{self as hostinfo, CpuInfo};

/// The machine types rvirt-vmm accepts (`-machine`); the first is the
/// default, as in QEMU.
pub const MACHINES: &[&str] = &["pc", "q35", "microvm"];

/// The named CPU models rvirt-vmm accepts for `-cpu` besides host/max.
const CPU_MODELS: &[&str] = &["qemu64", "kvm64"];

fn host_cpu_xml(arch: &str, cpu: &CpuInfo) -> String {
    let mut s = format!("    <cpu>\n      <arch>{arch}</arch>\n");
    if let Some(m) = &cpu.model {
        s.push_str(&format!("      <model>{}</model>\n", xml_escape(m)));
    }
    if let Some(v) = &cpu.vendor {
        s.push_str(&format!("      <vendor>{}</vendor>\n", xml_escape(v)));
    }
    s.push_str(&format!(
        "      <topology sockets='{}' dies='1' cores='{}' threads='{}'/>\n",
        cpu.sockets, cpu.cores, cpu.threads
    ));
    s.push_str("      <pages unit='KiB' size='4'/>\n      <pages unit='KiB' size='2048'/>\n");
    s.push_str("    </cpu>\n");
    s
}

/// The `<cpus>` of the one NUMA cell: every logical CPU with its socket,
/// core and the CPUs sharing that core.
fn cell_cpus_xml(cpu: &CpuInfo) -> String {
    let mut s = format!("          <cpus num='{}'>\n", cpu.cpus.len());
    for c in &cpu.cpus {
        let siblings: Vec<String> = cpu
            .cpus
            .iter()
            .filter(|o| o.socket == c.socket && o.core == c.core)
            .map(|o| o.id.to_string())
            .collect();
        s.push_str(&format!(
            "            <cpu id='{}' socket_id='{}' die_id='0' core_id='{}' siblings='{}'/>\n",
            c.id,
            c.socket,
            c.core,
            siblings.join(",")
        ));
    }
    s.push_str("          </cpus>\n");
    s
}

pub fn capabilities_xml(vmm: &std::path::Path) -> String {
    capabilities_for(vmm, &hostinfo::cpu_info(), hostinfo::memory_kib())
}

fn capabilities_for(vmm: &std::path::Path, cpu: &CpuInfo, mem_kib: u64) -> String {
    let arch = std::env::consts::ARCH;
    let uuid = hostinfo::host_uuid()
        .map(|u| format!("    <uuid>{u}</uuid>\n"))
        .unwrap_or_default();
    let mut machines = String::new();
    for m in MACHINES {
        machines.push_str(&format!(
            "      <machine maxCpus='{}'>{m}</machine>\n",
            rvirt_domain::MAX_VCPUS
        ));
    }
    format!(
        "<capabilities>

  <host>
{uuid}{host_cpu}    <power_management/>
    <iommu support='no'/>
    <migration_features>
      <live/>
    </migration_features>
    <topology>
      <cells num='1'>
        <cell id='0'>
          <memory unit='KiB'>{mem_kib}</memory>
{cell_cpus}        </cell>
      </cells>
    </topology>
    <secmodel>
      <model>none</model>
      <doi>0</doi>
    </secmodel>
  </host>

  <guest>
    <os_type>hvm</os_type>
    <arch name='{arch}'>
      <wordsize>64</wordsize>
      <emulator>{emulator}</emulator>
{machines}      <domain type='kvm'/>
    </arch>
    <features>
      <acpi default='on' toggle='yes'/>
      <apic default='on' toggle='no'/>
      <cpuselection/>
      <deviceboot/>
    </features>
  </guest>

</capabilities>
",
        host_cpu = host_cpu_xml(arch, cpu),
        cell_cpus = cell_cpus_xml(cpu),
        emulator = xml_escape(&vmm.to_string_lossy()),
    )
}

fn unsupported(msg: &str) -> RemoteError {
    RemoteError::new(code::INVALID_ARG, from::QEMU, Some(msg))
}

/// CONNECT_GET_DOMAIN_CAPABILITIES: what a domain of the given emulator,
/// arch, machine and virt type may contain. Each argument may be absent
/// (the defaults: rvirt-vmm, the host arch, `pc`, kvm); one that names
/// something rvirt-vmm is not gets libvirt's error.
pub fn domain_capabilities_xml(
    vmm: &std::path::Path,
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
    let known = MACHINES.contains(&machine)
        || machine.starts_with("pc-i440fx-")
        || machine.starts_with("pc-q35-");
    if !known {
        return Err(unsupported(&format!(
            "the machine '{machine}' is not supported by emulator '{vmm_path}'"
        )));
    }
    let models: String = CPU_MODELS
        .iter()
        .map(|m| format!("      <model usable='yes' vendor='unknown'>{m}</model>\n"))
        .collect();
    Ok(format!(
        "<domainCapabilities>
  <path>{path}</path>
  <domain>kvm</domain>
  <machine>{machine}</machine>
  <arch>{arch}</arch>
  <vcpu max='{max}'/>
  <iothreads supported='no'/>
  <os supported='yes'>
    <enum name='firmware'/>
    <loader supported='no'/>
  </os>
  <cpu>
    <mode name='host-passthrough' supported='yes'>
      <enum name='hostPassthroughMigratable'>
        <value>off</value>
      </enum>
    </mode>
    <mode name='maximum' supported='yes'>
      <enum name='maximumMigratable'>
        <value>off</value>
      </enum>
    </mode>
    <mode name='host-model' supported='no'/>
    <mode name='custom' supported='yes'>
{models}    </mode>
  </cpu>
  <memoryBacking supported='no'/>
  <devices>
    <disk supported='yes'>
      <enum name='diskDevice'>
        <value>disk</value>
      </enum>
      <enum name='bus'>
        <value>virtio</value>
      </enum>
      <enum name='model'/>
    </disk>
    <graphics supported='no'/>
    <video supported='no'/>
    <hostdev supported='no'/>
    <rng supported='no'/>
    <filesystem supported='no'/>
    <tpm supported='no'/>
    <redirdev supported='no'/>
    <channel supported='no'/>
    <crypto supported='no'/>
  </devices>
  <features>
    <gic supported='no'/>
    <vmcoreinfo supported='no'/>
    <genid supported='no'/>
    <backingStoreInput supported='no'/>
    <backup supported='no'/>
    <sev supported='no'/>
  </features>
</domainCapabilities>
",
        path = xml_escape(&vmm_path),
        machine = xml_escape(machine),
        max = rvirt_domain::MAX_VCPUS,
    ))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
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
