//! The host side of a domain's NICs, made as libvirt's QEMU driver makes
//! it before it starts QEMU, through rvirt-hostnet: a tap (`vnetN` unless
//! `<target dev>` names it), its MAC the guest's with the first byte 0xFE
//! (so a bridge never takes the guest's address as its own), the bridge's
//! MTU, a port of `<source bridge>`, up. The VMM gets the open tap as
//! `-netdev tap,fd=N` (the argv derivation's fd plan); the taps are not
//! persistent, so they go away with the last descriptor: at VMM exit, or
//! when rvirtd drops them after a failed start. A NIC on a virtual network
//! (`<interface type='network'>`) gets the bridge and MTU the network
//! driver gives it, as libvirt's network port allocation does; the network
//! must be active.

use std::io;
use std::os::fd::OwnedFd;

use rvirt_domain::argv::TapRequest;
use rvirt_domain::Domain;
use rvirt_hostnet::{strerror, Interfaces, Tap, TapError};
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;

/// The name the kernel completes when `<target dev>` is absent
/// (vnet0, vnet1…), libvirt's prefix for the taps it names.
pub const DEFAULT_NAME: &str = "vnet%d";

/// Why a NIC's host side could not be made. The messages are libvirt's
/// exact text (`virReportSystemError` appends strerror after a colon), so
/// the system error is part of the message and not a `#[source]`.
#[derive(Debug, thiserror::Error)]
pub enum TapSetupError {
    #[error("no network with matching name '{0}'")]
    NoNetwork(String),
    /// The network driver's refusal (an inactive network…), as it is.
    #[error("{}", .0.message.clone().unwrap_or_default())]
    Network(RemoteError),
    /// ERANGE, as libvirt reports a name that does not fit `ifr_name`.
    #[error("Network interface name '{0}' is too long: Numerical result out of range")]
    NameTooLong(String),
    #[error("Unable to open /dev/net/tun, is tun module loaded?: {}", strerror(.0))]
    OpenTun(io::Error),
    #[error("Unable to create tap device {name}: {}", strerror(.source))]
    Create { name: String, source: io::Error },
    #[error("Cannot set interface MAC on '{name}': {}", strerror(.source))]
    SetMac { name: String, source: io::Error },
    #[error("Cannot get interface MTU on '{name}': {}", strerror(.source))]
    GetMtu { name: String, source: io::Error },
    #[error("Cannot set interface MTU on '{name}': {}", strerror(.source))]
    SetMtu { name: String, source: io::Error },
    #[error("Unable to get interface index for {name}: {}", strerror(.source))]
    Index { name: String, source: io::Error },
    #[error("Unable to add bridge {bridge} port {tap}: {}", strerror(.source))]
    AddPort {
        bridge: String,
        tap: String,
        source: io::Error,
    },
    #[error("Cannot set interface flags on '{name}': {}", strerror(.source))]
    SetFlags { name: String, source: io::Error },
    #[error("Unable to set up tap device {name}: {}", crate::error_chain(.source))]
    Other { name: String, source: TapError },
}

impl TapSetupError {
    /// The error as libvirt reports it: an unknown network is the network
    /// driver's VIR_ERR_NO_NETWORK, the rest are system call errors.
    pub fn to_remote(&self) -> RemoteError {
        let detail = self.to_string();
        match self {
            TapSetupError::NoNetwork(_) => crate::driver::network::no_network(&detail),
            TapSetupError::Network(e) => e.clone(),
            _ => RemoteError::new(code::SYSTEM_ERROR, from::NONE, Some(&detail)),
        }
    }
}

/// One NIC's tap, open, ready to hand to the VMM.
#[derive(Debug)]
pub struct HostTap {
    /// The `-netdev` id it backs (`hostnet0`…).
    pub netdev_id: String,
    pub named: NamedTap,
    pub fd: OwnedFd,
}

/// Which `<interface>` got which tap, for the live XML.
#[derive(Debug, Clone)]
pub struct NamedTap {
    /// Index of its `<interface>` in the definition.
    pub iface: Option<usize>,
    /// The name the kernel gave it.
    pub name: String,
    /// For a NIC on a virtual network: the port's id and the bridge.
    pub port: Option<(uuid::Uuid, String)>,
}

/// Where a NIC on a virtual network goes: the network driver's answer.
pub trait Networks {
    /// The bridge and MTU of active network `name`, or libvirt's error.
    fn port(&self, name: &str) -> Result<(String, Option<u32>), RemoteError>;
}

impl Networks for crate::driver::network::NetworkDriver {
    fn port(&self, name: &str) -> Result<(String, Option<u32>), RemoteError> {
        crate::driver::network::NetworkDriver::port(self, name)
    }
}

impl HostTap {
    /// The descriptor to pass, and the name to show.
    pub fn into_parts(self) -> (OwnedFd, NamedTap) {
        (self.fd, self.named)
    }
}

/// Opens the taps `reqs` ask for (from [`rvirt_domain::derive_argv`] on
/// `dom`), a NIC on a virtual network on the bridge `networks` gives it.
/// Every network is asked first, so an inactive one fails the start before
/// any tap exists; on any failure the taps made so far are closed, which
/// removes them.
pub fn open_all(
    dom: &Domain,
    reqs: &[TapRequest],
    networks: &dyn Networks,
) -> Result<Vec<HostTap>, TapSetupError> {
    let ports = reqs
        .iter()
        .map(|r| match &r.attach {
            Some((kind, net)) if kind == "network" => networks
                .port(net)
                .map(|(bridge, mtu)| Some((bridge, mtu)))
                .map_err(TapSetupError::Network),
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    reqs.iter()
        .zip(ports)
        .map(|(r, port)| open(dom, r, port))
        .collect()
}

/// Opens the one tap `reqs` asks for (a hot-plugged NIC's, interface
/// `index` of `dom`, whose back-end is not numbered by its index).
pub fn open_at(
    dom: &Domain,
    index: usize,
    reqs: &[TapRequest],
    networks: &dyn Networks,
) -> Result<HostTap, TapSetupError> {
    let Some(req) = reqs.first() else {
        return Err(TapSetupError::Other {
            name: DEFAULT_NAME.to_string(),
            source: TapError::Open(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
        });
    };
    let port = match &req.attach {
        Some((kind, net)) if kind == "network" => {
            Some(networks.port(net).map_err(TapSetupError::Network)?)
        }
        _ => None,
    };
    open_for(dom, Some(index), req, port)
}

fn open(
    dom: &Domain,
    req: &TapRequest,
    network: Option<(String, Option<u32>)>,
) -> Result<HostTap, TapSetupError> {
    let iface = req
        .netdev_id
        .strip_prefix("hostnet")
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|&i| i < dom.devices.interfaces.len());
    open_for(dom, iface, req, network)
}

fn open_for(
    dom: &Domain,
    iface: Option<usize>,
    req: &TapRequest,
    network: Option<(String, Option<u32>)>,
) -> Result<HostTap, TapSetupError> {
    let wanted = req.ifname.as_deref().unwrap_or(DEFAULT_NAME);
    if wanted.len() >= libc::IFNAMSIZ {
        return Err(TapSetupError::NameTooLong(wanted.to_string()));
    }
    let tap = Tap::open(wanted).map_err(|e| match e {
        TapError::Open(source) => TapSetupError::OpenTun(source),
        TapError::SetIff { name, source } => TapSetupError::Create { name, source },
        source => TapSetupError::Other {
            name: wanted.to_string(),
            source,
        },
    })?;
    let name = tap.name().to_string();
    let ifs = Interfaces::new().map_err(|source| TapSetupError::SetFlags {
        name: name.clone(),
        source,
    })?;
    if let Some(mac) = iface.and_then(|i| dom.devices.interfaces[i].mac) {
        let mut host = mac.0;
        host[0] = 0xFE;
        ifs.set_mac(&name, host)
            .map_err(|source| TapSetupError::SetMac {
                name: name.clone(),
                source,
            })?;
    }
    let bridge = match (&network, &req.attach) {
        (Some((bridge, _)), _) => Some(bridge.clone()),
        (None, Some((kind, bridge))) if kind == "bridge" => Some(bridge.clone()),
        _ => None,
    };
    if let Some(bridge) = &bridge {
        {
            let mtu = match network.as_ref().and_then(|(_, mtu)| *mtu) {
                Some(m) => m,
                None => ifs.mtu(bridge).map_err(|source| TapSetupError::GetMtu {
                    name: bridge.clone(),
                    source,
                })?,
            };
            ifs.set_mtu(&name, mtu)
                .map_err(|source| TapSetupError::SetMtu {
                    name: name.clone(),
                    source,
                })?;
            ifs.index(&name).map_err(|source| TapSetupError::Index {
                name: name.clone(),
                source,
            })?;
            ifs.add_bridge_port(bridge, &name)
                .map_err(|source| TapSetupError::AddPort {
                    bridge: bridge.clone(),
                    tap: name.clone(),
                    source,
                })?;
        }
    }
    ifs.set_up(&name)
        .map_err(|source| TapSetupError::SetFlags {
            name: name.clone(),
            source,
        })?;
    tracing::debug!(tap = %name, netdev = %req.netdev_id, "host tap ready");
    let port = network.map(|(bridge, _)| (uuid::Uuid::new_v4(), bridge));
    Ok(HostTap {
        netdev_id: req.netdev_id.clone(),
        named: NamedTap { iface, name, port },
        fd: tap.into(),
    })
}

/// Puts the tap names into the live definition (`<target dev='vnet0'/>`),
/// and a network NIC's port and bridge into its source (`<source
/// network='default' portid='…' bridge='virbr0'/>`), as libvirt shows them
/// while the domain runs.
pub fn annotate(live: &mut Domain, taps: &[NamedTap]) {
    for t in taps {
        if let Some(i) = t.iface.and_then(|i| live.devices.interfaces.get_mut(i)) {
            i.target_dev = Some(t.name.clone());
            if let (Some((portid, bridge)), Some(src)) = (&t.port, i.source.as_mut()) {
                src.set_attr("portid", portid.to_string());
                src.set_attr("bridge", bridge.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_libvirts() {
        let e = TapSetupError::GetMtu {
            name: "br0".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        let r = e.to_remote();
        assert_eq!(
            r.message.as_deref(),
            Some("Cannot get interface MTU on 'br0': No such device")
        );
        assert_eq!((r.code, r.domain), (code::SYSTEM_ERROR, from::NONE));

        let r = TapSetupError::NoNetwork("default".into()).to_remote();
        assert_eq!(
            r.message.as_deref(),
            Some("Network not found: no network with matching name 'default'")
        );
        assert_eq!((r.code, r.domain), (code::NO_NETWORK, from::NETWORK));

        assert_eq!(
            TapSetupError::NameTooLong("abcdefghijklmnop".into()).to_string(),
            "Network interface name 'abcdefghijklmnop' is too long: Numerical result out of range"
        );
    }

    struct NoNetworks;

    impl Networks for NoNetworks {
        fn port(&self, name: &str) -> Result<(String, Option<u32>), RemoteError> {
            Err(TapSetupError::NoNetwork(name.to_string()).to_remote())
        }
    }

    #[test]
    fn network_nics_fail_before_any_tap_is_made() {
        let dom = Domain::from_xml(
            "<domain type='kvm'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
               <interface type='network'><source network='default'/><model type='virtio'/></interface>
             </devices></domain>",
        )
        .unwrap();
        let reqs = [
            TapRequest {
                netdev_id: "hostnet0".into(),
                ifname: Some("a-name-that-is-far-too-long".into()),
                attach: None,
            },
            TapRequest {
                netdev_id: "hostnet1".into(),
                ifname: None,
                attach: Some(("network".into(), "default".into())),
            },
        ];
        match open_all(&dom, &reqs, &NoNetworks) {
            Err(TapSetupError::Network(e)) => assert_eq!(
                e.message.as_deref(),
                Some("Network not found: no network with matching name 'default'")
            ),
            other => panic!("{other:?}"),
        }
    }
}
