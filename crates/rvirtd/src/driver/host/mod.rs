//! The host driver: what the host and rvirt-vmm are (types, versions, the
//! host name, node facts, capabilities).

pub mod capabilities;
pub mod cpu_probe;
pub mod info;
pub mod stats;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_remote::calls::*;
use rvirt_remote::consts::version_number;
use rvirt_remote::error::{code, from};
use rvirt_remote::procedures::HostCalls;
use rvirt_remote::uri::Mode;
use rvirt_remote::xdr::{CharList, Opaque};
use rvirt_remote::RemoteError;

use crate::server::router::Call;
use crate::Config;

/// libvirt's version that rvirtd's protocol matches (virsh prints it for
/// `version --daemon`).
const LIB_VERSION: u64 = 9_000_000;

pub struct HostDriver {
    mode: Mode,
    /// The rvirt-vmm executable: the emulator the capabilities name.
    vmm: PathBuf,
    /// Where the CPU probe's monitor socket goes for a moment.
    probe_dir: PathBuf,
    /// What rvirt-vmm said of this host's CPUs: probed on first use and
    /// kept (a failed probe too, logged once), as libvirt caches QEMU's
    /// capabilities.
    cpu: Mutex<Option<Option<Arc<cpu_probe::CpuFacts>>>>,
}

impl HostDriver {
    pub fn new(cfg: &Config) -> Self {
        HostDriver {
            mode: cfg.tree.mode,
            vmm: cfg.vmm.clone(),
            probe_dir: cfg.tree.state_dir.clone(),
            cpu: Mutex::new(None),
        }
    }

    /// The CPU facts of this host, probing rvirt-vmm the first time.
    pub fn cpu_facts(&self) -> Option<Arc<cpu_probe::CpuFacts>> {
        let mut cached = self.cpu.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .get_or_insert_with(|| match cpu_probe::probe(&self.vmm, &self.probe_dir) {
                Ok(f) => {
                    tracing::info!(host_features = f.host_features.len(), "CPU models probed");
                    Some(Arc::new(f))
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "cannot probe rvirt-vmm's CPU models");
                    None
                }
            })
            .clone()
    }
}

/// rvirt-vmm's version as CONNECT_GET_VERSION carries it.
fn vmm_version() -> u64 {
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.').map(|x| x.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    version_number(a, b, c)
}

impl<'a> HostCalls<Call<'a>> for HostDriver {
    fn connect_get_type(&self, _cx: &Call<'a>, _a: ()) -> Result<TypeRet, RemoteError> {
        Ok(TypeRet {
            type_: "QEMU".into(),
        })
    }

    fn connect_get_version(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<ConnectGetVersionRet, RemoteError> {
        Ok(ConnectGetVersionRet {
            hv_ver: vmm_version(),
        })
    }

    fn connect_get_lib_version(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<ConnectGetLibVersionRet, RemoteError> {
        Ok(ConnectGetLibVersionRet {
            lib_ver: LIB_VERSION,
        })
    }

    fn connect_get_hostname(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<ConnectGetHostnameRet, RemoteError> {
        Ok(ConnectGetHostnameRet {
            hostname: crate::sys::hostname(),
        })
    }

    fn connect_get_uri(&self, _cx: &Call<'a>, _a: ()) -> Result<ConnectGetUriRet, RemoteError> {
        let uri = match self.mode {
            Mode::System => "qemu:///system",
            Mode::Session => "qemu:///session",
        };
        Ok(ConnectGetUriRet { uri: uri.into() })
    }

    fn connect_get_max_vcpus(
        &self,
        _cx: &Call<'a>,
        _a: ConnectGetMaxVcpusArgs,
    ) -> Result<ConnectGetMaxVcpusRet, RemoteError> {
        Ok(ConnectGetMaxVcpusRet {
            max_vcpus: rvirt_domain::MAX_VCPUS as i32,
        })
    }

    fn connect_get_capabilities(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<CapabilitiesRet, RemoteError> {
        Ok(CapabilitiesRet {
            capabilities: capabilities::capabilities_xml(&self.vmm, self.cpu_facts().as_deref()),
        })
    }

    fn connect_get_domain_capabilities(
        &self,
        _cx: &Call<'a>,
        a: ConnectGetDomainCapabilitiesArgs,
    ) -> Result<CapabilitiesRet, RemoteError> {
        Ok(CapabilitiesRet {
            capabilities: capabilities::domain_capabilities_xml(
                &self.vmm,
                &a,
                self.cpu_facts().as_deref(),
            )?,
        })
    }

    fn node_get_info(&self, _cx: &Call<'a>, _a: ()) -> Result<NodeGetInfoRet, RemoteError> {
        Ok(info::node_info())
    }

    fn node_get_cpu_map(
        &self,
        _cx: &Call<'a>,
        a: NodeGetCpuMapArgs,
    ) -> Result<NodeGetCpuMapRet, RemoteError> {
        let n = info::cpus();
        let map = if a.need_map != 0 {
            info::all_cpus_map(n, info::cpu_map_len(n))
        } else {
            Vec::new()
        };
        Ok(NodeGetCpuMapRet {
            cpumap: Opaque(map),
            online: if a.need_online != 0 { n } else { 0 },
            ret: n as i32,
        })
    }

    fn node_get_free_memory(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<NodeGetFreeMemoryRet, RemoteError> {
        Ok(NodeGetFreeMemoryRet {
            free_mem: stats::free_bytes(),
        })
    }

    fn node_get_cells_free_memory(
        &self,
        _cx: &Call<'a>,
        a: NodeGetCellsFreeMemoryArgs,
    ) -> Result<NodeGetCellsFreeMemoryRet, RemoteError> {
        Ok(NodeGetCellsFreeMemoryRet {
            cells: stats::cells_free(a.start_cell, a.maxcells)?,
        })
    }

    fn node_get_memory_stats(
        &self,
        _cx: &Call<'a>,
        a: NodeGetMemoryStatsArgs,
    ) -> Result<NodeStatsRet, RemoteError> {
        RemoteError::check_flags(a.flags, 0, "virHostMemGetStats")?;
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        stats::memory_stats(&text, a.cell_num, a.nparams)
    }

    fn node_get_cpu_stats(
        &self,
        _cx: &Call<'a>,
        a: NodeGetCpuStatsArgs,
    ) -> Result<NodeStatsRet, RemoteError> {
        RemoteError::check_flags(a.flags, 0, "virHostCPUGetStats")?;
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        stats::cpu_stats(&text, a.cpu_num, a.nparams)
    }

    fn node_get_security_model(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<NodeGetSecurityModelRet, RemoteError> {
        Ok(NodeGetSecurityModelRet {
            model: CharList::from_c_str("none"),
            doi: CharList::from_c_str("0"),
        })
    }
}

// rvirtd manages no host interfaces or devices: libvirt's drivers with none
// answer empty lists, which virt-manager reads when it connects.

impl<'a> rvirt_remote::procedures::InterfaceCalls<Call<'a>> for HostDriver {
    // libvirtd's interface driver's words (udev backend).
    fn interface_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<InterfaceRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_INTERFACE,
            from::INTERFACE,
            Some(&format!("couldn't find interface named '{}'", a.name)),
        ))
    }

    fn interface_lookup_by_mac_string(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<InterfaceRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_INTERFACE,
            from::INTERFACE,
            Some(&format!(
                "couldn't find interface with MAC address '{}'",
                a.name
            )),
        ))
    }

    fn connect_list_all_interfaces(
        &self,
        _cx: &Call<'a>,
        _a: ConnectListAllArgs,
    ) -> Result<ConnectListAllInterfacesRet, RemoteError> {
        Ok(ConnectListAllInterfacesRet {
            ifaces: Vec::new(),
            ret: 0,
        })
    }
}

// No secrets and no network filters either: empty lists, and lookups that
// fail as libvirtd's secret and nwfilter drivers fail them.
impl<'a> rvirt_remote::procedures::SecretCalls<Call<'a>> for HostDriver {
    fn secret_lookup_by_uuid(&self, _cx: &Call<'a>, a: UuidArgs) -> Result<SecretRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_SECRET,
            from::SECRET,
            Some(&format!("no secret with matching uuid '{}'", a.uuid)),
        ))
    }

    fn secret_lookup_by_usage(
        &self,
        _cx: &Call<'a>,
        a: SecretLookupByUsageArgs,
    ) -> Result<SecretRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_SECRET,
            from::SECRET,
            Some(&format!("no secret with matching usage '{}'", a.usage_id)),
        ))
    }

    fn connect_list_all_secrets(
        &self,
        _cx: &Call<'a>,
        a: ConnectListAllArgs,
    ) -> Result<ConnectListAllSecretsRet, RemoteError> {
        // The (no-)ephemeral and (no-)private filters select from none.
        RemoteError::check_flags(a.flags, 0xf, "secretConnectListAllSecrets")?;
        Ok(ConnectListAllSecretsRet {
            secrets: Vec::new(),
            ret: 0,
        })
    }
}

impl<'a> rvirt_remote::procedures::NwfilterCalls<Call<'a>> for HostDriver {
    fn nwfilter_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<NwfilterRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_NWFILTER,
            from::NWFILTER,
            Some(&format!("no nwfilter with matching name '{}'", a.name)),
        ))
    }

    fn nwfilter_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: UuidArgs,
    ) -> Result<NwfilterRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_NWFILTER,
            from::NWFILTER,
            Some(&format!("no nwfilter with matching uuid '{}'", a.uuid)),
        ))
    }

    fn connect_list_all_nwfilters(
        &self,
        _cx: &Call<'a>,
        a: ConnectListAllArgs,
    ) -> Result<ConnectListAllNwfiltersRet, RemoteError> {
        RemoteError::check_flags(a.flags, 0, "nwfilterConnectListAllNWFilters")?;
        Ok(ConnectListAllNwfiltersRet {
            filters: Vec::new(),
            ret: 0,
        })
    }
}

impl<'a> rvirt_remote::procedures::NodeDeviceCalls<Call<'a>> for HostDriver {
    fn node_device_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<NodeDeviceRet, RemoteError> {
        Err(RemoteError::new(
            code::NO_NODE_DEVICE,
            from::NODEDEV,
            Some(&format!("no node device with matching name '{}'", a.name)),
        ))
    }

    fn connect_list_all_node_devices(
        &self,
        _cx: &Call<'a>,
        _a: ConnectListAllArgs,
    ) -> Result<ConnectListAllNodeDevicesRet, RemoteError> {
        Ok(ConnectListAllNodeDevicesRet {
            devices: Vec::new(),
            ret: 0,
        })
    }
}
