//! The command line: virsh's global options and commands, with clap, and
//! clap's parse errors reworded as virsh words them.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};

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

/// A domain given as a positional argument or as `--domain`.
#[derive(Debug, Clone, Default, Args)]
pub struct Dom {
    /// domain name, id or uuid
    #[arg(value_name = "domain")]
    pub domain: Option<String>,
    /// domain name, id or uuid
    #[arg(long = "domain", value_name = "domain", conflicts_with = "domain")]
    pub domain_opt: Option<String>,
}

impl Dom {
    /// The domain argument, or virsh's complaint when it is missing.
    pub fn get(&self, cmd: &str) -> Result<&str, crate::error::CmdError> {
        self.domain
            .as_deref()
            .or(self.domain_opt.as_deref())
            .ok_or_else(|| {
                crate::error::CmdError::msg(format!("command '{cmd}' requires <domain> option"))
            })
    }
}

/// An XML file given as a positional argument or as `--file`.
#[derive(Debug, Clone, Default, Args)]
pub struct File {
    /// file containing an XML domain description
    #[arg(value_name = "file")]
    pub file: Option<String>,
    /// file containing an XML domain description
    #[arg(long = "file", value_name = "file", conflicts_with = "file")]
    pub file_opt: Option<String>,
}

impl File {
    /// The file argument, or virsh's complaint when it is missing.
    pub fn get(&self, cmd: &str) -> Result<&str, crate::error::CmdError> {
        self.file
            .as_deref()
            .or(self.file_opt.as_deref())
            .ok_or_else(|| {
                crate::error::CmdError::msg(format!("command '{cmd}' requires <file> option"))
            })
    }
}

/// `list`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct ListOpts {
    /// list inactive domains
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active domains
    #[arg(long)]
    pub all: bool,
    /// list transient domains
    #[arg(long)]
    pub transient: bool,
    /// list persistent domains
    #[arg(long)]
    pub persistent: bool,
    /// list domains with existing snapshot
    #[arg(long)]
    pub with_snapshot: bool,
    /// list domains without a snapshot
    #[arg(long)]
    pub without_snapshot: bool,
    /// list domains with existing checkpoint
    #[arg(long)]
    pub with_checkpoint: bool,
    /// list domains without a checkpoint
    #[arg(long)]
    pub without_checkpoint: bool,
    /// list domains in running state
    #[arg(long)]
    pub state_running: bool,
    /// list domains in paused state
    #[arg(long)]
    pub state_paused: bool,
    /// list domains in shutoff state
    #[arg(long)]
    pub state_shutoff: bool,
    /// list domains in other states
    #[arg(long)]
    pub state_other: bool,
    /// list domains with autostart enabled
    #[arg(long)]
    pub autostart: bool,
    /// list domains with autostart disabled
    #[arg(long)]
    pub no_autostart: bool,
    /// list domains with managed save state
    #[arg(long)]
    pub with_managed_save: bool,
    /// list domains without managed save
    #[arg(long)]
    pub without_managed_save: bool,
    /// list uuid's only
    #[arg(long)]
    pub uuid: bool,
    /// list domain names only
    #[arg(long)]
    pub name: bool,
    /// list domain IDs only
    #[arg(long)]
    pub id: bool,
    /// list table (default)
    #[arg(long)]
    pub table: bool,
    /// mark inactive domains with managed save state
    #[arg(long)]
    pub managed_save: bool,
    /// show domain title
    #[arg(long)]
    pub title: bool,
}

/// `event`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct EventOpts {
    /// filter by domain name, id or uuid
    #[arg(long, value_name = "domain")]
    pub domain: Option<String>,
    /// which event type to wait for
    #[arg(long, value_name = "event")]
    pub event: Option<String>,
    /// wait for all events instead of just one type
    #[arg(long)]
    pub all: bool,
    /// loop until timeout or interrupt, rather than one-shot
    #[arg(long = "loop")]
    pub loop_: bool,
    /// timeout seconds
    #[arg(long, value_name = "timeout")]
    pub timeout: Option<u64>,
    /// list valid event types
    #[arg(long)]
    pub list: bool,
    /// show timestamp for each printed event
    #[arg(long)]
    pub timestamp: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// list domains
    List(ListOpts),
    /// define (but don't start) a domain from an XML file
    Define {
        #[command(flatten)]
        file: File,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
    },
    /// undefine a domain
    Undefine {
        #[command(flatten)]
        dom: Dom,
        /// remove domain managed state file
        #[arg(long)]
        managed_save: bool,
        /// remove all domain snapshot metadata (vm must be inactive)
        #[arg(long)]
        snapshots_metadata: bool,
        /// remove all domain checkpoint metadata (vm must be inactive)
        #[arg(long)]
        checkpoints_metadata: bool,
        /// remove nvram file
        #[arg(long)]
        nvram: bool,
        /// keep nvram file
        #[arg(long)]
        keep_nvram: bool,
        /// remove TPM state
        #[arg(long)]
        tpm: bool,
        /// keep TPM state
        #[arg(long)]
        keep_tpm: bool,
    },
    /// create a domain from an XML file
    Create {
        #[command(flatten)]
        file: File,
        /// attach to console after creation
        #[arg(long)]
        console: bool,
        /// leave the guest paused after creation
        #[arg(long)]
        paused: bool,
        /// automatically destroy the guest when virsh disconnects
        #[arg(long)]
        autodestroy: bool,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
        /// re-initialize NVRAM from its pristine template
        #[arg(long)]
        reset_nvram: bool,
    },
    /// start a (previously defined) inactive domain
    Start {
        #[command(flatten)]
        dom: Dom,
        /// attach to console after creation
        #[arg(long)]
        console: bool,
        /// leave the guest paused after creation
        #[arg(long)]
        paused: bool,
        /// automatically destroy the guest when virsh disconnects
        #[arg(long)]
        autodestroy: bool,
        /// avoid file system cache when loading
        #[arg(long)]
        bypass_cache: bool,
        /// force fresh boot by discarding any managed save
        #[arg(long)]
        force_boot: bool,
        /// re-initialize NVRAM from its pristine template
        #[arg(long)]
        reset_nvram: bool,
    },
    /// gracefully shutdown a domain
    Shutdown {
        #[command(flatten)]
        dom: Dom,
        /// shutdown mode: acpi|agent|initctl|signal|paravirt
        #[arg(long, value_name = "string")]
        mode: Option<String>,
    },
    /// destroy (stop) a domain
    Destroy {
        #[command(flatten)]
        dom: Dom,
        /// terminate gracefully
        #[arg(long)]
        graceful: bool,
        /// remove domain logs
        #[arg(long)]
        remove_logs: bool,
    },
    /// reboot a domain
    Reboot {
        #[command(flatten)]
        dom: Dom,
        /// shutdown mode: acpi|agent|initctl|signal|paravirt
        #[arg(long, value_name = "string")]
        mode: Option<String>,
    },
    /// suspend a domain
    Suspend {
        #[command(flatten)]
        dom: Dom,
    },
    /// resume a domain
    Resume {
        #[command(flatten)]
        dom: Dom,
    },
    /// domain information
    Dominfo {
        #[command(flatten)]
        dom: Dom,
    },
    /// domain state
    Domstate {
        #[command(flatten)]
        dom: Dom,
        /// also print reason for the state
        #[arg(long)]
        reason: bool,
    },
    /// convert a domain name or UUID to domain id
    Domid {
        #[command(flatten)]
        dom: Dom,
    },
    /// convert a domain id or UUID to domain name
    Domname {
        #[command(flatten)]
        dom: Dom,
    },
    /// convert a domain name or id to domain UUID
    Domuuid {
        #[command(flatten)]
        dom: Dom,
    },
    /// domain information in XML
    Dumpxml {
        #[command(flatten)]
        dom: Dom,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
        /// include security sensitive information in XML dump
        #[arg(long)]
        security_info: bool,
        /// update guest CPU according to host CPU
        #[arg(long)]
        update_cpu: bool,
        /// provide XML suitable for migrations
        #[arg(long)]
        migratable: bool,
    },
    /// edit XML configuration for a domain
    Edit {
        #[command(flatten)]
        dom: Dom,
        /// skip validation of the XML against the schema
        #[arg(long)]
        skip_validate: bool,
    },
    /// connect to the guest console
    Console {
        #[command(flatten)]
        dom: Dom,
        /// character device name
        #[arg(long, value_name = "devname")]
        devname: Option<String>,
        /// force console connection (disconnect already connected sessions)
        #[arg(long)]
        force: bool,
        /// only connect if safe console handling is supported
        #[arg(long)]
        safe: bool,
    },
    /// autostart a domain
    Autostart {
        #[command(flatten)]
        dom: Dom,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// detailed domain vcpu information
    Vcpuinfo {
        #[command(flatten)]
        dom: Dom,
        /// return human readable output
        #[arg(long)]
        pretty: bool,
    },
    /// list all domain blocks
    Domblklist {
        #[command(flatten)]
        dom: Dom,
        /// get inactive rather than running configuration
        #[arg(long)]
        inactive: bool,
        /// additionally display the type and device value
        #[arg(long)]
        details: bool,
    },
    /// list all domain virtual interfaces
    Domiflist {
        #[command(flatten)]
        dom: Dom,
        /// get inactive rather than running configuration
        #[arg(long)]
        inactive: bool,
    },
    /// show version
    Version {
        /// report daemon version too
        #[arg(long)]
        daemon: bool,
    },
    /// print the hypervisor canonical URI
    Uri,
    /// print the hypervisor hostname
    Hostname,
    /// node information
    Nodeinfo,
    /// Convert domain XML to native config
    DomxmlToNative {
        /// target config data type format
        #[arg(value_name = "format")]
        format: Option<String>,
        /// domain name, id or uuid
        #[arg(long, value_name = "domain")]
        domain: Option<String>,
        /// xml data file to export from
        #[arg(value_name = "xml")]
        xml: Option<String>,
        /// xml data file to export from
        #[arg(long = "xml", value_name = "xml", conflicts_with = "xml")]
        xml_opt: Option<String>,
    },
    /// Domain Events
    Event(EventOpts),
    /// print help
    Help {
        /// Prints global help, command specific help, or help for a group of related commands
        #[arg(value_name = "command")]
        command: Option<String>,
    },
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::List(_) => "list",
            Command::Define { .. } => "define",
            Command::Undefine { .. } => "undefine",
            Command::Create { .. } => "create",
            Command::Start { .. } => "start",
            Command::Shutdown { .. } => "shutdown",
            Command::Destroy { .. } => "destroy",
            Command::Reboot { .. } => "reboot",
            Command::Suspend { .. } => "suspend",
            Command::Resume { .. } => "resume",
            Command::Dominfo { .. } => "dominfo",
            Command::Domstate { .. } => "domstate",
            Command::Domid { .. } => "domid",
            Command::Domname { .. } => "domname",
            Command::Domuuid { .. } => "domuuid",
            Command::Dumpxml { .. } => "dumpxml",
            Command::Edit { .. } => "edit",
            Command::Console { .. } => "console",
            Command::Autostart { .. } => "autostart",
            Command::Vcpuinfo { .. } => "vcpuinfo",
            Command::Domblklist { .. } => "domblklist",
            Command::Domiflist { .. } => "domiflist",
            Command::Version { .. } => "version",
            Command::Uri => "uri",
            Command::Hostname => "hostname",
            Command::Nodeinfo => "nodeinfo",
            Command::DomxmlToNative { .. } => "domxml-to-native",
            Command::Event(_) => "event",
            Command::Help { .. } => "help",
        }
    }
}

impl Command {
    /// Checks the required arguments, as virsh does while parsing (before
    /// connecting, and so without the blank line a run command ends with).
    pub fn check_required(&self) -> Result<(), crate::error::CmdError> {
        let name = self.name();
        match self {
            Command::Define { file, .. } | Command::Create { file, .. } => file.get(name).map(drop),
            Command::Start { dom, .. }
            | Command::Undefine { dom, .. }
            | Command::Shutdown { dom, .. }
            | Command::Destroy { dom, .. }
            | Command::Reboot { dom, .. }
            | Command::Suspend { dom }
            | Command::Resume { dom }
            | Command::Dominfo { dom }
            | Command::Domstate { dom, .. }
            | Command::Domid { dom }
            | Command::Domname { dom }
            | Command::Domuuid { dom }
            | Command::Dumpxml { dom, .. }
            | Command::Edit { dom, .. }
            | Command::Console { dom, .. }
            | Command::Autostart { dom, .. }
            | Command::Vcpuinfo { dom, .. }
            | Command::Domblklist { dom, .. }
            | Command::Domiflist { dom, .. } => dom.get(name).map(drop),
            Command::DomxmlToNative { format: None, .. } => Err(crate::error::CmdError::msg(
                "command 'domxml-to-native' requires <format> option",
            )),
            _ => Ok(()),
        }
    }
}

/// The console escape as virsh takes it: `^X` is Ctrl+X, a single
/// character is itself; anything else is refused.
pub fn escape_byte(s: &str) -> Result<u8, crate::error::CmdError> {
    let b = s.as_bytes();
    match b {
        [b'^', c] => Ok(c.to_ascii_uppercase() ^ 0x40),
        [c] if *c != b'^' => Ok(*c),
        _ => Err(crate::error::CmdError::msg(format!(
            "Invalid string '{s}' for escape sequence"
        ))),
    }
}

/// What parsing the command line came to.
#[derive(Debug)]
pub enum Parsed {
    /// Run this.
    Run(Cli),
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
        Ok(cli) => return Parsed::Run(cli),
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
            Parsed::Run(c) => c,
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
            Some(Command::Domstate { dom, reason }) => {
                assert!(reason);
                assert_eq!(dom.get("domstate").unwrap(), "demo");
            }
            other => panic!("{other:?}"),
        }
        match run("start --domain demo --paused").command {
            Some(Command::Start {
                dom,
                paused,
                console,
                ..
            }) => {
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
            Some(Command::List(o)) => assert!(o.all && o.name && !o.uuid),
            other => panic!("{other:?}"),
        }
        match run("domxml-to-native qemu-argv /tmp/x.xml").command {
            Some(Command::DomxmlToNative { format, xml, .. }) => {
                assert_eq!(format.as_deref(), Some("qemu-argv"));
                assert_eq!(xml.as_deref(), Some("/tmp/x.xml"));
            }
            other => panic!("{other:?}"),
        }
        match run("event --loop --event lifecycle").command {
            Some(Command::Event(o)) => {
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
