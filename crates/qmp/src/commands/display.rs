//! The VNC commands (qapi/ui.json) and the monitor's named file
//! descriptors (qapi/misc.json `getfd`, `closefd`), which `add_client`
//! takes its client from. Texts as QEMU 7.2 answers them.

use crate::args::{ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::{ErrorClass, QmpError};
use crate::types::ImageFormat;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

/// Named descriptors a monitor holds at most (QEMU has no limit; a
/// client must not make us hold descriptors without bound).
const MAX_NAMED_FDS: usize = 64;

/// One monitor's descriptors: the latest batch passed with its bytes, and
/// those `getfd` named.
#[derive(Default)]
pub(crate) struct Fds {
    pub received: Vec<OwnedFd>,
    named: BTreeMap<String, OwnedFd>,
}

impl Fds {
    /// Takes the descriptor `getfd` named `name`, as QEMU's
    /// `monitor_get_fd` does (the name is used up).
    pub(crate) fn take(&mut self, name: &str) -> Option<OwnedFd> {
        self.named.remove(name)
    }
}

fn str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// `protocol` (QAPI `DisplayProtocol`), with QEMU's answer for SPICE,
/// which rvirt does not have.
fn vnc_protocol(args: &Map<String, Value>) -> Result<(), QmpError> {
    match str_arg(args, "protocol").unwrap_or_default() {
        "vnc" => Ok(()),
        "spice" => Err(QmpError {
            class: ErrorClass::DeviceNotActive,
            desc: "SPICE is not in use".into(),
        }),
        other => Err(QmpError::generic(format!(
            "Parameter 'protocol' does not accept value '{other}'"
        ))),
    }
}

/// Only QEMU's default display id names rvirt's one VNC server.
fn check_display(args: &Map<String, Value>, failure: &str) -> Result<(), QmpError> {
    match str_arg(args, "display") {
        None | Some("default") => Ok(()),
        Some(_) => Err(QmpError::generic(failure)),
    }
}

pub(super) fn query_vnc(b: &dyn MonitorBackend, _: &Map<String, Value>) -> Result<Value, QmpError> {
    serde_json::to_value(b.query_vnc()).map_err(|e| QmpError::generic(e.to_string()))
}

/// `set_password` (a union on `protocol`, flat on the wire).
pub(crate) const SET_PASSWORD_PARAMS: &[Param] = &[
    Param::required("protocol", ArgType::Str),
    Param::required("password", ArgType::Str),
    Param::optional("connected", ArgType::Str),
    Param::optional("display", ArgType::Str),
];

pub(super) fn set_password(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    vnc_protocol(args)?;
    match str_arg(args, "connected") {
        None | Some("keep") => {}
        Some("fail" | "disconnect") => {
            return Err(QmpError::generic("Invalid parameter 'connected'"))
        }
        Some(other) => {
            return Err(QmpError::generic(format!(
                "Parameter 'connected' does not accept value '{other}'"
            )))
        }
    }
    const FAILED: &str = "Could not set password";
    check_display(args, FAILED)?;
    let password = str_arg(args, "password").unwrap_or_default();
    b.set_vnc_password(password)
        .map_err(|_| QmpError::generic(FAILED))?;
    Ok(empty())
}

/// `expire_password`.
pub(crate) const EXPIRE_PASSWORD_PARAMS: &[Param] = &[
    Param::required("protocol", ArgType::Str),
    Param::required("time", ArgType::Str),
    Param::optional("display", ArgType::Str),
];

/// QEMU 7.2's reading of `time`: `now`, `never`, `+SECONDS` from now, or
/// SECONDS since the epoch; digits are read as strtoull does (a value
/// that is not a number is 0, i.e. already expired). `None` is never.
pub(crate) fn parse_expiry(time: &str, now: u64) -> Option<u64> {
    let leading = |s: &str| -> u64 {
        let digits: String = s
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX })
    };
    match time {
        "now" => Some(0),
        "never" => None,
        t => match t.strip_prefix('+') {
            Some(rel) => Some(now.saturating_add(leading(rel))),
            None => Some(leading(t)),
        },
    }
}

pub(super) fn expire_password(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    vnc_protocol(args)?;
    const FAILED: &str = "Could not set password expire time";
    check_display(args, FAILED)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = parse_expiry(str_arg(args, "time").unwrap_or_default(), now);
    b.expire_vnc_password(at)
        .map_err(|_| QmpError::generic(FAILED))?;
    Ok(empty())
}

/// `getfd` and `closefd`.
pub(crate) const GETFD_PARAMS: &[Param] = &[Param::required("fdname", ArgType::Str)];

pub(super) fn getfd(
    _: &dyn MonitorBackend,
    fds: &mut Fds,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let name = str_arg(args, "fdname").unwrap_or_default();
    let mut batch = std::mem::take(&mut fds.received).into_iter();
    let fd = batch
        .next()
        .ok_or_else(|| QmpError::generic("No file descriptor supplied via SCM_RIGHTS"))?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(QmpError::invalid_parameter_value(
            "fdname",
            "a name not starting with a digit",
        ));
    }
    if !fds.named.contains_key(name) && fds.named.len() >= MAX_NAMED_FDS {
        return Err(QmpError::generic(format!(
            "Too many file descriptors (at most {MAX_NAMED_FDS})"
        )));
    }
    // A name given again replaces (and closes) the old descriptor.
    fds.named.insert(name.to_string(), fd);
    Ok(empty())
}

pub(super) fn closefd(
    _: &dyn MonitorBackend,
    fds: &mut Fds,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let name = str_arg(args, "fdname").unwrap_or_default();
    fds.named
        .remove(name)
        .map(|_| empty())
        .ok_or_else(|| QmpError::generic(format!("File descriptor named '{name}' not found")))
}

/// `screendump` (qapi/ui.json, QEMU 7.2: `format` since 7.1).
pub(crate) const SCREENDUMP_PARAMS: &[Param] = &[
    Param::required("filename", ArgType::Str),
    Param::optional("device", ArgType::Str),
    Param::optional("head", ArgType::Int),
    Param::optional("format", ArgType::Str),
];

pub(super) fn screendump(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let format = match str_arg(args, "format") {
        None | Some("ppm") => ImageFormat::Ppm,
        Some("png") => ImageFormat::Png,
        Some(other) => {
            return Err(QmpError::generic(format!(
                "Parameter 'format' does not accept value '{other}'"
            )))
        }
    };
    let head = args.get("head").and_then(Value::as_i64);
    if head.is_some() && !args.contains_key("device") {
        // QEMU 7.2's qmp_screendump.
        return Err(QmpError::generic(
            "'head' must be specified together with 'device'",
        ));
    }
    let filename = str_arg(args, "filename").unwrap_or_default();
    b.screendump(filename, str_arg(args, "device"), head, format)?;
    Ok(empty())
}

/// `add_client` (qapi/misc.json).
pub(crate) const ADD_CLIENT_PARAMS: &[Param] = &[
    Param::required("protocol", ArgType::Str),
    Param::required("fdname", ArgType::Str),
    Param::optional("skipauth", ArgType::Bool),
    Param::optional("tls", ArgType::Bool),
];

pub(super) fn add_client(
    b: &dyn MonitorBackend,
    fds: &mut Fds,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let name = str_arg(args, "fdname").unwrap_or_default();
    // As QEMU's monitor_get_fd: the name is used up.
    let fd = fds.named.remove(name).ok_or_else(|| {
        QmpError::generic(format!("File descriptor named '{name}' has not been found"))
    })?;
    match str_arg(args, "protocol").unwrap_or_default() {
        "vnc" => {
            let skipauth = args
                .get("skipauth")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            b.add_vnc_client(fd, skipauth)?;
            Ok(empty())
        }
        "spice" => Err(QmpError {
            class: ErrorClass::DeviceNotActive,
            desc: "SPICE is not in use".into(),
        }),
        other => Err(QmpError::generic(format!("protocol '{other}' is invalid"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_as_qemu_reads_it() {
        assert_eq!(parse_expiry("now", 1000), Some(0));
        assert_eq!(parse_expiry("never", 1000), None);
        assert_eq!(parse_expiry("+60", 1000), Some(1060));
        assert_eq!(parse_expiry("2000", 1000), Some(2000));
        assert_eq!(parse_expiry("soon", 1000), Some(0));
        assert_eq!(parse_expiry("+x", 1000), Some(1000));
        assert_eq!(parse_expiry("99999999999999999999999", 0), Some(u64::MAX));
    }
}
