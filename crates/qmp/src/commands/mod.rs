//! The command table and dispatch.

mod control;
mod hmp;
mod query;

use crate::args::{check, ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use serde_json::{Map, Value};

pub(crate) use control::negotiate;

type Handler = fn(&dyn MonitorBackend, &Map<String, Value>) -> Result<Value, QmpError>;

/// One command: its name, its parameters in schema order, its handler.
struct Command {
    name: &'static str,
    params: &'static [Param],
    run: Handler,
}

const NO_PARAMS: &[Param] = &[];

/// The parameters of `qmp_capabilities` (qapi/control.json).
pub(crate) const CAPABILITIES_PARAMS: &[Param] = &[Param::optional("enable", ArgType::StrList)];

const COMMANDS: &[Command] = &[
    Command {
        name: "qmp_capabilities",
        params: CAPABILITIES_PARAMS,
        run: control::already_negotiated,
    },
    Command {
        name: "query-version",
        params: NO_PARAMS,
        run: query::version,
    },
    Command {
        name: "query-commands",
        params: NO_PARAMS,
        run: query::commands,
    },
    Command {
        name: "query-status",
        params: NO_PARAMS,
        run: query::status,
    },
    Command {
        name: "query-name",
        params: NO_PARAMS,
        run: query::name,
    },
    Command {
        name: "query-uuid",
        params: NO_PARAMS,
        run: query::uuid,
    },
    Command {
        name: "query-kvm",
        params: NO_PARAMS,
        run: query::kvm,
    },
    Command {
        name: "query-cpus-fast",
        params: NO_PARAMS,
        run: query::cpus_fast,
    },
    Command {
        name: "query-chardev",
        params: NO_PARAMS,
        run: query::chardev,
    },
    Command {
        name: "query-block",
        params: NO_PARAMS,
        run: query::block,
    },
    Command {
        name: "query-blockstats",
        params: query::BLOCKSTATS_PARAMS,
        run: query::blockstats,
    },
    Command {
        name: "query-pci",
        params: NO_PARAMS,
        run: query::pci,
    },
    Command {
        name: "query-balloon",
        params: NO_PARAMS,
        run: query::balloon,
    },
    Command {
        name: "query-cpu-definitions",
        params: NO_PARAMS,
        run: query::cpu_definitions,
    },
    Command {
        name: "query-cpu-model-expansion",
        params: query::CPU_MODEL_EXPANSION_PARAMS,
        run: query::cpu_model_expansion,
    },
    Command {
        name: "balloon",
        params: control::BALLOON_PARAMS,
        run: control::balloon,
    },
    Command {
        name: "qom-get",
        params: control::QOM_GET_PARAMS,
        run: control::qom_get,
    },
    Command {
        name: "qom-set",
        params: control::QOM_SET_PARAMS,
        run: control::qom_set,
    },
    Command {
        name: "set_link",
        params: control::SET_LINK_PARAMS,
        run: control::set_link,
    },
    Command {
        name: "stop",
        params: NO_PARAMS,
        run: control::stop,
    },
    Command {
        name: "cont",
        params: NO_PARAMS,
        run: control::cont,
    },
    Command {
        name: "system_reset",
        params: NO_PARAMS,
        run: control::system_reset,
    },
    Command {
        name: "system_powerdown",
        params: NO_PARAMS,
        run: control::system_powerdown,
    },
    Command {
        name: "quit",
        params: NO_PARAMS,
        run: control::quit,
    },
    Command {
        name: "human-monitor-command",
        params: hmp::PARAMS,
        run: hmp::run,
    },
];

/// Names of every command, in table order (for `query-commands`).
pub fn command_names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.name)
}

/// Runs a command on a negotiated monitor: look it up, check its
/// arguments, call the handler.
pub(crate) fn dispatch(
    backend: &dyn MonitorBackend,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let cmd = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| QmpError::command_not_found(name))?;
    check(cmd.params, args)?;
    tracing::debug!(command = name, "QMP command");
    (cmd.run)(backend, args)
}
