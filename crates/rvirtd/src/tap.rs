//! The host side of a domain's NICs, made as libvirt's QEMU driver makes
//! it before it starts QEMU: a tap (`vnetN` unless `<target dev>` names
//! it), its MAC the guest's with the first byte 0xFE (so a bridge never
//! takes the guest's address as its own), the bridge's MTU, a port of
//! `<source bridge>`, up. The VMM gets the open tap as `-netdev
//! tap,fd=N`; the taps are not persistent, so they go away with the last
//! descriptor: at VMM exit, or when rvirtd drops them after a failed start.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use rvirt_domain::argv::TapRequest;
use rvirt_domain::Domain;
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;
use rvirt_virtio::net::{NetBackend, Tap, TapError};

/// The name the kernel completes when `<target dev>` is absent
/// (vnet0, vnet1…), libvirt's prefix for the taps it names.
pub const DEFAULT_NAME: &str = "vnet%d";

/// `virErrorDomain` VIR_FROM_NETWORK: the network driver's errors.
const FROM_NETWORK: i32 = 19;

// From <linux/sockios.h>; libc does not export it for Linux.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Why a NIC's host side could not be made. The messages are libvirt's
/// (`virReportSystemError` appends strerror after a colon).
#[derive(Debug, thiserror::Error)]
pub enum TapSetupError {
    #[error("no network with matching name '{0}'")]
    NoNetwork(String),
    /// ERANGE, as libvirt reports a name that does not fit `ifr_name`.
    #[error("Network interface name '{0}' is too long: Numerical result out of range")]
    NameTooLong(String),
    #[error("Unable to open /dev/net/tun, is tun module loaded?: {}", strerror(.0))]
    OpenTun(#[source] io::Error),
    #[error("Unable to create tap device {name}: {}", strerror(.source))]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Cannot set interface MAC on '{name}': {}", strerror(.source))]
    SetMac {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Cannot get interface MTU on '{name}': {}", strerror(.source))]
    GetMtu {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Cannot set interface MTU on '{name}': {}", strerror(.source))]
    SetMtu {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Unable to get interface index for {name}: {}", strerror(.source))]
    Index {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Unable to add bridge {bridge} port {tap}: {}", strerror(.source))]
    AddPort {
        bridge: String,
        tap: String,
        #[source]
        source: io::Error,
    },
    #[error("Cannot set interface flags on '{name}': {}", strerror(.source))]
    SetFlags {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("Unable to set up tap device {name}: {source}")]
    Other {
        name: String,
        #[source]
        source: TapError,
    },
}

impl TapSetupError {
    /// The error as libvirt reports it: an unknown network is the network
    /// driver's VIR_ERR_NO_NETWORK, the rest are system call errors.
    pub fn to_remote(&self) -> RemoteError {
        let detail = self.to_string();
        match self {
            TapSetupError::NoNetwork(_) => {
                // rvirt-remote's template table has no entry for this code,
                // so the message is put together here as virerror.c does.
                let mut e = RemoteError::new(code::NO_NETWORK, FROM_NETWORK, Some(&detail));
                e.str1 = Some("Network not found: %s".into());
                e.message = Some(format!("Network not found: {detail}"));
                e
            }
            _ => RemoteError::new(code::SYSTEM_ERROR, from::NONE, Some(&detail)),
        }
    }
}

/// strerror's text, without the " (os error N)" Rust appends.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

/// One NIC's tap, open, ready to hand to the VMM.
#[derive(Debug)]
pub struct HostTap {
    /// The `-netdev` id it backs (`hostnet0`…).
    pub netdev_id: String,
    /// Index of its `<interface>` in the definition.
    pub iface: Option<usize>,
    /// The name the kernel gave it.
    pub name: String,
    pub fd: OwnedFd,
}

/// Creates the taps `reqs` ask for (from [`rvirt_domain::derive_argv`] on
/// `dom`). Nothing is created when a NIC names a network, since rvirtd has
/// no network driver; on any failure the taps made so far are closed,
/// which removes them.
pub fn create_all(dom: &Domain, reqs: &[TapRequest]) -> Result<Vec<HostTap>, TapSetupError> {
    if let Some((_, net)) = reqs
        .iter()
        .filter_map(|r| r.attach.as_ref())
        .find(|(kind, _)| kind == "network")
    {
        return Err(TapSetupError::NoNetwork(net.clone()));
    }
    reqs.iter().map(|r| create(dom, r)).collect()
}

fn create(dom: &Domain, req: &TapRequest) -> Result<HostTap, TapSetupError> {
    let iface = req
        .netdev_id
        .strip_prefix("hostnet")
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|&i| i < dom.devices.interfaces.len());
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
    let fd = own_dup(&tap).map_err(|source| TapSetupError::Create {
        name: name.clone(),
        source,
    })?;
    drop(tap);
    let ctl = Control::new().map_err(|source| TapSetupError::SetFlags {
        name: name.clone(),
        source,
    })?;
    if let Some(mac) = iface.and_then(|i| dom.devices.interfaces[i].mac) {
        let mut host = mac.0;
        host[0] = 0xFE;
        ctl.set_mac(&name, host)
            .map_err(|source| TapSetupError::SetMac {
                name: name.clone(),
                source,
            })?;
    }
    if let Some((kind, bridge)) = &req.attach {
        if kind == "bridge" {
            let mtu = ctl.mtu(bridge).map_err(|source| TapSetupError::GetMtu {
                name: bridge.clone(),
                source,
            })?;
            ctl.set_mtu(&name, mtu)
                .map_err(|source| TapSetupError::SetMtu {
                    name: name.clone(),
                    source,
                })?;
            let index = ctl.index(&name).map_err(|source| TapSetupError::Index {
                name: name.clone(),
                source,
            })?;
            ctl.add_port(bridge, index)
                .map_err(|source| TapSetupError::AddPort {
                    bridge: bridge.clone(),
                    tap: name.clone(),
                    source,
                })?;
        }
    }
    ctl.up(&name).map_err(|source| TapSetupError::SetFlags {
        name: name.clone(),
        source,
    })?;
    tracing::debug!(tap = %name, netdev = %req.netdev_id, "host tap ready");
    Ok(HostTap {
        netdev_id: req.netdev_id.clone(),
        iface,
        name,
        fd,
    })
}

/// A descriptor of our own on the tap's open file (the `Tap` keeps its
/// `File` private); close-on-exec until it is placed for the VMM.
fn own_dup(tap: &Tap) -> io::Result<OwnedFd> {
    let raw = tap
        .raw_fd()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
    dup_cloexec(raw, 0)
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a new descriptor numbered `min` or above.
pub fn dup_cloexec(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new fd or -1;
    // it does not touch memory.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A socket for the interface ioctls (in rvirtd's network namespace).
struct Control(OwnedFd);

impl Control {
    fn new() -> io::Result<Self> {
        // SAFETY: socket() takes plain ints and returns a new fd or -1.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(Control(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// An `ifreq` naming `name` (checked shorter than IFNAMSIZ by the
    /// callers: a tap name the kernel returned, or a bridge name).
    fn req(name: &str) -> io::Result<libc::ifreq> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        // SAFETY: ifreq is plain data (a name and a union of plain
        // fields); all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        Ok(req)
    }

    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request used here reads and/or writes one `struct
        // ifreq`, which `req` is, and it lives across the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request, req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_mac(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut req = Self::req(name)?;
        // SAFETY: sockaddr is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
        addr.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in addr.sa_data.iter_mut().zip(mac) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_hwaddr = addr;
        self.ioctl(libc::SIOCSIFHWADDR, &mut req)
    }

    fn mtu(&self, name: &str) -> io::Result<libc::c_int> {
        let mut req = Self::req(name)?;
        self.ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote the MTU member.
        Ok(unsafe { req.ifr_ifru.ifru_mtu })
    }

    fn set_mtu(&self, name: &str, mtu: libc::c_int) -> io::Result<()> {
        let mut req = Self::req(name)?;
        req.ifr_ifru.ifru_mtu = mtu;
        self.ioctl(libc::SIOCSIFMTU, &mut req)
    }

    fn index(&self, name: &str) -> io::Result<libc::c_int> {
        let mut req = Self::req(name)?;
        self.ioctl(libc::SIOCGIFINDEX, &mut req)?;
        // SAFETY: SIOCGIFINDEX succeeded, so the kernel wrote the index member.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex })
    }

    /// Makes interface `port` (an ifindex) a port of `bridge`.
    fn add_port(&self, bridge: &str, port: libc::c_int) -> io::Result<()> {
        let mut req = Self::req(bridge)?;
        req.ifr_ifru.ifru_ifindex = port;
        self.ioctl(SIOCBRADDIF, &mut req)
    }

    fn up(&self, name: &str) -> io::Result<()> {
        let mut req = Self::req(name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut req)
    }
}

/// Puts the tap names into the live definition (`<target dev='vnet0'/>`),
/// as libvirt shows them while the domain runs.
pub fn annotate(live: &mut Domain, taps: &[HostTap]) {
    for t in taps {
        if let Some(i) = t.iface.and_then(|i| live.devices.interfaces.get_mut(i)) {
            i.target_dev = Some(t.name.clone());
        }
    }
}

/// `args` with each tap's `-netdev` taking the descriptor the VMM will
/// find at `first_fd + i` instead of opening a tap by name (`ifname=` is
/// dropped, as libvirt's command line has only `fd=`).
pub fn with_fds(args: &[String], taps: &[HostTap], first_fd: RawFd) -> Vec<String> {
    let mut out = args.to_vec();
    for i in 1..out.len() {
        if out[i - 1] != "-netdev" {
            continue;
        }
        let opts = split_opts(&out[i]);
        let Some(n) = taps
            .iter()
            .position(|t| opts.iter().any(|o| *o == format!("id={}", t.netdev_id)))
        else {
            continue;
        };
        let mut kept: Vec<&str> = opts
            .iter()
            .copied()
            .filter(|o| !o.starts_with("ifname=") && !o.starts_with("fd="))
            .collect();
        let fd = format!("fd={}", first_fd + n as RawFd);
        kept.push(&fd);
        out[i] = kept.join(",");
    }
    out
}

/// Splits QEMU's `a,b=c,…` where `,,` is a literal comma (kept escaped).
fn split_opts(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b',' {
            if b.get(i + 1) == Some(&b',') {
                i += 2;
                continue;
            }
            parts.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(netdev: &str) -> HostTap {
        HostTap {
            netdev_id: netdev.into(),
            iface: Some(0),
            name: "vnet0".into(),
            fd: dup_cloexec(0, 0).unwrap(),
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn netdevs_take_fds_in_order() {
        let args = strs(&[
            "-name",
            "guest=x",
            "-netdev",
            "tap,id=hostnet0",
            "-device",
            "virtio-net-device,netdev=hostnet0,id=net0",
            "-netdev",
            "tap,id=hostnet1,ifname=my,,tap",
            "-netdev",
            "tap,id=hostnet10,ifname=other",
        ]);
        let taps = [fake("hostnet0"), fake("hostnet1")];
        let out = with_fds(&args, &taps, 3);
        assert_eq!(out[3], "tap,id=hostnet0,fd=3");
        assert_eq!(out[5], "virtio-net-device,netdev=hostnet0,id=net0");
        assert_eq!(out[7], "tap,id=hostnet1,fd=4");
        // hostnet10 is not hostnet1: left alone.
        assert_eq!(out[9], "tap,id=hostnet10,ifname=other");
    }

    #[test]
    fn options_split_on_single_commas() {
        assert_eq!(split_opts("a,b=c,,d,e"), ["a", "b=c,,d", "e"]);
        assert_eq!(split_opts("tap"), ["tap"]);
    }

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
        assert_eq!((r.code, r.domain), (code::NO_NETWORK, FROM_NETWORK));

        assert_eq!(
            TapSetupError::NameTooLong("abcdefghijklmnop".into()).to_string(),
            "Network interface name 'abcdefghijklmnop' is too long: Numerical result out of range"
        );
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
        match create_all(&dom, &reqs) {
            Err(TapSetupError::NoNetwork(n)) => assert_eq!(n, "default"),
            other => panic!("{other:?}"),
        }
    }
}
