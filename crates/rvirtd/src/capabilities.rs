//! CONNECT_GET_CAPABILITIES: what the host and rvirt-vmm offer, in
//! libvirt's capabilities XML layout (the parts clients read: host arch,
//! topology, security model, and one hvm/x86_64/kvm guest).

use crate::hostinfo;

/// The machine types rvirt-vmm accepts (`-machine`).
const MACHINES: &[&str] = &["pc", "microvm"];

pub fn capabilities_xml(vmm: &std::path::Path) -> String {
    let info = hostinfo::node_info();
    let cpus = hostinfo::cpus();
    let arch = std::env::consts::ARCH;
    let mut cpu_lines = String::new();
    for i in 0..cpus {
        cpu_lines.push_str(&format!(
            "            <cpu id='{i}' socket_id='0' die_id='0' core_id='{i}' siblings='{i}'/>\n"
        ));
    }
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
    <cpu>
      <arch>{arch}</arch>
    </cpu>
    <power_management/>
    <iommu support='no'/>
    <topology>
      <cells num='1'>
        <cell id='0'>
          <memory unit='KiB'>{mem}</memory>
          <cpus num='{cpus}'>
{cpu_lines}          </cpus>
        </cell>
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
    </features>
  </guest>

</capabilities>
",
        mem = info.memory,
        emulator = xml_escape(&vmm.to_string_lossy()),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}
