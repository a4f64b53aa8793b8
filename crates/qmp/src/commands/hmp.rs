//! `human-monitor-command`: the few HMP commands management tools still
//! send, with QEMU's output text (LF becomes CRLF, as QEMU's monitor does).

use crate::args::{ArgType, Param};
use crate::backend::MonitorBackend;
use crate::error::QmpError;
use crate::types::RunState;
use serde_json::{Map, Value};
use std::fmt::Write;

pub(super) const PARAMS: &[Param] = &[
    Param::required("command-line", ArgType::Str),
    Param::optional("cpu-index", ArgType::Int),
];

pub(super) fn run(b: &dyn MonitorBackend, args: &Map<String, Value>) -> Result<Value, QmpError> {
    let line = args
        .get("command-line")
        .and_then(Value::as_str)
        .unwrap_or("");
    let cpu_index = args.get("cpu-index").and_then(Value::as_i64);
    execute(b, line, cpu_index).map(Value::String)
}

/// Runs one HMP command line and returns its output.
pub(crate) fn execute(
    b: &dyn MonitorBackend,
    line: &str,
    cpu_index: Option<i64>,
) -> Result<String, QmpError> {
    let cpus = b.cpus();
    // The monitor's current CPU: the one asked for, else the first.
    let current = match cpu_index {
        Some(i) if cpus.iter().any(|c| c.cpu_index == i) => Some(i),
        Some(_) => {
            return Err(QmpError::invalid_parameter_value(
                "cpu-index",
                "a CPU number",
            ))
        }
        None => cpus.first().map(|c| c.cpu_index),
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = String::new();
    match words.as_slice() {
        [] => {}
        ["info", "status"] => out = info_status(b.status()),
        ["info", "version"] => {
            let v = b.version();
            // QEMU prints the package right after the number, no separator.
            out = format!(
                "{}.{}.{}{}\n",
                v.qemu.major, v.qemu.minor, v.qemu.micro, v.package
            );
        }
        ["info", "cpus"] => {
            for c in &cpus {
                let mark = if Some(c.cpu_index) == current {
                    '*'
                } else {
                    ' '
                };
                let _ = writeln!(
                    out,
                    "{mark} CPU #{}: thread_id={}",
                    c.cpu_index, c.thread_id
                );
            }
        }
        ["info", "name"] => {
            if let Some(name) = b.name() {
                out = format!("{name}\n");
            }
        }
        ["info", "kvm"] => {
            let k = b.kvm();
            let state = if !k.present {
                "not compiled"
            } else if k.enabled {
                "enabled"
            } else {
                "disabled"
            };
            out = format!("kvm support: {state}\n");
        }
        ["stop"] => report(&mut out, b.stop()),
        ["c" | "cont"] => {
            let r = if b.status().needs_reset() {
                Err(QmpError::generic(
                    "Resetting the Virtual Machine is required",
                ))
            } else {
                b.cont()
            };
            report(&mut out, r);
        }
        ["system_reset"] => b.system_reset(),
        ["system_powerdown"] => b.system_powerdown(),
        ["q" | "quit"] => b.quit(),
        [first, rest @ ..] => {
            // QEMU names the command it failed to find: `info X` for info
            // subcommands, the first word otherwise.
            let name = match (*first, rest.first()) {
                ("info", Some(sub)) => format!("info {sub}"),
                _ => (*first).to_string(),
            };
            out = format!("unknown command: '{name}'\n");
        }
    }
    Ok(out.replace('\n', "\r\n"))
}

/// HMP prints command errors as text, the QMP reply itself succeeds.
fn report(out: &mut String, r: Result<(), QmpError>) {
    if let Err(e) = r {
        let _ = writeln!(out, "Error: {}", e.desc);
    }
}

fn info_status(status: RunState) -> String {
    let running = status == RunState::Running;
    let mut s = format!("VM status: {}", if running { "running" } else { "paused" });
    if !running && status != RunState::Paused {
        let _ = write!(s, " ({})", status.as_str());
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_status_text() {
        assert_eq!(info_status(RunState::Running), "VM status: running\n");
        assert_eq!(info_status(RunState::Paused), "VM status: paused\n");
        assert_eq!(
            info_status(RunState::Prelaunch),
            "VM status: paused (prelaunch)\n"
        );
        assert_eq!(
            info_status(RunState::Shutdown),
            "VM status: paused (shutdown)\n"
        );
    }
}
