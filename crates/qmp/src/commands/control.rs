//! Negotiation and the run-control commands.

use super::CAPABILITIES_PARAMS;
use crate::args::{check, ArgType, Param};
use crate::backend::{MediumOp, MediumTarget, MonitorBackend};
use crate::error::{ErrorClass, QmpError};
use serde_json::{json, Map, Value};

/// The capabilities QEMU defines (QAPI `QMPCapability`); rvirt offers none.
const KNOWN_CAPABILITIES: &[&str] = &["oob"];

/// `qmp_capabilities` on a monitor still in negotiation mode.
pub(crate) fn negotiate(args: &Map<String, Value>) -> Result<Value, QmpError> {
    check(CAPABILITIES_PARAMS, args)?;
    let enable: Vec<&str> = args
        .get("enable")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // The input visitor rejects unknown names first (naming list elements
    // 'null'), then negotiation rejects known but unoffered ones.
    if let Some(bad) = enable.iter().find(|c| !KNOWN_CAPABILITIES.contains(c)) {
        return Err(QmpError::generic(format!(
            "Parameter 'null' does not accept value '{bad}'"
        )));
    }
    if let Some(cap) = enable.first() {
        return Err(QmpError::generic(format!(
            "Capability '{cap}' not available"
        )));
    }
    Ok(json!({}))
}

/// `qmp_capabilities` once negotiation is over.
pub(super) fn already_negotiated(
    _: &dyn MonitorBackend,
    _: &Map<String, Value>,
) -> Result<Value, QmpError> {
    Err(QmpError {
        class: ErrorClass::CommandNotFound,
        desc: "Capabilities negotiation is already complete, command ignored".into(),
    })
}

pub(super) fn stop(b: &dyn MonitorBackend, _: &Map<String, Value>) -> Result<Value, QmpError> {
    b.stop()?;
    Ok(json!({}))
}

pub(super) fn cont(b: &dyn MonitorBackend, _: &Map<String, Value>) -> Result<Value, QmpError> {
    if b.status().needs_reset() {
        return Err(QmpError::generic(
            "Resetting the Virtual Machine is required",
        ));
    }
    b.cont()?;
    Ok(json!({}))
}

pub(super) fn system_reset(
    b: &dyn MonitorBackend,
    _: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.system_reset();
    Ok(json!({}))
}

pub(super) fn system_powerdown(
    b: &dyn MonitorBackend,
    _: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.system_powerdown();
    Ok(json!({}))
}

pub(super) fn quit(b: &dyn MonitorBackend, _: &Map<String, Value>) -> Result<Value, QmpError> {
    b.quit();
    Ok(json!({}))
}

/// `balloon`'s one argument: the target in bytes (qapi/machine.json).
pub(crate) const BALLOON_PARAMS: &[Param] = &[Param::required("value", ArgType::Int)];

/// As QEMU's `qmp_balloon`: no balloon is reported before a bad value, and
/// the value's error names QEMU's internal parameter, `target`.
pub(super) fn balloon(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let value = args.get("value").and_then(Value::as_i64).unwrap_or(0);
    b.query_balloon()?;
    if value <= 0 {
        return Err(QmpError::invalid_parameter_value("target", "a size"));
    }
    b.balloon(value)?;
    Ok(Value::Object(Map::new()))
}

/// `qom-get`'s arguments (qapi/qom.json).
pub(crate) const QOM_GET_PARAMS: &[Param] = &[
    Param::required("path", ArgType::Str),
    Param::required("property", ArgType::Str),
];

pub(super) fn qom_get(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let text = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    b.qom_get(text("path"), text("property"))
}

/// `qom-set`'s arguments (qapi/qom.json).
pub(crate) const QOM_SET_PARAMS: &[Param] = &[
    Param::required("path", ArgType::Str),
    Param::required("property", ArgType::Str),
    Param::required("value", ArgType::Any),
];

pub(super) fn qom_set(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let text = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    b.qom_set(text("path"), text("property"), &args["value"])?;
    Ok(Value::Object(Map::new()))
}

/// `set_link`'s arguments (qapi/net.json).
pub(crate) const SET_LINK_PARAMS: &[Param] = &[
    Param::required("name", ArgType::Str),
    Param::required("up", ArgType::Bool),
];

pub(super) fn set_link(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
    let up = args.get("up").and_then(Value::as_bool).unwrap_or(true);
    b.set_link(name, up)?;
    Ok(Value::Object(Map::new()))
}

/// `watchdog-set-action`'s arguments (qapi/run-state.json).
pub(crate) const WATCHDOG_SET_ACTION_PARAMS: &[Param] = &[Param::required("action", ArgType::Str)];

pub(super) fn watchdog_set_action(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let name = args
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let action = crate::WatchdogAction::parse(name).ok_or_else(|| {
        QmpError::generic(format!("Parameter 'action' does not accept value '{name}'"))
    })?;
    b.set_watchdog_action(action)?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn inject_nmi(
    b: &dyn MonitorBackend,
    _: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.inject_nmi()?;
    Ok(Value::Object(Map::new()))
}

/// `eject` and `blockdev-open-tray`'s arguments (qapi/block.json).
pub(crate) const EJECT_PARAMS: &[Param] = &[
    Param::optional("device", ArgType::Str),
    Param::optional("id", ArgType::Str),
    Param::optional("force", ArgType::Bool),
];

/// `blockdev-close-tray`'s arguments.
pub(crate) const CLOSE_TRAY_PARAMS: &[Param] = &[
    Param::optional("device", ArgType::Str),
    Param::optional("id", ArgType::Str),
];

/// `blockdev-remove-medium`'s arguments.
pub(crate) const REMOVE_MEDIUM_PARAMS: &[Param] = &[Param::required("id", ArgType::Str)];

/// `blockdev-insert-medium`'s arguments.
pub(crate) const INSERT_MEDIUM_PARAMS: &[Param] = &[
    Param::required("id", ArgType::Str),
    Param::required("node-name", ArgType::Str),
];

/// `blockdev-change-medium`'s arguments.
pub(crate) const CHANGE_MEDIUM_PARAMS: &[Param] = &[
    Param::optional("device", ArgType::Str),
    Param::optional("id", ArgType::Str),
    Param::required("filename", ArgType::Str),
    Param::optional("format", ArgType::Str),
    Param::optional("force", ArgType::Bool),
    Param::optional("read-only-mode", ArgType::Str),
];

fn target(args: &Map<String, Value>) -> Result<MediumTarget, QmpError> {
    let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let t = MediumTarget {
        device: s("device"),
        id: s("id"),
    };
    match (&t.device, &t.id) {
        (None, None) => Err(QmpError::generic("Cannot find device=(null) nor id=(null)")),
        (Some(_), Some(_)) => Err(QmpError::generic(
            "Parameter 'id' and 'device' cannot both be given",
        )),
        _ => Ok(t),
    }
}

fn force(args: &Map<String, Value>) -> bool {
    args.get("force").and_then(Value::as_bool).unwrap_or(false)
}

pub(super) fn eject(b: &dyn MonitorBackend, args: &Map<String, Value>) -> Result<Value, QmpError> {
    b.medium(&target(args)?, MediumOp::Eject { force: force(args) })?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn open_tray(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.medium(&target(args)?, MediumOp::OpenTray { force: force(args) })?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn close_tray(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.medium(&target(args)?, MediumOp::CloseTray)?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn remove_medium(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    b.medium(&target(args)?, MediumOp::Remove)?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn insert_medium(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let node_name = args
        .get("node-name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    b.medium(&target(args)?, MediumOp::Insert { node_name })?;
    Ok(Value::Object(Map::new()))
}

pub(super) fn change_medium(
    b: &dyn MonitorBackend,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let op = MediumOp::Change {
        filename: s("filename").unwrap_or_default(),
        format: s("format"),
    };
    b.medium(&target(args)?, op)?;
    Ok(Value::Object(Map::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(v: Value) -> Result<Value, String> {
        negotiate(v.as_object().unwrap()).map_err(|e| e.desc)
    }

    #[test]
    fn negotiation_arguments() {
        assert_eq!(neg(json!({})), Ok(json!({})));
        assert_eq!(neg(json!({"enable": []})), Ok(json!({})));
        assert_eq!(
            neg(json!({"enable": ["nope"]})),
            Err("Parameter 'null' does not accept value 'nope'".into())
        );
        assert_eq!(
            neg(json!({"enable": ["oob"]})),
            Err("Capability 'oob' not available".into())
        );
        assert_eq!(
            neg(json!({"enable": "oob"})),
            Err("Invalid parameter type for 'enable', expected: array".into())
        );
    }
}
