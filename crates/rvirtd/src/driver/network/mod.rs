//! The network driver: libvirt's virtual networks. Each network's
//! definition is kept in a `store::Store` (`etc/rvirt/qemu/networks`),
//! its autostart link beside it; an active one has its host side (bridge,
//! addresses, firewall rules, a supervised dnsmasq: [`host`]) and a
//! runtime record (`run/rvirt/network/NAME.json`: the live definition,
//! dnsmasq's pid record) from which a restarted rvirtd takes it over,
//! even after `kill -9`, as libvirtd does.
//!
//! | module | job |
//! | --- | --- |
//! | [`calls`] | the `NetworkCalls` group of the procedure table |
//! | [`host`] | making and unmaking the host side, libvirt's order, undone on failure |
//! | [`dnsmasq`] | dnsmasq's configuration, start, adoption |
//! | [`firewall`] | the nftables table of a network |
//! | [`leases`] | the leases file the lease helper writes |
//!
//! Lock order: a network's job lock (held across a whole start, destroy,
//! update or undefine), then the table (short lookups and updates, never
//! across a wait or a child process).

pub mod calls;
pub mod dnsmasq;
pub mod firewall;
pub mod host;
pub mod leases;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rvirt_domain::mac::Mac;
use rvirt_domain::network::{ErrorKind, Kind, Network};
use rvirt_remote::calls::NetworkDhcpLease;
use rvirt_remote::consts::{ip_addr_type, network_event};
use rvirt_remote::error::{code, from};
use rvirt_remote::types::NonnullNetwork;
use rvirt_remote::{RemoteError, Uuid};
use serde::{Deserialize, Serialize};

use crate::paths::Tree;
use crate::server::events::EventHub;
use crate::store::{Definition, Store};
use crate::supervise::{Child, Record};
use dnsmasq::Files;

/// libvirt's "Network not found" (VIR_ERR_NO_NETWORK, from the network
/// driver) with `detail`.
pub fn no_network(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_NETWORK, from::NETWORK, Some(detail))
}

fn invalid(detail: &str) -> RemoteError {
    RemoteError::new(code::OPERATION_INVALID, from::NETWORK, Some(detail))
}

fn internal(detail: &str) -> RemoteError {
    RemoteError::new(code::INTERNAL_ERROR, from::NETWORK, Some(detail))
}

/// A model error as libvirt reports it.
fn model_error(e: &rvirt_domain::network::Error) -> RemoteError {
    let c = match e.kind() {
        ErrorKind::Xml => code::XML_ERROR,
        ErrorKind::Internal => code::INTERNAL_ERROR,
        ErrorKind::Unsupported => code::CONFIG_UNSUPPORTED,
    };
    RemoteError::new(c, from::NETWORK, Some(&e.to_string()))
}

impl Definition for Network {
    const KIND: &'static str = "network";

    fn parse(text: &str) -> Result<Self, String> {
        Network::from_xml(text).map_err(|e| e.to_string())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn to_xml(&self) -> String {
        Network::to_xml(self)
    }

    fn check_stored(&self) -> Result<(), String> {
        match self.uuid {
            Some(_) => Ok(()),
            None => Err("it has no UUID".into()),
        }
    }
}

/// How rvirtd runs a network's host side.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Debian's dnsmasq.
    pub dnsmasq: PathBuf,
    /// `rvirt-leaseshelper`, dnsmasq's `--dhcp-script`.
    pub leases_helper: PathBuf,
    /// nftables' `nft`.
    pub nft: PathBuf,
    /// Define and autostart the `default` network when the tree has no
    /// networks directory yet (libvirt's packages install it so).
    pub install_default: bool,
}

/// An active network.
pub struct Live {
    pub def: Network,
    pub dnsmasq: Option<Arc<Child>>,
    /// This rvirtd made (or took over) the bridge and the rules.
    pub made_bridge: bool,
    pub rules: bool,
}

/// One network.
pub struct Entry {
    pub name: String,
    pub uuid: Uuid,
    /// The persistent definition; None for a transient network.
    pub config: Option<Network>,
    pub live: Option<Live>,
    pub autostart: bool,
    pub job: Arc<Mutex<()>>,
}

impl Entry {
    fn new(name: String, uuid: Uuid) -> Self {
        Entry {
            name,
            uuid,
            config: None,
            live: None,
            autostart: false,
            job: Arc::new(Mutex::new(())),
        }
    }

    pub fn handle(&self) -> NonnullNetwork {
        NonnullNetwork {
            name: self.name.clone(),
            uuid: self.uuid,
        }
    }

    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }

    /// The definition in force: the live one while active.
    pub fn current(&self) -> Option<&Network> {
        self.live.as_ref().map(|l| &l.def).or(self.config.as_ref())
    }
}

/// What survives a restart of rvirtd about an active network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeRecord {
    /// The live definition.
    pub xml: String,
    pub dnsmasq: Option<Record>,
    pub made_bridge: bool,
    pub rules: bool,
}

/// The networks of one daemon.
pub struct NetworkDriver {
    pub tree: Tree,
    pub store: Store<Network>,
    pub cfg: NetworkConfig,
    table: Mutex<BTreeMap<String, Entry>>,
    pub events: Arc<EventHub>,
}

pub(crate) fn wire_uuid(u: &uuid::Uuid) -> Uuid {
    Uuid(*u.as_bytes())
}

/// The network libvirt's packages install (`/usr/share/libvirt/networks/default.xml`).
pub const DEFAULT_NETWORK: &str = "<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
";

impl NetworkDriver {
    pub fn new(tree: &Tree, cfg: NetworkConfig, events: Arc<EventHub>) -> Arc<Self> {
        Arc::new(NetworkDriver {
            store: Store::new(&tree.network_config_dir, &tree.network_autostart_dir),
            tree: tree.clone(),
            cfg,
            table: Mutex::new(BTreeMap::new()),
            events,
        })
    }

    pub fn table(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tools(&self) -> host::Tools<'_> {
        host::Tools {
            dnsmasq: &self.cfg.dnsmasq,
            helper: &self.cfg.leases_helper,
            nft: &self.cfg.nft,
        }
    }

    fn files(&self, net: &Network) -> Files {
        Files::new(
            &self.tree,
            &net.name,
            net.bridge_name().unwrap_or(&net.name),
        )
    }

    fn record_file(&self, name: &str) -> PathBuf {
        self.tree.network_state_dir.join(format!("{name}.json"))
    }

    fn save_record(&self, live: &Live) -> Result<(), RemoteError> {
        let files = self.files(&live.def);
        let rec = RuntimeRecord {
            xml: live.def.to_xml(),
            dnsmasq: live
                .dnsmasq
                .as_ref()
                .map(|c| c.record(&dnsmasq::marker(&files))),
            made_bridge: live.made_bridge,
            rules: live.rules,
        };
        let text = serde_json::to_string_pretty(&rec).map_err(|e| internal(&e.to_string()))?;
        let path = self.record_file(&live.def.name);
        crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| {
            internal(&format!(
                "cannot write network status file {}: {e}",
                path.display()
            ))
        })
    }

    /// The entry a call names: by UUID, as libvirt's networkObjFromNetwork.
    pub fn resolve<'t>(
        t: &'t BTreeMap<String, Entry>,
        net: &NonnullNetwork,
    ) -> Result<&'t Entry, RemoteError> {
        t.values().find(|e| e.uuid == net.uuid).ok_or_else(|| {
            no_network(&format!(
                "no network with matching uuid '{}' ({})",
                net.uuid, net.name
            ))
        })
    }

    /// Whether a bridge name is taken by another network or by a link of
    /// the host.
    fn bridge_in_use(&self, t: &BTreeMap<String, Entry>, name: &str, br: &str) -> bool {
        let other_has = t.values().filter(|e| e.name != name).any(|e| {
            e.config.as_ref().and_then(|c| c.bridge_name()) == Some(br)
                || e.live.as_ref().and_then(|l| l.def.bridge_name()) == Some(br)
        });
        other_has
            || rvirt_hostnet::Interfaces::new()
                .map(|i| i.exists(br))
                .unwrap_or(false)
    }

    /// Parses, checks and fills in a definition as libvirt's bridge driver
    /// does on define and create.
    fn prepare(&self, t: &BTreeMap<String, Entry>, xml: &str) -> Result<Network, RemoteError> {
        let mut net = Network::from_xml(xml).map_err(|e| model_error(&e))?;
        if let Some(e) = t.get(&net.name) {
            match net.uuid {
                None => net.uuid = Some(uuid::Uuid::from_bytes(e.uuid.0)),
                Some(u) if wire_uuid(&u) != e.uuid => {
                    return Err(RemoteError::new(
                        code::OPERATION_FAILED,
                        from::NETWORK,
                        Some(&format!(
                            "network '{}' is already defined with uuid {}",
                            net.name, e.uuid
                        )),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(u) = net.uuid {
            if let Some(other) = t
                .values()
                .find(|e| e.uuid == wire_uuid(&u) && e.name != net.name)
            {
                return Err(RemoteError::new(
                    code::OPERATION_FAILED,
                    from::NETWORK,
                    Some(&format!(
                        "network '{}' already exists with uuid {}",
                        other.name, other.uuid
                    )),
                ));
            }
        }
        if net.kind() == Kind::Virtual {
            if let Some(br) = net.bridge_name().filter(|b| !b.contains("%d")) {
                let taken = t.values().filter(|e| e.name != net.name).any(|e| {
                    e.config.as_ref().and_then(|c| c.bridge_name()) == Some(br)
                        || e.live.as_ref().and_then(|l| l.def.bridge_name()) == Some(br)
                });
                if taken {
                    return Err(internal(&format!("bridge name '{br}' already in use.")));
                }
            }
        }
        let name = net.name.clone();
        net.fill_in(&|br| self.bridge_in_use(t, &name, br))
            .map_err(|e| model_error(&e))?;
        Ok(net)
    }

    /// Loads the definitions and the runtime records; active networks are
    /// taken over (their dnsmasq adopted or started again, their rules
    /// applied again); a network whose bridge is gone is cleaned up.
    pub fn load(&self, first_start: bool) {
        for l in self.store.load_all() {
            let Some(u) = l.def.uuid else { continue };
            let mut e = Entry::new(l.def.name.clone(), wire_uuid(&u));
            e.autostart = l.autostart;
            e.config = Some(l.def);
            self.table().insert(e.name.clone(), e);
        }
        let mut records: Vec<PathBuf> = std::fs::read_dir(&self.tree.network_state_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        records.sort();
        for path in records {
            self.take_over(&path);
        }
        if first_start && self.cfg.install_default {
            self.install_default();
        }
    }

    fn take_over(&self, path: &std::path::Path) {
        let rec: Option<RuntimeRecord> = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let Some(rec) = rec else {
            tracing::warn!(file = %path.display(), "unreadable network record removed");
            let _ = std::fs::remove_file(path);
            return;
        };
        let def = match Network::from_xml(&rec.xml) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "network record skipped");
                return;
            }
        };
        let Some(u) = def.uuid else { return };
        let files = self.files(&def);
        let bridge_up = match (def.kind(), def.bridge_name()) {
            (Kind::Virtual | Kind::HostBridge, Some(br)) => rvirt_hostnet::Interfaces::new()
                .map(|i| i.exists(br))
                .unwrap_or(false),
            _ => true,
        };
        if !bridge_up {
            tracing::info!(network = %def.name, "network's bridge is gone; marked inactive");
            if let Some(d) = rec.dnsmasq.as_ref().and_then(dnsmasq::adopt) {
                dnsmasq::stop(&d);
            }
            if rec.rules {
                if let Some(br) = def.bridge_name() {
                    let _ = firewall::remove(&self.cfg.nft, br);
                }
            }
            let _ = std::fs::remove_file(path);
            return;
        }
        let mut d = rec.dnsmasq.as_ref().and_then(dnsmasq::adopt);
        if d.is_none() && def.kind() == Kind::Virtual && dnsmasq::needed(&def) {
            // As libvirtd's networkRefreshDaemons: a dnsmasq that died while
            // rvirtd was away is started again.
            let p = dnsmasq::Programs {
                dnsmasq: &self.cfg.dnsmasq,
                helper: &self.cfg.leases_helper,
            };
            match dnsmasq::start(&p, &def, def.bridge_name().unwrap_or_default(), &files) {
                Ok(c) => d = Some(c),
                Err(e) => {
                    tracing::warn!(network = %def.name, error = %crate::error_chain(&e), "dnsmasq not restarted")
                }
            }
        }
        if rec.rules {
            if let Some(br) = def.bridge_name() {
                if let Err(e) = firewall::apply(&self.cfg.nft, &def, br) {
                    tracing::warn!(network = %def.name, error = %crate::error_chain(&e), "rules not applied again");
                }
            }
        }
        tracing::info!(network = %def.name, dnsmasq = ?d.as_ref().map(|c| c.pid()), "active network taken over");
        let live = Live {
            def,
            dnsmasq: d,
            made_bridge: rec.made_bridge,
            rules: rec.rules,
        };
        let _ = self.save_record(&live);
        let mut t = self.table();
        let e = t
            .entry(live.def.name.clone())
            .or_insert_with(|| Entry::new(live.def.name.clone(), wire_uuid(&u)));
        e.live = Some(live);
    }

    /// Defines the `default` network and marks it autostart, as libvirt's
    /// packages do at install; skipped when its subnet is already routed
    /// here (another network or a host interface has it).
    fn install_default(&self) {
        if self.table().contains_key("default") {
            return;
        }
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let Ok(net) = Network::from_xml(DEFAULT_NETWORK) else {
            return;
        };
        if let Err(e) = host::check_route_collision(&net, &routes) {
            tracing::info!(reason = %e, "the default network is not installed");
            return;
        }
        match self.define(DEFAULT_NETWORK) {
            Ok(h) => {
                if let Err(e) = self.set_autostart(&h, true) {
                    tracing::warn!(error = %e, "default network not marked autostart");
                }
                tracing::info!("default network installed");
            }
            Err(e) => tracing::warn!(error = %e, "default network not installed"),
        }
    }

    /// Starts every autostart network that is not active, in name order,
    /// before the domains' autostart needs them.
    pub fn autostart(&self) {
        let names: Vec<NonnullNetwork> = self
            .table()
            .values()
            .filter(|e| e.autostart && !e.is_active())
            .map(Entry::handle)
            .collect();
        for h in names {
            if let Err(e) = self.start(&h) {
                tracing::error!(network = %h.name, error = %e, "autostart failed");
            }
        }
    }

    fn job(&self, net: &NonnullNetwork) -> Result<Arc<Mutex<()>>, RemoteError> {
        let t = self.table();
        Ok(Self::resolve(&t, net)?.job.clone())
    }

    /// NETWORK_DEFINE_XML.
    pub fn define(&self, xml: &str) -> Result<NonnullNetwork, RemoteError> {
        let mut t = self.table();
        let net = self.prepare(&t, xml)?;
        let u = net
            .uuid
            .map(|u| wire_uuid(&u))
            .ok_or_else(|| internal("no uuid"))?;
        self.store.save(&net).map_err(|e| {
            RemoteError::new(
                code::WRITE_FAILED,
                from::NETWORK,
                Some(&crate::error_chain(&e)),
            )
        })?;
        let name = net.name.clone();
        let e = t
            .entry(name.clone())
            .or_insert_with(|| Entry::new(name.clone(), u));
        e.config = Some(net);
        let h = e.handle();
        drop(t);
        tracing::info!(network = %name, "network defined");
        self.events.network_lifecycle(&h, network_event::DEFINED);
        Ok(h)
    }

    /// NETWORK_UNDEFINE.
    pub fn undefine(&self, net: &NonnullNetwork) -> Result<(), RemoteError> {
        let job = self.job(net)?;
        let _j = job.lock().unwrap_or_else(PoisonError::into_inner);
        let mut t = self.table();
        let e = Self::resolve(&t, net)?;
        if e.config.is_none() {
            return Err(invalid("can't undefine transient network"));
        }
        let (name, h, active) = (e.name.clone(), e.handle(), e.is_active());
        if let Err(err) = self.store.remove(&name) {
            return Err(internal(&format!(
                "cannot remove config file for network '{name}': {err}"
            )));
        }
        if active {
            if let Some(e) = t.get_mut(&name) {
                e.config = None;
                e.autostart = false;
            }
        } else {
            let removed = t.remove(&name);
            if let Some(def) = removed.and_then(|e| e.config) {
                let f = self.files(&def);
                let _ = std::fs::remove_file(&f.conf);
                let _ = std::fs::remove_file(&f.status);
                let _ = std::fs::remove_file(&f.log);
            }
        }
        drop(t);
        tracing::info!(network = %name, "network undefined");
        self.events.network_lifecycle(&h, network_event::UNDEFINED);
        Ok(())
    }

    /// NETWORK_CREATE_XML: a transient network, started at once.
    pub fn create_xml(&self, xml: &str) -> Result<NonnullNetwork, RemoteError> {
        let h = {
            let mut t = self.table();
            let net = self.prepare(&t, xml)?;
            if let Some(e) = t.get(&net.name) {
                if e.is_active() {
                    return Err(invalid(&format!(
                        "network '{}' is already active",
                        net.name
                    )));
                }
                // A persistent network of that name: libvirt starts the
                // given definition in its place.
            }
            let u = net
                .uuid
                .map(|u| wire_uuid(&u))
                .ok_or_else(|| internal("no uuid"))?;
            let name = net.name.clone();
            let e = t
                .entry(name.clone())
                .or_insert_with(|| Entry::new(name.clone(), u));
            let h = e.handle();
            // Parked as the live definition to start; made active below.
            e.live = None;
            drop(t);
            self.start_def(&h, net, true)?;
            h
        };
        Ok(h)
    }

    /// NETWORK_CREATE.
    pub fn start(&self, net: &NonnullNetwork) -> Result<(), RemoteError> {
        let def = {
            let t = self.table();
            let e = Self::resolve(&t, net)?;
            if e.is_active() {
                return Err(invalid("network is already active"));
            }
            e.config
                .clone()
                .ok_or_else(|| internal(&format!("network '{}' has no definition", e.name)))?
        };
        self.start_def(net, def, false)
    }

    fn start_def(
        &self,
        h: &NonnullNetwork,
        def: Network,
        transient: bool,
    ) -> Result<(), RemoteError> {
        let job = self.job(h)?;
        let _j = job.lock().unwrap_or_else(PoisonError::into_inner);
        if self.table().get(&def.name).is_some_and(Entry::is_active) {
            return Err(invalid("network is already active"));
        }
        let files = self.files(&def);
        let made = match host::start(&self.tools(), &def, &files) {
            Ok(m) => m,
            Err(e) => {
                if transient {
                    let mut t = self.table();
                    if t.get(&def.name)
                        .is_some_and(|e| e.config.is_none() && e.live.is_none())
                    {
                        t.remove(&def.name);
                    }
                }
                tracing::info!(network = %def.name, error = %e, "network start failed");
                return Err(e);
            }
        };
        let live = Live {
            def,
            made_bridge: made.bridge.is_some(),
            rules: made.rules,
            dnsmasq: made.dnsmasq,
        };
        if let Err(e) = self.save_record(&live) {
            host::stop(
                &self.tools(),
                host::Made {
                    bridge: live
                        .made_bridge
                        .then(|| live.def.bridge_name().unwrap_or_default().to_string()),
                    rules: live.rules,
                    dnsmasq: live.dnsmasq,
                },
            );
            return Err(e);
        }
        let name = live.def.name.clone();
        if let Some(e) = self.table().get_mut(&name) {
            e.live = Some(live);
        }
        tracing::info!(network = %name, "network started");
        self.events.network_lifecycle(h, network_event::STARTED);
        Ok(())
    }

    /// NETWORK_DESTROY.
    pub fn destroy(&self, net: &NonnullNetwork) -> Result<(), RemoteError> {
        let job = self.job(net)?;
        let _j = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (live, h) = {
            let mut t = self.table();
            let e = Self::resolve(&t, net)?;
            let name = e.name.clone();
            let e = t
                .get_mut(&name)
                .ok_or_else(|| internal("network vanished"))?;
            match e.live.take() {
                Some(l) => (l, e.handle()),
                None => return Err(invalid(&format!("network '{name}' is not active"))),
            }
        };
        let _ = std::fs::remove_file(self.record_file(&live.def.name));
        let bridge = live.def.bridge_name().map(str::to_string);
        host::stop(
            &self.tools(),
            host::Made {
                bridge: bridge.filter(|_| live.made_bridge),
                rules: live.rules,
                dnsmasq: live.dnsmasq,
            },
        );
        let _ = std::fs::remove_file(self.files(&live.def).pid);
        let mut t = self.table();
        if t.get(&live.def.name).is_some_and(|e| e.config.is_none()) {
            t.remove(&live.def.name);
        }
        drop(t);
        tracing::info!(network = %live.def.name, "network destroyed");
        self.events.network_lifecycle(&h, network_event::STOPPED);
        Ok(())
    }

    /// NETWORK_SET_AUTOSTART.
    pub fn set_autostart(&self, net: &NonnullNetwork, on: bool) -> Result<(), RemoteError> {
        let mut t = self.table();
        let e = Self::resolve(&t, net)?;
        if e.config.is_none() {
            return Err(invalid("cannot set autostart for transient network"));
        }
        let name = e.name.clone();
        self.store.set_autostart(&name, on).map_err(|err| {
            RemoteError::new(
                code::SYSTEM_ERROR,
                from::NETWORK,
                Some(&format!(
                    "Failed to create symlink for network '{name}': {err}"
                )),
            )
        })?;
        if let Some(e) = t.get_mut(&name) {
            e.autostart = on;
        }
        Ok(())
    }

    /// NETWORK_UPDATE: a DHCP host added, modified or deleted in the live
    /// definition (dnsmasq restarted with it), the persistent one, or both.
    pub fn update(
        &self,
        net: &NonnullNetwork,
        command: u32,
        section: u32,
        parent: i32,
        xml: &str,
        flags: u32,
    ) -> Result<(), RemoteError> {
        use rvirt_domain::network::update::UpdateError;
        use rvirt_remote::consts::network_update_flags::{AFFECT_CONFIG, AFFECT_LIVE};
        if flags & !(AFFECT_LIVE | AFFECT_CONFIG) != 0 {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported flags (0x{:x}) in function networkUpdate",
                flags & !(AFFECT_LIVE | AFFECT_CONFIG)
            )));
        }
        let job = self.job(net)?;
        let _j = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut config, mut live, name) = {
            let t = self.table();
            let e = Self::resolve(&t, net)?;
            (
                e.config.clone(),
                e.live.as_ref().map(|l| l.def.clone()),
                e.name.clone(),
            )
        };
        let mut flags = flags;
        if flags & (AFFECT_LIVE | AFFECT_CONFIG) == 0 {
            flags |= if live.is_some() {
                AFFECT_LIVE
            } else {
                AFFECT_CONFIG
            };
        }
        if flags & AFFECT_LIVE != 0 && live.is_none() {
            return Err(invalid("network is not running"));
        }
        if flags & AFFECT_CONFIG != 0 && config.is_none() {
            return Err(invalid(
                "cannot change persistent config of a transient network",
            ));
        }
        let map = |e: UpdateError| match e {
            UpdateError::Invalid(m) => invalid(&m),
            UpdateError::Xml(m) => RemoteError::new(code::XML_ERROR, from::NETWORK, Some(&m)),
            UpdateError::Unsupported(m) => {
                RemoteError::new(code::NO_SUPPORT, from::NETWORK, Some(&m))
            }
        };
        if flags & AFFECT_CONFIG != 0 {
            if let Some(c) = config.as_mut() {
                c.update(command, section, parent, xml).map_err(map)?;
            }
        }
        if flags & AFFECT_LIVE != 0 {
            if let Some(l) = live.as_mut() {
                l.update(command, section, parent, xml).map_err(map)?;
            }
        }
        if flags & AFFECT_CONFIG != 0 {
            if let Some(c) = &config {
                self.store.save(c).map_err(|e| {
                    RemoteError::new(
                        code::WRITE_FAILED,
                        from::NETWORK,
                        Some(&crate::error_chain(&e)),
                    )
                })?;
                if let Some(e) = self.table().get_mut(&name) {
                    e.config = config.clone();
                }
            }
        }
        if flags & AFFECT_LIVE != 0 {
            if let Some(def) = live {
                self.restart_dnsmasq(&name, def)?;
            }
        }
        Ok(())
    }

    /// Puts `def` in force for active network `name` and restarts its
    /// dnsmasq with it (the leases survive through the helper).
    fn restart_dnsmasq(&self, name: &str, def: Network) -> Result<(), RemoteError> {
        let old = self
            .table()
            .get_mut(name)
            .and_then(|e| e.live.as_mut())
            .and_then(|l| l.dnsmasq.take());
        if let Some(d) = old {
            dnsmasq::stop(&d);
        }
        let files = self.files(&def);
        let mut child = None;
        if def.kind() == Kind::Virtual && dnsmasq::needed(&def) {
            let p = dnsmasq::Programs {
                dnsmasq: &self.cfg.dnsmasq,
                helper: &self.cfg.leases_helper,
            };
            child = Some(
                dnsmasq::start(&p, &def, def.bridge_name().unwrap_or_default(), &files)
                    .map_err(|e| internal(&crate::error_chain(&e)))?,
            );
        }
        let mut t = self.table();
        let Some(live) = t.get_mut(name).and_then(|e| e.live.as_mut()) else {
            return Ok(());
        };
        live.def = def;
        live.dnsmasq = child;
        let snapshot = Live {
            def: live.def.clone(),
            dnsmasq: live.dnsmasq.clone(),
            made_bridge: live.made_bridge,
            rules: live.rules,
        };
        drop(t);
        self.save_record(&snapshot)
    }

    /// The network's DHCP leases (NETWORK_GET_DHCP_LEASES), of one MAC or all.
    pub fn leases(
        &self,
        net: &NonnullNetwork,
        mac: Option<&str>,
    ) -> Result<Vec<NetworkDhcpLease>, RemoteError> {
        let mac = match mac {
            Some(m) => Some(
                m.parse::<Mac>()
                    .map_err(|_| RemoteError::invalid_arg(&format!("invalid MAC address '{m}'")))?,
            ),
            None => None,
        };
        let def = {
            let t = self.table();
            let e = Self::resolve(&t, net)?;
            e.current()
                .cloned()
                .ok_or_else(|| internal("no definition"))?
        };
        self.leases_of(&def, mac)
    }

    fn leases_of(
        &self,
        def: &Network,
        mac: Option<Mac>,
    ) -> Result<Vec<NetworkDhcpLease>, RemoteError> {
        let Some(bridge) = def.bridge_name() else {
            return Ok(Vec::new());
        };
        let files = self.files(def);
        let all = leases::read(&files.status).map_err(|e| internal(&crate::error_chain(&e)))?;
        let now = leases::now();
        let mut out = Vec::new();
        for l in all.into_iter().filter(|l| !l.expired(now)) {
            if let Some(m) = mac {
                if l.mac.parse::<Mac>().ok() != Some(m) {
                    continue;
                }
            }
            let Ok(addr) = l.ip.parse::<std::net::IpAddr>() else {
                continue;
            };
            out.push(NetworkDhcpLease {
                iface: bridge.to_string(),
                expirytime: l.expiry,
                type_: if addr.is_ipv6() {
                    ip_addr_type::IPV6
                } else {
                    ip_addr_type::IPV4
                },
                mac: Some(l.mac),
                iaid: l.iaid,
                ipaddr: l.ip,
                prefix: dnsmasq::prefix_of(def, addr),
                hostname: l.hostname,
                clientid: l.client_id,
            });
        }
        Ok(out)
    }

    /// The host bridge and MTU a domain NIC on network `name` joins, as
    /// libvirt's network port allocation gives them; the network must be
    /// active.
    pub fn port(&self, name: &str) -> Result<(String, Option<u32>), RemoteError> {
        let t = self.table();
        let e = t
            .get(name)
            .ok_or_else(|| no_network(&format!("no network with matching name '{name}'")))?;
        let Some(live) = &e.live else {
            return Err(invalid(&format!("network '{name}' is not active")));
        };
        match (live.def.kind(), live.def.bridge_name()) {
            (Kind::Virtual | Kind::HostBridge, Some(br)) => Ok((br.to_string(), live.def.mtu)),
            _ => Err(RemoteError::new(
                code::CONFIG_UNSUPPORTED,
                from::NETWORK,
                Some(&format!(
                    "network '{name}' uses forward mode '{}', which rvirt does not connect guests to",
                    live.def.forward_mode().map_or("none", |m| m.as_str())
                )),
            )),
        }
    }

    /// The leases of one MAC on network `name` (for `domifaddr --source
    /// lease`); none when the network is unknown.
    pub fn leases_for(&self, name: &str, mac: Mac) -> Vec<NetworkDhcpLease> {
        let def = self.table().get(name).and_then(|e| e.current().cloned());
        def.map(|d| self.leases_of(&d, Some(mac)).unwrap_or_default())
            .unwrap_or_default()
    }
}
