//! The block graph's commands (qapi/block-core.json `blockdev-add`,
//! `blockdev-del`) and the fd sets images are passed in (qapi/misc.json
//! `add-fd`, `remove-fd`, `query-fdsets`). Texts as QEMU 7.2 answers them.

use super::display::Fds;
use crate::args::{ArgType, Param};
use crate::backend::{JobVerb, MonitorBackend};
use crate::error::QmpError;
use crate::types::BlockCommit;
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

/// `block-commit` (qapi/block-core.json): libvirt's members; `speed`
/// must be 0 (rvirt copies at full speed), `backing-file` is accepted and
/// unused (rvirt commits only into the image right below, whose name the
/// overlays keep).
pub(crate) const BLOCK_COMMIT_PARAMS: &[Param] = &[
    Param::optional("job-id", ArgType::Str),
    Param::required("device", ArgType::Str),
    Param::optional("base-node", ArgType::Str),
    Param::optional("base", ArgType::Str),
    Param::optional("top-node", ArgType::Str),
    Param::optional("top", ArgType::Str),
    Param::optional("backing-file", ArgType::Str),
    Param::optional("backing-mask-protocol", ArgType::Bool),
    Param::optional("speed", ArgType::Int),
    Param::optional("on-error", ArgType::Str),
    Param::optional("filter-node-name", ArgType::Str),
    Param::optional("auto-finalize", ArgType::Bool),
    Param::optional("auto-dismiss", ArgType::Bool),
];

pub(super) fn block_commit(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let s = |k: &str| args.get(k).and_then(Value::as_str).map(String::from);
    let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(true);
    for k in ["base", "top"] {
        if args.contains_key(k) {
            return Err(QmpError::generic(format!(
                "'{k}' is not supported: name the node with '{k}-node'"
            )));
        }
    }
    if args
        .get("speed")
        .and_then(Value::as_i64)
        .is_some_and(|v| v != 0)
    {
        return Err(QmpError::generic("'speed' is not supported (only 0)"));
    }
    b.block_commit(BlockCommit {
        job_id: s("job-id"),
        device: s("device").unwrap_or_default(),
        top_node: s("top-node"),
        base_node: s("base-node"),
        auto_finalize: flag("auto-finalize"),
        auto_dismiss: flag("auto-dismiss"),
    })?;
    Ok(empty())
}

pub(super) fn query_block_jobs(b: &dyn MonitorBackend, _: Args) -> Result<Value, QmpError> {
    to_value(b.block_jobs())
}

/// `block-job-complete` and `block-job-cancel` name the job `device`.
pub(crate) const BLOCK_JOB_COMPLETE_PARAMS: &[Param] = &[Param::required("device", ArgType::Str)];
pub(crate) const BLOCK_JOB_CANCEL_PARAMS: &[Param] = &[
    Param::required("device", ArgType::Str),
    Param::optional("force", ArgType::Bool),
];
/// The `job-*` commands name it `id`.
pub(crate) const JOB_ID_PARAMS: &[Param] = &[Param::required("id", ArgType::Str)];

fn job(b: &dyn MonitorBackend, args: Args, key: &str, verb: JobVerb) -> Result<Value, QmpError> {
    let id = args.get(key).and_then(Value::as_str).unwrap_or_default();
    b.job_verb(verb, id)?;
    Ok(empty())
}

pub(super) fn block_job_complete(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    job(b, args, "device", JobVerb::Complete)
}

pub(super) fn block_job_cancel(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    let force = args.get("force").and_then(Value::as_bool).unwrap_or(false);
    job(b, args, "device", JobVerb::Cancel { force })
}

pub(super) fn job_complete(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    job(b, args, "id", JobVerb::Complete)
}

pub(super) fn job_cancel(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    job(b, args, "id", JobVerb::Cancel { force: true })
}

pub(super) fn job_finalize(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    job(b, args, "id", JobVerb::Finalize)
}

pub(super) fn job_dismiss(b: &dyn MonitorBackend, args: Args) -> Result<Value, QmpError> {
    job(b, args, "id", JobVerb::Dismiss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChardevInfo, CpuInfoFast, RunState};
    use serde_json::json;
    use std::sync::Mutex;

    /// Records the snapshot pairs it is given.
    #[derive(Default)]
    struct Snapshots(Mutex<Vec<(String, String)>>);

    impl MonitorBackend for Snapshots {
        fn status(&self) -> RunState {
            RunState::Running
        }
        fn stop(&self) -> Result<(), QmpError> {
            Ok(())
        }
        fn cont(&self) -> Result<(), QmpError> {
            Ok(())
        }
        fn system_reset(&self) {}
        fn system_powerdown(&self) {}
        fn quit(&self) {}
        fn name(&self) -> Option<String> {
            None
        }
        fn uuid(&self) -> Option<String> {
            None
        }
        fn cpus(&self) -> Vec<CpuInfoFast> {
            Vec::new()
        }
        fn chardevs(&self) -> Vec<ChardevInfo> {
            Vec::new()
        }
        fn blockdev_snapshot(&self, actions: Vec<(String, String)>) -> Result<(), QmpError> {
            self.0.lock().unwrap().extend(actions);
            Ok(())
        }
    }

    fn run(args: Value) -> Result<Vec<(String, String)>, String> {
        let b = Snapshots::default();
        transaction(&b, args.as_object().unwrap()).map_err(|e| e.desc)?;
        let pairs = b.0.lock().unwrap().clone();
        Ok(pairs)
    }

    #[test]
    fn a_transaction_runs_its_snapshots_or_nothing() {
        let snap = |n: &str, o: &str| json!({"type": "blockdev-snapshot", "data": {"node": n, "overlay": o}});
        assert_eq!(
            run(json!({"actions": [snap("a", "b"), snap("c", "d")]})),
            Ok(vec![("a".into(), "b".into()), ("c".into(), "d".into())])
        );
        assert_eq!(run(json!({"actions": []})), Ok(vec![]));
        assert_eq!(
            run(json!({"actions": "x"})),
            Err("Invalid parameter type for 'actions', expected: array".into())
        );
        assert_eq!(
            run(json!({"actions": [snap("a", "b"), 7]})),
            Err("Invalid parameter type for 'actions[1]', expected: object".into())
        );
        assert_eq!(
            run(json!({"actions": [{"type": "blockdev-snapshot"}]})),
            Err("Parameter 'data' is missing".into())
        );
        assert_eq!(
            run(json!({"actions": [{"type": "blockdev-snapshot", "data": {"node": "a"}}]})),
            Err("Parameter 'overlay' is missing".into())
        );
        // One action rvirt does not run: none runs.
        assert!(
            run(json!({"actions": [snap("a", "b"), {"type": "drive-backup", "data": {}}]}))
                .unwrap_err()
                .contains("drive-backup")
        );
    }
}
