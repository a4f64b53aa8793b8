//! The procedure table: each procedure's number, name, argument type,
//! return type, read-only ACL and handler method, written once, one line
//! per procedure, grouped by the driver that serves it. The macro derives
//! from it the `Procedure` enum, a marker type per procedure for typed
//! client calls, the `Args`/`Ret` enums a server decodes into by procedure
//! number, one handler trait per group (`DomainCalls`, `NetworkCalls`, …)
//! whose every method defaults to VIR_ERR_NO_SUPPORT, and [`dispatch`],
//! which runs a call on its group's driver. This is what libvirt's
//! `gendispatch.pl` generates from `remote_protocol.x`; see the README for
//! why rvirt transcribes instead.
//!
//! Numbers are those of `enum remote_procedure` in remote_protocol.x. For
//! event MESSAGEs the "args" column is the message body and ret is void.
//! The ACL column is `w` for a call that changes state (refused on a
//! read-only connection) and `r` for one that does not.

// Calls fail with libvirt's `remote_error` as the wire carries it; errors
// are the rare path, so its size does not matter.
#![allow(clippy::result_large_err)]

use crate::calls::*;
use crate::error::RemoteError;
use crate::xdr::{Reader, Xdr, XdrError};

/// The driver of a group the server does not serve: every call answers
/// VIR_ERR_NO_SUPPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unserved;

/// One procedure as a type: what a typed client call needs to know.
pub trait RemoteProcedure {
    /// Its number.
    const PROC: Procedure;
    /// Its argument struct (`()` when void).
    type Args: Xdr;
    /// Its return struct (`()` when void).
    type Ret: Xdr;
}

/// Whether a read-only connection may make the call (`r`) or not (`w`),
/// from the table's ACL column.
macro_rules! acl_changes {
    (r) => {
        false
    };
    (w) => {
        true
    };
}

macro_rules! procedures {
    ($(
        $(#[$gm:meta])* $group:ident : $Calls:ident {
            $( $(#[$m:meta])* $variant:ident ($wire:ident) = $num:literal : $args:ty => $ret:ty, $acl:ident, $method:ident; )*
        }
    )*) => {
        $(
            $(#[$gm])*
            ///
            /// One method per procedure of this group; each answers
            /// VIR_ERR_NO_SUPPORT naming the API, as libvirt does for an API
            /// the connection's driver lacks, until a driver implements it.
            /// `C` is the server's per-call context.
            pub trait $Calls<C: ?Sized> {
                $(
                    $(#[$m])*
                    #[doc = concat!("`REMOTE_PROC_", stringify!($wire), "` (", stringify!($num), ").")]
                    fn $method(&self, _cx: &C, _args: $args) -> Result<$ret, RemoteError> {
                        Err(RemoteError::no_support(&Procedure::$variant.api_name()))
                    }
                )*
            }

            impl<C: ?Sized> $Calls<C> for Unserved {}
        )*

        /// The drivers a server has, one per group of the table. A group a
        /// server has no driver for is [`Unserved`]: every call of it
        /// answers VIR_ERR_NO_SUPPORT.
        pub trait Drivers<C: ?Sized> {
            $(
                $(#[$gm])*
                fn $group(&self) -> &dyn $Calls<C> {
                    &Unserved
                }
            )*
        }

        /// Runs a decoded CALL on the driver its procedure belongs to.
        pub fn dispatch<C: ?Sized, D: Drivers<C> + ?Sized>(
            drivers: &D,
            cx: &C,
            args: Args,
        ) -> Result<Ret, RemoteError> {
            match args {
                $($( Args::$variant(a) => drivers.$group().$method(cx, a).map(Ret::$variant), )*)*
            }
        }

        impl Procedure {
            /// Whether the call changes something, so that a read-only
            /// connection may not make it (the table's ACL column).
            pub fn changes_state(self) -> bool {
                match self {
                    $($( Self::$variant => acl_changes!($acl), )*)*
                }
            }
        }

        procedures_core! { $($( $(#[$m])* $variant ($wire) = $num : $args => $ret; )*)* }
    };
}

macro_rules! procedures_core {
    ($( $(#[$m:meta])* $variant:ident ($wire:ident) = $num:literal : $args:ty => $ret:ty; )*) => {
        /// `enum remote_procedure`: the procedures rvirt knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Procedure {
            $( $(#[$m])* $variant = $num, )*
        }

        impl Procedure {
            /// The procedure with this number, if rvirt knows it.
            pub fn from_i32(n: i32) -> Option<Self> {
                match n {
                    $( $num => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// Its number on the wire.
            pub fn number(self) -> i32 {
                self as i32
            }

            /// libvirt's name for it (`REMOTE_PROC_CONNECT_OPEN`).
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => concat!("REMOTE_PROC_", stringify!($wire)), )*
                }
            }

            /// Every procedure in the table.
            pub const ALL: &'static [Procedure] = &[ $( Self::$variant, )* ];
        }

        /// One marker type per procedure, for [`crate::client::Client::call`].
        pub mod procs {
            use super::*;
            $(
                $(#[$m])*
                #[derive(Debug, Clone, Copy)]
                pub struct $variant;
                impl RemoteProcedure for $variant {
                    const PROC: Procedure = Procedure::$variant;
                    type Args = $args;
                    type Ret = $ret;
                }
            )*
        }

        /// A decoded CALL (or event MESSAGE) body, by procedure.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Args {
            $( $variant($args), )*
        }

        /// A decoded successful REPLY body, by procedure.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Ret {
            $( $variant($ret), )*
        }

        impl Args {
            /// Decodes a whole CALL payload of procedure `p`.
            pub fn decode(p: Procedure, payload: &[u8]) -> Result<Self, XdrError> {
                let mut r = Reader::new(payload);
                let v = match p {
                    $( Procedure::$variant => Self::$variant(<$args as Xdr>::decode(&mut r)?), )*
                };
                r.finish()?;
                Ok(v)
            }

            /// Encodes the body (without header).
            pub fn encode(&self) -> Vec<u8> {
                let mut out = Vec::new();
                match self {
                    $( Self::$variant(v) => v.encode(&mut out), )*
                }
                out
            }

            /// The procedure this body belongs to.
            pub fn procedure(&self) -> Procedure {
                match self {
                    $( Self::$variant(_) => Procedure::$variant, )*
                }
            }
        }

        impl Ret {
            /// Decodes a whole successful REPLY payload of procedure `p`.
            pub fn decode(p: Procedure, payload: &[u8]) -> Result<Self, XdrError> {
                let mut r = Reader::new(payload);
                let v = match p {
                    $( Procedure::$variant => Self::$variant(<$ret as Xdr>::decode(&mut r)?), )*
                };
                r.finish()?;
                Ok(v)
            }

            /// Encodes the body (without header).
            pub fn encode(&self) -> Vec<u8> {
                let mut out = Vec::new();
                match self {
                    $( Self::$variant(v) => v.encode(&mut out), )*
                }
                out
            }

            /// The procedure this body belongs to.
            pub fn procedure(&self) -> Procedure {
                match self {
                    $( Self::$variant(_) => Procedure::$variant, )*
                }
            }
        }
    };
}

procedures! {
    /// Connection set-up and teardown, answered by the server itself.
    connection: ConnectionCalls {
        ConnectOpen(CONNECT_OPEN) = 1: ConnectOpenArgs => (), r, connect_open;
        ConnectClose(CONNECT_CLOSE) = 2: () => (), r, connect_close;
        ConnectSupportsFeature(CONNECT_SUPPORTS_FEATURE) = 60: ConnectSupportsFeatureArgs => ConnectSupportsFeatureRet, r, connect_supports_feature;
        AuthList(AUTH_LIST) = 66: () => AuthListRet, r, auth_list;
        ConnectIsSecure(CONNECT_IS_SECURE) = 149: () => ConnectIsSecureRet, r, connect_is_secure;
        ConnectRegisterCloseCallback(CONNECT_REGISTER_CLOSE_CALLBACK) = 360: () => (), r, connect_register_close_callback;
        ConnectUnregisterCloseCallback(CONNECT_UNREGISTER_CLOSE_CALLBACK) = 361: () => (), r, connect_unregister_close_callback;
    }
    /// The host and the hypervisor: versions, capabilities, node facts.
    host: HostCalls {
        ConnectGetType(CONNECT_GET_TYPE) = 3: () => TypeRet, r, connect_get_type;
        ConnectGetVersion(CONNECT_GET_VERSION) = 4: () => ConnectGetVersionRet, r, connect_get_version;
        ConnectGetMaxVcpus(CONNECT_GET_MAX_VCPUS) = 5: ConnectGetMaxVcpusArgs => ConnectGetMaxVcpusRet, r, connect_get_max_vcpus;
        NodeGetInfo(NODE_GET_INFO) = 6: () => NodeGetInfoRet, r, node_get_info;
        ConnectGetCapabilities(CONNECT_GET_CAPABILITIES) = 7: () => CapabilitiesRet, r, connect_get_capabilities;
        ConnectGetHostname(CONNECT_GET_HOSTNAME) = 59: () => ConnectGetHostnameRet, r, connect_get_hostname;
        ConnectGetUri(CONNECT_GET_URI) = 110: () => ConnectGetUriRet, r, connect_get_uri;
        NodeGetSecurityModel(NODE_GET_SECURITY_MODEL) = 122: () => NodeGetSecurityModelRet, r, node_get_security_model;
        ConnectGetLibVersion(CONNECT_GET_LIB_VERSION) = 157: () => ConnectGetLibVersionRet, r, connect_get_lib_version;
        ConnectBaselineCpu(CONNECT_BASELINE_CPU) = 162: ConnectBaselineCpuArgs => ConnectBaselineCpuRet, r, connect_baseline_cpu;
        ConnectGetSysinfo(CONNECT_GET_SYSINFO) = 203: ConnectGetSysinfoArgs => ConnectGetSysinfoRet, r, connect_get_sysinfo;
        NodeGetCpuMap(NODE_GET_CPU_MAP) = 293: NodeGetCpuMapArgs => NodeGetCpuMapRet, r, node_get_cpu_map;
        ConnectGetDomainCapabilities(CONNECT_GET_DOMAIN_CAPABILITIES) = 342: ConnectGetDomainCapabilitiesArgs => CapabilitiesRet, r, connect_get_domain_capabilities;
        NodeGetCellsFreeMemory(NODE_GET_CELLS_FREE_MEMORY) = 101: NodeGetCellsFreeMemoryArgs => NodeGetCellsFreeMemoryRet, r, node_get_cells_free_memory;
        NodeGetFreeMemory(NODE_GET_FREE_MEMORY) = 102: () => NodeGetFreeMemoryRet, r, node_get_free_memory;
        NodeGetCpuStats(NODE_GET_CPU_STATS) = 227: NodeGetCpuStatsArgs => NodeStatsRet, r, node_get_cpu_stats;
        NodeGetMemoryStats(NODE_GET_MEMORY_STATS) = 228: NodeGetMemoryStatsArgs => NodeStatsRet, r, node_get_memory_stats;
    }
    /// Domains: definitions, lifecycle, queries, consoles, domain events.
    domain: DomainCalls {
        DomainCreate(DOMAIN_CREATE) = 9: DomainArgs => (), w, domain_create;
        DomainCreateXml(DOMAIN_CREATE_XML) = 10: DomainCreateXmlArgs => DomainRet, w, domain_create_xml;
        DomainDefineXml(DOMAIN_DEFINE_XML) = 11: DomainDefineXmlArgs => DomainRet, w, domain_define_xml;
        DomainDestroy(DOMAIN_DESTROY) = 12: DomainArgs => (), w, domain_destroy;
        DomainGetXmlDesc(DOMAIN_GET_XML_DESC) = 14: DomainFlagsArgs => XmlRet, r, domain_get_xml_desc;
        DomainGetAutostart(DOMAIN_GET_AUTOSTART) = 15: DomainArgs => DomainGetAutostartRet, r, domain_get_autostart;
        DomainGetInfo(DOMAIN_GET_INFO) = 16: DomainArgs => DomainGetInfoRet, r, domain_get_info;
        DomainGetMaxMemory(DOMAIN_GET_MAX_MEMORY) = 17: DomainArgs => DomainGetMaxMemoryRet, r, domain_get_max_memory;
        DomainGetMaxVcpus(DOMAIN_GET_MAX_VCPUS) = 18: DomainArgs => NumRet, r, domain_get_max_vcpus;
        DomainGetOsType(DOMAIN_GET_OS_TYPE) = 19: DomainArgs => TypeRet, r, domain_get_os_type;
        DomainGetVcpus(DOMAIN_GET_VCPUS) = 20: DomainGetVcpusArgs => DomainGetVcpusRet, r, domain_get_vcpus;
        ConnectListDefinedDomains(CONNECT_LIST_DEFINED_DOMAINS) = 21: ConnectListDefinedDomainsArgs => ConnectListDefinedDomainsRet, r, connect_list_defined_domains;
        DomainLookupById(DOMAIN_LOOKUP_BY_ID) = 22: DomainLookupByIdArgs => DomainRet, r, domain_lookup_by_id;
        DomainLookupByName(DOMAIN_LOOKUP_BY_NAME) = 23: DomainLookupByNameArgs => DomainRet, r, domain_lookup_by_name;
        DomainLookupByUuid(DOMAIN_LOOKUP_BY_UUID) = 24: DomainLookupByUuidArgs => DomainRet, r, domain_lookup_by_uuid;
        ConnectNumOfDefinedDomains(CONNECT_NUM_OF_DEFINED_DOMAINS) = 25: () => NumRet, r, connect_num_of_defined_domains;
        DomainReboot(DOMAIN_REBOOT) = 27: DomainFlagsArgs => (), w, domain_reboot;
        DomainResume(DOMAIN_RESUME) = 28: DomainArgs => (), w, domain_resume;
        DomainSetAutostart(DOMAIN_SET_AUTOSTART) = 29: DomainSetAutostartArgs => (), w, domain_set_autostart;
        DomainShutdown(DOMAIN_SHUTDOWN) = 33: DomainArgs => (), w, domain_shutdown;
        DomainSuspend(DOMAIN_SUSPEND) = 34: DomainArgs => (), w, domain_suspend;
        DomainUndefine(DOMAIN_UNDEFINE) = 35: DomainArgs => (), w, domain_undefine;
        ConnectListDomains(CONNECT_LIST_DOMAINS) = 37: ConnectListDomainsArgs => ConnectListDomainsRet, r, connect_list_domains;
        ConnectNumOfDomains(CONNECT_NUM_OF_DOMAINS) = 51: () => NumRet, r, connect_num_of_domains;
        DomainGetSchedulerType(DOMAIN_GET_SCHEDULER_TYPE) = 56: DomainArgs => DomainGetSchedulerTypeRet, r, domain_get_scheduler_type;
        ConnectDomainEventRegister(CONNECT_DOMAIN_EVENT_REGISTER) = 105: () => ConnectDomainEventRegisterRet, r, connect_domain_event_register;
        ConnectDomainEventDeregister(CONNECT_DOMAIN_EVENT_DEREGISTER) = 106: () => ConnectDomainEventRegisterRet, r, connect_domain_event_deregister;
        DomainGetSecurityLabel(DOMAIN_GET_SECURITY_LABEL) = 121: DomainArgs => DomainGetSecurityLabelRet, r, domain_get_security_label;
        ConnectDomainXmlFromNative(CONNECT_DOMAIN_XML_FROM_NATIVE) = 135: ConnectDomainXmlFromNativeArgs => ConnectDomainXmlFromNativeRet, r, connect_domain_xml_from_native;
        ConnectDomainXmlToNative(CONNECT_DOMAIN_XML_TO_NATIVE) = 136: ConnectDomainXmlToNativeArgs => ConnectDomainXmlToNativeRet, r, connect_domain_xml_to_native;
        DomainIsActive(DOMAIN_IS_ACTIVE) = 150: DomainArgs => DomainIsActiveRet, r, domain_is_active;
        DomainIsPersistent(DOMAIN_IS_PERSISTENT) = 151: DomainArgs => DomainIsPersistentRet, r, domain_is_persistent;
        DomainHasManagedSaveImage(DOMAIN_HAS_MANAGED_SAVE_IMAGE) = 183: DomainFlagsArgs => DomainHasManagedSaveImageRet, r, domain_has_managed_save_image;
        DomainSnapshotNum(DOMAIN_SNAPSHOT_NUM) = 187: DomainFlagsArgs => NumRet, r, domain_snapshot_num;
        DomainGetBlockInfo(DOMAIN_GET_BLOCK_INFO) = 194: DomainGetBlockInfoArgs => DomainGetBlockInfoRet, r, domain_get_block_info;
        DomainCreateWithFlags(DOMAIN_CREATE_WITH_FLAGS) = 196: DomainFlagsArgs => DomainRet, w, domain_create_with_flags;
        DomainGetVcpusFlags(DOMAIN_GET_VCPUS_FLAGS) = 200: DomainFlagsArgs => NumRet, r, domain_get_vcpus_flags;
        /// Opens a console stream: data then flows as STREAM messages.
        DomainOpenConsole(DOMAIN_OPEN_CONSOLE) = 201: DomainOpenConsoleArgs => (), w, domain_open_console;
        /// The picture as a stream after the reply (its MIME type).
        DomainScreenshot(DOMAIN_SCREENSHOT) = 211: DomainScreenshotArgs => DomainScreenshotRet, w, domain_screenshot;
        /// A connected socket to the graphics server, passed with the
        /// reply (REPLY_WITH_FDS).
        DomainOpenGraphicsFd(DOMAIN_OPEN_GRAPHICS_FD) = 343: DomainOpenGraphicsArgs => (), w, domain_open_graphics_fd;
        /// The socket passed with the call (CALL_WITH_FDS) becomes a client
        /// of the graphics server.
        DomainOpenGraphics(DOMAIN_OPEN_GRAPHICS) = 249: DomainOpenGraphicsArgs => (), w, domain_open_graphics;
        DomainIsUpdated(DOMAIN_IS_UPDATED) = 202: DomainArgs => DomainIsUpdatedRet, r, domain_is_updated;
        DomainGetState(DOMAIN_GET_STATE) = 212: DomainFlagsArgs => DomainGetStateRet, r, domain_get_state;
        DomainGetControlInfo(DOMAIN_GET_CONTROL_INFO) = 229: DomainFlagsArgs => DomainGetControlInfoRet, r, domain_get_control_info;
        DomainGetVcpuPinInfo(DOMAIN_GET_VCPU_PIN_INFO) = 230: DomainGetVcpuPinInfoArgs => DomainGetVcpuPinInfoRet, r, domain_get_vcpu_pin_info;
        DomainUndefineFlags(DOMAIN_UNDEFINE_FLAGS) = 231: DomainFlagsArgs => (), w, domain_undefine_flags;
        DomainDestroyFlags(DOMAIN_DESTROY_FLAGS) = 234: DomainFlagsArgs => (), w, domain_destroy_flags;
        DomainReset(DOMAIN_RESET) = 245: DomainFlagsArgs => (), w, domain_reset;
        DomainInjectNmi(DOMAIN_INJECT_NMI) = 210: DomainFlagsArgs => (), w, domain_inject_nmi;
        DomainShutdownFlags(DOMAIN_SHUTDOWN_FLAGS) = 258: DomainFlagsArgs => (), w, domain_shutdown_flags;
        DomainSetMetadata(DOMAIN_SET_METADATA) = 264: DomainSetMetadataArgs => (), w, domain_set_metadata;
        DomainGetMetadata(DOMAIN_GET_METADATA) = 265: DomainGetMetadataArgs => DomainGetMetadataRet, r, domain_get_metadata;
        ConnectListAllDomains(CONNECT_LIST_ALL_DOMAINS) = 273: ConnectListAllDomainsArgs => ConnectListAllDomainsRet, r, connect_list_all_domains;
        DomainGetHostname(DOMAIN_GET_HOSTNAME) = 277: DomainFlagsArgs => DomainGetHostnameRet, r, domain_get_hostname;
        DomainGetSecurityLabelList(DOMAIN_GET_SECURITY_LABEL_LIST) = 278: DomainArgs => DomainGetSecurityLabelListRet, r, domain_get_security_label_list;
        ConnectDomainEventCallbackRegisterAny(CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) = 316: ConnectDomainEventCallbackRegisterAnyArgs => CallbackIdRet, r, connect_domain_event_callback_register_any;
        ConnectDomainEventCallbackDeregisterAny(CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY) = 317: CallbackIdArgs => (), r, connect_domain_event_callback_deregister_any;
        ConnectGetAllDomainStats(CONNECT_GET_ALL_DOMAIN_STATS) = 344: ConnectGetAllDomainStatsArgs => ConnectGetAllDomainStatsRet, r, connect_get_all_domain_stats;
        DomainDefineXmlFlags(DOMAIN_DEFINE_XML_FLAGS) = 350: DomainDefineXmlFlagsArgs => DomainRet, w, domain_define_xml_flags;
        DomainGetMessages(DOMAIN_GET_MESSAGES) = 426: DomainFlagsArgs => DomainGetMessagesRet, r, domain_get_messages;
        DomainAttachDevice(DOMAIN_ATTACH_DEVICE) = 8: DomainDeviceArgs => (), w, domain_attach_device;
        DomainDetachDevice(DOMAIN_DETACH_DEVICE) = 13: DomainDeviceArgs => (), w, domain_detach_device;
        DomainSetMaxMemory(DOMAIN_SET_MAX_MEMORY) = 30: DomainSetMemoryArgs => (), w, domain_set_max_memory;
        DomainSetMemory(DOMAIN_SET_MEMORY) = 31: DomainSetMemoryArgs => (), w, domain_set_memory;
        DomainSetVcpus(DOMAIN_SET_VCPUS) = 32: DomainSetVcpusArgs => (), w, domain_set_vcpus;
        DomainBlockStats(DOMAIN_BLOCK_STATS) = 64: DomainBlockStatsArgs => DomainBlockStatsRet, r, domain_block_stats;
        DomainInterfaceStats(DOMAIN_INTERFACE_STATS) = 65: DomainInterfaceStatsArgs => DomainInterfaceStatsRet, r, domain_interface_stats;
        DomainMemoryStats(DOMAIN_MEMORY_STATS) = 159: DomainMemoryStatsArgs => DomainMemoryStatsRet, r, domain_memory_stats;
        DomainAttachDeviceFlags(DOMAIN_ATTACH_DEVICE_FLAGS) = 160: DomainDeviceFlagsArgs => (), w, domain_attach_device_flags;
        DomainDetachDeviceFlags(DOMAIN_DETACH_DEVICE_FLAGS) = 161: DomainDeviceFlagsArgs => (), w, domain_detach_device_flags;
        DomainGetJobInfo(DOMAIN_GET_JOB_INFO) = 163: DomainArgs => DomainGetJobInfoRet, r, domain_get_job_info;
        DomainUpdateDeviceFlags(DOMAIN_UPDATE_DEVICE_FLAGS) = 174: DomainDeviceFlagsArgs => (), w, domain_update_device_flags;
        DomainSetVcpusFlags(DOMAIN_SET_VCPUS_FLAGS) = 199: DomainSetVcpusFlagsArgs => (), w, domain_set_vcpus_flags;
        DomainSetMemoryFlags(DOMAIN_SET_MEMORY_FLAGS) = 204: DomainSetMemoryFlagsArgs => (), w, domain_set_memory_flags;
        DomainSetMemoryStatsPeriod(DOMAIN_SET_MEMORY_STATS_PERIOD) = 308: DomainSetMemoryStatsPeriodArgs => (), w, domain_set_memory_stats_period;
        DomainSnapshotLookupByName(DOMAIN_SNAPSHOT_LOOKUP_BY_NAME) = 189: DomainSnapshotLookupByNameArgs => DomainSnapshotRet, r, domain_snapshot_lookup_by_name;
        DomainListAllSnapshots(DOMAIN_LIST_ALL_SNAPSHOTS) = 274: DomainListAllSnapshotsArgs => DomainListAllSnapshotsRet, r, domain_list_all_snapshots;
        DomainSnapshotCreateXml(DOMAIN_SNAPSHOT_CREATE_XML) = 185: DomainSnapshotCreateXmlArgs => DomainSnapshotRet, w, domain_snapshot_create_xml;
        DomainSnapshotGetXmlDesc(DOMAIN_SNAPSHOT_GET_XML_DESC) = 186: DomainSnapshotFlagsArgs => XmlRet, r, domain_snapshot_get_xml_desc;
        /// `{ int result; }`.
        DomainHasCurrentSnapshot(DOMAIN_HAS_CURRENT_SNAPSHOT) = 190: DomainFlagsArgs => NumRet, r, domain_has_current_snapshot;
        DomainSnapshotCurrent(DOMAIN_SNAPSHOT_CURRENT) = 191: DomainFlagsArgs => DomainSnapshotRet, r, domain_snapshot_current;
        DomainSnapshotDelete(DOMAIN_SNAPSHOT_DELETE) = 193: DomainSnapshotFlagsArgs => (), w, domain_snapshot_delete;
        DomainSnapshotGetParent(DOMAIN_SNAPSHOT_GET_PARENT) = 244: DomainSnapshotFlagsArgs => DomainSnapshotRet, r, domain_snapshot_get_parent;
        DomainSnapshotNumChildren(DOMAIN_SNAPSHOT_NUM_CHILDREN) = 246: DomainSnapshotFlagsArgs => NumRet, r, domain_snapshot_num_children;
        /// `{ int current; }`.
        DomainSnapshotIsCurrent(DOMAIN_SNAPSHOT_IS_CURRENT) = 271: DomainSnapshotFlagsArgs => NumRet, r, domain_snapshot_is_current;
        /// `{ int metadata; }`.
        DomainSnapshotHasMetadata(DOMAIN_SNAPSHOT_HAS_METADATA) = 272: DomainSnapshotFlagsArgs => NumRet, r, domain_snapshot_has_metadata;
        DomainBlockCommit(DOMAIN_BLOCK_COMMIT) = 290: DomainBlockCommitArgs => (), w, domain_block_commit;
        DomainGetBlockJobInfo(DOMAIN_GET_BLOCK_JOB_INFO) = 238: DomainBlockJobArgs => DomainGetBlockJobInfoRet, r, domain_get_block_job_info;
        DomainBlockJobAbort(DOMAIN_BLOCK_JOB_ABORT) = 237: DomainBlockJobArgs => (), w, domain_block_job_abort;
        DomainSnapshotListAllChildren(DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN) = 275: DomainSnapshotListAllChildrenArgs => DomainListAllSnapshotsRet, r, domain_snapshot_list_all_children;
        /// Addresses of the guest's NICs (from the networks' DHCP leases).
        DomainInterfaceAddresses(DOMAIN_INTERFACE_ADDRESSES) = 353: DomainInterfaceAddressesArgs => DomainInterfaceAddressesRet, r, domain_interface_addresses;
    }
    /// Virtual networks.
    network: NetworkCalls {
        ConnectListDefinedNetworks(CONNECT_LIST_DEFINED_NETWORKS) = 36: ConnectListNetworksArgs => ConnectListNetworksRet, r, connect_list_defined_networks;
        ConnectListNetworks(CONNECT_LIST_NETWORKS) = 38: ConnectListNetworksArgs => ConnectListNetworksRet, r, connect_list_networks;
        NetworkCreate(NETWORK_CREATE) = 39: NetworkArgs => (), w, network_create;
        NetworkCreateXml(NETWORK_CREATE_XML) = 40: NetworkXmlArgs => NetworkRet, w, network_create_xml;
        NetworkDefineXml(NETWORK_DEFINE_XML) = 41: NetworkXmlArgs => NetworkRet, w, network_define_xml;
        NetworkDestroy(NETWORK_DESTROY) = 42: NetworkArgs => (), w, network_destroy;
        NetworkGetXmlDesc(NETWORK_GET_XML_DESC) = 43: NetworkGetXmlDescArgs => XmlRet, r, network_get_xml_desc;
        NetworkGetAutostart(NETWORK_GET_AUTOSTART) = 44: NetworkArgs => NetworkGetAutostartRet, r, network_get_autostart;
        NetworkGetBridgeName(NETWORK_GET_BRIDGE_NAME) = 45: NetworkArgs => NetworkGetBridgeNameRet, r, network_get_bridge_name;
        NetworkLookupByName(NETWORK_LOOKUP_BY_NAME) = 46: NameArgs => NetworkRet, r, network_lookup_by_name;
        NetworkLookupByUuid(NETWORK_LOOKUP_BY_UUID) = 47: UuidArgs => NetworkRet, r, network_lookup_by_uuid;
        NetworkSetAutostart(NETWORK_SET_AUTOSTART) = 48: NetworkSetAutostartArgs => (), w, network_set_autostart;
        NetworkUndefine(NETWORK_UNDEFINE) = 49: NetworkArgs => (), w, network_undefine;
        ConnectNumOfDefinedNetworks(CONNECT_NUM_OF_DEFINED_NETWORKS) = 50: () => NumRet, r, connect_num_of_defined_networks;
        ConnectNumOfNetworks(CONNECT_NUM_OF_NETWORKS) = 52: () => NumRet, r, connect_num_of_networks;
        NetworkIsActive(NETWORK_IS_ACTIVE) = 152: NetworkArgs => NetworkIsActiveRet, r, network_is_active;
        NetworkIsPersistent(NETWORK_IS_PERSISTENT) = 153: NetworkArgs => NetworkIsPersistentRet, r, network_is_persistent;
        NetworkUpdate(NETWORK_UPDATE) = 291: NetworkUpdateArgs => (), w, network_update;
        NetworkGetDhcpLeases(NETWORK_GET_DHCP_LEASES) = 341: NetworkGetDhcpLeasesArgs => NetworkGetDhcpLeasesRet, r, network_get_dhcp_leases;
        ConnectListAllNetworks(CONNECT_LIST_ALL_NETWORKS) = 283: ConnectListAllArgs => ConnectListAllNetworksRet, r, connect_list_all_networks;
        ConnectNetworkEventRegisterAny(CONNECT_NETWORK_EVENT_REGISTER_ANY) = 313: ConnectNetworkEventRegisterAnyArgs => CallbackIdRet, r, connect_network_event_register_any;
        ConnectNetworkEventDeregisterAny(CONNECT_NETWORK_EVENT_DEREGISTER_ANY) = 314: CallbackIdArgs => (), r, connect_network_event_deregister_any;
    }
    /// Storage pools and volumes.
    storage: StorageCalls {
        ConnectNumOfStoragePools(CONNECT_NUM_OF_STORAGE_POOLS) = 71: () => NumRet, r, connect_num_of_storage_pools;
        ConnectListStoragePools(CONNECT_LIST_STORAGE_POOLS) = 72: ConnectListStoragePoolsArgs => ConnectListStoragePoolsRet, r, connect_list_storage_pools;
        ConnectNumOfDefinedStoragePools(CONNECT_NUM_OF_DEFINED_STORAGE_POOLS) = 73: () => NumRet, r, connect_num_of_defined_storage_pools;
        ConnectListDefinedStoragePools(CONNECT_LIST_DEFINED_STORAGE_POOLS) = 74: ConnectListStoragePoolsArgs => ConnectListStoragePoolsRet, r, connect_list_defined_storage_pools;
        StoragePoolCreateXml(STORAGE_POOL_CREATE_XML) = 76: StoragePoolXmlArgs => StoragePoolRet, w, storage_pool_create_xml;
        StoragePoolDefineXml(STORAGE_POOL_DEFINE_XML) = 77: StoragePoolXmlArgs => StoragePoolRet, w, storage_pool_define_xml;
        StoragePoolCreate(STORAGE_POOL_CREATE) = 78: StoragePoolFlagsArgs => (), w, storage_pool_create;
        StoragePoolBuild(STORAGE_POOL_BUILD) = 79: StoragePoolFlagsArgs => (), w, storage_pool_build;
        StoragePoolDestroy(STORAGE_POOL_DESTROY) = 80: StoragePoolArgs => (), w, storage_pool_destroy;
        StoragePoolDelete(STORAGE_POOL_DELETE) = 81: StoragePoolFlagsArgs => (), w, storage_pool_delete;
        StoragePoolUndefine(STORAGE_POOL_UNDEFINE) = 82: StoragePoolArgs => (), w, storage_pool_undefine;
        StoragePoolRefresh(STORAGE_POOL_REFRESH) = 83: StoragePoolFlagsArgs => (), w, storage_pool_refresh;
        StoragePoolLookupByName(STORAGE_POOL_LOOKUP_BY_NAME) = 84: NameArgs => StoragePoolRet, r, storage_pool_lookup_by_name;
        StoragePoolLookupByUuid(STORAGE_POOL_LOOKUP_BY_UUID) = 85: UuidArgs => StoragePoolRet, r, storage_pool_lookup_by_uuid;
        StoragePoolLookupByVolume(STORAGE_POOL_LOOKUP_BY_VOLUME) = 86: StorageVolArgs => StoragePoolRet, r, storage_pool_lookup_by_volume;
        StoragePoolGetInfo(STORAGE_POOL_GET_INFO) = 87: StoragePoolArgs => StoragePoolGetInfoRet, r, storage_pool_get_info;
        StoragePoolGetXmlDesc(STORAGE_POOL_GET_XML_DESC) = 88: StoragePoolFlagsArgs => XmlRet, r, storage_pool_get_xml_desc;
        StoragePoolGetAutostart(STORAGE_POOL_GET_AUTOSTART) = 89: StoragePoolArgs => StoragePoolGetAutostartRet, r, storage_pool_get_autostart;
        StoragePoolSetAutostart(STORAGE_POOL_SET_AUTOSTART) = 90: StoragePoolSetAutostartArgs => (), w, storage_pool_set_autostart;
        StoragePoolNumOfVolumes(STORAGE_POOL_NUM_OF_VOLUMES) = 91: StoragePoolArgs => NumRet, r, storage_pool_num_of_volumes;
        StoragePoolListVolumes(STORAGE_POOL_LIST_VOLUMES) = 92: StoragePoolListVolumesArgs => StoragePoolListVolumesRet, r, storage_pool_list_volumes;
        StorageVolCreateXml(STORAGE_VOL_CREATE_XML) = 93: StorageVolCreateXmlArgs => StorageVolRet, w, storage_vol_create_xml;
        StorageVolDelete(STORAGE_VOL_DELETE) = 94: StorageVolFlagsArgs => (), w, storage_vol_delete;
        StorageVolLookupByName(STORAGE_VOL_LOOKUP_BY_NAME) = 95: StorageVolLookupByNameArgs => StorageVolRet, r, storage_vol_lookup_by_name;
        StorageVolLookupByKey(STORAGE_VOL_LOOKUP_BY_KEY) = 96: StorageVolLookupByKeyArgs => StorageVolRet, r, storage_vol_lookup_by_key;
        StorageVolLookupByPath(STORAGE_VOL_LOOKUP_BY_PATH) = 97: StorageVolLookupByPathArgs => StorageVolRet, r, storage_vol_lookup_by_path;
        StorageVolGetInfo(STORAGE_VOL_GET_INFO) = 98: StorageVolArgs => StorageVolGetInfoRet, r, storage_vol_get_info;
        StorageVolGetXmlDesc(STORAGE_VOL_GET_XML_DESC) = 99: StorageVolFlagsArgs => XmlRet, r, storage_vol_get_xml_desc;
        StorageVolGetPath(STORAGE_VOL_GET_PATH) = 100: StorageVolArgs => StorageVolGetPathRet, r, storage_vol_get_path;
        StorageVolCreateXmlFrom(STORAGE_VOL_CREATE_XML_FROM) = 125: StorageVolCreateXmlFromArgs => StorageVolRet, w, storage_vol_create_xml_from;
        StoragePoolIsActive(STORAGE_POOL_IS_ACTIVE) = 154: StoragePoolArgs => StoragePoolIsActiveRet, r, storage_pool_is_active;
        StoragePoolIsPersistent(STORAGE_POOL_IS_PERSISTENT) = 155: StoragePoolArgs => StoragePoolIsPersistentRet, r, storage_pool_is_persistent;
        StorageVolWipe(STORAGE_VOL_WIPE) = 165: StorageVolFlagsArgs => (), w, storage_vol_wipe;
        /// Opens an upload stream: the client's STREAM messages are written
        /// into the volume.
        StorageVolUpload(STORAGE_VOL_UPLOAD) = 208: StorageVolStreamArgs => (), w, storage_vol_upload;
        /// Opens a download stream: the volume's bytes flow as STREAM messages.
        StorageVolDownload(STORAGE_VOL_DOWNLOAD) = 209: StorageVolStreamArgs => (), w, storage_vol_download;
        StorageVolWipePattern(STORAGE_VOL_WIPE_PATTERN) = 259: StorageVolWipePatternArgs => (), w, storage_vol_wipe_pattern;
        StorageVolResize(STORAGE_VOL_RESIZE) = 260: StorageVolResizeArgs => (), w, storage_vol_resize;
        ConnectListAllStoragePools(CONNECT_LIST_ALL_STORAGE_POOLS) = 281: ConnectListAllArgs => ConnectListAllStoragePoolsRet, r, connect_list_all_storage_pools;
        StoragePoolListAllVolumes(STORAGE_POOL_LIST_ALL_VOLUMES) = 282: StoragePoolListAllVolumesArgs => StoragePoolListAllVolumesRet, r, storage_pool_list_all_volumes;
        ConnectStoragePoolEventRegisterAny(CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY) = 368: ConnectStoragePoolEventRegisterAnyArgs => CallbackIdRet, r, connect_storage_pool_event_register_any;
        ConnectStoragePoolEventDeregisterAny(CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY) = 369: CallbackIdArgs => (), r, connect_storage_pool_event_deregister_any;
        StorageVolGetInfoFlags(STORAGE_VOL_GET_INFO_FLAGS) = 378: StorageVolFlagsArgs => StorageVolGetInfoRet, r, storage_vol_get_info_flags;
        StoragePoolLookupByTargetPath(STORAGE_POOL_LOOKUP_BY_TARGET_PATH) = 391: StoragePoolLookupByTargetPathArgs => StoragePoolRet, r, storage_pool_lookup_by_target_path;
        ConnectGetStoragePoolCapabilities(CONNECT_GET_STORAGE_POOL_CAPABILITIES) = 403: ConnectGetStoragePoolCapabilitiesArgs => ConnectGetStoragePoolCapabilitiesRet, r, connect_get_storage_pool_capabilities;
    }
    /// Host interfaces.
    interface: InterfaceCalls {
        ConnectListAllInterfaces(CONNECT_LIST_ALL_INTERFACES) = 284: ConnectListAllArgs => ConnectListAllInterfacesRet, r, connect_list_all_interfaces;
        InterfaceLookupByName(INTERFACE_LOOKUP_BY_NAME) = 128: NameArgs => InterfaceRet, r, interface_lookup_by_name;
        InterfaceLookupByMacString(INTERFACE_LOOKUP_BY_MAC_STRING) = 129: NameArgs => InterfaceRet, r, interface_lookup_by_mac_string;
    }
    /// Secrets.
    secret: SecretCalls {
        SecretLookupByUuid(SECRET_LOOKUP_BY_UUID) = 141: UuidArgs => SecretRet, r, secret_lookup_by_uuid;
        SecretLookupByUsage(SECRET_LOOKUP_BY_USAGE) = 147: SecretLookupByUsageArgs => SecretRet, r, secret_lookup_by_usage;
        ConnectListAllSecrets(CONNECT_LIST_ALL_SECRETS) = 287: ConnectListAllArgs => ConnectListAllSecretsRet, r, connect_list_all_secrets;
    }
    /// Network filters.
    nwfilter: NwfilterCalls {
        NwfilterLookupByName(NWFILTER_LOOKUP_BY_NAME) = 175: NameArgs => NwfilterRet, r, nwfilter_lookup_by_name;
        NwfilterLookupByUuid(NWFILTER_LOOKUP_BY_UUID) = 176: UuidArgs => NwfilterRet, r, nwfilter_lookup_by_uuid;
        ConnectListAllNwfilters(CONNECT_LIST_ALL_NWFILTERS) = 286: ConnectListAllArgs => ConnectListAllNwfiltersRet, r, connect_list_all_nwfilters;
    }
    /// Host devices.
    node_device: NodeDeviceCalls {
        ConnectListAllNodeDevices(CONNECT_LIST_ALL_NODE_DEVICES) = 285: ConnectListAllArgs => ConnectListAllNodeDevicesRet, r, connect_list_all_node_devices;
        NodeDeviceLookupByName(NODE_DEVICE_LOOKUP_BY_NAME) = 113: NameArgs => NodeDeviceRet, r, node_device_lookup_by_name;
        ConnectNodeDeviceEventRegisterAny(CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY) = 374: ConnectNodeDeviceEventRegisterAnyArgs => CallbackIdRet, r, connect_node_device_event_register_any;
        ConnectNodeDeviceEventDeregisterAny(CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY) = 375: CallbackIdArgs => (), r, connect_node_device_event_deregister_any;
    }
    /// Event MESSAGEs a server sends; a client never calls them.
    events: EventMessages {
        /// Legacy lifecycle event MESSAGE (no callback id).
        DomainEventLifecycle(DOMAIN_EVENT_LIFECYCLE) = 107: DomainEventLifecycleMsg => (), r, domain_event_lifecycle;
        /// Lifecycle event MESSAGE for a registered callback.
        DomainEventCallbackLifecycle(DOMAIN_EVENT_CALLBACK_LIFECYCLE) = 318: DomainEventCallbackLifecycleMsg => (), r, domain_event_callback_lifecycle;
        /// Reboot event MESSAGE for a registered callback.
        DomainEventCallbackReboot(DOMAIN_EVENT_CALLBACK_REBOOT) = 319: DomainEventCallbackRebootMsg => (), r, domain_event_callback_reboot;
        /// Watchdog event MESSAGE for a registered callback.
        DomainEventCallbackWatchdog(DOMAIN_EVENT_CALLBACK_WATCHDOG) = 321: DomainEventCallbackWatchdogMsg => (), r, domain_event_callback_watchdog;
        /// Tray change event MESSAGE (a CD-ROM's tray opened or closed) for a registered callback.
        DomainEventCallbackTrayChange(DOMAIN_EVENT_CALLBACK_TRAY_CHANGE) = 328: DomainEventCallbackTrayChangeMsg => (), r, domain_event_callback_tray_change;
        /// Block job event MESSAGE (the disk by path) for a registered callback.
        DomainEventCallbackBlockJob(DOMAIN_EVENT_CALLBACK_BLOCK_JOB) = 326: DomainEventCallbackBlockJobMsg => (), r, domain_event_callback_block_job;
        /// Device removed event MESSAGE (the device by alias) for a registered callback.
        DomainEventCallbackDeviceRemoved(DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED) = 333: DomainEventCallbackDeviceRemovedMsg => (), r, domain_event_callback_device_removed;
        /// Block job event MESSAGE (the disk by target) for a registered callback.
        DomainEventBlockJob2(DOMAIN_EVENT_BLOCK_JOB_2) = 339: DomainEventBlockJob2Msg => (), r, domain_event_block_job_2;
        /// Graphics (VNC client) event MESSAGE for a registered callback.
        DomainEventCallbackGraphics(DOMAIN_EVENT_CALLBACK_GRAPHICS) = 323: DomainEventCallbackGraphicsMsg => (), r, domain_event_callback_graphics;
        /// Network lifecycle event MESSAGE for a registered callback.
        NetworkEventLifecycle(NETWORK_EVENT_LIFECYCLE) = 315: NetworkEventLifecycleMsg => (), r, network_event_lifecycle;
        /// Storage pool lifecycle event MESSAGE for a registered callback.
        StoragePoolEventLifecycle(STORAGE_POOL_EVENT_LIFECYCLE) = 370: StoragePoolEventLifecycleMsg => (), r, storage_pool_event_lifecycle;
        /// Storage pool refresh event MESSAGE for a registered callback.
        StoragePoolEventRefresh(STORAGE_POOL_EVENT_REFRESH) = 373: StoragePoolEventRefreshMsg => (), r, storage_pool_event_refresh;
        /// The daemon tells a client why it is closing the connection.
        ConnectEventConnectionClosed(CONNECT_EVENT_CONNECTION_CLOSED) = 362: ConnectEventConnectionClosedMsg => (), r, connect_event_connection_closed;
    }
}

impl Procedure {
    /// The public API function behind it, as libvirt names it in
    /// VIR_ERR_NO_SUPPORT messages (`DOMAIN_GET_XML_DESC` -> `virDomainGetXMLDesc`).
    pub fn api_name(self) -> String {
        crate::names::api_name(self.name().trim_start_matches("REMOTE_PROC_"))
    }
}

impl std::fmt::Display for Procedure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(Procedure::from_i32(66), Some(Procedure::AuthList));
        assert_eq!(Procedure::AuthList.name(), "REMOTE_PROC_AUTH_LIST");
        assert_eq!(Procedure::from_i32(100_000), None);
        assert_eq!(Procedure::DomainGetMessages.number(), 426);
        for p in Procedure::ALL {
            assert_eq!(Procedure::from_i32(p.number()), Some(*p));
        }
    }

    #[test]
    fn the_acl_column_and_the_driver_groups() {
        assert!(Procedure::DomainCreate.changes_state());
        assert!(Procedure::DomainReset.changes_state());
        assert!(Procedure::DomainOpenConsole.changes_state());
        assert!(!Procedure::DomainGetXmlDesc.changes_state());
        assert!(!Procedure::StorageVolLookupByPath.changes_state());
        assert_eq!(Procedure::NetworkLookupByName.number(), 46);
        // The network procedures, as virsh 9.0 sends them (captured with
        // LIBVIRT_LOG_FILTERS=1:rpc.netclient against libvirtd).
        for (p, n) in [
            (Procedure::NetworkCreate, 39),
            (Procedure::NetworkCreateXml, 40),
            (Procedure::NetworkDefineXml, 41),
            (Procedure::NetworkDestroy, 42),
            (Procedure::NetworkGetXmlDesc, 43),
            (Procedure::NetworkGetAutostart, 44),
            (Procedure::NetworkGetBridgeName, 45),
            (Procedure::NetworkSetAutostart, 48),
            (Procedure::NetworkUndefine, 49),
            (Procedure::NetworkIsActive, 152),
            (Procedure::NetworkIsPersistent, 153),
            (Procedure::NetworkUpdate, 291),
            (Procedure::NetworkGetDhcpLeases, 341),
            (Procedure::DomainInterfaceAddresses, 353),
        ] {
            assert_eq!(p.number(), n, "{p}");
        }
        assert!(Procedure::NetworkUpdate.changes_state());
        assert!(!Procedure::NetworkGetDhcpLeases.changes_state());
        assert_eq!(Procedure::StoragePoolLookupByName.number(), 84);
        assert_eq!(Procedure::StorageVolLookupByPath.number(), 97);
        assert_eq!(Procedure::DomainGetVcpuPinInfo.number(), 230);
        assert_eq!(Procedure::DomainReset.number(), 245);
        assert_eq!(Procedure::DomainInjectNmi.number(), 210);
        assert_eq!(Procedure::DomainInjectNmi.api_name(), "virDomainInjectNMI");
        // A group without a driver answers NO_SUPPORT naming the API.
        struct NoDrivers;
        impl Drivers<()> for NoDrivers {}
        let e = dispatch(
            &NoDrivers,
            &(),
            Args::StorageVolLookupByPath(StorageVolLookupByPathArgs {
                path: "/var/lib/x.img".into(),
            }),
        )
        .unwrap_err();
        assert_eq!(e.code, crate::error::code::NO_SUPPORT);
        assert_eq!(
            e.to_string(),
            "this function is not supported by the connection driver: virStorageVolLookupByPath"
        );
    }

    #[test]
    fn storage_numbers_as_virsh_sends_them() {
        // Read off virsh 9.0's and libvirt-python's traffic to libvirtd
        // (LIBVIRT_DEBUG's RPC_CLIENT_MSG_TX_QUEUE lines).
        for (p, n) in [
            (Procedure::StoragePoolGetInfo, 87),
            (Procedure::StoragePoolIsActive, 154),
            (Procedure::StoragePoolIsPersistent, 155),
            (Procedure::StorageVolCreateXmlFrom, 125),
            (Procedure::StorageVolWipe, 165),
            (Procedure::StorageVolUpload, 208),
            (Procedure::StorageVolDownload, 209),
            (Procedure::StorageVolWipePattern, 259),
            (Procedure::StorageVolResize, 260),
            (Procedure::StoragePoolListAllVolumes, 282),
            (Procedure::StorageVolGetInfoFlags, 378),
            (Procedure::StoragePoolLookupByTargetPath, 391),
            (Procedure::ConnectGetStoragePoolCapabilities, 403),
        ] {
            assert_eq!(p.number(), n, "{p}");
        }
        assert_eq!(
            Procedure::StorageVolCreateXmlFrom.api_name(),
            "virStorageVolCreateXMLFrom"
        );
        assert!(Procedure::StorageVolDownload.changes_state());
        assert!(!Procedure::StoragePoolGetXmlDesc.changes_state());
    }

    #[test]
    fn api_names() {
        assert_eq!(
            Procedure::DomainGetXmlDesc.api_name(),
            "virDomainGetXMLDesc"
        );
        assert_eq!(Procedure::DomainShutdown.api_name(), "virDomainShutdown");
        assert_eq!(
            Procedure::DomainLookupByUuid.api_name(),
            "virDomainLookupByUUID"
        );
        assert_eq!(
            Procedure::NetworkGetDhcpLeases.api_name(),
            "virNetworkGetDHCPLeases"
        );
    }
}
