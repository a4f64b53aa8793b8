//! The block graph's commands (qapi/block-core.json `blockdev-add`,
//! `blockdev-del`) and the fd sets images are passed in (qapi/misc.json
//! `add-fd`, `remove-fd`, `query-fdsets`). Texts as QEMU 7.2 answers them.

use super::display::Fds;
use crate::args::{ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use serde_json::{Map, Value};

type Args<'a> = &'a Map<String, Value>;

fn empty() -> Value {
    Value::Object(Map::new())
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, QmpError> {
    serde_json::to_value(v).map_err(|e| QmpError::generic(format!("cannot encode reply: {e}")))
}

/// `add-fd`.
pub(crate) const ADD_FD_PARAMS: &[Param] = &[
    Param::optional("fdset-id", ArgType::Int),
    Param::optional("opaque", ArgType::Str),
];

pub(super) fn add_fd(b: &dyn MonitorBackend, fds: &mut Fds, args: Args) -> Result<Value, QmpError> {
    let mut batch = std::mem::take(&mut fds.received).into_iter();
    let fd = batch
        .next()
        .ok_or_else(|| QmpError::generic("No file descriptor supplied via SCM_RIGHTS"))?;
    let set = args.get("fdset-id").and_then(Value::as_i64);
    if set.is_some_and(|s| s < 0) {
        return Err(QmpError::invalid_parameter_value(
            "fdset-id",
            "a non-negative value",
        ));
    }
    let opaque = args.get("opaque").and_then(Value::as_str).map(String::from);
    to_value(b.add_fd(fd, set, opaque)?)
}

/// `remove-fd`.
pub(crate) const REMOVE_FD_PARAMS: &[Param] = &[
    Param::required("fdset-id", ArgType::Int),
    Param::optional("fd", ArgType::Int),
];

pub(super) fn remove_fd(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let set = args.get("fdset-id").and_then(Value::as_i64).unwrap_or(-1);
    let fd = args.get("fd").and_then(Value::as_i64);
    b.remove_fd(set, fd)?;
    Ok(empty())
}

pub(super) fn query_fdsets(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.query_fdsets())
}

/// `blockdev-add`'s common members; the rest depend on `driver` and are
/// the VMM's to check (it reads them as `-blockdev`).
pub(crate) const BLOCKDEV_ADD_PARAMS: &[Param] = &[
    Param::required("driver", ArgType::Str),
    Param::optional("node-name", ArgType::Str),
];

pub(super) fn blockdev_add(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    if !args.contains_key("node-name") {
        return Err(QmpError::generic(
            "'node-name' must be specified for the root node",
        ));
    }
    b.blockdev_add(args)?;
    Ok(empty())
}

/// `blockdev-del`.
pub(crate) const BLOCKDEV_DEL_PARAMS: &[Param] = &[Param::required("node-name", ArgType::Str)];

pub(super) fn blockdev_del(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let name = args
        .get("node-name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    b.blockdev_del(name)?;
    Ok(empty())
}

/// `blockdev-snapshot`.
pub(crate) const BLOCKDEV_SNAPSHOT_PARAMS: &[Param] = &[
    Param::required("node", ArgType::Str),
    Param::required("overlay", ArgType::Str),
];

fn snapshot_pair(args: Args) -> (String, String) {
    let s = |k| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("node"), s("overlay"))
}

pub(super) fn blockdev_snapshot(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    b.blockdev_snapshot(vec![snapshot_pair(args)])?;
    Ok(empty())
}

/// `transaction`: rvirt runs the `blockdev-snapshot` actions (libvirt's
/// external snapshots); other action types are refused before anything
/// is done.
pub(crate) const TRANSACTION_PARAMS: &[Param] = &[
    Param::required("actions", ArgType::Any),
    Param::optional("properties", ArgType::Object),
];

pub(super) fn transaction(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let Some(actions) = args.get("actions").and_then(Value::as_array) else {
        return Err(QmpError::invalid_parameter_type("actions", "array"));
    };
    let mut pairs = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let Some(a) = a.as_object() else {
            return Err(QmpError::invalid_parameter_type(
                &format!("actions[{i}]"),
                "object",
            ));
        };
        let kind = a
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| QmpError::missing_parameter("type"))?;
        if kind != "blockdev-snapshot" {
            return Err(QmpError::generic(format!(
                "transaction action '{kind}' is not supported (only blockdev-snapshot)"
            )));
        }
        let data = a
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| QmpError::missing_parameter("data"))?;
        crate::args::check(BLOCKDEV_SNAPSHOT_PARAMS, data)?;
        pairs.push(snapshot_pair(data));
    }
    if !pairs.is_empty() {
        b.blockdev_snapshot(pairs)?;
    }
    Ok(empty())
}
