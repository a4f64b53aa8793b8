//! The host commands: version, uri, hostname, nodeinfo.

use rvirt_remote::procs;

use crate::cli::HostCommand;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;
use crate::LIBVIRT_VERSION;

/// Runs one host command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &HostCommand) -> Result<(), CmdError> {
    match c {
        HostCommand::Version { daemon } => version(s, out, *daemon),
        HostCommand::Uri => {
            out.print(&format!("{}\n", s.target.original));
            Ok(())
        }
        HostCommand::Hostname => hostname(s, out),
        HostCommand::Nodeinfo => nodeinfo(s, out),
    }
}

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
