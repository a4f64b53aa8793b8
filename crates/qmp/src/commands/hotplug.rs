//! Hot-plug (qapi/qdev.json `device_add`, `device_del`; qapi/net.json
//! `netdev_add`, `netdev_del`). The properties are checked by the VMM,
//! which parses them as it parses `-device` and `-netdev`.

use super::display::Fds;
use crate::args::{ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use serde_json::{json, Map, Value};

pub(crate) const DEVICE_ADD_PARAMS: &[Param] = &[
    Param::required("driver", ArgType::Str),
    Param::optional("bus", ArgType::Str),
    Param::optional("id", ArgType::Str),
    Param::rest(),
];

pub(crate) const ID_PARAMS: &[Param] = &[Param::required("id", ArgType::Str)];

pub(crate) const NETDEV_ADD_PARAMS: &[Param] = &[
    Param::required("type", ArgType::Str),
    Param::required("id", ArgType::Str),
    Param::rest(),
];

fn id(args: &Map<String, Value>) -> &str {
    args.get("id").and_then(Value::as_str).unwrap_or_default()
}

pub(super) fn device_add(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.device_add(args)?;
    Ok(json!({}))
}

pub(super) fn device_del(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.device_del(id(args))?;
    Ok(json!({}))
}

/// A tap's `fd`, or a stream's `addr.str` with `addr.type` `fd`, that is
/// not a number names a descriptor `getfd` passed, which the back-end
/// takes over (QEMU's `monitor_fd_param`).
pub(super) fn netdev_add(
    b: &dyn MonitorBackend,
    fds: &mut Fds,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let addr = args.get("addr").and_then(Value::as_object);
    let (name, key) = match (args.get("fd"), addr) {
        (Some(v), _) => (Some(v), "fd"),
        (None, Some(a)) if a.get("type").and_then(Value::as_str) == Some("fd") => {
            (a.get("str"), "addr.str")
        }
        _ => (None, "fd"),
    };
    let fd = match name {
        None => None,
        Some(Value::String(name)) if name.parse::<i32>().is_err() => {
            Some(fds.take(name).ok_or_else(|| {
                QmpError::generic(format!("File descriptor named '{name}' has not been found"))
            })?)
        }
        Some(Value::String(_)) => None,
        Some(_) => return Err(QmpError::invalid_parameter_type(key, "string")),
    };
    b.netdev_add(args, fd)?;
    Ok(json!({}))
}

pub(super) fn netdev_del(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.netdev_del(id(args))?;
    Ok(json!({}))
}
