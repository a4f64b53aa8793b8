//! The graphical console of a running domain: VNC ports from 5900 as
//! libvirt's port allocator hands them out (the lowest port no running
//! domain holds and nothing on the host is bound to, released when the
//! VM stops), the live XML's `port` and listen address, and the password
//! set over QMP before the vCPUs run.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_domain::argv::{vnc_listen, vnc_port, VncListen, VNC_PORT_MIN};
use rvirt_domain::xml::{Element, Node};
use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;
use rvirt_remote::RemoteError;

/// The last port libvirt's `display` range offers (qemu.conf's
/// `remote_display_port_max`).
const VNC_PORT_MAX: u16 = 65535;

/// The ports the running domains' VNC servers hold.
#[derive(Debug, Default)]
pub struct VncPorts {
    used: Mutex<BTreeSet<u16>>,
}

/// Ports held for one running domain; dropping it (when its [`Running`]
/// record goes, the VM having stopped) gives them back.
///
/// [`Running`]: super::registry::Running
#[derive(Debug, Default)]
pub struct PortLease {
    ports: Vec<u16>,
    pool: Option<Arc<VncPorts>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut used = pool.lock();
            for p in &self.ports {
                used.remove(p);
            }
        }
    }
}

/// Whether nothing on the host listens on `port`, as libvirt checks it:
/// binding the wildcard addresses of both families.
fn free_on_host(port: u16) -> bool {
    if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_err() {
        return false;
    }
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(_) => true,
        // A host without IPv6 only has the IPv4 side to check.
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        ),
    }
}

/// The `<graphics type='vnc'>` elements of `dom`.
fn vnc_elements(dom: &mut Domain) -> impl Iterator<Item = &mut Element> {
    dom.devices
        .others
        .iter_mut()
        .filter(|o| o.kind() == "graphics" && o.dev_type() == Some("vnc"))
        .map(|o| &mut o.element)
}

impl VncPorts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u16>> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The definition to start: each VNC server's port chosen (autoport)
    /// or taken as given, and its listen address written out as libvirt's
    /// live XML shows it (`listen=` and `<listen type='address'
    /// address=…/>`).
    /// A `<listen type='socket'>` without a path gets `socket`, as libvirt
    /// names one in the domain's directory.
    pub fn assign(
        self: &Arc<Self>,
        def: &Domain,
        socket: &std::path::Path,
    ) -> Result<(Domain, PortLease), RemoteError> {
        let mut dom = def.clone();
        let mut lease = PortLease {
            ports: Vec::new(),
            pool: Some(self.clone()),
        };
        for g in vnc_elements(&mut dom) {
            let address = match vnc_listen(g) {
                VncListen::Address(a) => a,
                VncListen::Socket(None) => {
                    if let Some(dir) = socket.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            RemoteError::operation_failed(&format!(
                                "cannot create {}: {e}",
                                dir.display()
                            ))
                        })?;
                    }
                    set_socket(g, &socket.to_string_lossy());
                    continue;
                }
                _ => continue,
            };
            let port = match vnc_port(g) {
                Some(p) => {
                    // A fixed port is the user's: held, not checked (the
                    // VMM says so if it is taken).
                    self.lock().insert(p);
                    p
                }
                None => self.allocate()?,
            };
            lease.ports.push(port);
            g.set_attr("port", port.to_string());
            if g.attr("autoport").is_none() {
                g.set_attr("autoport", "yes");
            }
            g.set_attr("listen", address.clone());
            set_listen_address(g, &address);
            in_libvirts_order(g);
        }
        Ok((dom, lease))
    }

    /// The ports a re-adopted VM's live definition shows, held again.
    pub fn adopt(self: &Arc<Self>, live: &Domain) -> PortLease {
        let mut live = live.clone();
        let ports: Vec<u16> = vnc_elements(&mut live)
            .filter_map(|g| g.attr("port")?.parse().ok())
            .collect();
        self.lock().extend(&ports);
        PortLease {
            ports,
            pool: Some(self.clone()),
        }
    }

    fn allocate(&self) -> Result<u16, RemoteError> {
        let mut used = self.lock();
        let port = (VNC_PORT_MIN..=VNC_PORT_MAX)
            .find(|p| !used.contains(p) && free_on_host(*p))
            .ok_or_else(|| {
                // libvirt's virPortAllocatorAcquire.
                RemoteError::internal(&format!(
                    "Unable to find an unused port in range 'display' ({VNC_PORT_MIN}-{VNC_PORT_MAX})"
                ))
            })?;
        used.insert(port);
        Ok(port)
    }
}

/// `<graphics>` attributes in the order libvirt writes them, others after.
fn in_libvirts_order(g: &mut Element) {
    const ORDER: &[&str] = &[
        "type",
        "port",
        "autoport",
        "websocket",
        "listen",
        "keymap",
        "sharePolicy",
        "passwd",
        "passwdValidTo",
        "connected",
    ];
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
    g.attrs.sort_by_key(|(k, _)| rank(k));
}

/// Gives the first `<listen type='socket'>` its path.
fn set_socket(g: &mut Element, path: &str) {
    for n in &mut g.children {
        if let Node::Element(l) = n {
            if l.name == "listen" && l.attr("type") == Some("socket") {
                l.set_attr("socket", path.to_string());
                return;
            }
        }
    }
}

/// Gives the first `<listen type='address'>` the address, adding one if
/// there is no `<listen>`.
fn set_listen_address(g: &mut Element, address: &str) {
    for n in &mut g.children {
        if let Node::Element(l) = n {
            if l.name == "listen" {
                if l.attr("type").unwrap_or("address") == "address" {
                    l.set_attr("address", address.to_string());
                }
                return;
            }
        }
    }
    let mut l = Element::new("listen");
    l.set_attr("type", "address");
    l.set_attr("address", address.to_string());
    g.children.push(Node::Element(l));
}

/// Seconds since the epoch of `passwdValidTo` (`YYYY-MM-DDTHH:MM:SS`,
/// UTC, as libvirt reads it); `None` if it is not one.
fn valid_to(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let num = |v: Option<&str>| v?.parse::<i64>().ok();
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next())?, num(d.next())?, num(d.next())?);
    let mut t = time.splitn(3, ':');
    let (h, min, sec) = (num(t.next())?, num(t.next())?, num(t.next())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

/// `passwd=` of each VNC server, set over QMP before the guest runs, then
/// its expiry (`passwdValidTo`, else never), as libvirt does after starting
/// QEMU with `password=on` (qemuDomainChangeGraphicsPasswords).
pub fn set_passwords(def: &Domain, qmp: &QmpClient) -> Result<(), RemoteError> {
    let vnc = def
        .devices
        .others
        .iter()
        .filter(|o| o.kind() == "graphics" && o.dev_type() == Some("vnc"));
    for g in vnc {
        if let Some(pw) = g.element.attr("passwd") {
            qmp.execute(
                "set_password",
                Some(serde_json::json!({"protocol": "vnc", "password": pw})),
            )
            .map_err(|e| qmp_failed("cannot set the VNC password", &e))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let time = match g.element.attr("passwdValidTo").and_then(valid_to) {
                None => "never".to_string(),
                Some(t) if t <= now => "now".to_string(),
                Some(t) => t.to_string(),
            };
            qmp.execute(
                "expire_password",
                Some(serde_json::json!({"protocol": "vnc", "time": time})),
            )
            .map_err(|e| qmp_failed("cannot set the VNC password's expiry", &e))?;
        }
    }
    Ok(())
}

/// `VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH`.
pub const OPEN_GRAPHICS_SKIPAUTH: u32 = 1;

/// The `idx`th `<graphics>` of a running domain's live definition, as
/// libvirt counts them; only VNC has a server behind it.
fn graphics_at(live: &Domain, idx: u32) -> Result<(), RemoteError> {
    let g = live
        .devices
        .others
        .iter()
        .filter(|o| o.kind() == "graphics")
        .nth(idx as usize)
        .ok_or_else(|| {
            RemoteError::invalid_arg(&format!("No graphics backend with index {idx}"))
        })?;
    match g.dev_type() {
        Some("vnc") => Ok(()),
        other => Err(RemoteError::operation_invalid(&format!(
            "Can only open VNC or SPICE graphics backends, not {}",
            other.unwrap_or_default()
        ))),
    }
}

fn qmp_failed(what: &str, e: &rvirt_qmp::ClientError) -> RemoteError {
    RemoteError::operation_failed(&format!("{what}: {}", crate::error_chain(e)))
}

/// Makes `fd` a client of the VM's VNC server: `getfd` then `add_client`,
/// as libvirt's qemuMonitorOpenGraphics (`skipauth` from the flags).
fn add_client(qmp: &QmpClient, fd: std::os::fd::OwnedFd, flags: u32) -> Result<(), RemoteError> {
    use std::os::fd::AsFd;
    qmp.execute_with_fd(
        "getfd",
        Some(serde_json::json!({"fdname": "graphicsfd"})),
        fd.as_fd(),
    )
    .map_err(|e| qmp_failed("cannot pass the graphics socket", &e))?;
    // The VMM holds its own copy now.
    drop(fd);
    qmp.execute(
        "add_client",
        Some(serde_json::json!({
            "protocol": "vnc",
            "fdname": "graphicsfd",
            "skipauth": flags & OPEN_GRAPHICS_SKIPAUTH != 0,
        })),
    )
    .map_err(|e| qmp_failed("cannot add the graphics client", &e))?;
    Ok(())
}

impl super::DomainDriver {
    /// DOMAIN_OPEN_GRAPHICS_FD: one end of a new socket pair becomes a
    /// client of the VM's VNC server (`getfd` + `add_client`, as libvirt's
    /// qemuMonitorOpenGraphics), the other goes back with the reply.
    pub fn open_graphics_fd(
        &self,
        dom: &rvirt_remote::NonnullDomain,
        idx: u32,
        flags: u32,
    ) -> Result<std::os::fd::OwnedFd, RemoteError> {
        RemoteError::check_flags(flags, OPEN_GRAPHICS_SKIPAUTH, "qemuDomainOpenGraphicsFD")?;
        let (_, run) = self.running(dom)?;
        graphics_at(&run.live(), idx)?;
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| {
            RemoteError::operation_failed(&format!("Unable to create socket pair: {e}"))
        })?;
        add_client(&run.qmp, theirs, flags)?;
        Ok(ours)
    }

    /// DOMAIN_OPEN_GRAPHICS: the socket the client passed with the call
    /// becomes a client of the VM's VNC server, as libvirt's
    /// qemuDomainOpenGraphics; `fd` is `None` when the call carried none.
    pub fn open_graphics(
        &self,
        dom: &rvirt_remote::NonnullDomain,
        idx: u32,
        fd: Option<std::os::fd::OwnedFd>,
        flags: u32,
    ) -> Result<(), RemoteError> {
        // remoteDispatchDomainOpenGraphics's virNetMessageDupFD comes first.
        let fd = fd.ok_or_else(|| RemoteError::internal("No FD available at slot 0"))?;
        RemoteError::check_flags(flags, OPEN_GRAPHICS_SKIPAUTH, "qemuDomainOpenGraphics")?;
        let (_, run) = self.running(dom)?;
        graphics_at(&run.live(), idx)?;
        add_client(&run.qmp, fd, flags)
    }

    /// DOMAIN_SCREENSHOT's picture: `screendump` into an unlinked file
    /// rvirtd opens and passes with `add-fd` (a confined VMM opens no
    /// path), read back as libvirt streams its temporary file.
    pub fn screenshot(
        &self,
        dom: &rvirt_remote::NonnullDomain,
        screen: u32,
        flags: u32,
    ) -> Result<Vec<u8>, RemoteError> {
        use std::io::{Read, Seek};
        use std::os::fd::AsFd;
        RemoteError::check_flags(flags, 0, "qemuDomainScreenshot")?;
        let (name, run) = self.running(dom)?;
        let videos = run
            .live()
            .devices
            .others
            .iter()
            .filter(|o| o.kind() == "video")
            .count();
        if videos == 0 {
            return Err(RemoteError::operation_invalid(
                "no screens to take screenshot from",
            ));
        }
        if screen != 0 {
            return Err(RemoteError::invalid_arg(&format!(
                "no screen with index {screen}"
            )));
        }
        let mut file = tempfile::tempfile_in(self.tree.runtime_dir(&name)).map_err(|e| {
            RemoteError::operation_failed(&format!("cannot create a file for the screenshot: {e}"))
        })?;
        let added = run
            .qmp
            .execute_with_fd("add-fd", None, file.as_fd())
            .map_err(|e| qmp_failed("cannot pass the screenshot file", &e))?;
        let set = added["fdset-id"].as_u64().unwrap_or_default();
        let dumped = run.qmp.execute(
            "screendump",
            Some(serde_json::json!({"filename": format!("/dev/fdset/{set}")})),
        );
        let _ = run
            .qmp
            .execute("remove-fd", Some(serde_json::json!({"fdset-id": set})));
        dumped.map_err(|e| qmp_failed("cannot take the screenshot", &e))?;
        let mut out = Vec::new();
        file.rewind()
            .and_then(|()| file.read_to_end(&mut out))
            .map_err(|e| {
                RemoteError::operation_failed(&format!("cannot read the screenshot: {e}"))
            })?;
        Ok(out)
    }
}

/// The definition without its graphics passwords, as libvirt writes it
/// without VIR_DOMAIN_XML_SECURE; `None` when it has none.
pub fn without_passwords(def: &Domain) -> Option<Domain> {
    let has = |d: &Domain| {
        d.devices
            .others
            .iter()
            .any(|o| o.kind() == "graphics" && o.element.attr("passwd").is_some())
    };
    if !has(def) {
        return None;
    }
    let mut d = def.clone();
    for o in d
        .devices
        .others
        .iter_mut()
        .filter(|o| o.kind() == "graphics")
    {
        o.element.take_attr("passwd");
    }
    Some(d)
}

/// A QMP VNC event as libvirt's DOMAIN_EVENT_ID_GRAPHICS
/// (qemuMonitorJSONHandleGraphicsVNC): the server's and the client's
/// addresses, the server's auth scheme; no identity without SASL or TLS.
pub fn event(
    events: &crate::server::events::EventHub,
    dom: &rvirt_remote::NonnullDomain,
    qmp_event: &str,
    data: &serde_json::Value,
) {
    use rvirt_remote::calls::{DomainEventGraphicsAddress, DomainEventGraphicsMsg};
    let phase = match qmp_event {
        "VNC_CONNECTED" => 0,
        "VNC_INITIALIZED" => 1,
        _ => 2,
    };
    let (server, client) = (&data["server"], &data["client"]);
    if !server.is_object() || !client.is_object() {
        tracing::warn!(event = qmp_event, "VNC event without server or client");
        return;
    }
    let address = |v: &serde_json::Value| DomainEventGraphicsAddress {
        family: match v["family"].as_str() {
            Some("ipv6") => 1,
            Some("unix") => 2,
            _ => 0,
        },
        node: v["host"].as_str().unwrap_or_default().to_string(),
        service: v["service"].as_str().unwrap_or_default().to_string(),
    };
    let (local, remote) = (address(server), address(client));
    let auth_scheme = server["auth"].as_str().unwrap_or_default().to_string();
    events.graphics(dom, &|dom| DomainEventGraphicsMsg {
        dom,
        phase,
        local: local.clone(),
        remote: remote.clone(),
        auth_scheme: auth_scheme.clone(),
        subject: Vec::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::valid_to;

    #[test]
    fn password_validity_as_libvirt_reads_it() {
        assert_eq!(valid_to("1970-01-01T00:00:00"), Some(0));
        assert_eq!(valid_to("2010-04-09T15:51:00"), Some(1_270_828_260));
        assert_eq!(valid_to("2000-03-01T00:00:01"), Some(951_868_801));
        assert_eq!(valid_to("2010-13-09T15:51:00"), None);
        assert_eq!(valid_to("yesterday"), None);
    }
}
