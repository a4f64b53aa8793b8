//! `-vnc` as QEMU 7.2 takes it: `[HOST]:DISPLAY`, `unix:PATH` or `none`,
//! then options.

use std::path::PathBuf;

use crate::opts::Opts;
use crate::ConfigError;

/// QEMU's TCP ports for VNC start at 5900 + display number.
pub const VNC_BASE_PORT: u32 = 5900;

/// Where the VNC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VncListen {
    /// `none`: no listener; clients come by file descriptor (QMP
    /// `add_client`, as libvirt does for a local graphics console).
    None,
    /// `HOST:DISPLAY`: TCP port 5900 + DISPLAY (the first free one up to
    /// `to`, if given). An empty host is every address.
    Tcp {
        /// The address, without brackets; empty for any.
        host: String,
        /// The first port tried.
        port: u16,
        /// `to=`: the last port tried.
        to: Option<u16>,
    },
    /// `unix:PATH`.
    Unix(PathBuf),
}

/// `share=`: what a client's shared flag does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VncShare {
    /// `allow-exclusive` (the default).
    #[default]
    AllowExclusive,
    /// `force-shared`.
    ForceShared,
    /// `ignore`.
    Ignore,
}

/// `-vnc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncConfig {
    pub listen: VncListen,
    /// `password=on`: VNC authentication; no password until QMP
    /// `set_password` (every client fails until then, as QEMU).
    pub password: bool,
    pub share: VncShare,
    /// `connections=`: clients at once (QEMU's default 32).
    pub connections: u32,
}

fn port_of(opts: &Opts, display: &str, what: &str) -> Result<u16, ConfigError> {
    let n: u32 = display
        .parse()
        .map_err(|_| opts.error(format!("{what} '{display}' is not a number")))?;
    u16::try_from(VNC_BASE_PORT + n.min(u32::from(u16::MAX)))
        .map_err(|_| opts.error(format!("{what} {n} is past the last port (65535 - 5900)")))
}

/// Parses `-vnc`'s argument.
pub fn parse_vnc(value: &str) -> Result<VncConfig, ConfigError> {
    let mut o = Opts::parse("-vnc", value, Some("vnc"))?;
    let addr = o.require("vnc")?;
    if o.get("websocket").is_some() {
        return Err(o.error("websocket is not supported".into()));
    }
    for key in [
        "reverse",
        "sasl",
        "tls-creds",
        "tls-authz",
        "sasl-authz",
        "x509",
        "x509verify",
        "acl",
        "password-secret",
    ] {
        if o.get(key).is_some() {
            return Err(o.error(format!("'{key}' is not supported")));
        }
    }
    let to = o.get("to");
    let listen = if addr == "none" {
        VncListen::None
    } else if let Some(path) = addr.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(o.error("unix: needs a path".into()));
        }
        VncListen::Unix(PathBuf::from(path))
    } else {
        let (host, display) = match addr.strip_prefix('[') {
            Some(rest) => {
                let (host, tail) = rest
                    .split_once(']')
                    .ok_or_else(|| o.error(format!("'{addr}': no ']' after the IPv6 address")))?;
                let display = tail.strip_prefix(':').ok_or_else(|| {
                    o.error(format!("'{addr}': no display number (HOST:DISPLAY)"))
                })?;
                (host.to_string(), display.to_string())
            }
            None => {
                let (host, display) = addr.rsplit_once(':').ok_or_else(|| {
                    o.error(format!("'{addr}': no display number (HOST:DISPLAY)"))
                })?;
                (host.to_string(), display.to_string())
            }
        };
        if display.is_empty() {
            return Err(o.error(format!("'{addr}': no display number (HOST:DISPLAY)")));
        }
        let port = port_of(&o, &display, "display")?;
        let to = match &to {
            Some(t) => {
                let last = port_of(&o, t, "to")?;
                if last < port {
                    return Err(o.error(format!("to={t} is below the display number {display}")));
                }
                Some(last)
            }
            None => None,
        };
        VncListen::Tcp { host, port, to }
    };
    if to.is_some() && !matches!(listen, VncListen::Tcp { .. }) {
        return Err(o.error("'to' needs a TCP display".into()));
    }
    let password = o.get_bool("password")?.unwrap_or(false);
    let share = match o.get("share").as_deref() {
        None | Some("allow-exclusive") => VncShare::AllowExclusive,
        Some("force-shared") => VncShare::ForceShared,
        Some("ignore") => VncShare::Ignore,
        Some(other) => {
            return Err(o.error(format!(
                "share '{other}': expected allow-exclusive, force-shared or ignore"
            )))
        }
    };
    let connections = o.get_u32("connections")?.unwrap_or(32);
    if connections == 0 {
        return Err(o.error("connections must be at least 1".into()));
    }
    // Accepted without effect: the address families follow the host; the
    // encodings are lossless anyway; keys, audio and power control have no
    // device behind them yet.
    o.get_bool("ipv4")?;
    o.get_bool("ipv6")?;
    o.get_bool("lossy")?;
    o.get_bool("non-adaptive")?;
    o.get_bool("lock-key-sync")?;
    o.get_bool("power-control")?;
    o.ignore(&["id", "key-delay-ms", "audiodev"]);
    o.finish()?;
    Ok(VncConfig {
        listen,
        password,
        share,
        connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16, to: Option<u16>) -> VncListen {
        VncListen::Tcp {
            host: host.into(),
            port,
            to,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_vnc(":0").unwrap().listen, tcp("", 5900, None));
        assert_eq!(
            parse_vnc("127.0.0.1:3").unwrap().listen,
            tcp("127.0.0.1", 5903, None)
        );
        assert_eq!(
            parse_vnc("[::1]:1,to=5").unwrap().listen,
            tcp("::1", 5901, Some(5905))
        );
        assert_eq!(
            parse_vnc("vnc=localhost:2").unwrap().listen,
            tcp("localhost", 5902, None)
        );
        assert_eq!(
            parse_vnc("unix:/run/vnc.sock").unwrap().listen,
            VncListen::Unix("/run/vnc.sock".into())
        );
        assert_eq!(parse_vnc("none").unwrap().listen, VncListen::None);
    }

    #[test]
    fn options() {
        let c =
            parse_vnc("127.0.0.1:0,password=on,share=force-shared,lossy=on,connections=4").unwrap();
        assert!(c.password);
        assert_eq!(c.share, VncShare::ForceShared);
        assert_eq!(c.connections, 4);
        // libvirt's form: bare password, an audiodev.
        let c = parse_vnc("unix:/tmp/v.sock,password,audiodev=audio1").unwrap();
        assert!(c.password);
        assert_eq!(
            parse_vnc(":0,share=ignore").unwrap().share,
            VncShare::Ignore
        );
        assert_eq!(parse_vnc(":0").unwrap().share, VncShare::AllowExclusive);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let err = |v: &str| parse_vnc(v).unwrap_err().to_string();
        assert_eq!(err(":0,websocket=5700"), "-vnc: websocket is not supported");
        assert_eq!(err(":0,websocket"), "-vnc: websocket is not supported");
        assert_eq!(
            err("localhost"),
            "-vnc: 'localhost': no display number (HOST:DISPLAY)"
        );
        assert_eq!(err("localhost:x"), "-vnc: display 'x' is not a number");
        assert_eq!(
            err(":60000"),
            "-vnc: display 60000 is past the last port (65535 - 5900)"
        );
        assert_eq!(err(":3,to=1"), "-vnc: to=1 is below the display number 3");
        assert_eq!(err("unix:/a,to=3"), "-vnc: 'to' needs a TCP display");
        assert_eq!(
            err(":0,share=maybe"),
            "-vnc: share 'maybe': expected allow-exclusive, force-shared or ignore"
        );
        assert_eq!(
            err(":0,tls-creds=tls0"),
            "-vnc: 'tls-creds' is not supported"
        );
        assert_eq!(err(":0,bogus=1"), "-vnc: invalid parameter 'bogus'");
        assert_eq!(
            err("[::1:0"),
            "-vnc: '[::1:0': no ']' after the IPv6 address"
        );
    }
}
