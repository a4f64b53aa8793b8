//! The command table and dispatch.

mod block;
mod control;
mod display;
mod hmp;
mod hotplug;
mod query;

use crate::args::{check, check_open, ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use serde_json::{Map, Value};

pub(crate) use control::negotiate;
pub(crate) use display::Fds;

type Handler = fn(&dyn MonitorBackend, &Map<String, Value>) -> Result<Value, QmpError>;

/// A handler that also sees the monitor's named file descriptors.
type FdHandler = fn(&dyn MonitorBackend, &mut Fds, &Map<String, Value>) -> Result<Value, QmpError>;

enum Run {
    Plain(Handler),
    WithFds(FdHandler),
    /// A flat union whose members the backend checks: only the listed
    /// parameters are checked here, the others pass on (`blockdev-add`).
    Open(Handler),
}

/// One command: its name, its parameters in schema order, its handler.
struct Command {
    name: &'static str,
    params: &'static [Param],
    run: Run,
}

const NO_PARAMS: &[Param] = &[];

/// The parameters of `qmp_capabilities` (qapi/control.json).
pub(crate) const CAPABILITIES_PARAMS: &[Param] = &[Param::optional("enable", ArgType::StrList)];

const COMMANDS: &[Command] = &[
    Command {
        name: "qmp_capabilities",
        params: CAPABILITIES_PARAMS,
        run: Run::Plain(control::already_negotiated),
    },
    Command {
        name: "query-version",
        params: NO_PARAMS,
        run: Run::Plain(query::version),
    },
    Command {
        name: "query-commands",
        params: NO_PARAMS,
        run: Run::Plain(query::commands),
    },
    Command {
        name: "query-status",
        params: NO_PARAMS,
        run: Run::Plain(query::status),
    },
    Command {
        name: "query-name",
        params: NO_PARAMS,
        run: Run::Plain(query::name),
    },
    Command {
        name: "query-uuid",
        params: NO_PARAMS,
        run: Run::Plain(query::uuid),
    },
    Command {
        name: "query-kvm",
        params: NO_PARAMS,
        run: Run::Plain(query::kvm),
    },
    Command {
        name: "query-cpus-fast",
        params: NO_PARAMS,
        run: Run::Plain(query::cpus_fast),
    },
    Command {
        name: "query-chardev",
        params: NO_PARAMS,
        run: Run::Plain(query::chardev),
    },
    Command {
        name: "query-block",
        params: NO_PARAMS,
        run: Run::Plain(query::block),
    },
    Command {
        name: "query-blockstats",
        params: query::BLOCKSTATS_PARAMS,
        run: Run::Plain(query::blockstats),
    },
    Command {
        name: "query-pci",
        params: NO_PARAMS,
        run: Run::Plain(query::pci),
    },
    Command {
        name: "query-balloon",
        params: NO_PARAMS,
        run: Run::Plain(query::balloon),
    },
    Command {
        name: "query-cpu-definitions",
        params: NO_PARAMS,
        run: Run::Plain(query::cpu_definitions),
    },
    Command {
        name: "query-cpu-model-expansion",
        params: query::CPU_MODEL_EXPANSION_PARAMS,
        run: Run::Plain(query::cpu_model_expansion),
    },
    Command {
        name: "balloon",
        params: control::BALLOON_PARAMS,
        run: Run::Plain(control::balloon),
    },
    Command {
        name: "qom-get",
        params: control::QOM_GET_PARAMS,
        run: Run::Plain(control::qom_get),
    },
    Command {
        name: "qom-set",
        params: control::QOM_SET_PARAMS,
        run: Run::Plain(control::qom_set),
    },
    Command {
        name: "set_link",
        params: control::SET_LINK_PARAMS,
        run: Run::Plain(control::set_link),
    },
    Command {
        name: "watchdog-set-action",
        params: control::WATCHDOG_SET_ACTION_PARAMS,
        run: Run::Plain(control::watchdog_set_action),
    },
    Command {
        name: "inject-nmi",
        params: NO_PARAMS,
        run: Run::Plain(control::inject_nmi),
    },
    Command {
        name: "eject",
        params: control::EJECT_PARAMS,
        run: Run::Plain(control::eject),
    },
    Command {
        name: "blockdev-open-tray",
        params: control::EJECT_PARAMS,
        run: Run::Plain(control::open_tray),
    },
    Command {
        name: "blockdev-close-tray",
        params: control::CLOSE_TRAY_PARAMS,
        run: Run::Plain(control::close_tray),
    },
    Command {
        name: "blockdev-remove-medium",
        params: control::REMOVE_MEDIUM_PARAMS,
        run: Run::Plain(control::remove_medium),
    },
    Command {
        name: "blockdev-insert-medium",
        params: control::INSERT_MEDIUM_PARAMS,
        run: Run::Plain(control::insert_medium),
    },
    Command {
        name: "blockdev-change-medium",
        params: control::CHANGE_MEDIUM_PARAMS,
        run: Run::Plain(control::change_medium),
    },
    Command {
        name: "query-vnc",
        params: NO_PARAMS,
        run: Run::Plain(display::query_vnc),
    },
    Command {
        name: "set_password",
        params: display::SET_PASSWORD_PARAMS,
        run: Run::Plain(display::set_password),
    },
    Command {
        name: "expire_password",
        params: display::EXPIRE_PASSWORD_PARAMS,
        run: Run::Plain(display::expire_password),
    },
    Command {
        name: "getfd",
        params: display::GETFD_PARAMS,
        run: Run::WithFds(display::getfd),
    },
    Command {
        name: "closefd",
        params: display::GETFD_PARAMS,
        run: Run::WithFds(display::closefd),
    },
    Command {
        name: "screendump",
        params: display::SCREENDUMP_PARAMS,
        run: Run::Plain(display::screendump),
    },
    Command {
        name: "add_client",
        params: display::ADD_CLIENT_PARAMS,
        run: Run::WithFds(display::add_client),
    },
    Command {
        name: "device_add",
        params: hotplug::DEVICE_ADD_PARAMS,
        run: Run::Plain(hotplug::device_add),
    },
    Command {
        name: "device_del",
        params: hotplug::ID_PARAMS,
        run: Run::Plain(hotplug::device_del),
    },
    Command {
        name: "netdev_add",
        params: hotplug::NETDEV_ADD_PARAMS,
        run: Run::WithFds(hotplug::netdev_add),
    },
    Command {
        name: "netdev_del",
        params: hotplug::ID_PARAMS,
        run: Run::Plain(hotplug::netdev_del),
    },
    Command {
        name: "add-fd",
        params: block::ADD_FD_PARAMS,
        run: Run::WithFds(block::add_fd),
    },
    Command {
        name: "remove-fd",
        params: block::REMOVE_FD_PARAMS,
        run: Run::Plain(block::remove_fd),
    },
    Command {
        name: "query-fdsets",
        params: NO_PARAMS,
        run: Run::Plain(block::query_fdsets),
    },
    Command {
        name: "blockdev-add",
        params: block::BLOCKDEV_ADD_PARAMS,
        run: Run::Open(block::blockdev_add),
    },
    Command {
        name: "blockdev-del",
        params: block::BLOCKDEV_DEL_PARAMS,
        run: Run::Plain(block::blockdev_del),
    },
    Command {
        name: "blockdev-snapshot",
        params: block::BLOCKDEV_SNAPSHOT_PARAMS,
        run: Run::Plain(block::blockdev_snapshot),
    },
    Command {
        name: "transaction",
        params: block::TRANSACTION_PARAMS,
        run: Run::Plain(block::transaction),
    },
    Command {
        name: "block-commit",
        params: block::BLOCK_COMMIT_PARAMS,
        run: Run::Plain(block::block_commit),
    },
    Command {
        name: "query-block-jobs",
        params: NO_PARAMS,
        run: Run::Plain(block::query_block_jobs),
    },
    Command {
        name: "block-job-complete",
        params: block::BLOCK_JOB_COMPLETE_PARAMS,
        run: Run::Plain(block::block_job_complete),
    },
    Command {
        name: "block-job-cancel",
        params: block::BLOCK_JOB_CANCEL_PARAMS,
        run: Run::Plain(block::block_job_cancel),
    },
    Command {
        name: "job-complete",
        params: block::JOB_ID_PARAMS,
        run: Run::Plain(block::job_complete),
    },
    Command {
        name: "job-cancel",
        params: block::JOB_ID_PARAMS,
        run: Run::Plain(block::job_cancel),
    },
    Command {
        name: "job-finalize",
        params: block::JOB_ID_PARAMS,
        run: Run::Plain(block::job_finalize),
    },
    Command {
        name: "job-dismiss",
        params: block::JOB_ID_PARAMS,
        run: Run::Plain(block::job_dismiss),
    },
    Command {
        name: "stop",
        params: NO_PARAMS,
        run: Run::Plain(control::stop),
    },
    Command {
        name: "cont",
        params: NO_PARAMS,
        run: Run::Plain(control::cont),
    },
    Command {
        name: "system_reset",
        params: NO_PARAMS,
        run: Run::Plain(control::system_reset),
    },
    Command {
        name: "system_powerdown",
        params: NO_PARAMS,
        run: Run::Plain(control::system_powerdown),
    },
    Command {
        name: "quit",
        params: NO_PARAMS,
        run: Run::Plain(control::quit),
    },
    Command {
        name: "human-monitor-command",
        params: hmp::PARAMS,
        run: Run::Plain(hmp::run),
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
    fds: &mut Fds,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Value, QmpError> {
    let cmd = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| QmpError::command_not_found(name))?;
    match cmd.run {
        Run::Open(_) => check_open(cmd.params, args)?,
        _ => check(cmd.params, args)?,
    }
    tracing::debug!(command = name, "QMP command");
    match cmd.run {
        Run::Plain(run) | Run::Open(run) => run(backend, args),
        Run::WithFds(run) => run(backend, fds, args),
    }
}
