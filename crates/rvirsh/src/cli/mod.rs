//! The command line: virsh's global options and commands, with clap, and
//! clap's parse errors reworded as virsh words them.

mod domain;
mod host;
mod network;
mod pool;
mod volume;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

pub use domain::{DomainCommand, EventOpts, ListOpts};
pub use host::HostCommand;
pub use network::{NetEventOpts, NetListOpts, NetworkCommand};
pub use pool::{BuildOpts, PoolAs, PoolCommand, PoolListOpts};
pub use volume::{TransferOpts, VolArg, VolCommand, VolCreateAs};

use crate::error::CmdError;

/// rvirsh: virsh's commands over libvirt's remote protocol.
#[derive(Debug, Parser)]
#[command(
    name = "rvirsh",
    disable_version_flag = true,
    disable_help_subcommand = true,
    arg_required_else_help = true,
    about = "virsh-compatible management command line for rvirtd (and libvirtd)"
)]
pub struct Cli {
    /// Hypervisor connection URI
    #[arg(short = 'c', long = "connect", value_name = "URI", global = false)]
    pub connect: Option<String>,
    /// Quiet mode: no headers, no informational messages
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Connect read-only (accepted for compatibility)
    #[arg(short = 'r', long = "readonly")]
    pub readonly: bool,
    /// Debug level (accepted for compatibility)
    #[arg(short = 'd', long = "debug", value_name = "NUM")]
    pub debug: Option<String>,
    /// Console escape sequence: one character, or `^` and a character
    #[arg(
        short = 'e',
        long = "escape",
        value_name = "ESCAPE",
        default_value = "^]"
    )]
    pub escape: String,
    /// Print the version (the libvirt release whose protocol rvirsh speaks)
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands, one enum per group of virsh's: a new group (networks,
/// pools, volumes) is one more flattened enum here and one more module in
/// `cmd`.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Domain(DomainCommand),
    #[command(flatten)]
    Host(HostCommand),
    #[command(flatten)]
    Network(NetworkCommand),
    #[command(flatten)]
    Pool(PoolCommand),
    #[command(flatten)]
    Volume(VolCommand),
    /// print help
    #[command(
        long_about = "Prints global help, command specific help, or help for a\n    group of related commands"
    )]
    Help {
        /// Prints global help, command specific help, or help for a group of related commands
        #[arg(value_name = "command")]
        command: Option<String>,
    },
}

impl Command {
    /// Checks the required arguments, as virsh does while parsing (before
    /// connecting, and so without the blank line a run command ends with).
    pub fn check_required(&self) -> Result<(), CmdError> {
        match self {
            Command::Domain(c) => c.check_required(),
            Command::Pool(c) => c.check_required(),
            Command::Volume(c) => c.check_required(),
            Command::Network(c) => c.check_required(),
            Command::Host(_) | Command::Help { .. } => Ok(()),
        }
    }
}

/// An argument given positionally or as `--what` (`opt`), or virsh's
/// complaint when it is missing.
pub fn required<'a>(
    positional: &'a Option<String>,
    opt: &'a Option<String>,
    cmd: &str,
    what: &str,
) -> Result<&'a str, CmdError> {
    positional
        .as_deref()
        .or(opt.as_deref())
        .ok_or_else(|| CmdError::msg(format!("command '{cmd}' requires <{what}> option")))
}

/// The console escape as virsh takes it: `^X` is Ctrl+X, a single
/// character is itself; anything else is refused.
pub fn escape_byte(s: &str) -> Result<u8, CmdError> {
    let b = s.as_bytes();
    match b {
        [b'^', c] => Ok(c.to_ascii_uppercase() ^ 0x40),
        [c] if *c != b'^' => Ok(*c),
        _ => Err(CmdError::msg(format!(
            "Invalid string '{s}' for escape sequence"
        ))),
    }
}

/// What parsing the command line came to.
#[derive(Debug)]
pub enum Parsed {
    /// Run this.
    Run(Box<Cli>),
    /// Print this on stdout and exit 0 (help).
    Print(String),
    /// Print `error: MSG` and exit 1.
    Fail(String),
}

/// Global options that take a value, to find the command word in argv.
const GLOBAL_WITH_VALUE: &[&str] = &[
    "-c",
    "--connect",
    "-d",
    "--debug",
    "-l",
    "--log",
    "-k",
    "-K",
    "-e",
];

/// The command word of argv (the first non-option after the global options).
pub fn command_word(args: &[String]) -> Option<&str> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if GLOBAL_WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

fn context_str(e: &clap::Error, k: ContextKind) -> Option<String> {
    match e.get(k)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        _ => None,
    }
}

/// Parses argv, rewording clap's errors as virsh's.
pub fn parse(args: &[String]) -> Parsed {
    let e = match Cli::try_parse_from(args) {
        Ok(cli) => return Parsed::Run(Box::new(cli)),
        Err(e) => e,
    };
    let cmd = command_word(args).unwrap_or("").to_string();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Parsed::Print(e.to_string()),
        ErrorKind::InvalidSubcommand => {
            let name = context_str(&e, ContextKind::InvalidSubcommand).unwrap_or(cmd);
            Parsed::Fail(format!("unknown command: '{name}'"))
        }
        ErrorKind::UnknownArgument => {
            let arg = context_str(&e, ContextKind::InvalidArg).unwrap_or_default();
            if arg.starts_with('-') && !cmd.is_empty() {
                let opt = arg.split('=').next().unwrap_or(&arg);
                Parsed::Fail(format!("command '{cmd}' doesn't support option {opt}"))
            } else if arg.starts_with('-') {
                Parsed::Fail(format!("unsupported option '{arg}'. See --help."))
            } else {
                Parsed::Fail(format!("unexpected data '{arg}'"))
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = context_str(&e, ContextKind::InvalidArg).unwrap_or_default();
            let val = context_str(&e, ContextKind::InvalidValue).unwrap_or_default();
            let opt = arg
                .trim_start_matches('-')
                .split([' ', '='])
                .next()
                .unwrap_or("")
                .to_string();
            Parsed::Fail(format!(
                "Numeric value '{val}' for <{opt}> option is malformed or out of range"
            ))
        }
        ErrorKind::ArgumentConflict => Parsed::Fail(format!(
            "option --{} already provided",
            context_str(&e, ContextKind::InvalidArg)
                .unwrap_or_default()
                .trim_start_matches('-')
                .split([' ', '='])
                .next()
                .unwrap_or("")
        )),
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            Parsed::Fail(first.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        std::iter::once("rvirsh")
            .chain(s.split_whitespace())
            .map(str::to_string)
            .collect()
    }

    fn fail(s: &str) -> String {
        match parse(&argv(s)) {
            Parsed::Fail(m) => m,
            other => panic!("{s}: expected a failure, got {other:?}"),
        }
    }

    fn run(s: &str) -> Cli {
        match parse(&argv(s)) {
            Parsed::Run(c) => *c,
            other => panic!("{s}: expected a command, got {other:?}"),
        }
    }

    #[test]
    fn virsh_error_wording() {
        assert_eq!(fail("nosuchcommand"), "unknown command: 'nosuchcommand'");
        assert_eq!(
            fail("list --foo"),
            "command 'list' doesn't support option --foo"
        );
        assert_eq!(fail("list extra"), "unexpected data 'extra'");
        assert_eq!(
            fail("-c test:///default domstate x y"),
            "unexpected data 'y'"
        );
    }

    #[test]
    fn domain_positional_or_option() {
        let c = run("-c qemu:///system domstate demo --reason");
        assert_eq!(c.connect.as_deref(), Some("qemu:///system"));
        match c.command {
            Some(Command::Domain(DomainCommand::Domstate { dom, reason })) => {
                assert!(reason);
                assert_eq!(dom.get("domstate").unwrap(), "demo");
            }
            other => panic!("{other:?}"),
        }
        match run("start --domain demo --paused").command {
            Some(Command::Domain(DomainCommand::Start {
                dom,
                paused,
                console,
                ..
            })) => {
                assert_eq!(dom.get("start").unwrap(), "demo");
                assert!(paused && !console);
            }
            other => panic!("{other:?}"),
        }
        let missing = run("start").command.unwrap();
        assert_eq!(
            missing.check_required().unwrap_err().to_string(),
            "command 'start' requires <domain> option"
        );
        assert!(run("start x").command.unwrap().check_required().is_ok());
        assert_eq!(
            run("define")
                .command
                .unwrap()
                .check_required()
                .unwrap_err()
                .to_string(),
            "command 'define' requires <file> option"
        );
    }

    #[test]
    fn list_flags_and_other_commands() {
        match run("list --all --name").command {
            Some(Command::Domain(DomainCommand::List(o))) => assert!(o.all && o.name && !o.uuid),
            other => panic!("{other:?}"),
        }
        match run("domxml-to-native qemu-argv /tmp/x.xml").command {
            Some(Command::Domain(DomainCommand::DomxmlToNative { format, xml, .. })) => {
                assert_eq!(format.as_deref(), Some("qemu-argv"));
                assert_eq!(xml.as_deref(), Some("/tmp/x.xml"));
            }
            other => panic!("{other:?}"),
        }
        match run("event --loop --event lifecycle").command {
            Some(Command::Domain(DomainCommand::Event(o))) => {
                assert!(o.loop_);
                assert_eq!(o.event.as_deref(), Some("lifecycle"));
            }
            other => panic!("{other:?}"),
        }
        assert!(run("-q uri").quiet);
        assert!(run("--version").version);
    }

    #[test]
    fn escape_sequences() {
        assert_eq!(escape_byte("^]").unwrap(), 0x1d);
        assert_eq!(escape_byte("^a").unwrap(), 0x01);
        assert_eq!(escape_byte("x").unwrap(), b'x');
        assert_eq!(
            escape_byte("abc").unwrap_err().to_string(),
            "Invalid string 'abc' for escape sequence"
        );
        assert!(escape_byte("^").is_err());
        assert_eq!(run("-e ^A uri").escape, "^A");
    }

    #[test]
    fn command_word_skips_global_values() {
        assert_eq!(command_word(&argv("-c x list --all")), Some("list"));
        assert_eq!(
            command_word(&argv("-q --connect x dominfo d")),
            Some("dominfo")
        );
        assert_eq!(command_word(&argv("-q")), None);
    }
}
