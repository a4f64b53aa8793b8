//! The domain commands (virsh's "Domain Management", "Domain Monitoring"
//! and "Domain Events" groups) and the arguments they share.

use clap::{Args, Subcommand};

use crate::error::CmdError;

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
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.domain, &self.domain_opt, cmd, "domain")
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
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.file, &self.file_opt, cmd, "file")
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

/// The domain commands. `long_about` is virsh's DESCRIPTION paragraph
/// (`help COMMAND`).
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// list domains
    #[command(long_about = "Returns list of domains.")]
    List(ListOpts),
    /// define (but don't start) a domain from an XML file
    #[command(long_about = "Define a domain.")]
    Define {
        #[command(flatten)]
        file: File,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
    },
    /// undefine a domain
    #[command(long_about = "Undefine an inactive domain, or convert persistent to transient.")]
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
    #[command(long_about = "Create a domain.")]
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
    #[command(
        long_about = "Start a domain, either from the last managedsave\n    state, or via a fresh boot if no managedsave state\n    is present."
    )]
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
    #[command(long_about = "Run shutdown in the target domain.")]
    Shutdown {
        #[command(flatten)]
        dom: Dom,
        /// shutdown mode: acpi|agent|initctl|signal|paravirt
        #[arg(long, value_name = "string")]
        mode: Option<String>,
    },
    /// destroy (stop) a domain
    #[command(long_about = "Forcefully stop a given domain, but leave its resources intact.")]
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
    #[command(long_about = "Run a reboot command in the target domain.")]
    Reboot {
        #[command(flatten)]
        dom: Dom,
        /// shutdown mode: acpi|agent|initctl|signal|paravirt
        #[arg(long, value_name = "string")]
        mode: Option<String>,
    },
    /// suspend a domain
    #[command(long_about = "Suspend a running domain.")]
    Suspend {
        #[command(flatten)]
        dom: Dom,
    },
    /// resume a domain
    #[command(long_about = "Resume a previously suspended domain.")]
    Resume {
        #[command(flatten)]
        dom: Dom,
    },
    /// Inject NMI to the guest
    #[command(long_about = "Inject NMI to the guest domain.")]
    InjectNmi {
        #[command(flatten)]
        dom: Dom,
    },
    /// domain information
    #[command(long_about = "Returns basic information about the domain.")]
    Dominfo {
        #[command(flatten)]
        dom: Dom,
    },
    /// domain state
    #[command(long_about = "Returns state about a domain.")]
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
    #[command(long_about = "Output the domain information as an XML dump to stdout.")]
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
    #[command(long_about = "Edit the XML configuration for a domain.")]
    Edit {
        #[command(flatten)]
        dom: Dom,
        /// skip validation of the XML against the schema
        #[arg(long)]
        skip_validate: bool,
    },
    /// connect to the guest console
    #[command(long_about = "Connect the virtual serial console for the guest")]
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
    /// domain display connection URI
    #[command(long_about = "Output the IP address and port number for the graphical display.")]
    Domdisplay {
        #[command(flatten)]
        dom: Dom,
        /// includes the password into the connection URI if available
        #[arg(long)]
        include_password: bool,
        /// select particular graphical display (e.g. "vnc", "spice", "rdp", "dbus")
        #[arg(long = "type", value_name = "string")]
        type_: Option<String>,
        /// show all possible graphical displays
        #[arg(long)]
        all: bool,
    },
    /// vnc display
    #[command(long_about = "Output the IP address and port number for the VNC display.")]
    Vncdisplay {
        #[command(flatten)]
        dom: Dom,
    },
    /// take a screenshot of a current domain console and store it into a file
    #[command(long_about = "screenshot of a current domain console")]
    Screenshot {
        #[command(flatten)]
        dom: Dom,
        /// where to store the screenshot
        #[arg(long, value_name = "string")]
        file: Option<String>,
        /// ID of a screen to take screenshot of
        #[arg(long, value_name = "number")]
        screen: Option<String>,
        /// `--file` given without its name, as virsh takes it
        #[arg(value_name = "string", hide = true, conflicts_with = "file")]
        file_pos: Option<String>,
    },
    /// autostart a domain
    #[command(long_about = "Configure a domain to be automatically started at boot.")]
    Autostart {
        #[command(flatten)]
        dom: Dom,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// detailed domain vcpu information
    #[command(long_about = "Returns basic information about the domain virtual CPUs.")]
    Vcpuinfo {
        #[command(flatten)]
        dom: Dom,
        /// return human readable output
        #[arg(long)]
        pretty: bool,
    },
    /// list all domain blocks
    #[command(long_about = "Get the summary of block devices for a domain.")]
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
    #[command(long_about = "Get the summary of virtual interfaces for a domain.")]
    Domiflist {
        #[command(flatten)]
        dom: Dom,
        /// get inactive rather than running configuration
        #[arg(long)]
        inactive: bool,
    },
    /// Convert domain XML to native config
    #[command(long_about = "Convert domain XML config to a native guest configuration format.")]
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
    #[command(long_about = "List event types, or wait for domain events to occur")]
    Event(EventOpts),
}

impl DomainCommand {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::List(_) => "list",
            Self::Define { .. } => "define",
            Self::Undefine { .. } => "undefine",
            Self::Create { .. } => "create",
            Self::Start { .. } => "start",
            Self::Shutdown { .. } => "shutdown",
            Self::Destroy { .. } => "destroy",
            Self::Reboot { .. } => "reboot",
            Self::Suspend { .. } => "suspend",
            Self::Resume { .. } => "resume",
            Self::InjectNmi { .. } => "inject-nmi",
            Self::Dominfo { .. } => "dominfo",
            Self::Domstate { .. } => "domstate",
            Self::Domid { .. } => "domid",
            Self::Domname { .. } => "domname",
            Self::Domuuid { .. } => "domuuid",
            Self::Dumpxml { .. } => "dumpxml",
            Self::Edit { .. } => "edit",
            Self::Console { .. } => "console",
            Self::Domdisplay { .. } => "domdisplay",
            Self::Vncdisplay { .. } => "vncdisplay",
            Self::Screenshot { .. } => "screenshot",
            Self::Autostart { .. } => "autostart",
            Self::Vcpuinfo { .. } => "vcpuinfo",
            Self::Domblklist { .. } => "domblklist",
            Self::Domiflist { .. } => "domiflist",
            Self::DomxmlToNative { .. } => "domxml-to-native",
            Self::Event(_) => "event",
        }
    }

    /// Checks the required arguments, as virsh does while parsing.
    pub fn check_required(&self) -> Result<(), CmdError> {
        let name = self.name();
        match self {
            Self::Define { file, .. } | Self::Create { file, .. } => file.get(name).map(drop),
            Self::Start { dom, .. }
            | Self::Undefine { dom, .. }
            | Self::Shutdown { dom, .. }
            | Self::Destroy { dom, .. }
            | Self::Reboot { dom, .. }
            | Self::Suspend { dom }
            | Self::Resume { dom }
            | Self::InjectNmi { dom }
            | Self::Dominfo { dom }
            | Self::Domstate { dom, .. }
            | Self::Domid { dom }
            | Self::Domname { dom }
            | Self::Domuuid { dom }
            | Self::Dumpxml { dom, .. }
            | Self::Edit { dom, .. }
            | Self::Console { dom, .. }
            | Self::Domdisplay { dom, .. }
            | Self::Vncdisplay { dom }
            | Self::Screenshot { dom, .. }
            | Self::Autostart { dom, .. }
            | Self::Vcpuinfo { dom, .. }
            | Self::Domblklist { dom, .. }
            | Self::Domiflist { dom, .. } => dom.get(name).map(drop),
            Self::DomxmlToNative { format, .. } => {
                super::required(format, &None, name, "format").map(drop)
            }
            Self::List(_) | Self::Event(_) => Ok(()),
        }
    }
}
