//! Which daemon to talk to: the connection URI as virsh chooses it (`-c`,
//! `VIRSH_DEFAULT_CONNECT_URI`, `LIBVIRT_DEFAULT_URI`), turned into a
//! socket path and the name sent in CONNECT_OPEN.
//!
//! `qemu` URIs go through `rvirt_remote::uri` (rvirtd's sockets). Any
//! other driver over a local socket (`test+unix:///default?socket=...`) is
//! accepted too and sent to libvirtd's socket, so that rvirsh can be
//! compared with virsh on libvirtd's test driver.

use std::path::PathBuf;

use rvirt_remote::uri::{resolve_uri, UriError};

/// libvirtd's system socket, for non-qemu drivers without `socket=`.
const LIBVIRT_SOCKET: &str = "/run/libvirt/libvirt-sock";

/// A resolved connection target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URI as given; `uri` prints it.
    pub original: String,
    /// The socket to connect to.
    pub socket: PathBuf,
    /// The name sent in CONNECT_OPEN (transport and client parameters stripped).
    pub open_name: String,
}

/// Resolves the URI from the command line and the environment as virsh does.
pub fn resolve(
    cli: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    is_root: bool,
) -> Result<Target, UriError> {
    match resolve_uri(cli, &env, is_root) {
        Ok(u) => {
            let rd = env("XDG_RUNTIME_DIR").map(PathBuf::from);
            let home = env("HOME").map(PathBuf::from);
            Ok(Target {
                socket: u.socket_path(rd.as_deref(), home.as_deref()),
                open_name: u.open_name(),
                original: u.original,
            })
        }
        Err(UriError::UnsupportedDriver(s)) => other_driver(&s),
        Err(e) => Err(e),
    }
}

/// [`resolve`] with the process's environment and effective uid.
pub fn resolve_from_env(cli: Option<&str>) -> Result<Target, UriError> {
    let is_root = rustix::process::geteuid().is_root();
    resolve(cli, |k| std::env::var(k).ok(), is_root)
}

/// `DRIVER[+unix]:///PATH[?params]` for a driver rvirt does not serve
/// itself: libvirtd's socket unless `socket=` says otherwise.
fn other_driver(s: &str) -> Result<Target, UriError> {
    let malformed = || UriError::Malformed(s.to_string());
    let (scheme, rest) = s.split_once("://").ok_or_else(malformed)?;
    let (driver, transport) = match scheme.split_once('+') {
        Some((d, t)) => (d, Some(t)),
        None => (scheme, None),
    };
    if driver.is_empty() {
        return Err(malformed());
    }
    if let Some(t) = transport {
        if t != "unix" {
            return Err(UriError::UnsupportedTransport(t.to_string()));
        }
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    if !path.starts_with('/') {
        return Err(UriError::UnsupportedTransport(format!(
            "remote host {}",
            path.split('/').next().unwrap_or("")
        )));
    }
    let mut socket = PathBuf::from(LIBVIRT_SOCKET);
    let mut params = Vec::new();
    for p in query.split('&').filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some(("socket", v)) => socket = PathBuf::from(v),
            _ => params.push(p),
        }
    }
    let mut open_name = format!("{driver}://{path}");
    if !params.is_empty() {
        open_name.push('?');
        open_name.push_str(&params.join("&"));
    }
    Ok(Target {
        original: s.to_string(),
        socket,
        open_name,
    })
}

/// Checks that `s` parses as a URI rvirsh can use, without the environment.
#[cfg(test)]
fn parse(s: &str) -> Result<Target, UriError> {
    match rvirt_remote::uri::parse_uri(s) {
        Ok(u) => Ok(Target {
            socket: u.socket_path(None, None),
            open_name: u.open_name(),
            original: u.original,
        }),
        Err(UriError::UnsupportedDriver(s)) => other_driver(&s),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_uri_uses_rvirt_sockets() {
        let t = parse("qemu+unix:///system?socket=/tmp/s").unwrap();
        assert_eq!(t.socket, PathBuf::from("/tmp/s"));
        assert_eq!(t.open_name, "qemu:///system");
        let t = parse("qemu:///system").unwrap();
        assert_eq!(t.socket, PathBuf::from("/run/rvirt/rvirt-sock"));
    }

    #[test]
    fn test_driver_goes_to_libvirtd() {
        let t = parse("test+unix:///default?socket=/run/libvirt/libvirt-sock").unwrap();
        assert_eq!(t.open_name, "test:///default");
        assert_eq!(t.socket, PathBuf::from("/run/libvirt/libvirt-sock"));
        assert_eq!(
            t.original,
            "test+unix:///default?socket=/run/libvirt/libvirt-sock"
        );
        let t = parse("test:///default").unwrap();
        assert_eq!(t.socket, PathBuf::from(LIBVIRT_SOCKET));
    }

    #[test]
    fn refused_uris() {
        assert!(parse("test+ssh://host/default").is_err());
        assert!(parse("test://host/default").is_err());
        assert!(parse("nonsense").is_err());
    }

    #[test]
    fn environment_precedence() {
        let env = |k: &str| {
            (k == "LIBVIRT_DEFAULT_URI").then(|| "test+unix:///default?socket=/x".to_string())
        };
        assert_eq!(
            resolve(None, env, true).unwrap().socket,
            PathBuf::from("/x")
        );
        let t = resolve(Some("qemu:///session"), env, false).unwrap();
        assert_eq!(t.open_name, "qemu:///session");
        let none = |_: &str| None;
        assert_eq!(
            resolve(None, none, true).unwrap().original,
            "qemu:///system"
        );
    }
}
