//! Argument, return and event structs of remote_protocol.x, for the
//! procedures rvirt serves. Field names and order follow the `.x` file
//! (in snake case); procedures with the same layout share one struct,
//! and the table in `procedures.rs` says which procedure uses which.

use crate::consts::{
    REMOTE_AUTH_TYPE_LIST_MAX, REMOTE_CPUMAPS_MAX, REMOTE_CPUMAP_MAX, REMOTE_CPU_BASELINE_MAX,
    REMOTE_DOMAIN_EVENT_GRAPHICS_IDENTITY_MAX, REMOTE_DOMAIN_INTERFACE_MAX,
    REMOTE_DOMAIN_IP_ADDR_MAX, REMOTE_DOMAIN_LIST_MAX, REMOTE_DOMAIN_MESSAGES_MAX,
    REMOTE_DOMAIN_SNAPSHOT_LIST_MAX, REMOTE_INTERFACE_LIST_MAX, REMOTE_NETWORK_DHCP_LEASES_MAX,
    REMOTE_NETWORK_LIST_MAX, REMOTE_NETWORK_NAME_LIST_MAX, REMOTE_NODE_DEVICE_LIST_MAX,
    REMOTE_NWFILTER_LIST_MAX, REMOTE_SECRET_LIST_MAX, REMOTE_SECURITY_DOI_MAX,
    REMOTE_SECURITY_LABEL_LIST_MAX, REMOTE_SECURITY_LABEL_MAX, REMOTE_SECURITY_MODEL_MAX,
    REMOTE_STORAGE_POOL_LIST_MAX, REMOTE_STORAGE_VOL_LIST_MAX, REMOTE_VCPUINFO_MAX,
};
use crate::types::{
    DomainStatsRecord, NonnullDomain, NonnullDomainSnapshot, NonnullInterface, NonnullNetwork,
    NonnullNodeDevice, NonnullNwfilter, NonnullSecret, NonnullStoragePool, NonnullStorageVol, Uuid,
    VcpuInfo,
};
use crate::xdr::{xdr_struct, CharArray, CharList, Opaque};

xdr_struct! {
    // ---- Shared shapes -------------------------------------------------

    /// `{ remote_nonnull_domain dom; }`: create, destroy, shutdown, suspend,
    /// resume, undefine, get_info, get_os_type, is_active, ...
    pub struct DomainArgs {
        pub dom: NonnullDomain,
    }

    /// `{ remote_nonnull_domain dom; unsigned int flags; }`: get_state,
    /// get_xml_desc, undefine_flags, destroy_flags, reboot, ...
    pub struct DomainFlagsArgs {
        pub dom: NonnullDomain,
        pub flags: u32,
    }

    /// `{ remote_nonnull_domain dom; }` returned by lookups, define, create.
    pub struct DomainRet {
        pub dom: NonnullDomain,
    }

    /// `{ int num; }`: counts (num_of_domains, snapshot_num, vcpus_flags, ...).
    pub struct NumRet {
        pub num: i32,
    }

    /// `{ remote_nonnull_string xml; }`: get_xml_desc.
    pub struct XmlRet {
        pub xml: String,
    }

    /// `{ remote_nonnull_string type; }`: connect_get_type, domain_get_os_type.
    pub struct TypeRet {
        pub type_: String,
    }

    // ---- Connection ----------------------------------------------------

    /// `remote_connect_open_args`.
    pub struct ConnectOpenArgs {
        /// The URI without transport and socket (`qemu:///system`).
        pub name: Option<String>,
        pub flags: u32,
    }

    /// `remote_auth_list_ret`: `remote_auth_type types<20>`.
    pub struct AuthListRet {
        pub types: Vec<i32> [REMOTE_AUTH_TYPE_LIST_MAX],
    }

    /// `remote_connect_supports_feature_args`.
    pub struct ConnectSupportsFeatureArgs {
        pub feature: i32,
    }

    /// `remote_connect_supports_feature_ret`.
    pub struct ConnectSupportsFeatureRet {
        pub supported: i32,
    }

    /// `remote_connect_get_version_ret`: major*1e6 + minor*1e3 + micro.
    pub struct ConnectGetVersionRet {
        pub hv_ver: u64,
    }

    /// `remote_connect_get_lib_version_ret`.
    pub struct ConnectGetLibVersionRet {
        pub lib_ver: u64,
    }

    /// `remote_connect_get_hostname_ret`.
    pub struct ConnectGetHostnameRet {
        pub hostname: String,
    }

    /// `remote_connect_get_uri_ret`.
    pub struct ConnectGetUriRet {
        pub uri: String,
    }

    /// `remote_connect_get_max_vcpus_args`.
    pub struct ConnectGetMaxVcpusArgs {
        pub type_: Option<String>,
    }

    /// `remote_connect_get_max_vcpus_ret`.
    pub struct ConnectGetMaxVcpusRet {
        pub max_vcpus: i32,
    }

    /// `remote_connect_get_capabilities_ret`, also
    /// `remote_connect_get_domain_capabilities_ret`.
    pub struct CapabilitiesRet {
        pub capabilities: String,
    }

    /// `remote_connect_get_domain_capabilities_args`.
    pub struct ConnectGetDomainCapabilitiesArgs {
        pub emulatorbin: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub flags: u32,
    }

    /// `remote_connect_is_secure_ret`.
    pub struct ConnectIsSecureRet {
        pub secure: i32,
    }

    /// `remote_node_get_info_ret`: `char model[32]` is 32 4-byte ints.
    pub struct NodeGetInfoRet {
        pub model: CharArray<32>,
        /// KiB.
        pub memory: u64,
        pub cpus: i32,
        pub mhz: i32,
        pub nodes: i32,
        pub sockets: i32,
        pub cores: i32,
        pub threads: i32,
    }

    /// `remote_node_get_security_model_ret`.
    pub struct NodeGetSecurityModelRet {
        pub model: CharList [REMOTE_SECURITY_MODEL_MAX],
        pub doi: CharList [REMOTE_SECURITY_DOI_MAX],
    }

    /// `remote_node_get_cpu_map_args`.
    pub struct NodeGetCpuMapArgs {
        pub need_map: i32,
        pub need_online: i32,
        pub flags: u32,
    }

    /// `remote_node_get_cpu_map_ret`.
    pub struct NodeGetCpuMapRet {
        pub cpumap: Opaque [REMOTE_CPUMAP_MAX],
        pub online: u32,
        pub ret: i32,
    }

    /// `remote_connect_domain_xml_to_native_args`.
    pub struct ConnectDomainXmlToNativeArgs {
        pub native_format: String,
        pub domain_xml: String,
        pub flags: u32,
    }

    /// `remote_connect_domain_xml_to_native_ret`.
    pub struct ConnectDomainXmlToNativeRet {
        pub native_config: String,
    }

    /// `remote_connect_domain_xml_from_native_args`.
    pub struct ConnectDomainXmlFromNativeArgs {
        pub native_format: String,
        pub native_config: String,
        pub flags: u32,
    }

    /// `remote_connect_domain_xml_from_native_ret`.
    pub struct ConnectDomainXmlFromNativeRet {
        pub domain_xml: String,
    }

    // ---- Domain listing and lookup -------------------------------------

    /// `remote_connect_list_all_domains_args`.
    pub struct ConnectListAllDomainsArgs {
        pub need_results: i32,
        /// `VIR_CONNECT_LIST_DOMAINS_*`, see [`crate::consts::list_flags`].
        pub flags: u32,
    }

    /// `remote_connect_list_all_domains_ret`.
    pub struct ConnectListAllDomainsRet {
        pub domains: Vec<NonnullDomain> [REMOTE_DOMAIN_LIST_MAX],
        /// The number of domains (also sent when `need_results` is 0).
        pub ret: u32,
    }

    /// `remote_connect_list_domains_args`.
    pub struct ConnectListDomainsArgs {
        pub maxids: i32,
    }

    /// `remote_connect_list_domains_ret`.
    pub struct ConnectListDomainsRet {
        pub ids: Vec<i32> [REMOTE_DOMAIN_LIST_MAX],
    }

    /// `remote_connect_list_defined_domains_args`.
    pub struct ConnectListDefinedDomainsArgs {
        pub maxnames: i32,
    }

    /// `remote_connect_list_defined_domains_ret`.
    pub struct ConnectListDefinedDomainsRet {
        pub names: Vec<String> [REMOTE_DOMAIN_LIST_MAX],
    }

    /// `remote_domain_lookup_by_name_args`.
    pub struct DomainLookupByNameArgs {
        pub name: String,
    }

    /// `remote_domain_lookup_by_uuid_args`.
    pub struct DomainLookupByUuidArgs {
        pub uuid: Uuid,
    }

    /// `remote_domain_lookup_by_id_args`.
    pub struct DomainLookupByIdArgs {
        pub id: i32,
    }

    // ---- Domain lifecycle ----------------------------------------------

    /// `remote_domain_define_xml_args`.
    pub struct DomainDefineXmlArgs {
        pub xml: String,
    }

    /// `remote_domain_define_xml_flags_args`.
    pub struct DomainDefineXmlFlagsArgs {
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_domain_create_xml_args`.
    pub struct DomainCreateXmlArgs {
        pub xml_desc: String,
        pub flags: u32,
    }

    /// `remote_domain_set_autostart_args`.
    pub struct DomainSetAutostartArgs {
        pub dom: NonnullDomain,
        pub autostart: i32,
    }

    /// `remote_domain_open_console_args`.
    pub struct DomainOpenConsoleArgs {
        pub dom: NonnullDomain,
        /// The device alias (`serial0`); NULL means the first console.
        pub dev_name: Option<String>,
        pub flags: u32,
    }

    /// `remote_domain_screenshot_args`.
    pub struct DomainScreenshotArgs {
        pub dom: NonnullDomain,
        pub screen: u32,
        pub flags: u32,
    }

    /// `remote_domain_screenshot_ret`: the picture's MIME type.
    pub struct DomainScreenshotRet {
        pub mime: Option<String>,
    }

    /// `remote_domain_open_graphics_fd_args` (also OPEN_GRAPHICS's, whose
    /// descriptor comes with the call).
    pub struct DomainOpenGraphicsArgs {
        pub dom: NonnullDomain,
        pub idx: u32,
        pub flags: u32,
    }

    // ---- Domain information --------------------------------------------

    /// `remote_domain_get_info_ret`: `unsigned char`/`unsigned short` are
    /// 4 bytes each on the wire.
    pub struct DomainGetInfoRet {
        pub state: u8,
        /// KiB.
        pub max_mem: u64,
        /// KiB.
        pub memory: u64,
        pub nr_virt_cpu: u16,
        /// Nanoseconds.
        pub cpu_time: u64,
    }

    /// `remote_domain_get_state_ret`.
    pub struct DomainGetStateRet {
        pub state: i32,
        pub reason: i32,
    }

    /// `remote_domain_get_autostart_ret`.
    pub struct DomainGetAutostartRet {
        pub autostart: i32,
    }

    /// `remote_domain_is_active_ret`.
    pub struct DomainIsActiveRet {
        pub active: i32,
    }

    /// `remote_domain_is_persistent_ret`.
    pub struct DomainIsPersistentRet {
        pub persistent: i32,
    }

    /// `remote_domain_is_updated_ret`.
    pub struct DomainIsUpdatedRet {
        pub updated: i32,
    }

    /// `remote_domain_has_managed_save_image_ret`.
    pub struct DomainHasManagedSaveImageRet {
        pub result: i32,
    }

    /// `remote_domain_get_max_memory_ret`.
    pub struct DomainGetMaxMemoryRet {
        pub memory: u64,
    }

    /// `remote_domain_get_vcpus_args`.
    pub struct DomainGetVcpusArgs {
        pub dom: NonnullDomain,
        pub maxinfo: i32,
        pub maplen: i32,
    }

    /// `remote_domain_get_vcpus_ret`.
    pub struct DomainGetVcpusRet {
        pub info: Vec<VcpuInfo> [REMOTE_VCPUINFO_MAX],
        pub cpumaps: Opaque [REMOTE_CPUMAPS_MAX],
    }

    /// `remote_domain_get_scheduler_type_ret`.
    pub struct DomainGetSchedulerTypeRet {
        pub type_: String,
        pub nparams: i32,
    }

    /// `remote_domain_get_security_label_ret`.
    pub struct DomainGetSecurityLabelRet {
        pub label: CharList [REMOTE_SECURITY_LABEL_MAX],
        pub enforcing: i32,
    }

    /// `remote_domain_get_security_label_list_ret`.
    pub struct DomainGetSecurityLabelListRet {
        pub labels: Vec<DomainGetSecurityLabelRet> [REMOTE_SECURITY_LABEL_LIST_MAX],
        pub ret: i32,
    }

    /// `remote_domain_get_block_info_args`.
    pub struct DomainGetBlockInfoArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub flags: u32,
    }

    /// `remote_domain_get_block_info_ret`.
    pub struct DomainGetBlockInfoRet {
        pub allocation: u64,
        pub capacity: u64,
        pub physical: u64,
    }

    /// `remote_domain_get_control_info_ret`.
    pub struct DomainGetControlInfoRet {
        pub state: u32,
        pub details: u32,
        pub state_time: u64,
    }

    /// `remote_domain_get_metadata_args`.
    pub struct DomainGetMetadataArgs {
        pub dom: NonnullDomain,
        /// `VIR_DOMAIN_METADATA_*`: 0 description, 1 title, 2 element.
        pub type_: i32,
        pub uri: Option<String>,
        pub flags: u32,
    }

    /// `remote_domain_get_metadata_ret`.
    pub struct DomainGetMetadataRet {
        pub metadata: String,
    }

    /// `remote_domain_set_metadata_args`.
    pub struct DomainSetMetadataArgs {
        pub dom: NonnullDomain,
        pub type_: i32,
        pub metadata: Option<String>,
        pub key: Option<String>,
        pub uri: Option<String>,
        pub flags: u32,
    }

    /// `remote_domain_get_hostname_ret`.
    pub struct DomainGetHostnameRet {
        pub hostname: String,
    }

    /// `remote_domain_get_messages_ret`.
    pub struct DomainGetMessagesRet {
        pub msgs: Vec<String> [REMOTE_DOMAIN_MESSAGES_MAX],
    }

    /// `remote_connect_get_all_domain_stats_args`.
    pub struct ConnectGetAllDomainStatsArgs {
        pub doms: Vec<NonnullDomain> [REMOTE_DOMAIN_LIST_MAX],
        pub stats: u32,
        pub flags: u32,
    }

    /// `remote_connect_get_all_domain_stats_ret`.
    pub struct ConnectGetAllDomainStatsRet {
        pub ret_stats: Vec<DomainStatsRecord> [REMOTE_DOMAIN_LIST_MAX],
    }

    // ---- Other objects (rvirt has none; lists answer empty) --------------

    /// `{ int need_results; unsigned int flags; }` of the
    /// CONNECT_LIST_ALL_{NETWORKS,STORAGE_POOLS,INTERFACES,NODE_DEVICES} calls.
    pub struct ConnectListAllArgs {
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_list_all_networks_ret`.
    pub struct ConnectListAllNetworksRet {
        pub nets: Vec<NonnullNetwork> [REMOTE_NETWORK_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_connect_list_all_storage_pools_ret`.
    pub struct ConnectListAllStoragePoolsRet {
        pub pools: Vec<NonnullStoragePool> [REMOTE_STORAGE_POOL_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_connect_list_all_interfaces_ret`.
    pub struct ConnectListAllInterfacesRet {
        pub ifaces: Vec<NonnullInterface> [REMOTE_INTERFACE_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_connect_list_all_node_devices_ret`.
    pub struct ConnectListAllNodeDevicesRet {
        pub devices: Vec<NonnullNodeDevice> [REMOTE_NODE_DEVICE_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_connect_get_sysinfo_args`.
    pub struct ConnectGetSysinfoArgs {
        pub flags: u32,
    }

    /// `remote_connect_get_sysinfo_ret`.
    pub struct ConnectGetSysinfoRet {
        pub sysinfo: String,
    }

    /// `remote_connect_baseline_cpu_args`.
    pub struct ConnectBaselineCpuArgs {
        pub xml_cpus: Vec<String> [REMOTE_CPU_BASELINE_MAX],
        pub flags: u32,
    }

    /// `remote_connect_baseline_cpu_ret`.
    pub struct ConnectBaselineCpuRet {
        pub cpu: String,
    }

    // ---- Events ----------------------------------------------------------

    /// `remote_connect_domain_event_callback_register_any_args`.
    pub struct ConnectDomainEventCallbackRegisterAnyArgs {
        /// `VIR_DOMAIN_EVENT_ID_*`; 0 is LIFECYCLE.
        pub event_id: i32,
        /// Only events of this domain, or all when NULL.
        pub dom: Option<NonnullDomain>,
    }

    /// The callback id every `*_EVENT_*REGISTER_ANY` call returns
    /// (`remote_connect_domain_event_callback_register_any_ret`, and the
    /// network, storage pool and node device twins).
    pub struct CallbackIdRet {
        pub callback_id: i32,
    }

    /// The callback id every `*_EVENT_*DEREGISTER_ANY` call takes.
    pub struct CallbackIdArgs {
        pub callback_id: i32,
    }

    /// `remote_connect_network_event_register_any_args`.
    pub struct ConnectNetworkEventRegisterAnyArgs {
        pub event_id: i32,
        pub net: Option<NonnullNetwork>,
    }

    /// `remote_connect_storage_pool_event_register_any_args`.
    pub struct ConnectStoragePoolEventRegisterAnyArgs {
        pub event_id: i32,
        pub pool: Option<NonnullStoragePool>,
    }

    /// `remote_connect_node_device_event_register_any_args`.
    pub struct ConnectNodeDeviceEventRegisterAnyArgs {
        pub event_id: i32,
        pub dev: Option<NonnullNodeDevice>,
    }

    /// `remote_connect_domain_event_register_ret` (legacy, pre-callback-id).
    pub struct ConnectDomainEventRegisterRet {
        pub cb_registered: i32,
    }

    /// `remote_domain_event_lifecycle_msg`.
    pub struct DomainEventLifecycleMsg {
        pub dom: NonnullDomain,
        /// `VIR_DOMAIN_EVENT_*`, see [`crate::event::LifecycleEvent`].
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_domain_event_callback_lifecycle_msg`: the MESSAGE of proc 318.
    pub struct DomainEventCallbackLifecycleMsg {
        pub callback_id: i32,
        pub msg: DomainEventLifecycleMsg,
    }

    /// `remote_domain_event_reboot_msg`.
    pub struct DomainEventRebootMsg {
        pub dom: NonnullDomain,
    }

    /// `remote_domain_event_callback_reboot_msg`.
    pub struct DomainEventCallbackRebootMsg {
        pub callback_id: i32,
        pub msg: DomainEventRebootMsg,
    }

    /// `remote_domain_event_tray_change_msg`.
    pub struct DomainEventTrayChangeMsg {
        pub dom: NonnullDomain,
        pub dev_alias: String,
        /// `VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN` (0) or `_CLOSE` (1).
        pub reason: i32,
    }

    /// `remote_domain_event_callback_tray_change_msg`.
    pub struct DomainEventCallbackTrayChangeMsg {
        pub callback_id: i32,
        pub msg: DomainEventTrayChangeMsg,
    }

    /// `remote_domain_event_watchdog_msg`.
    pub struct DomainEventWatchdogMsg {
        pub dom: NonnullDomain,
        /// `VIR_DOMAIN_EVENT_WATCHDOG_*` (`event::watchdog_action`).
        pub action: i32,
    }

    /// `remote_domain_event_callback_watchdog_msg`: the MESSAGE of proc 321.
    pub struct DomainEventCallbackWatchdogMsg {
        pub callback_id: i32,
        pub msg: DomainEventWatchdogMsg,
    }

    /// `remote_domain_event_graphics_address`.
    pub struct DomainEventGraphicsAddress {
        /// `VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_*`: 0 IPv4, 1 IPv6, 2 UNIX.
        pub family: i32,
        pub node: String,
        pub service: String,
    }

    /// `remote_domain_event_graphics_identity`.
    pub struct DomainEventGraphicsIdentity {
        pub type_: String,
        pub name: String,
    }

    /// `remote_domain_event_graphics_msg`.
    pub struct DomainEventGraphicsMsg {
        pub dom: NonnullDomain,
        /// `VIR_DOMAIN_EVENT_GRAPHICS_*`: 0 connect, 1 initialize,
        /// 2 disconnect.
        pub phase: i32,
        pub local: DomainEventGraphicsAddress,
        pub remote: DomainEventGraphicsAddress,
        pub auth_scheme: String,
        pub subject: Vec<DomainEventGraphicsIdentity> [REMOTE_DOMAIN_EVENT_GRAPHICS_IDENTITY_MAX],
    }

    /// `remote_domain_event_callback_graphics_msg`.
    pub struct DomainEventCallbackGraphicsMsg {
        pub callback_id: i32,
        pub msg: DomainEventGraphicsMsg,
    }

    /// `remote_connect_event_connection_closed_msg`.
    pub struct ConnectEventConnectionClosedMsg {
        /// `VIR_CONNECT_CLOSE_REASON_*`.
        pub reason: i32,
    }

    // ---- Networks and storage ------------------------------------------

    /// `{ remote_nonnull_string name; }`: network_lookup_by_name,
    /// storage_pool_lookup_by_name.
    pub struct NameArgs {
        pub name: String,
    }

    /// `{ remote_uuid uuid; }`: network_lookup_by_uuid,
    /// storage_pool_lookup_by_uuid.
    pub struct UuidArgs {
        pub uuid: Uuid,
    }

    /// `{ remote_nonnull_network net; }`: network lookups.
    pub struct NetworkRet {
        pub net: NonnullNetwork,
    }

    /// `{ remote_nonnull_storage_pool pool; }`: pool lookups.
    pub struct StoragePoolRet {
        pub pool: NonnullStoragePool,
    }

    /// `remote_storage_vol_lookup_by_name_args`.
    pub struct StorageVolLookupByNameArgs {
        pub pool: NonnullStoragePool,
        pub name: String,
    }

    /// `remote_storage_vol_lookup_by_key_args`.
    pub struct StorageVolLookupByKeyArgs {
        pub key: String,
    }

    /// `remote_storage_vol_lookup_by_path_args`.
    pub struct StorageVolLookupByPathArgs {
        pub path: String,
    }

    /// `{ remote_nonnull_storage_vol vol; }`: volume lookups.
    pub struct StorageVolRet {
        pub vol: NonnullStorageVol,
    }

    // ---- Storage pools ---------------------------------------------------

    /// `{ int maxnames; }`: CONNECT_LIST_(DEFINED_)STORAGE_POOLS.
    pub struct ConnectListStoragePoolsArgs {
        pub maxnames: i32,
    }

    /// `{ remote_nonnull_string names<REMOTE_STORAGE_POOL_LIST_MAX>; }`.
    pub struct ConnectListStoragePoolsRet {
        pub names: Vec<String> [REMOTE_STORAGE_POOL_LIST_MAX],
    }

    /// `{ remote_nonnull_string xml; unsigned int flags; }`:
    /// STORAGE_POOL_CREATE_XML, STORAGE_POOL_DEFINE_XML.
    pub struct StoragePoolXmlArgs {
        pub xml: String,
        pub flags: u32,
    }

    /// `{ remote_nonnull_storage_pool pool; }`: destroy, undefine,
    /// get_info, get_autostart, num_of_volumes, is_active, is_persistent.
    pub struct StoragePoolArgs {
        pub pool: NonnullStoragePool,
    }

    /// `{ remote_nonnull_storage_pool pool; unsigned int flags; }`: create,
    /// build, delete, refresh, get_xml_desc.
    pub struct StoragePoolFlagsArgs {
        pub pool: NonnullStoragePool,
        pub flags: u32,
    }

    /// `remote_storage_pool_get_info_ret`.
    pub struct StoragePoolGetInfoRet {
        /// `virStoragePoolState` (an `unsigned char`: 4 bytes on the wire).
        pub state: u8,
        pub capacity: u64,
        pub allocation: u64,
        pub available: u64,
    }

    /// `remote_storage_pool_get_autostart_ret`.
    pub struct StoragePoolGetAutostartRet {
        pub autostart: i32,
    }

    /// `remote_storage_pool_set_autostart_args`.
    pub struct StoragePoolSetAutostartArgs {
        pub pool: NonnullStoragePool,
        pub autostart: i32,
    }

    /// `remote_storage_pool_is_active_ret`.
    pub struct StoragePoolIsActiveRet {
        pub active: i32,
    }

    /// `remote_storage_pool_is_persistent_ret`.
    pub struct StoragePoolIsPersistentRet {
        pub persistent: i32,
    }

    /// `remote_storage_pool_list_volumes_args`.
    pub struct StoragePoolListVolumesArgs {
        pub pool: NonnullStoragePool,
        pub maxnames: i32,
    }

    /// `remote_storage_pool_list_volumes_ret`.
    pub struct StoragePoolListVolumesRet {
        pub names: Vec<String> [REMOTE_STORAGE_VOL_LIST_MAX],
    }

    /// `remote_storage_pool_list_all_volumes_args`.
    pub struct StoragePoolListAllVolumesArgs {
        pub pool: NonnullStoragePool,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_storage_pool_list_all_volumes_ret`.
    pub struct StoragePoolListAllVolumesRet {
        pub vols: Vec<NonnullStorageVol> [REMOTE_STORAGE_VOL_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_storage_pool_lookup_by_target_path_args`.
    pub struct StoragePoolLookupByTargetPathArgs {
        pub path: String,
    }

    /// `remote_connect_get_storage_pool_capabilities_args`.
    pub struct ConnectGetStoragePoolCapabilitiesArgs {
        pub flags: u32,
    }

    /// `remote_connect_get_storage_pool_capabilities_ret`.
    pub struct ConnectGetStoragePoolCapabilitiesRet {
        pub capabilities: String,
    }

    /// `remote_storage_pool_event_lifecycle_msg`: the MESSAGE of proc 370.
    pub struct StoragePoolEventLifecycleMsg {
        pub callback_id: i32,
        pub pool: NonnullStoragePool,
        /// `virStoragePoolEventLifecycleType`.
        pub event: i32,
        pub detail: i32,
    }

    /// `remote_storage_pool_event_refresh_msg`: the MESSAGE of proc 373.
    pub struct StoragePoolEventRefreshMsg {
        pub callback_id: i32,
        pub pool: NonnullStoragePool,
    }

    // ---- Storage volumes -------------------------------------------------

    /// `remote_storage_vol_create_xml_args`.
    pub struct StorageVolCreateXmlArgs {
        pub pool: NonnullStoragePool,
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_storage_vol_create_xml_from_args`.
    pub struct StorageVolCreateXmlFromArgs {
        pub pool: NonnullStoragePool,
        pub xml: String,
        pub clonevol: NonnullStorageVol,
        pub flags: u32,
    }

    /// `{ remote_nonnull_storage_vol vol; }`: get_info, get_path,
    /// storage_pool_lookup_by_volume.
    pub struct StorageVolArgs {
        pub vol: NonnullStorageVol,
    }

    /// `{ remote_nonnull_storage_vol vol; unsigned int flags; }`: delete,
    /// wipe, get_xml_desc, get_info_flags.
    pub struct StorageVolFlagsArgs {
        pub vol: NonnullStorageVol,
        pub flags: u32,
    }

    /// `remote_storage_vol_get_info_ret` (and `_get_info_flags_ret`).
    pub struct StorageVolGetInfoRet {
        /// `virStorageVolType` (a `char`: 4 bytes on the wire).
        pub type_: u8,
        pub capacity: u64,
        pub allocation: u64,
    }

    /// `remote_storage_vol_get_path_ret`.
    pub struct StorageVolGetPathRet {
        pub name: String,
    }

    /// `remote_storage_vol_upload_args`, `remote_storage_vol_download_args`.
    pub struct StorageVolStreamArgs {
        pub vol: NonnullStorageVol,
        pub offset: u64,
        /// 0: to the end.
        pub length: u64,
        pub flags: u32,
    }

    /// `remote_storage_vol_wipe_pattern_args`.
    pub struct StorageVolWipePatternArgs {
        pub vol: NonnullStorageVol,
        /// `virStorageVolWipeAlgorithm`.
        pub algorithm: u32,
        pub flags: u32,
    }

    /// `remote_storage_vol_resize_args`.
    pub struct StorageVolResizeArgs {
        pub vol: NonnullStorageVol,
        pub capacity: u64,
        pub flags: u32,
    }

    // ---- vCPU pinning ---------------------------------------------------

    /// `remote_domain_get_vcpu_pin_info_args`.
    pub struct DomainGetVcpuPinInfoArgs {
        pub dom: NonnullDomain,
        pub ncpumaps: i32,
        pub maplen: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_vcpu_pin_info_ret`.
    pub struct DomainGetVcpuPinInfoRet {
        pub cpumaps: Opaque [REMOTE_CPUMAPS_MAX],
        pub num: i32,
    }

    // ---- Virtual networks -------------------------------------------------

    /// `{ remote_nonnull_network net; }`: create, destroy, undefine,
    /// get_autostart, get_bridge_name, is_active, is_persistent.
    pub struct NetworkArgs {
        pub net: NonnullNetwork,
    }

    /// `{ int maxnames; }`: CONNECT_LIST_(DEFINED_)NETWORKS.
    pub struct ConnectListNetworksArgs {
        pub maxnames: i32,
    }

    /// `{ remote_nonnull_string names<REMOTE_NETWORK_NAME_LIST_MAX>; }`.
    pub struct ConnectListNetworksRet {
        pub names: Vec<String> [REMOTE_NETWORK_NAME_LIST_MAX],
    }

    /// `remote_network_create_xml_args`, `remote_network_define_xml_args`.
    pub struct NetworkXmlArgs {
        pub xml: String,
    }

    /// `remote_network_get_xml_desc_args`.
    pub struct NetworkGetXmlDescArgs {
        pub net: NonnullNetwork,
        /// `VIR_NETWORK_XML_INACTIVE`.
        pub flags: u32,
    }

    /// `remote_network_get_autostart_ret`.
    pub struct NetworkGetAutostartRet {
        pub autostart: i32,
    }

    /// `remote_network_get_bridge_name_ret`.
    pub struct NetworkGetBridgeNameRet {
        pub name: String,
    }

    /// `remote_network_set_autostart_args`.
    pub struct NetworkSetAutostartArgs {
        pub net: NonnullNetwork,
        pub autostart: i32,
    }

    /// `remote_network_is_active_ret`.
    pub struct NetworkIsActiveRet {
        pub active: i32,
    }

    /// `remote_network_is_persistent_ret`.
    pub struct NetworkIsPersistentRet {
        pub persistent: i32,
    }

    /// `remote_network_update_args`.
    pub struct NetworkUpdateArgs {
        pub net: NonnullNetwork,
        /// `virNetworkUpdateCommand`.
        pub command: u32,
        /// `virNetworkUpdateSection`.
        pub section: u32,
        pub parent_index: i32,
        pub xml: String,
        /// `virNetworkUpdateFlags`.
        pub flags: u32,
    }

    /// `remote_network_dhcp_lease`.
    pub struct NetworkDhcpLease {
        pub iface: String,
        /// Seconds since the epoch.
        pub expirytime: i64,
        /// `virIPAddrType`.
        pub type_: i32,
        pub mac: Option<String>,
        pub iaid: Option<String>,
        pub ipaddr: String,
        pub prefix: u32,
        pub hostname: Option<String>,
        pub clientid: Option<String>,
    }

    /// `remote_network_get_dhcp_leases_args`.
    pub struct NetworkGetDhcpLeasesArgs {
        pub net: NonnullNetwork,
        pub mac: Option<String>,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_network_get_dhcp_leases_ret`.
    pub struct NetworkGetDhcpLeasesRet {
        pub leases: Vec<NetworkDhcpLease> [REMOTE_NETWORK_DHCP_LEASES_MAX],
        pub ret: u32,
    }

    /// `remote_network_event_lifecycle_msg`: the MESSAGE of proc 315.
    pub struct NetworkEventLifecycleMsg {
        pub callback_id: i32,
        pub net: NonnullNetwork,
        /// `virNetworkEventLifecycleType`.
        pub event: i32,
        pub detail: i32,
    }

    // ---- Guest interface addresses -----------------------------------

    /// `remote_domain_interface_addresses_args`.
    pub struct DomainInterfaceAddressesArgs {
        pub dom: NonnullDomain,
        /// `virDomainInterfaceAddressesSource`.
        pub source: u32,
        pub flags: u32,
    }

    /// `remote_domain_ip_addr`.
    pub struct DomainIpAddr {
        /// `virIPAddrType`.
        pub type_: i32,
        pub addr: String,
        pub prefix: u32,
    }

    /// `remote_domain_interface`.
    pub struct DomainInterface {
        pub name: String,
        pub hwaddr: Option<String>,
        pub addrs: Vec<DomainIpAddr> [REMOTE_DOMAIN_IP_ADDR_MAX],
    }

    /// `remote_domain_interface_addresses_ret`.
    pub struct DomainInterfaceAddressesRet {
        pub ifaces: Vec<DomainInterface> [REMOTE_DOMAIN_INTERFACE_MAX],
    }
}

/// `REMOTE_NODE_MAX_CELLS`.
pub const REMOTE_NODE_MAX_CELLS: u32 = 1024;
/// `REMOTE_DOMAIN_MEMORY_STATS_MAX`.
pub const REMOTE_DOMAIN_MEMORY_STATS_MAX: u32 = 1024;
/// `REMOTE_NODE_CPU_STATS_MAX` and `REMOTE_NODE_MEMORY_STATS_MAX`.
pub const REMOTE_NODE_STATS_MAX: u32 = 16;

xdr_struct! {
    // ---- Device and resource edits ---------------------------------------

    /// `{ dom; remote_nonnull_string xml; }`: attach_device, detach_device.
    pub struct DomainDeviceArgs {
        pub dom: NonnullDomain,
        pub xml: String,
    }

    /// `{ dom; xml; unsigned int flags; }`: attach_device_flags,
    /// detach_device_flags, update_device_flags.
    pub struct DomainDeviceFlagsArgs {
        pub dom: NonnullDomain,
        pub xml: String,
        pub flags: u32,
    }

    /// `{ dom; unsigned hyper memory; }` (KiB): set_memory, set_max_memory.
    pub struct DomainSetMemoryArgs {
        pub dom: NonnullDomain,
        pub memory: u64,
    }

    /// `remote_domain_set_memory_flags_args`.
    pub struct DomainSetMemoryFlagsArgs {
        pub dom: NonnullDomain,
        pub memory: u64,
        pub flags: u32,
    }

    /// `remote_domain_set_memory_stats_period_args`.
    pub struct DomainSetMemoryStatsPeriodArgs {
        pub dom: NonnullDomain,
        pub period: i32,
        pub flags: u32,
    }

    /// `remote_domain_set_vcpus_args`.
    pub struct DomainSetVcpusArgs {
        pub dom: NonnullDomain,
        pub nvcpus: u32,
    }

    /// `remote_domain_set_vcpus_flags_args`.
    pub struct DomainSetVcpusFlagsArgs {
        pub dom: NonnullDomain,
        pub nvcpus: u32,
        pub flags: u32,
    }

    // ---- Host facts and statistics --------------------------------------

    /// `remote_node_get_free_memory_ret` (bytes).
    pub struct NodeGetFreeMemoryRet {
        pub free_mem: u64,
    }

    /// `remote_node_get_cells_free_memory_args`.
    pub struct NodeGetCellsFreeMemoryArgs {
        pub start_cell: i32,
        pub maxcells: i32,
    }

    /// `remote_node_get_cells_free_memory_ret` (bytes per cell).
    pub struct NodeGetCellsFreeMemoryRet {
        pub cells: Vec<u64> [REMOTE_NODE_MAX_CELLS],
    }

    /// `remote_node_get_cpu_stats_args`.
    pub struct NodeGetCpuStatsArgs {
        pub cpu_num: i32,
        pub nparams: i32,
        pub flags: u32,
    }

    /// `remote_node_get_cpu_stats` and `remote_node_get_memory_stats`:
    /// one named counter.
    pub struct NodeStat {
        pub field: String,
        pub value: u64,
    }

    /// `remote_node_get_cpu_stats_ret`, `remote_node_get_memory_stats_ret`.
    pub struct NodeStatsRet {
        pub params: Vec<NodeStat> [REMOTE_NODE_STATS_MAX],
        pub nparams: i32,
    }

    /// `remote_node_get_memory_stats_args`.
    pub struct NodeGetMemoryStatsArgs {
        pub nparams: i32,
        pub cell_num: i32,
        pub flags: u32,
    }

    /// `remote_domain_get_job_info_ret`.
    pub struct DomainGetJobInfoRet {
        pub type_: i32,
        pub time_elapsed: u64,
        pub time_remaining: u64,
        pub data_total: u64,
        pub data_processed: u64,
        pub data_remaining: u64,
        pub mem_total: u64,
        pub mem_processed: u64,
        pub mem_remaining: u64,
        pub file_total: u64,
        pub file_processed: u64,
        pub file_remaining: u64,
    }

    /// `remote_domain_memory_stats_args`.
    pub struct DomainMemoryStatsArgs {
        pub dom: NonnullDomain,
        pub max_stats: u32,
        pub flags: u32,
    }

    /// `remote_domain_memory_stat`: a `VIR_DOMAIN_MEMORY_STAT_*` tag and
    /// its value (KiB, or seconds for LAST_UPDATE).
    pub struct DomainMemoryStat {
        pub tag: i32,
        pub val: u64,
    }

    /// `remote_domain_memory_stats_ret`.
    pub struct DomainMemoryStatsRet {
        pub stats: Vec<DomainMemoryStat> [REMOTE_DOMAIN_MEMORY_STATS_MAX],
    }

    /// `remote_domain_block_stats_args`.
    pub struct DomainBlockStatsArgs {
        pub dom: NonnullDomain,
        pub path: String,
    }

    /// `remote_domain_block_stats_ret`.
    pub struct DomainBlockStatsRet {
        pub rd_req: i64,
        pub rd_bytes: i64,
        pub wr_req: i64,
        pub wr_bytes: i64,
        pub errs: i64,
    }

    /// `remote_domain_interface_stats_args`.
    pub struct DomainInterfaceStatsArgs {
        pub dom: NonnullDomain,
        pub device: String,
    }

    /// `remote_domain_interface_stats_ret`.
    pub struct DomainInterfaceStatsRet {
        pub rx_bytes: i64,
        pub rx_packets: i64,
        pub rx_errs: i64,
        pub rx_drop: i64,
        pub tx_bytes: i64,
        pub tx_packets: i64,
        pub tx_errs: i64,
        pub tx_drop: i64,
    }
}

xdr_struct! {
    // ---- Lookups of objects rvirt has none of ---------------------------

    /// `remote_interface_lookup_by_name_ret` (and by MAC string, whose
    /// argument is one string as [`NameArgs`]).
    pub struct InterfaceRet {
        pub iface: NonnullInterface,
    }

    /// `remote_node_device_lookup_by_name_ret`.
    pub struct NodeDeviceRet {
        pub dev: NonnullNodeDevice,
    }

    /// `remote_secret_lookup_by_uuid_ret` and by usage.
    pub struct SecretRet {
        pub secret: NonnullSecret,
    }

    /// `remote_secret_lookup_by_usage_args`.
    pub struct SecretLookupByUsageArgs {
        pub usage_type: i32,
        pub usage_id: String,
    }

    /// `remote_connect_list_all_secrets_ret`.
    pub struct ConnectListAllSecretsRet {
        pub secrets: Vec<NonnullSecret> [REMOTE_SECRET_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_nwfilter_lookup_by_name_ret` and by UUID.
    pub struct NwfilterRet {
        pub nwfilter: NonnullNwfilter,
    }

    /// `remote_connect_list_all_nwfilters_ret`.
    pub struct ConnectListAllNwfiltersRet {
        pub filters: Vec<NonnullNwfilter> [REMOTE_NWFILTER_LIST_MAX],
        pub ret: u32,
    }

    /// `remote_domain_snapshot_lookup_by_name_args`.
    pub struct DomainSnapshotLookupByNameArgs {
        pub dom: NonnullDomain,
        pub name: String,
        pub flags: u32,
    }

    /// `remote_domain_snapshot_lookup_by_name_ret`.
    pub struct DomainSnapshotRet {
        pub snap: NonnullDomainSnapshot,
    }

    /// `remote_domain_list_all_snapshots_args`.
    pub struct DomainListAllSnapshotsArgs {
        pub dom: NonnullDomain,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_domain_list_all_snapshots_ret`.
    pub struct DomainListAllSnapshotsRet {
        pub snapshots: Vec<NonnullDomainSnapshot> [REMOTE_DOMAIN_SNAPSHOT_LIST_MAX],
        pub ret: i32,
    }

    /// `remote_domain_snapshot_create_xml_args`.
    pub struct DomainSnapshotCreateXmlArgs {
        pub dom: NonnullDomain,
        pub xml_desc: String,
        pub flags: u32,
    }

    /// `{ remote_nonnull_domain_snapshot snap; unsigned int flags; }`: the
    /// arguments of get_xml_desc, delete, get_parent, num_children,
    /// is_current and has_metadata.
    pub struct DomainSnapshotFlagsArgs {
        pub snap: NonnullDomainSnapshot,
        pub flags: u32,
    }

    /// `remote_domain_block_commit_args`.
    pub struct DomainBlockCommitArgs {
        pub dom: NonnullDomain,
        pub disk: String,
        pub base: Option<String>,
        pub top: Option<String>,
        pub bandwidth: u64,
        pub flags: u32,
    }

    /// `remote_domain_get_block_job_info_args` and
    /// `remote_domain_block_job_abort_args`: a disk and flags.
    pub struct DomainBlockJobArgs {
        pub dom: NonnullDomain,
        pub path: String,
        pub flags: u32,
    }

    /// `remote_domain_get_block_job_info_ret`.
    pub struct DomainGetBlockJobInfoRet {
        pub found: i32,
        pub type_: i32,
        pub bandwidth: u64,
        pub cur: u64,
        pub end: u64,
    }

    /// `remote_domain_event_block_job_msg`.
    pub struct DomainEventBlockJobMsg {
        pub dom: NonnullDomain,
        pub path: String,
        pub type_: i32,
        pub status: i32,
    }

    /// `remote_domain_event_callback_block_job_msg`.
    pub struct DomainEventCallbackBlockJobMsg {
        pub callback_id: i32,
        pub msg: DomainEventBlockJobMsg,
    }

    /// `remote_domain_event_block_job_2_msg`.
    pub struct DomainEventBlockJob2Msg {
        pub callback_id: i32,
        pub dom: NonnullDomain,
        pub dst: String,
        pub type_: i32,
        pub status: i32,
    }

    /// `remote_domain_event_device_removed_msg`.
    pub struct DomainEventDeviceRemovedMsg {
        pub dom: NonnullDomain,
        pub dev_alias: String,
    }

    /// `remote_domain_event_callback_device_removed_msg`.
    pub struct DomainEventCallbackDeviceRemovedMsg {
        pub callback_id: i32,
        pub msg: DomainEventDeviceRemovedMsg,
    }

    /// `remote_domain_snapshot_list_all_children_args`.
    pub struct DomainSnapshotListAllChildrenArgs {
        pub snapshot: NonnullDomainSnapshot,
        pub need_results: i32,
        pub flags: u32,
    }
}
