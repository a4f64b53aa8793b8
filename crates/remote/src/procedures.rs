//! The procedure table: each procedure's number, name, argument type and
//! return type, written once. The macro derives from it the `Procedure`
//! enum, a marker type per procedure for typed client calls, and the
//! `Args`/`Ret` enums a server decodes into by procedure number.
//!
//! Numbers are those of `enum remote_procedure` in remote_protocol.x. For
//! event MESSAGEs the "args" column is the message body and ret is void.

use crate::calls::*;
use crate::xdr::{Reader, Xdr, XdrError};

/// One procedure as a type: what a typed client call needs to know.
pub trait RemoteProcedure {
    /// Its number.
    const PROC: Procedure;
    /// Its argument struct (`()` when void).
    type Args: Xdr;
    /// Its return struct (`()` when void).
    type Ret: Xdr;
}

macro_rules! procedures {
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
    ConnectOpen(CONNECT_OPEN) = 1: ConnectOpenArgs => ();
    ConnectClose(CONNECT_CLOSE) = 2: () => ();
    ConnectGetType(CONNECT_GET_TYPE) = 3: () => TypeRet;
    ConnectGetVersion(CONNECT_GET_VERSION) = 4: () => ConnectGetVersionRet;
    ConnectGetMaxVcpus(CONNECT_GET_MAX_VCPUS) = 5: ConnectGetMaxVcpusArgs => ConnectGetMaxVcpusRet;
    NodeGetInfo(NODE_GET_INFO) = 6: () => NodeGetInfoRet;
    ConnectGetCapabilities(CONNECT_GET_CAPABILITIES) = 7: () => CapabilitiesRet;
    DomainCreate(DOMAIN_CREATE) = 9: DomainArgs => ();
    DomainCreateXml(DOMAIN_CREATE_XML) = 10: DomainCreateXmlArgs => DomainRet;
    DomainDefineXml(DOMAIN_DEFINE_XML) = 11: DomainDefineXmlArgs => DomainRet;
    DomainDestroy(DOMAIN_DESTROY) = 12: DomainArgs => ();
    DomainGetXmlDesc(DOMAIN_GET_XML_DESC) = 14: DomainFlagsArgs => XmlRet;
    DomainGetAutostart(DOMAIN_GET_AUTOSTART) = 15: DomainArgs => DomainGetAutostartRet;
    DomainGetInfo(DOMAIN_GET_INFO) = 16: DomainArgs => DomainGetInfoRet;
    DomainGetMaxMemory(DOMAIN_GET_MAX_MEMORY) = 17: DomainArgs => DomainGetMaxMemoryRet;
    DomainGetMaxVcpus(DOMAIN_GET_MAX_VCPUS) = 18: DomainArgs => NumRet;
    DomainGetOsType(DOMAIN_GET_OS_TYPE) = 19: DomainArgs => TypeRet;
    DomainGetVcpus(DOMAIN_GET_VCPUS) = 20: DomainGetVcpusArgs => DomainGetVcpusRet;
    ConnectListDefinedDomains(CONNECT_LIST_DEFINED_DOMAINS) = 21: ConnectListDefinedDomainsArgs => ConnectListDefinedDomainsRet;
    DomainLookupById(DOMAIN_LOOKUP_BY_ID) = 22: DomainLookupByIdArgs => DomainRet;
    DomainLookupByName(DOMAIN_LOOKUP_BY_NAME) = 23: DomainLookupByNameArgs => DomainRet;
    DomainLookupByUuid(DOMAIN_LOOKUP_BY_UUID) = 24: DomainLookupByUuidArgs => DomainRet;
    ConnectNumOfDefinedDomains(CONNECT_NUM_OF_DEFINED_DOMAINS) = 25: () => NumRet;
    DomainReboot(DOMAIN_REBOOT) = 27: DomainFlagsArgs => ();
    DomainResume(DOMAIN_RESUME) = 28: DomainArgs => ();
    DomainSetAutostart(DOMAIN_SET_AUTOSTART) = 29: DomainSetAutostartArgs => ();
    DomainShutdown(DOMAIN_SHUTDOWN) = 33: DomainArgs => ();
    DomainSuspend(DOMAIN_SUSPEND) = 34: DomainArgs => ();
    DomainUndefine(DOMAIN_UNDEFINE) = 35: DomainArgs => ();
    ConnectListDomains(CONNECT_LIST_DOMAINS) = 37: ConnectListDomainsArgs => ConnectListDomainsRet;
    ConnectNumOfDomains(CONNECT_NUM_OF_DOMAINS) = 51: () => NumRet;
    DomainGetSchedulerType(DOMAIN_GET_SCHEDULER_TYPE) = 56: DomainArgs => DomainGetSchedulerTypeRet;
    ConnectGetHostname(CONNECT_GET_HOSTNAME) = 59: () => ConnectGetHostnameRet;
    ConnectSupportsFeature(CONNECT_SUPPORTS_FEATURE) = 60: ConnectSupportsFeatureArgs => ConnectSupportsFeatureRet;
    AuthList(AUTH_LIST) = 66: () => AuthListRet;
    ConnectDomainEventRegister(CONNECT_DOMAIN_EVENT_REGISTER) = 105: () => ConnectDomainEventRegisterRet;
    ConnectDomainEventDeregister(CONNECT_DOMAIN_EVENT_DEREGISTER) = 106: () => ConnectDomainEventRegisterRet;
    /// Legacy lifecycle event MESSAGE (no callback id).
    DomainEventLifecycle(DOMAIN_EVENT_LIFECYCLE) = 107: DomainEventLifecycleMsg => ();
    ConnectGetUri(CONNECT_GET_URI) = 110: () => ConnectGetUriRet;
    DomainGetSecurityLabel(DOMAIN_GET_SECURITY_LABEL) = 121: DomainArgs => DomainGetSecurityLabelRet;
    NodeGetSecurityModel(NODE_GET_SECURITY_MODEL) = 122: () => NodeGetSecurityModelRet;
    ConnectDomainXmlFromNative(CONNECT_DOMAIN_XML_FROM_NATIVE) = 135: ConnectDomainXmlFromNativeArgs => ConnectDomainXmlFromNativeRet;
    ConnectDomainXmlToNative(CONNECT_DOMAIN_XML_TO_NATIVE) = 136: ConnectDomainXmlToNativeArgs => ConnectDomainXmlToNativeRet;
    ConnectIsSecure(CONNECT_IS_SECURE) = 149: () => ConnectIsSecureRet;
    DomainIsActive(DOMAIN_IS_ACTIVE) = 150: DomainArgs => DomainIsActiveRet;
    DomainIsPersistent(DOMAIN_IS_PERSISTENT) = 151: DomainArgs => DomainIsPersistentRet;
    ConnectGetLibVersion(CONNECT_GET_LIB_VERSION) = 157: () => ConnectGetLibVersionRet;
    ConnectBaselineCpu(CONNECT_BASELINE_CPU) = 162: ConnectBaselineCpuArgs => ConnectBaselineCpuRet;
    DomainHasManagedSaveImage(DOMAIN_HAS_MANAGED_SAVE_IMAGE) = 183: DomainFlagsArgs => DomainHasManagedSaveImageRet;
    DomainSnapshotNum(DOMAIN_SNAPSHOT_NUM) = 187: DomainFlagsArgs => NumRet;
    DomainGetBlockInfo(DOMAIN_GET_BLOCK_INFO) = 194: DomainGetBlockInfoArgs => DomainGetBlockInfoRet;
    DomainCreateWithFlags(DOMAIN_CREATE_WITH_FLAGS) = 196: DomainFlagsArgs => DomainRet;
    DomainGetVcpusFlags(DOMAIN_GET_VCPUS_FLAGS) = 200: DomainFlagsArgs => NumRet;
    /// Opens a console stream: data then flows as STREAM messages.
    DomainOpenConsole(DOMAIN_OPEN_CONSOLE) = 201: DomainOpenConsoleArgs => ();
    DomainIsUpdated(DOMAIN_IS_UPDATED) = 202: DomainArgs => DomainIsUpdatedRet;
    ConnectGetSysinfo(CONNECT_GET_SYSINFO) = 203: ConnectGetSysinfoArgs => ConnectGetSysinfoRet;
    DomainGetState(DOMAIN_GET_STATE) = 212: DomainFlagsArgs => DomainGetStateRet;
    DomainGetControlInfo(DOMAIN_GET_CONTROL_INFO) = 229: DomainFlagsArgs => DomainGetControlInfoRet;
    DomainUndefineFlags(DOMAIN_UNDEFINE_FLAGS) = 231: DomainFlagsArgs => ();
    DomainDestroyFlags(DOMAIN_DESTROY_FLAGS) = 234: DomainFlagsArgs => ();
    DomainShutdownFlags(DOMAIN_SHUTDOWN_FLAGS) = 258: DomainFlagsArgs => ();
    DomainSetMetadata(DOMAIN_SET_METADATA) = 264: DomainSetMetadataArgs => ();
    DomainGetMetadata(DOMAIN_GET_METADATA) = 265: DomainGetMetadataArgs => DomainGetMetadataRet;
    ConnectListAllDomains(CONNECT_LIST_ALL_DOMAINS) = 273: ConnectListAllDomainsArgs => ConnectListAllDomainsRet;
    DomainGetHostname(DOMAIN_GET_HOSTNAME) = 277: DomainFlagsArgs => DomainGetHostnameRet;
    DomainGetSecurityLabelList(DOMAIN_GET_SECURITY_LABEL_LIST) = 278: DomainArgs => DomainGetSecurityLabelListRet;
    ConnectListAllStoragePools(CONNECT_LIST_ALL_STORAGE_POOLS) = 281: ConnectListAllArgs => ConnectListAllStoragePoolsRet;
    ConnectListAllNetworks(CONNECT_LIST_ALL_NETWORKS) = 283: ConnectListAllArgs => ConnectListAllNetworksRet;
    ConnectListAllInterfaces(CONNECT_LIST_ALL_INTERFACES) = 284: ConnectListAllArgs => ConnectListAllInterfacesRet;
    ConnectListAllNodeDevices(CONNECT_LIST_ALL_NODE_DEVICES) = 285: ConnectListAllArgs => ConnectListAllNodeDevicesRet;
    NodeGetCpuMap(NODE_GET_CPU_MAP) = 293: NodeGetCpuMapArgs => NodeGetCpuMapRet;
    ConnectNetworkEventRegisterAny(CONNECT_NETWORK_EVENT_REGISTER_ANY) = 313: ConnectNetworkEventRegisterAnyArgs => CallbackIdRet;
    ConnectNetworkEventDeregisterAny(CONNECT_NETWORK_EVENT_DEREGISTER_ANY) = 314: CallbackIdArgs => ();
    ConnectDomainEventCallbackRegisterAny(CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) = 316: ConnectDomainEventCallbackRegisterAnyArgs => CallbackIdRet;
    ConnectDomainEventCallbackDeregisterAny(CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY) = 317: CallbackIdArgs => ();
    /// Lifecycle event MESSAGE for a registered callback.
    DomainEventCallbackLifecycle(DOMAIN_EVENT_CALLBACK_LIFECYCLE) = 318: DomainEventCallbackLifecycleMsg => ();
    /// Reboot event MESSAGE for a registered callback.
    DomainEventCallbackReboot(DOMAIN_EVENT_CALLBACK_REBOOT) = 319: DomainEventCallbackRebootMsg => ();
    ConnectGetDomainCapabilities(CONNECT_GET_DOMAIN_CAPABILITIES) = 342: ConnectGetDomainCapabilitiesArgs => CapabilitiesRet;
    ConnectGetAllDomainStats(CONNECT_GET_ALL_DOMAIN_STATS) = 344: ConnectGetAllDomainStatsArgs => ConnectGetAllDomainStatsRet;
    DomainDefineXmlFlags(DOMAIN_DEFINE_XML_FLAGS) = 350: DomainDefineXmlFlagsArgs => DomainRet;
    ConnectRegisterCloseCallback(CONNECT_REGISTER_CLOSE_CALLBACK) = 360: () => ();
    ConnectUnregisterCloseCallback(CONNECT_UNREGISTER_CLOSE_CALLBACK) = 361: () => ();
    /// The daemon tells a client why it is closing the connection.
    ConnectEventConnectionClosed(CONNECT_EVENT_CONNECTION_CLOSED) = 362: ConnectEventConnectionClosedMsg => ();
    ConnectStoragePoolEventRegisterAny(CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY) = 368: ConnectStoragePoolEventRegisterAnyArgs => CallbackIdRet;
    ConnectStoragePoolEventDeregisterAny(CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY) = 369: CallbackIdArgs => ();
    ConnectNodeDeviceEventRegisterAny(CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY) = 374: ConnectNodeDeviceEventRegisterAnyArgs => CallbackIdRet;
    ConnectNodeDeviceEventDeregisterAny(CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY) = 375: CallbackIdArgs => ();
    DomainGetMessages(DOMAIN_GET_MESSAGES) = 426: DomainFlagsArgs => DomainGetMessagesRet;
}

impl Procedure {
    /// The public API function behind it, as libvirt names it in
    /// VIR_ERR_NO_SUPPORT messages (`DOMAIN_GET_XML_DESC` -> `virDomainGetXMLDesc`).
    pub fn api_name(self) -> String {
        let wire = self.name().trim_start_matches("REMOTE_PROC_");
        let mut out = String::from("vir");
        for word in wire.split('_') {
            match word {
                "XML" | "UUID" | "ID" | "CPU" | "OS" | "URI" => out.push_str(word),
                _ => {
                    let mut c = word.chars();
                    if let Some(first) = c.next() {
                        out.push(first);
                        out.extend(c.map(|ch| ch.to_ascii_lowercase()));
                    }
                }
            }
        }
        out
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
    }
}
