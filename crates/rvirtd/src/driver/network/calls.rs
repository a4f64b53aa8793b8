//! The `NetworkCalls` group of the procedure table, answered as libvirt's
//! bridge driver answers it.

use rvirt_remote::calls::{
    CallbackIdArgs, CallbackIdRet, ConnectListAllArgs, ConnectListAllNetworksRet,
    ConnectListNetworksArgs, ConnectListNetworksRet, ConnectNetworkEventRegisterAnyArgs, NameArgs,
    NetworkArgs, NetworkGetAutostartRet, NetworkGetBridgeNameRet, NetworkGetDhcpLeasesArgs,
    NetworkGetDhcpLeasesRet, NetworkGetXmlDescArgs, NetworkIsActiveRet, NetworkIsPersistentRet,
    NetworkRet, NetworkSetAutostartArgs, NetworkUpdateArgs, NetworkXmlArgs, NumRet, UuidArgs,
    XmlRet,
};
use rvirt_remote::consts::{
    network_list_flags as lf, REMOTE_NETWORK_NAME_LIST_MAX, VIR_NETWORK_EVENT_ID_LIFECYCLE,
    VIR_NETWORK_XML_INACTIVE,
};
use rvirt_remote::procedures::NetworkCalls;
use rvirt_remote::types::NonnullNetwork;
use rvirt_remote::RemoteError;

use super::{internal, no_network, Entry, NetworkDriver};
use crate::server::events::Kind;
use crate::server::router::Call;

/// Whether `e` passes CONNECT_LIST_ALL_NETWORKS' filter `flags`.
fn matches(e: &Entry, flags: u32) -> bool {
    let pair = |yes: u32, no: u32, v: bool| {
        let f = flags & (yes | no);
        f == 0 || f == (yes | no) || (v && f == yes) || (!v && f == no)
    };
    pair(lf::ACTIVE, lf::INACTIVE, e.is_active())
        && pair(lf::PERSISTENT, lf::TRANSIENT, e.config.is_some())
        && pair(lf::AUTOSTART, lf::NO_AUTOSTART, e.autostart)
}

impl NetworkDriver {
    fn names(&self, active: bool, max: i32) -> Vec<String> {
        let max = max.clamp(0, REMOTE_NETWORK_NAME_LIST_MAX as i32) as usize;
        self.table()
            .values()
            .filter(|e| e.is_active() == active)
            .map(|e| e.name.clone())
            .take(max)
            .collect()
    }

    fn with<T>(&self, net: &NonnullNetwork, f: impl FnOnce(&Entry) -> T) -> Result<T, RemoteError> {
        let t = self.table();
        Ok(f(Self::resolve(&t, net)?))
    }
}

impl<'a> NetworkCalls<Call<'a>> for NetworkDriver {
    fn connect_list_all_networks(
        &self,
        _cx: &Call<'a>,
        a: ConnectListAllArgs,
    ) -> Result<ConnectListAllNetworksRet, RemoteError> {
        let nets: Vec<NonnullNetwork> = self
            .table()
            .values()
            .filter(|e| matches(e, a.flags))
            .map(Entry::handle)
            .collect();
        let ret = nets.len() as u32;
        Ok(ConnectListAllNetworksRet {
            nets: if a.need_results != 0 {
                nets
            } else {
                Vec::new()
            },
            ret,
        })
    }

    fn connect_num_of_networks(&self, _cx: &Call<'a>, _a: ()) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.names(true, i32::MAX).len() as i32,
        })
    }

    fn connect_num_of_defined_networks(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.names(false, i32::MAX).len() as i32,
        })
    }

    fn connect_list_networks(
        &self,
        _cx: &Call<'a>,
        a: ConnectListNetworksArgs,
    ) -> Result<ConnectListNetworksRet, RemoteError> {
        Ok(ConnectListNetworksRet {
            names: self.names(true, a.maxnames),
        })
    }

    fn connect_list_defined_networks(
        &self,
        _cx: &Call<'a>,
        a: ConnectListNetworksArgs,
    ) -> Result<ConnectListNetworksRet, RemoteError> {
        Ok(ConnectListNetworksRet {
            names: self.names(false, a.maxnames),
        })
    }

    fn network_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<NetworkRet, RemoteError> {
        self.table()
            .get(&a.name)
            .map(|e| NetworkRet { net: e.handle() })
            .ok_or_else(|| no_network(&format!("no network with matching name '{}'", a.name)))
    }

    fn network_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: UuidArgs,
    ) -> Result<NetworkRet, RemoteError> {
        self.table()
            .values()
            .find(|e| e.uuid == a.uuid)
            .map(|e| NetworkRet { net: e.handle() })
            .ok_or_else(|| no_network(&format!("no network with matching uuid '{}'", a.uuid)))
    }

    fn network_define_xml(
        &self,
        _cx: &Call<'a>,
        a: NetworkXmlArgs,
    ) -> Result<NetworkRet, RemoteError> {
        self.define(&a.xml).map(|net| NetworkRet { net })
    }

    fn network_create_xml(
        &self,
        _cx: &Call<'a>,
        a: NetworkXmlArgs,
    ) -> Result<NetworkRet, RemoteError> {
        self.create_xml(&a.xml).map(|net| NetworkRet { net })
    }

    fn network_create(&self, _cx: &Call<'a>, a: NetworkArgs) -> Result<(), RemoteError> {
        self.start(&a.net)
    }

    fn network_destroy(&self, _cx: &Call<'a>, a: NetworkArgs) -> Result<(), RemoteError> {
        self.destroy(&a.net)
    }

    fn network_undefine(&self, _cx: &Call<'a>, a: NetworkArgs) -> Result<(), RemoteError> {
        self.undefine(&a.net)
    }

    fn network_get_xml_desc(
        &self,
        _cx: &Call<'a>,
        a: NetworkGetXmlDescArgs,
    ) -> Result<XmlRet, RemoteError> {
        if a.flags & !VIR_NETWORK_XML_INACTIVE != 0 {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported flags (0x{:x}) in function networkGetXMLDesc",
                a.flags & !VIR_NETWORK_XML_INACTIVE
            )));
        }
        self.with(&a.net, |e| {
            let def = if a.flags & VIR_NETWORK_XML_INACTIVE != 0 {
                e.config.as_ref().or(e.current())
            } else {
                e.current()
            };
            def.map(|d| XmlRet { xml: d.to_xml() })
        })?
        .ok_or_else(|| internal("the network has no definition"))
    }

    fn network_get_autostart(
        &self,
        _cx: &Call<'a>,
        a: NetworkArgs,
    ) -> Result<NetworkGetAutostartRet, RemoteError> {
        self.with(&a.net, |e| NetworkGetAutostartRet {
            autostart: i32::from(e.autostart),
        })
    }

    fn network_set_autostart(
        &self,
        _cx: &Call<'a>,
        a: NetworkSetAutostartArgs,
    ) -> Result<(), RemoteError> {
        self.set_autostart(&a.net, a.autostart != 0)
    }

    fn network_get_bridge_name(
        &self,
        _cx: &Call<'a>,
        a: NetworkArgs,
    ) -> Result<NetworkGetBridgeNameRet, RemoteError> {
        self.with(&a.net, |e| {
            e.current()
                .and_then(|d| d.bridge_name())
                .map(|b| NetworkGetBridgeNameRet {
                    name: b.to_string(),
                })
                .ok_or_else(|| {
                    internal(&format!(
                        "network '{}' does not have a bridge name.",
                        e.name
                    ))
                })
        })?
    }

    fn network_is_active(
        &self,
        _cx: &Call<'a>,
        a: NetworkArgs,
    ) -> Result<NetworkIsActiveRet, RemoteError> {
        self.with(&a.net, |e| NetworkIsActiveRet {
            active: i32::from(e.is_active()),
        })
    }

    fn network_is_persistent(
        &self,
        _cx: &Call<'a>,
        a: NetworkArgs,
    ) -> Result<NetworkIsPersistentRet, RemoteError> {
        self.with(&a.net, |e| NetworkIsPersistentRet {
            persistent: i32::from(e.config.is_some()),
        })
    }

    fn network_update(&self, _cx: &Call<'a>, a: NetworkUpdateArgs) -> Result<(), RemoteError> {
        self.update(
            &a.net,
            a.command,
            a.section,
            a.parent_index,
            &a.xml,
            a.flags,
        )
    }

    fn network_get_dhcp_leases(
        &self,
        _cx: &Call<'a>,
        a: NetworkGetDhcpLeasesArgs,
    ) -> Result<NetworkGetDhcpLeasesRet, RemoteError> {
        if a.flags != 0 {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported flags (0x{:x}) in function networkGetDHCPLeases",
                a.flags
            )));
        }
        let leases = self.leases(&a.net, a.mac.as_deref())?;
        let ret = leases.len() as u32;
        Ok(NetworkGetDhcpLeasesRet {
            leases: if a.need_results != 0 {
                leases
            } else {
                Vec::new()
            },
            ret,
        })
    }

    fn connect_network_event_register_any(
        &self,
        cx: &Call<'a>,
        a: ConnectNetworkEventRegisterAnyArgs,
    ) -> Result<CallbackIdRet, RemoteError> {
        if a.event_id != VIR_NETWORK_EVENT_ID_LIFECYCLE {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported network event ID {}",
                a.event_id
            )));
        }
        let only = a.net.map(|n| n.uuid);
        let callback_id =
            self.events
                .register_kind(&cx.client.sub, Kind::Network, a.event_id, only);
        Ok(CallbackIdRet { callback_id })
    }

    fn connect_network_event_deregister_any(
        &self,
        cx: &Call<'a>,
        a: CallbackIdArgs,
    ) -> Result<(), RemoteError> {
        if !self
            .events
            .deregister_kind(&cx.client.sub, Kind::Network, a.callback_id)
        {
            return Err(RemoteError::invalid_arg(&format!(
                "callback ID {} not registered",
                a.callback_id
            )));
        }
        Ok(())
    }
}
