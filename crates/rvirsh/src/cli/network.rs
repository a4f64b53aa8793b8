//! The network commands (virsh's "Networking" group), and `domifaddr`,
//! which answers from the networks' DHCP leases.

use clap::{Args, Subcommand};

use crate::error::CmdError;

/// A network given as a positional argument or as `--network`.
#[derive(Debug, Clone, Default, Args)]
pub struct Net {
    /// network name or uuid
    #[arg(value_name = "network")]
    pub network: Option<String>,
    /// network name or uuid
    #[arg(long = "network", value_name = "network", conflicts_with = "network")]
    pub network_opt: Option<String>,
}

impl Net {
    /// The network argument, or virsh's complaint when it is missing.
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.network, &self.network_opt, cmd, "network")
    }
}

/// An XML file given as a positional argument or as `--file`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetFile {
    /// file containing an XML network description
    #[arg(value_name = "file")]
    pub file: Option<String>,
    /// file containing an XML network description
    #[arg(long = "file", value_name = "file", conflicts_with = "file")]
    pub file_opt: Option<String>,
}

impl NetFile {
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.file, &self.file_opt, cmd, "file")
    }
}

/// `net-list`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct NetListOpts {
    /// list inactive networks
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active networks
    #[arg(long)]
    pub all: bool,
    /// list persistent networks
    #[arg(long)]
    pub persistent: bool,
    /// list transient networks
    #[arg(long)]
    pub transient: bool,
    /// list networks with autostart enabled
    #[arg(long)]
    pub autostart: bool,
    /// list networks with autostart disabled
    #[arg(long)]
    pub no_autostart: bool,
    /// list uuid's only
    #[arg(long)]
    pub uuid: bool,
    /// list network names only
    #[arg(long)]
    pub name: bool,
    /// list table (default)
    #[arg(long)]
    pub table: bool,
}

/// `net-event`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct NetEventOpts {
    /// filter by network name or uuid
    #[arg(long, value_name = "network")]
    pub network: Option<String>,
    /// which event type to wait for
    #[arg(long, value_name = "event")]
    pub event: Option<String>,
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

/// The network commands. `long_about` is virsh's DESCRIPTION paragraph.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// list networks
    #[command(name = "net-list", long_about = "Returns list of networks.")]
    NetList(NetListOpts),
    /// network information
    #[command(
        name = "net-info",
        long_about = "Returns basic information about the network"
    )]
    NetInfo {
        #[command(flatten)]
        net: Net,
    },
    /// convert a network name to network UUID
    #[command(name = "net-uuid")]
    NetUuid {
        #[command(flatten)]
        net: Net,
    },
    /// convert a network UUID to network name
    #[command(name = "net-name")]
    NetName {
        #[command(flatten)]
        net: Net,
    },
    /// network information in XML
    #[command(
        name = "net-dumpxml",
        long_about = "Output the network information as an XML dump to stdout."
    )]
    NetDumpxml {
        #[command(flatten)]
        net: Net,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
    },
    /// define an inactive persistent virtual network or modify an existing persistent one from an XML file
    #[command(
        name = "net-define",
        long_about = "Define or modify a persistent virtual network."
    )]
    NetDefine {
        #[command(flatten)]
        file: NetFile,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
    },
    /// create a network from an XML file
    #[command(name = "net-create", long_about = "Create a network.")]
    NetCreate {
        #[command(flatten)]
        file: NetFile,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
    },
    /// start a (previously defined) inactive network
    #[command(name = "net-start", long_about = "Start a network.")]
    NetStart {
        #[command(flatten)]
        net: Net,
    },
    /// destroy (stop) a network
    #[command(name = "net-destroy", long_about = "Forcefully stop a given network.")]
    NetDestroy {
        #[command(flatten)]
        net: Net,
    },
    /// undefine a persistent network
    #[command(
        name = "net-undefine",
        long_about = "Undefine the configuration for a persistent network."
    )]
    NetUndefine {
        #[command(flatten)]
        net: Net,
    },
    /// autostart a network
    #[command(
        name = "net-autostart",
        long_about = "Configure a network to be automatically started at boot."
    )]
    NetAutostart {
        #[command(flatten)]
        net: Net,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// update parts of an existing network's configuration
    #[command(name = "net-update")]
    NetUpdate {
        #[command(flatten)]
        net: Net,
        /// type of update (add-first, add-last (add), delete, or modify)
        #[arg(value_name = "command")]
        command: Option<String>,
        /// which section of network configuration to update
        #[arg(value_name = "section")]
        section: Option<String>,
        /// name of file containing xml (or, if it starts with '<', the complete xml element itself) to add/modify, or to be matched for search
        #[arg(value_name = "xml")]
        xml: Option<String>,
        /// which parent object to search through
        #[arg(long = "parent-index", value_name = "number")]
        parent_index: Option<i32>,
        /// affect next network startup
        #[arg(long)]
        config: bool,
        /// affect running network
        #[arg(long)]
        live: bool,
        /// affect current state of network
        #[arg(long)]
        current: bool,
    },
    /// print lease info for a given network
    #[command(
        name = "net-dhcp-leases",
        long_about = "Print lease info for a given network"
    )]
    NetDhcpLeases {
        #[command(flatten)]
        net: Net,
        /// MAC address
        #[arg(long, value_name = "string")]
        mac: Option<String>,
    },
    /// Network Events
    #[command(
        name = "net-event",
        long_about = "List event types, or wait for network events to occur"
    )]
    NetEvent(NetEventOpts),
    /// Get network interfaces' addresses for a running domain
    #[command(
        name = "domifaddr",
        long_about = "Get network interfaces' addresses for a running domain"
    )]
    Domifaddr {
        /// domain name, id or uuid
        #[arg(value_name = "domain")]
        domain: Option<String>,
        /// network interface name
        #[arg(long, value_name = "string")]
        interface: Option<String>,
        /// always display names and MACs of interfaces
        #[arg(long)]
        full: bool,
        /// address source: 'lease', 'agent', or 'arp'
        #[arg(long, value_name = "string")]
        source: Option<String>,
    },
}

impl NetworkCommand {
    /// The command's virsh name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NetList(_) => "net-list",
            Self::NetInfo { .. } => "net-info",
            Self::NetUuid { .. } => "net-uuid",
            Self::NetName { .. } => "net-name",
            Self::NetDumpxml { .. } => "net-dumpxml",
            Self::NetDefine { .. } => "net-define",
            Self::NetCreate { .. } => "net-create",
            Self::NetStart { .. } => "net-start",
            Self::NetDestroy { .. } => "net-destroy",
            Self::NetUndefine { .. } => "net-undefine",
            Self::NetAutostart { .. } => "net-autostart",
            Self::NetUpdate { .. } => "net-update",
            Self::NetDhcpLeases { .. } => "net-dhcp-leases",
            Self::NetEvent(_) => "net-event",
            Self::Domifaddr { .. } => "domifaddr",
        }
    }

    /// Checks the required arguments, as virsh does while parsing.
    pub fn check_required(&self) -> Result<(), CmdError> {
        let name = self.name();
        match self {
            Self::NetList(_) | Self::NetEvent(_) => Ok(()),
            Self::NetDefine { file, .. } | Self::NetCreate { file, .. } => file.get(name).map(drop),
            Self::NetUpdate {
                net,
                command,
                section,
                xml,
                ..
            } => {
                net.get(name)?;
                super::required(command, &None, name, "command")?;
                super::required(section, &None, name, "section")?;
                super::required(xml, &None, name, "xml").map(drop)
            }
            Self::Domifaddr { domain, .. } => {
                super::required(domain, &None, name, "domain").map(drop)
            }
            Self::NetInfo { net }
            | Self::NetUuid { net }
            | Self::NetName { net }
            | Self::NetDumpxml { net, .. }
            | Self::NetStart { net }
            | Self::NetDestroy { net }
            | Self::NetUndefine { net }
            | Self::NetAutostart { net, .. }
            | Self::NetDhcpLeases { net, .. } => net.get(name).map(drop),
        }
    }
}
