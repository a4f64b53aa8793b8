//! The storage volume commands (virsh's "Storage Volume" group).

use clap::{Args, Subcommand};

use crate::error::CmdError;

/// A volume given positionally or as `--vol`, and its `--pool`.
#[derive(Debug, Clone, Default, Args)]
pub struct VolArg {
    /// vol name, key or path
    #[arg(value_name = "vol")]
    pub vol: Option<String>,
    /// vol name, key or path
    #[arg(long = "vol", value_name = "vol", conflicts_with = "vol")]
    pub vol_opt: Option<String>,
    /// pool name or uuid
    #[arg(long = "pool", value_name = "string")]
    pub pool: Option<String>,
}

impl VolArg {
    pub fn get(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.vol, &self.vol_opt, cmd, "vol")
    }
}

/// Upload and download options, in virsh's order.
#[derive(Debug, Clone, Default, Args)]
pub struct TransferOpts {
    /// vol name, key or path
    #[arg(value_name = "vol")]
    pub vol: Option<String>,
    /// vol name, key or path
    #[arg(long = "vol", value_name = "vol", conflicts_with = "vol")]
    pub vol_opt: Option<String>,
    /// file
    #[arg(value_name = "file")]
    pub file: Option<String>,
    /// file
    #[arg(long = "file", value_name = "file", conflicts_with = "file")]
    pub file_opt: Option<String>,
    /// pool name or uuid
    #[arg(long = "pool", value_name = "string")]
    pub pool: Option<String>,
    /// volume offset
    #[arg(long, value_name = "number", default_value_t = 0)]
    pub offset: u64,
    /// amount of data
    #[arg(long, value_name = "number", default_value_t = 0)]
    pub length: u64,
    /// preserve sparseness of volume
    #[arg(long)]
    pub sparse: bool,
}

/// `vol-create-as`'s arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct VolCreateAs {
    /// pool name
    #[arg(value_name = "pool")]
    pub pool: Option<String>,
    /// name of the volume
    #[arg(value_name = "name")]
    pub name: Option<String>,
    /// size of the vol, as scaled integer (default bytes)
    #[arg(value_name = "capacity")]
    pub capacity: Option<String>,
    /// initial allocation size, as scaled integer (default bytes)
    #[arg(long, value_name = "string")]
    pub allocation: Option<String>,
    /// file format type raw,bochs,qcow,qcow2,qed,vmdk
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// the backing volume if taking a snapshot
    #[arg(long, value_name = "string")]
    pub backing_vol: Option<String>,
    /// format of backing volume if taking a snapshot
    #[arg(long, value_name = "string")]
    pub backing_vol_format: Option<String>,
    /// preallocate metadata (for qcow2 instead of full allocation)
    #[arg(long)]
    pub prealloc_metadata: bool,
    /// print XML document, but don't define/create
    #[arg(long)]
    pub print_xml: bool,
}

/// The volume commands. `long_about` is virsh's DESCRIPTION paragraph.
#[derive(Debug, Subcommand)]
pub enum VolCommand {
    /// list vols
    #[command(name = "vol-list", long_about = "Returns list of vols by pool.")]
    List {
        #[command(flatten)]
        pool: super::pool::PoolArg,
        /// display extended details for volumes
        #[arg(long)]
        details: bool,
    },
    /// storage vol information
    #[command(
        name = "vol-info",
        long_about = "Returns basic information about the storage vol."
    )]
    Info {
        #[command(flatten)]
        vol: VolArg,
        /// sizes are represented in bytes rather than pretty units
        #[arg(long)]
        bytes: bool,
        /// return the physical size of the volume in allocation field
        #[arg(long)]
        physical: bool,
    },
    /// vol information in XML
    #[command(
        name = "vol-dumpxml",
        long_about = "Output the vol information as an XML dump to stdout."
    )]
    Dumpxml {
        #[command(flatten)]
        vol: VolArg,
    },
    /// returns the volume path for a given volume name or key
    #[command(name = "vol-path")]
    Path {
        #[command(flatten)]
        vol: VolArg,
    },
    /// returns the volume key for a given volume name or path
    #[command(name = "vol-key")]
    Key {
        #[command(flatten)]
        vol: VolArg,
    },
    /// returns the volume name for a given volume key or path
    #[command(name = "vol-name")]
    Name {
        /// volume key or path
        #[arg(value_name = "vol")]
        vol: Option<String>,
    },
    /// returns the storage pool for a given volume key or path
    #[command(name = "vol-pool")]
    Pool {
        /// volume key or path
        #[arg(value_name = "vol")]
        vol: Option<String>,
        /// return the pool uuid rather than pool name
        #[arg(long)]
        uuid: bool,
    },
    /// create a volume from a set of args
    #[command(name = "vol-create-as", long_about = "Create a vol.")]
    CreateAs(VolCreateAs),
    /// create a vol from an XML file
    #[command(name = "vol-create", long_about = "Create a vol.")]
    Create {
        #[command(flatten)]
        pool: super::pool::PoolArg,
        /// file containing an XML vol description
        #[arg(value_name = "file")]
        file: Option<String>,
        /// preallocate metadata (for qcow2 instead of full allocation)
        #[arg(long)]
        prealloc_metadata: bool,
    },
    /// create a vol, using another volume as input
    #[command(
        name = "vol-create-from",
        long_about = "Create a vol from an existing volume."
    )]
    CreateFrom {
        /// pool name or uuid
        #[arg(value_name = "pool")]
        pool: Option<String>,
        /// file containing an XML vol description
        #[arg(value_name = "file")]
        file: Option<String>,
        /// input vol name or key
        #[arg(value_name = "vol")]
        vol: Option<String>,
        /// pool name or uuid of the input volume's pool
        #[arg(long, value_name = "string")]
        inputpool: Option<String>,
        /// preallocate metadata (for qcow2 instead of full allocation)
        #[arg(long)]
        prealloc_metadata: bool,
    },
    #[command(
        name = "vol-clone",
        about = "clone a volume.",
        long_about = "Clone an existing volume within the parent pool."
    )]
    Clone {
        #[command(flatten)]
        vol: VolArg,
        /// clone name
        #[arg(value_name = "newname")]
        newname: Option<String>,
        /// preallocate metadata (for qcow2 instead of full allocation)
        #[arg(long)]
        prealloc_metadata: bool,
        /// print XML document rather than clone the volume
        #[arg(long)]
        print_xml: bool,
    },
    /// delete a vol
    #[command(name = "vol-delete", long_about = "Delete a given vol.")]
    Delete {
        #[command(flatten)]
        vol: VolArg,
        /// delete snapshots associated with volume (must be supported by storage driver)
        #[arg(long)]
        delete_snapshots: bool,
    },
    /// resize a vol
    #[command(
        name = "vol-resize",
        long_about = "Resizes a storage volume. This is safe only for storage volumes not in use by an active guest.\nSee blockresize for live resizing."
    )]
    Resize {
        #[command(flatten)]
        vol: VolArg,
        /// new capacity for the vol, as scaled integer (default bytes)
        #[arg(value_name = "capacity")]
        capacity: Option<String>,
        /// allocate the new capacity, rather than leaving it sparse
        #[arg(long)]
        allocate: bool,
        /// use capacity as a delta to current size, rather than the new size
        #[arg(long)]
        delta: bool,
        /// allow the resize to shrink the volume
        #[arg(long)]
        shrink: bool,
    },
    /// wipe a vol
    #[command(
        name = "vol-wipe",
        long_about = "Ensure data previously on a volume is not accessible to future reads"
    )]
    Wipe {
        #[command(flatten)]
        vol: VolArg,
        /// perform selected wiping algorithm
        #[arg(long, value_name = "string")]
        algorithm: Option<String>,
    },
    /// upload file contents to a volume
    #[command(name = "vol-upload", long_about = "Upload file contents to a volume")]
    Upload(TransferOpts),
    /// download volume contents to a file
    #[command(
        name = "vol-download",
        long_about = "Download volume contents to a file"
    )]
    Download(TransferOpts),
}

impl TransferOpts {
    /// The volume as a [`VolArg`].
    pub fn vol_arg(&self) -> VolArg {
        VolArg {
            vol: self.vol.clone(),
            vol_opt: self.vol_opt.clone(),
            pool: self.pool.clone(),
        }
    }

    pub fn file(&self, cmd: &str) -> Result<&str, CmdError> {
        super::required(&self.file, &self.file_opt, cmd, "file")
    }
}

impl VolCommand {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::List { .. } => "vol-list",
            Self::Info { .. } => "vol-info",
            Self::Dumpxml { .. } => "vol-dumpxml",
            Self::Path { .. } => "vol-path",
            Self::Key { .. } => "vol-key",
            Self::Name { .. } => "vol-name",
            Self::Pool { .. } => "vol-pool",
            Self::CreateAs(_) => "vol-create-as",
            Self::Create { .. } => "vol-create",
            Self::CreateFrom { .. } => "vol-create-from",
            Self::Clone { .. } => "vol-clone",
            Self::Delete { .. } => "vol-delete",
            Self::Resize { .. } => "vol-resize",
            Self::Wipe { .. } => "vol-wipe",
            Self::Upload(_) => "vol-upload",
            Self::Download(_) => "vol-download",
        }
    }

    /// Checks the required arguments, as virsh does while parsing.
    pub fn check_required(&self) -> Result<(), CmdError> {
        let n = self.name();
        let req = |v: &Option<String>, what: &str| super::required(v, &None, n, what).map(drop);
        match self {
            Self::List { pool, .. } => pool.get(n).map(drop),
            Self::Info { vol, .. }
            | Self::Dumpxml { vol }
            | Self::Path { vol }
            | Self::Key { vol }
            | Self::Delete { vol, .. }
            | Self::Wipe { vol, .. } => vol.get(n).map(drop),
            Self::Name { vol } | Self::Pool { vol, .. } => req(vol, "vol"),
            Self::CreateAs(c) => {
                req(&c.pool, "pool")?;
                req(&c.name, "name")?;
                req(&c.capacity, "capacity")
            }
            Self::Create { pool, file, .. } => {
                pool.get(n)?;
                req(file, "file")
            }
            Self::CreateFrom {
                pool, file, vol, ..
            } => {
                req(pool, "pool")?;
                req(file, "file")?;
                req(vol, "vol")
            }
            Self::Clone { vol, newname, .. } => {
                vol.get(n)?;
                req(newname, "newname")
            }
            Self::Resize { vol, capacity, .. } => {
                vol.get(n)?;
                req(capacity, "capacity")
            }
            Self::Upload(t) | Self::Download(t) => {
                t.vol_arg().get(n)?;
                t.file(n).map(drop)
            }
        }
    }
}
