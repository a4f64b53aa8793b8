//! The storage pool commands (virsh's "Storage Pool" group).

use clap::{Args, Subcommand};

use crate::error::CmdError;

/// A pool given positionally or as `--pool`.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolArg {
    /// pool name or uuid
    #[arg(value_name = "pool")]
    pub pool: Option<String>,
    /// pool name or uuid
    #[arg(long = "pool", value_name = "pool", conflicts_with = "pool")]
    pub pool_opt: Option<String>,
}

impl PoolArg {
    /// The pool argument, or virsh's complaint when it is missing.
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.pool, &self.pool_opt, cmd, "pool")
    }
}

/// An XML file given positionally or as `--file`.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolFile {
    /// file containing an XML pool description
    #[arg(value_name = "file")]
    pub file: Option<String>,
    /// file containing an XML pool description
    #[arg(long = "file", value_name = "file", conflicts_with = "file")]
    pub file_opt: Option<String>,
}

impl PoolFile {
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.file, &self.file_opt, cmd, "file")
    }
}

/// `pool-define-as` and `pool-create-as`: the pool built from arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolAs {
    /// name of the pool
    #[arg(value_name = "name")]
    pub name: Option<String>,
    /// type of the pool
    #[arg(id = "type", value_name = "type")]
    pub kind: Option<String>,
    /// print XML document, but don't define/create
    #[arg(long)]
    pub print_xml: bool,
    /// source-host for underlying storage
    #[arg(long)]
    pub source_host: Option<String>,
    /// source path for underlying storage
    #[arg(long)]
    pub source_path: Option<String>,
    /// source device for underlying storage
    #[arg(long)]
    pub source_dev: Option<String>,
    /// source name for underlying storage
    #[arg(long)]
    pub source_name: Option<String>,
    /// target for underlying storage
    #[arg(long)]
    pub target: Option<String>,
    /// format for underlying storage
    #[arg(long)]
    pub source_format: Option<String>,
}

/// `pool-list`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolListOpts {
    /// list inactive pools
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active pools
    #[arg(long)]
    pub all: bool,
    /// list transient pools
    #[arg(long)]
    pub transient: bool,
    /// list persistent pools
    #[arg(long)]
    pub persistent: bool,
    /// list pools with autostart enabled
    #[arg(long)]
    pub autostart: bool,
    /// list pools with autostart disabled
    #[arg(long)]
    pub no_autostart: bool,
    /// only list pool of specified type(s) (if supported)
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    /// display extended details for pools
    #[arg(long)]
    pub details: bool,
    /// list UUID of active pools only
    #[arg(long)]
    pub uuid: bool,
    /// list name of active pools only
    #[arg(long)]
    pub name: bool,
}

/// Build-time overwrite flags (`pool-build`, `pool-create`, `pool-start`).
#[derive(Debug, Clone, Default, Args)]
pub struct BuildOpts {
    /// do not overwrite any existing data
    #[arg(long)]
    pub no_overwrite: bool,
    /// overwrite any existing data
    #[arg(long)]
    pub overwrite: bool,
}

/// The pool commands. `long_about` is virsh's DESCRIPTION paragraph.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// list pools
    #[command(name = "pool-list", long_about = "Returns list of pools.")]
    List(PoolListOpts),
    /// storage pool information
    #[command(
        name = "pool-info",
        long_about = "Returns basic information about the storage pool."
    )]
    Info {
        #[command(flatten)]
        pool: PoolArg,
        /// Return pool info in bytes
        #[arg(long)]
        bytes: bool,
    },
    /// pool information in XML
    #[command(
        name = "pool-dumpxml",
        long_about = "Output the pool information as an XML dump to stdout."
    )]
    Dumpxml {
        #[command(flatten)]
        pool: PoolArg,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
    },
    /// define an inactive persistent storage pool or modify an existing persistent one from an XML file
    #[command(
        name = "pool-define",
        long_about = "Define or modify a persistent storage pool."
    )]
    Define {
        #[command(flatten)]
        file: PoolFile,
        /// validate the XML against the schema
        #[arg(long)]
        validate: bool,
    },
    /// define a pool from a set of args
    #[command(name = "pool-define-as", long_about = "Define a pool.")]
    DefineAs(PoolAs),
    /// create a pool from an XML file
    #[command(name = "pool-create", long_about = "Create a pool from an XML <file>.")]
    Create {
        #[command(flatten)]
        file: PoolFile,
        /// build the pool as normal
        #[arg(long)]
        build: bool,
        #[command(flatten)]
        overwrite: BuildOpts,
    },
    /// create a pool from a set of args
    #[command(name = "pool-create-as", long_about = "Create a pool.")]
    CreateAs {
        #[command(flatten)]
        def: PoolAs,
        /// build the pool as normal
        #[arg(long)]
        build: bool,
        #[command(flatten)]
        overwrite: BuildOpts,
    },
    /// build a pool
    #[command(name = "pool-build", long_about = "Build a given pool.")]
    Build {
        #[command(flatten)]
        pool: PoolArg,
        #[command(flatten)]
        overwrite: BuildOpts,
    },
    /// start a (previously defined) inactive pool
    #[command(name = "pool-start", long_about = "Start a pool.")]
    Start {
        #[command(flatten)]
        pool: PoolArg,
        /// build the pool as normal
        #[arg(long)]
        build: bool,
        #[command(flatten)]
        overwrite: BuildOpts,
    },
    /// destroy (stop) a pool
    #[command(
        name = "pool-destroy",
        long_about = "Forcefully stop a given pool. Raw data in the pool is untouched"
    )]
    Destroy {
        #[command(flatten)]
        pool: PoolArg,
    },
    /// delete a pool
    #[command(name = "pool-delete", long_about = "Delete a given pool.")]
    Delete {
        #[command(flatten)]
        pool: PoolArg,
    },
    /// undefine an inactive pool
    #[command(
        name = "pool-undefine",
        long_about = "Undefine the configuration for an inactive pool."
    )]
    Undefine {
        #[command(flatten)]
        pool: PoolArg,
    },
    /// autostart a pool
    #[command(
        name = "pool-autostart",
        long_about = "Configure a pool to be automatically started at boot."
    )]
    Autostart {
        #[command(flatten)]
        pool: PoolArg,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// refresh a pool
    #[command(name = "pool-refresh", long_about = "Refresh a given pool.")]
    Refresh {
        #[command(flatten)]
        pool: PoolArg,
    },
    /// convert a pool UUID to pool name
    #[command(name = "pool-name")]
    Name {
        /// pool uuid
        #[arg(value_name = "pool")]
        pool: Option<String>,
    },
    /// convert a pool name to pool UUID
    #[command(name = "pool-uuid")]
    Uuid {
        #[command(flatten)]
        pool: PoolArg,
    },
}

impl PoolCommand {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::List(_) => "pool-list",
            Self::Info { .. } => "pool-info",
            Self::Dumpxml { .. } => "pool-dumpxml",
            Self::Define { .. } => "pool-define",
            Self::DefineAs(_) => "pool-define-as",
            Self::Create { .. } => "pool-create",
            Self::CreateAs { .. } => "pool-create-as",
            Self::Build { .. } => "pool-build",
            Self::Start { .. } => "pool-start",
            Self::Destroy { .. } => "pool-destroy",
            Self::Delete { .. } => "pool-delete",
            Self::Undefine { .. } => "pool-undefine",
            Self::Autostart { .. } => "pool-autostart",
            Self::Refresh { .. } => "pool-refresh",
            Self::Name { .. } => "pool-name",
            Self::Uuid { .. } => "pool-uuid",
        }
    }

    /// Checks the required arguments, as virsh does while parsing.
    pub fn check_required(&self) -> Result<(), CmdError> {
        let name = self.name();
        match self {
            Self::Info { pool, .. }
            | Self::Dumpxml { pool, .. }
            | Self::Build { pool, .. }
            | Self::Start { pool, .. }
            | Self::Destroy { pool }
            | Self::Delete { pool }
            | Self::Undefine { pool }
            | Self::Autostart { pool, .. }
            | Self::Refresh { pool }
            | Self::Uuid { pool } => pool.get(name).map(drop),
            Self::Define { file, .. } | Self::Create { file, .. } => file.get(name).map(drop),
            Self::DefineAs(d) | Self::CreateAs { def: d, .. } => {
                super::required(&d.name, &None, name, "name")?;
                super::required(&d.kind, &None, name, "type").map(drop)
            }
            Self::Name { pool } => super::required(pool, &None, name, "pool").map(drop),
            Self::List(_) => Ok(()),
        }
    }
}
