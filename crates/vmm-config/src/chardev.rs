//! Character device backends: `-chardev` and the `-serial` shorthand.

use std::path::PathBuf;

use crate::opts::Opts;
use crate::ConfigError;

/// Where a character device's bytes go and come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChardevBackend {
    /// The VMM's own stdin/stdout.
    Stdio,
    /// Output appended to (or truncating) a file; no input.
    File { path: PathBuf, append: bool },
    /// A new pseudo-terminal; its name is printed at start, as QEMU does.
    Pty,
    /// A UNIX socket. As a server, `wait` means block until a client
    /// connects before the guest starts.
    Socket {
        path: PathBuf,
        server: bool,
        wait: bool,
    },
    /// An already-open file descriptor passed by the parent (`fd=N`), the
    /// way libvirt hands over sockets.
    Fd(i32),
    /// Output discarded, no input.
    Null,
}

/// A named character device (`-chardev BACKEND,id=ID,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevConfig {
    pub id: String,
    pub backend: ChardevBackend,
}

fn socket(o: &mut Opts, path: String) -> Result<ChardevBackend, ConfigError> {
    let server = o.get_bool("server")?.unwrap_or(false);
    let wait = o.get_bool("wait")?.unwrap_or(server);
    if !server {
        return Err(o.error("client-mode sockets (server=off) are not supported yet".into()));
    }
    Ok(ChardevBackend::Socket {
        path: path.into(),
        server,
        wait,
    })
}

/// Parses `-chardev BACKEND,id=ID,…`.
pub fn parse_chardev(value: &str) -> Result<ChardevConfig, ConfigError> {
    let mut o = Opts::parse("-chardev", value, Some("backend"))?;
    let backend = o.require("backend")?;
    let id = o.require("id")?;
    // Accepted: they change nothing for us (logging is the daemon's job).
    o.ignore(&["signal", "mux", "logappend"]);
    if o.get("logfile").is_some() {
        return Err(o.error("'logfile' is not supported yet".into()));
    }
    let backend = match backend.as_str() {
        "stdio" => ChardevBackend::Stdio,
        "null" => ChardevBackend::Null,
        "pty" => ChardevBackend::Pty,
        "file" => ChardevBackend::File {
            path: o.require("path")?.into(),
            append: o.get_bool("append")?.unwrap_or(false),
        },
        "socket" => match (o.get("path"), o.get_u32("fd")?) {
            (Some(path), None) => socket(&mut o, path)?,
            (None, Some(fd)) => {
                o.ignore(&["server", "wait"]);
                ChardevBackend::Fd(fd as i32)
            }
            _ => {
                return Err(
                    o.error("a socket needs 'path' (TCP sockets are not supported yet)".into())
                )
            }
        },
        other => return Err(o.error(format!("chardev backend '{other}' is not supported"))),
    };
    o.finish()?;
    Ok(ChardevConfig { id, backend })
}

/// What a `-serial` argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialSpec {
    Backend(ChardevBackend),
    /// `chardev:ID`: a `-chardev` defined elsewhere.
    Chardev(String),
    /// `none`: no serial port at this index.
    None,
}

/// Parses the `-serial` shorthand: `stdio`, `pty`, `null`, `none`,
/// `file:PATH`, `unix:PATH[,server=on,wait=off]`, `chardev:ID`.
pub fn parse_serial(value: &str) -> Result<SerialSpec, ConfigError> {
    let err = |m: String| ConfigError::new("-serial", m);
    Ok(match value {
        "stdio" => SerialSpec::Backend(ChardevBackend::Stdio),
        "pty" => SerialSpec::Backend(ChardevBackend::Pty),
        "null" => SerialSpec::Backend(ChardevBackend::Null),
        "none" => SerialSpec::None,
        v => match v.split_once(':') {
            Some(("file", path)) if !path.is_empty() => SerialSpec::Backend(ChardevBackend::File {
                path: path.into(),
                append: false,
            }),
            Some(("chardev", id)) if !id.is_empty() => SerialSpec::Chardev(id.to_string()),
            Some(("unix", rest)) => {
                let mut o = Opts::parse("-serial", rest, Some("path"))?;
                let path = o.require("path")?;
                let b = socket(&mut o, path)?;
                o.finish()?;
                SerialSpec::Backend(b)
            }
            _ => return Err(err(format!("'{v}' is not a supported character device"))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chardevs_libvirt_writes() {
        let c = parse_chardev("socket,id=charmonitor,path=/run/m.sock,server=on,wait=off").unwrap();
        assert_eq!(c.id, "charmonitor");
        assert_eq!(
            c.backend,
            ChardevBackend::Socket {
                path: "/run/m.sock".into(),
                server: true,
                wait: false
            }
        );
        assert_eq!(
            parse_chardev("pty,id=charserial0").unwrap().backend,
            ChardevBackend::Pty
        );
        assert_eq!(
            parse_chardev("socket,id=x,fd=23,server=on,wait=off")
                .unwrap()
                .backend,
            ChardevBackend::Fd(23)
        );
        let f = parse_chardev("file,id=f,path=/tmp/out,append=on").unwrap();
        assert_eq!(
            f.backend,
            ChardevBackend::File {
                path: "/tmp/out".into(),
                append: true
            }
        );
        assert_eq!(
            parse_chardev("pty").unwrap_err().to_string(),
            "-chardev: parameter 'id' is missing"
        );
        assert!(parse_chardev("spicevmc,id=x").is_err());
        assert!(parse_chardev("socket,id=x,host=1.2.3.4,port=1").is_err());
    }

    #[test]
    fn serial_shorthand() {
        assert_eq!(
            parse_serial("stdio").unwrap(),
            SerialSpec::Backend(ChardevBackend::Stdio)
        );
        assert_eq!(
            parse_serial("unix:/tmp/s,server,nowait").unwrap(),
            SerialSpec::Backend(ChardevBackend::Socket {
                path: "/tmp/s".into(),
                server: true,
                wait: false
            })
        );
        assert_eq!(
            parse_serial("unix:/tmp/s,server=on,wait=off").unwrap(),
            parse_serial("unix:/tmp/s,server,nowait").unwrap()
        );
        assert_eq!(
            parse_serial("chardev:c0").unwrap(),
            SerialSpec::Chardev("c0".into())
        );
        assert_eq!(
            parse_serial("file:/tmp/x").unwrap(),
            SerialSpec::Backend(ChardevBackend::File {
                path: "/tmp/x".into(),
                append: false
            })
        );
        assert!(parse_serial("vc").is_err());
        assert!(parse_serial("file:").is_err());
    }
}
