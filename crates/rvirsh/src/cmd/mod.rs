//! The commands, one module per group (`domain`, `host`, `network`,
//! `pool`, `volume`). Each prints what virsh prints and returns the error
//! lines virsh would print.

mod domain;
mod host;
pub(crate) mod network;
mod pool;
mod volume;

use crate::cli::Command;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;

/// Runs one command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &Command) -> Result<(), CmdError> {
    match c {
        Command::Domain(c) => domain::run(s, out, c),
        Command::Host(c) => host::run(s, out, c),
        Command::Pool(c) => pool::run(s, out, c),
        Command::Volume(c) => volume::run(s, out, c),
        Command::Network(c) => network::run(s, out, c),
        // Answered before connecting (see main).
        Command::Help { .. } => Ok(()),
    }
}

/// Reads an XML file given on the command line, failing as virsh does.
pub fn read_file(path: &str) -> Result<String, CmdError> {
    std::fs::read_to_string(path).map_err(|e| {
        CmdError::msg(format!(
            "Failed to open file '{path}': {}",
            crate::error::strerror(&e)
        ))
    })
}
