//! What CPUs rvirt-vmm can give guests on this host, asked of rvirt-vmm
//! itself as libvirt asks QEMU: a VMM with no machine (`-machine none
//! -S`) answers `query-cpu-definitions` (each model with the features KVM
//! lacks for it) and `query-cpu-model-expansion` of `host` (what KVM
//! offers), then quits. rvirtd links no KVM code; KVM's word comes
//! through the VMM. Probed once per daemon, on first use, as libvirt
//! caches its QEMU capabilities.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;
use rvirt_qmp::{CpuDefinitionInfo, CpuModelInfo, QmpClient};
use rvirt_vmm_config::caps::{self, CpuModelDef, CPU_MODELS};
use serde_json::json;

use crate::supervise::{Child, Spawn, FIRST_PASSED_FD};

/// How long the probe may take, start to quit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFacts {
    /// Each named model of rvirt-vmm's table with the features KVM lacks
    /// for it (empty: usable).
    pub models: Vec<(String, Vec<String>)>,
    /// The features KVM offers (QEMU's names), as `-cpu host` gives them.
    pub host_features: Vec<String>,
}

/// The host-model CPU: the table's model closest to the host and the
/// features to add to it (`require`) or take away (`disable`), libvirt's
/// names, as libvirt describes the host CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostModel {
    pub model: &'static CpuModelDef,
    pub require: Vec<String>,
    pub disable: Vec<String>,
}

impl CpuFacts {
    /// Whether model `name` runs here as defined.
    pub fn usable(&self, name: &str) -> bool {
        self.models
            .iter()
            .any(|(m, missing)| m == name && missing.is_empty())
    }

    /// The host CPU as a model of the table, chosen as libvirt's CPU
    /// driver chooses one from its map: the newest model the host runs
    /// whole, else the one that needs the fewest changes. Models of
    /// another vendor are left out.
    pub fn host_model(&self, vendor: Option<&str>) -> HostModel {
        let host: Vec<&str> = self.host_features.iter().map(String::as_str).collect();
        let candidates = CPU_MODELS
            .iter()
            .filter(|m| m.vendor.is_none() || m.vendor == vendor);
        let changes = |m: &CpuModelDef| {
            let disable: Vec<&str> = m
                .features
                .iter()
                .copied()
                .filter(|f| !host.contains(f))
                .collect();
            let require: Vec<&str> = host
                .iter()
                .copied()
                .filter(|f| !m.features.contains(f))
                .collect();
            (require, disable)
        };
        let best = candidates
            .clone()
            .rfind(|m| changes(m).1.is_empty())
            .or_else(|| {
                candidates.min_by_key(|m| {
                    let (r, d) = changes(m);
                    r.len() + d.len()
                })
            })
            .unwrap_or(&CPU_MODELS[0]);
        let (require, disable) = changes(best);
        let names = |v: Vec<&str>| {
            v.into_iter()
                .map(|f| caps::libvirt_feature_name(f).to_string())
                .collect()
        };
        HostModel {
            model: best,
            require: names(require),
            disable: names(disable),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot bind the probe's monitor socket {0}")]
    Bind(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot start {0}")]
    Spawn(std::path::PathBuf, #[source] crate::supervise::SpawnError),
    #[error("the probe's monitor")]
    Qmp(#[source] rvirt_qmp::ClientError),
}

/// Runs `vmm` with no machine and asks it; `dir` holds its monitor
/// socket for the moment it runs.
pub fn probe(vmm: &Path, dir: &Path) -> Result<CpuFacts, ProbeError> {
    // A name no domain can have (domain names never start with a dot).
    let sock = dir.join(".cpu-probe.monitor.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| ProbeError::Bind(sock.clone(), e))?;
    let args: Vec<String> = [
        "-machine",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-S",
        "-chardev",
        &format!("socket,id=charmonitor,fd={FIRST_PASSED_FD},server=on,wait=off"),
        "-mon",
        "chardev=charmonitor,id=monitor,mode=control",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = Child::spawn(Spawn {
        program: vmm,
        args: &args,
        pass: vec![OwnedFd::from(listener)],
        log: None,
        env_remove: &["RVIRT_LOG"],
        // Not jailed: the probe runs no guest and opens nothing a
        // definition names (`-machine none`, only /dev/kvm for the CPUID),
        // and lives for the two questions it is asked. libvirt's QEMU
        // probe, too, runs outside any domain's confinement.
        jail: None,
        env: &[],
    })
    .map_err(|e| ProbeError::Spawn(vmm.into(), e));
    let result = child.and_then(|child| {
        let asked = ask(&sock);
        // Quit asked or not, the probe must not outlive the question.
        if !child.wait(Some(Duration::from_secs(2))) {
            child.signal(Signal::KILL);
            child.wait(Some(Duration::from_secs(2)));
        }
        asked
    });
    let _ = std::fs::remove_file(&sock);
    result
}

fn ask(sock: &Path) -> Result<CpuFacts, ProbeError> {
    let qmp = QmpClient::connect(sock, PROBE_TIMEOUT).map_err(ProbeError::Qmp)?;
    let defs: Vec<CpuDefinitionInfo> = qmp
        .execute_as("query-cpu-definitions", None)
        .map_err(ProbeError::Qmp)?;
    let host: serde_json::Value = qmp
        .execute(
            "query-cpu-model-expansion",
            Some(json!({"type": "full", "model": {"name": "host"}})),
        )
        .map_err(ProbeError::Qmp)?;
    let _ = qmp.execute("quit", None);
    let host: CpuModelInfo = serde_json::from_value(host["model"].clone()).map_err(|e| {
        ProbeError::Qmp(rvirt_qmp::ClientError::Protocol(format!(
            "bad expansion of host: {e}"
        )))
    })?;
    Ok(CpuFacts {
        models: defs
            .into_iter()
            .filter(|d| caps::cpu_model(&d.name).is_some())
            .map(|d| (d.name, d.unavailable_features))
            .collect(),
        host_features: host.features_on().map(str::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(host: &[&str]) -> CpuFacts {
        CpuFacts {
            models: Vec::new(),
            host_features: host.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_host_model_is_the_newest_model_the_host_runs_whole() {
        let nehalem = caps::cpu_model("Nehalem").unwrap();
        let mut host: Vec<&str> = nehalem.features.to_vec();
        host.extend(["x2apic", "vmx", "hypervisor"]);
        let m = facts(&host).host_model(Some("Intel"));
        assert_eq!(m.model.name, "Nehalem");
        // Listed as libvirt lists them, those KVM gives every model too.
        assert_eq!(m.require, ["x2apic", "vmx", "hypervisor"]);
        assert!(m.disable.is_empty());
        // On another vendor's host the Intel models are not candidates.
        let m = facts(&host).host_model(Some("AMD"));
        assert!(m.model.vendor.is_none(), "{}", m.model.name);
    }

    #[test]
    fn a_host_short_of_every_model_gets_the_closest_with_features_disabled() {
        // This build machine's KVM: no SSE3 at all.
        let kvm64 = caps::cpu_model("kvm64").unwrap();
        let host: Vec<&str> = kvm64
            .features
            .iter()
            .copied()
            .filter(|f| *f != "pni")
            .chain(["ss", "lahf-lm"])
            .collect();
        let m = facts(&host).host_model(Some("Intel"));
        assert_eq!(m.model.name, "kvm64");
        assert_eq!(m.disable, ["pni"]);
        assert_eq!(m.require, ["ss", "lahf_lm"]);
    }
}
