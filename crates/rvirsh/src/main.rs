//! rvirsh: virsh's command line over libvirt's remote protocol, for
//! rvirtd (and any libvirtd). Same commands, output layout and exit codes
//! as virsh 9.0.

mod cli;
mod cmd;
mod devices;
mod error;
mod help;
mod out;
mod session;
mod table;
mod target;
mod term;

use std::io::Write;
use std::process::ExitCode;

use cli::{Command, Parsed};
use error::{client_cause, CmdError};
use out::Out;
use session::Session;

/// The libvirt release whose protocol and output rvirsh follows; what
/// `virsh --version` prints.
pub const LIBVIRT_VERSION: &str = "9.0.0";

fn print_errors(e: &CmdError) {
    let mut err = std::io::stderr().lock();
    for line in e.lines() {
        let _ = writeln!(err, "error: {line}");
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`rvirsh event --loop | head -1`) as
    // virsh does, instead of looping on failed writes.
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().collect();
    let cli = match cli::parse(&args) {
        Parsed::Run(c) => c,
        Parsed::Print(s) => {
            Out::default().print(&s);
            return ExitCode::SUCCESS;
        }
        Parsed::Fail(m) => {
            print_errors(&CmdError::msg(m));
            return ExitCode::FAILURE;
        }
    };
    let escape = match cli::escape_byte(&cli.escape) {
        Ok(b) => b,
        Err(e) => {
            print_errors(&e);
            return ExitCode::FAILURE;
        }
    };
    let out = Out {
        quiet: cli.quiet,
        escape,
        escape_text: cli.escape.clone(),
    };
    if cli.version {
        out.print(&format!("{LIBVIRT_VERSION}\n"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        return ExitCode::SUCCESS;
    };
    // help needs no daemon, as in virsh.
    if let Command::Help { command: topic } = &command {
        return match help::help(topic.as_deref()) {
            Ok(text) => {
                out.print(&text);
                out.extra("\n");
                ExitCode::SUCCESS
            }
            Err(m) => {
                print_errors(&CmdError::msg(m));
                out.extra("\n");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = command.check_required() {
        print_errors(&e);
        return ExitCode::FAILURE;
    }
    let connect_failed = |cause: String| {
        print_errors(&CmdError {
            context: Some("failed to connect to the hypervisor".into()),
            cause: Some(cause),
        });
        ExitCode::FAILURE
    };
    let target = match target::resolve_from_env(cli.connect.as_deref()) {
        Ok(t) => t,
        Err(e) => return connect_failed(e.to_string()),
    };
    let mut session = match Session::open(target) {
        Ok(s) => s,
        Err(e) => return connect_failed(client_cause(&e)),
    };
    let result = cmd::run(&mut session, &out, &command);
    if let Err(e) = &result {
        print_errors(e);
    }
    out.extra("\n");
    session.close();
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
