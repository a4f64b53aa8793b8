//! The drivers, one per kind of object, as libvirtd has them: each owns its
//! table and its store and implements its group of the procedure table
//! (`rvirt_remote::procedures`); whatever a driver does not implement
//! answers VIR_ERR_NO_SUPPORT by the table's default.
//!
//! | driver | serves |
//! | --- | --- |
//! | [`host::HostDriver`] | capabilities, node info and stats, versions, host name; host interfaces, devices, secrets and network filters (none: empty lists, "not found") |
//! | [`domain::DomainDriver`] | domains: definitions, lifecycle, queries, stats, consoles, domain events |
//! | [`network::NetworkDriver`] | virtual networks: definitions, bridges, dnsmasq, firewall rules, leases, network events |
//! | [`storage::StorageDriver`] | storage pools (dir) and their volumes: definitions, lifecycle, volumes, upload/download, pool events |
//!
//! Connection-level calls (open, features, auth) are the server's own:
//! `server::router`.

pub mod domain;
pub mod host;
pub mod network;
pub mod storage;

use std::sync::Arc;

use rvirt_remote::procedures::{self, DomainCalls, HostCalls, NetworkCalls, StorageCalls};

use crate::server::events::EventHub;
use crate::server::router::{Call, ConnectionDriver};
use crate::Config;

/// Every driver of one daemon.
pub struct Drivers {
    pub connection: ConnectionDriver,
    pub host: host::HostDriver,
    pub domain: Arc<domain::DomainDriver>,
    pub network: Arc<network::NetworkDriver>,
    pub storage: Arc<storage::StorageDriver>,
    /// Event callbacks of every client, for every driver's events.
    pub events: Arc<EventHub>,
}

impl Drivers {
    pub fn new(cfg: &Config) -> Self {
        let events = Arc::new(EventHub::default());
        let network = network::NetworkDriver::new(&cfg.tree, cfg.network.clone(), events.clone());
        let storage = storage::StorageDriver::new(cfg, events.clone());
        let domain =
            domain::DomainDriver::new(cfg, events.clone(), storage.clone(), network.clone());
        // A volume a running domain uses is not deleted: the storage
        // driver asks the domain driver (never under a storage lock).
        let weak = Arc::downgrade(&domain);
        storage.set_in_use(Box::new(move |path, pool, vol| {
            weak.upgrade().and_then(|d| d.volume_user(path, pool, vol))
        }));
        Drivers {
            connection: ConnectionDriver {
                mode: cfg.tree.mode,
                keepalive: cfg.keepalive,
            },
            host: host::HostDriver::new(cfg),
            domain,
            network,
            storage,
            events,
        }
    }
}

impl<'a> procedures::Drivers<Call<'a>> for Drivers {
    fn connection(&self) -> &dyn procedures::ConnectionCalls<Call<'a>> {
        &self.connection
    }

    fn host(&self) -> &dyn HostCalls<Call<'a>> {
        &self.host
    }

    fn domain(&self) -> &dyn DomainCalls<Call<'a>> {
        &*self.domain
    }

    fn network(&self) -> &dyn NetworkCalls<Call<'a>> {
        &*self.network
    }

    fn storage(&self) -> &dyn StorageCalls<Call<'a>> {
        &*self.storage
    }

    fn interface(&self) -> &dyn procedures::InterfaceCalls<Call<'a>> {
        &self.host
    }

    fn node_device(&self) -> &dyn procedures::NodeDeviceCalls<Call<'a>> {
        &self.host
    }

    fn secret(&self) -> &dyn procedures::SecretCalls<Call<'a>> {
        &self.host
    }

    fn nwfilter(&self) -> &dyn procedures::NwfilterCalls<Call<'a>> {
        &self.host
    }
}
