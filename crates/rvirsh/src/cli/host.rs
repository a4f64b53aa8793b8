//! The host commands (virsh's "Host and Hypervisor" group).

use clap::Subcommand;

/// The host commands. `long_about` is virsh's DESCRIPTION paragraph.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// show version
    #[command(long_about = "Display the system version information.")]
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
    #[command(long_about = "Returns basic information about the node.")]
    Nodeinfo,
}
