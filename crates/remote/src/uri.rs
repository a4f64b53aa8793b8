//! Connection URIs as virsh takes them: `qemu:///system`,
//! `qemu:///session`, `qemu+unix:///system?socket=PATH`, chosen with `-c`,
//! `VIRSH_DEFAULT_CONNECT_URI` or `LIBVIRT_DEFAULT_URI`.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// rvirtd's socket in system mode.
pub const SYSTEM_SOCKET: &str = "/run/rvirt/rvirt-sock";
/// The socket's path below the session's runtime directory.
pub const SESSION_SOCKET_SUFFIX: &str = "rvirt/rvirt-sock";

/// Query parameters consumed by the client side and never sent to the
/// daemon (libvirt's remote driver strips the same ones).
const CLIENT_PARAMS: &[&str] = &[
    "name",
    "command",
    "socket",
    "auth",
    "netcat",
    "keyfile",
    "no_verify",
    "no_tty",
    "pkipath",
    "known_hosts",
    "known_hosts_verify",
    "sshauth",
    "tls_priority",
    "mode",
    "proxy",
    "tls",
];

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UriError {
    /// Not `scheme://...`.
    #[error("invalid URI '{0}'")]
    Malformed(String),
    /// A driver other than `qemu`.
    #[error("no connection driver available for {0}")]
    UnsupportedDriver(String),
    /// A transport other than local UNIX sockets, or a remote host.
    #[error("transport '{0}' is not supported, only local UNIX sockets")]
    UnsupportedTransport(String),
    /// A path other than `/system` or `/session`.
    #[error("unexpected QEMU URI path '{0}', try qemu:///system")]
    BadPath(String),
}

/// `/system` (the root daemon) or `/session` (a per-user daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    System,
    Session,
}

/// A parsed connection URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUri {
    /// The URI as given; `virsh uri` prints it unchanged.
    pub original: String,
    /// The hypervisor driver (`qemu`).
    pub driver: String,
    /// `unix` for `qemu+unix://`, `None` for plain `qemu://`.
    pub transport: Option<String>,
    pub mode: Mode,
    /// The `socket=` parameter.
    pub socket: Option<PathBuf>,
    /// Other query parameters, raw, passed on to the daemon.
    pub extra_params: Vec<String>,
}

impl RemoteUri {
    /// The name sent in CONNECT_OPEN: transport and client-side
    /// parameters stripped (`qemu+unix:///system?socket=/x` -> `qemu:///system`).
    pub fn open_name(&self) -> String {
        let path = match self.mode {
            Mode::System => "/system",
            Mode::Session => "/session",
        };
        let mut s = format!("{}://{}", self.driver, path);
        if !self.extra_params.is_empty() {
            s.push('?');
            s.push_str(&self.extra_params.join("&"));
        }
        s
    }

    /// The socket to connect to: `socket=` if given, else the mode's
    /// default. `runtime_dir` is `$XDG_RUNTIME_DIR`, `home` is `$HOME`.
    pub fn socket_path(&self, runtime_dir: Option<&Path>, home: Option<&Path>) -> PathBuf {
        if let Some(s) = &self.socket {
            return s.clone();
        }
        match self.mode {
            Mode::System => PathBuf::from(SYSTEM_SOCKET),
            Mode::Session => match (runtime_dir, home) {
                (Some(d), _) => d.join(SESSION_SOCKET_SUFFIX),
                (None, Some(h)) => h.join(".cache").join(SESSION_SOCKET_SUFFIX),
                (None, None) => PathBuf::from("/tmp").join(SESSION_SOCKET_SUFFIX),
            },
        }
    }

    /// [`Self::socket_path`] with the process's environment.
    pub fn socket_path_from_env(&self) -> PathBuf {
        let rd = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        self.socket_path(rd.as_deref(), home.as_deref())
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept literally.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a `qemu[+unix]:///system|session[?params]` URI.
pub fn parse_uri(s: &str) -> Result<RemoteUri, UriError> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| UriError::Malformed(s.to_string()))?;
    let (driver, transport) = match scheme.split_once('+') {
        Some((d, t)) => (d, Some(t)),
        None => (scheme, None),
    };
    if driver.is_empty() {
        return Err(UriError::Malformed(s.to_string()));
    }
    if driver != "qemu" {
        return Err(UriError::UnsupportedDriver(s.to_string()));
    }
    if let Some(t) = transport {
        if t != "unix" {
            return Err(UriError::UnsupportedTransport(t.to_string()));
        }
    }
    let (authority_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (host, path) = match authority_path.find('/') {
        Some(i) => authority_path.split_at(i),
        None => (authority_path, ""),
    };
    // Any host, even localhost, means TCP/TLS to libvirt.
    if !host.is_empty() {
        return Err(UriError::UnsupportedTransport(format!(
            "remote host {host}"
        )));
    }
    let mode = match path.trim_end_matches('/') {
        "/system" => Mode::System,
        "/session" => Mode::Session,
        other => return Err(UriError::BadPath(other.to_string())),
    };
    let mut socket = None;
    let mut extra_params = Vec::new();
    for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        if k == "socket" {
            socket = Some(PathBuf::from(percent_decode(v)));
        } else if !CLIENT_PARAMS.contains(&k) {
            extra_params.push(param.to_string());
        }
    }
    Ok(RemoteUri {
        original: s.to_string(),
        driver: driver.to_string(),
        transport: transport.map(str::to_string),
        mode,
        socket,
        extra_params,
    })
}

/// The URI virsh would use: `-c`, else `VIRSH_DEFAULT_CONNECT_URI`, else
/// `LIBVIRT_DEFAULT_URI`, else `qemu:///system` for root and
/// `qemu:///session` for anyone else. Empty values count as unset.
pub fn resolve_uri(
    cli: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    is_root: bool,
) -> Result<RemoteUri, UriError> {
    let chosen = cli
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .or_else(|| env("VIRSH_DEFAULT_CONNECT_URI").filter(|s| !s.is_empty()))
        .or_else(|| env("LIBVIRT_DEFAULT_URI").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| {
            if is_root {
                "qemu:///system".to_string()
            } else {
                "qemu:///session".to_string()
            }
        });
    parse_uri(&chosen)
}

/// [`resolve_uri`] with the process's environment and effective uid.
pub fn resolve_uri_from_env(cli: Option<&str>) -> Result<RemoteUri, UriError> {
    let is_root = rustix::process::geteuid().is_root();
    resolve_uri(cli, |k| std::env::var(k).ok(), is_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_param_and_transport_are_stripped() {
        let u = parse_uri("qemu+unix:///system?socket=/run/other.sock").unwrap();
        assert_eq!(u.open_name(), "qemu:///system");
        assert_eq!(u.socket_path(None, None), PathBuf::from("/run/other.sock"));
        assert_eq!(u.original, "qemu+unix:///system?socket=/run/other.sock");
        let plain = parse_uri("qemu:///system?socket=/run/other.sock").unwrap();
        assert_eq!(plain.socket, Some(PathBuf::from("/run/other.sock")));
    }

    #[test]
    fn defaults_per_mode() {
        let sys = parse_uri("qemu:///system").unwrap();
        assert_eq!(sys.socket_path(None, None), PathBuf::from(SYSTEM_SOCKET));
        let ses = parse_uri("qemu:///session").unwrap();
        assert_eq!(ses.mode, Mode::Session);
        assert_eq!(
            ses.socket_path(Some(Path::new("/run/user/1000")), None),
            PathBuf::from("/run/user/1000/rvirt/rvirt-sock")
        );
        assert_eq!(
            ses.socket_path(None, Some(Path::new("/home/u"))),
            PathBuf::from("/home/u/.cache/rvirt/rvirt-sock")
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse_uri("test:///default"),
            Err(UriError::UnsupportedDriver(_))
        ));
        assert!(matches!(
            parse_uri("qemu+ssh://h/system"),
            Err(UriError::UnsupportedTransport(_))
        ));
        assert!(matches!(
            parse_uri("qemu://otherhost/system"),
            Err(UriError::UnsupportedTransport(_))
        ));
        assert!(matches!(
            parse_uri("qemu:///nope"),
            Err(UriError::BadPath(_))
        ));
        assert!(matches!(parse_uri("garbage"), Err(UriError::Malformed(_))));
    }

    #[test]
    fn precedence_of_sources() {
        let env = |k: &str| match k {
            "LIBVIRT_DEFAULT_URI" => Some("qemu+unix:///system?socket=/a".to_string()),
            _ => None,
        };
        assert_eq!(
            resolve_uri(None, env, false).unwrap().socket,
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            resolve_uri(Some("qemu:///session"), env, true)
                .unwrap()
                .mode,
            Mode::Session
        );
        let none = |_: &str| None;
        assert_eq!(resolve_uri(None, none, true).unwrap().mode, Mode::System);
        assert_eq!(resolve_uri(None, none, false).unwrap().mode, Mode::Session);
        let virsh =
            |k: &str| (k == "VIRSH_DEFAULT_CONNECT_URI").then(|| "qemu:///session".to_string());
        assert_eq!(resolve_uri(None, virsh, true).unwrap().mode, Mode::Session);
    }

    #[test]
    fn percent_escapes_in_socket() {
        let u = parse_uri("qemu:///system?socket=/tmp/a%20b").unwrap();
        assert_eq!(u.socket, Some(PathBuf::from("/tmp/a b")));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
