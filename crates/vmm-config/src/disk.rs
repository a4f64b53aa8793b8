//! A virtio-blk disk as the command line describes it: the `-blockdev`
//! node graph (a format node over a protocol node, later with backing
//! nodes) and the guest device's options, in typed values. QEMU's spellings
//! (`cache=writethrough`, `aio=io_uring`, `"cache":{"direct":true}`,
//! `write-cache=off`) are turned into these here and nowhere else.

use std::path::{Path, PathBuf};

/// `aio=`: how a protocol node submits its I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Aio {
    /// A pool of worker threads (QEMU's default).
    #[default]
    Threads,
    /// Linux AIO in QEMU; needs `cache.direct=on`.
    Native,
    /// io_uring.
    IoUring,
}

impl Aio {
    /// QEMU's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Aio::Threads => "threads",
            Aio::Native => "native",
            Aio::IoUring => "io_uring",
        }
    }

    /// Parses QEMU's spelling.
    pub fn from_qemu(s: &str) -> Option<Aio> {
        Some(match s {
            "threads" => Aio::Threads,
            "native" => Aio::Native,
            "io_uring" => Aio::IoUring,
            _ => return None,
        })
    }
}

/// A block node's host cache options (`cache.direct`, `cache.no-flush`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cache {
    /// Bypass the host page cache (O_DIRECT).
    pub direct: bool,
    /// Do not pass flushes on: the data is never made durable on request.
    pub no_flush: bool,
}

/// What one of QEMU's `-drive cache=` modes means: the host cache options
/// and whether the guest sees a volatile write cache (`cache.writeback`).
/// `off` is QEMU's old name for `none`.
pub fn cache_mode(mode: &str) -> Option<(Cache, bool)> {
    let (direct, no_flush, writeback) = match mode {
        "none" | "off" => (true, false, true),
        "writeback" => (false, false, true),
        "writethrough" => (false, false, false),
        "directsync" => (true, false, false),
        "unsafe" => (false, true, true),
        _ => return None,
    };
    Some((Cache { direct, no_flush }, writeback))
}

/// The cache modes [`cache_mode`] knows, as error messages list them.
pub const CACHE_MODES: &[&str] = &["none", "writeback", "writethrough", "directsync", "unsafe"];

/// Image formats rvirt-vmm reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageFormat {
    #[default]
    Raw,
    Qcow2,
}

impl ImageFormat {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// The protocol drivers: where a node's bytes are on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// A regular file (`driver=file`).
    #[default]
    File,
    /// A block device (`driver=host_device`).
    HostDevice,
}

impl Protocol {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::File => "file",
            Protocol::HostDevice => "host_device",
        }
    }
}

/// A protocol node: a host file or block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolNode {
    /// `node-name`; None for the anonymous node of a `-drive`.
    pub node_name: Option<String>,
    pub driver: Protocol,
    pub filename: PathBuf,
    pub read_only: bool,
    /// `auto-read-only`: a file that cannot be opened for writing is
    /// opened read-only instead (libvirt sets it on every file node).
    pub auto_read_only: bool,
    pub cache: Cache,
    pub aio: Aio,
    /// `discard=unmap`: discards reaching this node punch holes.
    pub discard: bool,
}

/// Where a format node's backing chain comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Backing {
    /// Not given: the image's own header names it (qcow2, as QEMU does
    /// for `-drive` and for `-blockdev` without `backing`; the block layer
    /// follows it only when the header also names the format); raw has
    /// none.
    #[default]
    FromImage,
    /// `"backing": null`: no backing file, whatever the header says
    /// (libvirt's way: it names every image of a chain itself).
    None,
    /// `"backing": "NODE"`: that format node, read-only.
    Node(Box<FormatNode>),
}

/// A format node (`-blockdev driver=raw`, or the one a `-drive` makes):
/// the top of a disk's node graph, the node the guest device uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatNode {
    /// `node-name`; None for the anonymous node of a `-drive`.
    pub node_name: Option<String>,
    pub format: ImageFormat,
    pub read_only: bool,
    pub cache: Cache,
    /// `discard=unmap`: guest discards go on to the protocol node (which
    /// must also say unmap to punch holes); otherwise they stop here.
    pub discard: bool,
    /// The node holding the image's bytes.
    pub file: ProtocolNode,
    pub backing: Backing,
}

impl FormatNode {
    /// The image file or device.
    pub fn path(&self) -> &Path {
        &self.file.filename
    }

    /// The format node below this one, if the command line named one.
    pub fn backing_node(&self) -> Option<&FormatNode> {
        match &self.backing {
            Backing::Node(n) => Some(n),
            Backing::FromImage | Backing::None => None,
        }
    }

    /// Whether writes are refused: either node being read-only is enough.
    pub fn read_only(&self) -> bool {
        self.read_only || self.file.read_only
    }

    /// The host cache options in effect, as QEMU applies them per node:
    /// O_DIRECT is the protocol node's own; a flush stops at the first node
    /// with `no-flush`, so either node having it makes flushes no-ops.
    pub fn cache(&self) -> Cache {
        Cache {
            direct: self.file.cache.direct,
            no_flush: self.cache.no_flush || self.file.cache.no_flush,
        }
    }

    /// How the image's I/O is submitted.
    pub fn aio(&self) -> Aio {
        self.file.aio
    }

    /// Whether guest discards punch holes in the image: both nodes must
    /// pass them on (libvirt sets unmap on the protocol node always and on
    /// the format node only for `discard='unmap'`).
    pub fn discard(&self) -> bool {
        self.discard && self.file.discard
    }
}

/// A virtio-blk disk: `-drive` (or a `-blockdev` graph) and the
/// `-device virtio-blk-device` that uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskConfig {
    /// The drive id (`-drive id=`) or the format node's name (`-blockdev`).
    pub drive: String,
    /// True for a `-blockdev` disk: `query-block` then names it by node
    /// name and leaves `device` empty, as QEMU does.
    pub blockdev: bool,
    /// The guest device's id (`-device …,id=`), if given.
    pub id: Option<String>,
    /// `serial=`, returned by VIRTIO_BLK_T_GET_ID.
    pub serial: Option<String>,
    /// Whether the guest sees a volatile write cache: the device's
    /// `write-cache=on|off`, or with `auto` (the default) the drive's
    /// `cache.writeback` (`-drive cache=writethrough|directsync` turn it
    /// off; a `-blockdev` disk has it on). Without one, every write is
    /// durable when it completes.
    pub write_cache: bool,
    /// The format node the device reads and writes.
    pub image: FormatNode,
    /// `bootindex=`: where firmware tries this disk in the boot order.
    pub bootindex: Option<u32>,
}

impl DiskConfig {
    /// The image file or device.
    pub fn path(&self) -> &Path {
        self.image.path()
    }

    /// See [`FormatNode::read_only`].
    pub fn read_only(&self) -> bool {
        self.image.read_only()
    }

    /// See [`FormatNode::cache`].
    pub fn cache(&self) -> Cache {
        self.image.cache()
    }

    /// See [`FormatNode::aio`].
    pub fn aio(&self) -> Aio {
        self.image.aio()
    }

    /// See [`FormatNode::discard`].
    pub fn discard(&self) -> bool {
        self.image.discard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_cache_modes() {
        let c = |direct, no_flush| Cache { direct, no_flush };
        assert_eq!(cache_mode("none"), Some((c(true, false), true)));
        assert_eq!(cache_mode("off"), cache_mode("none"));
        assert_eq!(cache_mode("writeback"), Some((c(false, false), true)));
        assert_eq!(cache_mode("writethrough"), Some((c(false, false), false)));
        assert_eq!(cache_mode("directsync"), Some((c(true, false), false)));
        assert_eq!(cache_mode("unsafe"), Some((c(false, true), true)));
        assert_eq!(cache_mode("fast"), None);
        for m in CACHE_MODES {
            assert!(cache_mode(m).is_some(), "{m}");
        }
    }

    #[test]
    fn effective_options_combine_the_nodes_as_qemu_does() {
        let mut f = FormatNode::default();
        f.file.cache.direct = true;
        f.file.discard = true;
        assert_eq!(
            f.cache(),
            Cache {
                direct: true,
                no_flush: false
            }
        );
        assert!(!f.discard(), "the format node keeps discards");
        f.discard = true;
        assert!(f.discard());
        f.cache.no_flush = true;
        assert!(f.cache().no_flush);
        f.cache.direct = false;
        assert!(f.cache().direct, "O_DIRECT is the protocol node's");
        f.file.read_only = true;
        assert!(f.read_only());
    }
}
