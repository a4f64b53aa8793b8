//! The network driver's place. rvirtd has no virtual networks yet, so it
//! answers as libvirt's network driver does with none defined: empty lists,
//! and lookups that fail with VIR_ERR_NO_NETWORK. The networks of issue 16
//! go here, each kept in a `store::Store` and its dnsmasq a
//! `supervise::Child`.

use rvirt_remote::calls::{
    ConnectListAllArgs, ConnectListAllNetworksRet, NameArgs, NetworkRet, UuidArgs,
};
use rvirt_remote::error::{code, from};
use rvirt_remote::procedures::NetworkCalls;
use rvirt_remote::RemoteError;

use crate::server::router::Call;

/// The virtual networks (none yet).
#[derive(Debug, Default)]
pub struct NetworkDriver;

/// libvirt's "Network not found" (VIR_ERR_NO_NETWORK, from the network
/// driver) with `detail`.
pub fn no_network(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_NETWORK, from::NETWORK, Some(detail))
}

impl<'a> NetworkCalls<Call<'a>> for NetworkDriver {
    fn connect_list_all_networks(
        &self,
        _cx: &Call<'a>,
        _a: ConnectListAllArgs,
    ) -> Result<ConnectListAllNetworksRet, RemoteError> {
        Ok(ConnectListAllNetworksRet {
            nets: Vec::new(),
            ret: 0,
        })
    }

    fn network_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<NetworkRet, RemoteError> {
        Err(no_network(&format!(
            "no network with matching name '{}'",
            a.name
        )))
    }

    fn network_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: UuidArgs,
    ) -> Result<NetworkRet, RemoteError> {
        Err(no_network(&format!(
            "no network with matching uuid '{}'",
            a.uuid
        )))
    }
}
