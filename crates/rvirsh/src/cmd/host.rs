//! version, hostname, nodeinfo, domxml-to-native.

use rvirt_remote::calls::ConnectDomainXmlToNativeArgs;
use rvirt_remote::procs;

use super::read_file;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};
use crate::LIBVIRT_VERSION;

/// libvirt's `major * 1,000,000 + minor * 1,000 + micro` as `x.y.z`.
pub fn version_string(v: u64) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v % 1_000_000) / 1000, v % 1000)
}

pub fn version(s: &mut Session, out: &Out, daemon: bool) -> Result<(), CmdError> {
    out.print(&format!(
        "Compiled against library: libvirt {LIBVIRT_VERSION}\n"
    ));
    out.print(&format!("Using library: libvirt {LIBVIRT_VERSION}\n"));
    let hv = s
        .call::<procs::ConnectGetType>(&())
        .map_err(|e| CmdError::from(e).context("failed to get hypervisor type"))?
        .type_;
    out.print(&format!("Using API: {hv} {LIBVIRT_VERSION}\n"));
    let v = s
        .call::<procs::ConnectGetVersion>(&())
        .map_err(|e| CmdError::from(e).context("failed to get hypervisor version"))?
        .hv_ver;
    if v == 0 {
        out.print(&format!("Cannot extract running {hv} hypervisor version\n"));
    } else {
        out.print(&format!("Running hypervisor: {hv} {}\n", version_string(v)));
    }
    if daemon {
        let d = s
            .call::<procs::ConnectGetLibVersion>(&())
            .map_err(|e| CmdError::from(e).context("failed to get the daemon version"))?
            .lib_ver;
        out.print(&format!("Running against daemon: {}\n", version_string(d)));
    }
    Ok(())
}

pub fn hostname(s: &mut Session, out: &Out) -> Result<(), CmdError> {
    let h = s
        .call::<procs::ConnectGetHostname>(&())
        .map_err(|e| CmdError::from(e).context("failed to get hostname"))?
        .hostname;
    out.print(&format!("{h}\n"));
    Ok(())
}

pub fn nodeinfo(s: &mut Session, out: &Out) -> Result<(), CmdError> {
    let n = s
        .call::<procs::NodeGetInfo>(&())
        .map_err(|e| CmdError::from(e).context("failed to get node information"))?;
    let line = |label: &str, v: String| format!("{label:<20} {v}\n");
    let text = [
        line("CPU model:", n.model.to_string_lossy()),
        line("CPU(s):", n.cpus.to_string()),
        line("CPU frequency:", format!("{} MHz", n.mhz)),
        line("CPU socket(s):", n.sockets.to_string()),
        line("Core(s) per socket:", n.cores.to_string()),
        line("Thread(s) per core:", n.threads.to_string()),
        line("NUMA cell(s):", n.nodes.to_string()),
        line("Memory size:", format!("{} KiB", n.memory)),
    ]
    .concat();
    out.print(&text);
    Ok(())
}

pub fn domxml_to_native(
    s: &mut Session,
    out: &Out,
    format: Option<&str>,
    domain: Option<&str>,
    xml_file: Option<&str>,
) -> Result<(), CmdError> {
    let format = format
        .ok_or_else(|| CmdError::msg("command 'domxml-to-native' requires <format> option"))?;
    let domain_xml = match (domain, xml_file) {
        (Some(_), Some(_)) => {
            return Err(CmdError::msg(
                "Options --domain and --xml are mutually exclusive",
            ))
        }
        (Some(d), None) => {
            let dom = s.lookup(d, By::ANY)?;
            s.xml(&dom, 0)?
        }
        (None, Some(f)) => read_file(f)?,
        (None, None) => return Err(CmdError::msg("need either --domain or --xml")),
    };
    let native = s
        .call::<procs::ConnectDomainXmlToNative>(&ConnectDomainXmlToNativeArgs {
            native_format: format.to_string(),
            domain_xml,
            flags: 0,
        })?
        .native_config;
    out.print(&native);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_string(7_002_022), "7.2.22");
        assert_eq!(version_string(9_000_000), "9.0.0");
        assert_eq!(version_string(2), "0.0.2");
    }
}
