//! dominfo, domstate, domid, domname, domuuid, dumpxml, vcpuinfo,
//! domblklist, domiflist.

use rvirt_remote::calls::{DomainFlagsArgs, DomainGetVcpusArgs, NodeGetCpuMapArgs};
use rvirt_remote::consts::xml_flags;
use rvirt_remote::event::DomainState;
use rvirt_remote::{procs, NonnullDomain};

use super::list::state_word;
use crate::devices;
use crate::error::{is_no_support, CmdError};
use crate::out::Out;
use crate::session::{By, Session};
use crate::table::Table;

/// `VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`: what "no limit" looks like in KiB.
const MEMORY_UNLIMITED: u64 = 9_007_199_254_740_991;

/// Seconds with one decimal, as virsh's `%.1lfs` of nanoseconds.
pub fn cpu_seconds(ns: u64) -> String {
    format!("{:.1}s", ns as f64 / 1e9)
}

fn id_word(d: &NonnullDomain) -> String {
    if d.id == -1 {
        "-".to_string()
    } else {
        d.id.to_string()
    }
}

fn yes_no(v: Option<i32>) -> &'static str {
    match v {
        None => "unknown",
        Some(0) => "no",
        Some(_) => "yes",
    }
}

pub fn dominfo(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let da = Session::dom_args(&dom);
    let df = DomainFlagsArgs {
        dom: dom.clone(),
        flags: 0,
    };
    out.field("Id:", id_word(&dom));
    out.field("Name:", &dom.name);
    out.field("UUID:", dom.uuid);
    if let Ok(r) = s.call::<procs::DomainGetOsType>(&da) {
        out.field("OS Type:", r.type_);
    }
    match s.call::<procs::DomainGetInfo>(&da) {
        Ok(info) => {
            out.field("State:", state_word(Some(i32::from(info.state))));
            out.field("CPU(s):", info.nr_virt_cpu);
            if info.cpu_time != 0 {
                out.field("CPU time:", cpu_seconds(info.cpu_time));
            }
            if info.max_mem == MEMORY_UNLIMITED {
                out.field("Max memory:", "no limit");
            } else {
                out.field("Max memory:", format!("{} KiB", info.max_mem));
            }
            out.field("Used memory:", format!("{} KiB", info.memory));
        }
        Err(_) => out.field("State:", state_word(None)),
    }
    let persistent = s.call::<procs::DomainIsPersistent>(&da).ok();
    out.field("Persistent:", yes_no(persistent.map(|r| r.persistent)));
    let autostart = match s.call::<procs::DomainGetAutostart>(&da) {
        Ok(r) if r.autostart != 0 => "enable",
        Ok(_) => "disable",
        Err(_) => "no autostart",
    };
    out.field("Autostart:", autostart);
    let managed = s.call::<procs::DomainHasManagedSaveImage>(&df).ok();
    out.field("Managed save:", yes_no(managed.map(|r| r.result)));
    match s.call::<procs::NodeGetSecurityModel>(&()) {
        Ok(m) => {
            let model = m.model.to_string_lossy();
            if !model.is_empty() {
                out.field("Security model:", &model);
                out.field("Security DOI:", m.doi.to_string_lossy());
                let label = s.call::<procs::DomainGetSecurityLabel>(&da)?;
                let text = label.label.to_string_lossy();
                if !text.is_empty() {
                    let mode = if label.enforcing != 0 {
                        "enforcing"
                    } else {
                        "permissive"
                    };
                    out.field("Security label:", format!("{text} ({mode})"));
                }
            }
        }
        Err(e) if is_no_support(&e) => {}
        Err(e) => return Err(e.into()),
    }
    if let Ok(m) = s.call::<procs::DomainGetMessages>(&df) {
        for (i, msg) in m.msgs.iter().enumerate() {
            out.field(if i == 0 { "Messages:" } else { "" }, msg);
        }
    }
    Ok(())
}

pub fn domstate(s: &mut Session, out: &Out, arg: &str, reason: bool) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let r = s.call::<procs::DomainGetState>(&DomainFlagsArgs { dom, flags: 0 })?;
    let word = state_word(Some(r.state));
    if reason {
        let why = DomainState::from_i32(r.state)
            .unwrap_or(DomainState::NoState)
            .reason_name(r.reason);
        out.print(&format!("{word} ({why})\n"));
    } else {
        out.print(&format!("{word}\n"));
    }
    Ok(())
}

pub fn domid(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::NAME_UUID)?;
    out.print(&format!("{}\n", id_word(&dom)));
    Ok(())
}

pub fn domname(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ID_UUID)?;
    out.print(&format!("{}\n", dom.name));
    Ok(())
}

pub fn domuuid(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ID_NAME)?;
    out.print(&format!("{}\n", dom.uuid));
    Ok(())
}

pub fn dumpxml(s: &mut Session, out: &Out, arg: &str, flags: u32) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    out.print(&s.xml(&dom, flags)?);
    Ok(())
}

/// virsh's word for a vCPU state (`virVcpuState`).
fn vcpu_state_word(state: i32) -> &'static str {
    match state {
        0 => "offline",
        1 => "running",
        2 => "idle",
        _ => "no state",
    }
}

/// A CPU map as `y`/`-` per host CPU, or as ranges with `--pretty`.
pub fn affinity(map: &[u8], maxcpu: usize, pretty: bool) -> String {
    let set = |i: usize| map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
    if !pretty {
        return (0..maxcpu)
            .map(|i| if set(i) { 'y' } else { '-' })
            .collect();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < maxcpu {
        if set(i) {
            let start = i;
            while i + 1 < maxcpu && set(i + 1) {
                i += 1;
            }
            parts.push(if start == i {
                start.to_string()
            } else {
                format!("{start}-{i}")
            });
        }
        i += 1;
    }
    format!("{} (out of {maxcpu})", parts.join(","))
}

/// The host's CPU count as virsh finds it: NODE_GET_CPU_MAP, or
/// NODE_GET_INFO when the daemon lacks the former.
fn host_cpus(s: &mut Session) -> Result<usize, CmdError> {
    match s.call::<procs::NodeGetCpuMap>(&NodeGetCpuMapArgs {
        need_map: 0,
        need_online: 0,
        flags: 0,
    }) {
        Ok(r) => Ok(usize::try_from(r.ret).unwrap_or(0)),
        Err(e) if is_no_support(&e) => {
            Ok(usize::try_from(s.call::<procs::NodeGetInfo>(&())?.cpus).unwrap_or(0))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn vcpuinfo(s: &mut Session, out: &Out, arg: &str, pretty: bool) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let maxcpu = host_cpus(s)?;
    let info = s.call::<procs::DomainGetInfo>(&Session::dom_args(&dom))?;
    let maplen = maxcpu.div_ceil(8).max(1);
    let vcpus = s.call::<procs::DomainGetVcpus>(&DomainGetVcpusArgs {
        dom: dom.clone(),
        maxinfo: i32::from(info.nr_virt_cpu),
        maplen: i32::try_from(maplen).unwrap_or(i32::MAX),
    });
    let (cpuinfo, maps) = match vcpus {
        Ok(r) => (Some(r.info), r.cpumaps.0),
        Err(_) if i32::from(info.state) == DomainState::Shutoff as i32 => {
            // virsh asks DOMAIN_GET_VCPU_PIN_INFO here; rvirt pins no
            // vCPUs, so every vCPU may run on every host CPU.
            (None, vec![0xff; maplen * usize::from(info.nr_virt_cpu)])
        }
        Err(e) => return Err(e.into()),
    };
    let n = cpuinfo
        .as_ref()
        .map_or(usize::from(info.nr_virt_cpu), Vec::len);
    for i in 0..n {
        out.field("VCPU:", i);
        match cpuinfo.as_ref().and_then(|c| c.get(i)) {
            Some(v) => {
                out.field("CPU:", v.cpu);
                out.field("State:", vcpu_state_word(v.state));
                if v.cpu_time != 0 {
                    out.field("CPU time:", cpu_seconds(v.cpu_time));
                }
            }
            None => {
                out.field("CPU:", "N/A");
                out.field("State:", "N/A");
                out.field("CPU time", "N/A");
            }
        }
        let map = maps.get(i * maplen..(i + 1) * maplen).unwrap_or(&[]);
        out.field("CPU Affinity:", affinity(map, maxcpu, pretty));
        if i + 1 < n {
            out.print("\n");
        }
    }
    Ok(())
}

fn parsed_xml(
    s: &mut Session,
    arg: &str,
    inactive: bool,
) -> Result<rvirt_domain::xml::Element, CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let flags = if inactive { xml_flags::INACTIVE } else { 0 };
    let xml = s.xml(&dom, flags)?;
    devices::parse(&xml).map_err(|e| CmdError::msg(format!("Failed to parse domain XML: {e}")))
}

pub fn domblklist(
    s: &mut Session,
    out: &Out,
    arg: &str,
    inactive: bool,
    details: bool,
) -> Result<(), CmdError> {
    let root = parsed_xml(s, arg, inactive)?;
    let disks = devices::disks(&root).ok_or_else(|| CmdError::msg("unable to query block list"))?;
    let mut t = if details {
        Table::new(&["Type", "Device", "Target", "Source"])
    } else {
        Table::new(&["Target", "Source"])
    };
    for d in disks {
        let src = d.source.unwrap_or_else(|| "-".into());
        if details {
            t.row(&[d.type_, d.device, d.target, src]);
        } else {
            t.row(&[d.target, src]);
        }
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

pub fn domiflist(s: &mut Session, out: &Out, arg: &str, inactive: bool) -> Result<(), CmdError> {
    let root = parsed_xml(s, arg, inactive)?;
    let mut t = Table::new(&["Interface", "Type", "Source", "Model", "MAC"]);
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for i in devices::interfaces(&root) {
        t.row(&[
            dash(i.target),
            i.type_,
            dash(i.source),
            dash(i.model),
            dash(i.mac),
        ]);
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_like_printf() {
        assert_eq!(cpu_seconds(340_000_000), "0.3s");
        assert_eq!(cpu_seconds(600_000_000), "0.6s");
        assert_eq!(cpu_seconds(1), "0.0s");
        assert_eq!(cpu_seconds(179_547_600_000_000), "179547.6s");
    }

    #[test]
    fn affinity_maps() {
        assert_eq!(affinity(&[0b11], 2, false), "yy");
        assert_eq!(affinity(&[0xff], 8, false), "yyyyyyyy");
        assert_eq!(affinity(&[0b0101], 4, false), "y-y-");
        assert_eq!(affinity(&[], 2, false), "--");
        assert_eq!(affinity(&[0xff], 8, true), "0-7 (out of 8)");
        assert_eq!(affinity(&[0b1101], 4, true), "0,2-3 (out of 4)");
    }

    #[test]
    fn words() {
        assert_eq!(vcpu_state_word(1), "running");
        assert_eq!(vcpu_state_word(7), "no state");
        assert_eq!(yes_no(Some(1)), "yes");
        assert_eq!(yes_no(None), "unknown");
    }
}
