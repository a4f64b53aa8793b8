//! The query commands: each turns a backend answer into its QAPI shape.

use super::command_names;
use crate::args::{ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use crate::types::{NameInfo, StatusInfo, UuidInfo, NIL_UUID};
use serde::Serialize;
use serde_json::{json, Map, Value};

type Args<'a> = &'a Map<String, Value>;

fn to_value<T: Serialize>(v: T) -> Result<Value, QmpError> {
    serde_json::to_value(v).map_err(|e| QmpError::generic(format!("cannot encode reply: {e}")))
}

pub(super) fn version(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.version())
}

pub(super) fn commands(_: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    Ok(Value::Array(
        command_names().map(|n| json!({"name": n})).collect(),
    ))
}

pub(super) fn status(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(StatusInfo::from(b.status()))
}

pub(super) fn name(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(NameInfo { name: b.name() })
}

pub(super) fn uuid(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    let uuid = b.uuid().unwrap_or_else(|| NIL_UUID.to_string());
    to_value(UuidInfo { uuid })
}

pub(super) fn kvm(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.kvm())
}

pub(super) fn cpus_fast(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.cpus())
}

pub(super) fn chardev(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.chardevs())
}

pub(super) fn block(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.block())
}

/// The parameters of `query-blockstats` (qapi/block-core.json).
pub(crate) const BLOCKSTATS_PARAMS: &[Param] = &[Param::optional("query-nodes", ArgType::Bool)];

pub(super) fn blockstats(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let nodes = args
        .get("query-nodes")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    to_value(b.block_stats(nodes))
}

pub(super) fn pci(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.query_pci()?)
}

pub(super) fn balloon(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    Ok(json!({ "actual": b.query_balloon()? }))
}

pub(super) fn cpu_definitions(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.cpu_definitions()?)
}

/// The parameters of `query-cpu-model-expansion` (qapi/machine-target.json).
pub(crate) const CPU_MODEL_EXPANSION_PARAMS: &[Param] = &[
    Param::required("type", ArgType::Str),
    Param::required("model", ArgType::Object),
];

pub(super) fn cpu_model_expansion(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let full = match args.get("type").and_then(Value::as_str) {
        Some("full") => true,
        Some("static") => false,
        _ => {
            return Err(QmpError::invalid_parameter_value(
                "type",
                "CpuModelExpansionType",
            ))
        }
    };
    let model: crate::types::CpuModelInfo = args
        .get("model")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .ok_or_else(|| QmpError::invalid_parameter_type("model", "object"))?;
    let expanded = b.cpu_model_expansion(&model.name, full)?;
    Ok(json!({ "model": expanded }))
}
