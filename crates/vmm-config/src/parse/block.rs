//! `-drive` and `-blockdev` into the typed node graph of [`crate::disk`]:
//! QEMU's cache, aio and discard spellings are read here, once.
//!
//! A `-drive` makes an anonymous format node over an anonymous file node,
//! both with the drive's options (QEMU passes them down). `-blockdev`
//! nodes are named, come in any order, and refer to each other by name
//! (libvirt: a `file`/`host_device` node and a `raw` node on it); they are
//! joined when a device asks for one.

use std::path::PathBuf;

use crate::disk::{
    cache_mode, Aio, Backing, Cache, FormatNode, ImageFormat, Protocol, ProtocolNode, CACHE_MODES,
};
use crate::opts::Opts;
use crate::ConfigError;

/// A `-drive`: its complete graph, and its `cache.writeback`.
#[derive(Debug)]
struct Drive {
    id: String,
    image: FormatNode,
    writeback: bool,
}

/// How a format node names its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// `"file": "NODE"`.
    Node(String),
    /// `"file": {"driver": "file", …}`: defined in place.
    Inline(ProtocolNode),
}

/// A `-blockdev` format node before its file and backing node are
/// looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDef {
    /// The node, its `file` and `backing` still to fill in.
    pub node: FormatNode,
    pub file: FileRef,
    /// `backing`: absent, `null`, or a node name.
    pub backing: Option<Option<String>>,
}

/// One `-blockdev` (or QMP `blockdev-add`) node as given, its references
/// to other nodes not looked up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDef {
    /// `file` / `host_device`.
    Protocol(ProtocolNode),
    /// `raw` / `qcow2`.
    Format(FormatDef),
}

impl NodeDef {
    /// The node's `node-name`.
    pub fn name(&self) -> &str {
        match self {
            NodeDef::Protocol(p) => p.node_name.as_deref(),
            NodeDef::Format(f) => f.node.node_name.as_deref(),
        }
        .unwrap_or_default()
    }
}

/// Reads one node in `-blockdev`'s syntax (key=value or JSON) for
/// `option` (the name errors give: `-blockdev`, `blockdev-add`).
pub fn blockdev_node(option: &str, v: &str) -> Result<NodeDef, ConfigError> {
    let mut o = Opts::parse(option, v, None)?;
    let driver = o.require("driver")?;
    let name = o.require("node-name")?;
    if let Some(p) = protocol(&driver) {
        let node = protocol_node(&mut o, p, Some(name))?;
        o.finish()?;
        return Ok(NodeDef::Protocol(node));
    }
    let fmt = format(&o, &driver)?;
    let read_only = o.get_bool("read-only")?.unwrap_or(false);
    o.ignore(&["auto-read-only", "detect-zeroes"]);
    let cache = node_cache(&mut o, Cache::default())?;
    let discard = discard(&mut o)?;
    let file = match o.get_ref("file") {
        Some(Some(node)) => FileRef::Node(node),
        None if o.has_prefix("file") => {
            let mut inline = o.child("file");
            let d = inline.require("driver")?;
            let Some(p) = protocol(&d) else {
                return Err(o.error(format!(
                    "file driver '{d}' is not supported (only file and host_device)"
                )));
            };
            let node_name = inline.get("node-name");
            let node = protocol_node(&mut inline, p, node_name)?;
            inline.finish()?;
            FileRef::Inline(node)
        }
        _ => {
            return Err(
                o.error("parameter 'file' is missing (the name of a driver=file node)".into())
            )
        }
    };
    let backing = o.get_ref("backing");
    // A raw image has no backing file; QEMU's words.
    if fmt == ImageFormat::Raw && backing.is_some() {
        return Err(o.error("Parameter 'backing' is unexpected".into()));
    }
    if backing.as_ref().is_some_and(|b| b.as_deref() == Some("")) {
        return Err(o.error("parameter 'backing' is empty (a node name or null)".into()));
    }
    o.finish()?;
    Ok(NodeDef::Format(FormatDef {
        node: FormatNode {
            node_name: Some(name),
            format: fmt,
            read_only,
            cache,
            discard,
            file: ProtocolNode::default(),
            backing: Backing::FromImage,
        },
        file,
        backing,
    }))
}

/// A disk as a device gets it.
pub(super) struct Resolved {
    pub image: FormatNode,
    /// The guest write cache `write-cache=auto` means.
    pub writeback: bool,
    pub blockdev: bool,
}

/// Every `-drive` and `-blockdev` seen so far.
#[derive(Default)]
pub(super) struct BlockSpecs {
    drives: Vec<Drive>,
    protocols: Vec<ProtocolNode>,
    formats: Vec<FormatDef>,
    /// Nodes another node or a device has taken: (node, taken by): a
    /// protocol node as a format node's file, a format node as another's
    /// backing image or as a device's disk.
    taken: Vec<(String, String)>,
}

fn format(o: &Opts, format: &str) -> Result<ImageFormat, ConfigError> {
    match format {
        "raw" => Ok(ImageFormat::Raw),
        "qcow2" => Ok(ImageFormat::Qcow2),
        "qcow" | "vmdk" | "vdi" | "vhdx" | "qed" => Err(o.error(format!(
            "format '{format}' is not supported yet (only raw and qcow2 images)"
        ))),
        other => Err(o.error(format!("unknown format '{other}'"))),
    }
}

/// A `-drive`'s image: its format node over its file node, both with the
/// drive's options (`file=`, `format=`, `readonly=`, cache, aio,
/// discard), and its `cache.writeback`. `read_only` forces it (a CD-ROM).
pub(super) fn drive_image(
    o: &mut Opts,
    read_only: bool,
) -> Result<(FormatNode, bool), ConfigError> {
    let filename = file_path(o, "file")?;
    let fmt = match o.get("format") {
        Some(f) => format(o, &f)?,
        None => ImageFormat::Raw,
    };
    let read_only = o.get_bool("readonly")?.unwrap_or(false) || read_only;
    // cache=MODE sets all three; the specific options take precedence,
    // as in QEMU.
    let (base, writeback) = match o.get("cache") {
        None => (Cache::default(), true),
        Some(m) => cache_mode(&m).ok_or_else(|| {
            o.error(format!(
                "parameter 'cache' expects one of {}, not '{m}'",
                CACHE_MODES.join(", ")
            ))
        })?,
    };
    let cache = node_cache(o, base)?;
    let writeback = o.get_bool("cache.writeback")?.unwrap_or(writeback);
    let aio = aio(o)?;
    check_native(o, aio, cache, &filename)?;
    let discard = discard(o)?;
    o.ignore(&["werror", "rerror", "detect-zeroes", "auto-read-only"]);
    let image = FormatNode {
        node_name: None,
        format: fmt,
        read_only,
        cache,
        discard,
        file: ProtocolNode {
            node_name: None,
            // QEMU would probe for host_device; both open the same.
            driver: Protocol::File,
            filename,
            read_only,
            auto_read_only: false,
            cache,
            aio,
            discard,
        },
        backing: Backing::FromImage,
    };
    Ok((image, writeback))
}

fn file_path(o: &mut Opts, key: &str) -> Result<PathBuf, ConfigError> {
    let f = o.require(key)?;
    if f.is_empty() {
        return Err(o.error("empty file name".into()));
    }
    Ok(PathBuf::from(f))
}

/// `discard=ignore|off|unmap|on`: true when discards go on down.
fn discard(o: &mut Opts) -> Result<bool, ConfigError> {
    match o.get("discard").as_deref() {
        None | Some("ignore" | "off") => Ok(false),
        Some("unmap" | "on") => Ok(true),
        Some(v) => Err(o.error(format!(
            "parameter 'discard' expects 'ignore' or 'unmap', not '{v}'"
        ))),
    }
}

fn aio(o: &mut Opts) -> Result<Aio, ConfigError> {
    match o.get("aio") {
        None => Ok(Aio::default()),
        Some(v) => Aio::from_qemu(&v).ok_or_else(|| {
            o.error(format!(
                "parameter 'aio' expects one of threads, native, io_uring, not '{v}'"
            ))
        }),
    }
}

/// QEMU's rule (and message): Linux AIO only with O_DIRECT.
fn check_native(
    o: &Opts,
    aio: Aio,
    cache: Cache,
    path: &std::path::Path,
) -> Result<(), ConfigError> {
    if aio == Aio::Native && !cache.direct {
        return Err(o.error(format!(
            "'{}': aio=native was specified, but it requires cache.direct=on, which was not specified",
            path.display()
        )));
    }
    Ok(())
}

/// A node's `cache.direct` and `cache.no-flush` over `base`.
fn node_cache(o: &mut Opts, base: Cache) -> Result<Cache, ConfigError> {
    Ok(Cache {
        direct: o.get_bool("cache.direct")?.unwrap_or(base.direct),
        no_flush: o.get_bool("cache.no-flush")?.unwrap_or(base.no_flush),
    })
}

/// The options of a `file`/`host_device` node (the caller read `driver`
/// and `node-name`).
fn protocol_node(
    o: &mut Opts,
    driver: Protocol,
    node_name: Option<String>,
) -> Result<ProtocolNode, ConfigError> {
    let filename = file_path(o, "filename")?;
    let read_only = o.get_bool("read-only")?.unwrap_or(false);
    let auto_read_only = o.get_bool("auto-read-only")?.unwrap_or(false);
    // Locking: rvirt takes no image locks; detect-zeroes changes no data.
    o.ignore(&["detect-zeroes", "locking"]);
    let cache = node_cache(o, Cache::default())?;
    let aio = aio(o)?;
    check_native(o, aio, cache, &filename)?;
    let discard = discard(o)?;
    Ok(ProtocolNode {
        node_name,
        driver,
        filename,
        read_only,
        auto_read_only,
        cache,
        aio,
        discard,
    })
}

fn protocol(driver: &str) -> Option<Protocol> {
    match driver {
        "file" => Some(Protocol::File),
        "host_device" => Some(Protocol::HostDevice),
        _ => None,
    }
}

impl BlockSpecs {
    /// `-drive file=…,format=raw,if=none,id=ID,…`.
    /// `-drive`: with `if=none`, a drive a `-device` names by its `id`;
    /// with `if=ide` (QEMU's default interface on pc and q35), a drive
    /// the board puts on its IDE or AHCI bus, returned for
    /// [`super::legacy`] to place.
    pub(super) fn drive(
        &mut self,
        v: &str,
    ) -> Result<Option<super::legacy::LegacyDrive>, ConfigError> {
        let mut o = Opts::parse("-drive", v, None)?;
        match o.get("if").as_deref() {
            Some("none") => {}
            None | Some("ide") => return super::legacy::drive(o, v).map(Some),
            Some(other) => return Err(super::legacy::refused_if(&o, other)),
        }
        let id = o.require("id")?;
        if let Some(m) = o.get("media") {
            if m != "disk" {
                return Err(o.error(format!("media={m} is not supported yet")));
            }
        }
        let (image, writeback) = drive_image(&mut o, false)?;
        o.finish()?;
        self.add_drive("-drive", id, image, writeback)
            .map(|()| None)
    }

    /// Adds a `-drive`'s graph under `id` (its own or the name QEMU gives
    /// a board's drive).
    pub(super) fn add_drive(
        &mut self,
        opt: &str,
        id: String,
        image: FormatNode,
        writeback: bool,
    ) -> Result<(), ConfigError> {
        self.check_new(opt, &id)?;
        self.drives.push(Drive {
            id,
            writeback,
            image,
        });
        Ok(())
    }

    fn check_new(&self, opt: &str, id: &str) -> Result<(), ConfigError> {
        let taken = self.drives.iter().any(|d| d.id == id)
            || self
                .protocols
                .iter()
                .any(|p| p.node_name.as_deref() == Some(id))
            || self
                .formats
                .iter()
                .any(|f| f.node.node_name.as_deref() == Some(id));
        if taken {
            return Err(ConfigError::new(
                opt,
                format!("duplicate node name or id '{id}'"),
            ));
        }
        Ok(())
    }

    /// `-blockdev`: a `file`/`host_device` node, or a `raw` node on one.
    pub(super) fn blockdev(&mut self, v: &str) -> Result<(), ConfigError> {
        let node = blockdev_node("-blockdev", v)?;
        self.check_new("-blockdev", node.name())?;
        match node {
            NodeDef::Protocol(p) => self.protocols.push(p),
            NodeDef::Format(f) => self.formats.push(f),
        }
        Ok(())
    }

    /// The disk a device names by drive id or format node name. A
    /// protocol node serves one format node, a format node one device or
    /// one overlay.
    pub(super) fn resolve(&mut self, name: &str) -> Result<Resolved, ConfigError> {
        if let Some(d) = self.drives.iter().find(|d| d.id == name) {
            return Ok(Resolved {
                image: d.image.clone(),
                writeback: d.writeback,
                blockdev: false,
            });
        }
        let image = self.format_node(name, "-device", &mut Vec::new())?;
        Ok(Resolved {
            image,
            writeback: true,
            blockdev: true,
        })
    }

    /// Marks `node` as taken by `by`, or says who has it already.
    fn take(&mut self, node: &str, by: &str, what: &str) -> Result<(), ConfigError> {
        if let Some((_, other)) = self.taken.iter().find(|(n, _)| n == node) {
            return Err(ConfigError::new(
                "-blockdev",
                format!("node '{node}' is already {what} of node '{other}'"),
            ));
        }
        self.taken.push((node.to_string(), by.to_string()));
        Ok(())
    }

    /// Format node `name` with its file and its backing chain joined in;
    /// `above`: the overlays already on the way down (a loop is refused).
    fn format_node(
        &mut self,
        name: &str,
        user: &str,
        above: &mut Vec<String>,
    ) -> Result<FormatNode, ConfigError> {
        let Some(f) = self
            .formats
            .iter()
            .find(|f| f.node.node_name.as_deref() == Some(name))
        else {
            let what = if self
                .protocols
                .iter()
                .any(|p| p.node_name.as_deref() == Some(name))
            {
                format!("drive '{name}' is a protocol node: use the format node on it")
            } else {
                format!("drive '{name}' not found")
            };
            return Err(ConfigError::new(user, what));
        };
        if above.iter().any(|a| a == name) {
            return Err(ConfigError::new(
                "-blockdev",
                format!("node '{name}' is in its own backing chain"),
            ));
        }
        let mut image = f.node.clone();
        let file_ref = f.file.clone();
        let backing = f.backing.clone();
        image.file = match file_ref {
            FileRef::Inline(p) => p,
            FileRef::Node(file) => {
                let p = self
                    .protocols
                    .iter()
                    .find(|p| p.node_name.as_deref() == Some(file.as_str()))
                    .cloned()
                    .ok_or_else(|| {
                        ConfigError::new(
                            "-blockdev",
                            format!("node '{name}' refers to unknown node '{file}'"),
                        )
                    })?;
                self.take(&file, name, "the file")?;
                p
            }
        };
        image.backing = match backing {
            None => Backing::FromImage,
            Some(None) => Backing::None,
            Some(Some(below)) => {
                above.push(name.to_string());
                if above.iter().all(|a| *a != below) {
                    self.take(&below, name, "the backing image")?;
                }
                let node = self.format_node(&below, "-blockdev", above)?;
                Backing::Node(Box::new(node))
            }
        };
        Ok(image)
    }
}
