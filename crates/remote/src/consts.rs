//! Numbers fixed by libvirt's `.x` files (virnetprotocol.x,
//! remote_protocol.x, virkeepaliveprotocol.x) and `libvirt_internal.h`.

/// `REMOTE_PROGRAM`: the main libvirt program.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`.
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;
/// `KEEPALIVE_PROGRAM` ("keep").
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
/// `KEEPALIVE_PROTOCOL_VERSION`.
pub const KEEPALIVE_PROTOCOL_VERSION: u32 = 1;

/// `VIR_NET_MESSAGE_MAX`: a whole message, length word included.
pub const VIR_NET_MESSAGE_MAX: u32 = 16 * 1024 * 1024;
/// `VIR_NET_MESSAGE_HEADER_MAX`: the six header words.
pub const VIR_NET_MESSAGE_HEADER_MAX: u32 = 24;
/// `VIR_NET_MESSAGE_PAYLOAD_MAX`.
pub const VIR_NET_MESSAGE_PAYLOAD_MAX: u32 = VIR_NET_MESSAGE_MAX - VIR_NET_MESSAGE_HEADER_MAX;
/// `VIR_NET_MESSAGE_LEN_MAX`: the length word.
pub const VIR_NET_MESSAGE_LEN_MAX: u32 = 4;
/// Smallest valid message: length word plus header, empty payload.
pub const VIR_NET_MESSAGE_MIN: u32 = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX;
/// `VIR_NET_MESSAGE_STRING_MAX`.
pub const VIR_NET_MESSAGE_STRING_MAX: u32 = 4_194_304;
/// `VIR_NET_MESSAGE_NUM_FDS_MAX`.
pub const VIR_NET_MESSAGE_NUM_FDS_MAX: u32 = 32;

/// `REMOTE_STRING_MAX`.
pub const REMOTE_STRING_MAX: u32 = 4_194_304;
/// `REMOTE_DOMAIN_LIST_MAX`.
pub const REMOTE_DOMAIN_LIST_MAX: u32 = 16_384;
/// `REMOTE_CPUMAP_MAX`.
pub const REMOTE_CPUMAP_MAX: u32 = 2048;
/// `REMOTE_VCPUINFO_MAX`.
pub const REMOTE_VCPUINFO_MAX: u32 = 16_384;
/// `REMOTE_CPUMAPS_MAX`.
pub const REMOTE_CPUMAPS_MAX: u32 = 8_388_608;
/// `REMOTE_NETWORK_LIST_MAX`.
pub const REMOTE_NETWORK_LIST_MAX: u32 = 16_384;
/// `REMOTE_NETWORK_NAME_LIST_MAX`: CONNECT_LIST_(DEFINED_)NETWORKS.
pub const REMOTE_NETWORK_NAME_LIST_MAX: u32 = 16_384;
/// `REMOTE_NETWORK_DHCP_LEASES_MAX`.
pub const REMOTE_NETWORK_DHCP_LEASES_MAX: u32 = 65_536;
/// `REMOTE_DOMAIN_INTERFACE_MAX`: DOMAIN_INTERFACE_ADDRESSES.
pub const REMOTE_DOMAIN_INTERFACE_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_IP_ADDR_MAX`: addresses per interface.
pub const REMOTE_DOMAIN_IP_ADDR_MAX: u32 = 2048;
/// `REMOTE_INTERFACE_LIST_MAX`.
pub const REMOTE_INTERFACE_LIST_MAX: u32 = 16_384;
/// `REMOTE_STORAGE_POOL_LIST_MAX`.
pub const REMOTE_STORAGE_POOL_LIST_MAX: u32 = 4096;
/// `REMOTE_STORAGE_VOL_LIST_MAX`.
pub const REMOTE_STORAGE_VOL_LIST_MAX: u32 = 16_384;
/// `REMOTE_NODE_DEVICE_LIST_MAX`.
pub const REMOTE_NODE_DEVICE_LIST_MAX: u32 = 16_384;
/// `REMOTE_SECRET_LIST_MAX`.
pub const REMOTE_SECRET_LIST_MAX: u32 = 16_384;
/// `REMOTE_NWFILTER_LIST_MAX`.
pub const REMOTE_NWFILTER_LIST_MAX: u32 = 16_384;
/// `REMOTE_DOMAIN_SNAPSHOT_LIST_MAX`.
pub const REMOTE_DOMAIN_SNAPSHOT_LIST_MAX: u32 = 16_384;
/// `REMOTE_CPU_BASELINE_MAX`.
pub const REMOTE_CPU_BASELINE_MAX: u32 = 256;
/// `REMOTE_AUTH_TYPE_LIST_MAX`.
pub const REMOTE_AUTH_TYPE_LIST_MAX: u32 = 20;
/// `REMOTE_SECURITY_LABEL_LIST_MAX`.
pub const REMOTE_SECURITY_LABEL_LIST_MAX: u32 = 64;
/// `REMOTE_SECURITY_MODEL_MAX` = `VIR_SECURITY_MODEL_BUFLEN` (256 + NUL).
pub const REMOTE_SECURITY_MODEL_MAX: u32 = 257;
/// `REMOTE_SECURITY_LABEL_MAX` = `VIR_SECURITY_LABEL_BUFLEN` (4096 + NUL).
pub const REMOTE_SECURITY_LABEL_MAX: u32 = 4097;
/// `REMOTE_SECURITY_DOI_MAX` = `VIR_SECURITY_DOI_BUFLEN` (256 + NUL).
pub const REMOTE_SECURITY_DOI_MAX: u32 = 257;
/// `REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX`: typed params per record.
pub const REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX: u32 = 4096;
/// `REMOTE_DOMAIN_MESSAGES_MAX` (DOMAIN_GET_MESSAGES, per the protocol notes).
pub const REMOTE_DOMAIN_MESSAGES_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_EVENT_GRAPHICS_IDENTITY_MAX`.
pub const REMOTE_DOMAIN_EVENT_GRAPHICS_IDENTITY_MAX: u32 = 20;
/// `VIR_UUID_BUFLEN`.
pub const VIR_UUID_BUFLEN: usize = 16;

/// `remote_auth_type`: no authentication (the only one rvirt offers).
pub const REMOTE_AUTH_NONE: i32 = 0;
/// `remote_auth_type`: SASL.
pub const REMOTE_AUTH_SASL: i32 = 1;
/// `remote_auth_type`: polkit.
pub const REMOTE_AUTH_POLKIT: i32 = 2;

/// `VIR_DRV_FEATURE_*` values asked with CONNECT_SUPPORTS_FEATURE
/// (libvirt_internal.h).
pub mod feature {
    /// `VIR_DRV_FEATURE_MIGRATION_V1`.
    pub const MIGRATION_V1: i32 = 1;
    /// `VIR_DRV_FEATURE_REMOTE`.
    pub const REMOTE: i32 = 2;
    /// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`: the peer answers keepalive PINGs.
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    /// `VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK`: callback-id events (316-318).
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    /// `VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK`: procs 360/361.
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
    /// `VIR_DRV_FEATURE_FD_PASSING`: descriptors pass with SCM_RIGHTS
    /// (DOMAIN_OPEN_GRAPHICS_FD).
    pub const FD_PASSING: i32 = 8;
    /// `VIR_DRV_FEATURE_TYPED_PARAM_STRING`.
    pub const TYPED_PARAM_STRING: i32 = 9;
    /// `VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER`: NETWORK_UPDATE
    /// carries command and section in their documented order; a client
    /// told no swaps them (the protocol had them the wrong way round once),
    /// as virsh 9.0 asks right before `net-update`.
    pub const NETWORK_UPDATE_HAS_CORRECT_ORDER: i32 = 16;
}

/// `VIR_CONNECT_LIST_DOMAINS_*` flags of CONNECT_LIST_ALL_DOMAINS.
pub mod list_flags {
    pub const ACTIVE: u32 = 1 << 0;
    pub const INACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const RUNNING: u32 = 1 << 4;
    pub const PAUSED: u32 = 1 << 5;
    pub const SHUTOFF: u32 = 1 << 6;
    pub const OTHER: u32 = 1 << 7;
    pub const MANAGEDSAVE: u32 = 1 << 8;
    pub const NO_MANAGEDSAVE: u32 = 1 << 9;
    pub const AUTOSTART: u32 = 1 << 10;
    pub const NO_AUTOSTART: u32 = 1 << 11;
    pub const HAS_SNAPSHOT: u32 = 1 << 12;
    pub const NO_SNAPSHOT: u32 = 1 << 13;
}

/// Flags of DOMAIN_GET_XML_DESC (`virDomainXMLFlags`).
pub mod xml_flags {
    pub const SECURE: u32 = 1 << 0;
    pub const INACTIVE: u32 = 1 << 1;
    pub const UPDATE_CPU: u32 = 1 << 2;
    pub const MIGRATABLE: u32 = 1 << 3;
}

/// `VIR_DOMAIN_START_PAUSED`, for DOMAIN_CREATE_WITH_FLAGS and CREATE_XML.
pub const VIR_DOMAIN_START_PAUSED: u32 = 1 << 0;

/// `virDomainCreateFlags` of DOMAIN_CREATE_WITH_FLAGS and CREATE_XML.
pub mod start_flags {
    pub const PAUSED: u32 = 1 << 0;
    /// Destroyed when the connection that started it closes.
    pub const AUTODESTROY: u32 = 1 << 1;
    pub const BYPASS_CACHE: u32 = 1 << 2;
    pub const FORCE_BOOT: u32 = 1 << 3;
    /// CREATE_XML: validate against the schema (CREATE_WITH_FLAGS:
    /// RESET_NVRAM).
    pub const VALIDATE: u32 = 1 << 4;
}

/// `virDomainShutdownFlagValues` / `virDomainRebootFlagValues`: the modes.
pub mod shutdown_modes {
    pub const ACPI_POWER_BTN: u32 = 1 << 0;
    pub const GUEST_AGENT: u32 = 1 << 1;
    pub const INITCTL: u32 = 1 << 2;
    pub const SIGNAL: u32 = 1 << 3;
    pub const PARAVIRT: u32 = 1 << 4;
}

/// `VIR_DOMAIN_DESTROY_GRACEFUL`: SIGTERM only, never SIGKILL.
pub const VIR_DOMAIN_DESTROY_GRACEFUL: u32 = 1 << 0;

/// `virDomainUndefineFlagsValues`: managed save, snapshot and checkpoint
/// metadata, NVRAM and TPM state (none of which rvirt keeps).
pub const VIR_DOMAIN_UNDEFINE_ALL: u32 = 0x7f;

/// `virDomainModificationImpact`: AFFECT_LIVE, AFFECT_CONFIG.
pub mod affect {
    pub const CURRENT: u32 = 0;
    pub const LIVE: u32 = 1 << 0;
    pub const CONFIG: u32 = 1 << 1;
}
/// `VIR_DOMAIN_CONSOLE_FORCE`, for DOMAIN_OPEN_CONSOLE.
pub const VIR_DOMAIN_CONSOLE_FORCE: u32 = 1 << 0;
/// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`, the event id of CALLBACK_REGISTER_ANY.
pub const VIR_DOMAIN_EVENT_ID_LIFECYCLE: i32 = 0;
/// `VIR_DOMAIN_EVENT_ID_GRAPHICS`: a graphics client's phases.
pub const VIR_DOMAIN_EVENT_ID_GRAPHICS: i32 = 5;
/// `VIR_DOMAIN_EVENT_ID_REBOOT`.
pub const VIR_DOMAIN_EVENT_ID_REBOOT: i32 = 1;
/// `VIR_DOMAIN_EVENT_ID_TRAY_CHANGE`: a removable drive's tray moved.
pub const VIR_DOMAIN_EVENT_ID_TRAY_CHANGE: i32 = 10;
/// `VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN` and `_CLOSE`.
pub const VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN: i32 = 0;
pub const VIR_DOMAIN_EVENT_TRAY_CHANGE_CLOSE: i32 = 1;
/// `VIR_DOMAIN_EVENT_ID_WATCHDOG`.
pub const VIR_DOMAIN_EVENT_ID_WATCHDOG: i32 = 3;
/// `VIR_DOMAIN_EVENT_ID_BLOCK_JOB`: the disk named by its path.
pub const VIR_DOMAIN_EVENT_ID_BLOCK_JOB: i32 = 8;
/// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`: a device the guest let go of
/// (after a detach), by alias.
pub const VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED: i32 = 15;
/// `VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2`: the disk named by its target.
pub const VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2: i32 = 16;

/// `virDomainBlockJobType`, `virConnectDomainEventBlockJobStatus` and the
/// flags of block commit and block job abort.
pub mod block_job {
    pub const TYPE_ACTIVE_COMMIT: i32 = 4;
    pub const COMPLETED: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const CANCELED: i32 = 2;
    pub const READY: i32 = 3;
    /// `VIR_DOMAIN_BLOCK_COMMIT_ACTIVE`.
    pub const COMMIT_ACTIVE: u32 = 1 << 2;
    /// `VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES`.
    pub const COMMIT_BANDWIDTH_BYTES: u32 = 1 << 4;
    /// `VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC`.
    pub const ABORT_ASYNC: u32 = 1 << 0;
    /// `VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT`.
    pub const ABORT_PIVOT: u32 = 1 << 1;
    /// `VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES`.
    pub const INFO_BANDWIDTH_BYTES: u32 = 1 << 0;
}

/// `VIR_NETWORK_EVENT_ID_LIFECYCLE`, the event id of
/// CONNECT_NETWORK_EVENT_REGISTER_ANY.
pub const VIR_NETWORK_EVENT_ID_LIFECYCLE: i32 = 0;

/// `virNetworkEventLifecycleType`: the `event` of a network lifecycle
/// message, and the words `virsh net-event` prints for it.
pub mod network_event {
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const STOPPED: i32 = 3;

    /// As `virsh net-event` prints it.
    pub fn name(event: i32) -> &'static str {
        match event {
            DEFINED => "Defined",
            UNDEFINED => "Undefined",
            STARTED => "Started",
            STOPPED => "Stopped",
            _ => "unknown",
        }
    }
}

/// Flags of CONNECT_LIST_ALL_NETWORKS (`virConnectListAllNetworksFlags`).
pub mod network_list_flags {
    pub const INACTIVE: u32 = 1 << 0;
    pub const ACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const AUTOSTART: u32 = 1 << 4;
    pub const NO_AUTOSTART: u32 = 1 << 5;
}

/// `VIR_NETWORK_XML_INACTIVE`, for NETWORK_GET_XML_DESC.
pub const VIR_NETWORK_XML_INACTIVE: u32 = 1 << 0;

/// `virNetworkUpdateFlags`.
pub mod network_update_flags {
    pub const AFFECT_CURRENT: u32 = 0;
    pub const AFFECT_LIVE: u32 = 1 << 0;
    pub const AFFECT_CONFIG: u32 = 1 << 1;
}

/// `virDomainInterfaceAddressesSource`.
pub mod interface_addresses_source {
    pub const LEASE: u32 = 0;
    pub const AGENT: u32 = 1;
    pub const ARP: u32 = 2;
}

/// `virIPAddrType`.
pub mod ip_addr_type {
    pub const IPV4: i32 = 0;
    pub const IPV6: i32 = 1;
}

/// `VIR_DOMAIN_STATS_*` groups of CONNECT_GET_ALL_DOMAIN_STATS.
pub mod stats {
    pub const STATE: u32 = 1 << 0;
    pub const CPU_TOTAL: u32 = 1 << 1;
    pub const BALLOON: u32 = 1 << 2;
    pub const VCPU: u32 = 1 << 3;
    pub const INTERFACE: u32 = 1 << 4;
    pub const BLOCK: u32 = 1 << 5;
    pub const PERF: u32 = 1 << 6;
}

/// A version as CONNECT_GET_VERSION and GET_LIB_VERSION carry it:
/// major * 1,000,000 + minor * 1,000 + micro (QEMU 7.2.22 is 7002022).
pub fn version_number(major: u64, minor: u64, micro: u64) -> u64 {
    major * 1_000_000 + minor * 1_000 + micro
}

/// The (major, minor, micro) of a [`version_number`], as `virsh version`
/// prints it (`7.2.22`).
pub fn version_parts(v: u64) -> (u64, u64, u64) {
    (v / 1_000_000, v / 1_000 % 1_000, v % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_captured() {
        assert_eq!(version_number(7, 2, 22), 7_002_022);
        assert_eq!(version_parts(9_000_000), (9, 0, 0));
        assert_eq!(version_parts(7_002_022), (7, 2, 22));
    }
}

/// Storage pools and volumes: the flags and numbers of libvirt-storage.h.
pub mod storage {
    /// `VIR_CONNECT_LIST_STORAGE_POOLS_*` (CONNECT_LIST_ALL_STORAGE_POOLS).
    pub mod list {
        pub const INACTIVE: u32 = 1 << 0;
        pub const ACTIVE: u32 = 1 << 1;
        pub const PERSISTENT: u32 = 1 << 2;
        pub const TRANSIENT: u32 = 1 << 3;
        pub const AUTOSTART: u32 = 1 << 4;
        pub const NO_AUTOSTART: u32 = 1 << 5;
        /// The first pool-type bit (`..._DIR`); the others follow in
        /// [`TYPE_BITS`] order.
        pub const DIR: u32 = 1 << 6;
        /// The pool type of each bit from `1 << 6` up, as libvirt numbers
        /// them (`..._DIR` … `..._ISCSI_DIRECT`); sheepdog's bit stays
        /// though libvirt 9.0 no longer has the type.
        pub const TYPE_BITS: &[&str] = &[
            "dir",
            "fs",
            "netfs",
            "logical",
            "disk",
            "iscsi",
            "scsi",
            "mpath",
            "rbd",
            "sheepdog",
            "gluster",
            "zfs",
            "vstorage",
            "iscsi-direct",
        ];
        /// Every flag libvirt 9.0 defines.
        pub const ALL: u32 = (1 << 20) - 1;
    }
    /// `virStoragePoolState`.
    pub mod pool_state {
        pub const INACTIVE: u8 = 0;
        pub const BUILDING: u8 = 1;
        pub const RUNNING: u8 = 2;
        pub const DEGRADED: u8 = 3;
        pub const INACCESSIBLE: u8 = 4;
    }
    /// `virStorageVolType`.
    pub mod vol_type {
        pub const FILE: u8 = 0;
        pub const BLOCK: u8 = 1;
        pub const DIR: u8 = 2;
        pub const NETWORK: u8 = 3;
        pub const NETDIR: u8 = 4;
        pub const PLOOP: u8 = 5;
    }
    /// `VIR_STORAGE_XML_INACTIVE` (STORAGE_POOL_GET_XML_DESC).
    pub const XML_INACTIVE: u32 = 1 << 0;
    /// `VIR_STORAGE_POOL_BUILD_*`.
    pub mod build {
        pub const REPAIR: u32 = 1 << 0;
        pub const RESIZE: u32 = 1 << 1;
        pub const NO_OVERWRITE: u32 = 1 << 2;
        pub const OVERWRITE: u32 = 1 << 3;
    }
    /// `VIR_STORAGE_POOL_CREATE_*` (STORAGE_POOL_CREATE, _CREATE_XML).
    pub mod create {
        pub const WITH_BUILD: u32 = 1 << 0;
        pub const WITH_BUILD_OVERWRITE: u32 = 1 << 1;
        pub const WITH_BUILD_NO_OVERWRITE: u32 = 1 << 2;
    }
    /// `VIR_STORAGE_POOL_DEFINE_VALIDATE`.
    pub const DEFINE_VALIDATE: u32 = 1 << 0;
    /// `VIR_STORAGE_VOL_CREATE_*`.
    pub mod vol_create {
        pub const PREALLOC_METADATA: u32 = 1 << 0;
        pub const REFLINK: u32 = 1 << 1;
        pub const VALIDATE: u32 = 1 << 2;
    }
    /// `VIR_STORAGE_VOL_RESIZE_*`.
    pub mod resize {
        pub const ALLOCATE: u32 = 1 << 0;
        pub const DELTA: u32 = 1 << 1;
        pub const SHRINK: u32 = 1 << 2;
    }
    /// `VIR_STORAGE_VOL_DELETE_*`.
    pub mod vol_delete {
        pub const ZEROED: u32 = 1 << 0;
        pub const WITH_SNAPSHOTS: u32 = 1 << 1;
    }
    /// `VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM` (and DOWNLOAD's twin).
    pub const SPARSE_STREAM: u32 = 1 << 0;
    /// `VIR_STORAGE_VOL_GET_PHYSICAL` (STORAGE_VOL_GET_INFO_FLAGS).
    pub const GET_PHYSICAL: u32 = 1 << 0;
    /// `VIR_STORAGE_VOL_WIPE_ALG_ZERO`: the one algorithm without `scrub`.
    pub const WIPE_ALG_ZERO: u32 = 0;
    /// `VIR_STORAGE_POOL_EVENT_ID_*`.
    pub const EVENT_ID_LIFECYCLE: i32 = 0;
    pub const EVENT_ID_REFRESH: i32 = 1;
    /// `virStoragePoolEventLifecycleType`.
    pub mod event {
        pub const DEFINED: i32 = 0;
        pub const UNDEFINED: i32 = 1;
        pub const STARTED: i32 = 2;
        pub const STOPPED: i32 = 3;
        pub const CREATED: i32 = 4;
        pub const DELETED: i32 = 5;
    }
}
