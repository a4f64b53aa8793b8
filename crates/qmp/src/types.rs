//! Data returned by the query commands, named and typed as in QEMU's QAPI
//! schema (qapi/run-state.json, machine.json, char.json, block-core.json).

use serde::{Deserialize, Serialize};

/// The VM's run state (QAPI `RunState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// QEMU is waiting for a debugger.
    Debug,
    /// Waiting for an incoming migration.
    Inmigrate,
    /// An internal error (e.g. an unhandled KVM exit) stopped the guest.
    InternalError,
    /// A disk I/O error paused the guest.
    IoError,
    /// Paused by `stop`.
    Paused,
    /// Paused after an outgoing migration.
    Postmigrate,
    /// Created but never started (`-S`).
    Prelaunch,
    /// Finishing an outgoing migration.
    FinishMigrate,
    /// Restoring a snapshot.
    RestoreVm,
    /// vCPUs are running.
    Running,
    /// Saving a snapshot.
    SaveVm,
    /// The guest powered off and `-no-shutdown` kept the process.
    Shutdown,
    /// The guest is suspended to RAM.
    Suspended,
    /// A watchdog fired and paused the guest.
    Watchdog,
    /// The guest panicked and the panic action paused it.
    GuestPanicked,
    /// COLO fault tolerance.
    Colo,
}

impl RunState {
    /// States `cont` refuses until `system_reset` (QEMU's
    /// `runstate_needs_reset`).
    pub fn needs_reset(self) -> bool {
        matches!(
            self,
            Self::InternalError | Self::Shutdown | Self::GuestPanicked
        )
    }

    /// QAPI's spelling of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Inmigrate => "inmigrate",
            Self::InternalError => "internal-error",
            Self::IoError => "io-error",
            Self::Paused => "paused",
            Self::Postmigrate => "postmigrate",
            Self::Prelaunch => "prelaunch",
            Self::FinishMigrate => "finish-migrate",
            Self::RestoreVm => "restore-vm",
            Self::Running => "running",
            Self::SaveVm => "save-vm",
            Self::Shutdown => "shutdown",
            Self::Suspended => "suspended",
            Self::Watchdog => "watchdog",
            Self::GuestPanicked => "guest-panicked",
            Self::Colo => "colo",
        }
    }
}

/// `query-status` reply. `singlestep` is always false: rvirt has no TCG.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// True when the vCPUs run.
    pub running: bool,
    /// Single-step mode (a TCG feature; always false).
    pub singlestep: bool,
    /// The run state.
    pub status: RunState,
}

impl From<RunState> for StatusInfo {
    fn from(status: RunState) -> Self {
        Self {
            running: status == RunState::Running,
            singlestep: false,
            status,
        }
    }
}

/// The three-part version number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: i64,
    /// Minor version.
    pub minor: i64,
    /// Micro (patch) version.
    pub micro: i64,
}

/// `query-version` reply and the greeting's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The QEMU version we claim to be compatible with.
    pub qemu: VersionTriple,
    /// Free-form package string; QEMU distributions put their build here.
    pub package: String,
}

/// The QEMU version rvirt advertises. 7.2 is the QEMU of Debian 12, whose
/// replies our golden tests were recorded from; libvirt and qemu.qmp accept
/// it (libvirt 9/10 need at least 4.2/6.2) and it still reports the
/// `singlestep` field that older management code reads.
pub const QEMU_COMPAT_VERSION: VersionTriple = VersionTriple {
    major: 7,
    minor: 2,
    micro: 0,
};

impl VersionInfo {
    /// rvirt's version: QEMU 7.2.0 compatibility, package "rvirt X.Y.Z".
    pub fn rvirt() -> Self {
        Self {
            qemu: QEMU_COMPAT_VERSION,
            package: format!("rvirt {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `query-kvm` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmInfo {
    /// KVM is in use.
    pub enabled: bool,
    /// KVM is available on the host.
    pub present: bool,
}

/// `query-name` reply; `{}` when the VM has no name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    /// The `-name` given on the command line.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

/// `query-uuid` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UuidInfo {
    /// The `-uuid`, or all zeros when none was given.
    #[serde(rename = "UUID")]
    pub uuid: String,
}

/// The all-zero UUID QEMU reports when `-uuid` was not given.
pub const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// A CPU's topology position (QAPI `CpuInstanceProperties`, x86 subset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuProps {
    /// NUMA node, when NUMA is configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_id: Option<i64>,
    /// Socket index.
    pub socket_id: i64,
    /// Die index; QEMU's pc machines report it, microvm does not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die_id: Option<i64>,
    /// Core index within the die/socket.
    pub core_id: i64,
    /// Thread index within the core.
    pub thread_id: i64,
}

/// One entry of `query-cpus-fast`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfoFast {
    /// Index of the vCPU (`-smp` order).
    pub cpu_index: i64,
    /// QOM path of the CPU object.
    pub qom_path: String,
    /// Host thread id (`gettid()`) of the vCPU thread.
    pub thread_id: i64,
    /// Topology position.
    pub props: CpuProps,
    /// QEMU target name.
    pub target: String,
}

impl CpuInfoFast {
    /// An x86_64 vCPU. QEMU creates the CPUs before any other unattached
    /// device, so CPU N sits at `/machine/unattached/device[N]`.
    pub fn x86_64(cpu_index: i64, thread_id: i64, props: CpuProps) -> Self {
        Self {
            cpu_index,
            qom_path: format!("/machine/unattached/device[{cpu_index}]"),
            thread_id,
            props,
            target: "x86_64".into(),
        }
    }
}

/// One entry of `query-chardev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChardevInfo {
    /// The chardev id (`compat_monitor0` for `-qmp`).
    pub label: String,
    /// QEMU's description, e.g. `unix:/path,server=on` or `stdio`.
    pub filename: String,
    /// A front end (device or monitor) has the chardev open.
    pub frontend_open: bool,
}

/// The medium in a block device (QAPI `BlockDeviceInfo`, the fields libvirt
/// reads). QEMU spells its keys with underscores, except `node-name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceInfo {
    /// Image file name.
    pub file: String,
    /// Node name in the block graph.
    #[serde(rename = "node-name", skip_serializing_if = "Option::is_none", default)]
    pub node_name: Option<String>,
    /// The backing file the image's header names.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backing_file: Option<String>,
    /// Images below this one.
    #[serde(default)]
    pub backing_file_depth: u32,
    /// The image and the chain below it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<ImageInfo>,
    /// The cache mode in effect.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache: Option<BlockdevCacheInfo>,
    /// Read-only.
    pub ro: bool,
    /// Format driver, e.g. `raw` or `qcow2`.
    pub drv: String,
    /// Encrypted (always false for rvirt).
    pub encrypted: bool,
    /// `off`, `on` or `unmap`.
    pub detect_zeroes: String,
    /// Throttling limits, zero when unlimited.
    pub bps: i64,
    /// Read throttling.
    pub bps_rd: i64,
    /// Write throttling.
    pub bps_wr: i64,
    /// IOPS throttling.
    pub iops: i64,
    /// Read IOPS throttling.
    pub iops_rd: i64,
    /// Write IOPS throttling.
    pub iops_wr: i64,
    /// Write threshold in bytes, zero when unset.
    pub write_threshold: i64,
}

/// QAPI `BlockdevCacheInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCacheInfo {
    /// The guest sees a volatile write cache.
    pub writeback: bool,
    /// O_DIRECT.
    pub direct: bool,
    /// Flushes are ignored.
    pub no_flush: bool,
}

/// QAPI `ImageInfo`: one image of a chain, `backing-image` the next one
/// down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    pub filename: String,
    /// `raw` or `qcow2`.
    pub format: String,
    /// Whether the image was not closed cleanly (`Some` for qcow2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dirty_flag: Option<bool>,
    /// Bytes the file takes on the host.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actual_size: Option<u64>,
    pub virtual_size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cluster_size: Option<u64>,
    /// The backing file as the header names it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backing_filename: Option<String>,
    /// The same, resolved against the image's directory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub full_backing_filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backing_filename_format: Option<String>,
    /// The image below, when it is open.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backing_image: Option<Box<ImageInfo>>,
}

/// One entry of `query-block`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Drive id (`-drive id=`).
    pub device: String,
    /// QOM path or id of the guest device it is attached to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qdev: Option<String>,
    /// Always `unknown` in QEMU.
    #[serde(rename = "type")]
    pub kind: String,
    /// Removable media (CD-ROM).
    pub removable: bool,
    /// Tray locked by the guest.
    pub locked: bool,
    /// The medium, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inserted: Option<BlockDeviceInfo>,
    /// Whether the tray is open; only for removable media.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tray_open: Option<bool>,
}

/// `BlockDeviceStats`: one node's or device's I/O counters (QEMU 7.2's
/// fields; the times are not measured and stay 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceStats {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub unmap_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
    pub flush_operations: u64,
    pub unmap_operations: u64,
    pub rd_total_time_ns: u64,
    pub wr_total_time_ns: u64,
    pub flush_total_time_ns: u64,
    pub unmap_total_time_ns: u64,
    /// The end of the highest range written.
    pub wr_highest_offset: u64,
    /// Requests merged into others.
    pub rd_merged: u64,
    pub wr_merged: u64,
    pub unmap_merged: u64,
    /// Nanoseconds since the last I/O finished; absent before any did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub idle_time_ns: Option<u64>,
    pub failed_rd_operations: u64,
    pub failed_wr_operations: u64,
    pub failed_flush_operations: u64,
    pub failed_unmap_operations: u64,
    pub invalid_rd_operations: u64,
    pub invalid_wr_operations: u64,
    pub invalid_flush_operations: u64,
    pub invalid_unmap_operations: u64,
    /// Whether invalid and failed requests are counted (true at device
    /// level, false at node level, as QEMU).
    pub account_invalid: bool,
    pub account_failed: bool,
    /// Interval statistics; none are configured.
    pub timed_stats: Vec<serde_json::Value>,
}

/// `BlockStatsSpecific` of a `file` or `host_device` node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileNodeStats {
    /// `file` or `host_device`.
    pub driver: String,
    pub discard_nb_ok: u64,
    pub discard_nb_failed: u64,
    pub discard_bytes_ok: u64,
}

/// One entry of `query-blockstats`: a device's counters (or a node's, with
/// `query-nodes`), and its node graph below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockStats {
    /// The drive id; empty for a `-blockdev` disk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<String>,
    /// The guest device's id or QOM path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qdev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node_name: Option<String>,
    pub stats: BlockDeviceStats,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub driver_specific: Option<FileNodeStats>,
    /// The node's file (protocol) child.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent: Option<Box<BlockStats>>,
    /// The node's backing child.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backing: Option<Box<BlockStats>>,
}

/// One PCI bus of `query-pci` (QAPI `PciInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciInfo {
    /// The bus number.
    pub bus: i64,
    pub devices: Vec<PciDeviceInfo>,
}

/// One function (QAPI `PciDeviceInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceInfo {
    pub bus: i64,
    pub slot: i64,
    pub function: i64,
    pub class_info: PciDeviceClass,
    pub id: PciDeviceId,
    /// The Interrupt Line register, for functions with an interrupt pin.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub irq: Option<i64>,
    /// 0: none, 1: INTA …
    pub irq_pin: i64,
    /// The device's id, `""` if it has none.
    pub qdev_id: String,
    /// For PCI-to-PCI bridges.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pci_bridge: Option<PciBridgeInfo>,
    pub regions: Vec<PciDeviceRegion>,
}

/// QAPI `PciDeviceClass`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceClass {
    /// QEMU's name of the class, for the classes it names.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desc: Option<String>,
    /// Base class and subclass (`0x0200`).
    pub class: i64,
}

/// QAPI `PciDeviceId`; the subsystem IDs only for type 0 headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceId {
    pub device: i64,
    pub vendor: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subsystem: Option<i64>,
    #[serde(
        rename = "subsystem-vendor",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub subsystem_vendor: Option<i64>,
}

/// QAPI `PciBridgeInfo`: the bridge's bus numbers and windows, and what is
/// behind it once its secondary bus is programmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciBridgeInfo {
    pub bus: PciBusInfo,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub devices: Option<Vec<PciDeviceInfo>>,
}

/// QAPI `PciBusInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciBusInfo {
    /// The bus the bridge is on.
    pub number: i64,
    pub secondary: i64,
    pub subordinate: i64,
    pub io_range: PciMemoryRange,
    pub memory_range: PciMemoryRange,
    pub prefetchable_range: PciMemoryRange,
}

/// QAPI `PciMemoryRange` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciMemoryRange {
    pub base: i64,
    pub limit: i64,
}

/// QAPI `PciDeviceRegion`: one BAR; `address` -1 while it decodes nowhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceRegion {
    pub bar: i64,
    /// `io` or `memory`.
    #[serde(rename = "type")]
    pub kind: String,
    pub address: i64,
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefetch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mem_type_64: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The keys QEMU 7.2 sends for a raw disk on a file node (seen with
    /// qemu-system-x86_64 7.2 and a libvirt -blockdev pair).
    #[test]
    fn block_stats_layout() {
        let s = BlockStats {
            device: Some(String::new()),
            qdev: Some("virtio-disk0".into()),
            node_name: Some("libvirt-1-format".into()),
            stats: BlockDeviceStats {
                account_invalid: true,
                account_failed: true,
                ..Default::default()
            },
            parent: Some(Box::new(BlockStats {
                node_name: Some("libvirt-1-storage".into()),
                driver_specific: Some(FileNodeStats {
                    driver: "file".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["device", "node-name", "parent", "qdev", "stats"]);
        let stats = v["stats"].as_object().unwrap();
        assert_eq!(stats.len(), 26, "{stats:?}");
        for k in [
            "rd_bytes",
            "wr_operations",
            "flush_operations",
            "wr_highest_offset",
            "invalid_unmap_operations",
            "account_failed",
            "timed_stats",
        ] {
            assert!(stats.contains_key(k), "{k}");
        }
        assert_eq!(
            v["parent"]["driver-specific"],
            json!({"driver": "file", "discard-nb-ok": 0, "discard-nb-failed": 0, "discard-bytes-ok": 0})
        );
    }

    #[test]
    fn run_state_spelling_matches_qapi() {
        for s in [
            RunState::Prelaunch,
            RunState::GuestPanicked,
            RunState::InternalError,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(RunState::GuestPanicked.as_str(), "guest-panicked");
    }

    #[test]
    fn cpu_info_layout() {
        let cpu = CpuInfoFast::x86_64(
            1,
            4242,
            CpuProps {
                core_id: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            serde_json::to_value(cpu).unwrap(),
            json!({"cpu-index": 1, "qom-path": "/machine/unattached/device[1]", "thread-id": 4242,
                   "props": {"socket-id": 0, "core-id": 1, "thread-id": 0}, "target": "x86_64"})
        );
    }

    #[test]
    fn empty_name_is_empty_object() {
        assert_eq!(
            serde_json::to_value(NameInfo::default()).unwrap(),
            json!({})
        );
    }
}

/// One entry of `query-cpu-definitions`: a CPU model and whether this
/// host (KVM) can run it; `unavailable_features` empty means usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuDefinitionInfo {
    pub name: String,
    pub typename: String,
    pub unavailable_features: Vec<String>,
    #[serde(rename = "static")]
    pub static_: bool,
    pub migration_safe: bool,
    pub deprecated: bool,
}

impl CpuDefinitionInfo {
    /// An x86_64 model as QEMU 7.2 lists it.
    pub fn x86_64(name: &str, unavailable_features: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            typename: format!("{name}-x86_64-cpu"),
            unavailable_features,
            static_: false,
            migration_safe: true,
            deprecated: false,
        }
    }
}

/// `CpuModelInfo`: a model and its properties (feature name: on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuModelInfo {
    pub name: String,
    #[serde(default)]
    pub props: std::collections::BTreeMap<String, serde_json::Value>,
}

impl CpuModelInfo {
    /// Model `name` with each of `features` on.
    pub fn with_features<'a>(name: &str, features: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            name: name.to_string(),
            props: features
                .into_iter()
                .map(|f| (f.to_string(), serde_json::Value::Bool(true)))
                .collect(),
        }
    }

    /// The features that are on.
    pub fn features_on(&self) -> impl Iterator<Item = &str> {
        self.props
            .iter()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.as_str())
    }
}

/// A VNC socket address (QAPI `VncBasicInfo`; `VncClientInfo` adds only
/// the TLS and SASL names rvirt never has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VncBasicInfo {
    /// The IP address, or "" for a unix socket.
    pub host: String,
    /// The port, or the unix socket's path ("" for an unnamed peer).
    pub service: String,
    /// "ipv4", "ipv6" or "unix".
    pub family: String,
    /// Always false: rvirt has no websocket listener.
    pub websocket: bool,
}

/// The VNC server's listening address with its authentication (QAPI
/// `VncServerInfo`), as events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VncServerInfo {
    /// The address.
    #[serde(flatten)]
    pub addr: VncBasicInfo,
    /// "none" or "vnc".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth: Option<String>,
}

/// `query-vnc` (QAPI `VncInfo`). Without a listening socket only
/// `enabled: false` is sent, as QEMU (even with clients added by
/// descriptor).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VncInfo {
    /// Whether the server listens.
    pub enabled: bool,
    /// The listening address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    /// Its family.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub family: Option<String>,
    /// Its port or path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service: Option<String>,
    /// "none" or "vnc".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth: Option<String>,
    /// The connected clients.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clients: Option<Vec<VncBasicInfo>>,
}

/// `add-fd`'s answer (qapi/misc.json `AddfdInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddfdInfo {
    #[serde(rename = "fdset-id")]
    pub fdset_id: i64,
    /// The descriptor's number in the VMM.
    pub fd: i64,
}

/// One descriptor of an fd set (QAPI `FdsetFdInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdsetFdInfo {
    pub fd: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opaque: Option<String>,
}

/// One fd set (QAPI `FdsetInfo`), as `query-fdsets` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdsetInfo {
    #[serde(rename = "fdset-id")]
    pub fdset_id: i64,
    pub fds: Vec<FdsetFdInfo>,
}

/// The data of `BLOCK_JOB_READY`, `BLOCK_JOB_COMPLETED` and
/// `BLOCK_JOB_CANCELLED` (qapi/block-core.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobEvent {
    /// QAPI `JobType`: `commit`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The job's id (QEMU names the job, not the disk, for jobs with ids).
    pub device: String,
    pub len: u64,
    pub offset: u64,
    pub speed: u64,
    /// Why the job failed (`BLOCK_JOB_COMPLETED` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// One entry of `query-block-jobs` (QAPI `BlockJobInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobInfo {
    #[serde(rename = "auto-finalize")]
    pub auto_finalize: bool,
    #[serde(rename = "io-status")]
    pub io_status: String,
    pub device: String,
    #[serde(rename = "auto-dismiss")]
    pub auto_dismiss: bool,
    pub busy: bool,
    pub len: u64,
    pub offset: u64,
    pub status: String,
    pub paused: bool,
    pub speed: u64,
    pub ready: bool,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// `block-commit`'s arguments, as the VMM gets them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockCommit {
    pub job_id: Option<String>,
    pub device: String,
    pub top_node: Option<String>,
    pub base_node: Option<String>,
    pub auto_finalize: bool,
    pub auto_dismiss: bool,
}

/// `screendump`'s `format` (QAPI `ImageFormat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Binary PPM, the default.
    #[default]
    Ppm,
    /// PNG.
    Png,
}
